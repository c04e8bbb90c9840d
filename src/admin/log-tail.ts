import type { Request, Response } from "express";
import type { LogEntry, LogLevelName, LogSink } from "../observability/log-sink.ts";
import { levelsFrom } from "./queries-logs.ts";

/**
 * The live tail: server-sent events of the log sink's entries that match the page's filters. A new connection first
 * gets the recent entries (or, when the browser reconnects with Last-Event-ID, the ones it missed), then each new
 * entry as it is written. A client that cannot keep up is disconnected rather than buffered without bound.
 */

export interface TailFilters {
  level?: LogLevelName;
  source?: string;
  q?: string;
}

const BACKLOG = 200;
const HEARTBEAT_MS = 15_000;
const MAX_BUFFERED_BYTES = 1024 * 1024;
const MAX_DATA_CHARS = 2_000;

export function matches(entry: LogEntry, filters: TailFilters): boolean {
  if (filters.level && !levelsFrom(filters.level).includes(entry.level)) return false;
  if (filters.source && entry.source !== filters.source) return false;
  if (filters.q) {
    const needle = filters.q.toLowerCase();
    const hay = `${entry.message} ${entry.data ? JSON.stringify(entry.data) : ""}`.toLowerCase();
    if (!hay.includes(needle)) return false;
  }
  return true;
}

export function createLogTail(sink: LogSink, maxConnections = 20) {
  let open = 0;
  /** `signedIn` is asked before every event: a stream ends once its session is signed out or expired. */
  return (req: Request, res: Response, filters: TailFilters, signedIn: () => boolean): void => {
    if (open >= maxConnections) {
      res.status(503).json({ error: "Too many live tails are open." });
      return;
    }
    open++;
    res.status(200).set({
      "Content-Type": "text/event-stream; charset=utf-8",
      "Cache-Control": "no-store, no-transform",
      "X-Accel-Buffering": "no",
    });
    res.flushHeaders();
    res.write("retry: 3000\n\n");

    let closed = false;
    const send = (entry: LogEntry) => {
      if (closed || !matches(entry, filters)) return;
      if (!signedIn() || res.writableLength > MAX_BUFFERED_BYTES) {
        res.end();
        return;
      }
      res.write(`id: ${entry.seq}\nevent: log\ndata: ${JSON.stringify(toEvent(entry))}\n\n`);
    };

    const lastId = Number(req.get("Last-Event-ID"));
    const recent = sink.recent();
    const backlog = Number.isInteger(lastId) && lastId > 0 ? recent.filter((e) => e.seq > lastId) : recent;
    for (const entry of backlog.filter((e) => matches(e, filters)).slice(-BACKLOG)) send(entry);
    res.write("event: ready\ndata: {}\n\n");

    const unsubscribe = sink.subscribe(send);
    const heartbeat = setInterval(() => (signedIn() ? res.write(": ping\n\n") : res.end()), HEARTBEAT_MS);
    heartbeat.unref();
    res.on("close", () => {
      closed = true;
      open--;
      clearInterval(heartbeat);
      unsubscribe();
    });
  };
}

function toEvent(entry: LogEntry) {
  const data = entry.data ? JSON.stringify(entry.data) : "";
  return {
    seq: entry.seq,
    time: entry.time.toISOString(),
    level: entry.level,
    source: entry.source,
    message: entry.message,
    data: data.length > MAX_DATA_CHARS ? `${data.slice(0, MAX_DATA_CHARS)}…` : data,
  };
}
