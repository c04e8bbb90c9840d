import type { Update, UserFromGetMe } from "grammy/types";
import { describe, expect, it } from "vitest";
import { normalizeUpdate } from "../channels/telegram/normalize.ts";
import { readText } from "../channels/telegram/message-text.ts";
import { parseTelegramChat, telegramChatKey } from "../channels/telegram/chat-ref.ts";
import type { InboundMessage } from "../src/core/types.ts";
import { createUpdateBuilder } from "./fakes/telegram-api.ts";

const bot = { id: 777, is_bot: true, first_name: "Parley", username: "ParleyBot" } as UserFromGetMe;
const identity = { id: bot.id, username: bot.username };
const u = createUpdateBuilder(bot);
const photoFile = { file_id: "PHOTO", file_unique_id: "P1", file_size: 54_321 };

type Row = [name: string, update: Update, expected: Partial<InboundMessage> | null];

const rows: Row[] = [
  [
    "private text",
    u.privateText("hello there", { userId: 42, firstName: "Ada", lastName: "Lovelace", username: "ada" }),
    {
      channel: "telegram", chat: "telegram:42", user: "telegram:42", displayName: "Ada Lovelace", isGroup: false,
      mentionsBot: false, replyToBot: false, text: "hello there", attachments: [],
    },
  ],
  [
    "group message mentioning the bot (case-insensitive), mention stripped",
    u.raw(
      { chat: { id: -100500, type: "supergroup", title: "G" }, text: "hey @parleybot what is 2+2?", entities: [{ type: "mention", offset: 4, length: 10 }] },
      { userId: 9 },
    ),
    { chat: "telegram:-100500", user: "telegram:9", isGroup: true, mentionsBot: true, replyToBot: false, text: "hey what is 2+2?" },
  ],
  [
    "group mention at the start",
    u.groupMention("summarise this", { chatId: -1001 }),
    { chat: "telegram:-1001", isGroup: true, mentionsBot: true, text: "summarise this" },
  ],
  [
    "group message without mention is delivered, not addressed",
    u.groupText("just chatting", { chatId: -1001 }),
    { isGroup: true, mentionsBot: false, replyToBot: false, text: "just chatting" },
  ],
  [
    "mention of another bot is not a mention",
    u.raw({ chat: { id: -5, type: "group", title: "G" }, text: "@OtherBot hi", entities: [{ type: "mention", offset: 0, length: 9 }] }),
    { isGroup: true, mentionsBot: false, text: "@OtherBot hi" },
  ],
  [
    "text_mention of the bot's id",
    u.raw({ chat: { id: -5, type: "group", title: "G" }, text: "Parley help", entities: [{ type: "text_mention", offset: 0, length: 6, user: bot }] }),
    { mentionsBot: true, text: "help" },
  ],
  [
    "command addressed /cmd@botname keeps the command",
    u.raw({ chat: { id: -5, type: "group", title: "G" }, text: "/mode@ParleyBot thinking", entities: [{ type: "bot_command", offset: 0, length: 15 }] }),
    { mentionsBot: true, text: "/mode thinking" },
  ],
  [
    "reply to the bot",
    u.replyToBot("and why?", { chatId: -1002 }),
    { chat: "telegram:-1002", isGroup: true, replyToBot: true, mentionsBot: false, text: "and why?" },
  ],
  [
    "photo with caption: the largest size, caption as text",
    u.photo(photoFile, "what is this?", { userId: 42 }),
    { text: "what is this?", attachments: [{ kind: "image", ref: "PHOTO", mimeType: "image/jpeg", sizeBytes: 54_321 }] },
  ],
  [
    "image document",
    u.document({ file_id: "DOC", file_unique_id: "D", file_size: 10, mime_type: "image/png", file_name: "a.png" }),
    { text: "", attachments: [{ kind: "image", ref: "DOC", mimeType: "image/png", sizeBytes: 10, fileName: "a.png" }] },
  ],
  [
    "other document",
    u.document({ file_id: "PDF", file_unique_id: "D", mime_type: "application/pdf", file_name: "a.pdf" }, "read this"),
    { text: "read this", attachments: [{ kind: "file", ref: "PDF", mimeType: "application/pdf", fileName: "a.pdf" }] },
  ],
  [
    "voice",
    u.voice({ file_id: "VOICE", file_unique_id: "V", file_size: 2048 }),
    { text: "", attachments: [{ kind: "audio", ref: "VOICE", mimeType: "audio/ogg", sizeBytes: 2048 }] },
  ],
  [
    "forum topic: the thread is part of the chat key",
    u.raw({ chat: { id: -1009, type: "supergroup", title: "F", is_forum: true }, text: "in a topic", message_thread_id: 55, is_topic_message: true,
      reply_to_message: { message_id: 55, date: 1, chat: { id: -1009, type: "supergroup", title: "F" }, from: bot, forum_topic_created: { name: "t", icon_color: 1 } } } as never),
    { chat: "telegram:-1009:55", isGroup: true, replyToBot: false, text: "in a topic" },
  ],
  ["an edited message, flagged", { update_id: 1, edited_message: { ...u.privateText("x").message!, edit_date: 1_700_000_100 } } as Update, { text: "x", edited: true }],
  [
    "a live location moving is not answered",
    { update_id: 1, edited_message: { ...u.raw({ location: { latitude: 1, longitude: 2, live_period: 60 } } as never).message!, edit_date: 1_700_000_100 } } as Update,
    null,
  ],
  ["channel post ignored", { update_id: 1, channel_post: { ...u.privateText("x").message!, chat: { id: -100, type: "channel", title: "C" } } } as Update, null],
  ["callback query ignored", { update_id: 1, callback_query: { id: "1", from: { id: 1, is_bot: false, first_name: "A" }, chat_instance: "c", data: "mode" } } as Update, null],
  ["my_chat_member ignored", { update_id: 1, my_chat_member: {} } as unknown as Update, null],
  ["bot sender ignored", u.privateText("beep", { isBot: true }), null],
  ["the bot itself ignored", u.raw({ text: "my own" }, { userId: bot.id, isBot: true }), null],
  ["automatic forward from a linked channel ignored", u.raw({ chat: { id: -5, type: "supergroup", title: "G" }, text: "post", is_automatic_forward: true } as never, { userId: 777000, firstName: "Telegram" }), null],
  ["service message ignored", u.raw({ chat: { id: -5, type: "group", title: "G" }, new_chat_members: [bot] } as never), null],
  ["update without message ignored", { update_id: 1 } as Update, null],
  [
    "a reply to a message in another chat (external_reply), with a quote",
    u.raw({
      text: "is this true?",
      external_reply: { origin: { type: "channel", date: 1_700_000_000, chat: { id: -100999, type: "channel", title: "Daily News" }, message_id: 5 } },
      quote: { text: "prices fell 40%", position: 0 },
    } as never),
    { text: "is this true?", replyTo: { author: "other", authorName: "Daily News", kind: "a message in another chat", quote: "prices fell 40%" } },
  ],
  [
    "a reply to the sender's own photo",
    u.raw({
      text: "what is in it?",
      reply_to_message: { message_id: 3, date: 1_700_000_000, chat: { id: 4242, type: "private", first_name: "Ada" }, from: { id: 4242, is_bot: false, first_name: "Ada" }, photo: [{ file_id: "F", file_unique_id: "U", width: 10, height: 10 }], caption: "my garden" },
    } as never),
    { text: "what is in it?", replyTo: { id: "4242:3", author: "sender", text: "my garden", kind: "an image" } },
  ],
  [
    "a live location",
    u.raw({ location: { latitude: 48.85, longitude: 2.35, live_period: 900, horizontal_accuracy: 20 } } as never),
    { text: "", place: { latitude: 48.85, longitude: 2.35, live: true }, attachments: [] },
  ],
  [
    "an anonymous group admin speaks as the group",
    u.raw({
      chat: { id: -100500, type: "supergroup", title: "G" },
      sender_chat: { id: -100500, type: "supergroup", title: "G" },
      text: "@ParleyBot pin the rules",
      entities: [{ type: "mention", offset: 0, length: 10 }],
    } as never, { userId: 1087968824, isBot: true, firstName: "Group", username: "GroupAnonymousBot" }),
    { user: "telegram:-100500", displayName: "G", text: "pin the rules", mentionsBot: true, isGroup: true },
  ],
  [
    "someone posting as their channel speaks as the channel",
    u.raw({
      chat: { id: -100500, type: "supergroup", title: "G" },
      sender_chat: { id: -100777, type: "channel", title: "Ada's notes" },
      text: "@ParleyBot hello",
      entities: [{ type: "mention", offset: 0, length: 10 }],
    } as never, { userId: 136817688, isBot: true, firstName: "Channel", username: "Channel_Bot" }),
    { user: "telegram:-100777", displayName: "Ada's notes", text: "hello" },
  ],
  ["another bot is not answered", u.raw({ text: "hi" } as never, { userId: 99, isBot: true }), null],
  [
    "a customer writing to a business account the bot is connected to",
    { update_id: 1, business_message: { ...u.raw({ text: "are you open on Sunday?" } as never, { userId: 4242 }).message!, business_connection_id: "Bx5kZ9aQ" } } as Update,
    { chat: "telegram:business:Bx5kZ9aQ:4242", user: "telegram:4242", text: "are you open on Sunday?", isGroup: false },
  ],
  [
    "the business account's owner writing in that chat is not answered",
    { update_id: 1, business_message: { ...u.raw({ text: "we are" } as never, { userId: 99, chatId: 4242 }).message!, business_connection_id: "Bx5kZ9aQ" } } as Update,
    null,
  ],
  ["a poll is named as unusable", u.raw({ poll: { id: "1", question: "Lunch?", options: [], total_voter_count: 0, is_closed: false, is_anonymous: true, type: "regular", allows_multiple_answers: false } } as never), { text: "", unsupported: "polls" }],
  [
    "the first message of a forum topic is no reply",
    u.raw({ chat: { id: -100500, type: "supergroup", title: "G", is_forum: true }, is_topic_message: true, message_thread_id: 9, text: "@ParleyBot hi", entities: [{ type: "mention", offset: 0, length: 10 }], reply_to_message: { message_id: 9, date: 1, chat: { id: -100500, type: "supergroup", title: "G" }, forum_topic_created: { name: "T", icon_color: 1 } } } as never),
    { text: "hi", replyToBot: false },
  ],
];

describe("normalizeUpdate", () => {
  it.each(rows)("%s", (_name, update, expected) => {
    const message = normalizeUpdate(update, identity);
    if (expected === null) {
      expect(message).toBeNull();
      return;
    }
    expect(message).toMatchObject(expected);
    const m = (update.message ?? update.edited_message ?? update.business_message)!;
    const business = update.business_message ? `business:${update.business_message.business_connection_id}:` : "";
    expect(message!.platformMessageId).toBe(`${business}${m.chat.id}:${m.message_id}`);
    expect(message!.receivedAt).toEqual(new Date(m.date * 1000));
  });

  it("uses the username only as a display name, never as identity", () => {
    const update = u.raw({ from: { id: 5, is_bot: false, first_name: "", username: "nameless" } } as never);
    (update.message as { text?: string }).text = "hi";
    const message = normalizeUpdate(update, identity)!;
    expect(message.user).toBe("telegram:5");
    expect(message.displayName).toBe("nameless");
  });
});

describe("readText", () => {
  it.each([
    ["@ParleyBot, hi", [{ type: "mention", offset: 0, length: 10 }], "hi", true],
    ["ask @ParleyBot now", [{ type: "mention", offset: 4, length: 10 }], "ask now", true],
    ["no entities @ParleyBot", [], "no entities @ParleyBot", false],
    ["/start", [{ type: "bot_command", offset: 0, length: 6 }], "/start", false],
    ["hey @ParleyBot, translate", [{ type: "mention", offset: 4, length: 10 }], "hey, translate", true],
    ["hey @ParleyBot! you there?", [{ type: "mention", offset: 4, length: 10 }], "hey! you there?", true],
    ["thanks @ParleyBot", [{ type: "mention", offset: 7, length: 10 }], "thanks", true],
    ["@ParleyBot: @ParleyBot, hi", [{ type: "mention", offset: 0, length: 10 }, { type: "mention", offset: 12, length: 10 }], "hi", true],
    ["/mode@ParleyBot thinking", [{ type: "bot_command", offset: 0, length: 15 }], "/mode thinking", true],
    [
      "summarize this article",
      [{ type: "text_link", offset: 15, length: 7, url: "https://example.org/a (1)" }],
      "summarize this [article](https://example.org/a%20%281%29)",
      false,
    ],
    [
      "@ParleyBot summarize this",
      [{ type: "mention", offset: 0, length: 10 }, { type: "text_link", offset: 21, length: 4, url: "https://example.org/x" }],
      "summarize [this](https://example.org/x)",
      true,
    ],
    ["bold and italic", [{ type: "bold", offset: 0, length: 15 }, { type: "italic", offset: 9, length: 6 }], "**bold and _italic_**", false],
    ["run ls -la now", [{ type: "code", offset: 4, length: 6 }], "run `ls -la` now", false],
    ["print(1)", [{ type: "pre", offset: 0, length: 8, language: "python" }], "```python\nprint(1)\n```", false],
    ["ask Ada", [{ type: "text_mention", offset: 4, length: 3, user: { id: 5, is_bot: false, first_name: "Ada" } }], "ask Ada", false],
    ["😀 @ParleyBot hi", [{ type: "mention", offset: 3, length: 10 }], "😀 hi", true],
    ["out of range", [{ type: "bold", offset: 5, length: 50 }], "out of range", false],
  ] as const)("%j", (text, entities, stripped, mentions) => {
    expect(readText(text, entities as never, identity)).toEqual({ text: stripped, mentionsBot: mentions });
  });
});

describe("telegram chat keys", () => {
  it.each([
    [{ chatId: 42 }, "telegram:42"],
    [{ chatId: -1001234 }, "telegram:-1001234"],
    [{ chatId: -1001234, threadId: 7 }, "telegram:-1001234:7"],
    [{ chatId: 4242, businessConnectionId: "Bx5kZ9aQ-_1" }, "telegram:business:Bx5kZ9aQ-_1:4242"],
  ] as const)("round-trips %j", (ref, key) => {
    expect(telegramChatKey(ref)).toBe(key);
    expect(parseTelegramChat(key)).toEqual(ref);
  });

  it.each(["whatsapp:42", "telegram:abc", "telegram:1:2:3"] as const)("refuses %s", (key) => {
    expect(() => parseTelegramChat(key)).toThrow(/not a Telegram chat key/);
  });
});
