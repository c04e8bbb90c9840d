import { randomBytes } from "node:crypto";
import type { ChatKey } from "../../src/core/types.ts";

/**
 * Fans the adapter's output out to the Server-Sent Events connections of each chat.
 *
 * Messages, edits and files are kept in a short per-chat log (the last `maxEvents`) with SSE ids, so a page that was
 * reloading when a reply finished still gets it: a connection with a `Last-Event-ID` (header, or the page's stored
 * id as a query parameter) receives what came after that id, a connection without one receives what no connection
 * has seen yet. Drafts and typing are live only. A chat with no connection that was idle longer than `idleMs` is
 * forgotten, and at most `maxChats` chats are remembered.
 */

export type WebEvent =
  | { type: "message"; data: { id: string; text: string; replyTo?: string } }
  | { type: "edit"; data: { id: string; text: string } }
  /** A file behind a one-time link: the page builds the link from `token` under its own base path. */
  | { type: "file"; data: { id: string; name: string; mimeType: string; size: number; token: string; caption?: string; replyTo?: string } }
  | { type: "draft"; data: { draftId: number; text: string } }
  | { type: "typing"; data: Record<string, never> };

export type LoggedEvent = Extract<WebEvent, { type: "message" | "edit" | "file" }>;

/** The part of an HTTP response the hub writes to. */
export interface EventSink {
  write(chunk: string): void;
  end(): void;
}

export interface EventHubOptions {
  now: () => number;
  maxEvents?: number;
  idleMs?: number;
  maxChats?: number;
}

interface Entry {
  seq: number;
  chunk: string;
  delivered: boolean;
}

interface ChatState {
  sinks: Set<EventSink>;
  log: Entry[];
  lastActivity: number;
}

export interface EventHub {
  /** Delivers a message, edit or file to open connections and keeps it for connections to come. */
  publish(chat: ChatKey, event: LoggedEvent): void;
  /** Delivers a draft or typing event to open connections only. */
  push(chat: ChatKey, event: Exclude<WebEvent, LoggedEvent>): void;
  /** Registers a connection, replays what it missed, and returns the function that unregisters it. */
  connect(chat: ChatKey, sink: EventSink, lastEventId?: string): () => void;
  /** Writes an SSE comment to every connection (keeps proxies and the browser from timing out) and forgets idle chats. */
  heartbeat(): void;
  /** Ends every connection and forgets everything. */
  closeAll(): void;
  connectionCount(): number;
}

export function createEventHub(options: EventHubOptions): EventHub {
  const { now, maxEvents = 50, idleMs = 60 * 60 * 1000, maxChats = 1000 } = options;
  // The id of an event is `<epoch>-<seq>`: after a restart the page's stored id names another epoch and is ignored.
  const epoch = randomBytes(4).toString("hex");
  let seq = 0;
  const chats = new Map<ChatKey, ChatState>();

  function state(chat: ChatKey): ChatState {
    let current = chats.get(chat);
    if (current) {
      // Re-insert so the map's order is least recently active first.
      chats.delete(chat);
    } else {
      forgetIdle();
      if (chats.size >= maxChats) evictOldest();
      current = { sinks: new Set(), log: [], lastActivity: now() };
    }
    current.lastActivity = now();
    chats.set(chat, current);
    return current;
  }

  function forgetIdle(): void {
    const cutoff = now() - idleMs;
    for (const [chat, s] of chats) {
      if (s.sinks.size === 0 && s.lastActivity < cutoff) chats.delete(chat);
    }
  }

  function evictOldest(): void {
    for (const [chat, s] of chats) {
      if (s.sinks.size === 0) {
        chats.delete(chat);
        return;
      }
    }
  }

  function writeAll(s: ChatState, chunk: string): boolean {
    for (const sink of s.sinks) sink.write(chunk);
    return s.sinks.size > 0;
  }

  return {
    publish(chat, event) {
      const s = state(chat);
      seq += 1;
      const chunk = formatSseEvent(event.type, event.data, `${epoch}-${seq}`);
      const delivered = writeAll(s, chunk);
      s.log.push({ seq, chunk, delivered });
      if (s.log.length > maxEvents) s.log.splice(0, s.log.length - maxEvents);
    },

    push(chat, event) {
      const s = chats.get(chat);
      if (s) writeAll(s, formatSseEvent(event.type, event.data));
    },

    connect(chat, sink, lastEventId) {
      const s = state(chat);
      const after = parseEventId(lastEventId, epoch);
      for (const entry of s.log) {
        if (after === undefined ? !entry.delivered : entry.seq > after) {
          sink.write(entry.chunk);
          entry.delivered = true;
        }
      }
      s.sinks.add(sink);
      return () => {
        s.sinks.delete(sink);
        s.lastActivity = now();
      };
    },

    heartbeat() {
      for (const s of chats.values()) writeAll(s, ": ping\n\n");
      forgetIdle();
    },

    closeAll() {
      for (const s of chats.values()) {
        for (const sink of s.sinks) sink.end();
      }
      chats.clear();
    },

    connectionCount() {
      let count = 0;
      for (const s of chats.values()) count += s.sinks.size;
      return count;
    },
  };
}

/** One SSE event. The data is JSON on one line (JSON.stringify escapes line breaks), so one `data:` field suffices. */
export function formatSseEvent(type: string, data: unknown, id?: string): string {
  return `${id === undefined ? "" : `id: ${id}\n`}event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** The sequence number in an event id of this epoch, or undefined for a missing, malformed or older id. */
export function parseEventId(value: string | undefined, epoch: string): number | undefined {
  const match = /^([0-9a-f]+)-(\d{1,15})$/.exec(value?.trim() ?? "");
  if (!match || match[1] !== epoch) return undefined;
  return Number(match[2]);
}
