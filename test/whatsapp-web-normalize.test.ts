import { describe, expect, it } from "vitest";
import type { WhatsAppMessage } from "../channels/whatsapp/client-port.ts";
import { normalizeWhatsAppMessage, stripMentions } from "../channels/whatsapp/normalize.ts";
import type { InboundMessage } from "../src/core/types.ts";
import { BOT_LID, BOT_WID, waMessage } from "./fakes/whatsapp-web-client.ts";

const bot = { ids: [BOT_WID, BOT_LID] };
const now = () => new Date("2030-01-01T00:00:00Z");
const normalize = (m: WhatsAppMessage) => normalizeWhatsAppMessage(m, { bot, now });

const PERSON = "4915112345678@c.us";
const GROUP = "120363025246125888@g.us";
const MEMBER = "4917687654321@c.us";

describe("normalizeWhatsAppMessage", () => {
  const accepted: Array<{ name: string; message: WhatsAppMessage; expected: Partial<InboundMessage> }> = [
    {
      name: "a text in a direct chat",
      message: waMessage({ chat: PERSON, body: "hello there", notifyName: "Anna", key: "3EB0AA", timestamp: 1_760_000_123 }),
      expected: {
        channel: "whatsapp",
        platformMessageId: `false_${PERSON}_3EB0AA`,
        chat: `whatsapp:${PERSON}`,
        user: `whatsapp:${PERSON}`,
        displayName: "Anna",
        isGroup: false,
        mentionsBot: false,
        replyToBot: false,
        text: "hello there",
        attachments: [],
        receivedAt: new Date(1_760_000_123_000),
      },
    },
    {
      name: "an image with a caption",
      message: waMessage({
        chat: PERSON, type: "image", body: "what is this?", hasMedia: true, mimetype: "image/jpeg", size: 48_213, key: "3EB0IMG",
      }),
      expected: {
        text: "what is this?",
        attachments: [{ kind: "image", ref: `false_${PERSON}_3EB0IMG`, mimeType: "image/jpeg", sizeBytes: 48_213 }],
      },
    },
    {
      name: "a voice note without text",
      message: waMessage({ chat: PERSON, type: "ptt", hasMedia: true, mimetype: "audio/ogg; codecs=opus", size: 9_000, key: "3EB0PTT" }),
      expected: {
        text: "",
        attachments: [{ kind: "audio", ref: `false_${PERSON}_3EB0PTT`, mimeType: "audio/ogg; codecs=opus", sizeBytes: 9_000 }],
      },
    },
    {
      name: "an audio file",
      message: waMessage({ chat: PERSON, type: "audio", hasMedia: true, key: "3EB0AUD" }),
      expected: { attachments: [{ kind: "audio", ref: `false_${PERSON}_3EB0AUD`, mimeType: "audio/ogg" }] },
    },
    {
      name: "a PDF document keeps its file name",
      message: waMessage({ chat: PERSON, type: "document", hasMedia: true, mimetype: "application/pdf", filename: "cv.pdf", key: "3EB0DOC" }),
      expected: {
        attachments: [{ kind: "file", ref: `false_${PERSON}_3EB0DOC`, mimeType: "application/pdf", fileName: "cv.pdf" }],
      },
    },
    {
      name: "a group message that mentions the bot: the sender is the author, the mention is removed",
      message: waMessage({
        chat: GROUP, author: MEMBER, body: "@15550001111 what time is it?", mentionedIds: [BOT_WID], notifyName: "Ben", key: "3EB0GRP",
      }),
      expected: {
        platformMessageId: `false_${GROUP}_3EB0GRP_${MEMBER}`,
        chat: `whatsapp:${GROUP}`,
        user: `whatsapp:${MEMBER}`,
        displayName: "Ben",
        isGroup: true,
        mentionsBot: true,
        text: "what time is it?",
      },
    },
    {
      name: "a group mention by the bot's LID",
      message: waMessage({ chat: GROUP, author: "55512345@lid", body: "hey @987654321, hi", mentionedIds: [BOT_LID] }),
      expected: { user: "whatsapp:55512345@lid", mentionsBot: true, text: "hey hi" },
    },
    {
      name: "a group message that mentions someone else",
      message: waMessage({ chat: GROUP, author: MEMBER, body: "@4915112345678 lunch?", mentionedIds: [PERSON] }),
      expected: { isGroup: true, mentionsBot: false, replyToBot: false, text: "@4915112345678 lunch?" },
    },
    {
      name: "a group message without a mention",
      message: waMessage({ chat: GROUP, author: MEMBER, body: "good morning all" }),
      expected: { isGroup: true, mentionsBot: false, replyToBot: false, text: "good morning all" },
    },
    {
      name: "a reply to the bot",
      message: waMessage({ chat: GROUP, author: MEMBER, body: "and tomorrow?", quoted: { fromMe: true } }),
      expected: { isGroup: true, mentionsBot: false, replyToBot: true },
    },
    {
      name: "a reply to someone else",
      message: waMessage({ chat: GROUP, author: MEMBER, body: "agreed", quoted: { fromMe: false } }),
      expected: { replyToBot: false },
    },
  ];

  it.each(accepted)("accepts $name", async ({ message, expected }) => {
    const result = await normalize(message);
    expect(result).not.toBeNull();
    expect(result).toMatchObject(expected);
  });

  const ignored: Array<{ name: string; message: WhatsAppMessage }> = [
    { name: "the bot's own message", message: waMessage({ chat: PERSON, body: "I said this", fromMe: true }) },
    { name: "a location without usable coordinates", message: waMessage({ chat: PERSON, type: "location", body: "/9j/4AAQSkZJRg", location: { latitude: "x", longitude: 3 } }) },
    { name: "a reaction", message: waMessage({ chat: PERSON, type: "reaction", body: "👍" }) },
    { name: "a revoked message", message: waMessage({ chat: PERSON, type: "revoked" }) },
    { name: "a status broadcast", message: waMessage({ chat: "status@broadcast", author: MEMBER, body: "my holiday" }) },
    { name: "a channel post", message: waMessage({ chat: "120363111111111111@newsletter", body: "news" }) },
    { name: "a group message without an author", message: waMessage({ chat: GROUP, body: "who sent this?" }) },
    { name: "an empty text", message: waMessage({ chat: PERSON, body: "   " }) },
    { name: "an image whose media is gone and has no caption", message: waMessage({ chat: PERSON, type: "image", hasMedia: false }) },
  ];

  it.each(ignored)("ignores $name", async ({ message }) => {
    expect(await normalize(message)).toBeNull();
  });

  it.each([
    ["a sticker", waMessage({ chat: PERSON, type: "sticker", hasMedia: true }), { unsupported: "stickers", text: "", attachments: [] }],
    ["a contact card", waMessage({ chat: PERSON, type: "vcard", body: "BEGIN:VCARD\nEND:VCARD" }), { unsupported: "contact cards", text: "" }],
    ["a poll", waMessage({ chat: PERSON, type: "poll_creation", body: "Lunch?" }), { unsupported: "polls", text: "" }],
    [
      "a location, its body (a thumbnail) not read",
      waMessage({ chat: PERSON, type: "location", body: "/9j/4AAQSkZJRg", location: { latitude: 48.8584, longitude: 2.2945 } }),
      { text: "", place: { latitude: 48.8584, longitude: 2.2945 } },
    ],
    [
      "a quote of the sender's own voice note",
      waMessage({ chat: PERSON, body: "what did I say?", quoted: { fromMe: false, from: PERSON, type: "ptt", body: "" } }),
      { text: "what did I say?", replyToBot: false, replyTo: { author: "sender", kind: "a voice note" } },
    ],
    [
      "a quote of the bot's answer",
      waMessage({ chat: PERSON, body: "why?", quoted: { fromMe: true, from: BOT_WID, type: "chat", body: "Because it rains." } }),
      { replyToBot: true, replyTo: { author: "bot", text: "Because it rains." } },
    ],
  ] as const)("reads %s", async (_name, message, expected) => {
    expect(await normalize(message)).toMatchObject(expected);
  });

  it("falls back to the quoted sender's id when the quoted message cannot be looked up", async () => {
    const message = waMessage({ chat: GROUP, author: MEMBER, body: "right?", quotedParticipant: BOT_WID });
    message.getQuotedMessage = async () => {
      throw new Error("Protocol error (Runtime.callFunctionOn): Execution context was destroyed.");
    };
    expect(await normalize(message)).toMatchObject({ replyToBot: true });
    const viaLookup = await normalizeWhatsAppMessage(waMessage({ chat: PERSON, body: "x", quoted: { fromMe: false }, quotedParticipant: BOT_WID }), {
      bot,
      now,
      quotedMessage: async () => ({ fromMe: false }),
    });
    expect(viaLookup).toMatchObject({ replyToBot: false });
  });

  it("uses the clock when the message has no timestamp, and never the push name as the user", async () => {
    const message = waMessage({ chat: PERSON, body: "hi", notifyName: "Someone Else", timestamp: 0 });
    const result = await normalize(message);
    expect(result?.receivedAt).toEqual(now());
    expect(result?.user).toBe(`whatsapp:${PERSON}`);
  });

  it("marks a forwarded message (the library's isForwarded), a forwarded image too, and only those", async () => {
    const forwarded = await normalize(waMessage({ chat: PERSON, body: "/block whatsapp:123@c.us", isForwarded: true }));
    expect(forwarded).toMatchObject({ forwarded: true, text: "/block whatsapp:123@c.us" });
    const image = await normalize(waMessage({ chat: GROUP, author: MEMBER, type: "image", body: "look", hasMedia: true, isForwarded: true }));
    expect(image).toMatchObject({ forwarded: true, attachments: [{ kind: "image" }] });
    const own = await normalize(waMessage({ chat: PERSON, body: "my own words" }));
    expect(own).not.toBeNull();
    expect(own).not.toHaveProperty("forwarded");
    // Older messages may lack the field: not forwarded.
    const older = waMessage({ chat: PERSON, body: "from before" });
    delete older.isForwarded;
    expect(await normalize(older)).not.toHaveProperty("forwarded");
  });

  it("strips only the bot's mentions", () => {
    expect(stripMentions("@15550001111 hi @4912345", bot)).toBe("hi @4912345");
    expect(stripMentions("ask @15550001111: now", bot)).toBe("ask now");
    expect(stripMentions("@155500011112 is not the bot", bot)).toBe("@155500011112 is not the bot");
  });
});
