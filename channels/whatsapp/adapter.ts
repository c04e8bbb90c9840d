import { join } from "node:path";
import type { Logger } from "pino";
import { DeliveryError, errorMessage } from "../../src/core/errors.ts";
import { isKey, parseKey } from "../../src/core/keys.ts";
import { truncate } from "../../src/core/split-text.ts";
import type { ChannelAdapter, ChatKey } from "../../src/core/types.ts";
import { markdownToWhatsApp } from "../../src/core/whatsapp-markers.ts";
import { CHROMIUM_ARGS, createWhatsAppWebClient } from "./client-factory.ts";
import type { CreateWhatsAppClient, WhatsAppClientPort, WhatsAppMessage } from "./client-port.ts";
import { downloadWhatsAppMedia } from "./download.ts";
import { isPageGone, toWhatsAppError } from "./errors.ts";
import { createInboundQueue, type InboundQueue } from "./inbound-queue.ts";
import { messageShapeProblem } from "./message-shape.ts";
import { normalizeWhatsAppMessage, type BotIdentity } from "./normalize.ts";
import { createQrOutput, type QrOutputDeps } from "./qr-output.ts";
import { createSupervisor, type SupervisorTuning } from "./supervisor.ts";
import { settleWithin, systemTimers, type Backoff, type Timers } from "./timers.ts";

/**
 * WhatsApp on a personal number, through whatsapp-web.js: the account is linked by scanning a QR code once, the
 * session is kept on disk (LocalAuth, `<dataDir>/whatsapp-session`), and a headless system Chromium runs WhatsApp
 * Web. The library is unofficial and fragile, so supervisor.ts keeps the client alive; this file turns its
 * messages into InboundMessages and Parley's replies into WhatsApp messages (formatted by the converter the
 * WhatsApp Cloud channel uses too, src/core/whatsapp-markers.ts: the markers are WhatsApp's, whichever API
 * carries them).
 *
 * Inbound: WhatsApp does not deliver a message twice, so one that cannot be stored yet is retried in memory
 * (inbound-queue.ts). Outbound: `send` and `sendFile` (a document, e.g. /export's file) refuse (retryable) while
 * WhatsApp Web is not ready, rather than letting the library throw on a half-loaded page. No edits, no drafts: a
 * reply is sent when it is done.
 */

export interface WhatsAppWebTuning extends SupervisorTuning {
  sendTimeoutMs: number;
  downloadTimeoutMs: number;
  quotedLookupTimeoutMs: number;
  deliveryBackoff: Backoff;
}

export const WHATSAPP_WEB_TUNING: WhatsAppWebTuning = {
  watchdogIntervalMs: 30_000,
  stateTimeoutMs: 10_000,
  destroyTimeoutMs: 10_000,
  startupTimeoutMs: 180_000,
  readyTimeoutMs: 60_000,
  unhealthyChecks: 3,
  restartBackoff: { initialMs: 2_000, maxMs: 300_000 },
  sendTimeoutMs: 30_000,
  downloadTimeoutMs: 60_000,
  quotedLookupTimeoutMs: 5_000,
  deliveryBackoff: { initialMs: 1_000, maxMs: 60_000 },
};

export const WHATSAPP_LIMITS = { maxText: 4096, canEdit: false, canDraft: false } as const;
/** WhatsApp's limit for a document; the library moves it into the page as base64, so it is held in memory twice. */
const MAX_DOCUMENT_BYTES = 100 * 1024 * 1024;
/** WhatsApp's limit for a media caption. */
const MAX_CAPTION = 1024;

export interface WhatsAppWebChannelDeps {
  /** Parley's data directory: the session, and the QR code while one is waiting to be scanned. */
  dataDir: string;
  chromiumPath: string;
  log: Logger;
  /** Builds the whatsapp-web.js client; default: the real one (client-factory.ts). */
  createClient?: CreateWhatsAppClient;
  clock?: () => Date;
  timers?: Timers;
  /** For the backoff jitter; [0, 1). */
  random?: () => number;
  tuning?: Partial<WhatsAppWebTuning>;
  /** Where running processes are listed (to tell a live Chromium from a stale profile lock); default /proc. */
  procRoot?: string;
  /** Kills a browser whose destroy() hung; default: SIGKILL to its process group. */
  killProcess?: (pid: number) => void;
  qr?: Pick<QrOutputDeps, "loadModule" | "terminal">;
}

export interface WhatsAppWebChannel {
  adapter: ChannelAdapter;
}

const CHAT_ID = /^[^@\s]+@(c\.us|g\.us|lid)$/;

export function createWhatsAppWebChannel(deps: WhatsAppWebChannelDeps): WhatsAppWebChannel {
  const log = deps.log.child({ channel: "whatsapp" });
  const clock = deps.clock ?? (() => new Date());
  const timers = deps.timers ?? systemTimers;
  const random = deps.random ?? Math.random;
  const tuning: WhatsAppWebTuning = { ...WHATSAPP_WEB_TUNING, ...deps.tuning };
  const sessionDir = join(deps.dataDir, "whatsapp-session");

  let inbound: InboundQueue | undefined;
  let started = false;

  const supervisor = createSupervisor({
    createClient: deps.createClient ?? createWhatsAppWebClient,
    clientOptions: { sessionDir, chromiumPath: deps.chromiumPath, puppeteerArgs: CHROMIUM_ARGS },
    // LocalAuth without a clientId keeps the Chromium profile in <dataPath>/session.
    profileDir: join(sessionDir, "session"),
    procRoot: deps.procRoot ?? "/proc",
    killProcess: deps.killProcess ?? killProcessGroup,
    qr: createQrOutput({ dataDir: deps.dataDir, log, ...deps.qr }),
    timers,
    random,
    log,
    tuning,
    onMessage: (message, bot) => void receive(message, bot),
  });

  /** The boundary for one incoming message: it is normalized once and then handed to the retry queue. */
  async function receive(m: WhatsAppMessage, bot: BotIdentity): Promise<void> {
    const queue = inbound;
    if (queue === undefined) return;
    const id = typeof m?.id?._serialized === "string" ? m.id._serialized.slice(0, 200) : undefined;
    const problem = messageShapeProblem(m);
    if (problem !== null) {
      // Not the shape the library documents: it would fail the same way again, so it is dropped, said once.
      log.warn({ platformMessageId: id, problem }, "unreadable WhatsApp message skipped");
      return;
    }
    try {
      const message = await normalizeWhatsAppMessage(m, {
        bot,
        now: clock,
        quotedMessage: async (quoting) => {
          if (!quoting.getQuotedMessage) return undefined;
          const outcome = await settleWithin(timers, quoting.getQuotedMessage(), tuning.quotedLookupTimeoutMs);
          if (outcome.kind === "value") return outcome.value;
          throw outcome.kind === "error" ? outcome.error : new Error("the quoted message lookup timed out");
        },
      });
      if (message === null) {
        log.debug({ platformMessageId: id, type: m?.type }, "WhatsApp message ignored");
        return;
      }
      queue.push(message);
    } catch (error) {
      log.error({ platformMessageId: id, err: errorMessage(error) }, "unreadable WhatsApp message skipped");
    }
  }

  function chatIdOf(chat: ChatKey, operation: string): string {
    const parsed = isKey(chat) ? parseKey(chat) : undefined;
    if (parsed?.channel !== "whatsapp" || !CHAT_ID.test(parsed.id)) {
      throw new DeliveryError(`WhatsApp ${operation}: ${chat} is not a WhatsApp chat`, false);
    }
    return parsed.id;
  }

  function liveClient(): { client: WhatsAppClientPort } {
    const live = supervisor.live();
    if (live === undefined) throw new DeliveryError(`WhatsApp is not connected (${supervisor.status().state})`, true);
    return live;
  }

  /** One library call, bounded in time; a hang or a sign of a dead page makes the watchdog look at once. */
  async function call<T>(operation: string, run: () => Promise<T>): Promise<T> {
    const outcome = await settleWithin(timers, Promise.resolve().then(run), tuning.sendTimeoutMs);
    if (outcome.kind === "value") return outcome.value;
    if (outcome.kind === "timeout") {
      supervisor.checkNow();
      throw new DeliveryError(`WhatsApp ${operation} got no answer within ${tuning.sendTimeoutMs / 1000} s`, true);
    }
    if (isPageGone(outcome.error)) supervisor.checkNow();
    throw toWhatsAppError(outcome.error, operation);
  }

  const adapter: ChannelAdapter = {
    name: "whatsapp",
    limits: WHATSAPP_LIMITS,

    async start(onMessage, signal) {
      if (started) throw new Error("the WhatsApp channel was already started");
      started = true;
      if (signal.aborted) {
        supervisor.stop();
        return;
      }
      const queue = createInboundQueue({ deliver: onMessage, timers, log, backoff: tuning.deliveryBackoff, random });
      inbound = queue;
      signal.addEventListener(
        "abort",
        () => {
          inbound = undefined;
          queue.close();
          supervisor.stop();
        },
        { once: true },
      );
      supervisor.start();
    },

    async send(chat, text, opts) {
      const chatId = chatIdOf(chat, "send");
      if (text.length > WHATSAPP_LIMITS.maxText) {
        throw new DeliveryError(`WhatsApp send: ${text.length} characters exceed the limit of ${WHATSAPP_LIMITS.maxText}`, false);
      }
      if (text.trim() === "") throw new DeliveryError("WhatsApp send: the message is empty", false);
      const formatted = markdownToWhatsApp(text);
      // The rendering is never longer than the Markdown but for rare cases (">quote" gains a space): then the Markdown goes as it is.
      const body = formatted.length <= WHATSAPP_LIMITS.maxText && formatted.trim() !== "" ? formatted : text;
      const { client } = liveClient();
      const options = opts?.replyTo ? { quotedMessageId: opts.replyTo } : undefined;
      const sent = await call("send", () => client.sendMessage(chatId, body, options));
      return { id: sentId(sent, "message") };
    },

    async sendFile(chat, file, opts) {
      const chatId = chatIdOf(chat, "sendFile");
      const size = file.bytes.byteLength;
      if (size === 0) throw new DeliveryError(`WhatsApp sendFile: ${file.name} is empty`, false);
      if (size > MAX_DOCUMENT_BYTES) {
        throw new DeliveryError(`WhatsApp sendFile: ${file.name} has ${size} bytes; WhatsApp takes documents up to 100 MB`, false);
      }
      const document = {
        mimetype: file.mimeType,
        data: Buffer.from(file.bytes.buffer, file.bytes.byteOffset, size).toString("base64"),
        filename: file.name,
        filesize: size,
      };
      const caption = file.caption?.trim() ? truncate(file.caption.trim(), MAX_CAPTION) : undefined;
      const options =
        caption === undefined && !opts?.replyTo
          ? undefined
          : { ...(caption === undefined ? {} : { caption }), ...(opts?.replyTo ? { quotedMessageId: opts.replyTo } : {}) };
      const { client } = liveClient();
      const sent = await call("sendFile", () => client.sendDocument(chatId, document, options));
      return { id: sentId(sent, "file") };
    },

    async typing(chat) {
      const chatId = chatIdOf(chat, "typing");
      const { client } = liveClient();
      await call("typing", () => client.sendStateTyping(chatId));
    },

    async download(attachment, maxBytes, signal) {
      const client = () => liveClient().client;
      return downloadWhatsAppMedia({ client, timers, timeoutMs: tuning.downloadTimeoutMs }, attachment, maxBytes, signal);
    },

    status: () => supervisor.status(),
  };

  return { adapter };
}

/** The id of a message just sent. Sent without one to return: sending again would duplicate it, so not retryable. */
function sentId(sent: { id?: { _serialized?: string } } | null | undefined, what: string): string {
  const id = sent?.id?._serialized;
  if (typeof id !== "string" || id === "") throw new DeliveryError(`WhatsApp sent the ${what} but returned no id`, false);
  return id;
}

/** Puppeteer starts Chromium in its own process group: killing the group takes its renderers along. */
function killProcessGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    process.kill(pid, "SIGKILL");
  }
}
