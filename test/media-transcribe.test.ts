import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DeliveryError, RefusedInputError } from "../src/core/errors.ts";
import { audioDuration } from "../src/media/audio-duration.ts";
import {
  parseTranscribeModel,
  transcribe,
  TranscriptionFailedError,
  VOICE_NOT_ENABLED,
  type TranscribeConfig,
} from "../src/media/transcribe.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { fakePdf, oggOpusVoice, pcmWav } from "./support/images.ts";

const MB = 1024 * 1024;
let server: FakeOpenAIServer;
let config: TranscribeConfig;

beforeAll(async () => {
  server = await startFakeOpenAIServer({ apiKey: "sk-test-transcribe" });
});
afterAll(() => server.close());
beforeEach(() => {
  config = { model: "openai:whisper-1", baseURL: `${server.url}/v1`, apiKey: "sk-test-transcribe", maxBytes: 20 * MB, maxSeconds: 300 };
});

async function refusal(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RefusedInputError);
  return (error as RefusedInputError).userMessage;
}

describe("transcribe", () => {
  it("transcribes a voice note through the OpenAI-compatible endpoint", async () => {
    server.replyOnce("whisper-1", { text: " Remind me to buy milk. " });
    const voice = oggOpusVoice(12);
    const before = server.requests.length;
    const transcript = await transcribe(voice, "audio/ogg", { config });
    expect(transcript).toEqual({ text: "Remind me to buy milk.", model: "openai:whisper-1", durationSeconds: 12, durationSource: "container" });
    const request = server.requests[before]!;
    expect(request).toMatchObject({ path: "/v1/audio/transcriptions", authorized: true, model: "whisper-1" });
    expect((request.body as { file: unknown }).file).toEqual({ name: "audio.ogg", type: "audio/ogg", size: voice.byteLength });
  });

  it("prefers the duration the platform declared", async () => {
    server.replyOnce("whisper-1", { text: "hi" });
    const transcript = await transcribe(oggOpusVoice(12), "audio/ogg", { config, durationSeconds: 13 });
    expect([transcript.durationSeconds, transcript.durationSource]).toEqual([13, "platform"]);
  });

  it("sends a WebM recording as WebM, not as the WAV the SDK would guess", async () => {
    server.replyOnce("whisper-1", { text: "from the browser" });
    const webm = Buffer.concat([Buffer.from([0x1a, 0x45, 0xdf, 0xa3]), Buffer.alloc(4000, 1)]);
    const before = server.requests.length;
    const transcript = await transcribe(webm, "audio/webm;codecs=opus", { config });
    expect(transcript.text).toBe("from the browser");
    expect(transcript.durationSource).toBe("estimate");
    expect((server.requests[before]!.body as { file: { name: string; type: string } }).file).toMatchObject({ name: "audio.webm", type: "audio/webm" });
  });

  it("refuses a voice message that is too long, before sending anything", async () => {
    const before = server.requests.length;
    expect(await refusal(transcribe(oggOpusVoice(600), "audio/ogg", { config }))).toBe(
      "That voice message is too long for me (about 10 min): the limit is 5 min.",
    );
    expect(await refusal(transcribe(oggOpusVoice(10), "audio/ogg", { config, durationSeconds: 301 }))).toMatch(/too long for me \(about 5 min 1 s\)/);
    // No container length: estimated from the size (an MP3 of 1 MB at 128 kbit/s is about a minute).
    const mp3 = Buffer.concat([Buffer.from("ID3\x04", "latin1"), Buffer.alloc(MB)]);
    expect(await refusal(transcribe(mp3, "audio/mpeg", { config: { ...config, maxSeconds: 30 } }))).toMatch(/too long for me \(about 1 min 6 s\): the limit is 30 s/);
    expect(server.requests.length).toBe(before);
  });

  it("refuses a voice message over the size cap", async () => {
    expect(await refusal(transcribe(oggOpusVoice(10, 30_000), "audio/ogg", { config: { ...config, maxBytes: 20_000 } }))).toMatch(
      /too large for me/,
    );
  });

  it("says so when transcription is not configured", async () => {
    expect(await refusal(transcribe(oggOpusVoice(5), "audio/ogg", { config: undefined }))).toBe(VOICE_NOT_ENABLED);
    expect(VOICE_NOT_ENABLED).toBe("Voice messages aren't enabled here: the operator can set TRANSCRIBE_MODEL.");
  });

  it("refuses a file that is not audio", async () => {
    expect(await refusal(transcribe(fakePdf(), "audio/ogg", { config }))).toBe("That voice message isn't audio I can read (it looks like a PDF).");
  });

  it("refuses a silence without words", async () => {
    server.replyOnce("whisper-1", { text: "" });
    expect(await refusal(transcribe(oggOpusVoice(3), "audio/ogg", { config }))).toBe("I couldn't make out any words in that voice message.");
  });

  it("reports a failing service with a verdict on retrying", async () => {
    server.replyOnce("whisper-1", { error: { status: 503, message: "overloaded" } });
    const before = server.requests.length;
    const unavailable = await transcribe(oggOpusVoice(3), "audio/ogg", { config: { ...config, maxRetries: 0 } }).catch((e: unknown) => e);
    expect(server.requests.length).toBe(before + 1);
    expect(unavailable).toBeInstanceOf(TranscriptionFailedError);
    expect(unavailable).toBeInstanceOf(DeliveryError);
    expect((unavailable as DeliveryError).retryable).toBe(true);

    const badKey = await transcribe(oggOpusVoice(3), "audio/ogg", { config: { ...config, apiKey: "sk-wrong" } }).catch((e: unknown) => e);
    expect(badKey).toBeInstanceOf(TranscriptionFailedError);
    expect((badKey as DeliveryError).retryable).toBe(false);
    expect((badKey as Error).message).not.toContain("sk-wrong");
  });

  it("stops when the caller aborts", async () => {
    server.replyOnce("whisper-1", { hang: true });
    const controller = new AbortController();
    const pending = transcribe(oggOpusVoice(3), "audio/ogg", { config, signal: controller.signal });
    await server.waitForRequests(server.requests.length + 1).catch(() => {});
    controller.abort(new Error("job cancelled"));
    await expect(pending).rejects.toThrow("job cancelled");
  });
});

describe("parseTranscribeModel", () => {
  it.each([
    ["openai:whisper-1", { provider: "openai", model: "whisper-1" }],
    ["openai-compatible:Systran/faster-whisper-small", { provider: "openai-compatible", model: "Systran/faster-whisper-small" }],
  ] as const)("reads %s", (value, expected) => {
    expect(parseTranscribeModel(value)).toEqual(expected);
  });

  it.each(["whisper-1", "anthropic:whisper", "openai:", ":whisper-1"])("rejects %j", (value) => {
    expect(() => parseTranscribeModel(value)).toThrow(/provider:model/);
  });
});

describe("audioDuration", () => {
  it("reads Ogg Opus and WAV lengths from the container", () => {
    expect(audioDuration(oggOpusVoice(42.5), "audio/ogg")).toEqual({ seconds: 42.5, source: "container" });
    expect(audioDuration(pcmWav(2), "audio/wav")).toEqual({ seconds: 2, source: "container" });
  });

  it("estimates leniently from the size when the container says nothing", () => {
    expect(audioDuration(new Uint8Array(160_000), "audio/mpeg")).toEqual({ seconds: 10, source: "estimate" });
    expect(audioDuration(new Uint8Array(80_000), "audio/ogg")).toEqual({ seconds: 10, source: "estimate" });
  });
});
