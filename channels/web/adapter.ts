import { randomUUID } from "node:crypto";
import express, { type NextFunction, type Request, type Response, type Router } from "express";
import type { Logger } from "pino";
import { DeliveryError, errorMessage } from "../../src/core/errors.ts";
import { chatKey, isKey, parseKey } from "../../src/core/keys.ts";
import { formatMegabytes } from "../../src/core/read-capped.ts";
import type { ChannelAdapter, ChannelStatus, ChatKey, OnMessage } from "../../src/core/types.ts";
import { loadWebAssets } from "./assets.ts";
import { createEventHub } from "./event-hub.ts";
import { createFileStore, isFileToken } from "./file-store.ts";
import { requireLoopback } from "./loopback.ts";
import { isClientId, normalizeWebMessage } from "./normalize.ts";
import { createUploadStore } from "./uploads.ts";

/**
 * The browser chat: the zero-setup channel. The composition root mounts `router` at /chat; the page POSTs the user's
 * messages and receives replies, edits, drafts, files and "typing" over Server-Sent Events. It answers on loopback
 * only. An image is uploaded first (POST /api/uploads, stored on disk by ./uploads.ts) and then named by the message
 * that carries its caption; a file Parley sends is held behind a one-time link (GET /files/<token>, ./file-store.ts).
 */

export interface WebChannelDeps {
  log: Logger;
  /** PARLEY_DATA_DIR: uploads are kept in `<dataDir>/web-uploads` until the conversation has read them. */
  dataDir: string;
  /** MEDIA_MAX_BYTES: the largest upload accepted; a larger one is cut off with 413 as it streams in. */
  maxUploadBytes: number;
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
    if (parsed?.channel !== "web" || !isClientId(id)) {
      throw new DeliveryError(`web ${operation}: ${chat} is not a web chat`, false);
    }
    if (text !== undefined && text.length > WEB_LIMITS.maxText) {
      throw new DeliveryError(`web ${operation}: ${text.length} characters exceed the limit of ${WEB_LIMITS.maxText}`, false);
    }
    if (status.state !== "running") {
      throw new DeliveryError(`web ${operation}: the web channel is ${status.state}`, true);
    }
    return chatKey("web", id);
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
      const token = files.put(file);
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

  const router = express.Router();
  router.use(requireLoopback);
  router.use((_req, res, next) => {
    res.set("X-Content-Type-Options", "nosniff");
    next();
  });

  router.get("/", (req, res) => {
    res.set({
      "Content-Security-Policy": PAGE_CSP,
      "Referrer-Policy": "no-referrer",
      "X-Frame-Options": "DENY",
      "Cache-Control": "no-store",
    });
    res.type("text/html; charset=utf-8").send(assets.page(req.baseUrl, maxUploadBytes));
  });

  router.get("/chat.js", (_req, res) => {
    res.set("Cache-Control", "no-cache").type("text/javascript; charset=utf-8").send(assets.script);
  });

  router.get("/chat.css", (_req, res) => {
    res.set("Cache-Control", "no-cache").type("text/css; charset=utf-8").send(assets.style);
  });

  router.post("/api/messages", express.json({ limit: BODY_LIMIT }), async (req, res) => {
    const handler = onMessage;
    if (!running() || handler === undefined) {
      res.status(503).json({ error: "The web chat is not running; please retry in a moment." });
      return;
    }
    const result = normalizeWebMessage(req.body, clock());
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

  router.post("/api/uploads", async (req, res) => {
    if (!running()) {
      res.status(503).json({ error: "The web chat is not running; please retry in a moment." });
      return;
    }
    // Only this page may upload: a page elsewhere in the browser cannot send these types without a CORS preflight
    // (which is never granted), and a browser says where a request comes from (same-site is another port here).
    const site = req.get("sec-fetch-site");
    if (site !== undefined && site !== "same-origin" && site !== "none") {
      res.status(403).json({ error: "Uploads come from the web chat page only." });
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
      res.status(isFileToken(token) && files.has(token) ? 200 : 404).end();
      return;
    }
    const file = isFileToken(token) ? files.take(token) : undefined;
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
    const clientId = req.query.clientId;
    if (!isClientId(clientId)) {
      res.status(400).json({ error: "clientId must be 8 to 64 letters, digits or hyphens (a UUID)." });
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
      chatKey("web", clientId),
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
      res.status(statusCode).json({ error: "Send a JSON object { clientId, text, id }." });
    } else {
      log.error({ err: error }, `web chat request failed: ${errorMessage(error)}`);
      res.status(500).json({ error: "Something went wrong in the web chat." });
    }
  });

  return { adapter, router };
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
