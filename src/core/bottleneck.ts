import { createRequire } from "node:module";
import Bottleneck from "bottleneck";

/**
 * Bottleneck, made quick in a single process. Its in-memory datastore yields to the event loop between steps with
 * setTimeout(0), and starts each job with setTimeout(0) too; Node makes every such timer wait at least a millisecond,
 * so one schedule() on a free limiter took ~5 ms and ~1 ms of CPU (0.2–1.4 ms and 0.2–0.4 ms patched; see the
 * README's Performance section), and a message passes
 * through four or five limiters (the user's, the provider's, Telegram's throttler). Here both yields use
 * setImmediate instead: the same "after pending I/O" order, without the clamp. Delays Bottleneck asks for on purpose
 * (minTime, reservoirs, retries) are untouched, and the Redis datastore, whose steps are real round trips, too.
 *
 * The patch is applied once, on import, to the one copy of bottleneck@2.19.5 (its last release, 2019) that Parley and
 * @grammyjs/transformer-throttler share; package.json pins that version, and test/bottleneck.test.ts checks that the
 * patched internals still exist and that limits still hold.
 */

interface Job {
  doExecute(limiter: unknown, clearGlobalState: () => boolean, run: (wait: number) => unknown, free: (...rest: unknown[]) => unknown): unknown;
  doRun(): void;
  options: { expiration?: number | null };
}
interface Internals {
  _run(index: string, job: Job, wait: number): unknown;
  _clearGlobalState(index: string): boolean;
  _free(index: string, job: Job, ...rest: unknown[]): unknown;
  _scheduled: Record<string, { timeout: unknown; expiration: unknown; job: Job }>;
  _limiter: unknown;
}

const require = createRequire(import.meta.url);
const PATCHED = Symbol.for("parley.bottleneck.immediate");

function patch(): void {
  const LocalDatastore = require("bottleneck/lib/LocalDatastore.js") as { prototype: Record<string, unknown> };
  const proto = (Bottleneck as unknown as { prototype: Internals & Record<symbol, boolean> }).prototype;
  if (proto[PATCHED]) return;
  if (typeof LocalDatastore.prototype.yieldLoop !== "function" || typeof proto._run !== "function") {
    throw new Error("bottleneck's internals changed: src/core/bottleneck.ts no longer fits this version");
  }
  LocalDatastore.prototype.yieldLoop = function yieldLoop(this: { Promise: PromiseConstructor }, t = 0) {
    return new this.Promise<void>((resolve) => (t > 0 ? setTimeout(resolve, t) : setImmediate(resolve)));
  };
  const run = proto._run;
  proto._run = function runNow(this: Internals, index, job, wait) {
    if (wait > 0 || job.options.expiration != null) return run.call(this, index, job, wait);
    // As the original does, with setImmediate for its setTimeout(…, 0) (no expiration timer is involved here).
    job.doRun();
    const clearGlobalState = this._clearGlobalState.bind(this, index);
    const again = this._run.bind(this, index, job);
    const free = this._free.bind(this, index, job);
    const timeout = setImmediate(() => job.doExecute(this._limiter, clearGlobalState, again, free));
    return (this._scheduled[index] = { timeout, expiration: undefined, job });
  };
  proto[PATCHED] = true;
}

patch();

export default Bottleneck;
