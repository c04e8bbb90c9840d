import { asc, eq, inArray } from "drizzle-orm";
import type { UserKey } from "../core/types.ts";
import type { Db } from "../db/client.ts";
import { conversations, messages, modelCalls, users } from "../db/schema.ts";

/**
 * /export: everything stored about a user, as JSON lines, one object a line with a `type`: the user row, each
 * conversation, each message (images by their sha256), and each model call's numbers (which model, tokens, cost; not
 * the model's reasoning). The channel contract has no file sending, so the lines go out as text in a code block,
 * split to the platform's limit like any reply; a very long history is cut with a note.
 */

export const EXPORT_MAX_CHARS = 100_000;

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
  // Backticks only occur inside strings; escaped, no text can close the code block the lines are sent in.
  return lines.map((line) => JSON.stringify(line).replace(/`/g, "\\u0060"));
}

/** The reply: a line of explanation, then the JSON lines in a code block, cut at `maxChars`. */
export function exportReply(lines: readonly string[], maxChars = EXPORT_MAX_CHARS): string {
  if (lines.length === 0) return "Nothing is stored about you.";
  const kept: string[] = [];
  let size = 0;
  for (const line of lines) {
    if (size + line.length + 1 > maxChars) break;
    kept.push(line);
    size += line.length + 1;
  }
  const cut = kept.length < lines.length;
  return [
    `Everything stored about you, as JSON lines (${lines.length} line${lines.length === 1 ? "" : "s"}):`,
    "```jsonl",
    ...kept,
    "```",
    ...(cut ? [`That is the first ${kept.length}; the rest did not fit in a chat. Ask the operator for the full export.`] : []),
    "/forget deletes all of it.",
  ].join("\n");
}
