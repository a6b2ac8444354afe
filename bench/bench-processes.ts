/**
 * What bench/run.ts and bench/reads.ts share: flag parsing, the Postgres server and Redis they use, the
 * processes under test (started with `node --import tsx`, their output in a log file, stopped with
 * SIGTERM and SIGKILL after 10 s), the migration of a fresh database by the real `release`, waiting,
 * and a cleanup that runs once (at the end, or on Ctrl-C / SIGTERM).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

// ───────────────────────────── flags and servers ─────────────────────────────

export function flag(name: string, fallback: string): string {
  const hit = process.argv.slice(2).find((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (!hit) return fallback;
  const eq = hit.indexOf('=');
  return eq < 0 ? 'true' : hit.slice(eq + 1);
}
export function numberFlag(name: string, fallback: number, min = 0): number {
  const v = Number(flag(name, String(fallback)));
  if (!Number.isFinite(v) || v < min) throw new Error(`--${name} must be a number ≥ ${min}`);
  return v;
}

export const serverUrl = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
export const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
/** DATABASE_URL's server with another database name. */
export const dbUrl = (name: string) => {
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return u.toString();
};

// ───────────────────────────── processes ─────────────────────────────

export interface Proc {
  name: string;
  child: ChildProcess;
  log: string;
  exited: boolean;
}
/** Every process started and not yet stopped (or forgotten after it exited on its own). */
export const running = new Set<Proc>();

/** `node [nodeArgs] --import tsx <file>` in the repository root, stdout and stderr to <logDir>/<name>.log. */
export function startProcess(logDir: string, name: string, file: string, env: Record<string, string>, nodeArgs: string[] = []): Proc {
  const log = path.join(logDir, `${name}.log`);
  const fd = openSync(log, 'a');
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', file], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const proc: Proc = { name, child, log, exited: false };
  child.on('exit', () => {
    proc.exited = true;
  });
  running.add(proc);
  return proc;
}

export async function stopProcesses(procs: Iterable<Proc>): Promise<void> {
  await Promise.all(
    [...procs].map(async (p) => {
      if (!p.exited) {
        p.child.kill('SIGTERM');
        const killer = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
        if (!p.exited) await once(p.child, 'exit');
        clearTimeout(killer);
      }
      running.delete(p);
    }),
  );
}

/** Waits for a process that runs to its end; returns its exit code. */
export async function runToExit(proc: Proc): Promise<number | null> {
  const [code] = (await once(proc.child, 'exit')) as [number | null];
  running.delete(proc);
  return code;
}

export function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export function assertAlive(procs: Proc[]): void {
  const dead = procs.find((p) => p.exited);
  if (dead) throw new Error(`${dead.name} exited (code ${dead.child.exitCode}); its log ${dead.log}:\n${tail(dead.log)}`);
}

/** Migrates and seeds an (empty, existing) database with the real `release`; throws with its log's tail if it fails. */
export async function releaseDatabase(logDir: string, database: string, nodeArgs: string[] = []): Promise<void> {
  const release = startProcess(
    logDir,
    'release',
    'src/db/release.ts',
    { DATABASE_URL: dbUrl(database), LOG_LEVEL: 'warn', NODE_ENV: 'development', API_CLIENTS: '' },
    nodeArgs,
  );
  const code = await runToExit(release);
  if (code !== 0) throw new Error(`release failed (${code}):\n${tail(release.log)}`);
}

// ───────────────────────────── waiting ─────────────────────────────

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs `fn` over `items`, at most `limit` at a time. */
export async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, 'close');
  return port;
}

/** Polls probe every 100 ms until it gives something other than undefined or false (errors count as not yet). */
export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined | false>, procs: Proc[] = []): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    assertAlive(procs);
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

// ───────────────────────────── cleanup ─────────────────────────────

/** SCAN + UNLINK of every key matching pattern; returns how many were deleted. */
export async function deleteRedisKeys(redis: Redis, pattern: string): Promise<number> {
  let deleted = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length) deleted += await redis.unlink(...keys);
  } while (cursor !== '0');
  return deleted;
}

/**
 * A cleanup that runs its steps once, in order, each one's failure reported and the next one tried
 * anyway; SIGINT and SIGTERM print signalMessage(signal), run it and exit 130.
 */
export function cleanupOnce(steps: () => Array<[string, () => Promise<unknown>]>, signalMessage: (signal: string) => string): () => Promise<void> {
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      for (const [what, step] of steps()) {
        try {
          await step();
        } catch (err) {
          console.error(`cleanup: could not ${what}: ${(err as Error).message}`);
        }
      }
    })());
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      console.error(signalMessage(signal));
      void cleanup().finally(() => process.exit(130));
    });
  }
  // A failure outside the run's own try (a rejection nobody awaited yet, an emitter's throw) must not
  // leave the hub's processes, the database and the keys behind.
  for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
    process.on(event, (err: unknown) => {
      console.error(`${event}: ${(err as Error)?.stack ?? err}`);
      void cleanup().finally(() => process.exit(1));
    });
  }
  return cleanup;
}
