import { platformTime } from "../../src/core/timestamp.ts";
import { z } from "zod";
import { chatKey, userKey } from "../../src/core/keys.ts";
import type { Attachment, InboundMessage } from "../../src/core/types.ts";
import { ignored, malformed, normalizeEntries, type InboundOutcome } from "../meta/inbound.ts";

/**
 * A Messenger webhook payload (`object: "page"`) → one outcome per item of every entry's `messaging` array. Pure;
 * `now` stands in for a missing timestamp.
 *
 * Delivered: messages with text (quick replies included: their text is the button's title) and image, audio,
 * video and file attachments with an http(s) URL. Ignored with a reason: echoes of the page's own messages,
 * delivery and read receipts, postbacks, reactions, optins, referrals and other events, stickers (an image
 * attachment with a sticker_id, e.g. the thumbs-up) and location/fallback/template attachments.
 *
 * Forwarded messages cannot be told apart: Messenger's `messages` webhook documents `mid`, `text`, `quick_reply`,
 * `reply_to`, `attachments` and `referral`, and no forwarded flag (unlike Telegram's `forward_origin` or WhatsApp's
 * `context.forwarded`). A forwarded text therefore arrives as the sender's own, and `forwarded` is never set here.
 */

const PSID = /^\d{1,32}$/;

const attachmentSchema = z.object({
  type: z.string(),
  payload: z.object({ url: z.string().optional(), sticker_id: z.unknown().optional() }).nullish(),
});

const itemSchema = z.object({
  sender: z.object({ id: z.string() }),
  timestamp: z.number().optional(),
  message: z
    .object({
      mid: z.string().min(1).max(512),
      text: z.string().optional(),
      is_echo: z.boolean().optional(),
      attachments: z.array(z.unknown()).optional(),
    })
    .optional(),
});

const entrySchema = z.object({ messaging: z.array(z.unknown()).optional() });

const EVENTS = ["delivery", "read", "postback", "reaction", "optin", "referral", "account_linking", "message_edit"] as const;

export function normalizeMessengerPayload(payload: unknown, context: { now: Date }): InboundOutcome[] {
  return normalizeEntries(
    payload,
    { object: "page", entry: entrySchema, notOurs: "not a Messenger page payload" },
    // An entry without `messaging` carries another field (standby, changes): not for this channel.
    (entry) => (entry.messaging ?? []).map((raw) => normalizeItem(raw, context.now)),
  );
}

function normalizeItem(raw: unknown, now: Date): InboundOutcome {
  const parsed = itemSchema.safeParse(raw);
  if (!parsed.success) return malformed("malformed messaging item");
  const { sender, message, timestamp } = parsed.data;
  if (message === undefined) {
    const event = EVENTS.find((name) => typeof raw === "object" && raw !== null && name in raw);
    return ignored(event === undefined ? "unknown messaging event" : `${event} event`);
  }
  if (message.is_echo) return ignored("echo of the page's own message", message.mid);
  if (!PSID.test(sender.id)) return malformed("sender id is not a page-scoped id", message.mid);
  const attachments = (message.attachments ?? []).flatMap(attachmentOf);
  const text = message.text ?? "";
  if (text === "" && attachments.length === 0) return ignored("no text or supported attachment (sticker, location, …)", message.mid);
  // No `forwarded`: Messenger does not say whether a message was forwarded (see the comment at the top).
  const inbound: InboundMessage = {
    channel: "messenger",
    platformMessageId: message.mid,
    chat: chatKey("messenger", sender.id),
    user: userKey("messenger", sender.id),
    isGroup: false,
    mentionsBot: false,
    replyToBot: false,
    text,
    attachments,
    receivedAt: platformTime(timestamp, "ms", now),
  };
  return { type: "message", message: inbound };
}

const KINDS: Record<string, Attachment["kind"]> = { image: "image", audio: "audio", video: "file", file: "file" };

function attachmentOf(raw: unknown): Attachment[] {
  const parsed = attachmentSchema.safeParse(raw);
  if (!parsed.success) return [];
  const { type, payload } = parsed.data;
  const kind = KINDS[type];
  const url = payload?.url;
  if (kind === undefined || url === undefined || payload?.sticker_id !== undefined || !isHttpUrl(url)) return [];
  return [{ kind, ref: url }];
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === "https:" || url.protocol === "http:";
  } catch {
    return false;
  }
}
