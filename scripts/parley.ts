/**
 * The operator's command line, on the same database and configuration as Parley (.env and the environment):
 *
 *   npm run parley -- approve CODE          approve a pairing code (the user may write then)
 *   npm run parley -- allow <user key>      allow a user, e.g. telegram:12345
 *   npm run parley -- block <user key>      block a user
 *   npm run parley -- list-pending          the codes waiting for approval
 *
 * With the embedded database (no DATABASE_URL), only one process may open it: the commands refuse while Parley runs
 * (approve on the admin page then, or stop Parley first).
 */
import { pathToFileURL } from "node:url";
import { approvePairing, listPendingPairings, normalizeCode, setUserAccess } from "../src/access/pairing.ts";
import { ConfigError, loadConfig, secretsOf, type Config } from "../src/config.ts";
import { keyProblem } from "../src/core/keys.ts";
import type { UserKey } from "../src/core/types.ts";
import { openDatabase } from "../src/db/client.ts";
import { createLogger } from "../src/observability/logger.ts";

const USAGE = `Usage: npm run parley -- <command>

  approve CODE          approve a pairing code
  allow <user key>      allow a user (e.g. telegram:12345)
  block <user key>      block a user
  list-pending          list the codes waiting for approval`;

export async function runCli(argv: readonly string[], config: Config, out: (line: string) => void): Promise<number> {
  const [command, arg] = argv;
  if (command === undefined || command === "help" || command === "--help") {
    out(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (!["approve", "allow", "block", "list-pending"].includes(command)) {
    out(`Unknown command "${command}".\n\n${USAGE}`);
    return 2;
  }
  if (config.database.kind === "pglite" && (await parleyAnswers(config))) {
    out(
      "Parley is running on the embedded database, which only one process can open at a time. Approve on the admin " +
        "page (/admin/users), or stop Parley and run this again.",
    );
    return 1;
  }
  const log = createLogger({ level: "warn", secrets: secretsOf(config), write: (line) => process.stderr.write(line) });
  const database = await openDatabase(config.database, log);
  try {
    await database.migrate();
    const { db } = database;
    const now = new Date();
    switch (command) {
      case "approve": {
        const code = normalizeCode(arg ?? "");
        if (!code) {
          out("Give the 8-character code the user was sent, e.g. npm run parley -- approve ABCD2345");
          return 2;
        }
        const approved = await approvePairing(db, code, now);
        if (!approved) {
          out(`There is no pending code ${code} (codes are valid for an hour). npm run parley -- list-pending shows them.`);
          return 1;
        }
        out(`Approved ${approved.displayName ? `${approved.displayName} (${approved.user})` : approved.user}: they may write now.`);
        return 0;
      }
      case "allow":
      case "block": {
        const problem = arg === undefined ? "is missing" : keyProblem(arg, "user");
        if (arg === undefined || problem !== undefined) {
          out(`Give a user key, e.g. npm run parley -- ${command} telegram:12345 (the key ${problem})`);
          return 2;
        }
        await setUserAccess(db, arg as UserKey, command === "allow" ? "allowed" : "blocked");
        out(command === "allow" ? `Allowed ${arg}.` : `Blocked ${arg}.`);
        return 0;
      }
      default: {
        const pending = await listPendingPairings(db, now);
        if (pending.length === 0) out("No codes are waiting for approval.");
        for (const p of pending) {
          out(`${p.code}  ${p.user}${p.displayName ? `  ${p.displayName}` : ""}  expires ${p.expiresAt.toISOString().slice(0, 16).replace("T", " ")} UTC`);
        }
        return 0;
      }
    }
  } finally {
    await database.close();
  }
}

/** Whether a Parley answers on the configured address (its health check). */
async function parleyAnswers(config: Config): Promise<boolean> {
  const host = config.http.host === "0.0.0.0" || config.http.host === "::" ? "127.0.0.1" : config.http.host;
  try {
    const res = await fetch(`http://${host.includes(":") ? `[${host}]` : host}:${config.http.port}/healthz`, { signal: AbortSignal.timeout(1_000) });
    return res.ok;
  } catch {
    return false;
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // The commands open the embedded database in the data directory: what they create there is owner-only, as Parley's.
  process.umask(0o077);
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    process.stderr.write(`${error instanceof ConfigError ? error.message : String(error)}\n`);
    process.exit(2);
  }
  runCli(process.argv.slice(2), config, (line) => process.stdout.write(`${line}\n`)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`parley: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    },
  );
}
