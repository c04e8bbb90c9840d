import { randomUUID } from "node:crypto";
import express, { type NextFunction, type Request, type Response, type Router } from "express";
import type { Logger } from "pino";
import { DeliveryError, errorMessage } from "../../src/core/errors.ts";
import { isKey, parseKey } from "../../src/core/keys.ts";
import { formatMegabytes } from "../../src/core/read-capped.ts";
import type { ChannelAdapter, ChannelStatus, ChatKey, OnMessage } from "../../src/core/types.ts";
import { limitKey } from "../../src/http/client.ts";
import { loadWebAssets } from "./assets.ts";
import type { WebChatCredentials } from "./credentials.ts";
import { createEventHub } from "./event-hub.ts";
import { createFileStore, isFileToken } from "./file-store.ts";
import { createWindowLimiter, type Take } from "./limits.ts";
import { normalizeWebMessage } from "./normalize.ts";
import { createWebSessions, identityKey, isWebChatId, type WebIdentity } from "./sessions.ts";
import { createUploadStore } from "./uploads.ts";

/**
 * The browser chat: the zero-setup channel. The composition root mounts `router` at /chat; the page POSTs the user's
 * messages and receives replies, edits, drafts, files and "typing" over Server-Sent Events. An image is uploaded
 * first (POST /api/uploads, stored on disk by ./uploads.ts) and then named by the message that carries its caption;
 * a file Parley sends is held behind a one-time link (GET /files/<token>, ./file-store.ts).
 *
 * Access rests on a signed session cookie only (./sessions.ts), never on the network: the page trades the token of
 * the operator's link for one (POST /api/session), or, with `mode: "public"`, gets a new visitor's. Without a valid
 * session the page is a short explanation and every other route answers 401. The chat and user key are the
 * session's. Visitors are limited per address (`req.ip`, which TRUST_PROXY makes the client's) and per identity.
 */

export interface WebChannelDeps {
  log: Logger;
  /** PARLEY_DATA_DIR: uploads are kept in `<dataDir>/web-uploads` until the conversation has read them. */
  dataDir: string;
  /** MEDIA_MAX_BYTES: the largest upload accepted; a larger one is cut off with 413 as it streams in. */
  maxUploadBytes: number;
  /** WEB_CHAT: `operator` (only the holder of the token) or `public` (visitors too, each a signed identity). */
  mode: "operator" | "public";
  /** The operator's token and the key that signs session cookies (./credentials.ts). */
  credentials: WebChatCredentials;
  /** VISITOR_LIMITS unless given (tests that open many sessions raise them). */
  visitorLimits?: typeof VISITOR_LIMITS;
  clock?: () => Date;
}

export interface WebChannel {
  adapter: ChannelAdapter;
  router: Router;
}

export const WEB_LIMITS = { maxText: 8000, canEdit: true, canDraft: true } as const;
const BODY_LIMIT = "64kb";
const HEARTBEAT_MS = 15_000;
const SWEEP_MS = 60 * 60 * 1000;
/** What a browser labels an image (or any file, for the page's fallback); a form post cannot send these cross-site. */
const UPLOAD_TYPE = /^(image\/[a-z0-9.+-]+|application\/octet-stream)\s*(;|$)/i;
/** Visitors only (the operator is bounded by its quotas): new identities per address, requests per address and identity. */
export const VISITOR_LIMITS: Readonly<{ newPerAddressPerHour: number; requestsPerAddressPerMinute: number; requestsPerIdentityPerMinute: number }> = {
  newPerAddressPerHour: 20,
  requestsPerAddressPerMinute: 60,
  requestsPerIdentityPerMinute: 20,
};
export const SESSION_COOKIE = "parley_chat";
const OPERATOR_NEEDED =
  "This web chat is the operator's: open it with the link Parley printed when it started (…/chat#token=…), also shown on the admin page.";
const SESSION_GONE = "Your web chat session is not valid any more: reload the page to start a new one.";
const SESSION_NEEDED = "The web chat needs a session: open the chat page, which starts one.";
const WRONG_LINK =
  "That link is not (or no longer) valid: use the link Parley printed when it last started, also shown on the admin page.";
const FILE_GONE =
  "This download link has already been used or has expired: a link works once, for an hour. Ask Parley to send the file again.";

const PAGE_CSP =
  "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

export function createWebChannel(deps: WebChannelDeps): WebChannel {
  const log = deps.log.child({ channel: "web" });
  const clock = deps.clock ?? (() => new Date());
  const assets = loadWebAssets();
  const now = () => clock().getTime();
  const hub = createEventHub({ now });
  const uploads = createUploadStore({ dataDir: deps.dataDir, now });
  const files = createFileStore({ now });
  const { maxUploadBytes } = deps;
  const tooLarge = `That image is too large: the limit is ${formatMegabytes(maxUploadBytes)}.`;
  const { mode } = deps;
  const sessions = createWebSessions(deps.credentials, now);
  const limits = deps.visitorLimits ?? VISITOR_LIMITS;
  const newVisitors = createWindowLimiter({ limit: limits.newPerAddressPerHour, windowMs: 60 * 60 * 1000, now });
  const perAddress = createWindowLimiter({ limit: limits.requestsPerAddressPerMinute, windowMs: 60 * 1000, now });
  const perIdentity = createWindowLimiter({ limit: limits.requestsPerIdentityPerMinute, windowMs: 60 * 1000, now });
  // A wrong token is always refused, never locked out for (the right one must keep working); it is logged at most
  // once a minute per address, so a flood of guesses cannot flood the log.
  const wrongTokenLogs = createWindowLimiter({ limit: 1, windowMs: 60 * 1000, now });

  let onMessage: OnMessage | undefined;
  let status: ChannelStatus = { state: "stopped", detail: "not started" };
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  let sweeper: ReturnType<typeof setInterval> | undefined;

  const running = () => status.state === "running" && onMessage !== undefined;

  function stop(): void {
    status = { state: "stopped" };
    onMessage = undefined;
    clearInterval(heartbeat);
    clearInterval(sweeper);
    hub.closeAll();
    files.clear();
    log.info("web chat stopped");
  }

  function sweep(): void {
    uploads.sweep().then(
      (removed) => {
        if (removed > 0) log.info({ removed }, "old web chat uploads deleted");
      },
      (error: unknown) => log.warn({ err: error }, `could not clean up web chat uploads: ${errorMessage(error)}`),
    );
  }

  /** The chat a reply goes to, or a non-retryable DeliveryError for a key that is not a web chat. */
  function target(chat: ChatKey, text: string | undefined, operation: string): ChatKey {
    const parsed = isKey(chat) ? parseKey(chat) : undefined;
    const id = parsed?.id;
    if (parsed?.channel !== "web" || !isWebChatId(id)) {
      throw new DeliveryError(`web ${operation}: ${chat} is not a web chat`, false);
    }
    if (text !== undefined && text.length > WEB_LIMITS.maxText) {
      throw new DeliveryError(`web ${operation}: ${text.length} characters exceed the limit of ${WEB_LIMITS.maxText}`, false);
    }
    if (status.state !== "running") {
      throw new DeliveryError(`web ${operation}: the web channel is ${status.state}`, true);
    }
    return `web:${id}`;
  }

  const adapter: ChannelAdapter = {
    name: "web",
    limits: WEB_LIMITS,

    async start(handler, signal) {
      if (status.state === "running") throw new Error("the web channel is already running");
      if (signal.aborted) {
        status = { state: "stopped" };
        return;
      }
      onMessage = handler;
      status = { state: "running" };
      heartbeat = setInterval(() => hub.heartbeat(), HEARTBEAT_MS);
      heartbeat.unref();
      sweep();
      sweeper = setInterval(sweep, SWEEP_MS);
      sweeper.unref();
      signal.addEventListener("abort", stop, { once: true });
      log.info("web chat ready");
    },

    async send(chat, text, opts) {
      const to = target(chat, text, "send");
      const id = randomUUID();
      hub.publish(to, { type: "message", data: opts?.replyTo ? { id, text, replyTo: opts.replyTo } : { id, text } });
      return { id };
    },

    async sendFile(chat, file, opts) {
      const to = target(chat, file.caption, "sendFile");
      const token = files.put(file, to);
      if (token === undefined) {
        const size = formatMegabytes(file.bytes.byteLength);
        throw new DeliveryError(`web sendFile: ${size} exceed the ${formatMegabytes(files.maxBytes)} a web chat file may have`, false);
      }
      const id = randomUUID();
      const data = {
        id,
        name: displayName(file.name),
        mimeType: file.mimeType,
        size: file.bytes.byteLength,
        token,
        ...(file.caption ? { caption: file.caption } : {}),
        ...(opts?.replyTo ? { replyTo: opts.replyTo } : {}),
      };
      hub.publish(to, { type: "file", data });
      return { id };
    },

    async edit(chat, id, text) {
      hub.publish(target(chat, text, "edit"), { type: "edit", data: { id, text } });
    },

    async draft(chat, draftId, text) {
      // A draft is a preview: cut it to the limit rather than lose the reply over it.
      const preview = text.slice(0, WEB_LIMITS.maxText);
      hub.push(target(chat, undefined, "draft"), { type: "draft", data: { draftId, text: preview } });
    },

    async typing(chat) {
      hub.push(target(chat, undefined, "typing"), { type: "typing", data: {} });
    },

    download(attachment, maxBytes, signal) {
      return uploads.read(attachment.ref, maxBytes, signal);
    },

    status() {
      if (status.state !== "running") return status;
      const open = hub.connectionCount();
      return { state: "running", detail: `${open} open page${open === 1 ? "" : "s"}` };
    },
  };

  /** The session's identity when it may use this chat (a visitor's only while the chat is public). */
  function identityOf(req: Request): WebIdentity | undefined {
    const identity = sessions.verify(cookieOf(req, SESSION_COOKIE));
    return identity?.kind === "visitor" && mode !== "public" ? undefined : identity;
  }

  function setSession(req: Request, res: Response, kind: "operator" | "visitor"): WebIdentity {
    const issued = sessions.issue(kind);
    const attributes = `Path=${req.baseUrl || "/"}; Max-Age=${Math.floor(issued.maxAgeMs / 1000)}; HttpOnly; SameSite=Strict`;
    res.append("Set-Cookie", `${SESSION_COOKIE}=${issued.value}; ${attributes}${req.secure ? "; Secure" : ""}`);
    return issued.identity;
  }

  /** 401 without a valid session; otherwise the identity is in `res.locals.identity` and the chat key is its own. */
  function requireSession(req: Request, res: Response, next: NextFunction): void {
    const identity = identityOf(req);
    if (identity === undefined) {
      const error = mode === "operator" ? OPERATOR_NEEDED : cookieOf(req, SESSION_COOKIE) === undefined ? SESSION_NEEDED : SESSION_GONE;
      res.status(401).json({ error });
      return;
    }
    res.locals.identity = identity;
    next();
  }

  const chatOf = (res: Response): ChatKey => identityKey(res.locals.identity as WebIdentity) as ChatKey;

  /** Counts a visitor's message or upload against its address and its identity; 429 with a sentence when over. */
  function limitVisitors(req: Request, res: Response, next: NextFunction): void {
    const identity = res.locals.identity as WebIdentity;
    if (identity.kind === "operator") {
      next();
      return;
    }
    const verdict = worst(perAddress.take(addressOf(req)), perIdentity.take(identity.id));
    if (!verdict.ok) {
      refuseBusy(res, verdict.retryAfterMs, "Too many messages at once: please wait a minute and send it again.");
      return;
    }
    next();
  }

  function refuseBusy(res: Response, retryAfterMs: number, error: string): void {
    res.status(429).set("Retry-After", String(Math.max(1, Math.ceil(retryAfterMs / 1000)))).json({ error });
  }

  const router = express.Router();
  router.use((_req, res, next) => {
    res.set("X-Content-Type-Options", "nosniff");
    next();
  });
  // Only this page may post: a page elsewhere in the browser cannot send JSON or image types without a CORS
  // preflight (which is never granted), and a browser says where a request comes from (same-site is another port).
  router.use((req, res, next) => {
    const site = req.get("sec-fetch-site");
    if (req.method === "POST" && site !== undefined && site !== "same-origin" && site !== "none") {
      res.status(403).json({ error: "Requests come from the web chat page only." });
      return;
    }
    next();
  });

  router.get("/", (req, res) => {
    res.set({
      "Content-Security-Policy": PAGE_CSP,
      "Referrer-Policy": "no-referrer",
      "X-Frame-Options": "DENY",
      "Cache-Control": "no-store",
    });
    const identity = identityOf(req);
    // Without a session, the operator's chat is a short explanation; its script trades a link's token and reloads.
    if (identity === undefined && mode === "operator") {
      res.status(401).type("text/html; charset=utf-8").send(assets.gate(req.baseUrl));
      return;
    }
    res.type("text/html; charset=utf-8").send(assets.page(req.baseUrl, maxUploadBytes, identity?.kind ?? "none"));
  });

  router.get("/chat.js", (_req, res) => {
    res.set("Cache-Control", "no-cache").type("text/javascript; charset=utf-8").send(assets.script);
  });

  router.get("/chat.css", (_req, res) => {
    res.set("Cache-Control", "no-cache").type("text/css; charset=utf-8").send(assets.style);
  });

  /**
   * Opens a session: `{ token }` from the operator's link gives the operator's; without a token, the session the
   * cookie already proves, or (public chat only) a new visitor's, a bounded number per address and hour.
   */
  router.post("/api/session", express.json({ limit: BODY_LIMIT }), (req, res) => {
    const token = (req.body as { token?: unknown } | undefined)?.token;
    if (token !== undefined) {
      if (!sessions.tokenMatches(token)) {
        if (wrongTokenLogs.take(addressOf(req)).ok) log.warn({ ip: req.ip }, "web chat: a link with a wrong token was opened");
        res.status(401).json({ error: WRONG_LINK });
        return;
      }
      setSession(req, res, "operator");
      log.info({ ip: req.ip }, "web chat: the operator's link was opened");
      res.status(200).json({ identity: "operator" });
      return;
    }
    const current = identityOf(req);
    if (current) {
      res.status(200).json({ identity: current.kind });
      return;
    }
    if (mode !== "public") {
      res.status(401).json({ error: OPERATOR_NEEDED });
      return;
    }
    const verdict = newVisitors.take(addressOf(req));
    if (!verdict.ok) {
      refuseBusy(res, verdict.retryAfterMs, "Too many new visitors from your network right now: please try again later.");
      return;
    }
    setSession(req, res, "visitor");
    res.status(200).json({ identity: "visitor" });
  });

  router.use("/api", requireSession);
  router.use("/files", requireSession);

  router.post("/api/messages", limitVisitors, express.json({ limit: BODY_LIMIT }), async (req, res) => {
    const handler = onMessage;
    if (!running() || handler === undefined) {
      res.status(503).json({ error: "The web chat is not running; please retry in a moment." });
      return;
    }
    const result = normalizeWebMessage(req.body, chatOf(res), clock());
    if (!result.ok) {
      res.status(400).json({ error: result.error });
      return;
    }
    const { platformMessageId, attachments } = result.message;
    for (const attachment of attachments) {
      const size = await uploads.size(attachment.ref);
      if (size === undefined) {
        res.status(400).json({ error: "The image was not found (uploads are kept for a day); please attach it again." });
        return;
      }
      attachment.sizeBytes = size;
    }
    try {
      await handler(result.message);
    } catch (error) {
      log.error({ err: error, platformMessageId }, `could not store a web chat message: ${errorMessage(error)}`);
      res.status(503).json({ error: "Parley could not store your message; please retry." });
      return;
    }
    log.debug({ platformMessageId }, "web chat message stored");
    res.status(202).json({ ok: true });
  });

  router.post("/api/uploads", limitVisitors, async (req, res) => {
    if (!running()) {
      res.status(503).json({ error: "The web chat is not running; please retry in a moment." });
      return;
    }
    if (!UPLOAD_TYPE.test(req.get("content-type") ?? "")) {
      res.status(415).json({ error: "Send the image as the request body, with its type (image/…) as Content-Type." });
      return;
    }
    const declared = Number(req.get("content-length") ?? Number.NaN);
    if (declared > maxUploadBytes) {
      refuseTooLarge(res);
      return;
    }
    let result;
    try {
      result = await uploads.receive(req, maxUploadBytes);
    } catch (error) {
      if (req.destroyed || res.destroyed) {
        log.debug({ err: error }, "a web chat upload was cut off by the page");
        return;
      }
      log.error({ err: error }, `could not store a web chat upload: ${errorMessage(error)}`);
      res.status(503).json({ error: "Parley could not store the image; please retry." });
      return;
    }
    if (!result.ok) {
      if (result.reason === "too-large") refuseTooLarge(res);
      else res.status(400).json({ error: "The upload is empty: attach an image." });
      return;
    }
    log.debug({ ref: result.ref, size: result.size }, "web chat upload stored");
    res.status(201).json({ ref: result.ref, size: result.size });
  });

  /**
   * 413 while the page may still be sending: nothing more is read or stored, and with `Connection: close` Node
   * closes the connection once the answer is written, so the rest of the body is never pulled off the wire.
   */
  function refuseTooLarge(res: Response): void {
    res.status(413).set("Connection", "close").json({ error: tooLarge });
  }

  router.get("/files/:token", (req, res) => {
    res.set({ "Cache-Control": "no-store", "Referrer-Policy": "no-referrer" });
    const token = req.params.token;
    // A HEAD (a browser or a link checker looking first) must not use up the one download.
    if (req.method === "HEAD") {
      res.status(isFileToken(token) && files.has(token, chatOf(res)) ? 200 : 404).end();
      return;
    }
    const file = isFileToken(token) ? files.take(token, chatOf(res)) : undefined;
    if (!file) {
      res.status(404).type("text/plain; charset=utf-8").send(FILE_GONE);
      return;
    }
    res.attachment(displayName(file.name));
    res.setHeader("Content-Type", safeMimeType(file.mimeType));
    res.setHeader("Content-Security-Policy", "default-src 'none'; sandbox");
    res.status(200).end(Buffer.from(file.bytes.buffer, file.bytes.byteOffset, file.bytes.byteLength));
  });

  router.get("/api/events", (req, res) => {
    if (!running()) {
      res.status(503).json({ error: "The web chat is not running; please retry in a moment." });
      return;
    }
    const queryLast = typeof req.query.lastEventId === "string" ? req.query.lastEventId : undefined;
    const lastEventId = req.get("Last-Event-ID") ?? queryLast;
    res.status(200).set({
      "Content-Type": "text/event-stream; charset=utf-8",
      "Cache-Control": "no-cache, no-transform",
      "X-Accel-Buffering": "no",
    });
    res.flushHeaders();
    res.write("retry: 3000\n\n");
    const disconnect = hub.connect(
      chatOf(res),
      { write: (chunk) => res.write(chunk), end: () => res.end() },
      lastEventId,
    );
    res.on("close", disconnect);
  });

  router.use((error: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) {
      next(error);
      return;
    }
    const type = (error as { type?: unknown }).type;
    const statusCode = (error as { status?: unknown }).status;
    if (type === "entity.too.large") {
      res.status(413).json({ error: "The message is too large; the limit is 64 KB." });
    } else if (typeof statusCode === "number" && statusCode >= 400 && statusCode < 500) {
      res.status(statusCode).json({ error: "Send a JSON object { text, id }." });
    } else {
      log.error({ err: error }, `web chat request failed: ${errorMessage(error)}`);
      res.status(500).json({ error: "Something went wrong in the web chat." });
    }
  });

  return { adapter, router };
}

/** The first cookie of that name in the request, if any. */
function cookieOf(req: Request, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * The key the per-address limits count by: the client's address as express says (TRUST_PROXY decides which hop to
 * believe; never a header read here), an IPv6 address by its /64, since one client holds all of it.
 */
function addressOf(req: Request): string {
  return limitKey(req.ip ?? "") ?? "unknown";
}

/** The refusal that waits longest, or ok when both allow. */
function worst(a: Take, b: Take): Take {
  if (a.ok) return b;
  if (b.ok) return a;
  return a.retryAfterMs >= b.retryAfterMs ? a : b;
}

/** A file's name as shown and offered for saving: its last path segment, without control characters or leading dots. */
function displayName(name: string): string {
  const last = name.split(/[\\/]/).pop() ?? "";
  const clean = [...last.replace(/[\p{Cc}\p{Cf}:*?"<>|]/gu, "_").trim().replace(/^\.+/, "")].slice(0, 200).join("");
  return clean || "file";
}

/** The file's type when it looks like one, else a generic download (never something a browser would run as a page). */
function safeMimeType(value: string): string {
  const type = value.trim().toLowerCase();
  if (!/^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*(;\s*charset=[a-z0-9_-]+)?$/.test(type)) return "application/octet-stream";
  return /^(text\/html|application\/xhtml|image\/svg|text\/xml|application\/xml)/.test(type) ? "application/octet-stream" : type;
}

/** WEB_CHAT=off: no chat, no API; every /chat path is a 404 that says so. */
export function createWebChatOffRouter(): Router {
  const router = express.Router();
  router.use((_req, res) => {
    res.status(404).set("X-Content-Type-Options", "nosniff").type("text/plain; charset=utf-8").send("The web chat is off (WEB_CHAT=off).");
  });
  return router;
}
