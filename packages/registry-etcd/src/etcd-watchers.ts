import { debuglog } from "node:util";
import type { Etcd3, IKeyValue, IWatchResponse, Watcher } from "etcd3";

const debug = debuglog("farcall:registry");

/**
 * Watches one key from `revision` and calls `onSuspect` when something may have changed it
 * behind its owner's back: an event `isMine` does not recognise (a deletion, someone else's
 * put, the lease's expiry), a reconnection (etcd3 replays missed events, but the owner checks
 * anyway), or the watch ending (`onEnded` then; the owner watches anew): etcd cancelled it, or
 * etcd's revision went back (a cluster rebuilt empty) so it would wait for a far revision.
 */
export function watchKey(
  client: Etcd3,
  key: Buffer,
  revision: number,
  handlers: { isMine(kv: IKeyValue, type: "Put" | "Delete"): boolean; onSuspect(): void; onEnded(watcher: Watcher): void },
): Watcher {
  const watcher = client.watch().key(key).startRevision(String(revision)).watcher();
  let disconnected = false;
  /** Every change up to this revision has been seen. */
  let seen = revision - 1;
  watcher.on("data", (response: IWatchResponse) => {
    seen = Math.max(seen, Number(response.header.revision));
    for (const event of response.events) {
      if (handlers.isMine(event.kv, event.type)) continue;
      debug("etcd: owned key %s: %s by someone else", key.toString("utf8"), event.type.toLowerCase());
      handlers.onSuspect();
    }
  });
  watcher.on("disconnected", () => void (disconnected = true));
  watcher.on("connected", (response: IWatchResponse) => {
    if (Number(response.header.revision) < seen) {
      // etcd's revision went back (a cluster rebuilt empty): this watch waits for a revision
      // that may come much later. The owner checks the key and watches it anew.
      debug("etcd: owned key %s: etcd is at revision %s, behind %d", key.toString("utf8"), response.header.revision, seen);
      handlers.onEnded(watcher);
      void cancelWatcher(watcher, 2000);
      handlers.onSuspect();
    } else if (disconnected) {
      handlers.onSuspect();
    }
    disconnected = false;
  });
  watcher.on("error", (error) => {
    // Cancelled by etcd (its revision compacted, permission withdrawn).
    debug("etcd: watch of owned key %s ended: %s", key.toString("utf8"), error.message);
    handlers.onEnded(watcher);
    handlers.onSuspect();
  });
  return watcher;
}

/**
 * Cancels an etcd3 watcher, waiting at most `timeoutMs` for etcd to confirm; never rejects.
 * An `error` listener stays, so a late error is not an uncaught exception.
 */
export async function cancelWatcher(watcher: Watcher, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  watcher.on("error", () => undefined);
  try {
    await Promise.race([watcher.cancel(), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
  } catch (error) {
    debug("etcd: cancelling a watch failed: %o", error);
  } finally {
    clearTimeout(timer);
  }
}
