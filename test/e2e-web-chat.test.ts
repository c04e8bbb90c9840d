import { randomUUID } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { createTestDatabase, type TestDatabase } from "./support/databases.ts";
import { startTestParley, type TestParley } from "./support/parley.ts";

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

  it("serves the page, and streams an answer to a message posted from it, on the default allowlist policy", async () => {
    const page = await fetch(`${parley.url}/chat`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("<html");
    expect((await fetch(parley.url, { redirect: "manual" })).headers.get("location")).toBe("/chat");

    model.reply("web-model", { text: "Hello from the model, streamed in pieces.", chunks: 5, chunkDelayMs: 150 });
    const clientId = randomUUID();
    const events = await fetch(`${parley.url}/chat/api/events?clientId=${clientId}`);
    const received = readEvents(events.body!, (list) => list.some((e) => e.event === "message"));
    const posted = await fetch(`${parley.url}/chat/api/messages`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ clientId, id: randomUUID(), text: "hello" }),
    });
    expect(posted.status).toBe(202);
    const list = await received;
    expect(list.some((e) => e.event === "draft")).toBe(true);
    expect(list.find((e) => e.event === "message")?.data.text).toBe("Hello from the model, streamed in pieces.");
  });
});
