import { z } from "zod";

/**
 * The fields of a Telegram update that normalize.ts reads, with the types the Bot API documents (Update, Message,
 * User, Chat, MessageEntity, PhotoSize, Document, Voice, Audio, Video, VideoNote, CallbackQuery, TextQuote,
 * ExternalReplyInfo, MessageOrigin, Location, Venue). grammY types
 * updates but does not check them, so an update whose `text` is a number or whose `from` is missing would otherwise
 * travel as far as the conversation service. Other fields are not looked at; unknown ones are allowed.
 */

const int = z.number().int();
const user = z.object({
  id: int,
  is_bot: z.boolean(),
  first_name: z.string(),
  last_name: z.string().optional(),
  username: z.string().optional(),
});
const chat = z.object({ id: int, type: z.string() });
const entity = z.object({
  type: z.string(),
  offset: int.nonnegative(),
  length: int.nonnegative(),
  user: user.optional(),
  url: z.string().optional(),
  language: z.string().optional(),
});
const file = z.object({
  file_id: z.string(),
  file_size: int.nonnegative().optional(),
  mime_type: z.string().optional(),
  file_name: z.string().optional(),
});
const photo = file.extend({ width: int, height: int });

const coordinate = z.number().finite();
const location = z.object({ latitude: coordinate.min(-90).max(90), longitude: coordinate.min(-180).max(180), live_period: int.optional() });
const titled = z.object({ title: z.string().optional() });
/** What repliedOf reads of a replied-to message (message-context.ts). */
const replied = z.object({
  message_id: int,
  from: user.optional(),
  sender_chat: titled.optional(),
  text: z.string().optional(),
  caption: z.string().optional(),
  document: z.object({ file_name: z.string().optional() }).optional(),
  sticker: z.object({ emoji: z.string().optional() }).optional(),
  location: location.optional(),
  venue: z.object({ title: z.string(), address: z.string() }).optional(),
  poll: z.object({ question: z.string() }).optional(),
});
const origin = z.discriminatedUnion("type", [
  z.object({ type: z.literal("user"), sender_user: user }),
  z.object({ type: z.literal("hidden_user"), sender_user_name: z.string() }),
  z.object({ type: z.literal("chat"), sender_chat: titled }),
  z.object({ type: z.literal("channel"), chat: titled }),
]);

const message = z.object({
  message_id: int,
  date: int,
  chat,
  // Absent only in channel posts, which come as `channel_post`: a message without a sender is not one to answer.
  from: user,
  sender_chat: z.object({ id: int, type: z.string(), title: z.string().optional() }).optional(),
  message_thread_id: int.optional(),
  is_topic_message: z.boolean().optional(),
  is_automatic_forward: z.boolean().optional(),
  forward_origin: z.object({ type: z.string() }).optional(),
  reply_to_message: replied.optional(),
  external_reply: replied.omit({ message_id: true, from: true, sender_chat: true, text: true, caption: true }).extend({ origin }).optional(),
  quote: z.object({ text: z.string() }).optional(),
  location: location.optional(),
  venue: z.object({ location, title: z.string(), address: z.string() }).optional(),
  media_group_id: z.string().optional(),
  text: z.string().optional(),
  entities: z.array(entity).optional(),
  caption: z.string().optional(),
  caption_entities: z.array(entity).optional(),
  photo: z.array(photo).optional(),
  document: file.optional(),
  voice: file.optional(),
  audio: file.optional(),
  video: file.optional(),
  video_note: file.optional(),
});

/** A button's message may be "inaccessible" (date 0, no `from`): only what identifies its chat is required. */
const callbackQuery = z.object({
  id: z.string(),
  from: user,
  data: z.string().optional(),
  message: z
    .object({ message_id: int, date: int, chat, from: user.optional(), message_thread_id: int.optional(), is_topic_message: z.boolean().optional() })
    .optional(),
});

const update = z.object({
  update_id: int,
  message: message.optional(),
  edited_message: message.optional(),
  business_message: message.extend({ business_connection_id: z.string().min(1) }).optional(),
  edited_business_message: message.extend({ business_connection_id: z.string().min(1) }).optional(),
  callback_query: callbackQuery.optional(),
});

/**
 * Null when the update has the documented shape (as far as Parley reads it); otherwise where it does not, as field
 * paths and expected types only (e.g. "message.text: expected string"), never the values, so it can be logged.
 */
export function updateShapeProblem(value: unknown): string | null {
  const parsed = update.safeParse(value);
  if (parsed.success) return null;
  return parsed.error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.join(".") || "update"}: ${issue.code === "invalid_type" ? `expected ${issue.expected}` : issue.code}`)
    .join("; ");
}
