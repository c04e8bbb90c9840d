import { and, desc, eq, gt, inArray, isNull, lte, sql } from "drizzle-orm";
import { cleanDeep, cleanText } from "../core/clean-text.ts";
import type { ChannelName, ChatKey, InboundMessage, UserKey } from "../core/types.ts";
import type { Db } from "../db/client.ts";
import { conversations, inbox, media, messages, modelCalls, pairingRequests, users } from "../db/schema.ts";
import type { CallRecord } from "../models/router.ts";
import { createHistoryCache, HISTORY_CACHE_MB_DEFAULT, type HistoryConversation } from "./history-cache.ts";

/**
 * Everything the conversation service reads and writes. Every query about history is bounded by a conversation id
 * that belongs to exactly one (user, chat) pair, so one person's history cannot reach another person's prompt.
 */

export type UserRow = typeof users.$inferSelect;
export type ConversationRow = typeof conversations.$inferSelect;
export type MessageRow = typeof messages.$inferSelect;
/** A message found by its platform id: who wrote it (the bot, or the person with this key) and its text. */
export type StoredMessage = { author: "bot"; text: string } | { author: "person"; user: UserKey; text: string };

export type Turn = Pick<MessageRow, "id" | "role" | "text" | "tokens" | "media">;

export interface ConversationStore {
  /**
   * The sender's row, stored with `initialStatus` if new; their display name and last-seen time are brought up to
   * date (the time within LAST_SEEN_PRECISION_MS).
   */
  upsertUser(message: InboundMessage, initialStatus: UserRow["status"]): Promise<UserRow>;
  /** The open conversation of this person in this place, started if there is none. */
  openConversation(user: UserKey, chat: ChatKey): Promise<ConversationRow>;
  /**
   * The open conversation (started if there is none) and its newest `limit` turns after the summary, newest first:
   * what recentTurns answers for it. For a conversation whose turns this process holds, one query reads the
   * conversation and the turns added since.
   */
  openConversationWithTurns(user: UserKey, chat: ChatKey, limit: number): Promise<{ conversation: ConversationRow; recent: Turn[] }>;
  /** Ends the open conversation; the next message starts a new one. History is kept. */
  endConversation(user: UserKey, chat: ChatKey): Promise<boolean>;
  /** Stores a turn once per inbox row and role: a retried row finds the turn it stored before. */
  addTurn(turn: {
    conversationId: number;
    inboxId: number | null;
    role: "user" | "assistant";
    text: string;
    tokens: number;
    mode?: string;
    media?: string[];
  }): Promise<MessageRow>;
  /** The assistant reply already generated for this inbox row, if any. */
  replyFor(inboxId: number): Promise<MessageRow | undefined>;
  /**
   * A message of `chat` by its platform id, for a reply that names only the id: a person's message as received (the
   * inbox) or one Parley sent there. Only the same chat is searched, so nothing said elsewhere is ever returned.
   */
  messageInChat(channel: ChannelName, chat: ChatKey, platformId: string): Promise<StoredMessage | undefined>;
  /**
   * Newest turns after the conversation's summary, newest first, at most `limit`. Pass the conversation as just read
   * (openConversation): its history epoch says whether the turns this process holds for it are still good.
   */
  recentTurns(conversation: HistoryConversation, limit: number): Promise<Turn[]>;
  /** Oldest turns after `afterId` up to and including `throughId`, oldest first. */
  turnsBetween(conversationId: number, afterId: number, throughId: number, limit: number): Promise<Turn[]>;
  saveSummary(conversationId: number, summary: string, throughId: number): Promise<void>;
  /** Records a model call; returns its id (a contemplation's sub-agent calls point to their parent's). */
  recordCall(call: CallRecord & { messageId?: number }): Promise<number>;
  /** Completes a call recorded before it ended (a contemplation's parent row); no `error` in the patch clears it. */
  updateCall(id: number, patch: Partial<CallRecord>): Promise<void>;
  /** The mode a person's messages are answered in unless they ask otherwise (/mode). */
  setDefaultMode(user: UserKey, mode: UserRow["defaultMode"]): Promise<void>;
  /**
   * Deletes everything stored about a person: conversations, messages, the images only they sent, model calls, the
   * content of their inbox rows, a pairing request, the user row.
   */
  forgetUser(user: UserKey): Promise<{ messages: number }>;
}

/**
 * How stale users.last_seen_at may be: a user's row is written when they were last seen longer ago than this (or
 * their name changed), not on every message.
 */
const LAST_SEEN_PRECISION_MS = 10 * 60_000;

/** The store's queries run on every message; prepared once, they are not rebuilt (drizzle) or re-planned (PostgreSQL). */
function prepareHotQueries(db: Db) {
  const p = sql.placeholder;
  const turnColumns = { id: messages.id, role: messages.role, text: messages.text, tokens: messages.tokens, media: messages.media };
  return {
    readUser: db.select().from(users).where(eq(users.key, p("key"))).prepare("parley_read_user"),
    upsertUser: db
      .insert(users)
      .values({ key: p("key"), channel: p("channel"), displayName: p("displayName"), status: p("status") })
      .onConflictDoUpdate({
        target: users.key,
        set: { displayName: sql`coalesce(excluded.display_name, ${users.displayName})`, lastSeenAt: sql`now()` },
      })
      .returning()
      .prepare("parley_upsert_user"),
    openConversation: db
      .select()
      .from(conversations)
      .where(and(eq(conversations.userKey, p("user")), eq(conversations.chatKey, p("chat")), isNull(conversations.endedAt)))
      .limit(1)
      .prepare("parley_open_conversation"),
    // The open conversation with, if it is the one the history cache names (the hint), its turns after
    // `greatest(summary, the newest turn the cache holds)`, the latter only at the history epoch the cache read at.
    openWithTurns: (() => {
      const turns = db
        .select({ turnId: messages.id, role: messages.role, text: messages.text, tokens: messages.tokens, media: messages.media })
        .from(messages)
        // The conversation named by a parameter, not by `c.id`: PostgreSQL plans this for that conversation then
        // (with c.id it read the primary key backwards through every later conversation's turns, 20 ms for a short
        // conversation among 100,000 turns). Another conversation than the hint's gets no turns here.
        .where(
          and(
            eq(messages.conversationId, p("hintId")),
            eq(conversations.id, p("hintId")),
            gt(
              messages.id,
              sql`greatest(coalesce(${conversations.summaryThroughId}, 0),
                case when ${conversations.historyEpoch} = ${p("hintEpoch")} then ${p("hintNewest")}::bigint else 0 end)`,
            ),
          ),
        )
        .orderBy(desc(messages.id))
        .limit(p("limit"))
        .as("turns");
      return db
        .select({ conversation: conversations, turnId: turns.turnId, role: turns.role, text: turns.text, tokens: turns.tokens, media: turns.media })
        .from(conversations)
        .leftJoinLateral(turns, sql`true`)
        .where(and(eq(conversations.userKey, p("user")), eq(conversations.chatKey, p("chat")), isNull(conversations.endedAt)))
        .orderBy(desc(turns.turnId))
        .prepare("parley_open_with_turns");
    })(),
    replyFor: db
      .select()
      .from(messages)
      .where(and(eq(messages.inboxId, p("inboxId")), eq(messages.role, "assistant")))
      .prepare("parley_reply_for"),
    addTurn: db
      .insert(messages)
      .values({
        conversationId: p("conversationId"),
        inboxId: p("inboxId"),
        role: p("role"),
        text: p("text"),
        tokens: p("tokens"),
        mode: p("mode"),
        media: p("media"),
      })
      .onConflictDoNothing()
      .returning()
      .prepare("parley_add_turn"),
    recordCall: db
      .insert(modelCalls)
      .values({
        inboxId: p("inboxId"),
        messageId: p("messageId"),
        parentId: p("parentId"),
        userKey: p("userKey"),
        purpose: p("purpose"),
        mode: p("mode"),
        provider: p("provider"),
        model: p("model"),
        startedAt: p("startedAt"),
        latencyMs: p("latencyMs"),
        firstTokenMs: p("firstTokenMs"),
        tokensIn: p("tokensIn"),
        tokensOut: p("tokensOut"),
        costUsd: p("costUsd"),
        ok: p("ok"),
        error: p("error"),
        reasoning: p("reasoning"),
        // Not through the column's encoder, which would store a missing list as JSON null rather than SQL NULL.
        tools: sql`${p("tools")}::jsonb`,
      })
      .returning({ id: modelCalls.id })
      .prepare("parley_record_call"),
    recentTurns: db
      .select(turnColumns)
      .from(messages)
      .where(and(eq(messages.conversationId, p("conversationId")), gt(messages.id, p("afterId"))))
      .orderBy(desc(messages.id))
      .limit(p("limit"))
      .prepare("parley_recent_turns"),
  };
}

export interface ConversationStoreOptions {
  /** HISTORY_CACHE_MB in bytes: the recent turns kept in this process (src/conversation/history-cache.ts); 0 keeps none. */
  historyCacheBytes?: number;
}

export function createConversationStore(db: Db, options: ConversationStoreOptions = {}): ConversationStore {
  const hot = prepareHotQueries(db);
  const historyCacheBytes = options.historyCacheBytes ?? HISTORY_CACHE_MB_DEFAULT * 2 ** 20;
  const history = historyCacheBytes > 0 ? createHistoryCache({ maxBytes: historyCacheBytes }) : undefined;
  const openConversation = async (user: UserKey, chat: ChatKey): Promise<ConversationRow> => {
    const [existing] = await hot.openConversation.execute({ user, chat });
    if (existing) return existing;
    await db.insert(conversations).values({ userKey: user, chatKey: chat }).onConflictDoNothing();
    const [row] = await hot.openConversation.execute({ user, chat });
    return row!;
  };
  const recentTurns = async (conversation: HistoryConversation, limit: number): Promise<Turn[]> => {
    const read = (afterId: number) => hot.recentTurns.execute({ conversationId: conversation.id, afterId, limit });
    return history ? history.recent(conversation, limit, read) : read(conversation.summaryThroughId ?? 0);
  };

  return {
    async upsertUser(message, initialStatus) {
      // A read when the row is known and was seen lately: no write, so no commit waiting for the disk on most messages.
      const [known] = await hot.readUser.execute({ key: message.user });
      const fresh = known && Date.now() - known.lastSeenAt.getTime() < LAST_SEEN_PRECISION_MS;
      if (fresh && (message.displayName === undefined || message.displayName === known.displayName)) return known;
      const [row] = await hot.upsertUser.execute({
        key: message.user,
        channel: message.channel,
        displayName: message.displayName ?? null,
        status: initialStatus,
      });
      return row!;
    },

    openConversation,

    async openConversationWithTurns(user, chat, limit) {
      // The first message of a conversation in this process: nothing is held, the two reads are planned apart.
      const hint = history?.hint(user, chat, limit);
      const apart = async (conversation?: ConversationRow) => {
        const open = conversation ?? (await openConversation(user, chat));
        return { conversation: open, recent: await recentTurns(open, limit) };
      };
      if (!hint) return apart();
      const rows = await hot.openWithTurns.execute({
        user,
        chat,
        limit,
        hintId: hint.conversationId,
        hintEpoch: hint.epoch,
        hintNewest: hint.newestId,
      });
      const conversation = rows[0]?.conversation;
      if (!conversation || conversation.id !== hint.conversationId) return apart(conversation);
      const fresh: Turn[] = [];
      for (const row of rows) {
        if (row.turnId !== null) fresh.push({ id: row.turnId, role: row.role!, text: row.text!, tokens: row.tokens!, media: row.media! });
      }
      const readAfter = Math.max(conversation.summaryThroughId ?? 0, conversation.historyEpoch === hint.epoch ? hint.newestId : 0);
      // The cache asks for the turns after the id the query used (read already), unless it decides otherwise.
      const read = async (afterId: number) =>
        afterId === readAfter ? fresh : hot.recentTurns.execute({ conversationId: conversation.id, afterId, limit });
      return { conversation, recent: await history!.recent(conversation, limit, read) };
    },

    async endConversation(user, chat) {
      const ended = await db
        .update(conversations)
        .set({ endedAt: sql`now()` })
        .where(and(eq(conversations.userKey, user), eq(conversations.chatKey, chat), isNull(conversations.endedAt)))
        .returning({ id: conversations.id });
      return ended.length > 0;
    },

    async addTurn(turn) {
      // A model's reply is input too: what PostgreSQL refuses (NUL, a lone surrogate) never reaches the insert.
      const values = { ...turn, text: cleanText(turn.text), media: turn.media ?? [] };
      if (turn.inboxId !== null) {
        const [inserted] = await hot.addTurn.execute({ ...values, mode: values.mode ?? null });
        if (inserted) return inserted;
        const [existing] = await db
          .select()
          .from(messages)
          .where(and(eq(messages.inboxId, turn.inboxId), eq(messages.role, turn.role)));
        return existing!;
      }
      const [row] = await db.insert(messages).values(values).returning();
      return row!;
    },

    async replyFor(inboxId) {
      const [row] = await hot.replyFor.execute({ inboxId });
      return row;
    },

    recentTurns,

    async messageInChat(channel, chat, platformId) {
      const [received] = await db
        .select({ user: inbox.userKey, text: sql<string | null>`${inbox.payload}->>'text'` })
        .from(inbox)
        .where(and(eq(inbox.channel, channel), eq(inbox.platformMessageId, platformId), eq(inbox.chatKey, chat)));
      if (received) return { author: "person", user: received.user as UserKey, text: received.text ?? "" };
      const [sent] = await db
        .select({ text: messages.text })
        .from(messages)
        .innerJoin(conversations, eq(conversations.id, messages.conversationId))
        .where(
          and(
            eq(conversations.chatKey, chat),
            eq(messages.role, "assistant"),
            sql`${messages.platformMessageIds} @> ${JSON.stringify([platformId])}::jsonb`,
          ),
        )
        .orderBy(desc(messages.id))
        .limit(1);
      return sent ? { author: "bot", text: sent.text } : undefined;
    },

    async turnsBetween(conversationId, afterId, throughId, limit) {
      return db
        .select({ id: messages.id, role: messages.role, text: messages.text, tokens: messages.tokens, media: messages.media })
        .from(messages)
        .where(and(eq(messages.conversationId, conversationId), gt(messages.id, afterId), lte(messages.id, throughId)))
        .orderBy(messages.id)
        .limit(limit);
    },

    async saveSummary(conversationId, summary, throughId) {
      await db.update(conversations).set({ summary: cleanText(summary), summaryThroughId: throughId }).where(eq(conversations.id, conversationId));
    },

    async recordCall(call) {
      const [row] = await hot.recordCall.execute({
        inboxId: call.inboxId ?? null,
        messageId: call.messageId ?? null,
        parentId: call.parentId ?? null,
        userKey: call.userKey ?? null,
        purpose: call.purpose,
        mode: call.mode ?? null,
        provider: call.provider,
        model: call.model,
        startedAt: call.startedAt,
        latencyMs: call.latencyMs ?? null,
        firstTokenMs: call.firstTokenMs ?? null,
        tokensIn: call.tokensIn ?? null,
        tokensOut: call.tokensOut ?? null,
        costUsd: call.costUsd ?? null,
        ok: call.ok,
        error: cleanOrNull(call.error),
        reasoning: cleanOrNull(call.reasoning),
        tools: call.tools === undefined ? null : JSON.stringify(cleanDeep(call.tools)),
      });
      return row!.id;
    },

    async updateCall(id, patch) {
      // The patch is the call's final state: an error it does not name is cleared.
      const reasoning = patch.reasoning === undefined ? {} : { reasoning: cleanOrNull(patch.reasoning) };
      const tools = patch.tools === undefined ? {} : { tools: cleanDeep(patch.tools) };
      await db
        .update(modelCalls)
        .set({ ...patch, ...reasoning, ...tools, error: cleanOrNull(patch.error) })
        .where(eq(modelCalls.id, id));
    },

    async setDefaultMode(user, mode) {
      await db.update(users).set({ defaultMode: mode }).where(eq(users.key, user));
    },

    async forgetUser(user) {
      const forgotten = await db.transaction(async (tx) => {
        const owned = tx.select({ id: conversations.id }).from(conversations).where(eq(conversations.userKey, user));
        const deleted = await tx
          .delete(messages)
          .where(inArray(messages.conversationId, owned))
          .returning({ id: messages.id, media: messages.media });
        // Their images, unless another message (someone else sent the same picture) still refers to them.
        const images = [...new Set(deleted.flatMap((m) => m.media))];
        if (images.length > 0) {
          await tx
            .delete(media)
            .where(
              and(
                inArray(media.sha256, images),
                sql`not exists (select 1 from ${messages} where ${messages.media} @> jsonb_build_array(${media.sha256}))`,
              ),
            );
        }
        await tx.delete(pairingRequests).where(eq(pairingRequests.userKey, user));
        await tx.delete(modelCalls).where(eq(modelCalls.userKey, user));
        await tx.delete(conversations).where(eq(conversations.userKey, user));
        // Inbox rows keep their ids (they deduplicate redeliveries) but lose their content.
        await tx
          .update(inbox)
          .set({ payload: sql`jsonb_build_object('forgotten', true)` })
          .where(and(eq(inbox.userKey, user), inArray(inbox.state, ["done", "failed", "ignored"])));
        await tx.delete(users).where(eq(users.key, user));
        return { messages: deleted.length };
      });
      history?.forgetUser(user);
      return forgotten;
    },
  };
}

const cleanOrNull = (text: string | null | undefined): string | null => (text == null ? null : cleanText(text));
