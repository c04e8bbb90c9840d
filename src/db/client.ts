import { mkdirSync } from "node:fs";
import path from "node:path";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePg } from "drizzle-orm/node-postgres";
import { migrate as migratePg } from "drizzle-orm/node-postgres/migrator";
import pg from "pg";
import { repoPath } from "../core/package-root.ts";
import type { Logger } from "../observability/logger.ts";
import * as schema from "./schema.ts";

export type Schema = typeof schema;
/** The drizzle database, whichever driver is underneath. */
export type Db = PgDatabase<PgQueryResultHKT, Schema>;

export type DatabaseTarget = { kind: "postgres"; url: string } | { kind: "pglite"; dataDir: string };

export interface Database {
  db: Db;
  kind: DatabaseTarget["kind"];
  /** Applies migrations/ (idempotent). */
  migrate(): Promise<void>;
  close(): Promise<void>;
}

const MIGRATIONS = repoPath("migrations");
/**
 * The per-message queries are prepared statements (built once, parsed once per connection), but planned for their
 * values every time: after five runs PostgreSQL would otherwise settle on a generic plan made without knowing the
 * conversation or user, e.g. reading the whole messages table backwards by id to find one small conversation's turns
 * (measured: 0.6 ms became 30–120 ms once another user had 100,000 messages). Planning costs the server ~0.3 ms.
 */
const PLAN_EACH_TIME = "-c plan_cache_mode=force_custom_plan";

/** Where PGlite keeps its files: `<dataDir>/pglite`, or undefined when it is not on disk (PostgreSQL, memory). */
export function pgliteDirectory(target: DatabaseTarget): string | undefined {
  return target.kind === "pglite" && target.dataDir !== "memory://" ? path.resolve(target.dataDir, "pglite") : undefined;
}

/**
 * Opens PostgreSQL through a pg pool, or PGlite (embedded PostgreSQL in WebAssembly) in `<dataDir>/pglite`.
 * `dataDir: "memory://"` keeps PGlite in memory (tests).
 */
export async function openDatabase(target: DatabaseTarget, log: Logger): Promise<Database> {
  if (target.kind === "postgres") {
    const pool = new pg.Pool({ connectionString: target.url, max: 10, connectionTimeoutMillis: 5_000, options: PLAN_EACH_TIME });
    // An idle client losing its connection (database restarted) must not take the process down; the next query
    // gets a new connection or a clear error.
    pool.on("error", (error) => log.warn({ err: error }, "database connection lost"));
    const db = drizzlePg(pool, { schema }) as unknown as Db;
    return {
      db,
      kind: "postgres",
      migrate: () => migratePg(db as never, { migrationsFolder: MIGRATIONS }),
      close: () => pool.end(),
    };
  }
  const location = pgliteDirectory(target) ?? "memory://";
  if (location !== "memory://") mkdirSync(location, { recursive: true, mode: 0o700 });
  // Loaded only when used: PGlite's WebAssembly build costs a PostgreSQL deployment ~35 MB of memory otherwise.
  const [{ PGlite }, { drizzle: drizzlePglite }, { migrate: migratePglite }] = await Promise.all([
    import("@electric-sql/pglite"),
    import("drizzle-orm/pglite"),
    import("drizzle-orm/pglite/migrator"),
  ]);
  const client = await PGlite.create(location);
  await client.exec("set plan_cache_mode = force_custom_plan");
  const db = drizzlePglite(client, { schema }) as unknown as Db;
  return {
    db,
    kind: "pglite",
    migrate: () => migratePglite(db as never, { migrationsFolder: MIGRATIONS }),
    close: () => client.close(),
  };
}

/**
 * The database's own error in `error` or its causes (drizzle wraps the driver's): its SQLSTATE `code` and, for an
 * integrity violation, the `constraint`. Undefined when no cause carries a code.
 */
export function databaseError(error: unknown): { code: string; constraint?: string } | undefined {
  for (let e: unknown = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, constraint } = e as { code?: unknown; constraint?: unknown };
    if (typeof code === "string") return { code, ...(typeof constraint === "string" ? { constraint } : {}) };
  }
  return undefined;
}

/** Rows of a raw `db.execute(sql…)`: node-postgres and PGlite both answer with `{ rows }`. */
export function rowsOf<T>(result: unknown): T[] {
  return (result as { rows: T[] }).rows;
}
