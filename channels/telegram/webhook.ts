import { createHash, timingSafeEqual } from "node:crypto";
import type { Request, RequestHandler, Response } from "express";
import type { Update } from "grammy/types";
import type { Logger } from "pino";
import { describeError } from "./errors.ts";

/** Telegram's rule for setWebhook's secret_token. */
const SECRET_FORMAT = /^[A-Za-z0-9_-]{1,256}$/;
export const WEBHOOK_BODY_LIMIT = 1024 * 1024;
const SECRET_HEADER = "x-telegram-bot-api-secret-token";

/** Throws unless the webhook has a secret Telegram accepts: without one anybody could post forged updates. */
export function assertWebhookSecret(secret: string | undefined): asserts secret is string {
  if (secret === undefined || secret === "") {
    throw new Error("Telegram webhook mode needs a secret (TELEGRAM_WEBHOOK_SECRET): without it anyone could post forged updates");
  }
  if (!SECRET_FORMAT.test(secret)) {
    throw new Error("the Telegram webhook secret must be 1-256 characters of A-Z, a-z, 0-9, _ and -");
  }
}

export interface WebhookHandlerDeps {
  secret: string;
  log: Logger;
  token: string;
  /** False until the bot knows who it is and where to deliver: Telegram is answered 503 and retries. */
  isReady(): boolean;
  /** Resolves once the update is handled (its message stored); rejects when it must be delivered again. */
  handleUpdate(update: Update): Promise<void>;
}

/**
 * The express handler for `POST /webhooks/telegram`. It checks the secret header in constant time (401 otherwise,
 * before reading the body), reads at most 1 MB itself unless a body parser already did (413 beyond), and answers
 * 200 only after the update was handled; a failure answers 500 so that Telegram delivers it again.
 */
export function createWebhookHandler(deps: WebhookHandlerDeps): RequestHandler {
  const expected = digest(deps.secret);
  return async (req: Request, res: Response) => {
    if (!secretMatches(req.get(SECRET_HEADER), expected)) {
      deps.log.warn({ ip: req.ip }, "Telegram webhook call without the right secret refused");
      return void res.status(401).json({ error: "unauthorized" });
    }
    if (!deps.isReady()) return void res.status(503).json({ error: "not ready" });
    const body = await readJsonBody(req).catch((): BodyResult => ({ status: 400, error: "body could not be read" }));
    if (body.status !== 200) return void res.status(body.status).set("connection", "close").json({ error: body.error });
    const update = body.value as Update;
    if (typeof update !== "object" || update === null || !Number.isInteger(update.update_id)) {
      return void res.status(400).json({ error: "not a Telegram update" });
    }
    try {
      await deps.handleUpdate(update);
      res.status(200).json({ ok: true });
    } catch (error) {
      deps.log.warn(
        { updateId: update.update_id, err: describeError(error, deps.token) },
        "Telegram update not stored; answering 500 so Telegram delivers it again",
      );
      res.status(500).json({ error: "not stored" });
    }
  };
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value, "utf8").digest();
}

/** Compares digests, so the comparison takes the same time whatever the header's length or content. */
export function secretMatches(header: string | undefined, expectedDigest: Buffer): boolean {
  if (header === undefined) return false;
  return timingSafeEqual(digest(header), expectedDigest);
}

type BodyResult = { status: 200; value: unknown } | { status: 400 | 413; error: string };

async function readJsonBody(req: Request): Promise<BodyResult> {
  const parsed: unknown = req.body;
  if (parsed !== undefined && !Buffer.isBuffer(parsed) && typeof parsed !== "string") return { status: 200, value: parsed };
  let raw: Buffer | string;
  if (parsed !== undefined) {
    raw = parsed;
  } else if (req.readableEnded) {
    return { status: 400, error: "empty body" };
  } else {
    if (Number(req.headers["content-length"] ?? 0) > WEBHOOK_BODY_LIMIT) return tooLarge(req);
    const read = await readLimited(req);
    if (read === "too-large") return { status: 413, error: "body too large" };
    raw = read;
  }
  if (raw.length > WEBHOOK_BODY_LIMIT) return { status: 413, error: "body too large" };
  try {
    return { status: 200, value: JSON.parse(raw.toString()) };
  } catch {
    return { status: 400, error: "body is not JSON" };
  }
}

function tooLarge(req: Request): BodyResult {
  req.resume(); // discard the rest so the client still reads the 413
  return { status: 413, error: "body too large" };
}

/** Reads the body up to the limit; past it, keeps discarding what arrives so the 413 can still be read. */
function readLimited(req: Request): Promise<Buffer | "too-large"> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      if (size > WEBHOOK_BODY_LIMIT) return;
      size += chunk.length;
      if (size > WEBHOOK_BODY_LIMIT) resolve("too-large");
      else chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}
