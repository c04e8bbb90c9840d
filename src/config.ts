import { existsSync, readFileSync } from "node:fs";
import { parse as parseDotenv } from "dotenv";
import { z } from "zod";
import { HISTORY_CACHE_MB_DEFAULT } from "./conversation/history-cache.ts";
import { keyProblem, type KeyRole } from "./core/keys.ts";
import {
  IMAGE_MAX_FRAMES_DEFAULT,
  IMAGE_MAX_PIXELS_DEFAULT,
  IMAGE_MAX_SIDE_DEFAULT,
  IMAGES_IN_HISTORY_TURNS_DEFAULT,
  MEDIA_MAX_BYTES_DEFAULT,
  TRANSCRIBE_MAX_BYTES_DEFAULT,
  TRANSCRIBE_MAX_SECONDS_DEFAULT,
} from "./media/limits.ts";
import { parseTranscribeModel } from "./media/transcribe.ts";
import type { ChatKey, UserKey } from "./core/types.ts";
import { parseCapabilityOverrides, type Parsed } from "./models/capabilities.ts";
import { parseCostOverrides } from "./models/costs.ts";
import { isContributorModel, isRetiredLlamaApi, META_MODEL_API_URL } from "./models/meta.ts";
import { PROVIDERS, type ModelRef, type ProviderName } from "./models/providers.ts";
import { parseTrustProxy } from "./http/trust-proxy.ts";
import { TOOL_NAMES } from "./tools/registry.ts";

/**
 * The only reader of process.env. Every setting Parley understands is named here, validated once at start-up, and
 * handed to the composition root as a typed object. A bad value stops start-up with a message naming the variable.
 */

export { PROVIDERS, type ModelRef, type ProviderName };

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

/** MODELS_CONTEMPLATING: one chain for every sub-agent, or one chain per agent separated by `|`. */
const chainList = z
  .string()
  .optional()
  .transform((value, ctx): ModelRef[][] => {
    const chains: ModelRef[][] = [];
    for (const part of (value ?? "").split("|").map((p) => p.trim()).filter(Boolean)) {
      const parsed = modelChain.safeParse(part);
      if (!parsed.success) {
        for (const issue of parsed.error.issues) ctx.addIssue({ code: "custom", message: issue.message });
        return z.NEVER;
      }
      chains.push(parsed.data);
    }
    return chains;
  });

/** A value parsed by one of the models' small syntaxes (MODEL_CAPABILITIES, MODEL_COSTS). */
const parsedWith = <T>(parse: (text: string) => Parsed<T[]>) =>
  z
    .string()
    .optional()
    .transform((value, ctx): T[] => {
      const parsed = parse(value ?? "");
      if (parsed.ok) return parsed.value;
      ctx.addIssue({ code: "custom", message: parsed.error });
      return z.NEVER;
    });

/** PROVIDER_CONCURRENCY: `openai=8,anthropic=4`; `default=6` changes the rest (default 4). */
const concurrencyMap = z
  .string()
  .optional()
  .transform((value, ctx): { default: number; providers: Partial<Record<ProviderName, number>> } => {
    const out = { default: 4, providers: {} as Partial<Record<ProviderName, number>> };
    for (const entry of (value ?? "").split(",").map((e) => e.trim()).filter(Boolean)) {
      const m = /^([a-z-]+)\s*=\s*(\d+)$/.exec(entry);
      const name = m?.[1] ?? "";
      const limit = Number(m?.[2]);
      if (!m || !(limit >= 1 && limit <= 256) || !(name === "default" || (PROVIDERS as readonly string[]).includes(name))) {
        ctx.addIssue({ code: "custom", message: `"${entry}" is not <provider>=<1-256> with provider one of default, ${PROVIDERS.join(", ")}` });
        return z.NEVER;
      }
      if (name === "default") out.default = limit;
      else out.providers[name as ProviderName] = limit;
    }
    return out;
  });

/** TOOLS: names from src/tools/registry.ts; unset means time,calculator; empty means none. */
const toolList = z
  .string()
  .optional()
  .transform((value, ctx): string[] => {
    const names = value === undefined ? ["time", "calculator"] : value.split(",").map((e) => e.trim()).filter(Boolean);
    for (const name of names) {
      if (!TOOL_NAMES.includes(name)) {
        ctx.addIssue({ code: "custom", message: `unknown tool "${name}" (known: ${TOOL_NAMES.join(", ")})` });
        return z.NEVER;
      }
    }
    return [...new Set(names)];
  });

const timeZone = z
  .string()
  .trim()
  .default("UTC")
  .refine((zone) => {
    try {
      new Intl.DateTimeFormat("en-US", { timeZone: zone });
      return true;
    } catch {
      return false;
    }
  }, "is not an IANA time zone such as UTC or Europe/Berlin");

/**
 * ALLOWED_USERS, ADMIN_USERS (user keys) and GROUP_ALLOWLIST (chat keys, e.g. telegram:-1001234). Fails closed: an
 * entry no platform could send (src/core/keys.ts keyProblem) or a value of separators only stops start-up, since it
 * would match no one while the operator believes it names someone. Unset or empty keeps its documented meaning (no
 * one listed). An entry is named by its position, never quoted: it may be a secret pasted into the wrong variable.
 */
const keyList = <K extends UserKey | ChatKey>(role: KeyRole) =>
  z
    .string()
    .optional()
    .transform((value, ctx): K[] => {
      const keys = (value ?? "").split(",").map((e) => e.trim()).filter(Boolean);
      if (keys.length === 0 && (value ?? "").trim() !== "") {
        ctx.addIssue({ code: "custom", message: `lists no key, only separators (unset it, or list ${role} keys such as ${role === "user" ? "telegram:12345" : "telegram:-1001234"})` });
        return z.NEVER;
      }
      for (const [i, key] of keys.entries()) {
        const problem = keyProblem(key, role);
        if (problem !== undefined) {
          ctx.addIssue({ code: "custom", message: `entry ${i + 1} of ${keys.length} ${problem}` });
          return z.NEVER;
        }
      }
      return keys as K[];
    });

/** A per-user quota: a whole number, 0 meaning no limit. */
const quota = (fallback: number) => z.coerce.number().int().min(0).default(fallback);

const url = z.url({ protocol: /^https?$/ });

const schema = z
  .object({
    PORT: port.default(3000),
    HOST: z.string().trim().min(1).default("127.0.0.1"),
    TRUST_PROXY: parsedWith(parseTrustProxy),
    LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    DATABASE_URL: optionalString.pipe(z.string().regex(/^postgres(ql)?:\/\//, "must start with postgres://").optional()),
    PARLEY_DATA_DIR: z.string().trim().min(1).default("./data"),
    WEB_CHAT: z.enum(["operator", "public", "off"]).default("operator"),

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
    MODELS_THINKING: modelChain,
    MODELS_CONTEMPLATING: chainList,
    MODELS_SYNTHESIS: modelChain,
    META_API_KEY: optionalString,
    /** Meta's own examples name the key MODEL_API_KEY; META_API_KEY wins when both are set. */
    MODEL_API_KEY: optionalString,
    META_BASE_URL: url.default(META_MODEL_API_URL),
    META_ALLOW_CONTRIBUTOR_MODELS: z.stringbool().default(false),
    META_WEB_SEARCH: z.stringbool().default(false),
    MODEL_CAPABILITIES: parsedWith(parseCapabilityOverrides),
    MODEL_COSTS: parsedWith(parseCostOverrides),
    MODEL_RETRIES: z.coerce.number().int().min(0).max(10).default(2),
    MODEL_RETRY_DELAY_SECONDS: z.coerce.number().min(0).max(60).default(1),
    MODEL_MAX_OUTPUT_TOKENS: z.coerce.number().int().min(64).default(4096),
    THINKING_BUDGET_TOKENS: z.coerce.number().int().min(1024).default(8192),
    CONTEMPLATE_AGENTS: z.coerce.number().int().min(1).max(8).optional(),
    CONTEMPLATE_AGENT_TIMEOUT_SECONDS: z.coerce.number().positive().default(90),
    CONTEMPLATE_MAX_OUTPUT_TOKENS: z.coerce.number().int().min(64).default(4096),
    CONTEMPLATE_BUDGET_TOKENS: z.coerce.number().int().min(64).default(12_000),
    CIRCUIT_BREAKER_FAILURES: z.coerce.number().int().min(1).max(100).default(3),
    CIRCUIT_BREAKER_COOLDOWN_SECONDS: z.coerce.number().positive().default(30),
    CIRCUIT_BREAKER_MAX_COOLDOWN_SECONDS: z.coerce.number().positive().default(300),
    PROVIDER_CONCURRENCY: concurrencyMap,
    TOOLS: toolList,
    TOOLS_URL_READER: z.stringbool().default(false),
    TOOLS_MAX_STEPS: z.coerce.number().int().min(1).max(20).default(5),
    DEFAULT_TIMEZONE: timeZone,

    ACCESS_POLICY: z.enum(["pairing", "allowlist", "open"]).default("pairing"),
    ALLOWED_USERS: keyList<UserKey>("user"),
    GROUP_POLICY: z.enum(["off", "allowlist", "open"]).default("allowlist"),
    GROUP_ALLOWLIST: keyList<ChatKey>("chat"),
    ADMIN_USERS: keyList<UserKey>("user"),
    QUOTA_MESSAGES_PER_MINUTE: quota(10),
    QUOTA_CONTEMPLATIONS_PER_HOUR: quota(10),
    QUOTA_TOKENS_PER_DAY: quota(200_000),
    QUOTA_COST_PER_DAY_USD: optionalString.pipe(z.coerce.number<string | undefined>().positive("must be a positive amount in US dollars").optional()),
    HISTORY_RETENTION_DAYS: optionalString.pipe(z.coerce.number<string | undefined>().int().min(1).max(36_500).optional()),

    SYSTEM_PROMPT: optionalString,

    MEDIA_MAX_BYTES: z.coerce.number().int().min(1024).default(MEDIA_MAX_BYTES_DEFAULT),
    IMAGE_MAX_PIXELS: z.coerce.number().int().min(10_000).default(IMAGE_MAX_PIXELS_DEFAULT),
    IMAGE_MAX_SIDE: z.coerce.number().int().min(64).max(8192).default(IMAGE_MAX_SIDE_DEFAULT),
    IMAGES_IN_HISTORY_TURNS: z.coerce.number().int().min(0).max(50).default(IMAGES_IN_HISTORY_TURNS_DEFAULT),
    TRANSCRIBE_MODEL: optionalString.superRefine((value, ctx) => {
      if (value === undefined) return;
      try {
        parseTranscribeModel(value);
      } catch (error) {
        ctx.addIssue({ code: "custom", message: (error as Error).message });
      }
    }),
    TRANSCRIBE_BASE_URL: optionalString.pipe(url.optional()),
    TRANSCRIBE_API_KEY: optionalString,
    TRANSCRIBE_MAX_BYTES: z.coerce.number().int().min(1024).default(TRANSCRIBE_MAX_BYTES_DEFAULT),
    TRANSCRIBE_MAX_SECONDS: z.coerce.number().int().min(1).default(TRANSCRIBE_MAX_SECONDS_DEFAULT),
    HISTORY_MAX_TOKENS: z.coerce.number().int().min(500).default(24_000),
    HISTORY_CACHE_MB: z.coerce.number().min(0).default(HISTORY_CACHE_MB_DEFAULT),
    WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(8),
    INBOX_LEASE_SECONDS: z.coerce.number().min(1).max(3600).default(30),
    REDIS_URL: optionalString.pipe(z.string().regex(/^rediss?:\/\//, "must start with redis:// or rediss://").optional()),
    METRICS_TOKEN: optionalString.pipe(z.string().min(16, "must be at least 16 characters").optional()),

    // Not trimmed: spaces are part of a password. Unset or empty turns the admin page off.
    ADMIN_PASSWORD: z
      .string()
      .optional()
      .transform((v) => (v === "" ? undefined : v))
      .pipe(z.string().min(8, "must be at least 8 characters").optional()),
    LOG_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(14),
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
    const chains = {
      MODELS_INSTANT: c.MODELS_INSTANT,
      MODELS_THINKING: c.MODELS_THINKING,
      MODELS_CONTEMPLATING: c.MODELS_CONTEMPLATING.flat(),
      MODELS_SYNTHESIS: c.MODELS_SYNTHESIS,
    };
    for (const [name, chain] of Object.entries(chains)) {
      if (name !== "MODELS_INSTANT" && chain.length > 0 && c.MODELS_INSTANT.length === 0) {
        ctx.addIssue({ code: "custom", path: ["MODELS_INSTANT"], message: `is required when ${name} is set (it is the default answer)` });
      }
      if (chain.some((m) => m.provider === "openai-compatible") && !c.OPENAI_COMPATIBLE_BASE_URL) {
        ctx.addIssue({ code: "custom", path: ["OPENAI_COMPATIBLE_BASE_URL"], message: `is required when ${name} uses the openai-compatible provider` });
      }
      if (chain.some((m) => m.provider === "meta") && !c.META_API_KEY && !c.MODEL_API_KEY) {
        ctx.addIssue({ code: "custom", path: ["META_API_KEY"], message: `is required when ${name} uses the meta provider (MODEL_API_KEY, Meta's own name, works too)` });
      }
      const contributor = chain.find((m) => m.provider === "meta" && isContributorModel(m.model));
      if (contributor && !c.META_ALLOW_CONTRIBUTOR_MODELS) {
        ctx.addIssue({ code: "custom", path: [name], message: contributorRefusal(contributor.model) });
      }
    }
    if (isRetiredLlamaApi(c.META_BASE_URL)) ctx.addIssue({ code: "custom", path: ["META_BASE_URL"], message: RETIRED_LLAMA_API });
    if (c.CONTEMPLATE_AGENTS !== undefined && c.MODELS_CONTEMPLATING.length > c.CONTEMPLATE_AGENTS) {
      ctx.addIssue({
        code: "custom",
        path: ["MODELS_CONTEMPLATING"],
        message: `has ${c.MODELS_CONTEMPLATING.length} chains separated by | but CONTEMPLATE_AGENTS is ${c.CONTEMPLATE_AGENTS}`,
      });
    }
    if (c.TOOLS.includes("url_reader") && !c.TOOLS_URL_READER) {
      ctx.addIssue({ code: "custom", path: ["TOOLS"], message: "url_reader fetches web pages; turn it on with TOOLS_URL_READER=true" });
    }
  });

const RETIRED_LLAMA_API =
  `points at Meta's Llama API (api.llama.com), which Meta retired on 2026-07-06. Muse Spark is served by Meta's Model ` +
  `API: unset META_BASE_URL (the default is ${META_MODEL_API_URL}) and set META_API_KEY to a key from the Model API dashboard.`;

const contributorRefusal = (model: string) =>
  `uses meta:${model}, a -contributor model: Meta may train on what is sent to it, and here that is your users' private ` +
  `messages. Use the model without -contributor, or set META_ALLOW_CONTRIBUTOR_MODELS=true if your users have agreed to that.`;

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
    http: { port: e.PORT, host: e.HOST, trustProxy: e.TRUST_PROXY },
    logLevel: e.LOG_LEVEL,
    database: e.DATABASE_URL ? { kind: "postgres" as const, url: e.DATABASE_URL } : { kind: "pglite" as const, dataDir: e.PARLEY_DATA_DIR },
    dataDir: e.PARLEY_DATA_DIR,
    /** WEB_CHAT: the operator's chat behind the link printed at start, a public channel, or off. */
    webChat: { mode: e.WEB_CHAT },
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
    models: modelsConfig(e),
    contemplate: {
      agents: e.CONTEMPLATE_AGENTS ?? Math.max(3, e.MODELS_CONTEMPLATING.length),
      agentTimeoutMs: e.CONTEMPLATE_AGENT_TIMEOUT_SECONDS * 1000,
      maxOutputTokens: e.CONTEMPLATE_MAX_OUTPUT_TOKENS,
      budgetTokens: e.CONTEMPLATE_BUDGET_TOKENS,
    },
    tools: {
      enabled: e.TOOLS_URL_READER ? [...new Set([...e.TOOLS, "url_reader"])] : e.TOOLS,
      maxSteps: e.TOOLS_MAX_STEPS,
      timeZone: e.DEFAULT_TIMEZONE,
    },
    providers: {
      openai: { apiKey: e.OPENAI_API_KEY, baseURL: e.OPENAI_BASE_URL },
      anthropic: { apiKey: e.ANTHROPIC_API_KEY },
      google: { apiKey: e.GOOGLE_GENERATIVE_AI_API_KEY },
      ollama: { baseURL: e.OLLAMA_BASE_URL ?? "http://127.0.0.1:11434" },
      openaiCompatible: { baseURL: e.OPENAI_COMPATIBLE_BASE_URL, apiKey: e.OPENAI_COMPATIBLE_API_KEY },
      meta: { baseURL: e.META_BASE_URL, apiKey: e.META_API_KEY ?? e.MODEL_API_KEY, webSearch: e.META_WEB_SEARCH },
    },
    access: {
      policy: e.ACCESS_POLICY,
      allowedUsers: new Set<UserKey>(e.ALLOWED_USERS),
      adminUsers: new Set<UserKey>(e.ADMIN_USERS),
      groups: { policy: e.GROUP_POLICY, allowlist: new Set<ChatKey>(e.GROUP_ALLOWLIST) },
    },
    /** Per-user defaults (null: no limit); a user's own values on the admin page override them. */
    quotas: {
      messagesPerMinute: e.QUOTA_MESSAGES_PER_MINUTE || null,
      contemplationsPerHour: e.QUOTA_CONTEMPLATIONS_PER_HOUR || null,
      tokensPerDay: e.QUOTA_TOKENS_PER_DAY || null,
      costPerDayUsd: e.QUOTA_COST_PER_DAY_USD ?? null,
    },
    privacy: { historyRetentionDays: e.HISTORY_RETENTION_DAYS },
    media: {
      maxBytes: e.MEDIA_MAX_BYTES,
      image: { maxPixels: e.IMAGE_MAX_PIXELS, maxSide: e.IMAGE_MAX_SIDE, maxFrames: IMAGE_MAX_FRAMES_DEFAULT },
      imagesInHistoryTurns: e.IMAGES_IN_HISTORY_TURNS,
      transcribe: e.TRANSCRIBE_MODEL
        ? {
            model: e.TRANSCRIBE_MODEL,
            // Always explicit: left undefined, the AI SDK would read OPENAI_* from process.env by itself.
            baseURL: e.TRANSCRIBE_BASE_URL ?? e.OPENAI_BASE_URL ?? "https://api.openai.com/v1",
            apiKey: e.TRANSCRIBE_API_KEY ?? e.OPENAI_API_KEY ?? "",
            maxBytes: e.TRANSCRIBE_MAX_BYTES,
            maxSeconds: e.TRANSCRIBE_MAX_SECONDS,
          }
        : undefined,
    },
    conversation: {
      systemPrompt: e.SYSTEM_PROMPT,
      historyMaxTokens: e.HISTORY_MAX_TOKENS,
      /** Recent turns kept in memory, so a message reads only the turns added since the last one (0: none). */
      historyCacheBytes: Math.round(e.HISTORY_CACHE_MB * 2 ** 20),
    },
    workers: { concurrency: e.WORKER_CONCURRENCY },
    inbox: { leaseMs: e.INBOX_LEASE_SECONDS * 1000 },
    /** Shared state of several Parley processes besides PostgreSQL: the platforms' rate limits. */
    redis: e.REDIS_URL ? { url: e.REDIS_URL } : undefined,
    metrics: { token: e.METRICS_TOKEN },
    admin: { password: e.ADMIN_PASSWORD },
    logs: { retentionDays: e.LOG_RETENTION_DAYS },
  };
}

/**
 * The model chains of the three modes and how the router treats them. Thinking defaults to the instant chain (with
 * reasoning effort high where the model supports it); contemplating's agents and the synthesis to the thinking chain.
 */
function modelsConfig(e: z.output<typeof schema>) {
  const instant = e.MODELS_INSTANT;
  const thinking = e.MODELS_THINKING.length > 0 ? e.MODELS_THINKING : instant;
  return {
    instant,
    thinking,
    contemplating: e.MODELS_CONTEMPLATING.length > 0 ? e.MODELS_CONTEMPLATING : [thinking],
    synthesis: e.MODELS_SYNTHESIS.length > 0 ? e.MODELS_SYNTHESIS : thinking,
    timeoutMs: e.MODEL_TIMEOUT_SECONDS * 1000,
    retries: e.MODEL_RETRIES,
    retryDelayMs: e.MODEL_RETRY_DELAY_SECONDS * 1000,
    maxOutputTokens: e.MODEL_MAX_OUTPUT_TOKENS,
    thinkingBudgetTokens: e.THINKING_BUDGET_TOKENS,
    capabilities: e.MODEL_CAPABILITIES,
    costs: e.MODEL_COSTS,
    breaker: {
      failureThreshold: e.CIRCUIT_BREAKER_FAILURES,
      cooldownMs: e.CIRCUIT_BREAKER_COOLDOWN_SECONDS * 1000,
      maxCooldownMs: Math.max(e.CIRCUIT_BREAKER_COOLDOWN_SECONDS, e.CIRCUIT_BREAKER_MAX_COOLDOWN_SECONDS) * 1000,
    },
    concurrency: e.PROVIDER_CONCURRENCY,
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
    config.providers.meta.apiKey,
    config.admin.password,
    config.media.transcribe?.apiKey,
    config.metrics.token,
    config.redis ? decodeURIComponent(new URL(config.redis.url).password) : undefined,
  ].filter((s): s is string => typeof s === "string" && s.length >= 4);
}
