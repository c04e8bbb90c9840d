import { createConcurrentSink, createRunner, createSource, type UpdateSupplier } from "@grammyjs/runner";
import { GrammyError, type Bot } from "grammy";
import type { Update } from "grammy/types";
import type { Logger } from "pino";
import { describeError } from "./errors.ts";
import { fromGrammySignal, toGrammySignal } from "./signal.ts";
import { UpdateLedger } from "./update-ledger.ts";

/**
 * Long polling with @grammyjs/runner, made durable.
 *
 * The runner's own `run()` advances the getUpdates offset past a batch as soon as it is fetched
 * (createUpdateFetcher: `offset = lastId + 1` right after getUpdates returns) and its concurrent sink asks for the
 * next batch while the middleware still runs, so an update is confirmed to Telegram before onMessage stored it; a
 * crash or a rejecting onMessage would lose it. Here the runner's source and sink are kept (concurrency,
 * back-pressure, `sequentialize` per chat) but the supplier is ours: it asks for updates from the lowest one not
 * yet handled (UpdateLedger). A rejecting onMessage is retried with backoff inside the middleware (adapter.ts), so
 * later messages of that chat wait behind it (sequentialize) while other chats flow on; an update that is never
 * handled — the process stops while onMessage still fails — is delivered again by Telegram after a restart.
 * Trade-off: Telegram cannot skip an unconfirmed update, so while one is stuck each getUpdates answers from it
 * (at most 100 updates), and handled ones are filtered out here.
 */

export interface PollingDeps {
  bot: Bot;
  log: Logger;
  token: string;
  allowedUpdates: readonly string[];
  /** Seconds getUpdates may hold the request open. */
  timeoutSeconds?: number;
  /** Called when getUpdates fails and is being retried, and with undefined once it works again. */
  onTrouble?: (detail: string | undefined) => void;
}

const RECHECK_MS = 1000;
const MAX_BACKOFF_MS = 30_000;

/** Polls until `signal` aborts (resolves) or Telegram refuses for good: 401/404 token, 409 conflict (rejects). */
export async function pollDurably(deps: PollingDeps, signal: AbortSignal): Promise<void> {
  const { bot, log, token } = deps;
  if (signal.aborted) return;
  const ledger = new UpdateLedger();

  async function getUpdates(limit: number, sourceSignal: AbortSignal): Promise<Update[]> {
    for (let backoff = 100; ; backoff = Math.min(backoff * 2, MAX_BACKOFF_MS)) {
      const offset = ledger.offset();
      ledger.requested(offset);
      try {
        const updates = await bot.api.getUpdates(
          {
            ...(offset > 0 ? { offset } : {}),
            limit,
            timeout: deps.timeoutSeconds ?? 30,
            allowed_updates: deps.allowedUpdates as never,
          },
          toGrammySignal(sourceSignal),
        );
        deps.onTrouble?.(undefined);
        return updates;
      } catch (error) {
        if (sourceSignal.aborted) throw error;
        const code = error instanceof GrammyError ? error.error_code : undefined;
        if (code === 401 || code === 404 || code === 409) throw error;
        const detail = describeError(error, token).message;
        log.warn({ err: describeError(error, token), retryInMs: backoff }, "getUpdates failed; retrying");
        deps.onTrouble?.(`getUpdates failing, retrying: ${detail}`);
        await sleep(backoff, sourceSignal);
      }
    }
  }

  const supplier: UpdateSupplier<Update> = {
    async supply(batchSize, runnerSignal) {
      const sourceSignal = fromGrammySignal(runnerSignal);
      for (;;) {
        // While updates are in flight the offset cannot move past them and Telegram would answer at once with
        // updates we already have; give them a moment to finish first.
        if (ledger.inFlight() > 0) await ledger.settled(RECHECK_MS, sourceSignal);
        if (sourceSignal.aborted) throw new DOMException("polling stopped", "AbortError");
        const fresh = ledger.accept(await getUpdates(Math.max(1, Math.min(batchSize, 100)), sourceSignal));
        if (fresh.length > 0 || ledger.inFlight() === 0) return fresh;
      }
    },
  };

  const sink = createConcurrentSink<Update, unknown>(
    {
      async consume(update) {
        try {
          await bot.handleUpdate(update);
        } catch (error) {
          // Stopping: leave it unconfirmed, Telegram delivers it again after the restart.
          if (signal.aborted) return;
          // Not a storage failure (onMessage is retried inside the middleware) but a bug: log and let it go.
          ledger.complete(update.update_id);
          throw error;
        }
        ledger.complete(update.update_id);
      },
    },
    async (error) => {
      try {
        await bot.errorHandler(error as never);
      } catch (e) {
        log.error({ err: describeError(e, token) }, "the Telegram error handler failed");
      }
    },
  );

  const runner = createRunner(createSource(supplier), sink);
  const stop = () => void runner.stop();
  signal.addEventListener("abort", stop, { once: true });
  runner.start();
  try {
    await runner.task();
  } finally {
    signal.removeEventListener("abort", stop);
  }
  await confirmHandled(ledger.offset(), ledger.lastRequested());

  /** On a clean stop, confirm what was handled since the last getUpdates so a restart does not fetch it again. */
  async function confirmHandled(offset: number, requested: number) {
    if (offset <= requested) return;
    await bot.api
      .getUpdates({ offset, limit: 1, timeout: 0 }, toGrammySignal(AbortSignal.timeout(2000)))
      .catch((error: unknown) => log.debug({ err: describeError(error, token) }, "could not confirm handled updates"));
  }
}

export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
