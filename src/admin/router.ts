import express, { type NextFunction, type Request, type Response, type Router } from "express";
import helmet from "helmet";
import type { ConversationStore } from "../conversation/store.ts";
import { isChannelName, isKey } from "../core/keys.ts";
import type { ChannelAdapter, ChannelName } from "../core/types.ts";
import type { Db } from "../db/client.ts";
import type { Clients } from "../http/client.ts";
import { LOG_LEVELS, type LogSink } from "../observability/log-sink.ts";
import type { Logger } from "../observability/logger.ts";
import { assetsHandler } from "./assets.ts";
import { createAuth, ctxOf, sessionIdOf } from "./auth.ts";
import { decideAdminAvailability } from "./availability.ts";
import { requireSameOrigin } from "./csrf.ts";
import { createLogTail } from "./log-tail.ts";
import { mediaHandler } from "./media.ts";
import { bodyText, queryCursor, queryDate, queryOneOf, queryPositiveInt, queryText } from "./params.ts";
import { createPasswordCheck } from "./password.ts";
import { loadConversation, listConversations, type ConversationFilters } from "./queries-conversations.ts";
import { listLogs, type LogFilters } from "./queries-logs.ts";
import { loadOverview } from "./queries-overview.ts";
import {
  getUser,
  listUsers,
  MODES,
  NO_USAGE,
  QUOTA_FIELDS,
  setUserMode,
  setUserQuotas,
  setUserStatus,
  usageByMode,
  usageOf,
  USER_STATUSES,
  type QuotaOverrides,
} from "./queries-users.ts";
import { approvePairing, listPendingPairings, normalizeCode } from "../access/pairing.ts";
import type { QuotaLimits } from "../quotas/guard.ts";
import { createFailureLimiter } from "./rate-limit.ts";
import { createCheckQueue } from "./check-queue.ts";
import { createSessionStore, type Session } from "./sessions.ts";
import { conversationListView, conversationView } from "./views-conversations.ts";
import { refusedView } from "./views-login.ts";
import { logsView } from "./views-logs.ts";
import { overviewView, type ProviderHealth } from "./views-overview.ts";
import { userListView, userView } from "./views-users.ts";

/**
 * The admin page, mounted by the composition root at /admin: overview, conversations, users and logs, rendered on
 * the server. Without ADMIN_PASSWORD it is off and every /admin path is a plain 404.
 */

export interface AdminDeps {
  db: Db;
  adapters: ReadonlyMap<ChannelName, ChannelAdapter>;
  /** Deleting a user's data goes through the conversation store, the one place that knows what "all" means. */
  store: Pick<ConversationStore, "forgetUser">;
  /** The sink the process logger writes to: the live tail. Without it the logs page shows stored lines only. */
  logSink?: LogSink;
  /** The configured ADMIN_PASSWORD and HOST decide whether the page is on. */
  password: string | undefined;
  host: string;
  /** Who sent a request (TRUST_PROXY): sign-in limits count per client address. */
  clients: Clients;
  log: Logger;
  /** The model router's view of each provider (circuit breaker); shown on the overview when given. */
  providerHealth?: () => readonly ProviderHealth[];
  /** QUOTA_* defaults, shown beside a user's own quotas. */
  quotaDefaults?: QuotaLimits;
  /** The operator's web chat link (`/chat#token=…`), shown on the overview to a signed-in admin; unset when off. */
  webChatLink?: string;
  clock?: () => Date;
  /** Signed-in sessions end after this long without a request. */
  sessionIdleMs?: number;
  /** Failed sign-ins allowed per client address within `signInWindowMs` before that address is refused. */
  signInFailures?: number;
  signInWindowMs?: number;
}

/** The sign-in limits the README states: per address, and across all addresses. */
export const SIGN_IN_LIMITS = {
  failuresPerAddress: 10,
  windowMs: 15 * 60 * 1000,
  checksPerSecond: 2,
  checksBurst: 5,
  maxWaiting: 100,
};

const NOTICES: Record<string, string> = {
  allowed: "The user is approved.",
  blocked: "The user is blocked.",
  pending: "The user is back to pending.",
  mode: "The default mode is saved.",
  deleted: "All of the user's data is deleted.",
  approved: "The code is approved: that user may write now.",
  "no-code": "There is no such pending code (codes are valid for an hour).",
  quotas: "The quotas are saved.",
};

export async function createAdminRouter(deps: AdminDeps): Promise<Router> {
  const log = deps.log.child({ source: "admin" });
  const router = express.Router();
  const availability = decideAdminAvailability(deps.host, deps.password);
  if (availability.type === "off") {
    log[availability.level](availability.reason);
    router.use((_req, res) => {
      res.status(404).type("text/plain; charset=utf-8").send("Not found");
    });
    return router;
  }

  const { db } = deps;
  const clock = deps.clock ?? (() => new Date());
  const sessions = createSessionStore({ idleMs: deps.sessionIdleMs ?? 30 * 60 * 1000 });
  const limiter = createFailureLimiter({
    max: deps.signInFailures ?? SIGN_IN_LIMITS.failuresPerAddress,
    windowMs: deps.signInWindowMs ?? SIGN_IN_LIMITS.windowMs,
  });
  const checks = createCheckQueue({
    perSecond: SIGN_IN_LIMITS.checksPerSecond,
    burst: SIGN_IN_LIMITS.checksBurst,
    maxWaiting: SIGN_IN_LIMITS.maxWaiting,
  });
  const auth = createAuth({ sessions, password: await createPasswordCheck(availability.password), limiter, checks, clients: deps.clients, log });
  const tail = deps.logSink ? createLogTail(deps.logSink) : undefined;
  const form = express.urlencoded({ extended: false, limit: "16kb", parameterLimit: 20 });

  router.use(
    helmet({
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          defaultSrc: ["'none'"],
          scriptSrc: ["'self'"],
          styleSrc: ["'self'"],
          imgSrc: ["'self'"],
          connectSrc: ["'self'"],
          formAction: ["'self'"],
          frameAncestors: ["'none'"],
          baseUri: ["'none'"],
        },
      },
      // The operator's reverse proxy decides about HSTS for the whole host name.
      strictTransportSecurity: false,
      // Not "no-referrer": with it Chromium sends `Origin: null` on our own form posts, which the CSRF check refuses.
      // "same-origin" still sends nothing to other sites.
      referrerPolicy: { policy: "same-origin" },
      xFrameOptions: { action: "deny" },
    }),
  );
  router.use((_req, res, next) => {
    res.set("Cache-Control", "no-store");
    next();
  });
  router.use(requireSameOrigin);

  router.get("/assets/:name", assetsHandler());
  router.get("/login", auth.showLogin);
  router.post("/login", form, auth.signIn);

  router.use((req, res, next) => (req.method === "POST" ? form(req, res, next) : next()));
  router.use(auth.requireSignedIn);

  router.post("/logout", auth.signOut);

  router.get("/", async (req, res) => {
    const stats = await loadOverview(db, clock());
    const channels = [...deps.adapters].map(([name, adapter]) => ({ name, status: adapter.status() }));
    send(res, overviewView(ctx(req, res), { channels, stats, health: deps.providerHealth?.() ?? [], webChatLink: deps.webChatLink }).value);
  });

  router.get("/api/overview", async (_req, res) => {
    const stats = await loadOverview(db, clock());
    const channels = Object.fromEntries([...deps.adapters].map(([name, adapter]) => [name, adapter.status()]));
    // Only the fields the page shows: an error text from the router is not passed through unscrubbed.
    const health = (deps.providerHealth?.() ?? []).map(({ provider, state, consecutiveFailures, openUntil, running, queued, concurrency }) => ({
      provider,
      state,
      consecutiveFailures,
      openUntil,
      running,
      queued,
      concurrency,
    }));
    res.json({ channels, ...stats, health });
  });

  router.get("/conversations", async (req, res) => {
    const channel = queryText(req, "channel", 20);
    const filters: ConversationFilters = {
      channel: channel !== undefined && isChannelName(channel) ? channel : undefined,
      user: queryText(req, "user", 300),
      mode: queryOneOf(req, "mode", MODES),
      from: queryDate(req, "from"),
      to: queryDate(req, "to"),
      hasError: queryText(req, "error", 5) === "1",
      q: queryText(req, "q", 200),
    };
    const before = queryCursor(req, "before");
    const result = await listConversations(db, filters, before);
    send(res, conversationListView(ctx(req, res), filters, result, before === undefined).value);
  });

  router.get("/conversations/:id", async (req, res, next) => {
    const id = Number(req.params.id);
    if (!Number.isSafeInteger(id) || id <= 0) return next();
    const detail = await loadConversation(db, id, { before: queryPositiveInt(req, "before"), after: queryPositiveInt(req, "after") });
    if (!detail) return next();
    send(res, conversationView(ctx(req, res), detail).value);
  });

  router.get("/media/:sha256", mediaHandler(db));

  router.get("/users", async (req, res) => {
    const channel = queryText(req, "channel", 20);
    const filters = {
      status: queryOneOf(req, "status", USER_STATUSES),
      channel: channel !== undefined && isChannelName(channel) ? channel : undefined,
      q: queryText(req, "q", 200),
    };
    const pageNumber = Math.min(queryPositiveInt(req, "page") ?? 1, 100_000);
    const { rows, more } = await listUsers(db, filters, pageNumber);
    const usage = await usageOf(db, rows.map((r) => r.key));
    const pending = await listPendingPairings(db, clock());
    send(res, userListView(ctx(req, res), filters, rows, usage, pageNumber, more, noticeOf(req), pending).value);
  });

  router.post("/pairing/:code/approve", async (req, res) => {
    const code = normalizeCode(String(req.params.code ?? ""));
    const approved = code === undefined ? undefined : await approvePairing(db, code, clock());
    if (approved) log.info({ user: approved.user }, "admin approved a pairing code");
    res.redirect(303, `${req.baseUrl}/users?notice=${approved ? "approved" : "no-code"}`);
  });

  router.get("/users/:key", async (req, res, next) => {
    const key = userKeyParam(req);
    const user = key === undefined ? undefined : await getUser(db, key);
    if (!user) return next();
    const usage = (await usageOf(db, [user.key])).get(user.key) ?? NO_USAGE;
    const byMode = await usageByMode(db, user.key);
    send(res, userView(ctx(req, res), user, usage, noticeOf(req), { byMode, quotaDefaults: deps.quotaDefaults }).value);
  });

  router.post("/users/:key/quotas", async (req, res, next) => {
    const key = userKeyParam(req);
    if (key === undefined) return next();
    const quotas = {} as QuotaOverrides;
    for (const field of QUOTA_FIELDS) {
      const raw = (bodyText(req, field, 30) ?? "").trim();
      const value = raw === "" ? null : Number(raw);
      if (value !== null && !(Number.isFinite(value) && value >= 0 && (field === "quotaCostPerDayUsd" || Number.isInteger(value)))) {
        res.status(400);
        send(res, refusedView(ctx(req, res), "Not saved", "Quotas are whole numbers (the cost a number of dollars), 0 or more.").value);
        return;
      }
      quotas[field] = value;
    }
    if (!(await setUserQuotas(db, key, quotas))) return next();
    log.info({ user: key, ...quotas }, "admin changed a user's quotas");
    res.redirect(303, `${req.baseUrl}/users/${encodeURIComponent(key)}?notice=quotas`);
  });

  router.post("/users/:key/status", async (req, res, next) => {
    const key = userKeyParam(req);
    const status = bodyText(req, "status", 20);
    if (key === undefined || !(USER_STATUSES as readonly string[]).includes(status ?? "")) return next();
    if (!(await setUserStatus(db, key, status as (typeof USER_STATUSES)[number]))) return next();
    log.info({ user: key, status }, "admin changed a user's status");
    res.redirect(303, `${req.baseUrl}/users/${encodeURIComponent(key)}?notice=${status}`);
  });

  router.post("/users/:key/mode", async (req, res, next) => {
    const key = userKeyParam(req);
    const mode = bodyText(req, "mode", 20);
    if (key === undefined || !(MODES as readonly string[]).includes(mode ?? "")) return next();
    if (!(await setUserMode(db, key, mode as (typeof MODES)[number]))) return next();
    log.info({ user: key, mode }, "admin changed a user's default mode");
    res.redirect(303, `${req.baseUrl}/users/${encodeURIComponent(key)}?notice=mode`);
  });

  router.post("/users/:key/delete", async (req, res, next) => {
    const key = userKeyParam(req);
    if (key === undefined) return next();
    if (bodyText(req, "confirm", 10) !== "yes") {
      res.status(400);
      send(res, refusedView(ctx(req, res), "Not deleted", "Tick the confirmation box to delete all of this user's data.").value);
      return;
    }
    const { messages } = await deps.store.forgetUser(key as `${ChannelName}:${string}`);
    log.info({ user: key, messages }, "admin deleted a user's data");
    res.redirect(303, `${req.baseUrl}/users?notice=deleted`);
  });

  router.get("/logs", async (req, res) => {
    const filters: LogFilters = {
      level: queryOneOf(req, "level", LOG_LEVELS),
      source: queryText(req, "source", 100),
      q: queryText(req, "q", 200),
    };
    const before = queryPositiveInt(req, "before");
    const older = await listLogs(db, filters, before);
    const sources = [...new Set((deps.logSink?.recent() ?? []).map((e) => e.source).filter((s): s is string => s !== null))].sort();
    send(res, logsView(ctx(req, res), filters, older, sources, tail !== undefined, before === undefined).value);
  });

  router.get("/logs/stream", (req, res) => {
    if (!tail) {
      res.status(404).json({ error: "The live tail is not connected." });
      return;
    }
    const id = sessionIdOf(req);
    const filters = { level: queryOneOf(req, "level", LOG_LEVELS), source: queryText(req, "source", 100), q: queryText(req, "q", 200) };
    tail(req, res, filters, () => sessions.isSignedIn(id));
  });

  router.use((req, res) => {
    res.status(404);
    send(res, refusedView(ctx(req, res), "Not found", "There is nothing at this address.").value);
  });

  router.use((error: unknown, req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(error);
    const status = (error as { status?: unknown }).status;
    if (typeof status === "number" && status >= 400 && status < 500) {
      res.status(status).type("text/plain; charset=utf-8").send(status === 413 ? "The form is too large." : "Bad request.");
      return;
    }
    log.error({ err: error, path: req.path }, "admin request failed");
    res.status(500).type("text/plain; charset=utf-8").send("Something went wrong; the log has the details.");
  });

  log.info("the admin page is on at /admin");
  return router;
}

function ctx(req: Request, res: Response) {
  return ctxOf(req, res.locals.session as Session | undefined);
}

function send(res: Response, body: string): void {
  res.type("text/html; charset=utf-8").send(body);
}

function noticeOf(req: Request): string | undefined {
  const code = queryText(req, "notice", 20);
  return code !== undefined && Object.hasOwn(NOTICES, code) ? NOTICES[code] : undefined;
}

function userKeyParam(req: Request): string | undefined {
  const key = req.params.key;
  return typeof key === "string" && key.length <= 300 && isKey(key) ? key : undefined;
}

