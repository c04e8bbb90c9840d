import { createOpenAI } from "@ai-sdk/openai";
import { APICallError, experimental_transcribe, NoTranscriptGeneratedError, RetryError, type TranscriptionModel } from "ai";
import { DeliveryError, RefusedInputError, errorMessage } from "../core/errors.ts";
import { audioDuration } from "./audio-duration.ts";
import { formatDuration, formatMegabytes } from "./limits.ts";
import { describeSniffed, sniff } from "./sniff.ts";

/**
 * Voice messages become text through any OpenAI-compatible `/audio/transcriptions` endpoint (OpenAI's whisper-1 or
 * gpt-4o-transcribe, a local whisper server, Groq, …) via the AI SDK. Length and size are checked before anything
 * is sent, so an hour of audio costs nothing.
 */

export const TRANSCRIBE_PROVIDERS = ["openai", "openai-compatible"] as const;

export interface TranscribeConfig {
  /** `provider:model`, e.g. "openai:whisper-1"; both providers speak OpenAI's transcription API. */
  model: string;
  /** Default https://api.openai.com/v1; a local server is e.g. http://127.0.0.1:8000/v1. */
  baseURL?: string;
  apiKey?: string;
  maxBytes: number;
  maxSeconds: number;
  timeoutMs?: number;
  /** Retries of a retryable failure (429, 5xx) within one call, after the AI SDK's back-off; default 1. */
  maxRetries?: number;
  fetch?: typeof fetch;
}

export interface Transcript {
  text: string;
  /** The configured `provider:model`. */
  model: string;
  durationSeconds: number;
  /** Where the duration came from: the platform's metadata, the audio container, the provider, or the file size. */
  durationSource: "platform" | "container" | "provider" | "estimate";
}

export interface TranscribeOptions {
  /** Undefined when the operator configured no transcription model. */
  config: TranscribeConfig | undefined;
  /** The duration the platform declared with the message, if any. */
  durationSeconds?: number;
  signal?: AbortSignal;
}

/** The transcription service failed (not the audio): `retryable` says whether trying later may help. */
export class TranscriptionFailedError extends DeliveryError {}

export const VOICE_NOT_ENABLED = "Voice messages aren't enabled here: the operator can set TRANSCRIBE_MODEL.";

/** Splits "openai:whisper-1"; throws an Error whose message suits a configuration error. */
export function parseTranscribeModel(value: string): { provider: (typeof TRANSCRIBE_PROVIDERS)[number]; model: string } {
  const colon = value.indexOf(":");
  const provider = value.slice(0, colon);
  const model = value.slice(colon + 1).trim();
  if (colon <= 0 || model === "" || !(TRANSCRIBE_PROVIDERS as readonly string[]).includes(provider)) {
    throw new Error(`"${value}" is not provider:model with provider one of ${TRANSCRIBE_PROVIDERS.join(", ")}`);
  }
  return { provider: provider as (typeof TRANSCRIBE_PROVIDERS)[number], model };
}

/** Refusals that need no bytes: call before downloading, with what the platform declared. */
export function checkVoiceBeforeDownload(config: TranscribeConfig | undefined, declared: { sizeBytes?: number; durationSeconds?: number }): void {
  if (!config) throw new RefusedInputError(VOICE_NOT_ENABLED);
  if (declared.sizeBytes !== undefined && declared.sizeBytes > config.maxBytes) throw tooLarge(declared.sizeBytes, config.maxBytes);
  if (declared.durationSeconds !== undefined && declared.durationSeconds > config.maxSeconds) {
    throw tooLong(declared.durationSeconds, config.maxSeconds);
  }
}

export async function transcribe(bytes: Uint8Array, mimeType: string | undefined, opts: TranscribeOptions): Promise<Transcript> {
  const { config } = opts;
  checkVoiceBeforeDownload(config, { sizeBytes: bytes.byteLength, durationSeconds: opts.durationSeconds });
  if (!config) throw new RefusedInputError(VOICE_NOT_ENABLED);
  const mediaType = audioTypeOf(bytes, mimeType);
  const measured = opts.durationSeconds === undefined ? audioDuration(bytes, mediaType) : undefined;
  if (measured && measured.seconds > config.maxSeconds) throw tooLong(measured.seconds, config.maxSeconds);

  const signals = [opts.signal, config.timeoutMs ? AbortSignal.timeout(config.timeoutMs) : undefined].filter((s) => s !== undefined);
  try {
    const result = await experimental_transcribe({
      model: transcriptionModel(config, mediaType),
      audio: bytes,
      maxRetries: config.maxRetries ?? 1,
      ...(signals.length > 0 ? { abortSignal: AbortSignal.any(signals) } : {}),
    });
    const [durationSeconds, durationSource]: [number, Transcript["durationSource"]] =
      opts.durationSeconds !== undefined
        ? [opts.durationSeconds, "platform"]
        : result.durationInSeconds !== undefined
          ? [result.durationInSeconds, "provider"]
          : [measured!.seconds, measured!.source];
    return { text: result.text.trim(), model: config.model, durationSeconds, durationSource };
  } catch (error) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    throw transcriptionError(error);
  }
}

/**
 * The OpenAI transcription model, told the real type of the audio: the AI SDK guesses it from the first bytes and
 * falls back to WAV, which would send a WebM recording named audio.wav.
 */
function transcriptionModel(config: TranscribeConfig, mediaType: string): TranscriptionModel {
  const { model } = parseTranscribeModel(config.model);
  const inner = createOpenAI({
    // Always explicit: left undefined, the provider would read OPENAI_BASE_URL / OPENAI_API_KEY from process.env.
    baseURL: config.baseURL ?? "https://api.openai.com/v1",
    apiKey: config.apiKey ?? "",
    ...(config.fetch ? { fetch: config.fetch } : {}),
  }).transcription(model);
  return {
    specificationVersion: inner.specificationVersion,
    provider: inner.provider,
    modelId: inner.modelId,
    doGenerate: (options) => inner.doGenerate({ ...options, mediaType }),
  };
}

/** The media type to send, from the bytes; the platform's claim only when the bytes say nothing. */
function audioTypeOf(bytes: Uint8Array, declared: string | undefined): string {
  const sniffed = sniff(bytes);
  if (sniffed.kind === "audio") return sniffed.mimeType;
  if (sniffed.kind === "video") return sniffed.mimeType === "video/webm" ? "audio/webm" : "audio/mp4";
  if (sniffed.kind === "unknown" && declared?.startsWith("audio/")) return declared.split(";")[0]!.trim();
  const looksLike = describeSniffed(sniffed);
  throw new RefusedInputError(
    looksLike ? `That voice message isn't audio I can read (it looks like ${looksLike}).` : "That voice message isn't audio I can read.",
  );
}

function transcriptionError(error: unknown): Error {
  const last = RetryError.isInstance(error) ? error.lastError : error;
  if (NoTranscriptGeneratedError.isInstance(last)) {
    return new RefusedInputError("I couldn't make out any words in that voice message.", { cause: error });
  }
  const retryable = APICallError.isInstance(last) ? last.isRetryable : true;
  return new TranscriptionFailedError(`transcription failed: ${errorMessage(last)}`, retryable, { cause: error });
}

function tooLarge(size: number, cap: number): RefusedInputError {
  return new RefusedInputError(`That voice message is too large for me (${formatMegabytes(size)}): the limit is ${formatMegabytes(cap)}.`);
}

function tooLong(seconds: number, cap: number): RefusedInputError {
  return new RefusedInputError(`That voice message is too long for me (about ${formatDuration(seconds)}): the limit is ${formatDuration(cap)}.`);
}
