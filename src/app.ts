import { setMaxListeners } from "node:events";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { sql } from "drizzle-orm";
import { createTelegramChannel } from "../channels/telegram/adapter.ts";
import { createMessengerChannel } from "../channels/messenger/adapter.ts";
import { createWebChannel, createWebChatOffRouter } from "../channels/web/adapter.ts";
import { loadWebChatCredentials, type CredentialNote, type WebChatCredentials } from "../channels/web/credentials.ts";
import { createWhatsAppCloudChannel } from "../channels/whatsapp-cloud/adapter.ts";
import { createWhatsAppWebChannel } from "../channels/whatsapp/adapter.ts";
import type { CreateWhatsAppClient } from "../channels/whatsapp/client-port.ts";
import type { Config } from "./config.ts";
import { createConversationService } from "./conversation/service.ts";
import { createConversationStore } from "./conversation/store.ts";
import { tightenDataDir, type Tightened } from "./core/data-dir.ts";
import { errorMessage } from "./core/errors.ts";
import type { ChannelAdapter, ChannelName, InboundMessage } from "./core/types.ts";
import { openDatabase, pgliteDirectory, type Database } from "./db/client.ts";
import { closeServer, createHttpApp, listen, type HttpAppOptions } from "./http/server.ts";
import { createClients } from "./http/client.ts";
import { trustsAddress } from "./http/trust-proxy.ts";
import { createAlbums } from "./inbox/albums.ts";
import { createInbox, type Accepted } from "./inbox/inbox.ts";
import { startWorkers, type WorkerPool } from "./inbox/workers.ts";
import { createModelFactory, createProviderTools } from "./models/registry.ts";
import { createRouter, type ProviderHealth } from "./models/router.ts";
import { configuredModels, modeSettingsFrom } from "./modes/settings.ts";
import { createScrubber, type Logger } from "./observability/logger.ts";
import type { LogSink } from "./observability/log-sink.ts";
import { createAdminRouter } from "./admin/router.ts";
import { createChatCommands } from "./access/chat-commands.ts";
import { createAccessGate } from "./access/gate.ts";
import { startRetention } from "./privacy/retention.ts";
import { createQuotaGuard } from "./quotas/guard.ts";
import { createUserLimiter } from "./quotas/user-limiter.ts";
import { createCluster } from "./cluster/cluster.ts";
import { createMetrics, createMetricsHandler, instrumentInbox } from "./observability/metrics.ts";

/**
 * Builds a running Parley from a configuration: database, inbox, workers, model router, channels and the HTTP
 * server. main.ts calls it with the real process settings; tests call it with fakes' addresses.
 */

export interface ParleyOptions {
  config: Config;
  log: Logger;
  secrets: readonly string[];
  /** Timings, shorter in tests: the inbox lease (a "crashed" claim is taken over once it runs out), the idle poll,
   * and the first retry delay after a failure (it doubles with each attempt). */
  tuning?: { leaseMs?: number; pollMs?: number; retryBaseMs?: number; retentionFirstRunMs?: number };
  /** The sink `log` writes to (main.ts creates both): attached to the database here for the logs table and shown as
   * the admin page's live tail. Without it the logs table stays empty. */
  logSink?: LogSink;
  /** Builds the whatsapp-web.js client (default: the real one, driving Chromium); tests pass a fake. */
  createWhatsAppClient?: CreateWhatsAppClient;
  /** The web chat's token and cookie key (loadStartupCredentials); required unless WEB_CHAT=off. */
  webChatCredentials?: WebChatCredentials;
}

/**
 * What is read from the data directory before the first log line: the web chat's credentials (unless WEB_CHAT=off).
 * Their values are `secrets`, to add to secretsOf(config) for the logger, so no log line or error ever carries them.
 */
export async function loadStartupCredentials(
  config: Config,
): Promise<{ webChat?: WebChatCredentials; secrets: string[]; notes: CredentialNote[] }> {
  if (config.webChat.mode === "off") return { secrets: [], notes: [] };
  const { credentials, notes } = await loadWebChatCredentials(config.dataDir);
  return { webChat: credentials, secrets: [credentials.token, credentials.secret], notes };
}

export interface Parley {
  /** The HTTP server's base URL, e.g. http://127.0.0.1:3000. */
  url: string;
  database: Database;
  adapters: ReadonlyMap<ChannelName, ChannelAdapter>;
  /** The operator's web chat link (http://127.0.0.1:<port>/chat#token=…), to print once at start; unset when off. */
  webChatLink?: string;
  /** Per model provider: circuit breaker state (closed, open until …, half-open), failures, limiter load. */
  modelHealth(): ProviderHealth[];
  /** Stops receiving, lets in-flight work finish or re-queue it, and closes the database. */
  stop(): Promise<void>;
}

export async function startParley(options: ParleyOptions): Promise<Parley> {
  const { config, log } = options;
  const leaseMs = options.tuning?.leaseMs ?? config.inbox.leaseMs;
  const lifetime = new AbortController();
  // Every message being answered listens for shutdown on it: hundreds at once is normal, not a leak to warn about.
  setMaxListeners(0, lifetime.signal);
  const scrub = createScrubber(options.secrets);

  // What an earlier run or a copy left open to other local users is closed before anything is read or written;
  // then PGlite's directory again once it has opened and once it has closed, as it writes some files 0666 whatever
  // the umask. Said once, with a count.
  const found = await tightenDataDir(config.dataDir);
  const pglite = pgliteDirectory(config.database);
  const database = await openWithRetry(config, log);
  reportTightened(log, found, pglite ? await tightenDataDir(pglite) : undefined);
  options.logSink?.attach(database.db, { retentionDays: config.logs.retentionDays });
  const store = createConversationStore(database.db, { historyCacheBytes: config.conversation.historyCacheBytes });
  const rawInbox = createInbox({ db: database.db, leaseMs });
  const metrics = createMetrics({ queueDepth: () => rawInbox.depth() });
  const inbox = instrumentInbox(rawInbox, metrics);
  const cluster = await createCluster({ database: config.database, redisUrl: config.redis?.url, log });

  const chain = config.models.instant;
  const router =
    chain.length === 0
      ? null
      : createRouter({
          ...config.models,
          chain,
          pool: configuredModels(config.models),
          models: createModelFactory(config.providers),
          providerTools: createProviderTools(config.providers),
          log: log.child({ source: "models" }),
          record: (call) => {
            metrics.modelCall(call);
            return store.recordCall({ ...call, error: call.error === undefined ? undefined : scrub(call.error) });
          },
        });
  if (!router) log.warn("no model is configured: set MODELS_INSTANT (e.g. openai:gpt-5-mini) and the provider's key; every reply will say so");

  const adapters = new Map<ChannelName, ChannelAdapter>();
  /** Channels whose adapter runs in another process of the cluster right now: their messages are left to it. */
  const elsewhere = new Map<ChannelName, () => boolean>();
  const routers: HttpAppOptions["routers"] = [];
  /** Who sent a request (TRUST_PROXY): every route reads the client's address and HTTPS from here or req.ip/req.secure. */
  const clients = createClients(trustsAddress(config.http.trustProxy));
  const webChat = config.webChat.mode === "off" ? undefined : options.webChatCredentials;
  if (config.webChat.mode !== "off") {
    if (!webChat) throw new Error("the web chat needs its credentials: pass webChatCredentials from loadStartupCredentials");
    const web = createWebChannel({
      log,
      dataDir: config.dataDir,
      maxUploadBytes: config.media.maxBytes,
      mode: config.webChat.mode,
      credentials: webChat,
    });
    adapters.set("web", web.adapter);
    routers.push({ path: "/chat", router: web.router });
  } else {
    routers.push({ path: "/chat", router: createWebChatOffRouter() });
    log.info("the web chat is off (WEB_CHAT=off)");
  }
  if (config.telegram) {
    // The 429 pause holds for every process of the bot (with Redis), so the receiver gets it too.
    const deps = { ...config.telegram, log, pause: cluster.telegramPause(config.telegram.token) };
    const telegram = createTelegramChannel({ ...deps, throttler: cluster.telegramThrottler(deps.token) });
    // Long polling runs in one process of a cluster (the others would take its updates away); webhooks in all.
    adapters.set(
      "telegram",
      telegram.webhookHandler
        ? telegram.adapter
        : cluster.leaderOnly(`telegram-polling:${deps.token.split(":")[0]}`, telegram.adapter, () => createTelegramChannel(deps).adapter,
            "standby: another Parley process receives Telegram updates"),
    );
    if (telegram.webhookHandler) routers.push({ path: "/webhooks/telegram", router: telegram.webhookHandler, method: "post" });
  } else {
    log.info("Telegram is off: set TELEGRAM_BOT_TOKEN to connect a bot");
  }
  // Meta's webhooks verify a signature over the raw body: no JSON body parser may run before these routers.
  if (config.whatsappCloud) {
    const whatsapp = createWhatsAppCloudChannel({ ...config.whatsappCloud, log });
    adapters.set("whatsapp-cloud", whatsapp.adapter);
    routers.push({ path: "/webhooks/whatsapp", router: whatsapp.router });
  }
  if (config.whatsappWeb) {
    const deps = { dataDir: config.dataDir, chromiumPath: config.whatsappWeb.chromiumPath, log, createClient: options.createWhatsAppClient };
    // One linked session per database, whatever the data dir: it runs (receives and sends) in one process at a time.
    const whatsapp = cluster.leaderOnlyChannel("whatsapp-web:session", () => createWhatsAppWebChannel(deps).adapter,
      "standby: another Parley process runs the WhatsApp session");
    adapters.set("whatsapp", whatsapp.adapter);
    elsewhere.set("whatsapp", () => !whatsapp.leads());
  } else {
    log.info("WhatsApp (personal number) is off: set WHATSAPP_WEB=true to link it by QR code");
  }
  if (config.messenger) {
    const messenger = createMessengerChannel({ ...config.messenger, log });
    adapters.set("messenger", messenger.adapter);
    routers.push({ path: "/webhooks/messenger", router: messenger.router });
  }

  routers.push({
    path: "/admin",
    router: await createAdminRouter({
      db: database.db,
      adapters,
      store,
      logSink: options.logSink,
      password: config.admin.password,
      host: config.http.host,
      clients,
      log,
      providerHealth: router ? () => router.health() : undefined,
      quotaDefaults: config.quotas,
      webChatLink: webChat ? `/chat#token=${webChat.token}` : undefined,
    }),
  });

  let workers: WorkerPool | undefined;
  const onMessage = async (message: InboundMessage) => {
    // An idle worker is set aside first, so the row can be stored already claimed for it: no claim query, no wake.
    const slot = workers?.reserve(message.channel);
    let accepted: Accepted;
    try {
      accepted = await inbox.accept(message, { claim: slot !== undefined });
    } catch (error) {
      slot?.release();
      throw error;
    }
    if (accepted.setAside !== undefined) {
      log.warn({ channel: message.channel, id: message.platformMessageId, reason: accepted.setAside }, "message set aside: the database refused it");
    } else if (accepted.duplicate) log.debug({ channel: message.channel, id: message.platformMessageId }, "duplicate delivery ignored");
    else metrics.messageReceived(message.channel);
    if (accepted.claimed) slot!.give(accepted.claimed);
    else if (slot) slot.release();
    else workers?.wake();
  };

  routers.push({ path: "/metrics", router: createMetricsHandler(metrics, config.metrics.token, clients), method: "get" });
  const app = createHttpApp({
    routers,
    clients,
    log,
    readiness: async () => {
      // States only: a detail can carry a login QR code, which must not be readable by anyone who can reach /readyz.
      const channels = Object.fromEntries([...adapters].map(([name, adapter]) => [name, adapter.status().state]));
      try {
        await database.db.execute(sql`select 1`);
        return { ok: true, database: "ok", channels };
      } catch {
        return { ok: false, database: "unreachable", channels };
      }
    },
  });
  const server: Server = await listen(app, config.http.port, config.http.host);
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`;
  // Listening on every address (0.0.0.0, ::): the link names this machine's loopback.
  const linkOrigin = address.address === "0.0.0.0" || address.address === "::" ? `http://127.0.0.1:${address.port}` : url;
  const webChatLink = webChat ? `${linkOrigin}/chat#token=${webChat.token}` : undefined;

  const userLimiter = createUserLimiter({ redisUrl: config.redis?.url, log });
  const retention = config.privacy.historyRetentionDays
    ? startRetention({
        db: database.db,
        days: config.privacy.historyRetentionDays,
        log: log.child({ source: "privacy" }),
        firstRunMs: options.tuning?.retentionFirstRunMs,
      })
    : undefined;
  const service = createConversationService({
    store,
    inbox,
    adapters,
    router,
    modes: modeSettingsFrom(config),
    tools: config.tools,
    scrub,
    access: createAccessGate({ db: database.db, settings: config.access }),
    quotas: createQuotaGuard({ db: database.db, defaults: config.quotas, timeZone: config.tools.timeZone }),
    userLimiter,
    chatCommands: createChatCommands({
      db: database.db,
      access: config.access,
      quotas: config.quotas,
      timeZone: config.tools.timeZone,
      log: log.child({ source: "access" }),
    }),
    media: { db: database.db, config: config.media, imagesInHistoryTurns: config.media.imagesInHistoryTurns },
    albums: createAlbums(database.db),
    systemPrompt: config.conversation.systemPrompt,
    historyMaxTokens: config.conversation.historyMaxTokens,
    log: log.child({ source: "conversation" }),
    retryBaseMs: options.tuning?.retryBaseMs,
  });
  workers = startWorkers({
    inbox,
    handle: service.handle,
    concurrency: config.workers.concurrency,
    channels: () => [...adapters.keys()].filter((name) => !elsewhere.get(name)?.()),
    leaseMs,
    pollMs: options.tuning?.pollMs,
    log: log.child({ source: "inbox" }),
    signal: lifetime.signal,
  });

  await Promise.all(
    [...adapters.values()].map((adapter) =>
      adapter.start(onMessage, lifetime.signal).catch((error: unknown) => {
        log.error({ err: error, channel: adapter.name }, "channel failed to start");
      }),
    ),
  );
  log.info({ url, database: database.kind, channels: [...adapters.keys()], models: chain.map((m) => `${m.provider}:${m.model}`) }, "Parley is running");

  let stopping: Promise<void> | undefined;
  return {
    url,
    database,
    adapters,
    webChatLink,
    modelHealth: () => router?.health() ?? [],
    stop: () =>
      (stopping ??= (async () => {
        lifetime.abort(new Error("Parley is stopping"));
        await workers?.done;
        await Promise.all([userLimiter.stop(), retention?.stop()]);
        await cluster.stop();
        await closeServer(server);
        await options.logSink?.detach();
        await database.close();
        const left = pglite
          ? await tightenDataDir(pglite).catch((error: unknown) => log.warn({ err: error }, "cannot check the database directory's permissions"))
          : undefined;
        if (left?.tightened) log.debug({ dir: left.dir, files: left.tightened }, "files the database wrote made owner-only");
        log.info("Parley stopped");
      })()),
  };
}

/** One warning for what was found open at start (a count, never each file); PGlite's own fresh files at debug. */
function reportTightened(log: Logger, found: Tightened, afterOpen: Tightened | undefined): void {
  if (found.tightened > 0) {
    log.warn({ dir: found.dir, files: found.tightened },
      "files in the data directory were open to other users; they are now the operator's alone (directories 0700, files 0600)");
  }
  if (afterOpen?.tightened) log.debug({ dir: afterOpen.dir, files: afterOpen.tightened }, "files the database created made owner-only");
  const failed = Math.max(found.failed, afterOpen?.failed ?? 0);
  if (failed > 0) {
    log.warn({ dir: found.dir, files: failed }, "some files in the data directory could not be made owner-only (another user owns them?); check their permissions");
  }
}

async function openWithRetry(config: Config, log: Logger): Promise<Database> {
  for (let attempt = 1; ; attempt++) {
    try {
      const database = await openDatabase(config.database, log);
      await database.migrate();
      return database;
    } catch (error) {
      if (attempt >= 5) {
        throw new Error(
          `cannot open the database (${config.database.kind === "postgres" ? "check DATABASE_URL" : `PGlite in ${config.dataDir}`}): ${
            errorMessage(error)
          }`,
          { cause: error },
        );
      }
      log.warn({ err: error, attempt }, "database not reachable yet; retrying");
      await new Promise((resolve) => setTimeout(resolve, 1_000 * attempt));
    }
  }
}
