import { describe, expect, it } from 'vitest';
import { GroupCommit } from '../../src/db/group-commit.js';

/** A commit the test finishes by hand, so which requests share a commit is decided by the test. */
function manualCommits() {
  const calls: Array<{ requests: number[]; finish: (results: Array<string | Error>) => void; fail: (err: Error) => void }> = [];
  const commit = (requests: number[]) => new Promise<Array<string | Error>>((resolve, reject) => calls.push({ requests, finish: resolve, fail: reject }));
  return { calls, commit };
}

/** Lets the commits' bookkeeping after an answer run. */
const settled = () => new Promise((resolve) => setImmediate(resolve));

describe('group commit', () => {
  it('a lone request goes straight in; those arriving meanwhile share the next commit', async () => {
    const { calls, commit } = manualCommits();
    const group = new GroupCommit(commit, { concurrency: 1, maxBatch: 3 });
    const answers = [1, 2, 3, 4, 5].map((n) => group.submit(n));
    expect(calls.map((c) => c.requests)).toEqual([[1]]);
    calls[0]!.finish(['one']);
    await expect(answers[0]).resolves.toBe('one');
    expect(calls.map((c) => c.requests)).toEqual([[1], [2, 3, 4]]);
    calls[1]!.finish(['two', new Error('three refused'), 'four']);
    await expect(answers[1]).resolves.toBe('two');
    await expect(answers[2]).rejects.toThrow('three refused');
    await expect(answers[3]).resolves.toBe('four');
    expect(calls.map((c) => c.requests)).toEqual([[1], [2, 3, 4], [5]]);
    calls[2]!.fail(new Error('database down'));
    await expect(answers[4]).rejects.toThrow('database down');
  });

  it('runs up to `concurrency` commits at once', () => {
    const { calls, commit } = manualCommits();
    const group = new GroupCommit(commit, { concurrency: 2, maxBatch: 10 });
    for (const n of [1, 2, 3, 4]) void group.submit(n).catch(() => {});
    expect(calls.map((c) => c.requests)).toEqual([[1], [2]]);
  });

  it('with keyOf, a request whose key is in a commit under way waits for it, behind it in order, while other keys go ahead', async () => {
    const { calls, commit } = manualCommits();
    // Requests are numbers; their key is the tens (11 and 12 share key 1).
    const group = new GroupCommit(commit, { concurrency: 2, maxBatch: 10, keyOf: (n) => String(Math.floor(n / 10)) });
    const answers = new Map([11, 21, 12, 31, 13, 22].map((n) => [n, group.submit(n)]));
    // 11 goes in alone; 21 takes the second commit; the rest wait for a free one.
    expect(calls.map((c) => c.requests)).toEqual([[11], [21]]);
    calls[1]!.finish(['21']);
    await answers.get(21);
    await settled();
    // Key 1 is still under way: 12 and 13 wait; 31 and 22 go (22's 21 has committed).
    expect(calls.map((c) => c.requests)).toEqual([[11], [21], [31, 22]]);
    calls[0]!.finish(['11']);
    await answers.get(11);
    await settled();
    expect(calls.map((c) => c.requests)).toEqual([[11], [21], [31, 22], [12, 13]]);
    calls[2]!.finish(['31', '22']);
    calls[3]!.finish(['12', '13']);
    expect(await Promise.all([...answers.values()])).toEqual(['11', '21', '12', '31', '13', '22']);
  });

  it('with keyOf, the requests of a failed shared commit are retried alone one key at a time, in order', async () => {
    const alone: number[] = [];
    const running = new Set<string>();
    let overlap = false;
    const keyOf = (n: number) => String(Math.floor(n / 10));
    let release!: () => void;
    const firstDone = new Promise<void>((r) => (release = r));
    const group = new GroupCommit(
      async (requests: number[]) => {
        if (requests.length === 1 && requests[0] === 1) {
          await firstDone;
          return ['ok 1'];
        }
        if (requests.length > 1) throw new Error('shared commit refused');
        const key = keyOf(requests[0]!);
        if (running.has(key)) overlap = true;
        running.add(key);
        await new Promise((r) => setImmediate(r));
        running.delete(key);
        alone.push(requests[0]!);
        return [`ok ${requests[0]}`];
      },
      { concurrency: 1, maxBatch: 10, keyOf },
    );
    const first = group.submit(1);
    const answers = [11, 21, 12, 13].map((n) => group.submit(n));
    release();
    await first;
    expect(await Promise.all(answers)).toEqual(['ok 11', 'ok 21', 'ok 12', 'ok 13']);
    expect(overlap).toBe(false);
    expect(alone.filter((n) => keyOf(n) === '1')).toEqual([11, 12, 13]);
  });

  it('the requests of a failed shared commit are retried alone, no more than `concurrency` of them at a time', async () => {
    let running = 0;
    let most = 0;
    let release!: () => void;
    const firstDone = new Promise<void>((r) => (release = r));
    const group = new GroupCommit(
      async (requests: number[]) => {
        if (requests.length === 1 && requests[0] === 0) {
          await firstDone;
          return ['ok 0'];
        }
        if (requests.length > 1) throw new Error('shared commit refused');
        // Only the failed commit's requests, retried alone, are counted.
        const retried = requests[0]! >= 2;
        if (retried) running += 1;
        most = Math.max(most, running);
        await new Promise((r) => setImmediate(r));
        if (retried) running -= 1;
        return [`ok ${requests[0]}`];
      },
      { concurrency: 2, maxBatch: 10 },
    );
    const first = group.submit(0);
    // 1 takes the second commit alone; 2..9 wait and share the next one, which fails.
    const answers = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => group.submit(n));
    release();
    await first;
    expect(await Promise.all(answers)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => `ok ${n}`));
    expect(most).toBe(2);
  });

  it('a commit that answers the wrong number of requests fails them all', async () => {
    const group = new GroupCommit(async () => ['only one'], { concurrency: 1, maxBatch: 10 });
    const first = group.submit(1);
    const both = [group.submit(2), group.submit(3)];
    await expect(first).resolves.toBe('only one');
    for (const p of both) await expect(p).rejects.toThrow('answered 1 of 2');
  });

  it('a shared commit that throws is retried one request at a time, so only the bad request fails', async () => {
    const seen: number[][] = [];
    const shared: number[][] = [];
    let release!: () => void;
    const firstDone = new Promise<void>((r) => (release = r));
    const group = new GroupCommit(
      async (requests: number[]) => {
        seen.push(requests);
        if (requests.length === 1 && requests[0] === 1) await firstDone;
        if (requests.includes(3)) throw new Error('3 is refused');
        return requests.map((n) => `ok ${n}`);
      },
      { concurrency: 1, maxBatch: 10, onSharedFailure: (requests) => shared.push(requests) },
    );
    const answers = [1, 2, 3, 4].map((n) => group.submit(n));
    release();
    await expect(answers[0]).resolves.toBe('ok 1');
    await expect(answers[1]).resolves.toBe('ok 2');
    await expect(answers[2]).rejects.toThrow('3 is refused');
    await expect(answers[3]).resolves.toBe('ok 4');
    expect(seen).toEqual([[1], [2, 3, 4], [2], [3], [4]]);
    expect(shared).toEqual([[2, 3, 4]]);
  });
});
