import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { startParleyProcess, type ChildApp } from "../scripts/bench/processes.ts";
import { createLeadership, type Leadership } from "../src/cluster/leader.ts";
import { receiveAsLeaderOnly, runAsLeaderOnly } from "../src/cluster/leader-only.ts";
import { DeliveryError } from "../src/core/errors.ts";
import type { ChannelAdapter, ChannelStatus, OnMessage } from "../src/core/types.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { startFakeTelegram, type FakeTelegram } from "./fakes/telegram-api.ts";
import { startBotApiProxy, type BotApiProxy } from "./support/cluster.ts";
import { createTestDatabase, type TestDatabase } from "./support/databases.ts";
import { captureLogs } from "./support/logs.ts";

/**
 * Telegram long polling runs in one process of a cluster, chosen by a PostgreSQL advisory lock; when that process
 * dies, another takes over within a few seconds. PostgreSQL only: on PGlite there is one process, always the leader.
 */

const PG = process.env.TEST_DATABASE_URL;
const waitFor = <T>(check: () => T | Promise<T>, timeout = 10_000) => vi.waitFor(check, { timeout, interval: 50 });

/** A receiving adapter that only records its lifecycle. */
function fakeReceiver(log: string[], n: number): ChannelAdapter {
  let status: ChannelStatus = { state: "starting" };
  return {
    name: "telegram",
    limits: { maxText: 4096, canEdit: true, canDraft: true },
    async start(_onMessage: OnMessage, signal: AbortSignal) {
      log.push(`start ${n}`);
      status = { state: "running", detail: `receiver ${n}` };
      signal.addEventListener("abort", () => {
        log.push(`stop ${n}`);
        status = { state: "stopped" };
      });
    },
    send: async () => ({ id: "sent-by-sender?" }),
    status: () => status,
  };
}

/** Leadership the test hands out and takes away by hand. */
function manualLeadership(): Leadership & { set(leader: boolean): void } {
  const listeners = new Set<(leader: boolean) => void>();
  let leader = false;
  return {
    ready: Promise.resolve(),
    isLeader: () => leader,
    onChange(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    stop: async () => {},
    set(next) {
      leader = next;
      for (const listener of listeners) listener(next);
    },
  };
}

/** A whole channel (like a WhatsApp Web session) that records its lifecycle and what it sends. */
function fakeSession(events: string[], n: number): ChannelAdapter {
  let status: ChannelStatus = { state: "stopped", detail: "not started" };
  return {
    name: "whatsapp",
    limits: { maxText: 4096, canEdit: false, canDraft: false },
    async start(_onMessage: OnMessage, signal: AbortSignal) {
      events.push(`start ${n}`);
      status = { state: "running", detail: `session ${n}` };
      signal.addEventListener("abort", () => {
        events.push(`stop ${n}`);
        status = { state: "stopped" };
      });
    },
    send: async (_chat, text) => (events.push(`send ${n}: ${text}`), { id: `${n}-${text}` }),
    sendFile: async (_chat, file) => (events.push(`file ${n}: ${file.name}`), { id: `${n}-${file.name}` }),
    typing: async () => void events.push(`typing ${n}`),
    download: async () => new Uint8Array([n]),
    status: () => status,
  };
}

describe("a whole channel that runs only in the leader (runAsLeaderOnly)", () => {
  const STANDBY = "standby: another Parley process runs the WhatsApp session";
  const file = { name: "export.jsonl", mimeType: "application/x-ndjson", bytes: new Uint8Array([123, 125]) };

  async function refused(promise: Promise<unknown>): Promise<DeliveryError> {
    const error = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DeliveryError);
    expect((error as DeliveryError).retryable).toBe(true);
    expect((error as DeliveryError).message).toContain(STANDBY);
    return error as DeliveryError;
  }

  it("runs, sends and downloads only while leading; a standby refuses retryably and says it stands by", async () => {
    const events: string[] = [];
    const leadership = manualLeadership();
    let made = 0;
    const channel = runAsLeaderOnly({ leadership, create: () => fakeSession(events, ++made), standbyDetail: STANDBY, log: captureLogs().log });
    const { adapter } = channel;
    // The first adapter is made at once (its members are the channel's), but not started.
    expect(made).toBe(1);
    expect([adapter.name, adapter.limits.canEdit, typeof adapter.sendFile, typeof adapter.typing, typeof adapter.download]).toEqual([
      "whatsapp", false, "function", "function", "function",
    ]);
    expect(adapter.edit).toBeUndefined();
    expect(adapter.draft).toBeUndefined();
    expect(adapter.status()).toEqual({ state: "starting" });

    const lifetime = new AbortController();
    await adapter.start(async () => {}, lifetime.signal);
    expect(adapter.status()).toEqual({ state: "running", detail: STANDBY });
    expect(channel.leads()).toBe(false);
    expect((await refused(adapter.send("whatsapp:1@c.us", "hi"))).message).toMatch(/^cannot send on whatsapp from this process/);
    await refused(adapter.sendFile!("whatsapp:1@c.us", file));
    await refused(adapter.typing!("whatsapp:1@c.us"));
    await refused(adapter.download!({ kind: "image", ref: "x" }, 10, lifetime.signal));
    expect(events).toEqual([]);

    leadership.set(true);
    await vi.waitFor(() => expect(events).toEqual(["start 1"]));
    expect(channel.leads()).toBe(true);
    expect(adapter.status()).toEqual({ state: "running", detail: "session 1" });
    expect(await adapter.send("whatsapp:1@c.us", "hello")).toEqual({ id: "1-hello" });
    expect(await adapter.sendFile!("whatsapp:1@c.us", file)).toEqual({ id: "1-export.jsonl" });
    expect(await adapter.download!({ kind: "image", ref: "x" }, 10, lifetime.signal)).toEqual(new Uint8Array([1]));

    leadership.set(false);
    expect(events.slice(-1)).toEqual(["stop 1"]);
    expect(channel.leads()).toBe(false);
    expect(adapter.status()).toEqual({ state: "running", detail: STANDBY });
    await refused(adapter.send("whatsapp:1@c.us", "after the hand-over"));

    // A new term gets a new adapter: one starts only once.
    leadership.set(true);
    await vi.waitFor(() => expect(events.slice(-1)).toEqual(["start 2"]));
    expect(made).toBe(2);
    expect(await adapter.send("whatsapp:1@c.us", "again")).toEqual({ id: "2-again" });

    lifetime.abort();
    expect(events).toEqual(["start 1", "send 1: hello", "file 1: export.jsonl", "stop 1", "start 2", "send 2: again", "stop 2"]);
    expect(channel.leads()).toBe(false);
    expect(adapter.status()).toEqual({ state: "stopped" });
    await refused(adapter.send("whatsapp:1@c.us", "while stopping"));
    leadership.set(false);
    leadership.set(true);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(made).toBe(2);
  });

  it("starts at once in the process that already leads", async () => {
    const events: string[] = [];
    const leadership = manualLeadership();
    leadership.set(true);
    const channel = runAsLeaderOnly({ leadership, create: () => fakeSession(events, 1), standbyDetail: STANDBY, log: captureLogs().log });
    const lifetime = new AbortController();
    await channel.adapter.start(async () => {}, lifetime.signal);
    expect(events).toEqual(["start 1"]);
    expect(channel.leads()).toBe(true);
    await expect(channel.adapter.start(async () => {}, lifetime.signal)).rejects.toThrow(/already started/);
    lifetime.abort();
  });
});

describe("leadership on PGlite", () => {
  it("is the leader from the start: one process only", async () => {
    const leadership = createLeadership({ target: { kind: "pglite", dataDir: "memory://" }, key: "anything", log: captureLogs().log });
    await leadership.ready;
    expect(leadership.isLeader()).toBe(true);
    await leadership.stop();
  });
});

describe.skipIf(!PG)("leadership with an advisory lock (PostgreSQL; skipped without TEST_DATABASE_URL)", () => {
  let db: TestDatabase;
  const started: Leadership[] = [];
  const lead = (key: string) => {
    const leadership = createLeadership({ target: db.target, key, log: captureLogs().log, pollMs: 150 });
    started.push(leadership);
    return leadership;
  };

  beforeEach(async () => {
    db = await createTestDatabase("postgres");
  });
  afterEach(async () => {
    await Promise.all(started.splice(0).map((l) => l.stop()));
    await db.drop();
  });

  it("gives the lock to one of two, and to the other when the first stops", async () => {
    const first = lead("telegram-polling:1");
    await first.ready;
    const second = lead("telegram-polling:1");
    await second.ready;
    const other = lead("telegram-polling:2");
    await other.ready;
    expect([first.isLeader(), second.isLeader(), other.isLeader()]).toEqual([true, false, true]);

    const changes: boolean[] = [];
    second.onChange((leader) => changes.push(leader));
    await first.stop();
    await waitFor(() => expect(second.isLeader()).toBe(true), 3_000);
    expect(changes).toEqual([true]);
  });

  it("receives only while leading, says standby otherwise, and sends either way", async () => {
    const events: string[] = [];
    const sent: string[] = [];
    const sender: ChannelAdapter = { ...fakeReceiver(events, 0), send: async (_chat, text) => (sent.push(text), { id: "1" }) };
    const holder = lead("telegram-polling:9");
    await holder.ready;
    let receivers = 0;
    const channel = receiveAsLeaderOnly({
      leadership: lead("telegram-polling:9"),
      sender,
      createReceiver: () => fakeReceiver(events, ++receivers),
      standbyDetail: "standby: another Parley process receives Telegram updates",
      log: captureLogs().log,
    });
    const lifetime = new AbortController();
    await channel.start(async () => {}, lifetime.signal);
    expect(channel.status()).toEqual({ state: "running", detail: "standby: another Parley process receives Telegram updates" });
    expect(events).toEqual([]);
    await channel.send("telegram:1", "from the standby");
    expect(sent).toEqual(["from the standby"]);

    await holder.stop();
    await waitFor(() => expect(events).toEqual(["start 1"]), 3_000);
    expect(channel.status()).toEqual({ state: "running", detail: "receiver 1" });
    lifetime.abort();
    expect(events).toEqual(["start 1", "stop 1"]);
  });
});

describe.skipIf(!PG)("two Parley processes with Telegram long polling (PostgreSQL; skipped without TEST_DATABASE_URL)", () => {
  let db: TestDatabase;
  let telegram: FakeTelegram;
  let model: FakeOpenAIServer;
  const proxies: BotApiProxy[] = [];
  const apps: ChildApp[] = [];

  const start = (proxy: BotApiProxy, name: string) =>
    startParleyProcess(
      {
        ...db.env,
        TELEGRAM_BOT_TOKEN: telegram.token,
        TELEGRAM_API_ROOT: proxy.url,
        MODELS_INSTANT: "openai-compatible:leader-model",
        OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1`,
        OPENAI_COMPATIBLE_API_KEY: "sk-cluster-test-0123456789",
        ACCESS_POLICY: "open",
      },
      { name },
    ).then((app) => (apps.push(app), app));
  const replies = (chatId: number) =>
    telegram.sent.filter((c) => c.method === "sendMessage" && c.params.chat_id === chatId && c.errorCode === undefined).map((c) => c.params.text);

  beforeAll(async () => {
    db = await createTestDatabase("postgres");
    telegram = await startFakeTelegram();
    model = await startFakeOpenAIServer();
    proxies.push(await startBotApiProxy(telegram.url), await startBotApiProxy(telegram.url));
  });
  afterAll(async () => {
    await Promise.all(apps.map((app) => app.stop()));
    await Promise.all([...proxies.map((p) => p.close()), telegram?.close(), model?.close()]);
    await db?.drop();
  });

  it("polls from one process only, and from the other within seconds of the first one dying", { timeout: 90_000 }, async () => {
    const [proxyA, proxyB] = proxies as [BotApiProxy, BotApiProxy];
    const a = await start(proxyA, "parley-a");
    const b = await start(proxyB, "parley-b");
    telegram.pushUpdate(telegram.updates.privateText("who answers?", { userId: 31 }));
    await waitFor(() => expect(replies(31)).toEqual(["echo: who answers?"]));
    await sleep(1_000);
    expect(proxyA.count("getUpdates")).toBeGreaterThan(0);
    expect(proxyB.count("getUpdates")).toBe(0);
    await b.waitForLine(/"msg":"Parley is running"/);

    a.kill("SIGKILL");
    await a.exited;
    const killedAt = Date.now();
    telegram.pushUpdate(telegram.updates.privateText("still there?", { userId: 32 }));
    await waitFor(() => expect(proxyB.count("getUpdates")).toBeGreaterThan(0), 15_000);
    const takeoverMs = proxyB.calls.find((c) => c.method === "getUpdates")!.at - killedAt;
    expect(takeoverMs).toBeLessThan(8_000);
    await waitFor(() => expect(replies(32)).toEqual(["echo: still there?"]));
    await b.waitForLine(/this process is now the leader/);
  });
});

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
