import { platformTime } from "../../src/core/timestamp.ts";
import { z } from "zod";
import { chatKey, userKey } from "../../src/core/keys.ts";
import type { Attachment, InboundMessage } from "../../src/core/types.ts";
import { ignored, malformed, normalizeEntries, type InboundOutcome } from "../meta/inbound.ts";

/**
 * A WhatsApp Cloud API webhook payload → one outcome per message (and per status) in it, over every entry and
 * every change. Pure; `now` stands in for a missing timestamp.
 *
 * Delivered: text, image, audio (voice notes too), document and video (as files), and the text of button and
 * list replies. Ignored with a reason: statuses (sent/delivered/read), changes other than "messages", messages to
 * another phone number of the same account, and stickers, locations, contacts, reactions, orders, system and
 * unsupported messages: there is nothing in them to answer, and an empty message would make the service reply
 * "I can only read text". (To answer them, turn the `unsupported type` outcome into a message in one place here.)
 *
 * A message the user forwarded (`context.forwarded`, or `context.frequently_forwarded` once it went through many
 * chats) is marked `forwarded`: its text is someone else's, so the service never reads a command from it.
 */

const WA_ID = /^[\w.+-]{1,64}$/;

const media = z.object({
  id: z.string().min(1),
  mime_type: z.string().optional(),
  caption: z.string().optional(),
  filename: z.string().optional(),
});

const messageSchema = z.object({
  from: z.string().regex(WA_ID),
  id: z.string().min(1).max(256),
  timestamp: z.union([z.string(), z.number()]).optional(),
  type: z.string(),
  // Also carries `from`/`id` of a quoted message; only the forward flags are read (see forwardedFlag).
  context: z.object({ forwarded: z.unknown().optional(), frequently_forwarded: z.unknown().optional() }).nullish().catch(undefined),
  text: z.object({ body: z.string() }).optional(),
  image: media.optional(),
  audio: media.optional(),
  document: media.optional(),
  video: media.optional(),
  button: z.object({ text: z.string() }).optional(),
  interactive: z
    .object({
      button_reply: z.object({ title: z.string() }).optional(),
      list_reply: z.object({ title: z.string() }).optional(),
    })
    .optional(),
});
type WhatsAppMessage = z.infer<typeof messageSchema>;

const contactsSchema = z
  .array(z.object({ wa_id: z.string().optional(), profile: z.object({ name: z.string().optional() }).optional() }))
  .catch([]);

const valueSchema = z.object({
  metadata: z.object({ phone_number_id: z.string().min(1) }),
  contacts: z.unknown().optional(),
  messages: z.array(z.unknown()).optional(),
  statuses: z.array(z.unknown()).optional(),
});

const entrySchema = z.object({ changes: z.array(z.unknown()) });
const changeSchema = z.object({ field: z.string(), value: z.unknown() });

export interface WhatsAppNormalizeContext {
  /** Ours: messages to another number of the same business account are not for this channel. */
  phoneNumberId: string;
  now: Date;
}

export function normalizeWhatsAppPayload(payload: unknown, context: WhatsAppNormalizeContext): InboundOutcome[] {
  return normalizeEntries(
    payload,
    { object: "whatsapp_business_account", entry: entrySchema, notOurs: "not a WhatsApp Business Account payload" },
    (entry) => entry.changes.flatMap((raw) => normalizeChange(raw, context)),
  );
}

function normalizeChange(rawChange: unknown, context: WhatsAppNormalizeContext): InboundOutcome[] {
  const parsedChange = changeSchema.safeParse(rawChange);
  if (!parsedChange.success) return [malformed("malformed change")];
  const change = parsedChange.data;
  if (change.field !== "messages") return [ignored(`"${change.field.slice(0, 64)}" change`)];
  const value = valueSchema.safeParse(change.value);
  if (!value.success) return [malformed("malformed messages change")];
  const { metadata, statuses = [], messages = [] } = value.data;
  const outcomes: InboundOutcome[] = statuses.map(() => ignored("status update"));
  if (metadata.phone_number_id !== context.phoneNumberId) {
    for (const _message of messages) outcomes.push(ignored(`message for another phone number id (${metadata.phone_number_id})`));
    return outcomes;
  }
  const contacts = contactsSchema.parse(value.data.contacts);
  for (const raw of messages) {
    const parsed = messageSchema.safeParse(raw);
    if (!parsed.success) {
      outcomes.push(malformed("malformed message", idOf(raw)));
      continue;
    }
    const m = parsed.data;
    const contact = contacts.find((c) => c.wa_id === m.from) ?? (contacts.length === 1 ? contacts[0] : undefined);
    outcomes.push(normalizeMessage(m, contact?.profile?.name, context.now));
  }
  return outcomes;
}

function normalizeMessage(m: WhatsAppMessage, displayName: string | undefined, now: Date): InboundOutcome {
  const content = contentOf(m);
  if (content === undefined) return ignored(`unsupported type "${m.type}"`, m.id);
  const message: InboundMessage = {
    channel: "whatsapp-cloud",
    platformMessageId: m.id,
    chat: chatKey("whatsapp-cloud", m.from),
    user: userKey("whatsapp-cloud", m.from),
    ...(displayName ? { displayName } : {}),
    isGroup: false,
    mentionsBot: false,
    replyToBot: false,
    text: content.text,
    ...(forwardedFlag(m.context?.forwarded) || forwardedFlag(m.context?.frequently_forwarded) ? { forwarded: true } : {}),
    attachments: content.attachments,
    receivedAt: platformTime(m.timestamp, "s", now),
  };
  return { type: "message", message };
}

function contentOf(m: WhatsAppMessage): { text: string; attachments: Attachment[] } | undefined {
  const withFile = (kind: Attachment["kind"], file: z.infer<typeof media> | undefined) =>
    file === undefined ? undefined : { text: file.caption ?? "", attachments: [attachment(kind, file)] };
  switch (m.type) {
    case "text":
      return m.text === undefined ? undefined : { text: m.text.body, attachments: [] };
    case "image":
      return withFile("image", m.image);
    case "audio":
      return withFile("audio", m.audio);
    case "document":
      return withFile(m.document?.mime_type?.startsWith("image/") ? "image" : "file", m.document);
    case "video":
      return withFile("file", m.video);
    case "button":
      return m.button === undefined ? undefined : { text: m.button.text, attachments: [] };
    case "interactive": {
      const title = m.interactive?.button_reply?.title ?? m.interactive?.list_reply?.title;
      return title === undefined ? undefined : { text: title, attachments: [] };
    }
    default:
      return undefined;
  }
}

function attachment(kind: Attachment["kind"], file: z.infer<typeof media>): Attachment {
  return {
    kind,
    ref: file.id,
    ...(file.mime_type === undefined ? {} : { mimeType: file.mime_type.split(";")[0]!.trim() }),
    ...(file.filename === undefined ? {} : { fileName: file.filename }),
  };
}

/** Meta sends `true`; anything there but `false` counts, so an odd value makes text content rather than a command. */
function forwardedFlag(value: unknown): boolean {
  return value !== undefined && value !== null && value !== false;
}

function idOf(raw: unknown): string | undefined {
  const id = typeof raw === "object" && raw !== null ? (raw as { id?: unknown }).id : undefined;
  return typeof id === "string" ? id.slice(0, 256) : undefined;
}
