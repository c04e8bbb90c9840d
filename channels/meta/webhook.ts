import express, { type NextFunction, type Request, type Response, type Router } from "express";
import type { Logger } from "pino";
import { errorMessage } from "../../src/core/errors.ts";
import { SIGNATURE_HEADER, sameSecret, signatureMatches } from "./signature.ts";

/**
 * Largest webhook body read. A Meta message webhook is a few KB (a text is at most 4096 characters, media come as
 * ids or URLs), so 1 MB holds dozens of batched messages even with every character escaped as \uXXXX. WhatsApp is
 * said to send up to 3 MB; a body over the cap is answered 413 and logged as an error so an operator sees it,
 * rather than letting anyone make the process buffer megabytes before the signature is checked.
 */
export const WEBHOOK_BODY_LIMIT = 1024 * 1024;

export interface MetaWebhookOptions {
  /** "WhatsApp Cloud" or "Messenger", for logs. */
  platform: string;
  verifyToken: string;
  appSecret: string;
  log: Logger;
  /** False before start() and after the stop: Meta is answered 503 and delivers again later. */
  isReady(): boolean;
  /**
   * Handles one verified, parsed payload. Resolves once every message in it was stored or set aside (Meta gets
   * 200); rejects when the database is out (Meta gets 500 and delivers the whole payload again; stored ones are
   * deduplicated).
   */
  handle(payload: unknown): Promise<void>;
}

/** Throws unless both secrets are set: without them anyone could subscribe to or post forged events. */
export function assertWebhookSecrets(
  secrets: { appSecret: string; verifyToken: string },
  names: { appSecret: string; verifyToken: string },
): void {
  const missing = [
    ...(secrets.appSecret.trim() === "" ? [`${names.appSecret} (the Meta app secret that signs webhooks)`] : []),
    ...(secrets.verifyToken.trim() === "" ? [`${names.verifyToken} (the token Meta echoes when subscribing)`] : []),
  ];
  if (missing.length > 0) {
    throw new Error(`${missing.join(" and ")} must be set: without ${missing.length === 1 ? "it" : "them"} the webhook cannot tell Meta from a forger`);
  }
}

/**
 * The router a Meta channel mounts at its webhook path:
 * - `GET /`: the subscription handshake. `hub.mode=subscribe` and `hub.verify_token` equal to ours (compared in
 *   constant time) → 200 text/plain with exactly `hub.challenge`; otherwise 403 and nothing echoed.
 * - `POST /`: reads the raw body (413 over the cap, no decompression), checks `X-Hub-Signature-256` over those bytes
 *   (401 otherwise, before any parsing), answers 503 when the channel is not running, and 200 once `handle`
 *   resolved (500 when it rejected). A signed body that is not JSON is logged and answered 200: Meta would send
 *   the same bytes again forever.
 */
export function createMetaWebhookRouter(options: MetaWebhookOptions): Router {
  const { log, platform } = options;
  const router = express.Router();

  router.get("/", (req, res) => {
    // Read from the raw query string: an app-wide "extended" query parser would turn hub.mode into { hub: { mode } }.
    const query = new URL(req.originalUrl, "http://localhost").searchParams;
    res.set({ "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff" });
    if (query.get("hub.mode") !== "subscribe" || !sameSecret(query.get("hub.verify_token") ?? undefined, options.verifyToken)) {
      log.warn({ ip: req.ip }, `${platform} webhook verification refused: wrong mode or verify token`);
      res.status(403).type("text/plain").send("forbidden");
      return;
    }
    const challenge = query.get("hub.challenge");
    if (!challenge) {
      res.status(400).type("text/plain").send("hub.challenge is missing");
      return;
    }
    log.info(`${platform} webhook verified by Meta`);
    res.status(200).type("text/plain; charset=utf-8").send(challenge);
  });

  router.post(
    "/",
    express.raw({ type: () => true, limit: WEBHOOK_BODY_LIMIT, inflate: false }),
    async (req: Request, res: Response) => {
      const raw: unknown = req.body;
      if (raw !== undefined && !Buffer.isBuffer(raw)) {
        // Something parsed the body before us: the bytes Meta signed are gone, so nothing can be verified.
        log.error(`${platform} webhook body was parsed before the signature check; mount the router before any body parser`);
        res.status(401).json({ error: "signature cannot be checked" });
        return;
      }
      const body = raw ?? Buffer.alloc(0);
      if (!signatureMatches(body, req.get(SIGNATURE_HEADER), options.appSecret)) {
        const legacyOnly = req.get("x-hub-signature") !== undefined && req.get(SIGNATURE_HEADER) === undefined;
        log.warn(
          { ip: req.ip, bytes: body.length },
          `${platform} webhook call refused: ${legacyOnly ? "only the SHA-1 X-Hub-Signature, which is not accepted" : "missing or wrong X-Hub-Signature-256"}`,
        );
        res.status(401).json({ error: "invalid signature" });
        return;
      }
      if (!options.isReady()) {
        res.status(503).json({ error: "not running" });
        return;
      }
      let payload: unknown;
      try {
        payload = JSON.parse(body.toString("utf8"));
      } catch {
        log.warn({ bytes: body.length }, `${platform} webhook: a signed body that is not JSON was ignored`);
        res.status(200).json({ ok: true });
        return;
      }
      try {
        await options.handle(payload);
      } catch (error) {
        log.warn({ err: { message: errorMessage(error) } }, `${platform} webhook: a message could not be stored; answering 500 so Meta delivers again`);
        res.status(500).json({ error: "not stored" });
        return;
      }
      res.status(200).json({ ok: true });
    },
  );

  router.use((error: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) {
      next(error);
      return;
    }
    const type = (error as { type?: unknown }).type;
    const status = (error as { status?: unknown }).status;
    if (type === "entity.too.large") {
      log.error({ limit: WEBHOOK_BODY_LIMIT }, `${platform} webhook body over ${WEBHOOK_BODY_LIMIT} bytes refused with 413`);
      res.status(413).set("Connection", "close").json({ error: "body too large" });
    } else if (typeof status === "number" && status >= 400 && status < 500) {
      log.warn({ type }, `${platform} webhook body could not be read`);
      res.status(status).json({ error: "unreadable body" });
    } else {
      log.error({ err: { message: errorMessage(error) } }, `${platform} webhook failed`);
      res.status(500).json({ error: "internal error" });
    }
  });

  return router;
}
