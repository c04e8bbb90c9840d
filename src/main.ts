import { ConfigError, loadConfig, secretsOf } from "./config.ts";
import { startParley } from "./app.ts";
import { createLogger } from "./observability/logger.ts";
import { createLogSink } from "./observability/log-sink.ts";

/** The composition root for the process: read the configuration, start Parley, stop it on SIGTERM or SIGINT. */

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const secrets = secretsOf(config);
  // Lines go to stdout at once and, after startParley attaches the database, to the logs table and the admin live tail.
  const logSink = createLogSink();
  const log = createLogger({ level: config.logLevel, secrets, write: logSink.write });
  process.on("unhandledRejection", (reason) => log.error({ err: reason }, "unhandled rejection"));

  const parley = await startParley({ config, log, secrets, logSink });
  let signals = 0;
  const shutdown = (signal: string) => {
    if (++signals > 1) {
      log.warn("second signal: exiting now");
      process.exit(1);
    }
    log.info({ signal }, "stopping");
    parley.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, "error while stopping");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

main().catch((error: unknown) => {
  process.stderr.write(`Parley failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
