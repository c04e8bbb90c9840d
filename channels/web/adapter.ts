import { randomUUID } from "node:crypto";
import express, { type NextFunction, type Request, type Response, type Router } from "express";
import type { Logger } from "pino";
import { DeliveryError, errorMessage } from "../../src/core/errors.ts";
import { chatKey, isKey, parseKey } from "../../src/core/keys.ts";
import type { ChannelAdapter, ChannelStatus, ChatKey, OnMessage } from "../../src/core/types.ts";
import { loadWebAssets } from "./assets.ts";
import { createEventHub } from "./event-hub.ts";
import { requireLoopback } from "./loopback.ts";
import { isClientId, normalizeWebMessage } from "./normalize.ts";

/**
 * The browser chat: the zero-setup channel. The composition root mounts `router` at /chat; the page POSTs the user's
 * messages and receives replies, edits, drafts and "typing" over Server-Sent Events. It answers on loopback only.
 */

export interface WebChannelDeps {
  log: Logger;
  clock?: () => Date;
}

export interface WebChannel {
  adapter: ChannelAdapter;
  router: Router;
}

export const WEB_LIMITS = { maxText: 8000, canEdit: true, canDraft: true } as const;
const BODY_LIMIT = "64kb";
const HEARTBEAT_MS = 15_000;

const PAGE_CSP =
  "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

export function createWebChannel(deps: WebChannelDeps): WebChannel {
  const log = deps.log.child({ channel: "web" });
  const clock = deps.clock ?? (() => new Date());
  const assets = loadWebAssets();
  const hub = createEventHub({ now: () => clock().getTime() });

  let onMessage: OnMessage | undefined;
  let status: ChannelStatus = { state: "stopped", detail: "not started" };
  let heartbeat: ReturnType<typeof setInterval> | undefined;

  const running = () => status.state === "running" && onMessage !== undefined;

  function stop(): void {
    status = { state: "stopped" };
    onMessage = undefined;
    clearInterval(heartbeat);
    hub.closeAll();
    log.info("web chat stopped");
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
      signal.addEventListener("abort", stop, { once: true });
      log.info("web chat ready");
    },

    async send(chat, text, opts) {
      const to = target(chat, text, "send");
      const id = randomUUID();
      hub.publish(to, { type: "message", data: opts?.replyTo ? { id, text, replyTo: opts.replyTo } : { id, text } });
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
    res.type("text/html; charset=utf-8").send(assets.page(req.baseUrl));
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
    const { platformMessageId } = result.message;
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
