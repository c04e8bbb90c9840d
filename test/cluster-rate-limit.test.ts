import { randomInt } from "node:crypto";
import { Redis } from "ioredis";
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { startParleyProcess, type ChildApp } from "../scripts/bench/processes.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { startFakeTelegram, type FakeTelegram } from "./fakes/telegram-api.ts";
import { reachable, startBotApiProxy, type BotApiProxy } from "./support/cluster.ts";
import { createTestDatabase, type TestDatabase } from "./support/databases.ts";

/**
 * Telegram's per-chat limit (about one message a second) across two Parley processes, through Bottleneck's Redis
 * clustering (REDIS_URL). Six forum topics of one group are six conversations, answered in parallel, one per
 * process at a time (WORKER_CONCURRENCY=1), but the messages all go to one Telegram chat: the Bot API must see
 * them at least a second apart. Without REDIS_URL each process paces only itself, and the two collide.
 */

const REDIS_URL = "redis://127.0.0.1:6379";
const SECRET = "cluster-rate-secret_0123";
const GROUP = -100_555_000;
const TOPICS = [11, 12, 13, 14, 15, 16];
const LIMITED = new Set(["sendmessage", "editmessagetext"]);

let redisUp = false;
beforeAll(async () => {
  redisUp = await reachable("127.0.0.1", 6379);
});

describe.skipIf(!process.env.TEST_DATABASE_URL)("Telegram's per-chat limit across two processes (PostgreSQL and Redis on 127.0.0.1:6379)", () => {
  let db: TestDatabase;
  let telegram: FakeTelegram;
  let model: FakeOpenAIServer;
  let proxies: BotApiProxy[] = [];
  let apps: ChildApp[] = [];
  let botId: number;

  beforeEach(async () => {
    db = await createTestDatabase("postgres");
    // A bot of its own per test: its limiters' state in Redis starts empty.
    botId = randomInt(100_000_000, 999_999_999);
    telegram = await startFakeTelegram({ token: `${botId}:AAFakeTokenForClusterTests_abcdefghijklmno`, bot: { id: botId } });
    model = await startFakeOpenAIServer();
    proxies = [await startBotApiProxy(telegram.url), await startBotApiProxy(telegram.url)];
  });
  afterEach(async () => {
    await Promise.all(apps.map((app) => app.stop()));
    apps = [];
    await Promise.all([...proxies.map((p) => p.close()), telegram.close(), model.close()]);
    await db.drop();
    if (redisUp) {
      const redis = new Redis(REDIS_URL);
      const keys = await redis.keys(`b_parley:telegram:${botId}:*`);
      if (keys.length > 0) await redis.del(...keys);
      await redis.quit();
    }
  });

  const startBoth = async (extra: Record<string, string>) => {
    for (const [i, proxy] of proxies.entries()) {
      apps.push(
        await startParleyProcess(
          {
            ...db.env,
            TELEGRAM_BOT_TOKEN: telegram.token,
            TELEGRAM_API_ROOT: proxy.url,
            TELEGRAM_WEBHOOK_URL: "https://parley.example.org/webhooks/telegram",
            TELEGRAM_WEBHOOK_SECRET: SECRET,
            MODELS_INSTANT: "openai-compatible:rate-model",
            OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1`,
            OPENAI_COMPATIBLE_API_KEY: "sk-cluster-test-0123456789",
            ACCESS_POLICY: "open",
            GROUP_POLICY: "open",
            WORKER_CONCURRENCY: "1",
            ...extra,
          },
          { name: `parley-${i}` },
        ),
      );
    }
  };

  /** One message in each topic, mentioning the bot, posted to the two processes in turn. */
  const postTopics = async () => {
    const mention = `@${telegram.bot.username}`;
    await Promise.all(
      TOPICS.map(async (thread, i) => {
        const update = {
          ...telegram.updates.raw(
            {
              chat: { id: GROUP, type: "supergroup", title: "Forum", is_forum: true },
              text: `${mention} question in topic ${thread}`,
              entities: [{ type: "mention", offset: 0, length: mention.length }],
              is_topic_message: true,
              message_thread_id: thread,
            } as never,
            { userId: 500 + i },
          ),
          update_id: 9_000 + i,
        };
        const response = await fetch(`${apps[i % 2]!.url}/webhooks/telegram`, {
          method: "POST",
          headers: { "content-type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET },
          body: JSON.stringify(update),
        });
        expect(response.status).toBe(200);
      }),
    );
  };

  const limitedCalls = () =>
    telegram.sent.filter((c) => LIMITED.has(c.method.toLowerCase()) && Number(c.params.chat_id) === GROUP).sort((a, b) => a.at - b.at);
  const gaps = () => limitedCalls().slice(1).map((call, i) => call.at - limitedCalls()[i]!.at);
  const answeredTopics = () =>
    new Set(telegram.sent.filter((c) => c.method === "sendMessage" && c.errorCode === undefined).map((c) => Number(c.params.message_thread_id)));

  it("keeps one chat at one message a second when both processes share Redis", { timeout: 120_000 }, async (ctx) => {
    if (!redisUp) ctx.skip("Redis is not reachable on 127.0.0.1:6379");
    await startBoth({ REDIS_URL });
    await postTopics();
    await vi.waitFor(() => expect(answeredTopics().size).toBe(TOPICS.length), { timeout: 60_000, interval: 100 });
    await new Promise((resolve) => setTimeout(resolve, 1_500)); // final edits
    // Both processes sent to the chat…
    expect(proxies.map((p) => p.count("sendMessage"))).toEqual([expect.any(Number), expect.any(Number)]);
    expect(Math.min(...proxies.map((p) => p.count("sendMessage")))).toBeGreaterThan(0);
    // …and never two within a second of each other (a few ms of slack for the clocks of Redis and this process).
    expect(limitedCalls().length).toBeGreaterThanOrEqual(TOPICS.length);
    expect(Math.min(...gaps())).toBeGreaterThanOrEqual(950);
  });

  it("without Redis, each process paces only itself", { timeout: 120_000 }, async () => {
    await startBoth({});
    await postTopics();
    await vi.waitFor(() => expect(answeredTopics().size).toBe(TOPICS.length), { timeout: 60_000, interval: 100 });
    expect(Math.min(...proxies.map((p) => p.count("sendMessage")))).toBeGreaterThan(0);
    expect(Math.min(...gaps())).toBeLessThan(900);
  });
});
