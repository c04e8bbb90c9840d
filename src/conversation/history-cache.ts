import type { ConversationRow, Turn } from "./store.ts";

/**
 * The recent turns of the conversations this process answered lately, so that a message of a long conversation reads
 * from the database only the turns added since its previous message (one or two rows), not a page of up to 500.
 *
 * An entry holds the newest `limit` turns of a conversation after its summary, read at one history epoch
 * (conversations.history_epoch, read fresh with the conversation for every message). Within an epoch an entry is
 * only ever extended with newer turns, and that is correct because, within an epoch:
 * - no turn of the conversation is deleted or changed: every statement that does raises the epoch (the triggers in
 *   migrations/0004_history_epoch_triggers.sql), in this process or any other;
 * - the summary only moves forward (saveSummary folds the oldest turns; retention, which resets it, deletes turns and
 *   so raises the epoch), so the turns it now covers are dropped from the cached ones. An entry read after a later
 *   summary than the caller's is not used, should that assumption ever break;
 * - a conversation's turns are inserted one at a time in id order: the inbox hands out one row of a chat at a time
 *   (src/inbox/inbox.ts) and each turn is committed before the next is written, so the turns newer than the newest
 *   cached id are everything added since, whichever process added them.
 * Conversation ids are never reused, so the entry of a conversation deleted by another process (its /forget) is never
 * served again; it ages out. This process's forgetUser drops that user's entries at once.
 *
 * Bounded by an estimate of the memory it holds (least recently used entries go first) and by idleness (an entry
 * unused for 15 minutes is dropped, checked whenever the cache is used: no timer keeps the process alive). Callers get
 * copies of the arrays held, and the turns in them are frozen: a caller cannot change what the next message reads.
 */

export const HISTORY_CACHE_MB_DEFAULT = 32;
const IDLE_MS = 15 * 60_000;
/** Estimated bytes of a turn besides its strings (the object, its fields, the media array) and of an entry. */
const TURN_OVERHEAD_BYTES = 120;
const ENTRY_OVERHEAD_BYTES = 200;

export type HistoryConversation = Pick<ConversationRow, "id" | "userKey" | "chatKey" | "summaryThroughId" | "historyEpoch">;

export interface HistoryCache {
  /**
   * The newest `limit` turns of the conversation after its summary, newest first, in an array of the caller's own.
   * `read(afterId)` is the query: the newest `limit` turns with an id above `afterId`, newest first.
   */
  recent(conversation: HistoryConversation, limit: number, read: (afterId: number) => Promise<Turn[]>): Promise<Turn[]>;
  /**
   * What the cache holds for the open conversation of `userKey` in `chatKey`, if it would extend it, so that the
   * query that reads the conversation can read only the newer turns with it (store.openConversationWithTurns).
   */
  hint(userKey: string, chatKey: string, limit: number): { conversationId: number; epoch: number; newestId: number } | undefined;
  /** Drops this person's entries. */
  forgetUser(userKey: string): void;
}

interface Held {
  /** Newest first; never handed out (callers get copies), and its turns are frozen. */
  turns: Turn[];
  bytes: number;
}

interface Entry extends Held {
  userKey: string;
  chatKey: string;
  epoch: number;
  limit: number;
  /** The summary the turns were read after. */
  afterId: number;
  usedAt: number;
}

export function createHistoryCache(options: { maxBytes: number; idleMs?: number; now?: () => number }): HistoryCache {
  const { maxBytes } = options;
  const idleMs = options.idleMs ?? IDLE_MS;
  const now = options.now ?? Date.now;
  // In order of use, least recent first: taken out on every use and put back.
  const entries = new Map<number, Entry>();
  /** The conversation held for each person and place (the open one, as far as this process has seen). */
  const byPlace = new Map<string, number>();
  const place = (userKey: string, chatKey: string) => `${userKey}\n${chatKey}`;
  let totalBytes = 0;

  const remove = (id: number, entry: Entry) => {
    entries.delete(id);
    totalBytes -= entry.bytes;
    const key = place(entry.userKey, entry.chatKey);
    if (byPlace.get(key) === id) byPlace.delete(key);
  };

  /** Drops idle entries and, while over the bound, the least recently used: both are at the front of the map. */
  const evict = (at: number) => {
    for (const [id, entry] of entries) {
      if (totalBytes <= maxBytes && at - entry.usedAt < idleMs) break;
      remove(id, entry);
    }
  };

  /** Takes the conversation's entry out, returning it if it may be extended. */
  const take = (conversation: HistoryConversation, limit: number, afterId: number, at: number): Entry | undefined => {
    const entry = entries.get(conversation.id);
    if (!entry) return undefined;
    remove(conversation.id, entry);
    const fresh = at - entry.usedAt < idleMs && entry.epoch === conversation.historyEpoch;
    return fresh && entry.limit === limit && entry.afterId <= afterId ? entry : undefined;
  };

  return {
    async recent(conversation, limit, read) {
      const afterId = conversation.summaryThroughId ?? 0;
      const entry = take(conversation, limit, afterId, now());
      const held = entry
        ? extend(entry, await read(Math.max(entry.turns[0]?.id ?? 0, afterId)), afterId, limit)
        : hold(await read(afterId));
      const at = now();
      if (held.bytes <= maxBytes) {
        // Another call for the same conversation may have stored its own result meanwhile: either is correct.
        const previous = entries.get(conversation.id);
        if (previous) remove(conversation.id, previous);
        const { userKey, chatKey } = conversation;
        entries.set(conversation.id, { ...held, userKey, chatKey, epoch: conversation.historyEpoch, limit, afterId, usedAt: at });
        byPlace.set(place(userKey, chatKey), conversation.id);
        totalBytes += held.bytes;
      }
      evict(at);
      return held.turns.slice();
    },

    hint(userKey, chatKey, limit) {
      const conversationId = byPlace.get(place(userKey, chatKey));
      const entry = conversationId === undefined ? undefined : entries.get(conversationId);
      if (!entry || entry.limit !== limit || now() - entry.usedAt >= idleMs) return undefined;
      return { conversationId: conversationId!, epoch: entry.epoch, newestId: entry.turns[0]?.id ?? 0 };
    },

    forgetUser(userKey) {
      for (const [id, entry] of entries) if (entry.userKey === userKey) remove(id, entry);
    },
  };
}

/** A page read whole. */
function hold(turns: Turn[]): Held {
  let bytes = ENTRY_OVERHEAD_BYTES;
  for (const turn of turns) bytes += turnBytes(freeze(turn));
  return { turns, bytes };
}

/**
 * The held turns with the `added` ones (newer, newest first) in front, those the summary now covers dropped, the newest
 * `limit` kept. The cost is that of the turns added and dropped, not of those held.
 */
function extend(held: Held, added: Turn[], afterId: number, limit: number): Held {
  if (added.length >= limit) return hold(added);
  let keep = held.turns.length;
  while (keep > 0 && held.turns[keep - 1]!.id <= afterId) keep--;
  keep = Math.min(keep, limit - added.length);
  if (added.length === 0 && keep === held.turns.length) return held;
  let bytes = held.bytes;
  for (const turn of added) bytes += turnBytes(freeze(turn));
  for (let i = keep; i < held.turns.length; i++) bytes -= turnBytes(held.turns[i]!);
  return { turns: added.concat(held.turns.slice(0, keep)), bytes };
}

function freeze(turn: Turn): Turn {
  Object.freeze(turn.media);
  return Object.freeze(turn);
}

/** JavaScript strings take about two bytes a character. */
function turnBytes(turn: Turn): number {
  return TURN_OVERHEAD_BYTES + 2 * turn.text.length + turn.media.reduce((sum, id) => sum + 40 + 2 * id.length, 0);
}
