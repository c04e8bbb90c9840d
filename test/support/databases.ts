import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import type { DatabaseTarget } from "../../src/db/client.ts";
import { loadTemplate } from "./pglite-template.ts";

/**
 * Every database test runs on PGlite (the embedded default) and, when TEST_DATABASE_URL is set (.ci/run sets it),
 * on a real PostgreSQL. Each test gets a database of its own: a temporary PGlite directory, or a new PostgreSQL
 * database created on the server that TEST_DATABASE_URL names and dropped afterwards.
 */

export type DatabaseKind = DatabaseTarget["kind"];

export const DATABASE_KINDS: DatabaseKind[] = process.env.TEST_DATABASE_URL ? ["pglite", "postgres"] : ["pglite"];

export interface TestDatabase {
  target: DatabaseTarget;
  /** DATABASE_URL / PARLEY_DATA_DIR settings that point Parley at this database. */
  env: Record<string, string>;
  drop(): Promise<void>;
}

export async function createTestDatabase(kind: DatabaseKind): Promise<TestDatabase> {
  if (kind === "pglite") {
    const dir = await mkdtemp(path.join(tmpdir(), "parley-test-"));
    // Parley opens <dataDir>/pglite; start it from the migrated template made by the global setup.
    const seeded = await PGlite.create(path.join(dir, "pglite"), { loadDataDir: loadTemplate() });
    await seeded.close();
    return {
      target: { kind: "pglite", dataDir: dir },
      env: { PARLEY_DATA_DIR: dir },
      drop: () => rm(dir, { recursive: true, force: true }),
    };
  }
  const adminUrl = process.env.TEST_DATABASE_URL;
  if (!adminUrl) throw new Error("TEST_DATABASE_URL is not set");
  const name = `parley_test_${randomBytes(6).toString("hex")}`;
  await withClient(adminUrl, (client) => client.query(`create database ${name}`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    target: { kind: "postgres", url: url.toString() },
    env: { DATABASE_URL: url.toString() },
    drop: () => withClient(adminUrl, (client) => client.query(`drop database if exists ${name} with (force)`)).then(() => undefined),
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
