import { sql } from "drizzle-orm";
import {
  bigint,
  bigserial,
  boolean,
  customType,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
} from "drizzle-orm/pg-core";

/**
 * One schema for PostgreSQL and PGlite. Migrations are generated from this file by drizzle-kit into migrations/
 * (`npm run db:generate`) and never edited by hand.
 */

const bytea = customType<{ data: Uint8Array; driverData: Uint8Array }>({ dataType: () => "bytea" });
const timestamps = {
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
};

export const users = pgTable("users", {
  key: text("key").primaryKey(),
  channel: text("channel").notNull(),
  displayName: text("display_name"),
  status: text("status", { enum: ["pending", "allowed", "blocked"] }).notNull().default("pending"),
  defaultMode: text("default_mode", { enum: ["instant", "thinking", "contemplating"] }).notNull().default("instant"),
  ...timestamps,
  lastSeenAt: timestamp("last_seen_at", { withTimezone: true }).notNull().defaultNow(),
  /** This user's own quotas; null means the configured default (QUOTA_*), 0 means no limit. */
  quotaMessagesPerMinute: integer("quota_messages_per_minute"),
  quotaContemplationsPerHour: integer("quota_contemplations_per_hour"),
  quotaTokensPerDay: integer("quota_tokens_per_day"),
  quotaCostPerDayUsd: doublePrecision("quota_cost_per_day_usd"),
});

/**
 * People who wrote without being allowed, one row per sender: the pairing code the operator approves (8 characters,
 * valid for an hour), or none (when it was expired early for newer requests, expires_at still says when its hour
 * ends: no new code before); and when the sender was last told, so the notice goes out at most once an hour. Keyed by the immutable user key, never a display name.
 */
export const pairingRequests = pgTable(
  "pairing_requests",
  {
    userKey: text("user_key").primaryKey(),
    channel: text("channel").notNull(),
    displayName: text("display_name"),
    code: text("code").unique(),
    expiresAt: timestamp("expires_at", { withTimezone: true }),
    notifiedAt: timestamp("notified_at", { withTimezone: true }).notNull(),
    ...timestamps,
  },
  (t) => [index("pairing_requests_channel_idx").on(t.channel, t.expiresAt)],
);

export const conversations = pgTable(
  "conversations",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    userKey: text("user_key").notNull(),
    chatKey: text("chat_key").notNull(),
    startedAt: timestamp("started_at", { withTimezone: true }).notNull().defaultNow(),
    endedAt: timestamp("ended_at", { withTimezone: true }),
    /** What the turns before `summaryThroughId` said, written by a model call when the history outgrew its budget. */
    summary: text("summary"),
    summaryThroughId: bigint("summary_through_id", { mode: "number" }),
    /**
     * Raised by triggers on messages (migrations/0004_history_epoch_triggers.sql) whenever turns of this conversation
     * are deleted or their role, text, tokens or media change. A process's cache of recent turns
     * (src/conversation/history-cache.ts) serves a conversation only while its epoch is the one the cache read at.
     */
    historyEpoch: integer("history_epoch").notNull().default(0),
  },
  (t) => [
    // One open conversation per person per place: a group conversation is never a person's DM conversation.
    uniqueIndex("conversations_open_uq").on(t.userKey, t.chatKey).where(sql`${t.endedAt} is null`),
    index("conversations_user_idx").on(t.userKey),
  ],
);

export const inbox = pgTable(
  "inbox",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    channel: text("channel").notNull(),
    platformMessageId: text("platform_message_id").notNull(),
    chatKey: text("chat_key").notNull(),
    userKey: text("user_key").notNull(),
    /** The normalized InboundMessage, as JSON. */
    payload: jsonb("payload").notNull(),
    state: text("state", { enum: ["pending", "working", "done", "failed", "ignored"] }).notNull().default("pending"),
    attempts: integer("attempts").notNull().default(0),
    availableAt: timestamp("available_at", { withTimezone: true }).notNull().defaultNow(),
    leaseUntil: timestamp("lease_until", { withTimezone: true }),
    error: text("error"),
    ...timestamps,
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("inbox_channel_message_uq").on(t.channel, t.platformMessageId),
    // Quotas count a user's recent messages.
    index("inbox_user_idx").on(t.userKey, t.id),
    // Claims look for the oldest unfinished row of each chat.
    index("inbox_open_idx").on(t.chatKey, t.id).where(sql`${t.state} in ('pending', 'working')`),
    // A chat's messages are answered one at a time: at most one of its rows is being worked on. Claims keep this by
    // taking only a chat's oldest unfinished row; the index also holds it when a row is claimed as it is stored.
    uniqueIndex("inbox_one_working_per_chat_uq").on(t.chatKey).where(sql`${t.state} = 'working'`),
  ],
);

/**
 * Messages the inbox could not store because the database refused their values (see src/db/failures.ts): set aside
 * so the rest of their delivery goes on. Ids and the SQLSTATE only, never the message's content.
 */
export const inboxDeadLetters = pgTable(
  "inbox_dead_letters",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    channel: text("channel").notNull(),
    platformMessageId: text("platform_message_id").notNull(),
    /** "SQLSTATE 23514 (constraint name)". */
    reason: text("reason").notNull(),
    receivedAt: timestamp("received_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex("inbox_dead_letters_message_uq").on(t.channel, t.platformMessageId)],
);

export const messages = pgTable(
  "messages",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    conversationId: bigint("conversation_id", { mode: "number" })
      .notNull()
      .references(() => conversations.id, { onDelete: "cascade" }),
    inboxId: bigint("inbox_id", { mode: "number" }).references(() => inbox.id, { onDelete: "set null" }),
    role: text("role", { enum: ["user", "assistant"] }).notNull(),
    text: text("text").notNull(),
    /** sha256 ids of media rows that belong to this turn. */
    media: jsonb("media").$type<string[]>().notNull().default([]),
    tokens: integer("tokens").notNull(),
    mode: text("mode"),
    /** For an assistant message: when every chunk reached the platform. Null means still to be delivered. */
    deliveredAt: timestamp("delivered_at", { withTimezone: true }),
    platformMessageIds: jsonb("platform_message_ids").$type<string[]>(),
    ...timestamps,
  },
  (t) => [
    index("messages_conversation_idx").on(t.conversationId, t.id),
    // HISTORY_RETENTION_DAYS deletes by age.
    index("messages_created_idx").on(t.createdAt),
    uniqueIndex("messages_inbox_role_uq").on(t.inboxId, t.role),
  ],
);

export const media = pgTable("media", {
  sha256: text("sha256").primaryKey(),
  mimeType: text("mime_type").notNull(),
  width: integer("width"),
  height: integer("height"),
  bytes: integer("bytes").notNull(),
  data: bytea("data").notNull(),
  ...timestamps,
});

export const modelCalls = pgTable(
  "model_calls",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    inboxId: bigint("inbox_id", { mode: "number" }).references(() => inbox.id, { onDelete: "set null" }),
    messageId: bigint("message_id", { mode: "number" }).references(() => messages.id, { onDelete: "set null" }),
    parentId: bigint("parent_id", { mode: "number" }),
    userKey: text("user_key"),
    purpose: text("purpose", { enum: ["answer", "summary", "agent", "synthesis"] }).notNull(),
    mode: text("mode"),
    provider: text("provider").notNull(),
    model: text("model").notNull(),
    startedAt: timestamp("started_at", { withTimezone: true }).notNull(),
    latencyMs: integer("latency_ms"),
    firstTokenMs: integer("first_token_ms"),
    tokensIn: integer("tokens_in"),
    tokensOut: integer("tokens_out"),
    costUsd: doublePrecision("cost_usd"),
    ok: boolean("ok").notNull(),
    error: text("error"),
    /** What a reasoning model thought (its reasoning text or summary): for admins, never sent to the user. */
    reasoning: text("reasoning"),
    /** The tool calls the model made during this call. */
    tools: jsonb("tools").$type<Array<{ name: string; input: unknown; outputChars?: number; error?: string }>>(),
  },
  (t) => [
    index("model_calls_started_idx").on(t.startedAt),
    // Quotas and /usage sum a user's calls over a window.
    index("model_calls_user_idx").on(t.userKey, t.startedAt),
    index("model_calls_inbox_idx").on(t.inboxId),
    // The admin page walks a contemplation's tree: its sub-agent and synthesis calls point to their parent.
    index("model_calls_parent_idx").on(t.parentId),
  ],
);

export const logs = pgTable(
  "logs",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    time: timestamp("time", { withTimezone: true }).notNull().defaultNow(),
    level: text("level").notNull(),
    source: text("source"),
    message: text("message").notNull(),
    data: jsonb("data"),
  },
  (t) => [index("logs_time_idx").on(t.time)],
);
