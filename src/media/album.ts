import type { InboundMessage } from "../core/types.ts";
import { ALBUM_WINDOW_MS_DEFAULT } from "./limits.ts";

/**
 * Albums: Telegram sends a media group (several photos with one caption) as one update per photo, sharing a
 * `media_group_id`. They should be one turn, so the parts are collected until none has arrived for `windowMs`
 * (or the album is full, or it has waited `maxWaitMs` in all), then merged into one message.
 *
 * `decideAlbum` and `mergeAlbum` are pure. They serve both places grouping can happen: in a worker, over parts
 * already stored in the inbox (the durable way, needed for webhooks), or in an adapter before storing, through
 * `createAlbumCoalescer` below (fine for long polling, which receives an album in one batch).
 */

export interface AlbumOptions {
  /** Quiet time after the newest part before the album is complete. */
  windowMs: number;
  /** Parts that make an album complete without waiting (Telegram allows 10). */
  maxItems: number;
  /** Longest time since the first part; a trickle of parts never holds an album longer. */
  maxWaitMs: number;
}

export const ALBUM_DEFAULTS: AlbumOptions = { windowMs: ALBUM_WINDOW_MS_DEFAULT, maxItems: 10, maxWaitMs: 10_000 };

export type AlbumDecision = { kind: "ready" } | { kind: "wait"; untilMs: number };

/** Given when each part arrived (ms, this process's clock, not the platform's whole-second dates), wait or go. */
export function decideAlbum(arrivalsMs: readonly number[], nowMs: number, opts: AlbumOptions = ALBUM_DEFAULTS): AlbumDecision {
  if (arrivalsMs.length === 0 || arrivalsMs.length >= opts.maxItems) return { kind: "ready" };
  const untilMs = Math.min(Math.max(...arrivalsMs) + opts.windowMs, Math.min(...arrivalsMs) + opts.maxWaitMs);
  return nowMs >= untilMs ? { kind: "ready" } : { kind: "wait", untilMs };
}

/**
 * One message from the parts of an album: the first part's ids, every part's attachments in order, the captions
 * (Telegram puts the caption on one part) joined, and addressed to the bot when any part was.
 */
export function mergeAlbum(parts: readonly InboundMessage[]): InboundMessage {
  const ordered = [...parts].sort((a, b) => a.receivedAt.getTime() - b.receivedAt.getTime());
  const first = ordered[0];
  if (!first) throw new Error("mergeAlbum needs at least one part");
  return {
    ...first,
    text: ordered.map((p) => p.text.trim()).filter(Boolean).join("\n"),
    attachments: ordered.flatMap((p) => p.attachments),
    mentionsBot: ordered.some((p) => p.mentionsBot),
    replyToBot: ordered.some((p) => p.replyToBot),
  };
}

export interface AlbumTimers {
  now(): number;
  setTimeout(run: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface AlbumCoalescer<T> {
  /**
   * Adds one part. Resolves once the album it belongs to was emitted and `emit` resolved (so an adapter may then
   * acknowledge the platform), rejects with emit's error.
   */
  add(groupKey: string, item: T): Promise<void>;
  /** Emits every open album now (on shutdown). */
  flush(): Promise<void>;
  /** Albums still collecting. */
  readonly open: number;
}

interface OpenAlbum<T> {
  items: T[];
  arrivals: number[];
  waiters: Array<{ resolve: () => void; reject: (error: unknown) => void }>;
  timer: unknown;
}

const realTimers: AlbumTimers = {
  now: () => Date.now(),
  setTimeout: (run, ms) => setTimeout(run, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export function createAlbumCoalescer<T>(deps: {
  merge: (items: T[]) => T;
  emit: (item: T) => Promise<void>;
  options?: Partial<AlbumOptions>;
  timers?: AlbumTimers;
}): AlbumCoalescer<T> {
  const options = { ...ALBUM_DEFAULTS, ...deps.options };
  const timers = deps.timers ?? realTimers;
  const albums = new Map<string, OpenAlbum<T>>();

  async function emit(key: string): Promise<void> {
    const album = albums.get(key);
    if (!album) return;
    albums.delete(key);
    timers.clearTimeout(album.timer);
    try {
      await deps.emit(deps.merge(album.items));
      album.waiters.forEach((w) => w.resolve());
    } catch (error) {
      album.waiters.forEach((w) => w.reject(error));
    }
  }

  function schedule(key: string): void {
    const album = albums.get(key);
    if (!album) return;
    timers.clearTimeout(album.timer);
    const decision = decideAlbum(album.arrivals, timers.now(), options);
    if (decision.kind === "ready") return void emit(key);
    album.timer = timers.setTimeout(() => schedule(key), decision.untilMs - timers.now());
  }

  return {
    add(groupKey, item) {
      let album = albums.get(groupKey);
      if (!album) {
        album = { items: [], arrivals: [], waiters: [], timer: undefined };
        albums.set(groupKey, album);
      }
      album.items.push(item);
      album.arrivals.push(timers.now());
      const done = new Promise<void>((resolve, reject) => album.waiters.push({ resolve, reject }));
      schedule(groupKey);
      return done;
    },
    async flush() {
      await Promise.all([...albums.keys()].map((key) => emit(key)));
    },
    get open() {
      return albums.size;
    },
  };
}
