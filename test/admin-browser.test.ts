import { createHash, randomUUID } from "node:crypto";
import { eq } from "drizzle-orm";
import type { Page } from "playwright-core";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadStartupCredentials, startParley, type Parley } from "../src/app.ts";
import { loadConfig, secretsOf } from "../src/config.ts";
import { conversations, inbox, media, messages, modelCalls, users } from "../src/db/schema.ts";
import { createLogSink } from "../src/observability/log-sink.ts";
import { createLogger, type Logger } from "../src/observability/logger.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { CHROMIUM_MISSING, launchBrowser, screenshotPath, type TestBrowser } from "./support/browser.ts";
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { openWebChat, tokenOf } from "./support/web-chat.ts";

/**
 * The admin page in headless Chromium against a whole Parley: sign in, read a conversation that went through the web
 * channel and a fake model (its first message is an XSS attempt that must stay text), open its model calls, watch a
 * log line arrive in the live tail, block the user. Screenshots go to test-results/admin/ for people to look at.
 */

const PASSWORD = "browser test password 42";
const MODEL = "fake-model";
const INJECTED =
  `<script>window.__pwned = "script"</script><img src=x onerror="window.__pwned='img';alert('img')">` +
  `<svg onload="alert('svg')"></svg> <a href="javascript:alert('link')">click me</a>`;

if (CHROMIUM_MISSING !== undefined) {
  describe("admin in a browser", () => {
    it.skip(`skipped: ${CHROMIUM_MISSING}`, () => undefined);
  });
}

describe.skipIf(CHROMIUM_MISSING !== undefined).each(DATABASE_KINDS)("admin in a browser on %s", (kind) => {
  let testDb: TestDatabase;
  let fake: FakeOpenAIServer;
  let parley: Parley;
  let log: Logger;
  let browser: TestBrowser;
  let page: Page;
  let userKey: string;
  let contemplated: number;
  const dialogs: string[] = [];
  const cspViolations: string[] = [];

  beforeAll(async () => {
    [testDb, fake, browser] = await Promise.all([createTestDatabase(kind), startFakeOpenAIServer(), launchBrowser()]);
    fake.reply(MODEL, { usage: { promptTokens: 55, completionTokens: 21 } });
    const config = loadConfig(
      {
        PORT: "0",
        HOST: "127.0.0.1",
        LOG_LEVEL: "debug",
        ADMIN_PASSWORD: PASSWORD,
        MODELS_INSTANT: `openai-compatible:${MODEL}`,
        OPENAI_COMPATIBLE_BASE_URL: `${fake.url}/v1`,
        ...testDb.env,
      },
      "/nonexistent/.env",
    );
    const startup = await loadStartupCredentials(config);
    const secrets = [...secretsOf(config), ...startup.secrets];
    const sink = createLogSink({ tee: () => undefined, warn: () => undefined, flushMs: 100 });
    log = createLogger({ level: "debug", secrets, write: sink.write });
    parley = await startParley({
      config,
      log,
      secrets,
      logSink: sink,
      webChatCredentials: startup.webChat,
      tuning: { leaseMs: 1_000, pollMs: 50, retryBaseMs: 100 },
    });

    // Two turns through the web chat's API, as its page sends them with the operator's session.
    const operator = await openWebChat(parley.url, tokenOf(parley.webChatLink));
    userKey = "web:operator";
    const db = parley.database.db;
    for (const [i, text] of [INJECTED, "What is the capital of France?"].entries()) {
      const res = await operator.post({ text, id: randomUUID() });
      expect(res.status).toBe(202);
      const deadline = Date.now() + 8_000;
      while ((await db.select().from(messages).where(eq(messages.role, "assistant"))).length < i + 1) {
        if (Date.now() > deadline) throw new Error("no reply from Parley");
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }

    // A contemplating answer, as another part of Parley will record it: sub-agents and a synthesis under one call.
    const telegramUser = "telegram:777";
    await db.insert(users).values({ key: telegramUser, channel: "telegram", displayName: "Ada", status: "allowed", defaultMode: "contemplating" });
    const [conversation] = await db.insert(conversations).values({ userKey: telegramUser, chatKey: telegramUser }).returning();
    contemplated = conversation!.id;
    const [row] = await db
      .insert(inbox)
      .values({ channel: "telegram", platformMessageId: "c1", chatKey: telegramUser, userKey: telegramUser, payload: {}, state: "done" })
      .returning();
    const PNG = await sharp({ create: { width: 48, height: 36, channels: 3, background: "#2f6fd6" } }).png().toBuffer();
    const pngId = createHash("sha256").update(PNG).digest("hex");
    await db.insert(media).values({ sha256: pngId, mimeType: "image/png", width: 48, height: 36, bytes: PNG.length, data: PNG });
    await db.insert(messages).values({ conversationId: contemplated, inboxId: row!.id, role: "user", text: "What is in this picture? Think hard.", tokens: 9, media: [pngId] });
    const [answer] = await db
      .insert(messages)
      .values({ conversationId: contemplated, inboxId: row!.id, role: "assistant", text: "A small blue square.", tokens: 6, mode: "contemplating", deliveredAt: new Date() })
      .returning();
    const base = { inboxId: row!.id, userKey: telegramUser, mode: "contemplating", startedAt: new Date(), ok: true } as const;
    const [root] = await db
      .insert(modelCalls)
      .values({ ...base, messageId: answer!.id, purpose: "answer", provider: "anthropic", model: "claude-sonnet-4-5", latencyMs: 4_200, firstTokenMs: 3_100, tokensIn: 2_400, tokensOut: 310, costUsd: 0.0118 })
      .returning();
    await db.insert(modelCalls).values([
      { ...base, parentId: root!.id, purpose: "agent", provider: "openai", model: "gpt-5-mini", latencyMs: 2_100, firstTokenMs: 900, tokensIn: 800, tokensOut: 120, costUsd: 0.0022 },
      { ...base, parentId: root!.id, purpose: "agent", provider: "google", model: "gemini-2.5-flash", latencyMs: 1_700, firstTokenMs: 600, tokensIn: 800, tokensOut: 95, costUsd: 0.0011 },
      { ...base, parentId: root!.id, purpose: "agent", provider: "ollama", model: "llava:13b", latencyMs: 30_000, ok: false, error: "timed out after 30 s" },
      { ...base, parentId: root!.id, purpose: "synthesis", provider: "anthropic", model: "claude-sonnet-4-5", latencyMs: 1_400, firstTokenMs: 500, tokensIn: 600, tokensOut: 90, costUsd: 0.0032 },
    ]);

    page = await browser.context.newPage();
    // Fail with Playwright's own message (what it waited for) well before the test's time runs out.
    page.setDefaultTimeout(8_000);
    page.on("dialog", (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    page.on("console", (message) => {
      if (/Content Security Policy|Refused to/i.test(message.text())) cspViolations.push(message.text());
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await parley?.stop();
    await fake?.close();
    await testDb?.drop();
  });

  it("signs in and shows the overview", async () => {
    await page.goto(`${parley.url}/admin/`);
    expect(new URL(page.url()).pathname).toBe("/admin/login");
    await page.fill("#password", "wrong password!");
    await page.click("button[type=submit]");
    await page.waitForSelector("text=Wrong password.");
    await page.fill("#password", PASSWORD);
    await Promise.all([page.waitForURL(`${parley.url}/admin/`), page.click("button[type=submit]")]);
    await page.waitForSelector("h1:has-text('Overview')");
    expect(await page.locator("tr:has(td a:text-is('web')) .state").textContent()).toBe("running");
    expect(await page.locator("svg.chart rect.bar").count()).toBe(24);
    const cookies = await browser.context.cookies();
    expect(cookies.find((c) => c.name === "parley_admin")).toMatchObject({ httpOnly: true, sameSite: "Strict", path: "/admin" });
    await page.screenshot({ path: await screenshotPath(`overview-${kind}`), fullPage: true });
  });

  it("opens the operator's web chat from the overview's link, with the token gone from the address bar", async () => {
    const chat = await browser.context.newPage();
    await chat.goto(`${parley.url}/admin/`);
    await Promise.all([chat.waitForURL(`${parley.url}/chat/`), chat.click("a.web-chat-link")]);
    await chat.waitForSelector("#input");
    expect(chat.url()).not.toContain("token");
    expect((await browser.context.cookies()).find((c) => c.name === "parley_chat")).toMatchObject({ httpOnly: true, sameSite: "Strict", path: "/chat" });
    await chat.close();
  });

  it("shows the conversation with the injected markup as text and its model calls", async () => {
    await page.click("nav >> text=Conversations");
    await page.waitForSelector("h1:has-text('Conversations')");
    const db = parley.database.db;
    const [conversation] = await db.select().from(conversations).where(eq(conversations.userKey, userKey));
    await Promise.all([page.waitForURL(`**/admin/conversations/${conversation!.id}`), page.click(`a[href="/admin/conversations/${conversation!.id}"]`)]);
    await page.waitForSelector("ol.turns");
    expect(await page.locator("li.turn").count()).toBe(4);
    const first = page.locator("li.turn-user .text").first();
    expect(await first.textContent()).toBe(INJECTED);
    expect(await page.locator("li.turn .text img, li.turn .text script, li.turn .text svg, li.turn .text a").count()).toBe(0);

    const calls = page.locator("li.turn-assistant details.calls").last();
    expect(await calls.locator("summary").textContent()).toContain("1 model call");
    expect(await calls.locator(".call-head").isVisible()).toBe(false);
    await calls.locator("summary").click();
    await page.waitForSelector("li.turn-assistant details.calls[open] .call-head");
    const opened = calls.locator(".call").first();
    expect(await opened.locator("strong").textContent()).toBe(`openai-compatible:${MODEL}`);
    expect(await opened.locator("dl.call-facts").textContent()).toContain("55 / 21");
    await page.screenshot({ path: await screenshotPath(`conversation-${kind}`), fullPage: true });

    // Nothing the user sent ran: no dialog, no global set by the script or the onerror handler.
    expect(await page.evaluate(() => (window as unknown as { __pwned?: unknown }).__pwned)).toBeUndefined();
    expect(dialogs).toEqual([]);
  });

  it("shows a contemplating answer's calls as a tree and the user's image as a thumbnail", async () => {
    await page.goto(`${parley.url}/admin/conversations`);
    await page.waitForSelector(`a[href="/admin/conversations/${contemplated}"]`);
    await page.screenshot({ path: await screenshotPath(`conversations-${kind}`), fullPage: false });
    await page.click(`a[href="/admin/conversations/${contemplated}"]`);
    await page.waitForSelector("ol.turns");
    const thumb = page.locator("li.turn-user .media img");
    await thumb.waitFor();
    expect(await thumb.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth)).toBe(48);
    await page.click("li.turn-assistant details.calls summary");
    const root = page.locator("details.calls[open] > ul.call-tree > li.call");
    expect(await root.count()).toBe(1);
    expect(await root.locator("> .call-head strong").textContent()).toBe("anthropic:claude-sonnet-4-5");
    const children = root.locator("> ul.call-tree > li.call");
    expect(await children.count()).toBe(4);
    expect(await children.locator(".call-head .tag").allTextContents()).toEqual(
      expect.arrayContaining(["agent", "synthesis", "failed"]),
    );
    await page.screenshot({ path: await screenshotPath(`conversation-tree-${kind}`), fullPage: true });
  });

  it("shows a new log line in the live tail", async () => {
    await page.goto(`${parley.url}/admin/logs`);
    await page.waitForSelector("#tail-state:text-is('live')");
    const marker = `tail marker ${randomUUID()}`;
    log.child({ source: "browser-test" }).warn({ detail: "<b>bold?</b>" }, `${marker} <img src=x onerror="alert('log')">`);
    const row = page.locator("#tail-rows tr", { hasText: marker });
    await row.waitFor({ timeout: 5_000 });
    expect(await row.locator("td.level").textContent()).toBe("warn");
    expect(await row.locator("td.source").textContent()).toBe("browser-test");
    expect(await row.locator("td.message").textContent()).toContain(`${marker} <img src=x onerror="alert('log')">`);
    expect(await row.locator("img, b").count()).toBe(0);
    await page.screenshot({ path: await screenshotPath(`logs-${kind}`), fullPage: false });
    expect(dialogs).toEqual([]);
  });

  it("blocks the user", async () => {
    await page.click("nav >> text=Users");
    await page.waitForSelector("h1:has-text('Users')");
    await page.click(`a[href="/admin/users/${encodeURIComponent(userKey)}"]`);
    await page.waitForSelector("#user-status");
    await Promise.all([page.waitForURL("**?notice=blocked"), page.click("button:text-is('Block')")]);
    expect(await page.locator("#user-status").textContent()).toBe("blocked");
    expect(await page.locator(".notice").textContent()).toBe("The user is blocked.");
    const [row] = await parley.database.db.select().from(users).where(eq(users.key, userKey));
    expect(row?.status).toBe("blocked");
    await page.screenshot({ path: await screenshotPath(`user-${kind}`), fullPage: true });
  });

  it("ran no injected script and broke no CSP rule on any page", async () => {
    expect(dialogs).toEqual([]);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: unknown }).__pwned)).toBeUndefined();
    expect(cspViolations).toEqual([]);
  });
});
