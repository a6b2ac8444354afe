/**
 * Group commit: requests that arrive while `concurrency` commits are already under way wait and then
 * go together in the next one, up to `maxBatch` at a time. A lone request goes straight in, so nothing
 * waits when the system is idle; under load, one round trip and one commit are shared by many.
 *
 * `commit` answers each request in order: a value, or an Error that fails that request alone. If it
 * throws, every request of that batch fails with what it threw.
 */
export class GroupCommit<Request, Result> {
  private readonly waiting: Array<{ request: Request; resolve: (r: Result) => void; reject: (err: unknown) => void }> = [];
  private running = 0;

  constructor(
    private readonly commit: (requests: Request[]) => Promise<Array<Result | Error>>,
    private readonly options: { concurrency: number; maxBatch: number },
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
      this.commit(taken.map((t) => t.request))
        .then(
          (results) => {
            if (results.length !== taken.length) throw new Error(`group commit answered ${results.length} of ${taken.length} requests`);
            taken.forEach((t, i) => {
              const r = results[i]!;
              if (r instanceof Error) t.reject(r);
              else t.resolve(r);
            });
          },
        )
        .catch((err: unknown) => {
          for (const t of taken) t.reject(err);
        })
        .finally(() => {
          this.running -= 1;
          this.startCommits();
        });
    }
  }
}
