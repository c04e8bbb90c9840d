import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startParleyProcess, type ChildApp } from "../scripts/bench/processes.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { startFakeTelegram, type FakeTelegram } from "./fakes/telegram-api.ts";
import { startBotApiProxy, startRoundRobin, type BotApiProxy, type RoundRobin } from "./support/cluster.ts";
import { createTestDatabase, type TestDatabase } from "./support/databases.ts";

/**
 * Two Parley processes on one PostgreSQL share the work through the inbox: Telegram posts to a round-robin
 * forwarder in front of both webhooks, 1,000 messages from 200 chats, and halfway through one process is killed
 * (SIGKILL) and started again. Every message must be answered exactly once, and every inbox row end done.
 *
 * The kill lands while the victim has messages in flight (claimed, model called, reply stored but not delivered).
 * One moment is excluded on purpose: between Telegram accepting a sendMessage and the process recording the
 * delivery, a crash makes the next attempt send that reply again (Telegram has no idempotency key: delivery is
 * at least once in that window of a millisecond or two). The victim's sendMessage calls are held at its Bot API
 * proxy for a moment before the kill, so that no send is half done when it dies, and dropped after it.
 */

const SECRET = "cluster-webhook-secret_0123";
const MODEL = "cluster-model";
const CHATS = 200;
const PER_CHAT = 5;
const TOTAL = CHATS * PER_CHAT;
const FIRST_CHAT = 710_000;

describe.skipIf(!process.env.TEST_DATABASE_URL)("two Parley processes behind a round-robin webhook (PostgreSQL; skipped without TEST_DATABASE_URL)", () => {
  let db: TestDatabase;
  let telegram: FakeTelegram;
  let model: FakeOpenAIServer;
  const proxies: BotApiProxy[] = [];
  const apps: ChildApp[] = [];
  let forwarder: RoundRobin | undefined;

  const start = (proxy: BotApiProxy, name: string) =>
    startParleyProcess(
      {
        ...db.env,
        TELEGRAM_BOT_TOKEN: telegram.token,
        TELEGRAM_API_ROOT: proxy.url,
        TELEGRAM_WEBHOOK_URL: "https://parley.example.org/webhooks/telegram",
        TELEGRAM_WEBHOOK_SECRET: SECRET,
        MODELS_INSTANT: `openai-compatible:${MODEL}`,
        OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1`,
        OPENAI_COMPATIBLE_API_KEY: "sk-cluster-test-0123456789",
        ACCESS_POLICY: "open",
        INBOX_LEASE_SECONDS: "5",
      },
      { name },
    ).then((app) => (apps.push(app), app));

  beforeAll(async () => {
    db = await createTestDatabase("postgres");
    telegram = await startFakeTelegram();
    model = await startFakeOpenAIServer();
    proxies.push(await startBotApiProxy(telegram.url), await startBotApiProxy(telegram.url));
  });
  afterAll(async () => {
    await Promise.all(apps.map((app) => app.stop()));
    await forwarder?.close();
    await Promise.all([...proxies.map((p) => p.close()), telegram?.close(), model?.close()]);
    await db?.drop();
  });

  it("answers each of 1,000 messages exactly once while one process is killed and restarted", { timeout: 240_000 }, async () => {
    // One after the other: the first one applies the migrations.
    const survivor = await start(proxies[0]!, "parley-a");
    let victim = await start(proxies[1]!, "parley-b");
    forwarder = await startRoundRobin([survivor.url!, victim.url!]);

    const replies = () => telegram.sent.filter((c) => c.method === "sendMessage" && c.errorCode === undefined);
    let updateId = 1;
    const post = async (chat: number, k: number) => {
      const update = { ...telegram.updates.privateText(`c${chat} m${k}`, { userId: chat }), update_id: updateId++ };
      for (let attempt = 0; ; attempt++) {
        const response = await fetch(`${forwarder!.url}/webhooks/telegram`, {
          method: "POST",
          headers: { "content-type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET },
          body: JSON.stringify(update),
        }).catch(() => undefined);
        if (response?.status === 200) return;
        // Telegram delivers again after a failure.
        if (attempt > 100) throw new Error(`update ${update.update_id} refused: ${response?.status}`);
        await sleep(200);
      }
    };
    // As Telegram does: up to 40 connections, each chat's updates in order; paced so traffic goes on through the kill.
    const lanes = 40;
    const sending = Promise.all(
      Array.from({ length: lanes }, async (_, lane) => {
        for (let c = lane; c < CHATS; c += lanes) {
          for (let k = 0; k < PER_CHAT; k++) {
            await post(FIRST_CHAT + c, k);
            await sleep(600);
          }
        }
      }),
    );

    await vi.waitFor(() => expect(replies().length).toBeGreaterThanOrEqual(TOTAL / 2), { timeout: 120_000, interval: 100 });
    proxies[1]!.hold("sendMessage");
    await sleep(400);
    victim.kill("SIGKILL");
    await victim.exited;
    proxies[1]!.discard(); // what the dead process was sending never reaches Telegram
    const repliesAtKill = replies().length;
    victim = await start(proxies[1]!, "parley-b-again");
    forwarder.setTargets([survivor.url!, victim.url!]);

    await sending;
    await vi.waitFor(() => expect(replies().length).toBeGreaterThanOrEqual(TOTAL), { timeout: 150_000, interval: 200 });
    await sleep(1_500); // a duplicate would show up now

    const counts = new Map<string, number>();
    for (const call of replies()) counts.set(String(call.params.text), (counts.get(String(call.params.text)) ?? 0) + 1);
    const expected = Array.from({ length: CHATS * PER_CHAT }, (_, n) => `echo: c${FIRST_CHAT + Math.floor(n / PER_CHAT)} m${n % PER_CHAT}`);
    const missing = expected.filter((text) => !counts.has(text));
    const twice = [...counts].filter(([, n]) => n > 1);
    const unexpected = [...counts.keys()].filter((text) => !expected.includes(text));
    expect({ missing, twice, unexpected }).toEqual({ missing: [], twice: [], unexpected: [] });
    expect(repliesAtKill).toBeLessThan(TOTAL);
    // Both processes answered: the survivor and the victim, before and after its restart.
    expect(proxies[0]!.count("sendMessage")).toBeGreaterThan(0);
    expect(proxies[1]!.count("sendMessage")).toBeGreaterThan(0);

    const client = new pg.Client({ connectionString: db.env.DATABASE_URL });
    await client.connect();
    try {
      await vi.waitFor(
        async () => {
          const { rows } = await client.query<{ state: string; n: string }>("select state, count(*) as n from inbox group by state");
          expect(Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]))).toEqual({ done: TOTAL });
        },
        { timeout: 20_000, interval: 250 },
      );
      // The rows the killed process held were taken over after their lease ran out.
      const { rows } = await client.query<{ n: string }>("select count(*) as n from inbox where attempts > 1");
      expect(Number(rows[0]!.n)).toBeGreaterThan(0);
    } finally {
      await client.end();
    }
  });
});

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
