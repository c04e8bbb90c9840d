import { describe, expect, it } from "vitest";
import { normalizeWhatsAppPayload } from "../channels/whatsapp-cloud/normalize.ts";
import type { InboundOutcome } from "../channels/meta/inbound.ts";
import type { InboundMessage } from "../src/core/types.ts";
import { whatsappWebhook as wa } from "./fakes/graph-api.ts";

const OURS = "106540352242922";
const now = new Date("2026-01-01T00:00:00Z");
const normalize = (payload: unknown) => normalizeWhatsAppPayload(payload, { phoneNumberId: OURS, now });
const one = (message: Record<string, unknown>, names?: Record<string, string>) =>
  normalize(wa.payload([wa.change(OURS, { messages: [message], ...(names ? { names } : {}) })]));

type Row = [name: string, message: Record<string, unknown>, expected: Partial<InboundMessage>];

const delivered: Row[] = [
  [
    "text, with the sender's profile name and Meta's timestamp",
    wa.text("4915112345678", "wamid.HBgL1", "Hallo, wie geht's?", "1750000000"),
    {
      channel: "whatsapp-cloud", platformMessageId: "wamid.HBgL1", chat: "whatsapp-cloud:4915112345678",
      user: "whatsapp-cloud:4915112345678", displayName: "User 4915112345678", isGroup: false, mentionsBot: false,
      replyToBot: false, text: "Hallo, wie geht's?", attachments: [], receivedAt: new Date(1_750_000_000_000),
    },
  ],
  [
    "image with caption: the media id is the ref",
    wa.image("15550002222", "wamid.IMG", "1479537139650973", "what is this?"),
    { text: "what is this?", attachments: [{ kind: "image", ref: "1479537139650973", mimeType: "image/jpeg" }] },
  ],
  [
    "image without caption",
    wa.image("15550002222", "wamid.IMG2", "998877"),
    { text: "", attachments: [{ kind: "image", ref: "998877", mimeType: "image/jpeg" }] },
  ],
  [
    "voice note: audio, MIME parameters dropped",
    wa.audio("15550002222", "wamid.AUD", "5551212"),
    { text: "", attachments: [{ kind: "audio", ref: "5551212", mimeType: "audio/ogg" }] },
  ],
  [
    "document keeps its file name and caption",
    { from: "15550002222", id: "wamid.DOC", timestamp: "1750000000", type: "document",
      document: { id: "42", mime_type: "application/pdf", sha256: "x", filename: "report.pdf", caption: "summarise" } },
    { text: "summarise", attachments: [{ kind: "file", ref: "42", mimeType: "application/pdf", fileName: "report.pdf" }] },
  ],
  [
    "a document that is an image counts as an image",
    { from: "15550002222", id: "wamid.DOC2", timestamp: "1750000000", type: "document", document: { id: "43", mime_type: "image/png", filename: "scan.png" } },
    { attachments: [{ kind: "image", ref: "43", mimeType: "image/png", fileName: "scan.png" }] },
  ],
  [
    "video as a file",
    { from: "15550002222", id: "wamid.VID", timestamp: "1750000000", type: "video", video: { id: "44", mime_type: "video/mp4" } },
    { attachments: [{ kind: "file", ref: "44", mimeType: "video/mp4" }] },
  ],
  [
    "a button reply's title is the text",
    { from: "15550002222", id: "wamid.BTN", timestamp: "1750000000", type: "interactive",
      interactive: { type: "button_reply", button_reply: { id: "b1", title: "Thinking mode" } } },
    { text: "Thinking mode" },
  ],
  [
    "a missing timestamp falls back to now",
    { from: "15550002222", id: "wamid.NOTS", type: "text", text: { body: "hi" } },
    { receivedAt: now },
  ],
];

describe("normalizeWhatsAppPayload: delivered", () => {
  it.each(delivered)("%s", (_name, message, expected) => {
    const outcomes = one(message);
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]!.type).toBe("message");
    expect((outcomes[0] as { message: InboundMessage }).message).toMatchObject(expected);
  });
});

describe("normalizeWhatsAppPayload: forwarded messages", () => {
  const messageOf = (raw: Record<string, unknown>) => {
    const [outcome] = one(raw);
    expect(outcome?.type).toBe("message");
    return (outcome as { message: InboundMessage }).message;
  };

  it.each<[string, Record<string, unknown>, Partial<InboundMessage>]>([
    ["a forwarded text", wa.forwarded(wa.text("15550002222", "wamid.FWD", "/forget")), { text: "/forget" }],
    [
      "a frequently forwarded image keeps its caption and media",
      wa.forwarded(wa.image("15550002222", "wamid.FWD2", "5150", "look at this"), true),
      { text: "look at this", attachments: [{ kind: "image", ref: "5150", mimeType: "image/jpeg" }] },
    ],
    [
      "both flags, next to a quoted message's id",
      { ...wa.text("15550002222", "wamid.FWD3", "hi"), context: { from: "15550003333", id: "wamid.Q", forwarded: true, frequently_forwarded: true } },
      { text: "hi" },
    ],
    [
      "an unexpected flag value counts as forwarded (its text is never taken for a command)",
      { ...wa.text("15550002222", "wamid.FWD4", "/mode thinking"), context: { forwarded: "true" } },
      { text: "/mode thinking" },
    ],
  ])("%s is marked forwarded", (_name, raw, expected) => {
    expect(messageOf(raw)).toMatchObject({ ...expected, forwarded: true });
  });

  it.each<[string, Record<string, unknown>]>([
    ["no context", wa.text("15550002222", "wamid.OWN", "/forget")],
    ["a reply to a quoted message", { ...wa.text("15550002222", "wamid.RE", "/forget"), context: { from: "15550003333", id: "wamid.Q" } }],
    ["flags set to false", { ...wa.text("15550002222", "wamid.F", "/forget"), context: { forwarded: false, frequently_forwarded: false } }],
    ["a context that is not an object", { ...wa.text("15550002222", "wamid.ODD", "/forget"), context: "x" }],
  ])("%s is the sender's own text", (_name, raw) => {
    const message = messageOf(raw);
    expect(message.text).toBe("/forget");
    expect(message).not.toHaveProperty("forwarded");
  });
});

const ignoredTypes: Array<[string, Record<string, unknown>]> = [
  ["sticker", { type: "sticker", sticker: { id: "1", mime_type: "image/webp", animated: false } }],
  ["location", { type: "location", location: { latitude: 1, longitude: 2 } }],
  ["contacts", { type: "contacts", contacts: [{ name: { formatted_name: "A" } }] }],
  ["reaction", { type: "reaction", reaction: { message_id: "wamid.X", emoji: "👍" } }],
  ["unsupported", { type: "unsupported", errors: [{ code: 131051, title: "Message type unknown" }] }],
  ["text without its text object", { type: "text" }],
];

describe("normalizeWhatsAppPayload: ignored", () => {
  it.each(ignoredTypes)("a %s message is ignored with its id and a reason", (name, fields) => {
    const outcomes = one({ from: "15550002222", id: `wamid.${name}`, timestamp: "1750000000", ...fields });
    expect(outcomes).toEqual([{ type: "ignored", reason: expect.stringContaining("unsupported type"), platformMessageId: `wamid.${name}` }]);
  });

  it("ignores statuses without error, and still delivers the messages next to them", () => {
    const outcomes = normalize(
      wa.payload([
        wa.change(OURS, { statuses: [wa.status("wamid.OUT1", "15550002222", "sent"), wa.status("wamid.OUT1", "15550002222", "read")] }),
        wa.change(OURS, { messages: [wa.text("15550002222", "wamid.IN", "hi")] }),
      ]),
    );
    expect(outcomes.map((o) => (o.type === "message" ? o.message.platformMessageId : o.reason))).toEqual(["status update", "status update", "wamid.IN"]);
  });

  it("ignores messages to another phone number of the account", () => {
    const outcomes = normalize(wa.payload([wa.change("999", { messages: [wa.text("15550002222", "wamid.OTHER", "hi")] })]));
    expect(outcomes).toEqual([{ type: "ignored", reason: expect.stringContaining("another phone number id") }]);
  });

  it("ignores changes of other fields", () => {
    const outcomes = normalize(wa.payload([{ field: "account_update", value: { event: "VERIFIED_ACCOUNT" } }]));
    expect(outcomes).toEqual([{ type: "ignored", reason: '"account_update" change' }]);
  });
});

describe("normalizeWhatsAppPayload: batches and bad shapes", () => {
  it("handles every entry and every change: 2 entries x 2 messages = 4 messages in order", () => {
    const outcomes = normalize(
      wa.payload(
        [wa.change(OURS, { messages: [wa.text("111", "wamid.1", "a"), wa.text("222", "wamid.2", "b")], names: { "111": "Ann", "222": "Bo" } })],
        [wa.change(OURS, { messages: [wa.text("333", "wamid.3", "c")] }), wa.change(OURS, { messages: [wa.text("111", "wamid.4", "d")] })],
      ),
    );
    const messages = outcomes.flatMap((o) => (o.type === "message" ? [o.message] : []));
    expect(messages.map((m) => [m.platformMessageId, m.user, m.displayName, m.text])).toEqual([
      ["wamid.1", "whatsapp-cloud:111", "Ann", "a"],
      ["wamid.2", "whatsapp-cloud:222", "Bo", "b"],
      ["wamid.3", "whatsapp-cloud:333", "User 333", "c"],
      ["wamid.4", "whatsapp-cloud:111", "User 111", "d"],
    ]);
  });

  it.each<[string, unknown]>([
    ["null", null],
    ["a string", "whatsapp"],
    ["another object", { object: "page", entry: [] }],
    ["entry not an array", { object: "whatsapp_business_account", entry: {} }],
  ])("turns %s into one malformed outcome, never an exception", (_name, payload) => {
    expect(normalize(payload)).toEqual([{ type: "ignored", reason: "not a WhatsApp Business Account payload", malformed: true }]);
  });

  it("survives wrong types at every level, keeping the good messages", () => {
    const good = wa.text("15550002222", "wamid.GOOD", "still here");
    const outcomes: InboundOutcome[] = normalize({
      object: "whatsapp_business_account",
      entry: [
        null,
        { changes: "nope" },
        { changes: [null, { field: "messages", value: null }, { field: "messages", value: { metadata: {} } }] },
        {
          changes: [
            {
              field: "messages",
              value: {
                metadata: { phone_number_id: OURS },
                contacts: "garbage",
                messages: [null, { id: 5 }, { from: "has space", id: "wamid.BAD", type: "text", text: { body: "x" } }, good],
              },
            },
          ],
        },
      ],
    });
    expect(outcomes.filter((o) => o.type === "message").map((o) => (o as { message: InboundMessage }).message.text)).toEqual(["still here"]);
    expect(outcomes.filter((o) => o.type === "ignored" && o.malformed)).toHaveLength(8);
  });
});
