/** How long the hub waits for Redis to take jobs (or news) about committed work before going on without it (Postgres holds the work; the sweeper schedules it). */
export const ENQUEUE_DEADLINE_MS = 1000;

/** `work`, or the error `late` gives once `ms` have passed first; a rejection of `work` after that is ignored. */
export function withDeadline<T>(work: Promise<T>, ms: number, late: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(late()), ms);
  });
  work.catch(() => {}); // answered already by the deadline
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

/** `work` (Redis taking jobs or news about committed work), or an error after ENQUEUE_DEADLINE_MS. */
export function withinEnqueueDeadline<T>(work: Promise<T>): Promise<T> {
  return withDeadline(work, ENQUEUE_DEADLINE_MS, () => new Error(`Redis took longer than ${ENQUEUE_DEADLINE_MS} ms`));
}
