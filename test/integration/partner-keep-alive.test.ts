import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type IntegrationConfig } from '../../src/config.js';
import { PartnerHttp } from '../../src/integrations/partner-http.js';

/**
 * A partner that keeps idle connections only a second (it says `Keep-Alive: timeout=1`) still gets
 * its calls on one connection, not a new TCP connection per call.
 */
let server: Server;
let connections = 0;
const ports: number[] = [];
let url: string;
beforeAll(async () => {
  server = createServer((req, res) => {
    ports.push(req.socket.remotePort!);
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
  });
  server.keepAliveTimeout = 1000;
  server.on('connection', () => connections++);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  server.close();
});

const CALLS = 10;

describe('partner connections', () => {
  it('are reused across calls when the partner keeps them alive for only a second', async () => {
    const integration: IntegrationConfig = { ...loadConfig({}).integrations.notify, baseUrl: url, timeoutMs: 5000 };
    const http = new PartnerHttp(integration, {});
    for (let i = 0; i < CALLS; i++) {
      const res = await http.call({ method: 'POST', path: '/notifications', operation: 'notify', body: { i }, attempt: 1 });
      expect(res.status).toBe(200);
    }
    // One connection, or two when the next call starts before the last one's connection is back in the
    // pool; without reuse it would be one per call.
    expect(connections, `client ports ${ports.join(',')}`).toBeLessThanOrEqual(2);
  });
});
