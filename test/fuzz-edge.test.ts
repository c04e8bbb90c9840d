import fc from "fast-check";
import type { Update } from "grammy/types";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { normalizeMessengerPayload } from "../channels/messenger/normalize.ts";
import { normalizeUpdate } from "../channels/telegram/normalize.ts";
import { updateShapeProblem } from "../channels/telegram/update-shape.ts";
import { normalizeWebMessage } from "../channels/web/normalize.ts";
import { normalizeWhatsAppPayload } from "../channels/whatsapp-cloud/normalize.ts";
import { withContext } from "../src/conversation/turn-context.ts";
import { isKey } from "../src/core/keys.ts";
import type { InboundMessage } from "../src/core/types.ts";
import { openDatabase, type Database } from "../src/db/client.ts";
import { createInbox } from "../src/inbox/inbox.ts";
import { createLogger } from "../src/observability/logger.ts";
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";

/**
 * Payloads nobody on this project wrote: the platforms' documented examples, mutated at random (a field removed, or
 * replaced by a number, null, an object, an array, or a string of any UTF-16 code units, NUL and lone surrogates
 * included). Whatever arrives, the edge never throws, and what it passes on has the contract's types; and whatever
 * strings a message carries, the inbox stores it (cleaned) instead of refusing the delivery.
 */

const NOW = new Date("2026-12-04T10:00:00Z");
const BOT = { id: 7_000_000_001, username: "parley_bot" };

/** Telegram's documented shapes (Bot API: Update, Message, PhotoSize, MessageEntity, CallbackQuery, TextQuote,
 * ExternalReplyInfo, Location, Venue). */
const TELEGRAM_EXAMPLES: unknown[] = [
  {
    update_id: 10000,
    message: {
      message_id: 1365,
      date: 1441645532,
      chat: { id: 1111111, type: "private", first_name: "Test", last_name: "Lastname", username: "Test" },
      from: { id: 1111111, is_bot: false, first_name: "Test", last_name: "Lastname", username: "Test", language_code: "en" },
      text: "/start",
      entities: [{ type: "bot_command", offset: 0, length: 6 }],
    },
  },
  {
    update_id: 10001,
    message: {
      message_id: 77,
      date: 1441645600,
      chat: { id: -1001234567890, type: "supergroup", title: "Team" },
      from: { id: 2222222, is_bot: false, first_name: "Ana" },
      caption: "@parley_bot what is this?",
      caption_entities: [{ type: "mention", offset: 0, length: 11 }],
      photo: [
        { file_id: "AgADBAADr6cxG", file_unique_id: "AQADr6cx", file_size: 1234, width: 90, height: 67 },
        { file_id: "AgADBAADr6cxH", file_unique_id: "AQADr6cy", file_size: 45678, width: 800, height: 600 },
      ],
      reply_to_message: { message_id: 76, date: 1441645590, chat: { id: -1001234567890, type: "supergroup" }, from: { id: BOT.id, is_bot: true, first_name: "Parley" } },
    },
  },
  {
    update_id: 10003,
    message: {
      message_id: 80,
      date: 1441645700,
      chat: { id: -1001234567890, type: "supergroup", title: "Team" },
      from: { id: 3333333, is_bot: false, first_name: "Bo" },
      text: "@parley_bot is this right?",
      entities: [{ type: "mention", offset: 0, length: 11 }, { type: "text_link", offset: 15, length: 4, url: "https://example.org/" }],
      reply_to_message: { message_id: 79, date: 1441645690, chat: { id: -1001234567890, type: "supergroup" }, from: { id: 2222222, is_bot: false, first_name: "Ana" }, text: "The train leaves at 9" },
      quote: { text: "leaves at 9", position: 10, is_manual: true },
    },
  },
  {
    update_id: 10004,
    message: {
      message_id: 81,
      date: 1441645800,
      chat: { id: 1111111, type: "private", first_name: "Test" },
      from: { id: 1111111, is_bot: false, first_name: "Test" },
      location: { latitude: 36.753768, longitude: 3.058756 },
      venue: { location: { latitude: 36.753768, longitude: 3.058756 }, title: "Jardin d'Essai", address: "Belouizdad" },
      external_reply: { origin: { type: "channel", date: 1441645000, chat: { id: -1009, type: "channel", title: "News" }, message_id: 4 } },
    },
  },
  {
    update_id: 10002,
    callback_query: {
      id: "4382bfdwdsb323b2d9",
      from: { id: 1111111, is_bot: false, first_name: "Test" },
      chat_instance: "-8912745839201",
      data: "mode:thinking",
      message: { message_id: 1366, date: 1441645532, chat: { id: 1111111, type: "private" }, from: { id: BOT.id, is_bot: true, first_name: "Parley" }, text: "Mode?" },
    },
  },
];

/** Meta's documented WhatsApp Cloud API text and image message webhooks. */
const WHATSAPP_EXAMPLES: unknown[] = [
  {
    object: "whatsapp_business_account",
    entry: [
      {
        id: "102290129340398",
        changes: [
          {
            field: "messages",
            value: {
              messaging_product: "whatsapp",
              metadata: { display_phone_number: "15550783881", phone_number_id: "106540352242922" },
              contacts: [{ profile: { name: "Sheena Nelson" }, wa_id: "16505551234" }],
              messages: [
                { from: "16505551234", id: "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", timestamp: "1749416383", type: "text", text: { body: "Does it come in another color?" } },
                { from: "16505551234", id: "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgB=", timestamp: "1749416390", type: "image", image: { caption: "This one", mime_type: "image/jpeg", sha256: "abc", id: "1003383421387256" } },
              ],
            },
          },
        ],
      },
    ],
  },
];

/** Meta's documented Messenger `messages` webhook (text and an image attachment). */
const MESSENGER_EXAMPLES: unknown[] = [
  {
    object: "page",
    entry: [
      {
        id: "PAGE-ID",
        time: 1458692752478,
        messaging: [
          { sender: { id: "1254459154682919" }, recipient: { id: "682498171943165" }, timestamp: 1458692752478, message: { mid: "mid.1457764197618:41d102a3e1ae206a38", text: "hello, world!" } },
          {
            sender: { id: "1254459154682919" },
            recipient: { id: "682498171943165" },
            timestamp: 1458692752479,
            message: { mid: "mid.1458696618141:b4ef9d19ec21086067", attachments: [{ type: "image", payload: { url: "https://scontent.xx.fbcdn.net/v/t1.15752-9/photo.jpg" } }] },
          },
        ],
      },
    ],
  },
];

const WEB_EXAMPLES: unknown[] = [{ text: "hello", id: "2f1c9a7e-4b7a-4c59-9b1e-3d2d2b8f6a10" }];

/** Any string of UTF-16 code units: NUL, other controls and lone surrogates included. */
const anyString = fc.string({ unit: "binary", maxLength: 40 });
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  anyString,
  fc.integer(),
  fc.maxSafeInteger(),
  fc.double(),
  fc.constantFrom(8_640_000_000_000.001, 1e21, -1, 0, Number.MAX_VALUE, "99999999999", "1e3"),
  fc.boolean(),
  fc.constant(null),
  fc.constant([]),
  fc.constant({}),
  fc.array(anyString, { maxLength: 3 }),
  fc.dictionary(anyString, anyString, { maxKeys: 3 }),
);

type Path = Array<string | number>;

/** Every path to a value inside `value` (objects and arrays), the root excluded. */
function pathsOf(value: unknown, prefix: Path = []): Path[] {
  if (value === null || typeof value !== "object") return [];
  const entries: Array<[string | number, unknown]> = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  return entries.flatMap(([key, child]) => [[...prefix, key], ...pathsOf(child, [...prefix, key])]);
}

/** `example` with the value at `path` replaced (or removed, for `remove`). */
function mutate(example: unknown, path: Path, replacement: unknown, remove: boolean): unknown {
  const copy = structuredClone(example) as Record<string | number, unknown>;
  let parent: Record<string | number, unknown> = copy;
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
  const last = path[path.length - 1]!;
  if (remove) delete parent[last];
  else parent[last] = replacement;
  return copy;
}

/** A documented example with one to three fields changed. */
function mutated(examples: unknown[]): fc.Arbitrary<unknown> {
  return fc.constantFrom(...examples).chain((example) => {
    const paths = pathsOf(example);
    const change = fc.tuple(fc.constantFrom(...paths), anyValue, fc.boolean());
    return fc.array(change, { minLength: 1, maxLength: 3 }).map((changes) =>
      changes.reduce((payload, [path, value, remove]) => {
        try {
          return mutate(payload, path, value, remove);
        } catch {
          return payload; // an earlier change removed the path's parent
        }
      }, example),
    );
  });
}

/** What the contract promises about every message that leaves a channel's edge. */
function expectContract(message: InboundMessage): void {
  expect(typeof message.platformMessageId).toBe("string");
  expect(message.platformMessageId.length).toBeGreaterThan(0);
  expect(isKey(message.chat)).toBe(true);
  expect(isKey(message.user)).toBe(true);
  expect(typeof message.text).toBe("string");
  expect(typeof message.isGroup).toBe("boolean");
  expect(typeof message.mentionsBot).toBe("boolean");
  expect(typeof message.replyToBot).toBe("boolean");
  if (message.displayName !== undefined) expect(typeof message.displayName).toBe("string");
  expect(message.receivedAt).toBeInstanceOf(Date);
  expect(message.receivedAt.getTime()).toBeGreaterThan(0);
  expect(message.receivedAt.getTime()).toBeLessThanOrEqual(Math.max(NOW.getTime(), Date.now()) + 86_400_000);
  if (message.replyTo !== undefined) {
    expect(["bot", "sender", "other", "unknown"]).toContain(message.replyTo.author);
    for (const field of ["id", "authorName", "text", "kind", "quote"] as const) {
      if (message.replyTo[field] !== undefined) expect(typeof message.replyTo[field]).toBe("string");
    }
  }
  if (message.place !== undefined) {
    expect(Number.isFinite(message.place.latitude) && Number.isFinite(message.place.longitude)).toBe(true);
  }
  if (message.unsupported !== undefined) expect(typeof message.unsupported).toBe("string");
  // What the conversation service makes of it never throws.
  expect(typeof withContext(message.text, message)).toBe("string");
  expect(Array.isArray(message.attachments)).toBe(true);
  for (const attachment of message.attachments) {
    expect(["image", "audio", "file"]).toContain(attachment.kind);
    expect(typeof attachment.ref).toBe("string");
    if (attachment.fileName !== undefined) expect(typeof attachment.fileName).toBe("string");
    if (attachment.mimeType !== undefined) expect(typeof attachment.mimeType).toBe("string");
  }
}

const RUNS = { numRuns: 2_000, seed: 20261204 };

describe("the edge, fed mutated documented payloads", () => {
  it("Telegram: an update either fails the shape check or normalizes to a message of the contract's types", () => {
    fc.assert(
      fc.property(mutated(TELEGRAM_EXAMPLES), (update) => {
        if (updateShapeProblem(update) !== null) return;
        const message = normalizeUpdate(update as Update, BOT);
        if (message) expectContract(message);
      }),
      RUNS,
    );
  });

  it("WhatsApp Cloud: every payload gives outcomes, and each message has the contract's types", () => {
    fc.assert(
      fc.property(mutated(WHATSAPP_EXAMPLES), (payload) => {
        for (const outcome of normalizeWhatsAppPayload(payload, { phoneNumberId: "106540352242922", now: NOW })) {
          if (outcome.type === "message") expectContract(outcome.message);
        }
      }),
      RUNS,
    );
  });

  it("Messenger: every payload gives outcomes, and each message has the contract's types", () => {
    fc.assert(
      fc.property(mutated(MESSENGER_EXAMPLES), (payload) => {
        for (const outcome of normalizeMessengerPayload(payload, { now: NOW })) {
          if (outcome.type === "message") expectContract(outcome.message);
        }
      }),
      RUNS,
    );
  });

  it("web chat: every body is a message of the contract's types or a sentence saying what is wrong", () => {
    fc.assert(
      fc.property(fc.oneof(mutated(WEB_EXAMPLES), anyValue), (body) => {
        const result = normalizeWebMessage(body, "web:operator", NOW);
        if (result.ok) expectContract(result.message);
        else expect(result.error).toMatch(/\w+/);
      }),
      RUNS,
    );
  });
});

describe.each(DATABASE_KINDS)("the inbox, fed any strings (%s)", (kind) => {
  let testDb: TestDatabase;
  let database: Database;

  beforeAll(async () => {
    testDb = await createTestDatabase(kind);
    database = await openDatabase(testDb.target, createLogger({ level: "silent", secrets: [] }));
    await database.migrate();
  });

  afterAll(async () => {
    await database?.close();
    await testDb?.drop();
  });

  it("stores every message, with no NUL, other control or lone surrogate left in what it stored", async () => {
    const inbox = createInbox({ db: database.db, leaseMs: 30_000 });
    let n = 0;
    await fc.assert(
      fc.asyncProperty(anyString, anyString, anyString, async (text, name, fileName) => {
        n += 1;
        const message: InboundMessage = {
          channel: "telegram",
          platformMessageId: `fuzz:${n}`,
          chat: "telegram:42",
          user: "telegram:42",
          displayName: name,
          isGroup: false,
          mentionsBot: false,
          replyToBot: false,
          text,
          attachments: [{ kind: "file", ref: "file-1", fileName }],
          receivedAt: NOW,
        };
        const accepted = await inbox.accept(message);
        expect(accepted.duplicate).toBe(false);
        expect(accepted.id).not.toBeNull();
        const claimed = await inbox.claim(["telegram"]);
        expect(claimed?.id).toBe(accepted.id);
        const stored = claimed!.message;
        for (const value of [stored.text, stored.displayName ?? "", stored.attachments[0]?.fileName ?? ""]) {
          expect(value).not.toMatch(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/);
          expect(value).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/);
        }
        await inbox.complete(claimed!.id);
      }),
      { numRuns: 150, seed: 20261204 },
    );
  }, 120_000);
});
