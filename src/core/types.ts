/**
 * The contract between channels and the rest of Parley.
 *
 * A channel adapter turns one platform's payloads into `InboundMessage`s (normalize once, at the edge) and turns
 * Parley's replies back into platform calls. Nothing outside channels/ reads a platform payload, and nothing in
 * channels/ knows about the database, the models or the conversation service.
 */

export type ChannelName = "telegram" | "whatsapp" | "whatsapp-cloud" | "messenger" | "web";

/** One conversation place, e.g. "telegram:-1001234". Built and parsed only by ./keys.ts. */
export type ChatKey = `${ChannelName}:${string}`;
/** One person on one platform, e.g. "telegram:12345". Built and parsed only by ./keys.ts. */
export type UserKey = `${ChannelName}:${string}`;

/**
 * A file that came with a message. It is stored in the inbox before the platform is acknowledged, so it is plain
 * data: `ref` is whatever the adapter needs to download it later (a Telegram file_id, a Graph media id, …), and the
 * bytes are fetched through the adapter's `download` only when the conversation service needs them.
 */
export interface Attachment {
  kind: "image" | "audio" | "file";
  ref: string;
  mimeType?: string;
  sizeBytes?: number;
  fileName?: string;
}

/**
 * The message a message answers (a reply, a quote), as much of it as the platform delivered. Platforms that send only
 * its id (WhatsApp Cloud `context.id`, Messenger `reply_to.mid`) leave `text` and `kind` out; the conversation
 * service then looks the text up in what Parley stored of the same chat, and says so when it is not known.
 */
export interface RepliedMessage {
  /** The replied-to message's platform id in the same form as `InboundMessage.platformMessageId` (or a sent reply's id). */
  id?: string;
  /** Who wrote it: the bot, the sender themself, someone else, or not known (only the id came). */
  author: "bot" | "sender" | "other" | "unknown";
  /** Someone else's display name, where the platform gives it. */
  authorName?: string;
  /** Its text or caption, where the platform sends it. */
  text?: string;
  /** What it was when it was not (only) text: "an image", "a voice note", "a sticker", "a location"… */
  kind?: string;
  /** The part the sender quoted, where the platform has quotes (Telegram `quote`). */
  quote?: string;
}

/** A place the sender shared: their location, or a venue they chose. */
export interface Place {
  latitude: number;
  longitude: number;
  name?: string;
  address?: string;
  /** A live location that keeps updating (only its first position is answered). */
  live?: boolean;
}

export interface InboundMessage {
  channel: ChannelName;
  /** Unique per channel; the inbox deduplicates redeliveries on (channel, platformMessageId). */
  platformMessageId: string;
  chat: ChatKey;
  user: UserKey;
  displayName?: string;
  isGroup: boolean;
  mentionsBot: boolean;
  replyToBot: boolean;
  /** The sender's own text (or caption), with the bot's @mention removed. */
  text: string;
  /** The message was forwarded from someone else: its text is content for the model, never a command. */
  forwarded?: boolean;
  attachments: Attachment[];
  receivedAt: Date;
  /** Messages sent together as one (a Telegram album) share this id; they are answered as one turn. */
  groupId?: string;
  /**
   * An edit of a message sent earlier, under that message's `platformMessageId`: one not answered yet is answered in
   * its edited form; one already answered has its turn in the history corrected and is not answered again.
   */
  edited?: boolean;
  /** The message this one replies to or quotes. */
  replyTo?: RepliedMessage;
  /** A location or venue the sender shared; `text` is then what they wrote with it (often nothing). */
  place?: Place;
  /**
   * What the sender sent that Parley cannot use yet, named as a kind ("polls", "orders", "view-once
   * photos"): answered with a short reply in a direct chat, ignored in a group. `text` is empty or a caption.
   */
  unsupported?: string;
}

export type ChannelState = "starting" | "running" | "needs-login" | "stopped" | "failed";
export interface ChannelStatus {
  state: ChannelState;
  detail?: string;
}

export interface ChannelLimits {
  /** Longest text one message may carry, in UTF-16 code units as the platforms count them. */
  maxText: number;
  /** The platform can edit a sent message in place (a streamed reply grows in one bubble). */
  canEdit: boolean;
  /** The platform can show a draft that grows while the reply is written (Telegram private chats, the web page). */
  canDraft: boolean;
  /**
   * How long after a person's message the platform still takes a free-form reply (WhatsApp's customer service window
   * and Messenger's standard messaging window: 24 hours). Absent: no limit.
   */
  replyWindowMs?: number;
}

/**
 * Called by the adapter for every message it receives. When the promise resolves the message is durably stored
 * (or, when the database refused its values, set aside) and the adapter may acknowledge the platform; it rejects
 * only when the database cannot be reached, and then the adapter must not acknowledge (the platform will deliver it
 * again).
 */
export type OnMessage = (message: InboundMessage) => Promise<void>;

/** Choices shown under a message where the platform has buttons (Telegram); tapping one sends its command as the
 * user's message. Platforms without buttons ignore them, so the text must name the commands too. */
export interface Button {
  label: string;
  /** At most 64 bytes (Telegram's callback_data limit). */
  command: string;
}

export interface SendOptions {
  /** Platform message id to reply to. */
  replyTo?: string;
  buttons?: readonly Button[];
}

/** A file Parley sends to a user (e.g. /export's JSON lines). Small: it is held in memory whole. */
export interface OutboundFile {
  /** Shown to the user as the file's name, e.g. "parley-export.jsonl". */
  name: string;
  mimeType: string;
  bytes: Uint8Array;
  /** A short line shown with the file, where the platform has captions. Plain text. */
  caption?: string;
}

export interface ChannelAdapter {
  readonly name: ChannelName;
  readonly limits: ChannelLimits;
  /** Begins receiving. Resolves once the channel is receiving (or has reported why it cannot); ends when `signal` aborts. */
  start(onMessage: OnMessage, signal: AbortSignal): Promise<void>;
  /** Sends one message of at most `limits.maxText` characters. The text is Markdown as a model writes it. */
  send(chat: ChatKey, text: string, opts?: SendOptions): Promise<{ id: string }>;
  /**
   * Sends one file as a document the user can save (Telegram sendDocument, a Graph media upload, a one-time link on
   * the web page). Absent where the platform cannot take one; callers then send the content as text. Throws a
   * DeliveryError (retryable or not) like `send`.
   */
  sendFile?(chat: ChatKey, file: OutboundFile, opts?: SendOptions): Promise<{ id: string }>;
  /** Replaces the text of a message this adapter sent. Present when `limits.canEdit`. */
  edit?(chat: ChatKey, id: string, text: string): Promise<void>;
  /** Shows or updates a draft; `draftId` is stable for one reply. Present when `limits.canDraft`. */
  draft?(chat: ChatKey, draftId: number, text: string): Promise<void>;
  /** Shows "typing…" for a few seconds. */
  typing?(chat: ChatKey): Promise<void>;
  /** Fetches an attachment's bytes, refusing anything larger than `maxBytes`. */
  download?(attachment: Attachment, maxBytes: number, signal: AbortSignal): Promise<Uint8Array>;
  status(): ChannelStatus;
}
