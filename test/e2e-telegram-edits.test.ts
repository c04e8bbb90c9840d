import type { Message, Update } from "grammy/types";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { type FakeTelegram } from "./fakes/telegram-api.ts";
import { DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { startTestParley, type TestParley } from "./support/parley.ts";
import { closeScene, openScene } from "./support/scene.ts";

/**
 * An edited message arrives as `edited_message` (Bot API Update), with the original's message_id and an edit_date.
 * One not answered yet is answered as edited; one already answered is corrected in the history, not answered twice.
 */
const MODEL = "test-model";
const waitFor = <T>(check: () => T | Promise<T>) => vi.waitFor(check, { timeout: 8_000, interval: 25 });

/** The update Telegram sends when the person edits `original` to read `text`. */
function editOf(original: Update, text: string): Update {
  const message = original.message as Message.TextMessage;
  return { update_id: 0, edited_message: { ...message, text, edit_date: message.date + 30 } } as Update;
}

/** The user messages of each request the model got. */
function userTexts(model: FakeOpenAIServer): string[][] {
  return model.requestsFor(MODEL).map((r) =>
    (r.body as { messages: Array<{ role: string; content: unknown }> }).messages.filter((m) => m.role === "user").map((m) => String(m.content)),
  );
}

describe.each(DATABASE_KINDS)("Telegram edits (%s)", (kind) => {
  let db: TestDatabase;
  let telegram: FakeTelegram;
  let model: FakeOpenAIServer;
  let parley: TestParley | undefined;

  const sentTexts = (chatId: number) =>
    telegram.sent
      .filter((c) => c.method === "sendMessage" && c.params.chat_id === chatId && c.errorCode === undefined)
      .map((c) => String(c.params.text));

  beforeEach(async () => {
    ({ db, telegram, model } = await openScene(kind));
    parley = await startTestParley(db, {
      TELEGRAM_BOT_TOKEN: telegram.token,
      TELEGRAM_API_ROOT: telegram.url,
      MODELS_INSTANT: `openai-compatible:${MODEL}`,
      OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1`,
      OPENAI_COMPATIBLE_API_KEY: "sk-test-compatible-key-0123456789",
      ACCESS_POLICY: "open",
    });
  });
  afterEach(async () => {
    await parley?.stop();
    parley = undefined;
    await closeScene({ db, telegram, model });
  });

  it("an answered message that is edited is corrected in the history and not answered again", async () => {
    model.reply(MODEL, { text: "Noted." });
    const first = telegram.updates.privateText("my flight is on Tuesday", { userId: 71 });
    telegram.pushUpdate(first);
    await waitFor(() => expect(sentTexts(71)).toEqual(["Noted."]));
    telegram.pushUpdate(editOf(first, "my flight is on Wednesday"));
    telegram.pushUpdate(telegram.updates.privateText("which day is my flight?", { userId: 71 }));
    await waitFor(() => expect(sentTexts(71)).toEqual(["Noted.", "Noted."]));
    expect(userTexts(model)).toEqual([["my flight is on Tuesday"], ["my flight is on Wednesday", "which day is my flight?"]]);
  });

  it("a message edited while it waits its turn is answered as edited", async () => {
    model.replyOnce(MODEL, { text: "First answer.", delayMs: 1_500 }, { text: "Second answer." });
    telegram.pushUpdate(telegram.updates.privateText("first question", { userId: 72 }));
    await waitFor(() => expect(model.requestsFor(MODEL)).toHaveLength(1));
    const second = telegram.updates.privateText("what is 2+3?", { userId: 72 });
    telegram.pushUpdate(second);
    telegram.pushUpdate(editOf(second, "what is 2+2?"));
    await waitFor(() => expect(sentTexts(72)).toEqual(["First answer.", "Second answer."]));
    expect(userTexts(model).at(-1)).toEqual(["first question", "what is 2+2?"]);
  });
});
