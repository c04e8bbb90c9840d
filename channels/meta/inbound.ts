import type { Logger } from "pino";
import { z } from "zod";
import type { InboundMessage, OnMessage } from "../../src/core/types.ts";
import type { ChatMemory } from "./chat-memory.ts";

/**
 * What normalizing one item of a Meta payload gives: a message for the inbox, or the reason it is not one. Ignored
 * items are kept as values (not dropped silently) so the adapter logs each one, and so a future "tell the user we
 * cannot read stickers" is one branch here rather than a new parser.
 */
export type InboundOutcome =
  | { type: "message"; message: InboundMessage }
  | { type: "ignored"; reason: string; platformMessageId?: string; malformed?: true };

export function ignored(reason: string, platformMessageId?: string): InboundOutcome {
  return platformMessageId === undefined ? { type: "ignored", reason } : { type: "ignored", reason, platformMessageId };
}

/** Something that does not have the shape Meta documents: logged as a warning, since it may mean the API changed. */
export function malformed(reason: string, platformMessageId?: string): InboundOutcome {
  return platformMessageId === undefined
    ? { type: "ignored", reason, malformed: true }
    : { type: "ignored", reason, platformMessageId, malformed: true };
}

/**
 * Meta's webhook envelope, `{ object, entry: [...] }`, the same for Messenger and WhatsApp: each entry parsed with
 * `entry` and turned into outcomes by `each`, in order. A payload for another object is one `malformed` outcome
 * saying `notOurs`; an entry of another shape is a `malformed` outcome in its place.
 */
export function normalizeEntries<T>(
  payload: unknown,
  envelope: { object: string; entry: z.ZodType<T>; notOurs: string },
  each: (entry: T) => InboundOutcome[],
): InboundOutcome[] {
  const root = z.object({ object: z.literal(envelope.object), entry: z.array(z.unknown()) }).safeParse(payload);
  if (!root.success) return [malformed(envelope.notOurs)];
  return root.data.entry.flatMap((raw) => {
    const entry = envelope.entry.safeParse(raw);
    return entry.success ? each(entry.data) : [malformed("malformed entry")];
  });
}

/**
 * Hands every message of one payload to `onMessage`, one after the other (the order Meta batched them in), and
 * resolves when each was stored or set aside (a message the database refuses does not hold back its neighbours).
 * onMessage rejects only for a database outage: that propagates, and the rest wait for Meta's redelivery.
 */
export async function deliverOutcomes(
  outcomes: readonly InboundOutcome[],
  deps: { onMessage: OnMessage; memory: ChatMemory; log: Logger },
): Promise<void> {
  for (const outcome of outcomes) {
    if (outcome.type === "ignored") {
      const fields = { platformMessageId: outcome.platformMessageId, reason: outcome.reason };
      if (outcome.malformed) deps.log.warn(fields, "webhook item with an unexpected shape ignored");
      else deps.log.debug(fields, "webhook item ignored");
      continue;
    }
    const { message } = outcome;
    await deps.onMessage(message);
    deps.memory.noteInbound(message.chat, message.platformMessageId, message.receivedAt);
    deps.log.debug({ platformMessageId: message.platformMessageId, attachments: message.attachments.length }, "message stored");
  }
}
