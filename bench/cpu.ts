import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU accounting from /proc (Linux only): utime + stime of each process, in clock ticks.
 * A snapshot maps pid → ticks for three groups: the processes under test (and their descendants),
 * the Postgres processes that serve the benchmark's database, and the Redis server.
 */

let ticksPerSecond = 100;
try {
  ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  // getconf missing: 100 is the Linux default
}
export const CLK_TCK = ticksPerSecond;

interface ProcInfo {
  pid: number;
  ppid: number;
  comm: string;
  ticks: number;
}

function readStat(pid: number): ProcInfo | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // exited meanwhile
  }
  // comm is in parentheses and may contain spaces; the numeric fields follow the last ')'.
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const comm = text.slice(open + 1, close);
  const fields = text.slice(close + 2).split(' ');
  // fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
  return { pid, ppid: Number(fields[1]), comm, ticks: Number(fields[11]) + Number(fields[12]) };
}

function readCmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+/g, ' ').trim();
  } catch {
    return '';
  }
}

const AUX_PROCESSES = [
  'checkpointer',
  'background writer',
  'walwriter',
  'autovacuum launcher',
  'logical replication launcher',
  'stats collector',
  'archiver',
  'walsender',
  'walreceiver',
];

/**
 * Whether a Postgres process works for `database`: the postmaster, the shared auxiliary processes
 * (WAL writer, checkpointer, ...), and backends or autovacuum workers of that database. Backends of
 * other databases (other people's tests on a shared server) are left out.
 */
function postgresServes(cmdline: string, database: string): boolean {
  if (!cmdline.startsWith('postgres:')) return true; // the postmaster: "/usr/lib/postgresql/15/bin/postgres -D ..."
  let title = cmdline.slice('postgres:'.length).trim();
  const words = title.split(' ');
  if (words[0]?.endsWith(':')) title = words.slice(1).join(' '); // cluster_name prefix, e.g. "15/main:"
  if (title.startsWith('autovacuum worker')) return title.includes(database);
  if (AUX_PROCESSES.some((a) => title.startsWith(a))) return true;
  // client backend: "<user> <database> <host(port)> <activity>"; parallel worker: "parallel worker for PID n"
  const [, db] = title.split(' ');
  return db === database || title.startsWith('parallel worker');
}

export type CpuGroup = 'app' | 'pg' | 'redis';
export type CpuSnapshot = Record<CpuGroup, Map<number, number>> & { rootOf: Map<number, number> };

/** One pass over /proc. `roots` are the pids of the processes under test; their descendants count too. */
export function cpuSnapshot(roots: number[], database: string): CpuSnapshot {
  const all: ProcInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const info = readStat(Number(name));
    if (info) all.push(info);
  }
  const children = new Map<number, number[]>();
  for (const p of all) {
    const list = children.get(p.ppid);
    if (list) list.push(p.pid);
    else children.set(p.ppid, [p.pid]);
  }
  // pid → the root it descends from
  const appPids = new Map<number, number>();
  for (const root of roots) {
    const stack = [root];
    while (stack.length) {
      const pid = stack.pop()!;
      if (appPids.has(pid)) continue;
      appPids.set(pid, root);
      stack.push(...(children.get(pid) ?? []));
    }
  }
  const snap: CpuSnapshot = { app: new Map(), pg: new Map(), redis: new Map(), rootOf: appPids };
  for (const p of all) {
    if (appPids.has(p.pid)) snap.app.set(p.pid, p.ticks);
    else if (p.comm === 'postgres' && postgresServes(readCmdline(p.pid), database)) snap.pg.set(p.pid, p.ticks);
    else if (p.comm === 'redis-server') snap.redis.set(p.pid, p.ticks);
  }
  return snap;
}

/**
 * CPU milliseconds used between two snapshots per group. A process present only in `after` started
 * during the window and counts in full; one present only in `before` exited and its last window is lost
 * (the benchmark's processes and pools live through the window, so this is rare).
 */
export function cpuDeltaMs(before: CpuSnapshot, after: CpuSnapshot): Record<CpuGroup, number> {
  const out = { app: 0, pg: 0, redis: 0 } as Record<CpuGroup, number>;
  for (const group of ['app', 'pg', 'redis'] as const) {
    let ticks = 0;
    for (const [pid, t] of after[group]) ticks += t - (before[group].get(pid) ?? 0);
    out[group] = (ticks * 1000) / CLK_TCK;
  }
  return out;
}

/** CPU milliseconds per root process (with its descendants) between two snapshots. */
export function cpuByRootMs(before: CpuSnapshot, after: CpuSnapshot): Map<number, number> {
  const out = new Map<number, number>();
  for (const [pid, t] of after.app) {
    const root = after.rootOf.get(pid)!;
    out.set(root, (out.get(root) ?? 0) + ((t - (before.app.get(pid) ?? 0)) * 1000) / CLK_TCK);
  }
  return out;
}

/**
 * Machine-wide CPU counters from /proc/stat, in clock ticks: busy (not idle, not iowait), total, and
 * steal (time a virtual machine's CPUs were runnable but the host ran something else: on a shared
 * host the same run gets slower, and this says by how much).
 */
export function machineTicks(): { busy: number; total: number; steal: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user)
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total, steal: v[7] ?? 0 };
}

/** The share of the machine's CPU time the host stole between two readings (0–1). */
export const stolenShare = (a: { total: number; steal: number }, b: { total: number; steal: number }) =>
  b.total > a.total ? (b.steal - a.steal) / (b.total - a.total) : 0;
