/**
 * The part of a whatsapp-web.js `Client` the channel uses, and the shapes of what it hands back.
 *
 * The adapter sees the library only through this port, so normalizing, sending and the survival logic (watchdog,
 * restarts, logout) run in tests against a fake client that emits the library's real events with real-shaped
 * objects. Names and shapes follow whatsapp-web.js 1.34 (src/Client.js, src/structures/Message.js); only
 * client-factory.ts builds a real `Client`, and the two members the library lacks (`sendStateTyping` by chat id,
 * `browserPid`) are filled in there.
 */

export interface WhatsAppMessageId {
  /** e.g. "false_12345@c.us_3EB0A1B2C3" */
  _serialized: string;
  fromMe: boolean;
  /** The chat: "12345@c.us", "1203…@g.us", "…@lid"; some versions give the wid object instead of the string. */
  remote: string | { _serialized: string };
  id?: string;
}

/** A downloaded attachment as the library returns it: base64 data, never a stream. */
export interface WhatsAppMedia {
  mimetype: string;
  data: string;
  filename?: string | null;
  filesize?: number | null;
}

/** What Parley reads of the message a message quotes (the library's `getQuotedMessage()`, a `Message`). */
export interface QuotedWhatsAppMessage {
  fromMe: boolean;
  from?: string;
  author?: string;
  body?: string;
  type?: string;
  _data?: { notifyName?: string };
}

/** The fields of a whatsapp-web.js `Message` that Parley reads. */
export interface WhatsAppMessage {
  id: WhatsAppMessageId;
  /** The chat for a received message: the sender in a direct chat, the group in a group. */
  from: string;
  to?: string;
  /** The sender in a group chat. */
  author?: string;
  /** The text, or the caption of a media message. */
  body: string;
  /** "chat", "image", "ptt", "audio", "video", "document", "sticker", "location", "vcard", … */
  type: string;
  hasMedia: boolean;
  fromMe: boolean;
  hasQuotedMsg: boolean;
  /** Forwarded from another chat (the library's `isForwarded`); absent on some older messages. */
  isForwarded?: boolean;
  mentionedIds?: string[];
  /** Unix seconds. */
  timestamp: number;
  isStatus?: boolean;
  /** The raw WhatsApp Web model; `notifyName` is the sender's push name. */
  _data?: {
    notifyName?: string;
    mimetype?: string;
    size?: number;
    filename?: string;
    quotedParticipant?: string | { _serialized: string };
  };
  /** A location message's place (the library's `Location`: numbers, though its types say strings). */
  location?: { latitude: number | string; longitude: number | string; name?: string; address?: string; description?: string };
  getQuotedMessage?(): Promise<QuotedWhatsAppMessage | undefined>;
  downloadMedia?(): Promise<WhatsAppMedia | undefined | null>;
}

export interface WhatsAppClientEvents {
  qr: (qr: string) => void;
  authenticated: (session?: unknown) => void;
  auth_failure: (message: string) => void;
  ready: () => void;
  message: (message: WhatsAppMessage) => void;
  /** "LOGOUT", "NAVIGATION", "CONFLICT", "UNPAIRED", "TOS_BLOCK", "Max qrcode retries reached", … */
  disconnected: (reason: string) => void;
  change_state: (state: string) => void;
  /** Progress while WhatsApp Web loads (a restored session syncs before `authenticated`). */
  loading_screen: (percent: number, message: string) => void;
}

export interface WhatsAppClientPort {
  on<E extends keyof WhatsAppClientEvents>(event: E, handler: WhatsAppClientEvents[E]): void;
  /** Launches the browser and opens WhatsApp Web; resolves once it waits for a QR scan or restores the session. */
  initialize(): Promise<void>;
  /** Closes the browser. May hang when the browser already died: callers bound it with a timeout. */
  destroy(): Promise<void>;
  /** WhatsApp Web's connection state ("CONNECTED", "OPENING", …); rejects or never settles when the page is gone. */
  getState(): Promise<string | null>;
  sendMessage(chatId: string, text: string, options?: { quotedMessageId?: string }): Promise<{ id: { _serialized: string } }>;
  /** Sends a file as a document (`MessageMedia` with `sendMediaAsDocument`), the caption below it. */
  sendDocument(
    chatId: string,
    document: { mimetype: string; data: string; filename: string; filesize: number },
    options?: { caption?: string; quotedMessageId?: string },
  ): Promise<{ id: { _serialized: string } }>;
  /** Shows "typing…" in a chat for about 25 seconds. */
  sendStateTyping(chatId: string): Promise<void>;
  getMessageById(messageId: string): Promise<WhatsAppMessage | null>;
  /** Set once `ready` fired: the linked account. */
  readonly info?: { wid: { _serialized: string } } | undefined;
  /** The account's LID and phone-number ids; newer WhatsApp versions mention people in groups by LID. */
  getContactLidAndPhone?(userIds: string[]): Promise<Array<{ lid?: string; pn?: string }>>;
  /** The browser's process id, so a browser whose `destroy()` hangs can be killed. */
  browserPid?(): number | undefined;
}

export interface WhatsAppClientOptions {
  /** LocalAuth's data path; the Chromium profile lives in `<sessionDir>/session`. */
  sessionDir: string;
  chromiumPath: string;
  puppeteerArgs: readonly string[];
}

export type CreateWhatsAppClient = (options: WhatsAppClientOptions) => WhatsAppClientPort;
