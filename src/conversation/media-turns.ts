import type { ModelMessage } from "ai";
import type { ChannelAdapter, InboundMessage } from "../core/types.ts";
import type { Db } from "../db/client.ts";
import type { Logger } from "../observability/logger.ts";
import { prepareInbound, turnText, type MediaConfig } from "../media/prepare.ts";
import { buildModelMessages, mediaToLoad } from "../media/prompt-parts.ts";
import { loadMedia } from "../media/store.ts";
import { estimateTokens } from "../models/tokens.ts";
import type { Turn } from "./store.ts";

/**
 * Where the conversation service meets the media pipeline: turning a message's attachments into the stored user turn
 * (images by sha256, voice as transcript text), and putting the images of recent turns back into the prompt.
 */

export interface MediaSupport {
  db: Db;
  config: MediaConfig;
  /** IMAGES_IN_HISTORY_TURNS: how many recent user turns carry their images; older ones get a short placeholder. */
  imagesInHistoryTurns: number;
}

export interface UserTurnInput {
  text: string;
  media: string[];
  tokens: number;
  /** One sentence per attachment that could not be used, for the user. */
  refusals: string[];
  /** An attachment failed for a reason that may pass: better retry the message than answer without it. */
  retryable: boolean;
}

/** About what a provider charges for an image of this size, capped (they scale images down). */
export function imageTokens(width: number, height: number): number {
  return Math.min(1_600, Math.ceil((width * height) / 750));
}

export async function prepareUserTurn(
  support: MediaSupport,
  message: InboundMessage,
  adapter: ChannelAdapter,
  signal: AbortSignal,
  log: Logger,
): Promise<UserTurnInput> {
  if (message.attachments.length === 0) {
    return { text: message.text, media: [], tokens: estimateTokens(message.text), refusals: [], retryable: false };
  }
  const prepared = await prepareInbound(message.attachments, {
    download: adapter.download?.bind(adapter),
    db: support.db,
    config: support.config,
    signal,
    log,
  });
  const text = turnText(message.text, prepared.transcript);
  return {
    text,
    media: prepared.images.map((image) => image.sha256),
    tokens: estimateTokens(text) + prepared.images.reduce((sum, image) => sum + imageTokens(image.width, image.height), 0),
    refusals: prepared.refusals,
    retryable: prepared.retryable,
  };
}

/**
 * The prompt's messages with images: turns within IMAGES_IN_HISTORY_TURNS carry their image bytes, older ones a
 * placeholder. Returns null when no turn has media (the text-only messages stand as they are).
 */
export async function messagesWithImages(support: MediaSupport, turns: readonly Turn[]): Promise<ModelMessage[] | null> {
  if (!turns.some((turn) => turn.media.length > 0)) return null;
  const { withData, infoOnly } = mediaToLoad(turns, support.imagesInHistoryTurns);
  const [full, info] = await Promise.all([
    loadMedia(support.db, withData),
    loadMedia(support.db, infoOnly, { withData: false }),
  ]);
  return buildModelMessages(turns, new Map([...info, ...full]), support.imagesInHistoryTurns);
}
