import { ConfigError, loadConfig, secretsOf } from "./config.ts";
import { loadStartupCredentials, startParley } from "./app.ts";
import { createLogger } from "./observability/logger.ts";
import { createLogSink } from "./observability/log-sink.ts";

/** The composition root for the process: read the configuration, start Parley, stop it on SIGTERM or SIGINT. */

async function main(): Promise<void> {
  // Whatever the process creates from here on (the data directory, the database, the WhatsApp session, uploads)
  // is the operator's alone: owner-only whatever umask the shell or service manager handed down.
  process.umask(0o077);
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
  // The web chat's token and cookie key join the secrets before the first log line: no line may ever carry them.
  const startup = await loadStartupCredentials(config);
  const secrets = [...secretsOf(config), ...startup.secrets];
  // Lines go to stdout at once and, after startParley attaches the database, to the logs table and the admin live tail.
  const logSink = createLogSink();
  const log = createLogger({ level: config.logLevel, secrets, write: logSink.write });
  process.on("unhandledRejection", (reason) => log.error({ err: reason }, "unhandled rejection"));

  for (const note of startup.notes) log[note.type === "created" ? "info" : "warn"]({ file: note.file }, CREDENTIAL_NOTES[note.type]);

  const parley = await startParley({ config, log, secrets, logSink, webChatCredentials: startup.webChat });
  // The one place the operator's link is written: straight to stdout, past the scrubbing logger (which would redact
  // it) and so never into the logs table or the admin page's log view.
  if (parley.webChatLink) process.stdout.write(`\nOpen the web chat (keep this link to yourself): ${parley.webChatLink}\n\n`);
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

const CREDENTIAL_NOTES = {
  created: "a new web chat credential was created (mode 0600)",
  replaced: "a web chat credential file did not hold a valid value and was replaced (old links stop working)",
  tightened: "a web chat credential file was readable by others; it is now mode 0600",
} as const;

main().catch((error: unknown) => {
  process.stderr.write(`Parley failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
