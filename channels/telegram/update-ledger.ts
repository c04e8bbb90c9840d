/**
 * Which updates may be confirmed to Telegram.
 *
 * getUpdates confirms every update below the `offset` it is called with, so the offset may only pass an update once
 * it has been handled (for a message: once onMessage resolved, i.e. it is stored). The ledger therefore asks for
 * `offset = lowest update still in flight`; Telegram then answers with in-flight and already handled updates again,
 * and `accept` filters those out so each update is handed to the bot once per process.
 */
export class UpdateLedger {
  #next = 0;
  #requested = 0;
  readonly #inFlight = new Set<number>();
  /** Handled updates that a getUpdates answer may still contain: at or above the last offset requested. */
  readonly #done = new Set<number>();
  #waiters: Array<() => void> = [];

  /** The offset for the next getUpdates: confirms exactly the updates that are handled and below every one in flight. */
  offset(): number {
    let lowest = this.#next;
    for (const id of this.#inFlight) lowest = Math.min(lowest, id);
    return lowest;
  }

  /**
   * Records that getUpdates is called with `offset`. Only from then on can no answer contain a handled update below
   * it: an answer to an earlier request may still carry updates that were completed while it was under way.
   */
  requested(offset: number): void {
    this.#requested = Math.max(this.#requested, offset);
    for (const id of this.#done) if (id < this.#requested) this.#done.delete(id);
  }

  /** Takes a getUpdates answer; returns the updates not seen before (now in flight), in Telegram's order. */
  accept<U extends { update_id: number }>(updates: readonly U[]): U[] {
    const fresh = updates.filter(
      (u) => u.update_id >= this.#requested && !this.#inFlight.has(u.update_id) && !this.#done.has(u.update_id),
    );
    for (const u of fresh) {
      this.#inFlight.add(u.update_id);
      this.#next = Math.max(this.#next, u.update_id + 1);
    }
    return fresh;
  }

  /** The update was handled: the next offset may pass it. */
  complete(updateId: number): void {
    if (!this.#inFlight.delete(updateId)) return;
    this.#done.add(updateId);
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  inFlight(): number {
    return this.#inFlight.size;
  }

  /** The highest offset getUpdates was called with: everything below it is confirmed to Telegram. */
  lastRequested(): number {
    return this.#requested;
  }

  /** Resolves when an update completes, after `ms`, or when `signal` aborts, whichever comes first. */
  settled(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener("abort", done, { once: true });
      this.#waiters.push(done);
    });
  }
}
