import { loadStartupCredentials, startParley, type Parley, type ParleyOptions } from "../../src/app.ts";
import { loadConfig, secretsOf } from "../../src/config.ts";
import { createLogSink } from "../../src/observability/log-sink.ts";
import { createLogger } from "../../src/observability/logger.ts";
import type { TestDatabase } from "./databases.ts";

/**
 * A whole Parley as main.ts wires it: the scrubbing logger writes through a log sink, which the app attaches to the
 * database (the logs table, the admin page's tail). `lines` keeps every line as it would reach stdout.
 */
export interface LoggedParley extends Parley {
  lines: string[];
  text(): string;
}

export async function startLoggedParley(
  db: TestDatabase,
  env: Record<string, string>,
  tuning: ParleyOptions["tuning"] = {},
): Promise<LoggedParley> {
  const config = loadConfig({ PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "debug", WORKER_CONCURRENCY: "4", ...db.env, ...env }, "/nonexistent/.env");
  const startup = await loadStartupCredentials(config);
  const secrets = [...secretsOf(config), ...startup.secrets];
  const lines: string[] = [];
  const sink = createLogSink({ tee: (line) => lines.push(line), warn: (text) => lines.push(text), flushMs: 50 });
  const log = createLogger({ level: "debug", secrets, write: sink.write });
  const parley = await startParley({
    config,
    log,
    secrets,
    logSink: sink,
    webChatCredentials: startup.webChat,
    tuning: { leaseMs: 1_000, pollMs: 100, retryBaseMs: 200, ...tuning },
  });
  return Object.assign(parley, { lines, text: () => lines.join("") });
}
