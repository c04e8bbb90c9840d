import { and, asc, desc, eq, gt, gte, inArray, lt, lte, sql, type SQL } from "drizzle-orm";
import type { ChannelName } from "../core/types.ts";
import { rowsOf, type Db } from "../db/client.ts";
import { conversations, inbox, media, messages, modelCalls, users } from "../db/schema.ts";
import { dateFromMs, num } from "./format.ts";
import { containsPattern } from "./params.ts";
import { at, epochMs } from "./sql-params.ts";

/**
 * Conversations for the admin pages: a filtered list in order of last activity, paged by a keyset cursor, and one
 * conversation's turns a page at a time with the model calls and media that belong to the turns on that page.
 */

export const CONVERSATION_PAGE = 50;
export const TURN_PAGE = 50;

export interface ConversationFilters {
  channel?: ChannelName;
  user?: string;
  mode?: string;
  from?: Date;
  /** Inclusive: the whole day. */
  to?: Date;
  hasError?: boolean;
  q?: string;
}

export interface ConversationListRow {
  id: number;
  userKey: string;
  chatKey: string;
  displayName: string | null;
  userStatus: string | null;
  startedAt: Date | null;
  ended: boolean;
  lastAt: Date | null;
  turns: number;
  hasError: boolean;
}

export interface Page<T> {
  rows: T[];
  /** Cursor of the next (older) page, when there is one. */
  next?: string;
}

const DAY = 24 * 60 * 60 * 1000;

/** A conversation had an error when one of its model calls failed or one of its messages was given up on. */
const HAS_ERROR = sql`(
  exists (select 1 from messages em join model_calls emc on emc.inbox_id = em.inbox_id
          where em.conversation_id = c.id and em.role = 'user' and not emc.ok)
  or exists (select 1 from messages em join inbox ei on ei.id = em.inbox_id
             where em.conversation_id = c.id and em.role = 'user' and ei.state = 'failed'))`;

export async function listConversations(
  db: Db,
  filters: ConversationFilters,
  before: [number, number] | undefined,
): Promise<Page<ConversationListRow>> {
  const where: SQL[] = [];
  if (filters.channel) where.push(sql`c.user_key like ${`${filters.channel}:%`}`);
  if (filters.user) where.push(sql`c.user_key = ${filters.user}`);
  if (filters.mode) where.push(sql`exists (select 1 from messages mm where mm.conversation_id = c.id and mm.mode = ${filters.mode})`);
  if (filters.from || filters.to) {
    const range: SQL[] = [sql`dm.conversation_id = c.id`];
    if (filters.from) range.push(sql`dm.created_at >= ${at(filters.from)}`);
    if (filters.to) range.push(sql`dm.created_at < ${at(new Date(filters.to.getTime() + DAY))}`);
    where.push(sql`exists (select 1 from messages dm where ${sql.join(range, sql` and `)})`);
  }
  if (filters.hasError) where.push(HAS_ERROR);
  if (filters.q) {
    const pattern = containsPattern(filters.q);
    where.push(sql`(c.user_key ilike ${pattern} escape '\\' or c.chat_key ilike ${pattern} escape '\\'
      or u.display_name ilike ${pattern} escape '\\'
      or exists (select 1 from messages qm where qm.conversation_id = c.id and qm.text ilike ${pattern} escape '\\'))`);
  }
  if (before) where.push(sql`(coalesce(l.id, 0), c.id) < (${before[0]}, ${before[1]})`);

  const result = await db.execute(sql`
    select c.id, c.user_key, c.chat_key, u.display_name, u.status,
      ${epochMs(sql`c.started_at`)} as started_ms, c.ended_at is not null as ended,
      coalesce(l.id, 0)::float8 as last_id, ${epochMs(sql`l.created_at`)} as last_ms,
      (select count(*) from messages tm where tm.conversation_id = c.id)::int as turns,
      ${HAS_ERROR} as has_error
    from conversations c
    left join users u on u.key = c.user_key
    left join lateral (select lm.id, lm.created_at from messages lm where lm.conversation_id = c.id order by lm.id desc limit 1) l on true
    ${where.length > 0 ? sql`where ${sql.join(where, sql` and `)}` : sql``}
    order by coalesce(l.id, 0) desc, c.id desc
    limit ${CONVERSATION_PAGE + 1}`);
  const raw = rowsOf<Record<string, unknown>>(result);
  const rows = raw.slice(0, CONVERSATION_PAGE).map((r) => ({
    id: num(r.id),
    userKey: String(r.user_key),
    chatKey: String(r.chat_key),
    displayName: typeof r.display_name === "string" ? r.display_name : null,
    userStatus: typeof r.status === "string" ? r.status : null,
    startedAt: dateFromMs(r.started_ms),
    ended: r.ended === true,
    lastAt: dateFromMs(r.last_ms),
    turns: num(r.turns),
    hasError: r.has_error === true,
    lastId: num(r.last_id),
  }));
  const last = rows[rows.length - 1];
  return { rows, next: raw.length > CONVERSATION_PAGE && last ? `${last.lastId}.${last.id}` : undefined };
}

export type ModelCallRow = typeof modelCalls.$inferSelect;
export type MessageRow = typeof messages.$inferSelect;

export interface MediaInfo {
  sha256: string;
  mimeType: string;
  width: number | null;
  height: number | null;
  bytes: number;
}

export interface InboxInfo {
  state: string;
  attempts: number;
  error: string | null;
}

export interface ConversationDetail {
  conversation: typeof conversations.$inferSelect;
  user: typeof users.$inferSelect | undefined;
  turns: MessageRow[];
  calls: ModelCallRow[];
  media: Map<string, MediaInfo>;
  inbox: Map<number, InboxInfo>;
  /** Cursors for the neighbouring pages of turns. */
  older?: number;
  newer?: number;
}

/**
 * One conversation and a page of its turns: the newest page by default, or the page before `before` / after `after`.
 */
export async function loadConversation(
  db: Db,
  id: number,
  page: { before?: number; after?: number },
): Promise<ConversationDetail | undefined> {
  const [conversation] = await db.select().from(conversations).where(eq(conversations.id, id)).limit(1);
  if (!conversation) return undefined;
  const [user] = await db.select().from(users).where(eq(users.key, conversation.userKey)).limit(1);

  const mine = eq(messages.conversationId, id);
  let turns: MessageRow[];
  let more: boolean;
  if (page.after !== undefined) {
    turns = await db.select().from(messages).where(and(mine, gt(messages.id, page.after))).orderBy(asc(messages.id)).limit(TURN_PAGE + 1);
    more = turns.length > TURN_PAGE;
    turns = turns.slice(0, TURN_PAGE);
  } else {
    const bound = page.before !== undefined ? and(mine, lt(messages.id, page.before)) : mine;
    turns = await db.select().from(messages).where(bound).orderBy(desc(messages.id)).limit(TURN_PAGE + 1);
    more = turns.length > TURN_PAGE;
    turns = turns.slice(0, TURN_PAGE).reverse();
  }
  const first = turns[0];
  const last = turns[turns.length - 1];
  const [hasOlder, hasNewer] = first && last
    ? await Promise.all([
        page.before === undefined && page.after === undefined ? Promise.resolve(more) : exists(db, and(mine, lt(messages.id, first.id))!),
        page.after !== undefined ? Promise.resolve(more) : exists(db, and(mine, gt(messages.id, last.id))!),
      ])
    : [false, false];

  const [calls, mediaInfo, inboxInfo] = await Promise.all([callsFor(db, turns), mediaFor(db, turns), inboxFor(db, turns)]);
  return {
    conversation,
    user,
    turns,
    calls,
    media: mediaInfo,
    inbox: inboxInfo,
    older: hasOlder && first ? first.id : undefined,
    newer: hasNewer && last ? last.id : undefined,
  };
}

async function exists(db: Db, where: SQL): Promise<boolean> {
  const rows = await db.select({ id: messages.id }).from(messages).where(where).limit(1);
  return rows.length > 0;
}

const MAX_CALLS = 1_000;
const MAX_DEPTH = 4;

/**
 * The model calls of these turns: by the user message's inbox row (indexed), by message id within the turns' time
 * span (the started_at index bounds it), then their descendants by parent id, a level at a time.
 */
async function callsFor(db: Db, turns: MessageRow[]): Promise<ModelCallRow[]> {
  if (turns.length === 0) return [];
  const inboxIds = [...new Set(turns.map((t) => t.inboxId).filter((v): v is number => v !== null))];
  const messageIds = turns.map((t) => t.id);
  const from = new Date(Math.min(...turns.map((t) => t.createdAt.getTime())) - DAY);
  const to = new Date(Math.max(...turns.map((t) => t.createdAt.getTime())) + DAY);
  const window = and(gte(modelCalls.startedAt, from), lte(modelCalls.startedAt, to))!;

  const found = new Map<number, ModelCallRow>();
  const add = (rows: ModelCallRow[]) => rows.forEach((r) => found.set(r.id, r));
  add(inboxIds.length > 0 ? await db.select().from(modelCalls).where(inArray(modelCalls.inboxId, inboxIds)).orderBy(asc(modelCalls.id)).limit(MAX_CALLS) : []);
  add(await db.select().from(modelCalls).where(and(window, inArray(modelCalls.messageId, messageIds))).orderBy(asc(modelCalls.id)).limit(MAX_CALLS));

  let frontier = [...found.keys()];
  for (let depth = 0; depth < MAX_DEPTH && frontier.length > 0 && found.size < MAX_CALLS; depth++) {
    const children = await db
      .select()
      .from(modelCalls)
      .where(and(window, inArray(modelCalls.parentId, frontier)))
      .orderBy(asc(modelCalls.id))
      .limit(MAX_CALLS);
    frontier = children.filter((c) => !found.has(c.id)).map((c) => c.id);
    add(children);
  }
  return [...found.values()].sort((a, b) => a.id - b.id);
}

async function mediaFor(db: Db, turns: MessageRow[]): Promise<Map<string, MediaInfo>> {
  const ids = [...new Set(turns.flatMap((t) => (Array.isArray(t.media) ? t.media : [])))].filter((id) => /^[0-9a-f]{64}$/.test(id));
  if (ids.length === 0) return new Map();
  const rows = await db
    .select({ sha256: media.sha256, mimeType: media.mimeType, width: media.width, height: media.height, bytes: media.bytes })
    .from(media)
    .where(inArray(media.sha256, ids));
  return new Map(rows.map((r) => [r.sha256, r]));
}

async function inboxFor(db: Db, turns: MessageRow[]): Promise<Map<number, InboxInfo>> {
  const ids = [...new Set(turns.map((t) => t.inboxId).filter((v): v is number => v !== null))];
  if (ids.length === 0) return new Map();
  const rows = await db
    .select({ id: inbox.id, state: inbox.state, attempts: inbox.attempts, error: inbox.error })
    .from(inbox)
    .where(inArray(inbox.id, ids));
  return new Map(rows.map((r) => [r.id, { state: r.state, attempts: r.attempts, error: r.error }]));
}
