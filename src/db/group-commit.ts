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

  constructor(
    private readonly commit: (requests: Request[]) => Promise<Array<Result | Error>>,
    private readonly options: {
      concurrency: number;
      maxBatch: number;
      /** Told when a shared commit failed and its requests are about to be committed one by one. */
      onSharedFailure?: (requests: Request[], err: unknown) => void;
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
      const taken = this.waiting.splice(0, this.options.maxBatch);
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
          this.running -= 1;
          this.startCommits();
        });
    }
  }

  private async commitIsolatingFailures(requests: Request[]): Promise<Array<Result | Error>> {
    let results: Array<Result | Error>;
    try {
      results = await this.commit(requests);
    } catch (err) {
      if (requests.length === 1) throw err;
      this.options.onSharedFailure?.(requests, err);
      const alone = await Promise.allSettled(requests.map((r) => this.commit([r])));
      results = alone.map((a) => (a.status === 'fulfilled' ? a.value[0]! : a.reason instanceof Error ? a.reason : new Error(String(a.reason))));
    }
    // A commit that answers the wrong number of requests is a bug: every request of the batch fails.
    if (results.length !== requests.length) throw new Error(`group commit answered ${results.length} of ${requests.length} requests`);
    return results;
  }
}
