import { describe, expect, it } from "vitest";
import { createChatMemory, REPLY_WINDOW_MS } from "../channels/meta/chat-memory.ts";
import { DEFAULT_RETRY_AFTER_MS, mapGraphError, redactToken, retryAfterMs, type GraphFailure } from "../channels/meta/errors.ts";
import { DeliveryError, RateLimitedError } from "../src/core/errors.ts";

const TOKEN = "EAAGm0PX4ZCpsBAFakeTokenValue123";
const context = { platform: "WhatsApp", operation: "send", token: TOKEN, tokenVariable: "WHATSAPP_CLOUD_TOKEN" };

const response = (status: number, error?: Record<string, unknown>, headers: Record<string, string> = {}): GraphFailure => ({
  kind: "response",
  status,
  headers: new Headers(headers),
  body: error === undefined ? undefined : { error: { type: "OAuthException", fbtrace_id: "AbC", ...error } },
});

type Verdict = "rate-limited" | "retryable" | "final" | "window" | "token";

const rows: Array<[name: string, failure: GraphFailure, verdict: Verdict]> = [
  ["HTTP 429 without a Graph body", response(429), "rate-limited"],
  ...[4, 17, 32, 613, 80007, 130429, 131048, 131056].map(
    (code): [string, GraphFailure, Verdict] => [`rate limit code ${code}`, response(400, { code, message: "(#4) Application request limit reached" }), "rate-limited"],
  ),
  ["WhatsApp 131047 re-engagement", response(400, { code: 131047, message: "Re-engagement message" }), "window"],
  ["Messenger 10 / 2018278", response(400, { code: 10, error_subcode: 2018278, message: "(#10) This message is sent outside of allowed window." }), "window"],
  ["Messenger 10 without the window subcode (permission)", response(403, { code: 10, message: "(#10) Application does not have permission" }), "final"],
  ["token 190", response(400, { code: 190, error_subcode: 463, message: "Error validating access token: Session has expired" }), "token"],
  ["HTTP 401 without a body", response(401), "token"],
  ["HTTP 500", response(500, { code: 2, message: "Service temporarily unavailable" }), "retryable"],
  ["HTTP 503 without a body", response(503), "retryable"],
  ["code 131000 something went wrong", response(400, { code: 131000, message: "Something went wrong" }), "retryable"],
  ["code 100 invalid parameter", response(400, { code: 100, message: "(#100) Invalid parameter" }), "final"],
  ["code 131026 undeliverable", response(400, { code: 131026, message: "Message undeliverable" }), "final"],
  ["Messenger 551 person unavailable", response(400, { code: 551, message: "This person isn't available right now." }), "final"],
  ["a network failure", { kind: "network", cause: new TypeError("fetch failed", { cause: new Error("connect ECONNREFUSED 127.0.0.1:9") }) }, "retryable"],
  ["a timeout", { kind: "timeout", afterMs: 15_000 }, "retryable"],
];

function verdictOf(error: Error, tokenRejected: boolean): Verdict {
  if (error instanceof RateLimitedError) return "rate-limited";
  if (!(error instanceof DeliveryError)) throw new Error(`unexpected ${error.name}`);
  if (tokenRejected) return "token";
  if (/24-hour window closed/.test(error.message)) return "window";
  return error.retryable ? "retryable" : "final";
}

describe("mapGraphError", () => {
  it.each(rows)("%s → %s", (_name, failure, verdict) => {
    const { error, tokenRejected } = mapGraphError(failure, context);
    expect(verdictOf(error, tokenRejected)).toBe(verdict);
    if (verdict === "window" || verdict === "token") expect((error as DeliveryError).retryable).toBe(false);
    expect(error.message).toMatch(/^WhatsApp send/);
  });

  it("names the token's variable, and never its value, even when Graph quotes it", () => {
    const { error, tokenRejected } = mapGraphError(response(400, { code: 190, message: `Malformed access token ${TOKEN}` }), context);
    expect(tokenRejected).toBe(true);
    expect(error.message).toContain("WHATSAPP_CLOUD_TOKEN was rejected");
    expect(error.message).not.toContain(TOKEN);
    const network = mapGraphError({ kind: "network", cause: new Error(`GET https://graph/x?access_token=${TOKEN} failed`) }, context);
    expect(network.error.message).not.toContain(TOKEN);
  });

  it("keeps Graph's code, message and fbtrace_id for the operator", () => {
    const { error } = mapGraphError(response(400, { code: 131026, error_subcode: 7, message: "Message undeliverable" }), context);
    expect(error.message).toBe("WhatsApp send failed (HTTP 400, Graph error 131026/7: Message undeliverable (fbtrace_id AbC))");
  });
});

describe("retryAfterMs", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  it.each<[string, Record<string, string>, number]>([
    ["Retry-After seconds", { "retry-after": "30" }, 30_000],
    ["Retry-After as an HTTP date", { "retry-after": "Thu, 01 Jan 2026 00:02:00 GMT" }, 120_000],
    ["X-Business-Use-Case-Usage minutes (the longest)", {
      "x-business-use-case-usage": JSON.stringify({ "123": [{ type: "messenger", call_count: 100, estimated_time_to_regain_access: 5 }, { estimated_time_to_regain_access: 12 }] }),
    }, 12 * 60_000],
    ["an unreadable usage header", { "x-business-use-case-usage": "{oops" }, DEFAULT_RETRY_AFTER_MS],
    ["nothing", {}, DEFAULT_RETRY_AFTER_MS],
  ])("%s", (_name, headers, expected) => {
    expect(retryAfterMs(new Headers(headers), now)).toBe(expected);
  });

  it("is carried by the RateLimitedError", () => {
    const { error } = mapGraphError(response(400, { code: 130429, message: "Rate limit hit" }, { "retry-after": "7" }), context);
    expect(error).toBeInstanceOf(RateLimitedError);
    expect((error as RateLimitedError).retryAfterMs).toBe(7_000);
  });
});

describe("redactToken", () => {
  it("removes the token and anything shaped like a Meta access token", () => {
    expect(redactToken(`a ${TOKEN} b EAABwzLixnjYBOZBsomeOtherToken c`, TOKEN)).toBe("a <token> b <token> c");
  });
});

describe("chat memory", () => {
  const chat = "whatsapp-cloud:111" as const;
  const t0 = new Date("2026-01-01T00:00:00Z");
  const later = (ms: number) => new Date(t0.getTime() + ms);

  it("knows the window only for chats it has seen, and closes it after 24 hours", () => {
    const memory = createChatMemory();
    expect(memory.windowClosed(chat, later(10 * REPLY_WINDOW_MS))).toBe(false);
    memory.noteInbound(chat, "wamid.1", t0);
    expect(memory.windowClosed(chat, later(REPLY_WINDOW_MS - 1))).toBe(false);
    expect(memory.windowClosed(chat, later(REPLY_WINDOW_MS + 1))).toBe(true);
  });

  it("keeps the newest inbound message when a batch arrives out of order", () => {
    const memory = createChatMemory();
    memory.noteInbound(chat, "wamid.new", later(5_000));
    memory.noteInbound(chat, "wamid.old", t0);
    expect(memory.lastInboundId(chat)).toBe("wamid.new");
  });

  it("shows typing at most once per interval, again after a send", () => {
    const memory = createChatMemory();
    memory.noteInbound(chat, "wamid.1", t0);
    expect(memory.typingDue(chat, t0, 20_000)).toBe(true);
    expect(memory.typingDue(chat, later(4_000), 20_000)).toBe(false);
    expect(memory.typingDue(chat, later(20_000), 20_000)).toBe(true);
    memory.noteSent(chat);
    expect(memory.typingDue(chat, later(21_000), 20_000)).toBe(true);
  });

  it("forgets the oldest chat past its bound", () => {
    const memory = createChatMemory(2);
    memory.noteInbound("messenger:1", "m1", t0);
    memory.noteInbound("messenger:2", "m2", t0);
    memory.noteInbound("messenger:3", "m3", t0);
    expect([memory.lastInboundId("messenger:1"), memory.lastInboundId("messenger:2"), memory.lastInboundId("messenger:3")]).toEqual([undefined, "m2", "m3"]);
  });
});
