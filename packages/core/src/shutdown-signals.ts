/**
 * Graceful shutdown on SIGTERM and SIGINT for every providing application of the process.
 * Signals belong to the process, not to one application: one listener pair serves all of them, so
 * with several providing applications the first signal drains them all before the process ends.
 */
interface Closable {
  close(): Promise<void>;
}

const closables = new Set<Closable>();
let installed = false;

function onSignal(signal: NodeJS.Signals): void {
  uninstall();
  const all = [...closables];
  closables.clear();
  void Promise.allSettled(all.map((c) => c.close())).finally(() => {
    // Everything is drained: let the signal's default action end the process, as without farcall.
    process.kill(process.pid, signal);
  });
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  process.off("SIGTERM", onSignal);
  process.off("SIGINT", onSignal);
}

/** Closes `closable` on the first SIGTERM or SIGINT, then lets the signal end the process. */
export function closeOnSignals(closable: Closable): void {
  closables.add(closable);
  if (installed) return;
  installed = true;
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);
}

/** Stops handling signals for `closable` (it closed on its own); idempotent. */
export function releaseSignals(closable: Closable): void {
  closables.delete(closable);
  if (closables.size === 0) uninstall();
}
