import { existsSync, readFileSync } from "node:fs";
import { parse as parseDotenv } from "dotenv";
import { z } from "zod";
import { isKey } from "./core/keys.ts";
import type { UserKey } from "./core/types.ts";

/**
 * The only reader of process.env. Every setting Parley understands is named here, validated once at start-up, and
 * handed to the composition root as a typed object. A bad value stops start-up with a message naming the variable.
 */

export const PROVIDERS = ["openai", "anthropic", "google", "openai-compatible", "ollama"] as const;
export type ProviderName = (typeof PROVIDERS)[number];

export interface ModelRef {
  provider: ProviderName;
  model: string;
}

const optionalString = z
  .string()
  .trim()
  .transform((v) => (v === "" ? undefined : v))
  .optional();

const port = z.coerce.number().int().min(0).max(65535);

const modelChain = z
  .string()
  .optional()
  .transform((value, ctx): ModelRef[] => {
    const entries = (value ?? "").split(",").map((e) => e.trim()).filter(Boolean);
    const refs: ModelRef[] = [];
    for (const entry of entries) {
      const colon = entry.indexOf(":");
      const provider = entry.slice(0, colon);
      const model = entry.slice(colon + 1);
      if (colon <= 0 || model === "" || !(PROVIDERS as readonly string[]).includes(provider)) {
        ctx.addIssue({
          code: "custom",
          message: `"${entry}" is not provider:model with provider one of ${PROVIDERS.join(", ")}`,
        });
        return z.NEVER;
      }
      refs.push({ provider: provider as ProviderName, model });
    }
    return refs;
  });

const userKeyList = z
  .string()
  .optional()
  .transform((value, ctx): UserKey[] => {
    const keys = (value ?? "").split(",").map((e) => e.trim()).filter(Boolean);
    for (const key of keys) {
      if (!isKey(key)) {
        ctx.addIssue({ code: "custom", message: `"${key}" is not a user key such as telegram:12345` });
        return z.NEVER;
      }
    }
    return keys as UserKey[];
  });

const url = z.url({ protocol: /^https?$/ });

const schema = z
  .object({
    PORT: port.default(3000),
    HOST: z.string().trim().min(1).default("127.0.0.1"),
    LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    DATABASE_URL: optionalString.pipe(z.string().regex(/^postgres(ql)?:\/\//, "must start with postgres://").optional()),
    PARLEY_DATA_DIR: z.string().trim().min(1).default("./data"),

    TELEGRAM_BOT_TOKEN: optionalString.pipe(
      z.string().regex(/^\d+:[A-Za-z0-9_-]+$/, "does not look like a bot token from @BotFather (123456:ABC…)").optional(),
    ),
    TELEGRAM_API_ROOT: url.default("https://api.telegram.org"),
    TELEGRAM_WEBHOOK_URL: optionalString.pipe(url.optional()),
    TELEGRAM_WEBHOOK_SECRET: optionalString.pipe(
      z.string().regex(/^[A-Za-z0-9_-]{1,256}$/, "must be 1-256 characters of A-Z a-z 0-9 _ -").optional(),
    ),

    META_VERIFY_TOKEN: optionalString,
    META_APP_SECRET: optionalString,
    META_GRAPH_API_ROOT: url.default("https://graph.facebook.com/v23.0"),
    WHATSAPP_CLOUD_TOKEN: optionalString,
    WHATSAPP_CLOUD_PHONE_NUMBER_ID: optionalString.pipe(z.string().regex(/^\d+$/, "must be the numeric phone number id").optional()),
    MESSENGER_PAGE_TOKEN: optionalString,
    WHATSAPP_WEB: z.stringbool().default(false),
    CHROMIUM_PATH: z.string().trim().min(1).default("/usr/bin/chromium"),

    MODELS_INSTANT: modelChain,
    OPENAI_API_KEY: optionalString,
    OPENAI_BASE_URL: optionalString.pipe(url.optional()),
    ANTHROPIC_API_KEY: optionalString,
    GOOGLE_GENERATIVE_AI_API_KEY: optionalString,
    OLLAMA_BASE_URL: optionalString.pipe(url.optional()),
    OPENAI_COMPATIBLE_BASE_URL: optionalString.pipe(url.optional()),
    OPENAI_COMPATIBLE_API_KEY: optionalString,
    MODEL_TIMEOUT_SECONDS: z.coerce.number().positive().default(120),

    ACCESS_POLICY: z.enum(["allowlist", "open"]).default("allowlist"),
    ALLOWED_USERS: userKeyList,

    SYSTEM_PROMPT: optionalString,
    HISTORY_MAX_TOKENS: z.coerce.number().int().min(500).default(24_000),
    WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(8),
  })
  .superRefine((c, ctx) => {
    if (Boolean(c.TELEGRAM_WEBHOOK_URL) !== Boolean(c.TELEGRAM_WEBHOOK_SECRET)) {
      const missing = c.TELEGRAM_WEBHOOK_URL ? "TELEGRAM_WEBHOOK_SECRET" : "TELEGRAM_WEBHOOK_URL";
      ctx.addIssue({
        code: "custom",
        path: [missing],
        message: "webhook mode needs both TELEGRAM_WEBHOOK_URL and TELEGRAM_WEBHOOK_SECRET (unset both for long polling)",
      });
    }
    const metaChannels = [
      c.WHATSAPP_CLOUD_TOKEN ? "WHATSAPP_CLOUD_TOKEN" : undefined,
      c.MESSENGER_PAGE_TOKEN ? "MESSENGER_PAGE_TOKEN" : undefined,
    ].filter(Boolean);
    for (const name of ["META_APP_SECRET", "META_VERIFY_TOKEN"] as const) {
      if (metaChannels.length > 0 && !c[name]) {
        ctx.addIssue({ code: "custom", path: [name], message: `is required when ${metaChannels.join(" or ")} is set (webhooks fail closed)` });
      }
    }
    if (c.WHATSAPP_CLOUD_TOKEN && !c.WHATSAPP_CLOUD_PHONE_NUMBER_ID) {
      ctx.addIssue({ code: "custom", path: ["WHATSAPP_CLOUD_PHONE_NUMBER_ID"], message: "is required when WHATSAPP_CLOUD_TOKEN is set" });
    }
    if (c.TELEGRAM_WEBHOOK_URL && !c.TELEGRAM_BOT_TOKEN) {
      ctx.addIssue({ code: "custom", path: ["TELEGRAM_BOT_TOKEN"], message: "is required when TELEGRAM_WEBHOOK_URL is set" });
    }
    if (c.MODELS_INSTANT.some((m) => m.provider === "openai-compatible") && !c.OPENAI_COMPATIBLE_BASE_URL) {
      ctx.addIssue({
        code: "custom",
        path: ["OPENAI_COMPATIBLE_BASE_URL"],
        message: "is required when MODELS_INSTANT uses the openai-compatible provider",
      });
    }
  });

export type Config = ReturnType<typeof toConfig>;

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/**
 * Reads the configuration from `env` (process.env by default) with a `.env` file in the working directory
 * underneath it: a variable set in the environment wins over the file.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, dotenvPath = ".env"): Config {
  const fromFile = existsSync(dotenvPath) ? parseDotenv(readFileSync(dotenvPath)) : {};
  const result = schema.safeParse({ ...fromFile, ...env });
  if (!result.success) {
    const lines = result.error.issues.map((issue) => `  ${issue.path.join(".") || "configuration"}: ${issue.message}`);
    throw new ConfigError(`Parley cannot start: the configuration is not valid.\n${lines.join("\n")}`);
  }
  return toConfig(result.data);
}

function toConfig(e: z.output<typeof schema>) {
  return {
    http: { port: e.PORT, host: e.HOST },
    logLevel: e.LOG_LEVEL,
    database: e.DATABASE_URL ? { kind: "postgres" as const, url: e.DATABASE_URL } : { kind: "pglite" as const, dataDir: e.PARLEY_DATA_DIR },
    dataDir: e.PARLEY_DATA_DIR,
    telegram: e.TELEGRAM_BOT_TOKEN
      ? {
          token: e.TELEGRAM_BOT_TOKEN,
          apiRoot: e.TELEGRAM_API_ROOT,
          webhook:
            e.TELEGRAM_WEBHOOK_URL && e.TELEGRAM_WEBHOOK_SECRET
              ? { url: e.TELEGRAM_WEBHOOK_URL, secret: e.TELEGRAM_WEBHOOK_SECRET }
              : undefined,
        }
      : undefined,
    whatsappCloud:
      e.WHATSAPP_CLOUD_TOKEN && e.WHATSAPP_CLOUD_PHONE_NUMBER_ID && e.META_APP_SECRET && e.META_VERIFY_TOKEN
        ? {
            token: e.WHATSAPP_CLOUD_TOKEN,
            phoneNumberId: e.WHATSAPP_CLOUD_PHONE_NUMBER_ID,
            appSecret: e.META_APP_SECRET,
            verifyToken: e.META_VERIFY_TOKEN,
            graphApiRoot: e.META_GRAPH_API_ROOT,
          }
        : undefined,
    whatsappWeb: e.WHATSAPP_WEB ? { chromiumPath: e.CHROMIUM_PATH } : undefined,
    messenger:
      e.MESSENGER_PAGE_TOKEN && e.META_APP_SECRET && e.META_VERIFY_TOKEN
        ? {
            token: e.MESSENGER_PAGE_TOKEN,
            appSecret: e.META_APP_SECRET,
            verifyToken: e.META_VERIFY_TOKEN,
            graphApiRoot: e.META_GRAPH_API_ROOT,
          }
        : undefined,
    models: {
      instant: e.MODELS_INSTANT,
      timeoutMs: e.MODEL_TIMEOUT_SECONDS * 1000,
    },
    providers: {
      openai: { apiKey: e.OPENAI_API_KEY, baseURL: e.OPENAI_BASE_URL },
      anthropic: { apiKey: e.ANTHROPIC_API_KEY },
      google: { apiKey: e.GOOGLE_GENERATIVE_AI_API_KEY },
      ollama: { baseURL: e.OLLAMA_BASE_URL ?? "http://127.0.0.1:11434" },
      openaiCompatible: { baseURL: e.OPENAI_COMPATIBLE_BASE_URL, apiKey: e.OPENAI_COMPATIBLE_API_KEY },
    },
    access: { policy: e.ACCESS_POLICY, allowedUsers: new Set<UserKey>(e.ALLOWED_USERS) },
    conversation: {
      systemPrompt: e.SYSTEM_PROMPT,
      historyMaxTokens: e.HISTORY_MAX_TOKENS,
    },
    workers: { concurrency: e.WORKER_CONCURRENCY },
  };
}

/** Values that must never appear in a log line, an error shown to a user, or a page. */
export function secretsOf(config: Config): string[] {
  return [
    config.telegram?.token,
    config.telegram?.webhook?.secret,
    config.whatsappCloud?.token,
    config.whatsappCloud?.appSecret,
    config.whatsappCloud?.verifyToken,
    config.messenger?.token,
    config.messenger?.appSecret,
    config.messenger?.verifyToken,
    config.providers.openai.apiKey,
    config.providers.anthropic.apiKey,
    config.providers.google.apiKey,
    config.providers.openaiCompatible.apiKey,
  ].filter((s): s is string => typeof s === "string" && s.length >= 4);
}
