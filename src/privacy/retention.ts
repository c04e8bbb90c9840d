import { and, inArray, isNotNull, lt, or, sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { conversations, inbox, messages, modelCalls } from "../db/schema.ts";
import { deleteUnreferencedMedia } from "../media/store.ts";
import type { Logger } from "../observability/logger.ts";

/**
 * HISTORY_RETENTION_DAYS: what people wrote is kept that long, then deleted on a schedule (hourly, the first run
 * shortly after start). Older than the cutoff:
 * - messages are deleted; a conversation left without messages is deleted; a conversation that lost messages
 *   loses its rolling summary too (it was written from them);
 * - model calls keep their numbers (usage, cost) but lose the texts: the model's reasoning and its tool calls;
 * - inbox rows keep their ids (they deduplicate redeliveries) but lose the message they carried;
 * - media no message refers to any more are deleted.
 * Every process may run it: each step is idempotent.
 */

export interface RetentionCounts {
  messages: number;
  conversations: number;
  modelCalls: number;
  inbox: number;
  media: number;
}

const MEDIA_GRACE_MS = 60 * 60 * 1000;

export async function applyRetention(db: Db, opts: { days: number; now?: Date }): Promise<RetentionCounts> {
  const now = opts.now ?? new Date();
  const cutoff = new Date(now.getTime() - opts.days * 24 * 60 * 60 * 1000);
  const counts = await db.transaction(async (tx) => {
    const deleted = await tx
      .delete(messages)
      .where(lt(messages.createdAt, cutoff))
      .returning({ conversationId: messages.conversationId });
    const touched = [...new Set(deleted.map((d) => d.conversationId))];
    if (touched.length > 0) {
      await tx.update(conversations).set({ summary: null, summaryThroughId: null }).where(inArray(conversations.id, touched));
    }
    const emptied = await tx
      .delete(conversations)
      .where(
        and(
          lt(conversations.startedAt, cutoff),
          sql`not exists (select 1 from ${messages} where ${messages.conversationId} = ${conversations.id})`,
        ),
      )
      .returning({ id: conversations.id });
    const calls = await tx
      .update(modelCalls)
      .set({ reasoning: null, tools: null })
      .where(and(lt(modelCalls.startedAt, cutoff), or(isNotNull(modelCalls.reasoning), isNotNull(modelCalls.tools))))
      .returning({ id: modelCalls.id });
    const rows = await tx
      .update(inbox)
      .set({ payload: sql`jsonb_build_object('expired', true)` })
      .where(
        and(
          lt(inbox.createdAt, cutoff),
          inArray(inbox.state, ["done", "failed", "ignored"]),
          sql`not (${inbox.payload} ? 'expired') and not (${inbox.payload} ? 'forgotten')`,
        ),
      )
      .returning({ id: inbox.id });
    return { messages: deleted.length, conversations: emptied.length, modelCalls: calls.length, inbox: rows.length };
  });
  const media = await deleteUnreferencedMedia(db, { graceMs: MEDIA_GRACE_MS, now });
  return { ...counts, media };
}

export interface RetentionJob {
  /** Resolves once a run in progress has finished. */
  stop(): Promise<void>;
}

/** Runs applyRetention after `firstRunMs` (default 1 min), then every `everyMs` (default 1 h), until stopped. */
export function startRetention(deps: {
  db: Db;
  days: number;
  log: Logger;
  firstRunMs?: number;
  everyMs?: number;
  clock?: () => Date;
}): RetentionJob {
  const { db, days, log } = deps;
  const everyMs = deps.everyMs ?? 60 * 60 * 1000;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;

  const run = () => {
    running = (async () => {
      try {
        const counts = await applyRetention(db, { days, now: deps.clock?.() });
        if (Object.values(counts).some((n) => n > 0)) log.info({ days, ...counts }, "history past its retention deleted");
      } catch (error) {
        log.warn({ err: error }, "history retention failed; trying again at the next run");
      }
      if (!stopped) timer = setTimeout(run, everyMs).unref();
    })();
  };
  timer = setTimeout(run, deps.firstRunMs ?? 60_000).unref();

  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
