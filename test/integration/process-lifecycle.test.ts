import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, startTestHub, type TestHub } from '../helpers/test-hub.js';

let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub({ inProcessWorkers: false, scheduler: false });
});
afterAll(async () => {
  await hub?.close();
});

function start(entry: string, env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  const logged = (text: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => output.includes(text) && resolve();
      child.stdout!.on('data', check);
      check();
      exited.then((code) => reject(new Error(`exited ${code} before logging ${text}:\n${output}`)));
    });
  return { child, exited, logged, output: () => output };
}

describe('process lifecycle', () => {
  it('web serves, then stops cleanly on SIGTERM with exit 0', async () => {
    const web = start('src/api/main.ts', { ...hub.env, PORT: '0', LOG_LEVEL: 'info' });
    await web.logged('"web listening"');
    const port = Number(/"port":(\d+)/.exec(web.output())![1]);
    const res = await request(`http://127.0.0.1:${port}/api/health/ready`);
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    web.child.kill('SIGTERM');
    expect(await web.exited).toBe(0);
    expect(web.output()).toContain('"stopped"');
  });

  it('worker stops cleanly on SIGTERM with exit 0', async () => {
    const worker = await hub.spawnWorker();
    worker.child.kill('SIGTERM');
    expect((await worker.exited).code).toBe(0);
  });

  it('refuses to start with bad configuration, naming the variable', async () => {
    const web = start('src/api/main.ts', { ...hub.env, NODE_ENV: 'production', API_CLIENTS: '' });
    expect(await web.exited).not.toBe(0);
    expect(web.output()).toContain('API_CLIENTS');
    const worker = start('src/workers/main.ts', { ...hub.env, WORKER_CONCURRENCY: 'many' });
    expect(await worker.exited).not.toBe(0);
    expect(worker.output()).toContain('WORKER_CONCURRENCY');
  });
});
