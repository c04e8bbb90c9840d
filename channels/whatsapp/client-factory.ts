import { createRequire } from "node:module";
import type WAWebJS from "whatsapp-web.js";
import type { WhatsAppClientOptions, WhatsAppClientPort, WhatsAppMessage } from "./client-port.ts";

/**
 * The one place a real whatsapp-web.js `Client` is built: LocalAuth (session files on disk, so a restart needs no
 * new scan) and the system Chromium, headless. The library (and puppeteer behind it) is loaded on the first call,
 * so importing the channel costs nothing when WhatsApp is off. Not exercised by the tests, which use a fake port.
 */

/** Chromium flags for a server: no sandbox (containers), no GPU, /tmp instead of a small /dev/shm, no background traffic. */
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-dev-shm-usage",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
] as const;

const require = createRequire(import.meta.url);

export function createWhatsAppWebClient(options: WhatsAppClientOptions): WhatsAppClientPort {
  const { Client, LocalAuth, MessageMedia } = require("whatsapp-web.js") as typeof WAWebJS;
  const client = new Client({
    authStrategy: new LocalAuth({ dataPath: options.sessionDir }),
    puppeteer: { headless: true, executablePath: options.chromiumPath, args: [...options.puppeteerArgs] },
    // Always the live WhatsApp Web: a cached copy of an old version is a known cause of "ready never fires".
    webVersionCache: { type: "none" },
  });

  return {
    on(event, handler) {
      client.on(event, handler as (...args: unknown[]) => void);
    },
    initialize: () => client.initialize(),
    destroy: () => client.destroy(),
    getState: () => client.getState(),
    async sendMessage(chatId, text, opts) {
      const sent = await client.sendMessage(chatId, text, opts?.quotedMessageId ? { quotedMessageId: opts.quotedMessageId } : {});
      return { id: { _serialized: sent.id._serialized } };
    },
    async sendDocument(chatId, document, opts) {
      const media = new MessageMedia(document.mimetype, document.data, document.filename, document.filesize);
      const sent = await client.sendMessage(chatId, media, {
        sendMediaAsDocument: true,
        ...(opts?.caption ? { caption: opts.caption } : {}),
        ...(opts?.quotedMessageId ? { quotedMessageId: opts.quotedMessageId } : {}),
      });
      return { id: { _serialized: sent.id._serialized } };
    },
    async sendStateTyping(chatId) {
      const chat = await client.getChatById(chatId);
      await chat.sendStateTyping();
    },
    async getMessageById(messageId) {
      const message = await client.getMessageById(messageId);
      return (message ?? null) as unknown as WhatsAppMessage | null;
    },
    get info() {
      return client.info as { wid: { _serialized: string } } | undefined;
    },
    getContactLidAndPhone: (userIds) => client.getContactLidAndPhone(userIds),
    browserPid: () => client.pupBrowser?.process()?.pid,
  };
}
