import { DeliveryError, RefusedInputError, errorMessage } from "../core/errors.ts";
import { tooLargeError } from "../core/read-capped.ts";
import type { Attachment } from "../core/types.ts";
import type { Db } from "../db/client.ts";
import type { Logger } from "../observability/logger.ts";
import { formatDuration } from "./limits.ts";
import { prepareImage, type ImageLimits } from "./image.ts";
import { sniff } from "./sniff.ts";
import { storeMedia } from "./store.ts";
import { checkVoiceBeforeDownload, transcribe, TranscriptionFailedError, type TranscribeConfig, type Transcript } from "./transcribe.ts";

/**
 * The one entry point of the conversation service into media: every attachment of a message is downloaded through
 * its channel (capped), images are prepared and stored, voice is transcribed, and whatever cannot be used becomes a
 * sentence for the user. One bad attachment never stops the others; only an aborted `signal` throws.
 */

export interface MediaConfig {
  /** MEDIA_MAX_BYTES: largest image or file downloaded. */
  maxBytes: number;
  image: ImageLimits;
  /** Undefined when TRANSCRIBE_MODEL is not set: voice messages are refused with a sentence saying so. */
  transcribe: TranscribeConfig | undefined;
}

/** A channel adapter's `download`. */
export type Download = (attachment: Attachment, maxBytes: number, signal: AbortSignal) => Promise<Uint8Array>;

export interface PrepareInboundDeps {
  /** The adapter's download; undefined for a channel that cannot fetch files. */
  download: Download | undefined;
  db: Db;
  config: MediaConfig;
  signal: AbortSignal;
  log?: Logger;
}

export interface PreparedImageRef {
  sha256: string;
  mimeType: string;
  width: number;
  height: number;
}

export interface PreparedInbound {
  /** Stored images in the order they were sent: their sha256s go into messages.media of the user turn. */
  images: PreparedImageRef[];
  /** The voice message(s) as text. */
  transcript?: Transcript;
  /** One sentence per attachment that could not be used, safe to show the user. */
  refusals: string[];
  /**
   * Some attachment failed for a reason that may pass (download, transcription service, database): the service may
   * retry the whole message later instead of answering without it.
   */
  retryable: boolean;
}

/** An attachment may carry the duration its platform declared (Telegram voice, WhatsApp ptt); the contract may add it. */
type InboundAttachment = Attachment & { durationSeconds?: number };

const CANNOT_READ_FILES = "I can't read files of this kind yet.";
const CANNOT_WATCH_VIDEOS = "I can't watch videos yet: a photo or a voice message works.";
const NO_DOWNLOAD = "I can't fetch attachments on this channel yet.";

export async function prepareInbound(attachments: readonly InboundAttachment[], deps: PrepareInboundDeps): Promise<PreparedInbound> {
  const result: PreparedInbound = { images: [], refusals: [], retryable: false };
  const transcripts: Transcript[] = [];
  for (const attachment of attachments) {
    try {
      if (attachment.kind === "audio") transcripts.push(await voice(attachment, deps));
      else result.images.push(await image(attachment, deps));
    } catch (error) {
      if (deps.signal.aborted) throw deps.signal.reason;
      const refusal = refusalFor(error, attachment);
      result.refusals.push(refusal.text);
      result.retryable ||= refusal.retryable;
      deps.log?.[refusal.retryable ? "warn" : "info"](
        { kind: attachment.kind, mimeType: attachment.mimeType, sizeBytes: attachment.sizeBytes, err: errorMessage(error) },
        "attachment not used",
      );
    }
  }
  if (transcripts.length > 0) result.transcript = joinTranscripts(transcripts);
  return result;
}

async function image(attachment: InboundAttachment, deps: PrepareInboundDeps): Promise<PreparedImageRef> {
  const declared = attachment.mimeType?.split(";")[0]?.trim().toLowerCase();
  // The platform's type may refuse a file without downloading it, never accept one: that is the bytes' job.
  if (attachment.kind === "file" && declared && !declared.startsWith("image/") && declared !== "application/octet-stream") {
    throw new RefusedInputError(declared.startsWith("video/") ? CANNOT_WATCH_VIDEOS : CANNOT_READ_FILES);
  }
  const { maxBytes } = deps.config;
  if (attachment.sizeBytes !== undefined && attachment.sizeBytes > maxBytes) throw tooLargeError(maxBytes, attachment.sizeBytes);
  const bytes = await fetchBytes(attachment, maxBytes, deps);
  if (attachment.kind === "file") {
    const sniffed = sniff(bytes);
    if (sniffed.kind === "video") throw new RefusedInputError(CANNOT_WATCH_VIDEOS);
    if (sniffed.kind !== "image") throw new RefusedInputError(CANNOT_READ_FILES);
  }
  const prepared = await prepareImage(bytes, deps.config.image);
  await storeMedia(deps.db, prepared);
  return { sha256: prepared.sha256, mimeType: prepared.mimeType, width: prepared.width, height: prepared.height };
}

async function voice(attachment: InboundAttachment, deps: PrepareInboundDeps): Promise<Transcript> {
  const config = deps.config.transcribe;
  checkVoiceBeforeDownload(config, attachment);
  const bytes = await fetchBytes(attachment, config!.maxBytes, deps);
  return transcribe(bytes, attachment.mimeType, {
    config,
    signal: deps.signal,
    ...(attachment.durationSeconds === undefined ? {} : { durationSeconds: attachment.durationSeconds }),
  });
}

async function fetchBytes(attachment: Attachment, maxBytes: number, deps: PrepareInboundDeps): Promise<Uint8Array> {
  if (!deps.download) throw new RefusedInputError(NO_DOWNLOAD);
  const bytes = await deps.download(attachment, maxBytes, deps.signal);
  // The adapter should have stopped at the cap; this keeps a careless one from passing more on.
  if (bytes.byteLength > maxBytes) throw tooLargeError(maxBytes, bytes.byteLength);
  return bytes;
}

function refusalFor(error: unknown, attachment: Attachment): { text: string; retryable: boolean } {
  if (error instanceof RefusedInputError) return { text: error.userMessage, retryable: false };
  const what = attachment.kind === "audio" ? "voice message" : attachment.kind === "image" ? "image" : "file";
  if (error instanceof DeliveryError) {
    const text = error instanceof TranscriptionFailedError
      ? "I couldn't transcribe that voice message just now: please try again, or type it."
      : `I couldn't download that ${what}: please send it again.`;
    return { text, retryable: error.retryable };
  }
  return { text: `Something went wrong with that ${what}: please send it again.`, retryable: true };
}

function joinTranscripts(transcripts: readonly Transcript[]): Transcript {
  if (transcripts.length === 1) return transcripts[0]!;
  return {
    text: transcripts.map((t) => t.text).join("\n\n"),
    model: transcripts[0]!.model,
    durationSeconds: transcripts.reduce((sum, t) => sum + t.durationSeconds, 0),
    durationSource: transcripts.every((t) => t.durationSource === transcripts[0]!.durationSource) ? transcripts[0]!.durationSource : "estimate",
  };
}

/**
 * The text of the user turn as stored and shown to the model: the caption, then the transcript marked as a voice
 * message ("[voice message, 12 s]: …"). Commands are parsed from the sender's typed text before this, never from it.
 */
export function turnText(text: string, transcript: Transcript | undefined): string {
  if (!transcript) return text;
  const voiceLine = `[voice message, ${formatDuration(transcript.durationSeconds)}]: ${transcript.text}`;
  return text.trim() ? `${text.trim()}\n${voiceLine}` : voiceLine;
}
