import type { Update } from "grammy/types";
import { eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { users } from "../src/db/schema.ts";
import { startFakeTelegram, type FakeTelegram } from "./fakes/telegram-api.ts";
import { createTestDatabase, type TestDatabase } from "./support/databases.ts";
import { startTestParley, type TestParley } from "./support/parley.ts";

const waitFor = <T>(check: () => T | Promise<T>) => vi.waitFor(check, { timeout: 8_000, interval: 25 });

describe("the /mode buttons on Telegram", () => {
  let db: TestDatabase;
  let telegram: FakeTelegram;
  let parley: TestParley;

  beforeEach(async () => {
    db = await createTestDatabase("pglite");
    telegram = await startFakeTelegram();
    parley = await startTestParley(db, { TELEGRAM_BOT_TOKEN: telegram.token, TELEGRAM_API_ROOT: telegram.url, ACCESS_POLICY: "open" });
  });
  afterEach(async () => {
    await parley.stop();
    await telegram.close();
    await db.drop();
  });

  const sends = () => telegram.sent.filter((c) => c.method === "sendMessage" && c.params.chat_id === 401);

  it("offers the modes as inline buttons, and a tap sets the default mode", async () => {
    telegram.pushUpdate(telegram.updates.privateText("/mode", { userId: 401 }));
    await waitFor(() => expect(sends()).toHaveLength(1));
    const markup = sends()[0]!.params.reply_markup as { inline_keyboard: Array<Array<{ text: string; callback_data: string }>> };
    expect(markup.inline_keyboard.flat().map((b) => b.callback_data)).toEqual(["/mode instant", "/mode thinking", "/mode contemplating"]);
    expect(markup.inline_keyboard.flat()[0]!.text).toMatch(/^✓/);

    telegram.pushUpdate({
      update_id: 0,
      callback_query: {
        id: "4242",
        from: { id: 401, is_bot: false, first_name: "Ada" },
        chat_instance: "-1",
        data: "/mode thinking",
        message: { message_id: 1, date: 1_700_000_000, chat: { id: 401, type: "private", first_name: "Ada" }, from: telegram.bot, text: "modes" },
      },
    } as unknown as Update);
    await waitFor(() => expect(sends()).toHaveLength(2));
    expect(String(sends()[1]!.params.text)).toMatch(/now Thinking/i);
    expect(telegram.sent.some((c) => c.method === "answerCallbackQuery" && c.params.callback_query_id === "4242")).toBe(true);
    const [row] = await parley.database.db.select().from(users).where(eq(users.key, "telegram:401"));
    expect(row?.defaultMode).toBe("thinking");
  });

  it("ignores a tap on a button that is not on the bot's own message", async () => {
    telegram.pushUpdate({
      update_id: 0,
      callback_query: {
        id: "4243",
        from: { id: 401, is_bot: false, first_name: "Ada" },
        chat_instance: "-1",
        data: "/mode contemplating",
        message: { message_id: 2, date: 1_700_000_000, chat: { id: 401, type: "private" }, from: { id: 999, is_bot: true, first_name: "Other" }, text: "x" },
      },
    } as unknown as Update);
    telegram.pushUpdate(telegram.updates.privateText("/help", { userId: 401 }));
    await waitFor(() => expect(sends()).toHaveLength(1));
    expect(String(sends()[0]!.params.text)).toContain("/reset");
  });
});
