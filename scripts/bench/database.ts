import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import type { DatabaseTarget } from "../../src/db/client.ts";

/**
 * The benchmark's database: a new PostgreSQL database on the server DATABASE_URL names (dropped afterwards), or
 * PGlite in a temporary directory when DATABASE_URL is unset.
 */
export interface BenchDatabase {
  target: DatabaseTarget;
  /** What Parley is given: DATABASE_URL or PARLEY_DATA_DIR. */
  env: Record<string, string>;
  describe: string;
  drop(): Promise<void>;
}

export async function createBenchDatabase(serverUrl: string | undefined): Promise<BenchDatabase> {
  if (!serverUrl) {
    const dir = mkdtempSync(path.join(tmpdir(), "parley-bench-"));
    return {
      target: { kind: "pglite", dataDir: dir },
      env: { PARLEY_DATA_DIR: dir },
      describe: "PGlite (embedded)",
      drop: async () => rmSync(dir, { recursive: true, force: true }),
    };
  }
  const name = `parley_bench_${randomBytes(5).toString("hex")}`;
  await withClient(serverUrl, (client) => client.query(`create database ${name}`));
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const version = await withClient(url.toString(), (client) => client.query<{ v: string }>("select current_setting('server_version') as v").then((r) => r.rows[0]?.v));
  return {
    target: { kind: "postgres", url: url.toString() },
    env: { DATABASE_URL: url.toString() },
    describe: `PostgreSQL ${version ?? ""} on ${url.host}`.trim(),
    drop: () => withClient(serverUrl, (client) => client.query(`drop database if exists ${name} with (force)`)).then(() => undefined),
  };
}

async function withClient<T>(url: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}
