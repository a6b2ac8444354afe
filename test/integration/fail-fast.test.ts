import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import postgres from 'postgres';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { createDatabaseFromTemplate, databaseUrlFor, dropDatabase, adminDatabaseUrl } from '../helpers/test-database.js';
import { HubClient } from '../../src/api/hub-client.js';
import { DEVELOPMENT_CLIENTS } from '../../src/config.js';
import { onReservedConnection, RESERVE_DEADLINE_MS } from '../../src/db/pipelined-transaction.js';
import { eventually, newOrderId, REPO_ROOT, shipEvent, startTestHub, type TestHub } from '../helpers/test-hub.js';

/**
 * SPEC §9: configuration that fails fast. Real `web`, `worker` and `scheduler` processes, started as
 * the Procfile starts them, pointed at databases that cannot serve them.
 */

const ENTRIES = { web: 'src/api/main.ts', worker: 'src/workers/main.ts', scheduler: 'src/workers/scheduler.main.ts' } as const;
type Role = keyof typeof ENTRIES;
/** SPEC §9: a process whose database cannot serve it exits within 30 s. */
const EXIT_DEADLINE_MS = 30_000;

let hub: TestHub;
let silentServer: Server;
const silentSockets = new Set<Socket>();
let silentUrl: string;
const createdDatabases: string[] = [];

beforeAll(async () => {
  hub = await startTestHub({ inProcessWorkers: false, scheduler: false });
  // A "Postgres" that accepts connections and never answers: the case a connect timeout must bound.
  silentServer = createServer((socket) => {
    silentSockets.add(socket);
    socket.on('close', () => silentSockets.delete(socket));
  }).listen(0, '127.0.0.1');
  await once(silentServer, 'listening');
  silentUrl = `postgres://postgres@127.0.0.1:${(silentServer.address() as AddressInfo).port}/hub`;
});
afterAll(async () => {
  for (const s of silentSockets) s.destroy();
  silentServer?.close();
  for (const name of createdDatabases) await dropDatabase(name);
  await hub?.close();
});

/** The process environment without any of the hub's variables, so only what a case sets is seen. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !(k in hub.env) && k !== 'API_CLIENTS') env[k] = v;
  }
  return env;
}

function start(role: Role, env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', ENTRIES[role]], {
    cwd: REPO_ROOT,
    env: { ...baseEnv(), PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as string | null }));
  const logged = (text: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => output.includes(text) && resolve();
      child.stdout!.on('data', check);
      check();
      exited.then(({ code }) => reject(new Error(`exited ${code} before logging ${text}:\n${output}`)));
    });
  return { child, exited, logged, output: () => output };
}

/** Starts `role` and waits for it to exit on its own, failing if it is still running after 30 s. */
async function exitOf(role: Role, env: Record<string, string>) {
  const proc = start(role, env);
  let timer: NodeJS.Timeout | undefined;
  const stillRunning = new Promise<'still running'>((resolve) => {
    timer = setTimeout(() => resolve('still running'), EXIT_DEADLINE_MS);
  });
  const result = await Promise.race([proc.exited, stillRunning]);
  clearTimeout(timer);
  if (result === 'still running') {
    proc.child.kill('SIGKILL');
    throw new Error(`${role} still running after ${EXIT_DEADLINE_MS} ms:\n${proc.output()}`);
  }
  return { code: result.code, output: proc.output() };
}

async function emptyDatabase(tag: string): Promise<string> {
  const name = `hub_test_${inject('runId')}_${process.pid}_${tag}`;
  const admin = postgres(adminDatabaseUrl(), { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  createdDatabases.push(name);
  return databaseUrlFor(name);
}

describe('production configuration', () => {
  it.each(['DATABASE_URL', 'REDIS_URL'] as const)('web and worker refuse to start without %s, naming it', async (variable) => {
    const env: Record<string, string> = {
      ...hub.env,
      NODE_ENV: 'production',
      API_CLIENTS: JSON.stringify([{ id: 'ops', role: 'operator', key: 'ops-key-0123456789abcdef' }]),
    };
    delete env[variable];
    for (const role of ['web', 'worker'] as const) {
      const { code, output } = await exitOf(role, env);
      expect(code, output).not.toBe(0);
      expect(output).toContain(`${variable}: required when NODE_ENV=production`);
    }
  });
});

describe('a database that cannot serve the process', () => {
  const cases: Array<[string, () => Promise<string>, RegExp]> = [
    ['nothing listens at its address', async () => 'postgres://postgres@127.0.0.1:1/hub', /DATABASE_URL: cannot reach the database/],
    ['its server accepts connections but never answers', async () => silentUrl, /DATABASE_URL: (cannot reach|the database at .* did not answer)/],
    ['it does not exist', async () => databaseUrlFor(`hub_test_${inject('runId')}_missing`), /DATABASE_URL: the database at .* does not exist/],
    ['it exists but has no migrations', () => emptyDatabase('empty'), /DATABASE_URL: the database at .* is not migrated/],
    [
      "it lacks this build's newest migration",
      async () => {
        const name = `hub_test_${inject('runId')}_${process.pid}_behind`;
        const url = await createDatabaseFromTemplate(name, inject('templateDatabase'));
        createdDatabases.push(name);
        const sql = postgres(url, { max: 1, onnotice: () => {} });
        await sql`delete from drizzle.__drizzle_migrations where created_at = (select max(created_at) from drizzle.__drizzle_migrations)`;
        await sql.end();
        return url;
      },
      /DATABASE_URL: the database at .* is not migrated to this version/,
    ],
  ];

  for (const [what, databaseUrl, message] of cases) {
    it(`web, worker and scheduler exit non-zero within 30 s naming DATABASE_URL when ${what}`, async () => {
      const url = await databaseUrl();
      const results = await Promise.all((['web', 'worker', 'scheduler'] as const).map((role) => exitOf(role, { ...hub.env, DATABASE_URL: url })));
      for (const { code, output } of results) {
        expect(code, output).toBe(1);
        expect(output).toMatch(message);
        // One line naming the variable, not a stack trace.
        expect(output).not.toMatch(/\n\s+at /);
      }
    });
  }

  it('names DATABASE_URL without its password', async () => {
    const { code, output } = await exitOf('worker', { ...hub.env, DATABASE_URL: 'postgres://postgres:s3cret-password@127.0.0.1:1/hub' });
    expect(code).toBe(1);
    expect(output).toContain('DATABASE_URL');
    expect(output).not.toContain('s3cret-password');
  });
});

describe('a lost connection once running', () => {
  it('is retried, not fatal: after every connection is terminated, web and worker keep serving', async () => {
    const web = start('web', { ...hub.env, LOG_LEVEL: 'info' });
    await web.logged('"web listening"');
    const port = Number(/"port":(\d+)/.exec(web.output())![1]);
    const worker = await hub.spawnWorker();

    const admin = postgres(adminDatabaseUrl(), { max: 1, onnotice: () => {} });
    const dbName = new URL(hub.databaseUrl).pathname.slice(1);
    try {
      const terminated = await admin<Array<{ pid: number }>>`
        select pg_terminate_backend(pid) as ok, pid from pg_stat_activity where datname = ${dbName} and pid <> pg_backend_pid()`;
      expect(terminated.length).toBeGreaterThan(0);
    } finally {
      await admin.end();
    }

    const orderId = newOrderId('FF');
    // The web process of this test, not the in-process one.
    const base = `http://127.0.0.1:${port}`;
    const client = (id: string) => new HubClient(base, DEVELOPMENT_CLIENTS.find((c) => c.id === id)!);
    const mao = client('mao');
    const registered = await eventually(async () => {
      const res = await mao.post('/api/orders', {
        orderId,
        shipFromLocationId: 'STORE-007',
        customer: { id: 'CUST-1', name: 'Somchai', phone: '+66800000000', email: 'somchai@example.com' },
        paymentMethod: 'PREPAID',
        status: 3000,
      });
      return res.status === 201 ? res : undefined;
    }, 'order registered through the web process after its connections were terminated');
    expect(registered.status).toBe(201);

    const shipped = await client('slick').post('/api/fulfillment/ship-events', shipEvent(orderId, 'picking'));
    expect(shipped.status).toBe(202);
    // The worker process applies it: its connections were terminated too.
    await eventually(async () => {
      const res = await client('viewer').get<{ status?: number }>(`/api/orders/${orderId}`);
      return res.body.status === 3500 ? true : undefined;
    }, 'the worker applied the ship event');

    const ready = await request(`${base}/api/health/ready`);
    expect(ready.statusCode).toBe(200);
    await ready.body.dump();
    expect(web.child.exitCode).toBeNull();
    expect(worker.child.exitCode).toBeNull();
    web.child.kill('SIGTERM');
    worker.child.kill('SIGTERM');
    expect((await web.exited).code).toBe(0);
    expect((await worker.exited).code).toBe(0);
  });

  it('a transaction waiting for a pool connection that the server then terminates fails after RESERVE_DEADLINE_MS instead of hanging', async () => {
    // postgres.js 3.4 leaves such a reserve() unsettled for ever (porsager/postgres#1195).
    const pool = postgres(hub.databaseUrl, { max: 1, onnotice: () => {} });
    const admin = postgres(adminDatabaseUrl(), { max: 1, onnotice: () => {} });
    try {
      const held = await pool.reserve();
      const [row] = await held<Array<{ pid: number }>>`select pg_backend_pid() as pid`;
      const pid = row!.pid;
      const startedAt = Date.now();
      const waiting = onReservedConnection(pool, async (conn) => conn`select 1 as one`);
      await admin`select pg_terminate_backend(${pid})`;
      await expect(waiting).rejects.toThrow(/no Postgres connection within/);
      expect(Date.now() - startedAt).toBeGreaterThanOrEqual(RESERVE_DEADLINE_MS - 50);
    } finally {
      await admin.end();
      await pool.end({ timeout: 1 });
    }
  });
});
