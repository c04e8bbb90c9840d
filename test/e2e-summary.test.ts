import { eq } from "drizzle-orm";
import { describe, expect, it, vi } from "vitest";
import { SUMMARY_MAX_CHARS } from "../src/conversation/summary.ts";
import { conversations, modelCalls } from "../src/db/schema.ts";
import { type RecordedRequest } from "./fakes/openai-server.ts";
import { DATABASE_KINDS } from "./support/databases.ts";
import { startTestParley } from "./support/parley.ts";
import { sceneEnv, useScene } from "./support/scene.ts";

/**
 * The rolling summary end to end: turns that no longer fit HISTORY_MAX_TOKENS are folded into the conversation's
 * summary by one model call after the reply, and later prompts carry the summary instead of those turns. Whatever the
 * model writes, the summary stays bounded: it rides in every later prompt.
 */

const MODEL = "summary-test-model";
const waitFor = <T>(check: () => T | Promise<T>, timeout = 10_000) => vi.waitFor(check, { timeout, interval: 25 });
const isSummaryRequest = (r: RecordedRequest) => (r.systemText ?? "").startsWith("You maintain the memory of a chat");
/** About 200 tokens of text that names itself: two of them and the system prompt overflow a 500-token history. */
const long = (canary: string) => `${canary} ${"and this part of the story goes on for a while ".repeat(16)}`.trim();

describe.each(DATABASE_KINDS)("rolling summary on %s", (kind) => {
  const scene = useScene(kind);

  const replies = (chatId: number) =>
    scene.telegram.sent.filter((c) => c.method === "sendMessage" && c.params.chat_id === chatId && c.errorCode === undefined).length;
  const ask = async (chatId: number, text: string) => {
    const before = replies(chatId);
    scene.telegram.pushUpdate(scene.telegram.updates.privateText(text, { userId: chatId }));
    await waitFor(() => expect(replies(chatId)).toBeGreaterThan(before));
  };

  it("folds what no longer fits into a bounded summary, and later prompts carry it instead of the old turns", async () => {
    // The summary call answers far beyond what was asked; answers are short.
    const { db, telegram, model } = scene;
    model.reply(MODEL, (request) =>
      isSummaryRequest(request) ? { text: `SUMMARY-CANARY ${"the user told a long story. ".repeat(600)}` } : { text: "Noted." },
    );
    const parley = await startTestParley(db, {
      ...sceneEnv({ telegram, model }, MODEL),
      HISTORY_MAX_TOKENS: "500",
    });
    scene.parley = parley;

    await ask(31, long("FIRST-CANARY"));
    await ask(31, long("SECOND-CANARY"));
    await ask(31, long("THIRD-CANARY"));
    await waitFor(() => expect(model.requests.filter(isSummaryRequest).length).toBeGreaterThan(0));
    const [summaryRequest] = model.requests.filter(isSummaryRequest);
    expect(summaryRequest!.lastUserText).toContain("FIRST-CANARY");
    expect((summaryRequest!.body as { max_tokens?: number }).max_tokens).toBe(800);

    await waitFor(async () => {
      const [conversation] = await parley.database.db.select().from(conversations).where(eq(conversations.userKey, "telegram:31"));
      expect(conversation?.summary).toMatch(/^SUMMARY-CANARY/);
      expect(conversation!.summary!.length).toBeLessThanOrEqual(SUMMARY_MAX_CHARS);
    });
    await ask(31, "what do you remember?");
    const last = model.requests.filter((r) => !isSummaryRequest(r)).at(-1)!;
    expect(last.lastUserText).toBe("what do you remember?");
    expect(last.systemText).toContain("Summary of the earlier part of this conversation (written by you):\nSUMMARY-CANARY");
    const turns = JSON.stringify((last.body as { messages: unknown[] }).messages.slice(1));
    expect(turns).not.toContain("FIRST-CANARY");
    // The summary call is recorded like any call, for this user.
    const calls = await parley.database.db.select().from(modelCalls).where(eq(modelCalls.purpose, "summary"));
    expect(calls.length).toBeGreaterThan(0);
    expect(calls.every((c) => c.userKey === "telegram:31" && c.ok)).toBe(true);
  });
});
