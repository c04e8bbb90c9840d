import { EventEmitter } from "node:events";
import type {
  CreateWhatsAppClient,
  WhatsAppClientEvents,
  WhatsAppClientOptions,
  WhatsAppClientPort,
  QuotedWhatsAppMessage,
  WhatsAppMedia,
  WhatsAppMessage,
} from "../../channels/whatsapp/client-port.ts";
import type { Timers } from "../../channels/whatsapp/timers.ts";

/**
 * A stand-in for a whatsapp-web.js `Client`: it emits the library's events (`qr`, `authenticated`, `ready`,
 * `message`, `disconnected`, `change_state`, `auth_failure`) with objects shaped like the library's, records what
 * the channel asks of it, and can be told to misbehave the way the real one does (a `getState()` or `destroy()`
 * that never settles, an `initialize()` that fails). No browser is involved.
 */

export const BOT_WID = "15550001111@c.us";
export const BOT_LID = "987654321@lid";

const never = <T>() => new Promise<T>(() => {});

export class FakeWhatsAppClient implements WhatsAppClientPort {
  private readonly events = new EventEmitter();
  info: { wid: { _serialized: string } } | undefined;
  initializeCalls = 0;
  destroyCalls = 0;
  readonly sent: Array<{ chatId: string; text: string; options?: { quotedMessageId?: string } }> = [];
  /** Files sent as documents, as `MessageMedia` carries them (base64), with the send options the library gets. */
  readonly documents: Array<{
    chatId: string;
    media: { mimetype: string; data: string; filename: string; filesize: number };
    options: { sendMediaAsDocument: true; caption?: string; quotedMessageId?: string };
  }> = [];
  readonly typing: string[] = [];
  readonly stored = new Map<string, WhatsAppMessage>();
  /** Misbehaviour switches. */
  initializeError: Error | undefined;
  hangGetState = false;
  hangDestroy = false;
  state: string | null = "CONNECTED";
  sendError: unknown;
  pid: number | undefined;
  private sentCount = 0;

  constructor(
    readonly options: WhatsAppClientOptions,
    readonly index: number,
  ) {}

  on<E extends keyof WhatsAppClientEvents>(event: E, handler: WhatsAppClientEvents[E]): void {
    this.events.on(event, handler as (...args: unknown[]) => void);
  }

  async initialize(): Promise<void> {
    this.initializeCalls++;
    if (this.initializeError) throw this.initializeError;
  }

  destroy(): Promise<void> {
    this.destroyCalls++;
    return this.hangDestroy ? never() : Promise.resolve();
  }

  getState(): Promise<string | null> {
    return this.hangGetState ? never() : Promise.resolve(this.state);
  }

  async sendMessage(chatId: string, text: string, options?: { quotedMessageId?: string }) {
    if (this.sendError !== undefined) throw this.sendError;
    this.sent.push(options ? { chatId, text, options } : { chatId, text });
    return { id: { _serialized: `true_${chatId}_3EB0SENT${++this.sentCount}` } };
  }

  async sendDocument(
    chatId: string,
    media: { mimetype: string; data: string; filename: string; filesize: number },
    options?: { caption?: string; quotedMessageId?: string },
  ) {
    if (this.sendError !== undefined) throw this.sendError;
    this.documents.push({ chatId, media, options: { sendMediaAsDocument: true, ...options } });
    return { id: { _serialized: `true_${chatId}_3EB0SENT${++this.sentCount}` } };
  }

  async sendStateTyping(chatId: string): Promise<void> {
    this.typing.push(chatId);
  }

  async getMessageById(messageId: string): Promise<WhatsAppMessage | null> {
    return this.stored.get(messageId) ?? null;
  }

  async getContactLidAndPhone(userIds: string[]): Promise<Array<{ lid?: string; pn?: string }>> {
    return userIds.map((pn) => (pn === BOT_WID ? { lid: BOT_LID, pn } : { pn }));
  }

  browserPid(): number | undefined {
    return this.pid;
  }

  // What WhatsApp Web does, in the order the library emits it.

  showQr(qr = `2@fakeRef${this.index},fakeStaticKey=,fakeIdentityKey=,fakeAdvSecret=,1`): string {
    this.events.emit("qr", qr);
    return qr;
  }

  authenticate(): void {
    this.events.emit("authenticated", undefined);
  }

  becomeReady(wid = BOT_WID): void {
    this.info = { wid: { _serialized: wid } };
    this.events.emit("ready");
  }

  /** `authenticated` then `ready`, as a restored session does. */
  connect(): void {
    this.authenticate();
    this.becomeReady();
  }

  disconnect(reason: string): void {
    this.events.emit("disconnected", reason);
  }

  changeState(state: string): void {
    this.events.emit("change_state", state);
  }

  loading(percent: number): void {
    this.events.emit("loading_screen", percent, "WhatsApp");
  }

  failAuth(message = "Unable to log in. Are the session details valid?"): void {
    this.events.emit("auth_failure", message);
  }

  /** A message from someone else; kept so getMessageById finds it later, as the page does. */
  receive(message: WhatsAppMessage): void {
    this.stored.set(message.id._serialized, message);
    this.events.emit("message", message);
  }

  /** Anything at all, to test the handlers' boundaries. */
  emitRaw(event: string, ...args: unknown[]): void {
    this.events.emit(event, ...args);
  }
}

export interface FakeClientFactory {
  create: CreateWhatsAppClient;
  clients: FakeWhatsAppClient[];
  latest(): FakeWhatsAppClient;
  /** Runs on every new client before the channel sees it. */
  onCreate?: (client: FakeWhatsAppClient) => void;
}

export function fakeClientFactory(onCreate?: (client: FakeWhatsAppClient) => void): FakeClientFactory {
  const factory: FakeClientFactory = {
    clients: [],
    onCreate,
    create(options) {
      const client = new FakeWhatsAppClient(options, factory.clients.length + 1);
      factory.onCreate?.(client);
      factory.clients.push(client);
      return client;
    },
    latest() {
      const client = factory.clients.at(-1);
      if (!client) throw new Error("no client was created");
      return client;
    },
  };
  return factory;
}

export interface MessageSpec {
  /** The chat: "<number>@c.us" for a person, "<id>@g.us" for a group. */
  chat: string;
  /** The sender in a group. */
  author?: string;
  body?: string;
  type?: string;
  fromMe?: boolean;
  hasMedia?: boolean;
  mentionedIds?: string[];
  /** The message this one quotes, as `getQuotedMessage()` returns it (a `Message`: fromMe, from, author, body, type). */
  quoted?: QuotedWhatsAppMessage;
  /** A location message's `location` (the library's Location). */
  location?: WhatsAppMessage["location"];
  quotedParticipant?: string;
  notifyName?: string;
  timestamp?: number;
  mimetype?: string;
  size?: number;
  filename?: string;
  media?: WhatsAppMedia | null;
  isStatus?: boolean;
  isForwarded?: boolean;
  key?: string;
}

let counter = 0;

/** A message shaped like whatsapp-web.js's `Message` (src/structures/Message.js), with its id format. */
export function waMessage(spec: MessageSpec): WhatsAppMessage {
  const fromMe = spec.fromMe ?? false;
  const key = spec.key ?? `3EB0${(++counter).toString(16).toUpperCase().padStart(16, "0")}`;
  const serialized = `${fromMe}_${spec.chat}_${key}${spec.author ? `_${spec.author}` : ""}`;
  const media = spec.media;
  const message: WhatsAppMessage = {
    id: { _serialized: serialized, fromMe, remote: spec.chat, id: key },
    from: fromMe ? BOT_WID : spec.chat,
    to: fromMe ? spec.chat : BOT_WID,
    ...(spec.author ? { author: spec.author } : {}),
    body: spec.body ?? "",
    type: spec.type ?? "chat",
    hasMedia: spec.hasMedia ?? media !== undefined,
    fromMe,
    hasQuotedMsg: spec.quoted !== undefined || spec.quotedParticipant !== undefined,
    isForwarded: spec.isForwarded ?? false,
    mentionedIds: spec.mentionedIds ?? [],
    timestamp: spec.timestamp ?? 1_760_000_000,
    isStatus: spec.isStatus ?? spec.chat === "status@broadcast",
    ...(spec.location ? { location: spec.location } : {}),
    _data: {
      ...(spec.notifyName ? { notifyName: spec.notifyName } : {}),
      ...(spec.mimetype ? { mimetype: spec.mimetype } : {}),
      ...(spec.size !== undefined ? { size: spec.size } : {}),
      ...(spec.filename ? { filename: spec.filename } : {}),
      ...(spec.quotedParticipant ? { quotedParticipant: spec.quotedParticipant } : {}),
    },
    getQuotedMessage: async () => spec.quoted,
    downloadMedia: async () => media ?? undefined,
  };
  return message;
}

/**
 * Timers the test moves by hand. `advance` fires what falls due in order and lets the promises that follow each
 * callback settle before the next one, so a chain of waits runs exactly as it would in real time.
 */
export class ManualTimers implements Timers {
  now = 0;
  private nextId = 0;
  private readonly due = new Map<number, { at: number; callback: () => void }>();

  setTimeout(callback: () => void, ms: number): unknown {
    const id = ++this.nextId;
    this.due.set(id, { at: this.now + Math.max(0, ms), callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    if (typeof handle === "number") this.due.delete(handle);
  }

  pending(): number {
    return this.due.size;
  }

  async advance(ms: number): Promise<void> {
    const target = this.now + ms;
    for (;;) {
      await settle();
      let next: [number, { at: number; callback: () => void }] | undefined;
      for (const entry of this.due) {
        if (entry[1].at <= target && (next === undefined || entry[1].at < next[1].at)) next = entry;
      }
      if (next === undefined) break;
      this.due.delete(next[0]);
      this.now = next[1].at;
      next[1].callback();
    }
    this.now = target;
    await settle();
  }
}

/** Lets pending promise chains (and fs callbacks already under way) run. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}
