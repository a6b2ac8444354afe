import type { Logger } from '../logger.js';

export interface PeriodicTask {
  /** Run now instead of waiting for the interval; during a run, run again as soon as it ends. */
  kick(): void;
  /** Stops after the run in progress, if any. */
  stop(): Promise<void>;
}

/**
 * Runs `runOnce` until stopped: again at once while it reports more work, else after `intervalMs`, or
 * when kicked (after `kickGapMs` if the kick came during a run).
 * A failing run is logged and retried at the next interval; it never stops the loop.
 */
export function startPeriodicTask(
  name: string,
  logger: Logger,
  intervalMs: number,
  runOnce: () => Promise<boolean>,
  options: { kickGapMs?: number } = {},
): PeriodicTask {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  // A kick during a run may announce work that run started too early to see.
  let kicked = false;
  const loop = (async () => {
    while (!stopped) {
      let more = false;
      kicked = false;
      try {
        more = await runOnce();
      } catch (err) {
        logger.warn({ err: (err as Error).message, task: name }, 'periodic task failed; retrying at the next interval');
      }
      if (stopped || more) continue;
      if (kicked) {
        // Kicks that come while a run is under way are served by one run after `kickGapMs`, so a
        // stream of kicks (a commit each) is worked in batches rather than one run per kick.
        if (options.kickGapMs) await new Promise<void>((resolve) => setTimeout(resolve, options.kickGapMs));
        continue;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, intervalMs);
      });
    }
  })();
  const interrupt = () => {
    if (timer) clearTimeout(timer);
    wake?.();
  };
  return {
    kick: () => {
      kicked = true;
      interrupt();
    },
    stop: async () => {
      stopped = true;
      interrupt();
      await loop;
    },
  };
}
