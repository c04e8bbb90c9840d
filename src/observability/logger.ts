import { Writable } from "node:stream";
import pino, { type Logger } from "pino";

export type { Logger };

/**
 * Patterns that look like credentials whatever their source: a Telegram bot token (also inside an API or file URL),
 * a bearer header, an OpenAI-style key. Known secret values from the configuration are removed as well.
 */
const SECRET_PATTERNS: RegExp[] = [
  /\b\d{6,}:[A-Za-z0-9_-]{30,}\b/g,
  /\bBearer\s+[A-Za-z0-9._~+/=-]+/gi,
  /\bsk-[A-Za-z0-9_-]{8,}/g,
  /\bEAA[A-Za-z0-9]{20,}/g,
];

export function createScrubber(secrets: readonly string[]): (text: string) => string {
  const known = [...new Set(secrets)].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
  return (text) => {
    let out = text;
    for (const secret of known) out = out.split(secret).join("[redacted]");
    for (const pattern of SECRET_PATTERNS) out = out.replace(pattern, "[redacted]");
    return out;
  };
}

export interface LoggerOptions {
  level: string;
  /** Values that must never be written, whatever field or message they hide in. */
  secrets: readonly string[];
  /** Where the scrubbed JSON lines go; stdout by default. */
  write?: (line: string) => void;
}

/**
 * pino, with every line scrubbed of secrets after serialization, so a token inside an error message, a stack or a
 * URL is caught no matter which field carries it.
 */
export function createLogger(options: LoggerOptions): Logger {
  const scrub = createScrubber(options.secrets);
  const write = options.write ?? ((line: string) => process.stdout.write(line));
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      write(scrub(chunk.toString("utf8")));
      done();
    },
  });
  return pino(
    {
      level: options.level,
      base: undefined,
      redact: { paths: ["*.token", "*.apiKey", "*.authorization", "*.Authorization", "headers.authorization"], censor: "[redacted]" },
      serializers: { err: pino.stdSerializers.err },
    },
    stream,
  );
}
