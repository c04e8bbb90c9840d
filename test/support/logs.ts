import { createLogger, type Logger } from "../../src/observability/logger.ts";

/** A real (scrubbing) logger whose lines are kept in memory, so tests can assert on what would have been written. */
export function captureLogs(secrets: readonly string[] = [], level = "debug"): { log: Logger; lines: string[]; text(): string } {
  const lines: string[] = [];
  const log = createLogger({ level, secrets, write: (line) => lines.push(line) });
  return { log, lines, text: () => lines.join("") };
}
