import { Writable } from "node:stream";
import pino, { type Logger } from "pino";
import { safeErrorFields } from "../core/safe-error.ts";

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
      serializers: { err: (value: unknown) => (value instanceof Error ? safeErrorFields(value) : value) },
      // Every error handed to the logger, under any field, is written as its safe fields (src/core/safe-error.ts):
      // a database error's values and an AI SDK error's prompt never reach a line.
      hooks: {
        logMethod(args, method) {
          const [first, ...rest] = args as unknown[];
          if (first instanceof Error) {
            const err = safeErrorFields(first);
            return method.apply(this, [{ err }, ...(rest.length > 0 ? rest : [err.message])] as Parameters<typeof method>);
          }
          if (typeof first === "object" && first !== null) return method.apply(this, [withSafeErrors(first, 0), ...rest] as Parameters<typeof method>);
          return method.apply(this, args);
        },
      },
    },
    stream,
  );
}

/** A copy of a log call's fields with each Error in them (two levels down) replaced by its safe fields. */
function withSafeErrors(value: object, depth: number): object {
  if (Array.isArray(value)) return value.map((item: unknown) => safeValue(item, depth));
  const prototype = Object.getPrototypeOf(value) as unknown;
  if (prototype !== Object.prototype && prototype !== null) return value;
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, safeValue(item, depth)]));
}

function safeValue(item: unknown, depth: number): unknown {
  if (item instanceof Error) return safeErrorFields(item);
  if (typeof item === "object" && item !== null && depth < 2) return withSafeErrors(item, depth + 1);
  return item;
}
