import { z } from "zod";

/**
 * The fields of a whatsapp-web.js `Message` that normalize.ts reads, with the library's documented types
 * (Message: id, from, author, body, type, hasMedia, fromMe, hasQuotedMsg, isForwarded, mentionedIds, timestamp,
 * isStatus, location; `_data.notifyName` the push name). The library passes on what WhatsApp Web's page holds, unchecked; a
 * message of another shape is ignored with one log line rather than failing further in. Unknown fields are allowed.
 */
const wid = z.union([z.string(), z.object({ _serialized: z.string() })]);
const message = z.object({
  id: z.object({ _serialized: z.string().min(1), fromMe: z.boolean(), remote: wid }),
  from: z.string(),
  author: z.string().nullish(),
  body: z.string().nullish(),
  type: z.string(),
  hasMedia: z.boolean(),
  fromMe: z.boolean(),
  hasQuotedMsg: z.boolean().nullish(),
  isForwarded: z.boolean().nullish(),
  mentionedIds: z.array(z.union([z.string(), z.object({ _serialized: z.string() })])).nullish(),
  timestamp: z.number().nullish(),
  isStatus: z.boolean().nullish(),
  location: z
    .object({
      latitude: z.union([z.number(), z.string()]),
      longitude: z.union([z.number(), z.string()]),
      name: z.string().nullish(),
      address: z.string().nullish(),
    })
    .nullish(),
  _data: z
    .object({
      notifyName: z.string().nullish(),
      mimetype: z.string().nullish(),
      size: z.number().nullish(),
      filename: z.string().nullish(),
      quotedParticipant: wid.nullish(),
    })
    .nullish(),
});

/** Null when the message has the shape Parley reads; otherwise the field paths and expected types, no values. */
export function messageShapeProblem(value: unknown): string | null {
  const parsed = message.safeParse(value);
  if (parsed.success) return null;
  return parsed.error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.join(".") || "message"}: ${issue.code === "invalid_type" ? `expected ${issue.expected}` : issue.code}`)
    .join("; ");
}
