import { asc, eq, inArray } from "drizzle-orm";
import type { OutboundFile, UserKey } from "../core/types.ts";
import type { Db } from "../db/client.ts";
import { conversations, messages, modelCalls, users } from "../db/schema.ts";

/**
 * /export: everything stored about a user, as JSON lines, one object a line with a `type`: the user row, each
 * conversation, each message (images by their sha256), and each model call's numbers (which model, tokens, cost; not
 * the model's reasoning). It goes out as a file (parley-export-<date>.jsonl) where the channel can send one; where it
 * cannot, as text in a code block, split to the platform's limit like any reply, and a very long history is cut with a
 * note. The file is cut too, at a size every platform takes as a document.
 */

/** The text form's limit: beyond this a chat is no place for it. */
export const EXPORT_MAX_CHARS = 100_000;
/** The file form's limit: under Telegram's 50 MB and WhatsApp's 100 MB for documents, with room to spare. */
export const EXPORT_MAX_FILE_BYTES = 20 * 1024 * 1024;
export const NOTHING_STORED = "Nothing is stored about you.";

export async function exportLines(db: Db, user: UserKey): Promise<string[]> {
  const [row] = await db.select().from(users).where(eq(users.key, user));
  const owned = await db.select().from(conversations).where(eq(conversations.userKey, user)).orderBy(asc(conversations.id));
  const ids = owned.map((c) => c.id);
  const turns = ids.length === 0 ? [] : await db.select().from(messages).where(inArray(messages.conversationId, ids)).orderBy(asc(messages.id));
  const calls = await db.select().from(modelCalls).where(eq(modelCalls.userKey, user)).orderBy(asc(modelCalls.id));
  const lines: unknown[] = [];
  if (row) {
    lines.push({
      type: "user",
      key: row.key,
      name: row.displayName,
      status: row.status,
      mode: row.defaultMode,
      firstSeen: row.createdAt,
      lastSeen: row.lastSeenAt,
    });
  }
  for (const c of owned) {
    lines.push({ type: "conversation", id: c.id, chat: c.chatKey, started: c.startedAt, ended: c.endedAt, summary: c.summary });
  }
  for (const m of turns) {
    lines.push({
      type: "message",
      conversation: m.conversationId,
      at: m.createdAt,
      role: m.role,
      text: m.text,
      ...(m.media.length > 0 ? { images: m.media } : {}),
      ...(m.mode ? { mode: m.mode } : {}),
    });
  }
  for (const c of calls) {
    if (c.provider === "parley") continue; // a contemplation's own row: its calls follow
    lines.push({
      type: "model_call",
      at: c.startedAt,
      mode: c.mode,
      purpose: c.purpose,
      model: `${c.provider}:${c.model}`,
      tokensIn: c.tokensIn,
      tokensOut: c.tokensOut,
      costUsd: c.costUsd,
      ok: c.ok,
    });
  }
  return lines.map((line) => JSON.stringify(line));
}

/** The lines that fit in `max` units of `size`, from the first. */
function firstFitting(lines: readonly string[], max: number, size: (line: string) => number): string[] {
  const kept: string[] = [];
  let total = 0;
  for (const line of lines) {
    total += size(line) + 1;
    if (total > max) break;
    kept.push(line);
  }
  return kept;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** The text form: a line of explanation, then the JSON lines in a code block, cut at `maxChars`. */
export function exportReply(lines: readonly string[], maxChars = EXPORT_MAX_CHARS): string {
  if (lines.length === 0) return NOTHING_STORED;
  // Backticks only occur inside strings; escaped, no text can close the code block the lines are sent in.
  const escaped = lines.map((line) => line.replace(/`/g, "\\u0060"));
  const kept = firstFitting(escaped, maxChars, (line) => line.length);
  const cut = kept.length < lines.length;
  return [
    `Everything stored about you, as JSON lines (${plural(lines.length, "line")}):`,
    "```jsonl",
    ...kept,
    "```",
    ...(cut ? [`That is the first ${kept.length}; the rest did not fit in a chat. Ask the operator for the full export.`] : []),
    "/forget deletes all of it.",
  ].join("\n");
}

/** The file form: the JSON lines, cut at `maxBytes` with the cut said in the caption. Undefined when there is nothing. */
export function exportFile(lines: readonly string[], now: Date, maxBytes = EXPORT_MAX_FILE_BYTES): OutboundFile | undefined {
  if (lines.length === 0) return undefined;
  const kept = firstFitting(lines, maxBytes, (line) => Buffer.byteLength(line));
  const cut = kept.length < lines.length;
  return {
    name: `parley-export-${now.toISOString().slice(0, 10)}.jsonl`,
    // text/plain: the one text type every platform accepts as a document (WhatsApp refuses application/x-ndjson).
    mimeType: "text/plain",
    bytes: new TextEncoder().encode(kept.map((line) => `${line}\n`).join("")),
    caption: cut
      ? `Everything stored about you: the first ${plural(kept.length, "line")} of ${lines.length} (JSON lines); the rest did not fit. Ask the operator for the full export. /forget deletes all of it.`
      : `Everything stored about you, as JSON lines (${plural(lines.length, "line")}). /forget deletes all of it.`,
  };
}
