import { describe, expect, it } from "vitest";
import { normalizeMessengerPayload } from "../channels/messenger/normalize.ts";
import type { InboundMessage } from "../src/core/types.ts";
import { messengerWebhook as fb } from "./fakes/graph-api.ts";

const now = new Date("2026-01-01T00:00:00Z");
const normalize = (payload: unknown) => normalizeMessengerPayload(payload, { now });
const PSID = "2900000000000001";

type Row = [name: string, item: unknown, expected: Partial<InboundMessage>];

const delivered: Row[] = [
  [
    "text",
    fb.text(PSID, "m_TEXT", "Bonjour !", 1_750_000_000_123),
    {
      channel: "messenger", platformMessageId: "m_TEXT", chat: `messenger:${PSID}`, user: `messenger:${PSID}`,
      isGroup: false, mentionsBot: false, replyToBot: false, text: "Bonjour !", attachments: [], receivedAt: new Date(1_750_000_000_123),
    },
  ],
  [
    "quick reply: the text is the button's title",
    { sender: { id: PSID }, recipient: { id: "PAGE" }, timestamp: 1, message: { mid: "m_QR", text: "Thinking", quick_reply: { payload: "MODE_THINKING" } } },
    { text: "Thinking" },
  ],
  ["image: its URL is the ref", fb.attachment(PSID, "m_IMG", "image", "https://scontent.xx.fbcdn.net/v/t1/photo.jpg?oh=1"), {
    text: "", attachments: [{ kind: "image", ref: "https://scontent.xx.fbcdn.net/v/t1/photo.jpg?oh=1" }],
  }],
  ["audio", fb.attachment(PSID, "m_AUD", "audio", "https://cdn.fbsbx.com/v/audioclip.mp4"), {
    attachments: [{ kind: "audio", ref: "https://cdn.fbsbx.com/v/audioclip.mp4" }],
  }],
  ["video and file are files", fb.attachment(PSID, "m_VID", "video", "https://video.xx.fbcdn.net/v.mp4"), {
    attachments: [{ kind: "file", ref: "https://video.xx.fbcdn.net/v.mp4" }],
  }],
  [
    "text with an image, a sticker and a location: only the image is kept",
    {
      sender: { id: PSID }, recipient: { id: "PAGE" }, timestamp: 1,
      message: {
        mid: "m_MIX", text: "look",
        attachments: [
          { type: "image", payload: { url: "https://scontent.xx.fbcdn.net/a.jpg" } },
          { type: "image", payload: { url: "https://scontent.xx.fbcdn.net/like.png", sticker_id: 369239263222822 } },
          { type: "location", payload: { coordinates: { lat: 1, long: 2 } } },
          { type: "file", payload: { url: "javascript:alert(1)" } },
        ],
      },
    },
    { text: "look", attachments: [{ kind: "image", ref: "https://scontent.xx.fbcdn.net/a.jpg" }] },
  ],
  ["a missing timestamp falls back to now", { sender: { id: PSID }, recipient: { id: "PAGE" }, message: { mid: "m_NOTS", text: "hi" } }, { receivedAt: now }],
];

describe("normalizeMessengerPayload: delivered", () => {
  it.each(delivered)("%s", (_name, item, expected) => {
    const outcomes = normalize(fb.payload([item]));
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]!.type).toBe("message");
    expect((outcomes[0] as { message: InboundMessage }).message).toMatchObject(expected);
  });
});

describe("normalizeMessengerPayload: forwarded messages", () => {
  // Messenger's messages webhook has no forwarded flag, so nothing can be marked: a forwarded text looks typed.
  it.each<[string, unknown]>([
    ["a text", fb.text(PSID, "m_OWN", "/forget")],
    ["a reply", { sender: { id: PSID }, recipient: { id: "PAGE" }, timestamp: 1, message: { mid: "m_RE", text: "/forget", reply_to: { mid: "m_0", is_self_reply: false } } }],
    ["an image with text", fb.attachment(PSID, "m_IMG_T", "image", "https://scontent.xx.fbcdn.net/a.jpg", { text: "/forget" })],
  ])("%s is never marked forwarded", (_name, item) => {
    const [outcome] = normalize(fb.payload([item]));
    expect(outcome?.type).toBe("message");
    const message = (outcome as { message: InboundMessage }).message;
    expect(message.text).toBe("/forget");
    expect(message).not.toHaveProperty("forwarded");
  });
});

describe("normalizeMessengerPayload: ignored", () => {
  it.each<[string, unknown, string]>([
    ["an echo of the page's own message", fb.echo(PSID, "m_ECHO", "our reply"), "echo of the page's own message"],
    ["a delivery receipt", fb.delivery(PSID), "delivery event"],
    ["a read receipt", fb.read(PSID), "read event"],
    ["a postback", fb.postback(PSID), "postback event"],
    ["a reaction", { sender: { id: PSID }, recipient: { id: "PAGE" }, timestamp: 1, reaction: { mid: "m_1", action: "react", emoji: "❤" } }, "reaction event"],
    ["a sticker alone", { sender: { id: PSID }, recipient: { id: "P" }, timestamp: 1, message: { mid: "m_ST", attachments: [{ type: "image", payload: { url: "https://x/like.png", sticker_id: 1 } }] } }, "no text or supported attachment (sticker, location, …)"],
  ])("%s", (_name, item, reason) => {
    const outcomes = normalize(fb.payload([item]));
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]).toMatchObject({ type: "ignored", reason });
  });
});

describe("normalizeMessengerPayload: batches and bad shapes", () => {
  it("handles every entry and every messaging item: 2 entries x 2 messages = 4, in order, between receipts", () => {
    const outcomes = normalize(
      fb.payload(
        [fb.text("1001", "m_1", "a"), fb.read("1001"), fb.text("1002", "m_2", "b")],
        [fb.text("1003", "m_3", "c"), fb.delivery("1003"), fb.text("1001", "m_4", "d")],
      ),
    );
    const messages = outcomes.flatMap((o) => (o.type === "message" ? [o.message] : []));
    expect(messages.map((m) => [m.platformMessageId, m.chat, m.text])).toEqual([
      ["m_1", "messenger:1001", "a"],
      ["m_2", "messenger:1002", "b"],
      ["m_3", "messenger:1003", "c"],
      ["m_4", "messenger:1001", "d"],
    ]);
    expect(outcomes).toHaveLength(6);
  });

  it.each<[string, unknown]>([
    ["null", null],
    ["a WhatsApp payload", { object: "whatsapp_business_account", entry: [] }],
    ["entry not an array", { object: "page", entry: "x" }],
  ])("turns %s into one malformed outcome", (_name, payload) => {
    expect(normalize(payload)).toEqual([{ type: "ignored", reason: "not a Messenger page payload", malformed: true }]);
  });

  it("survives wrong types in entries and items, keeping the good message", () => {
    const outcomes = normalize({
      object: "page",
      entry: [
        null,
        { messaging: "x" },
        { id: "P", standby: [{ sender: { id: PSID } }] },
        { messaging: [null, 7, { sender: {} }, { sender: { id: "not-a-psid" }, message: { mid: "m_BAD", text: "x" } }, fb.text(PSID, "m_OK", "fine")] },
      ],
    });
    expect(outcomes.filter((o) => o.type === "message").map((o) => (o as { message: InboundMessage }).message.text)).toEqual(["fine"]);
    expect(outcomes.filter((o) => o.type === "ignored" && o.malformed)).toHaveLength(6);
  });
});
