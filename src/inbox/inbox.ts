import { and, eq, inArray, sql } from "drizzle-orm";
import type { ChannelName, InboundMessage } from "../core/types.ts";
import { cleanDeep } from "../core/clean-text.ts";
import { databaseError, type Db } from "../db/client.ts";
import { failureReason, storageFailure } from "../db/failures.ts";
import { inbox, inboxDeadLetters, messages } from "../db/schema.ts";
import { estimateTokens } from "../models/tokens.ts";

/**
 * Durable intake. A message is written here before the platform is acknowledged; a worker claims it, and it is
 * marked done only once its reply has been delivered. The database is the coordinator: claims use
 * FOR UPDATE SKIP LOCKED and a lease, so several workers (or processes) share the work, and a row left claimed by a
 * dead process is taken up again once its lease has run out.
 *
 * Ordering: only the oldest unfinished row of a chat can be claimed, so the messages of one chat are handled one at a
 * time and in the order they arrived, while different chats proceed in parallel.
 *
 * A process claims only the channels it can deliver to right now: a channel that runs in another process of the
 * cluster (a WhatsApp Web session) is left to that one. A chat belongs to one channel, so this keeps the order.
 */

export interface InboxItem {
  id: number;
  message: InboundMessage;
  attempts: number;
  /** When the row was stored (the database's clock): the start of the reply latency. */
  storedAt?: Date;
}

export interface Accepted {
  id: number | null;
  duplicate: boolean;
  /** The database refused the message's values: it was set aside in inbox_dead_letters with this reason (the
   * SQLSTATE and constraint, never a value), and its delivery may be acknowledged. */
  setAside?: string;
  /** The row, claimed for this process as it was stored (`claim`). */
  claimed?: InboxItem;
}

/** A stored reply (messages row) and the platform's ids of the messages it went out as. */
export interface DeliveredReply {
  messageId: number;
  platformIds: readonly string[];
}

export interface Inbox {
  /**
   * Stores the message, cleaned (src/core/clean-text.ts: no NUL or other control characters and no lone surrogates
   * in any of its strings); a redelivery of the same (channel, platformMessageId) is a no-op. A message whose values
   * the database still refuses is set aside (`setAside`); only an outage rejects. With `claim`, a worker of
   * this process is waiting for it: the row is stored already claimed (`claimed`) when it may be answered at once,
   * i.e. no earlier message of its chat is still waiting or being answered; otherwise it is stored to wait its turn.
   */
  accept(message: InboundMessage, options?: { claim?: boolean }): Promise<Accepted>;
  /** Claims the next message that is ready, for `leaseMs`, of one of `channels` (default: any); null when there is none. */
  claim(channels?: readonly ChannelName[]): Promise<InboxItem | null>;
  /** Keeps a claim alive while its work goes on. Returns false when the claim was lost. */
  extendLease(id: number): Promise<boolean>;
  /**
   * Closes the row as answered. With `delivered`, the reply stored for it is marked delivered in the same statement:
   * the two are one fact, and one commit instead of two on every message.
   */
  complete(id: number, delivered?: DeliveredReply): Promise<void>;
  /** Nothing to answer (a group message not addressed to the bot, …). */
  ignore(id: number, reason: string): Promise<void>;
  /** Releases the claim; the row is claimed again after `delayMs`. */
  retryLater(id: number, error: string, delayMs: number): Promise<void>;
  fail(id: number, error: string): Promise<void>;
  /** Rows waiting (pending) and being answered (working), across every process sharing the database. */
  depth(): Promise<{ pending: number; working: number }>;
}

/** The queries every message runs, prepared once: not rebuilt by drizzle nor re-planned by PostgreSQL each time. */
function prepareInboxQueries(db: Db) {
  const p = sql.placeholder;
  const lease = sql`now() + ${p("leaseMs")} * interval '1 millisecond'`;
  const chatFree = sql`not exists (
    select 1 from ${inbox} e where e.chat_key = ${p("chatKey")} and e.state in ('pending', 'working')
  )`;
  const next = sql`(
    select i.id from ${inbox} i
    where ((i.state = 'pending' and i.available_at <= now()) or (i.state = 'working' and i.lease_until < now()))
      and (${p("channels")}::text[] is null or i.channel = any(${p("channels")}::text[]))
      and not exists (
        select 1 from ${inbox} e
        where e.chat_key = i.chat_key and e.id < i.id and e.state in ('pending', 'working')
      )
    order by i.id
    limit 1
    for update skip locked
  )`;
  return {
    accept: db
      .insert(inbox)
      .values({ channel: p("channel"), platformMessageId: p("platformMessageId"), chatKey: p("chatKey"), userKey: p("userKey"), payload: p("payload") })
      .onConflictDoNothing({ target: [inbox.channel, inbox.platformMessageId] })
      .returning({ id: inbox.id })
      .prepare("parley_inbox_accept"),
    // The same insert, claiming the row at once when its chat has nothing unfinished. Two such inserts for one chat
    // at the same moment would both see nothing: the unique index on a chat's working row fails the second, which
    // is then stored to wait (see accept).
    acceptClaimed: db
      .insert(inbox)
      .values({
        channel: p("channel"),
        platformMessageId: p("platformMessageId"),
        chatKey: p("chatKey"),
        userKey: p("userKey"),
        payload: p("payload"),
        state: sql`case when ${chatFree} then 'working' else 'pending' end`,
        attempts: sql`case when ${chatFree} then 1 else 0 end`,
        leaseUntil: sql`case when ${chatFree} then ${lease} end`,
      })
      .onConflictDoNothing({ target: [inbox.channel, inbox.platformMessageId] })
      .returning({ id: inbox.id, state: inbox.state, attempts: inbox.attempts, storedAt: inbox.createdAt })
      .prepare("parley_inbox_accept_claimed"),
    claim: db
      .update(inbox)
      .set({ state: "working", attempts: sql`${inbox.attempts} + 1`, leaseUntil: lease, updatedAt: sql`now()` })
      .where(eq(inbox.id, next))
      .returning({ id: inbox.id, payload: inbox.payload, attempts: inbox.attempts, storedAt: inbox.createdAt })
      .prepare("parley_inbox_claim"),
    extendLease: db
      .update(inbox)
      .set({ leaseUntil: lease })
      .where(and(eq(inbox.id, p("id")), eq(inbox.state, "working")))
      .returning({ id: inbox.id })
      .prepare("parley_inbox_extend_lease"),
    finish: db
      .update(inbox)
      .set({ state: sql`${p("state")}`, error: sql`${p("error")}`, leaseUntil: null, updatedAt: sql`now()` })
      .where(eq(inbox.id, p("id")))
      .prepare("parley_inbox_finish"),
    completeDelivered: db
      .with(
        db.$with("delivered").as(
          db
            .update(messages)
            .set({ deliveredAt: sql`now()`, platformMessageIds: sql`${p("platformIds")}::jsonb` })
            .where(eq(messages.id, p("messageId")))
            .returning({ id: messages.id }),
        ),
      )
      .update(inbox)
      .set({ state: "done", error: null, leaseUntil: null, updatedAt: sql`now()` })
      .where(eq(inbox.id, p("id")))
      .prepare("parley_inbox_complete_delivered"),
    retryLater: db
      .update(inbox)
      .set({
        state: "pending",
        error: sql`${p("error")}`,
        leaseUntil: null,
        availableAt: sql`now() + ${p("delayMs")} * interval '1 millisecond'`,
        updatedAt: sql`now()`,
      })
      .where(eq(inbox.id, p("id")))
      .prepare("parley_inbox_retry_later"),
  };
}

export function createInbox(deps: { db: Db; leaseMs: number }): Inbox {
  const { db, leaseMs } = deps;
  const q = prepareInboxQueries(db);

  const finish = async (id: number, state: "done" | "failed" | "ignored", error: string | null) => {
    await q.finish.execute({ id, state, error });
  };

  const store = async (message: InboundMessage, options?: { claim?: boolean }): Promise<Accepted> => {
    const row = {
      channel: message.channel,
      platformMessageId: message.platformMessageId,
      chatKey: message.chat,
      userKey: message.user,
      payload: message,
    };
    if (options?.claim) {
      try {
        const [inserted] = await q.acceptClaimed.execute({ ...row, leaseMs });
        if (!inserted) return duplicateOf(message);
        const claimed =
          inserted.state === "working" ? { id: inserted.id, attempts: inserted.attempts, message, storedAt: inserted.storedAt } : undefined;
        return { id: inserted.id, duplicate: false, ...(claimed ? { claimed } : {}) };
      } catch (error) {
        // Another message of the chat was claimed as it was stored at the same moment: this one waits its turn.
        const violated = databaseError(error);
        if (violated?.code !== "23505" || violated.constraint !== "inbox_one_working_per_chat_uq") throw error;
      }
    }
    const [inserted] = await q.accept.execute(row);
    return inserted ? { id: inserted.id, duplicate: false } : duplicateOf(message);
  };

  /**
   * A message already stored. A redelivery changes nothing; an edit replaces what a row still waiting will answer, or
   * else corrects the person's turn in the history (the conversation's history epoch rises with it, so every
   * process's cache reads it afresh). An edit arriving while its row is being answered corrects the turn only if the
   * turn was already written.
   */
  const duplicateOf = async (message: InboundMessage): Promise<Accepted> => {
    if (!message.edited) return { id: null, duplicate: true };
    const same = and(eq(inbox.channel, message.channel), eq(inbox.platformMessageId, message.platformMessageId));
    const waiting = await db
      .update(inbox)
      .set({ payload: message, updatedAt: sql`now()` })
      .where(and(same, eq(inbox.state, "pending")))
      .returning({ id: inbox.id });
    if (waiting.length === 0) {
      const row = db.select({ id: inbox.id }).from(inbox).where(same);
      await db
        .update(messages)
        .set({ text: message.text, tokens: estimateTokens(message.text) })
        .where(and(inArray(messages.inboxId, row), eq(messages.role, "user")));
    }
    return { id: null, duplicate: true };
  };

  return {
    async accept(input, options) {
      const message = cleanDeep(input);
      try {
        return await store(message, options);
      } catch (error) {
        const failure = storageFailure(error);
        if (failure.kind === "outage") throw error;
        const reason = failureReason(failure);
        // The id is the platform's; cut short in case its length was what the database refused.
        const platformMessageId = String(message.platformMessageId).slice(0, 200);
        await db
          .insert(inboxDeadLetters)
          .values({ channel: String(message.channel).slice(0, 50), platformMessageId, reason })
          .onConflictDoNothing()
          .catch((deadLetterError: unknown) => {
            // Not even the ids could be kept: the message is still set aside, and the caller logs it.
            if (storageFailure(deadLetterError).kind === "outage") throw deadLetterError;
          });
        return { id: null, duplicate: false, setAside: reason };
      }
    },

    async claim(channels) {
      if (channels?.length === 0) return null;
      const rows = await q.claim.execute({ leaseMs, channels: channels === undefined ? null : [...channels] });
      const row = rows[0];
      if (!row) return null;
      return { id: row.id, attempts: row.attempts, message: reviveMessage(row.payload), storedAt: row.storedAt };
    },

    async extendLease(id) {
      const rows = await q.extendLease.execute({ id, leaseMs });
      return rows.length === 1;
    },

    async complete(id, delivered) {
      if (!delivered) return finish(id, "done", null);
      await q.completeDelivered.execute({ id, messageId: delivered.messageId, platformIds: JSON.stringify(delivered.platformIds) });
    },
    ignore: (id, reason) => finish(id, "ignored", reason),
    fail: (id, error) => finish(id, "failed", error),

    async depth() {
      // One scan of the partial index on unfinished rows.
      const [row] = await db
        .select({
          pending: sql<number>`count(*) filter (where ${inbox.state} = 'pending')`.mapWith(Number),
          working: sql<number>`count(*) filter (where ${inbox.state} = 'working')`.mapWith(Number),
        })
        .from(inbox)
        .where(inArray(inbox.state, ["pending", "working"]));
      return { pending: row?.pending ?? 0, working: row?.working ?? 0 };
    },

    async retryLater(id, error, delayMs) {
      await q.retryLater.execute({ id, error, delayMs: Math.max(0, Math.round(delayMs)) });
    },
  };
}

function reviveMessage(payload: unknown): InboundMessage {
  const message = payload as InboundMessage & { receivedAt: string | Date };
  return { ...message, receivedAt: new Date(message.receivedAt) };
}
