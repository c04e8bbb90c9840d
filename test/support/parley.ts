import { loadStartupCredentials, startParley, type Parley, type ParleyOptions } from "../../src/app.ts";
import { loadConfig, secretsOf } from "../../src/config.ts";
import { captureLogs } from "./logs.ts";
import type { TestDatabase } from "./databases.ts";

/**
 * Starts a whole Parley in this process, configured through the same variables an operator sets, on a test
 * database and an ephemeral port on 127.0.0.1. Timings are shortened so retries and lease take-overs are quick.
 */
export interface TestParley extends Parley {
  logs: ReturnType<typeof captureLogs>;
}

export async function startTestParley(
  db: TestDatabase,
  env: Record<string, string> = {},
  fakes: Pick<ParleyOptions, "createWhatsAppClient"> = {},
): Promise<TestParley> {
  const config = loadConfig({ PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "debug", WORKER_CONCURRENCY: "4", ...db.env, ...env }, "/nonexistent/.env");
  const startup = await loadStartupCredentials(config);
  const secrets = [...secretsOf(config), ...startup.secrets];
  const logs = captureLogs(secrets);
  const parley = await startParley({
    config,
    log: logs.log,
    secrets,
    webChatCredentials: startup.webChat,
    tuning: { leaseMs: 1_000, pollMs: 100, retryBaseMs: 200 },
    ...fakes,
  });
  return Object.assign(parley, { logs });
}
