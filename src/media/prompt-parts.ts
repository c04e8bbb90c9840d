import type { ModelMessage, UserContent } from "ai";
import type { MediaInfo, StoredMedia } from "./store.ts";

/**
 * Which turns of the history show their images to the model, and the user messages that carry them. Pure.
 *
 * Images cost many tokens and are re-sent with every request, so only the newest user turn and the
 * `imagesInHistoryTurns` user turns before it carry real image parts; an older image becomes a one-line placeholder,
 * so the model still knows one was sent. Several images in one turn (an album) are several parts of one message.
 */

export interface MediaTurn {
  role: "user" | "assistant";
  text: string;
  /** sha256 ids, as stored in messages.media. */
  media: readonly string[];
}

export const IMAGE_ONLY_PROMPT = "Describe or respond to this image.";
export const ALBUM_ONLY_PROMPT = "Describe or respond to these images.";

/** For each turn (oldest → newest): whether it carries real image parts. */
export function planHistoryImages(turns: readonly MediaTurn[], imagesInHistoryTurns: number): boolean[] {
  const plan = turns.map(() => false);
  let userTurnsLeft = 1 + Math.max(0, Math.floor(imagesInHistoryTurns));
  for (let i = turns.length - 1; i >= 0 && userTurnsLeft > 0; i--) {
    if (turns[i]!.role !== "user") continue;
    userTurnsLeft--;
    plan[i] = turns[i]!.media.length > 0;
  }
  return plan;
}

/** The ids to load with their bytes (turns that carry images) and those for which a placeholder is enough. */
export function mediaToLoad(turns: readonly MediaTurn[], imagesInHistoryTurns: number): { withData: string[]; infoOnly: string[] } {
  const plan = planHistoryImages(turns, imagesInHistoryTurns);
  const withData = new Set<string>();
  const infoOnly = new Set<string>();
  turns.forEach((turn, i) => turn.media.forEach((id) => (plan[i] ? withData : infoOnly).add(id)));
  for (const id of withData) infoOnly.delete(id);
  return { withData: [...withData], infoOnly: [...infoOnly] };
}

/**
 * The turns as AI SDK messages. `media` holds what was loaded: rows with `data` become image parts in turns the plan
 * chose, everything else a placeholder. A turn without media stays a plain string.
 */
export function buildModelMessages(
  turns: readonly MediaTurn[],
  media: ReadonlyMap<string, MediaInfo | StoredMedia>,
  imagesInHistoryTurns: number,
): ModelMessage[] {
  const plan = planHistoryImages(turns, imagesInHistoryTurns);
  return turns.map((turn, i): ModelMessage => {
    if (turn.role === "assistant") return { role: "assistant", content: turn.text };
    return { role: "user", content: userContent(turn, media, plan[i]!) };
  });
}

function userContent(turn: MediaTurn, media: ReadonlyMap<string, MediaInfo | StoredMedia>, carryImages: boolean): UserContent {
  if (turn.media.length === 0) return turn.text;
  const images: StoredMedia[] = [];
  const placeholders: string[] = [];
  for (const id of turn.media) {
    const row = media.get(id);
    if (carryImages && row && "data" in row && row.mimeType.startsWith("image/")) images.push(row);
    else placeholders.push(imagePlaceholder(row));
  }
  const caption = turn.text.trim();
  const text = [caption, ...placeholders].filter(Boolean).join("\n");
  if (images.length === 0) return text;
  const prompt = text || (images.length === 1 ? IMAGE_ONLY_PROMPT : ALBUM_ONLY_PROMPT);
  return [{ type: "text", text: prompt }, ...images.map((row) => ({ type: "image" as const, image: row.data, mediaType: row.mimeType }))];
}

/** "[image: 1024×768 photo sent earlier]", or a note that the image is gone (deleted by retention or /forget). */
export function imagePlaceholder(row: MediaInfo | undefined): string {
  if (!row) return "[image no longer available]";
  const size = row.width && row.height ? `${row.width}×${row.height} ` : "";
  return `[image: ${size}photo sent earlier]`;
}
