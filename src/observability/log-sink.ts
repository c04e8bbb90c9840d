import { lt, sql } from "drizzle-orm";
import { errorMessage } from "../core/errors.ts";
import { databaseError, type Db } from "../db/client.ts";
import { logs } from "../db/schema.ts";

/**
 * Where the logger's scrubbed JSON lines go: stdout (as before), a ring of recent entries that the admin page's live
 * tail subscribes to, and — once a database is attached — the logs table, in batches.
 *
 * The logger exists before the database (start-up problems must be logged), so the sink is created first and the
 * database attached later with `attach(db)`. Until then, and whenever the database is down, rows wait in a bounded
 * buffer; past its bound the oldest are dropped and counted, and stderr says so once per outage. Nothing here throws
 * into the logger or waits on the database in `write`.
 */

export type LogLevelName = "trace" | "debug" | "info" | "warn" | "error" | "fatal";

export const LOG_LEVELS: readonly LogLevelName[] = ["trace", "debug", "info", "warn", "error", "fatal"];

export interface LogEntry {
  /** Increases by one per line within this process; the live tail's event id. */
  seq: number;
  time: Date;
  level: LogLevelName;
  source: string | null;
  message: string;
  /** The line's other fields (err, ids, …), already scrubbed. */
  data: Record<string, unknown> | null;
}

export interface LogSinkOptions {
  /** Where each line is also written; stdout by default. */
  tee?: (line: string) => void;
  /** Said once per outage when rows are dropped, and once when writing works again; stderr by default. */
  warn?: (text: string) => void;
  /** Entries kept in memory for the live tail. */
  recentCapacity?: number;
  /** Rows waiting for the database before the oldest are dropped. */
  maxPending?: number;
  flushMs?: number;
  batchSize?: number;
}

export interface AttachOptions {
  /** Rows older than this are deleted, once soon after attaching (at most 5 s) and then every `retentionEveryMs`. */
  retentionDays: number;
  retentionEveryMs?: number;
}

export interface LogSink {
  /** The `write` hook for createLogger: never throws, never waits. */
  readonly write: (line: string) => void;
  /** Starts persisting to the logs table (and the retention job). */
  attach(db: Db, options: AttachOptions): void;
  /** Writes what is pending (briefly) and stops using the database; the ring and stdout go on. */
  detach(): Promise<void>;
  /** The newest entries, oldest first. */
  recent(): readonly LogEntry[];
  /** Calls `listener` for every new entry until the returned function is called. */
  subscribe(listener: (entry: LogEntry) => void): () => void;
  /** Rows lost because the database could not take them. */
  readonly dropped: number;
}

const PINO_LEVELS: Record<number, LogLevelName> = { 10: "trace", 20: "debug", 30: "info", 40: "warn", 50: "error", 60: "fatal" };
const MAX_MESSAGE = 4_000;
const MAX_DATA = 16_000;
const DETACH_WAIT_MS = 2_000;

export function createLogSink(options: LogSinkOptions = {}): LogSink {
  const tee = options.tee ?? ((line: string) => void process.stdout.write(line));
  const warn = options.warn ?? ((text: string) => void process.stderr.write(`${text}\n`));
  const recentCapacity = options.recentCapacity ?? 1_000;
  const maxPending = options.maxPending ?? 5_000;
  const flushMs = options.flushMs ?? 1_000;
  const batchSize = options.batchSize ?? 500;

  const ring: LogEntry[] = [];
  const listeners = new Set<(entry: LogEntry) => void>();
  let pending: LogEntry[] = [];
  let seq = 0;
  let dropped = 0;
  let outage = false;
  let db: Db | undefined;
  /** Rows are kept for the database before it is attached (start-up lines matter), not after it is detached. */
  let detached = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let flushing: Promise<void> | undefined;
  let retention: ReturnType<typeof setInterval> | undefined;
  let firstRetention: ReturnType<typeof setTimeout> | undefined;

  const drop = (count: number, why: string) => {
    dropped += count;
    if (!outage) {
      outage = true;
      warn(`log sink: ${why}; log lines are not being stored in the logs table (they still reach stdout)`);
    }
  };

  const schedule = () => {
    if (db === undefined || timer !== undefined || flushing !== undefined || pending.length === 0) return;
    timer = setTimeout(() => {
      timer = undefined;
      flushing = flush().finally(() => {
        flushing = undefined;
        schedule();
      });
    }, flushMs);
    timer.unref();
  };

  const flush = async () => {
    while (db !== undefined && pending.length > 0) {
      const batch = pending.slice(0, batchSize);
      try {
        await db.insert(logs).values(
          batch.map((e) => ({ time: e.time, level: e.level, source: e.source, message: e.message, data: e.data })),
        );
        pending = pending.slice(batch.length);
        if (outage) {
          outage = false;
          warn(`log sink: storing log lines again (${dropped} dropped so far)`);
        }
      } catch (error) {
        if (isDataError(error)) {
          // The rows themselves are refused: retrying them would block every later line.
          pending = pending.slice(batch.length);
          drop(batch.length, `the database refused a batch of log lines (${describe(error)})`);
          continue;
        }
        drop(0, `the database is not reachable (${describe(error)})`);
        return;
      }
    }
  };

  const add = (entry: LogEntry) => {
    ring.push(entry);
    if (ring.length > recentCapacity) ring.splice(0, ring.length - recentCapacity);
    for (const listener of listeners) {
      try {
        listener(entry);
      } catch {
        listeners.delete(listener);
      }
    }
    if (detached) return;
    pending.push(entry);
    if (pending.length > maxPending) {
      const excess = pending.length - maxPending;
      pending.splice(0, excess);
      drop(excess, "too many log lines are waiting for the database");
    }
    schedule();
  };

  const write = (chunk: string) => {
    try {
      tee(chunk);
    } catch {
      // stdout closed: the other destinations still work.
    }
    try {
      for (const line of chunk.split("\n")) {
        if (line.trim() !== "") add(parseLine(line, ++seq));
      }
    } catch {
      // A sink must never take the logger down.
    }
  };

  const deleteExpired = async (days: number) => {
    const target = db;
    if (target === undefined) return;
    const cutoff = sql`now() - ${`${days} days`}::interval`;
    try {
      await target.delete(logs).where(lt(logs.time, cutoff));
    } catch (error) {
      warn(`log sink: could not delete expired log lines (${describe(error)})`);
    }
  };

  return {
    write,
    get dropped() {
      return dropped;
    },
    attach(database, attachOptions) {
      db = database;
      detached = false;
      const every = attachOptions.retentionEveryMs ?? 60 * 60 * 1000;
      firstRetention = setTimeout(() => void deleteExpired(attachOptions.retentionDays), Math.min(5_000, every));
      firstRetention.unref();
      retention = setInterval(() => void deleteExpired(attachOptions.retentionDays), every);
      retention.unref();
      schedule();
    },
    async detach() {
      clearTimeout(firstRetention);
      clearInterval(retention);
      clearTimeout(timer);
      timer = undefined;
      const wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
      await Promise.race([(async () => {
        await flushing;
        if (db !== undefined && pending.length > 0) await flush();
      })(), wait(DETACH_WAIT_MS)]);
      db = undefined;
      detached = true;
      pending = [];
    },
    recent: () => ring.slice(),
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

/** One pino JSON line as a row: numeric level to its name, `source` (or `channel`) as source, `msg` as message. */
export function parseLine(line: string, seq: number): LogEntry {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return { seq, time: new Date(), level: "info", source: null, message: clean(line.trim()).slice(0, MAX_MESSAGE), data: null };
  }
  const { level, time, msg, source, ...rest } = parsed as Record<string, unknown>;
  const sourceText = typeof source === "string" ? source : typeof rest.channel === "string" ? rest.channel : null;
  const when = typeof time === "number" ? new Date(time) : typeof time === "string" ? new Date(time) : new Date();
  return {
    seq,
    time: Number.isNaN(when.getTime()) ? new Date() : when,
    level: levelName(level),
    source: sourceText === null ? null : clean(sourceText).slice(0, 100),
    message: clean(typeof msg === "string" ? msg : msg === undefined ? "" : JSON.stringify(msg)).slice(0, MAX_MESSAGE),
    data: boundedData(rest),
  };
}

function levelName(level: unknown): LogLevelName {
  if (typeof level === "number") {
    const exact = PINO_LEVELS[level];
    if (exact) return exact;
    const below = [60, 50, 40, 30, 20, 10].find((n) => level >= n);
    return below === undefined ? "trace" : PINO_LEVELS[below]!;
  }
  if (typeof level === "string" && (LOG_LEVELS as readonly string[]).includes(level)) return level as LogLevelName;
  return "info";
}

/** PostgreSQL refuses NUL in text and jsonb. */
function clean(text: string): string {
  return text.includes("\u0000") ? text.replaceAll("\u0000", "\uFFFD") : text;
}

function boundedData(rest: Record<string, unknown>): Record<string, unknown> | null {
  if (Object.keys(rest).length === 0) return null;
  const json = clean(JSON.stringify(rest, (_key, value: unknown) => (typeof value === "string" ? clean(value) : value)));
  if (json.length <= MAX_DATA) return JSON.parse(json) as Record<string, unknown>;
  return { truncated: true, preview: json.slice(0, MAX_DATA) };
}

/** SQLSTATE classes 22 (data exception) and 23 (integrity constraint): the rows are wrong, not the connection. */
function isDataError(error: unknown): boolean {
  return /^2[23][0-9A-Z]{3}$/.test(databaseError(error)?.code ?? "");
}

/** The SQLSTATE and constraint of a database error, or a connection error's message: never the rows' values. */
function describe(error: unknown): string {
  return errorMessage(error).slice(0, 200);
}
