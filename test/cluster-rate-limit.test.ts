import { randomInt } from "node:crypto";
import { createServer } from "node:net";
import { Redis } from "ioredis";
import { pino } from "pino";
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { createTelegramChannel } from "../channels/telegram/adapter.ts";
import { startParleyProcess, type ChildApp } from "../scripts/bench/processes.ts";
import { createCluster, type Cluster } from "../src/cluster/cluster.ts";
import { createSharedPauses } from "../src/cluster/shared-pause.ts";
import type { ChannelAdapter } from "../src/core/types.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { startFakeTelegram, type FakeTelegram } from "./fakes/telegram-api.ts";
import { reachable, startBotApiProxy, type BotApiProxy } from "./support/cluster.ts";
import { createTestDatabase, type TestDatabase } from "./support/databases.ts";

/**
 * Telegram's per-chat limit (about one message a second) across two Parley processes, through Bottleneck's Redis
 * clustering (REDIS_URL). Six forum topics of one group are six conversations, answered in parallel, one per
 * process at a time (WORKER_CONCURRENCY=1), but the messages all go to one Telegram chat: the Bot API must see
 * them at least a second apart. Without REDIS_URL each process paces only itself, and the two collide.
 *
 * The same for Telegram's 429: its retry_after pauses the whole bot, so with Redis a 429 answered to one process
 * (or one channel of its own, as a process would have) holds back the others until it has passed.
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
      const keys = [...(await redis.keys(`b_parley:telegram:${botId}:*`)), ...(await redis.keys(`parley:telegram:${botId}:*`))];
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

  it("holds back the other process after a 429 until retry_after has passed", { timeout: 120_000 }, async (ctx) => {
    if (!redisUp) ctx.skip("Redis is not reachable on 127.0.0.1:6379");
    await startBoth({ REDIS_URL });
    const redis = new Redis(REDIS_URL);
    try {
      const post = async (app: ChildApp, userId: number, updateId: number) => {
        const update = { ...telegram.updates.privateText("hello", { userId }), update_id: updateId };
        const response = await fetch(`${app.url}/webhooks/telegram`, {
          method: "POST",
          headers: { "content-type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET },
          body: JSON.stringify(update),
        });
        expect(response.status).toBe(200);
      };
      const answered = (chatId: number) =>
        telegram.sent.some((c) => c.method === "sendMessage" && Number(c.params.chat_id) === chatId && c.errorCode === undefined);
      telegram.failNext("sendMessage", { error_code: 429, description: "Too Many Requests: retry after 2", retry_after: 2 });
      await post(apps[0]!, 601, 9_100);
      const limited = await vi.waitFor(
        () => {
          const call = telegram.sent.find((c) => c.errorCode === 429);
          if (!call) throw new Error("no 429 yet");
          return call;
        },
        { timeout: 30_000, interval: 20 },
      );
      expect(proxies[0]!.count("sendMessage")).toBeGreaterThan(0); // the 429 went to process 0
      // Process 0 recorded the pause in Redis (and published it)…
      await vi.waitFor(async () => expect(await redis.pttl(`parley:telegram:${botId}:paused-until`)).toBeGreaterThan(0), { interval: 5 });
      // …and process 1, handed a message while it lasts, calls the Bot API only once it has passed.
      const posted = Date.now();
      await post(apps[1]!, 602, 9_101);
      expect(posted - limited.at).toBeLessThan(1_500);
      await vi.waitFor(() => expect(answered(601) && answered(602)).toBe(true), { timeout: 60_000, interval: 100 });
      const fromOne = proxies[1]!.calls.filter((c) => c.at >= posted);
      expect(fromOne.map((c) => c.method)).toContain("sendMessage");
      expect(Math.min(...fromOne.map((c) => c.at)) - limited.at).toBeGreaterThanOrEqual(1_950);
    } finally {
      await redis.quit();
    }
  });

  it("without Redis, each process paces only itself", { timeout: 120_000 }, async () => {
    await startBoth({});
    await postTopics();
    await vi.waitFor(() => expect(answeredTopics().size).toBe(TOPICS.length), { timeout: 60_000, interval: 100 });
    expect(Math.min(...proxies.map((p) => p.count("sendMessage")))).toBeGreaterThan(0);
    expect(Math.min(...gaps())).toBeLessThan(900);
  });
});

describe("Telegram's 429 pause shared through Redis, two channels of one bot (Redis on 127.0.0.1:6379)", () => {
  const lines: string[] = [];
  const log = pino({ level: "debug" }, { write: (line: string) => void lines.push(line) });
  let telegram: FakeTelegram;
  let botId: number;
  let clusters: Cluster[] = [];
  const cleanups: Array<() => Promise<unknown>> = [];

  beforeEach(async () => {
    lines.length = 0;
    // A bot of its own per test, and with it its own keys in Redis (parley:telegram:<bot id>:…).
    botId = randomInt(100_000_000, 999_999_999);
    telegram = await startFakeTelegram({ token: `${botId}:AAFakeTokenForPauseTests_abcdefghijklmno`, bot: { id: botId } });
  });
  afterEach(async () => {
    await Promise.all(clusters.map((c) => c.stop()));
    clusters = [];
    await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
    await telegram.close();
    if (redisUp) {
      const redis = new Redis(REDIS_URL);
      const keys = [...(await redis.keys(`b_parley:telegram:${botId}:*`)), ...(await redis.keys(`parley:telegram:${botId}:*`))];
      if (keys.length > 0) await redis.del(...keys);
      await redis.quit();
    }
  });

  /** What one Parley process would have: its own cluster (its own Redis connections) and its own Telegram channel. */
  const parleyProcess = async (redisUrl: string | undefined) => {
    const cluster = await createCluster({ database: { kind: "pglite", dataDir: "unused" }, ...(redisUrl ? { redisUrl } : {}), log });
    clusters.push(cluster);
    const { token } = telegram;
    const channel = createTelegramChannel({
      token, apiRoot: telegram.url, log, throttler: cluster.telegramThrottler(token), pause: cluster.telegramPause(token),
    });
    return { cluster, adapter: channel.adapter };
  };
  const callsTo = (chatId: number) => telegram.sent.filter((c) => c.method === "sendMessage" && Number(c.params.chat_id) === chatId);
  /** A first message from `a` that Telegram answers with a 429 of `seconds`; resolves with the time of that call. */
  const limitedSend = async (adapter: ChannelAdapter, seconds: number, chatId = 701) => {
    telegram.failNext("sendMessage", { error_code: 429, description: `Too Many Requests: retry after ${seconds}`, retry_after: seconds });
    const delivered = adapter.send(`telegram:${chatId}`, "first");
    const limited = await vi.waitFor(
      () => {
        const call = callsTo(chatId)[0];
        if (call?.errorCode !== 429) throw new Error("no 429 yet");
        return call;
      },
      { timeout: 10_000, interval: 5 },
    );
    return { limitedAt: limited.at, delivered };
  };
  const pttl = async () => {
    const redis = new Redis(REDIS_URL);
    try {
      return await redis.pttl(`parley:telegram:${botId}:paused-until`);
    } finally {
      await redis.quit();
    }
  };

  it("holds back the other channel until retry_after has passed, then delivers", { timeout: 30_000 }, async (ctx) => {
    if (!redisUp) ctx.skip("Redis is not reachable on 127.0.0.1:6379");
    const [a, b] = [await parleyProcess(REDIS_URL), await parleyProcess(REDIS_URL)];
    const { limitedAt, delivered } = await limitedSend(a.adapter, 2);
    await vi.waitFor(async () => expect(await pttl()).toBeGreaterThan(0), { interval: 5 });
    const tried = Date.now();
    await expect(b.adapter.send("telegram:702", "from B")).resolves.toMatchObject({ id: expect.any(String) });
    await delivered;
    expect(tried - limitedAt).toBeLessThan(1_000); // B tried well within the pause…
    const [fromB] = callsTo(702);
    expect(fromB!.at - limitedAt).toBeGreaterThanOrEqual(1_950); // …and reached Telegram only after it
    expect(fromB!.errorCode).toBeUndefined();
    expect(callsTo(701).map((c) => c.errorCode)).toEqual([429, undefined]);
    expect(callsTo(701)[1]!.at - limitedAt).toBeGreaterThanOrEqual(1_950);
  });

  it("tells a process that connects during the pause", { timeout: 30_000 }, async (ctx) => {
    if (!redisUp) ctx.skip("Redis is not reachable on 127.0.0.1:6379");
    const a = await parleyProcess(REDIS_URL);
    const { limitedAt, delivered } = await limitedSend(a.adapter, 2);
    await vi.waitFor(async () => expect(await pttl()).toBeGreaterThan(0), { interval: 5 });
    const b = await parleyProcess(REDIS_URL); // it missed the message: it reads the key when it has connected
    await vi.waitFor(() => expect(b.cluster.telegramPause(telegram.token)!.pausedUntil()).toBeGreaterThan(Date.now() + 500), { interval: 5 });
    await b.adapter.send("telegram:702", "from B");
    await delivered;
    expect(callsTo(702)[0]!.at - limitedAt).toBeGreaterThanOrEqual(1_950);
  });

  it("without Redis, the other process does not know of the pause (the control)", { timeout: 30_000 }, async () => {
    const [a, b] = [await parleyProcess(undefined), await parleyProcess(undefined)];
    const { limitedAt, delivered } = await limitedSend(a.adapter, 2);
    await b.adapter.send("telegram:702", "from B");
    expect(callsTo(702)[0]!.at - limitedAt).toBeLessThan(1_000);
    await delivered;
  });

  it("keeps the pause in the process, and sends, while Redis cannot be reached; says so once", { timeout: 30_000 }, async () => {
    // A port nothing listens on.
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, "127.0.0.1", () => {
        const { port: free } = server.address() as { port: number };
        server.close(() => resolve(free));
      });
    });
    const pauses = createSharedPauses({ redisUrl: `redis://127.0.0.1:${port}`, log });
    cleanups.push(() => pauses.stop());
    const adapter = createTelegramChannel({ token: telegram.token, apiRoot: telegram.url, log, pause: pauses.forKey("parley:telegram:down") }).adapter;
    // A 429: another chat of the bot waits it out all the same…
    const first = await limitedSend(adapter, 1, 701);
    await adapter.send("telegram:702", "held back");
    await first.delivered;
    expect(callsTo(702)[0]!.at - first.limitedAt).toBeGreaterThanOrEqual(950);
    expect(callsTo(701).map((c) => c.errorCode)).toEqual([429, undefined]);
    // …and so after a second one, which the log does not mention again.
    const second = await limitedSend(adapter, 1, 703);
    await adapter.send("telegram:704", "held back");
    await second.delivered;
    expect(callsTo(704)[0]!.at - second.limitedAt).toBeGreaterThanOrEqual(950);
    expect(lines.filter((line) => line.includes("shared Telegram pause is unreachable"))).toHaveLength(1);
  });
});
