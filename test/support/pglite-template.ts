import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { PGlite } from "@electric-sql/pglite";
import { drizzle } from "drizzle-orm/pglite";
import { migrate } from "drizzle-orm/pglite/migrator";

/**
 * A fresh PGlite costs seconds (initdb in WebAssembly, then the migrations); loading a dump of an already migrated
 * one costs a fraction of that. The vitest global setup makes the dump once per migrations folder; every PGlite test
 * database starts from it.
 */

const MIGRATIONS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../migrations");

export function templatePath(): string {
  const hash = createHash("sha256");
  for (const file of readdirSync(MIGRATIONS, { recursive: true }).map(String).sort()) {
    const full = path.join(MIGRATIONS, file);
    if (file.endsWith(".sql") || file.endsWith(".json")) hash.update(file).update(readFileSync(full));
  }
  return path.join(tmpdir(), `parley-pglite-template-${hash.digest("hex").slice(0, 16)}.tar`);
}

export async function ensureTemplate(): Promise<string> {
  const target = templatePath();
  if (existsSync(target)) return target;
  const client = await PGlite.create("memory://");
  await migrate(drizzle(client), { migrationsFolder: MIGRATIONS });
  const dump = await client.dumpDataDir("none");
  await client.close();
  const partial = `${target}.${process.pid}`;
  writeFileSync(partial, Buffer.from(await dump.arrayBuffer()));
  renameSync(partial, target);
  return target;
}

export function loadTemplate(): Blob {
  return new Blob([readFileSync(templatePath())]);
}
