import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { chatKey } from "../src/core/keys.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { CHROMIUM_MISSING, launchBrowser, screenshotPath, type TestBrowser } from "./support/browser.ts";
import { createTestDatabase, type TestDatabase } from "./support/databases.ts";
import { solidJpeg } from "./support/images.ts";
import { startTestParley, type TestParley } from "./support/parley.ts";
import { openWebChat, tokenOf } from "./support/web-chat.ts";

/** Reads server-sent events from a fetch body until `until` says enough. */
async function readEvents(body: ReadableStream<Uint8Array>, until: (events: Array<{ event: string; data: { text?: string } }>) => boolean) {
  const events: Array<{ event: string; data: { text?: string } }> = [];
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  while (!until(events)) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event && data) events.push({ event, data: JSON.parse(data) });
    }
  }
  await reader.cancel();
  return events;
}

describe("the web chat through Parley (PGlite, no configuration but a model)", () => {
  let db: TestDatabase;
  let model: FakeOpenAIServer;
  let parley: TestParley;

  beforeEach(async () => {
    db = await createTestDatabase("pglite");
    model = await startFakeOpenAIServer();
    parley = await startTestParley(db, { MODELS_INSTANT: "openai-compatible:web-model", OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1` });
  });
  afterEach(async () => {
    await parley.stop();
    await model.close();
    await db.drop();
  });

  it("serves the page to the holder of the link, and streams an answer to a message posted from it, on the default pairing policy", async () => {
    expect(parley.webChatLink).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/chat#token=[A-Za-z0-9_-]{43}$/);
    const chat = await openWebChat(parley.url, tokenOf(parley.webChatLink));
    const page = await fetch(`${parley.url}/chat`, { headers: { Cookie: chat.cookie } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("<html");
    expect((await fetch(parley.url, { redirect: "manual" })).headers.get("location")).toBe("/chat");

    model.reply("web-model", { text: "Hello from the model, streamed in pieces.", chunks: 5, chunkDelayMs: 150 });
    const events = await chat.events();
    const received = readEvents(events.body!, (list) => list.some((e) => e.event === "message"));
    const posted = await chat.post({ id: randomUUID(), text: "hello" });
    expect(posted.status).toBe(202);
    const list = await received;
    expect(list.some((e) => e.event === "draft")).toBe(true);
    expect(list.find((e) => e.event === "message")?.data.text).toBe("Hello from the model, streamed in pieces.");
  });
});

if (CHROMIUM_MISSING !== undefined) {
  describe("the web chat page in a browser", () => {
    it.skip(`skipped: ${CHROMIUM_MISSING}`, () => undefined);
  });
}

/** The page itself in headless Chromium, against a whole Parley: an image through the real file input, and a file. */
describe.skipIf(CHROMIUM_MISSING !== undefined)("the web chat page in a browser", () => {
  const MAX_UPLOAD = 256 * 1024;
  let db: TestDatabase;
  let model: FakeOpenAIServer;
  let parley: TestParley;
  let browser: TestBrowser;
  let page: Page;
  const cspViolations: string[] = [];

  beforeAll(async () => {
    [db, model, browser] = await Promise.all([createTestDatabase("pglite"), startFakeOpenAIServer(), launchBrowser()]);
    parley = await startTestParley(db, {
      MODELS_INSTANT: "openai-compatible:vision-model",
      MODEL_CAPABILITIES: "openai-compatible:vision-model=images",
      OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1`,
      MEDIA_MAX_BYTES: String(MAX_UPLOAD),
    });
    page = await browser.context.newPage();
    page.on("console", (message) => {
      if (/Content Security Policy|Refused to/i.test(message.text())) cspViolations.push(message.text());
    });
  });
  afterAll(async () => {
    await browser?.close();
    await parley?.stop();
    await model?.close();
    await db?.drop();
  });

  it("explains itself without the link, and opens with it: the token leaves the address bar for an HttpOnly cookie", async () => {
    const response = await page.goto(`${parley.url}/chat`);
    expect(response?.status()).toBe(401);
    await page.waitForSelector("text=This web chat is the operator's");
    expect(await page.locator("#input").count()).toBe(0);
    // A wrong link says so and opens nothing.
    await page.goto(`${parley.url}/chat#token=${"x".repeat(43)}`);
    await page.waitForSelector("#gate-status >> text=That link is not (or no longer) valid");
    expect(page.url()).toBe(`${parley.url}/chat`);
    expect(await browser.context.cookies()).toEqual([]);

    await page.goto(parley.webChatLink!);
    await page.waitForSelector("#input");
    expect(page.url()).toBe(`${parley.url}/chat/`);
    expect(page.url()).not.toContain("token");
    const cookies = await browser.context.cookies();
    expect(cookies.map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite, path: c.path }))).toEqual([
      { name: "parley_chat", httpOnly: true, sameSite: "Strict", path: "/chat" },
    ]);
    expect(await page.evaluate(() => document.cookie)).toBe("");
    expect(cspViolations).toEqual([]);
  });

  it("attaches an image through the file input, sends it with a caption and shows the reply", async () => {
    model.reply("vision-model", { text: "That is a **green** square." });
    await page.setInputFiles("#file", { name: "square.jpg", mimeType: "image/jpeg", buffer: await solidJpeg(320, 240) });
    await page.waitForSelector("#attachment:not([hidden]) >> text=square.jpg");
    await page.fill("#input", "what colour is this?");
    await page.click("#send");
    await page.waitForSelector(".msg-assistant >> text=That is a");
    expect(await page.locator(".msg-assistant strong").last().textContent()).toBe("green");
    expect(await page.locator(".msg-user img.sent-image").getAttribute("alt")).toBe("Image: square.jpg");
    expect(await page.locator(".msg-user p").last().textContent()).toBe("what colour is this?");
    expect(await page.isHidden("#attachment")).toBe(true);
    const request = model.requestsFor("vision-model")[0];
    expect(request?.lastUserText).toBe("what colour is this?");
    expect(JSON.stringify(request?.body)).toContain("data:image/jpeg;base64,");
    await page.screenshot({ path: await screenshotPath("web-chat-image") });
    expect(cspViolations).toEqual([]);
  });

  it("says when an image is over the limit: before sending it, and when the server cuts the upload off", async () => {
    const big = { name: "big.jpg", mimeType: "image/jpeg", buffer: Buffer.alloc(MAX_UPLOAD + 1, 1) };
    await page.setInputFiles("#file", big);
    await page.waitForSelector("#status.error >> text=the limit is 256 KB");
    expect(await page.isHidden("#attachment")).toBe(true);

    // A page that does not know the limit sends it anyway: the server's 413 and its sentence reach the page.
    const other = await browser.context.newPage();
    await other.route("**/chat", async (route) => {
      const response = await route.fetch();
      const html = (await response.text()).replace(/data-max-upload="\d+"/, 'data-max-upload="999999999"');
      await route.fulfill({ response, body: html });
    });
    await other.goto(`${parley.url}/chat`);
    const answered = other.waitForResponse((r) => r.url().endsWith("/chat/api/uploads"));
    await other.setInputFiles("#file", big);
    await other.click("#send");
    expect((await answered).status()).toBe(413);
    await other.waitForSelector("#status.error >> text=That image is too large: the limit is 256 KB.");
    await other.close();
  });

  it("shows a file Parley sends as a download link that works once", async () => {
    const content = '{"type":"message","text":"hi"}\n';
    await parley.adapters.get("web")!.sendFile!(chatKey("web", "operator"), {
      name: "parley-export.jsonl",
      mimeType: "application/x-ndjson",
      bytes: new TextEncoder().encode(content),
      caption: "Everything stored about you.",
    });
    const link = page.locator("a.file-link", { hasText: "Download parley-export.jsonl" });
    await link.waitFor();
    expect(await page.locator(".msg-file p").first().textContent()).toBe("Everything stored about you.");
    const href = await link.getAttribute("href");
    expect(href).toMatch(/^\/chat\/files\/[A-Za-z0-9_-]{43}$/);
    const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
    expect(download.suggestedFilename()).toBe("parley-export.jsonl");
    expect(await readFile((await download.path())!, "utf8")).toBe(content);
    await page.waitForSelector(".msg-file >> text=parley-export.jsonl downloaded");
    // The link is used up.
    expect(await page.evaluate(async (url) => (await fetch(url)).status, href!)).toBe(404);
    expect(cspViolations).toEqual([]);
  });
});

/** WEB_CHAT=public in headless Chromium: a visitor's page opens a session of its own and is treated as a stranger. */
describe.skipIf(CHROMIUM_MISSING !== undefined)("the public web chat page in a browser", () => {
  let db: TestDatabase;
  let model: FakeOpenAIServer;
  let parley: TestParley;
  let browser: TestBrowser;

  beforeAll(async () => {
    [db, model, browser] = await Promise.all([createTestDatabase("pglite"), startFakeOpenAIServer(), launchBrowser()]);
    parley = await startTestParley(db, { WEB_CHAT: "public", MODELS_INSTANT: "openai-compatible:web-model", OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1` });
  });
  afterAll(async () => {
    await browser?.close();
    await parley?.stop();
    await model?.close();
    await db?.drop();
  });

  it("gives a new visitor a session and, under the default pairing policy, a code to show the operator and no model call", async () => {
    model.reply("web-model", { text: "should never be asked" });
    const page = await browser.context.newPage();
    const opened = page.waitForResponse((r) => r.url().endsWith("/chat/api/session"));
    await page.goto(`${parley.url}/chat`);
    expect((await opened).status()).toBe(200);
    const [cookie] = await browser.context.cookies();
    expect(cookie).toMatchObject({ name: "parley_chat", httpOnly: true, sameSite: "Strict", path: "/chat" });
    await page.waitForSelector("#send:not([disabled])");
    await page.fill("#input", "hello, who are you?");
    await page.click("#send");
    await page.waitForSelector(".msg-assistant >> text=Ask the operator to approve code");
    expect(await page.locator(".msg-assistant").last().textContent()).toMatch(/approve code [A-Z0-9]{8}/);
    expect(model.requests).toHaveLength(0);
    await page.close();
  });
});
