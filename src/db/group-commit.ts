/**
 * Group commit: requests that arrive while `concurrency` commits are already under way wait and then
 * go together in the next one, up to `maxBatch` at a time. A lone request goes straight in, so nothing
 * waits when the system is idle; under load, one round trip and one commit are shared by many.
 *
 * `commit` answers each request in order: a value, or an Error that fails that request alone. If a
 * shared commit throws, each of its requests is committed alone, so whatever made it fail (one request
 * Postgres refuses, say) fails only its own request; a lone commit that throws fails its request.
 */
export class GroupCommit<Request, Result> {
  private readonly waiting: Array<{ request: Request; resolve: (r: Result) => void; reject: (err: unknown) => void }> = [];
  private running = 0;
  /** With `keyOf`: the keys of the commits under way, each with how many of them hold it. */
  private readonly busy = new Map<string, number>();

  constructor(
    private readonly commit: (requests: Request[]) => Promise<Array<Result | Error>>,
    private readonly options: {
      concurrency: number;
      maxBatch: number;
      /** Told when a shared commit failed and its requests are about to be committed one by one. */
      onSharedFailure?: (requests: Request[], err: unknown) => void;
      /**
       * Requests of one key never go into two commits under way at once: one whose key is in a commit
       * under way waits for it to end (and those after it with that key wait behind it), while
       * requests of other keys go ahead. For commits that lock by key, so one never waits on another.
       */
      keyOf?: (request: Request) => string;
    },
  ) {}

  submit(request: Request): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      this.waiting.push({ request, resolve, reject });
      this.startCommits();
    });
  }

  private startCommits(): void {
    while (this.running < this.options.concurrency && this.waiting.length > 0) {
      const taken = this.take();
      if (taken.length === 0) return;
      const keys = this.options.keyOf ? [...new Set(taken.map((t) => this.options.keyOf!(t.request)))] : [];
      for (const k of keys) this.busy.set(k, (this.busy.get(k) ?? 0) + 1);
      this.running += 1;
      this.commitIsolatingFailures(taken.map((t) => t.request))
        .then((results) => {
          taken.forEach((t, i) => {
            const r = results[i]!;
            if (r instanceof Error) t.reject(r);
            else t.resolve(r);
          });
        })
        .catch((err: unknown) => {
          for (const t of taken) t.reject(err);
        })
        .finally(() => {
          for (const k of keys) {
            const n = this.busy.get(k)! - 1;
            if (n === 0) this.busy.delete(k);
            else this.busy.set(k, n);
          }
          this.running -= 1;
          this.startCommits();
        });
    }
  }

  /** The next commit's requests, oldest first: up to maxBatch, none of a key busy in a commit under way (nor behind one left waiting). */
  private take(): typeof this.waiting {
    const keyOf = this.options.keyOf;
    if (!keyOf) return this.waiting.splice(0, this.options.maxBatch);
    const taken: typeof this.waiting = [];
    const left: typeof this.waiting = [];
    const held = new Set<string>();
    for (const w of this.waiting) {
      const key = keyOf(w.request);
      if (taken.length < this.options.maxBatch && !this.busy.has(key) && !held.has(key)) taken.push(w);
      else {
        left.push(w);
        held.add(key);
      }
    }
    this.waiting.splice(0, this.waiting.length, ...left);
    return taken;
  }

  private async commitIsolatingFailures(requests: Request[]): Promise<Array<Result | Error>> {
    let results: Array<Result | Error>;
    try {
      results = await this.commit(requests);
    } catch (err) {
      if (requests.length === 1) throw err;
      this.options.onSharedFailure?.(requests, err);
      // One key's requests one after another, in their order (with keyOf); the rest side by side.
      const byKey = new Map<string, number[]>();
      requests.forEach((r, i) => {
        const key = this.options.keyOf ? this.options.keyOf(r) : String(i);
        const indexes = byKey.get(key);
        if (indexes) indexes.push(i);
        else byKey.set(key, [i]);
      });
      const alone = new Array<Result | Error>(requests.length);
      // No more commits at once than `concurrency`: a failure caused by a busy pool must not be met
      // with a commit per request.
      const chains = [...byKey.values()];
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(this.options.concurrency, chains.length) }, async () => {
          while (next < chains.length) {
            for (const i of chains[next++]!) {
              try {
                alone[i] = (await this.commit([requests[i]!]))[0]!;
              } catch (err) {
                alone[i] = err instanceof Error ? err : new Error(String(err));
              }
            }
          }
        }),
      );
      results = alone;
    }
    // A commit that answers the wrong number of requests is a bug: every request of the batch fails.
    if (results.length !== requests.length) throw new Error(`group commit answered ${results.length} of ${requests.length} requests`);
    return results;
  }
}
