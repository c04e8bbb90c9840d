import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createTelegramChannel } from "../channels/telegram/adapter.ts";
import { UpdateLedger } from "../channels/telegram/update-ledger.ts";
import type { InboundMessage, OnMessage } from "../src/core/types.ts";
import { startFakeTelegram, type FakeTelegram } from "./fakes/telegram-api.ts";

function captureLog() {
  const lines: string[] = [];
  return { log: pino({ level: "debug" }, { write: (line: string) => void lines.push(line) }), text: () => lines.join("") };
}

let fake: FakeTelegram;
const stops: AbortController[] = [];

beforeEach(async () => {
  fake = await startFakeTelegram();
});
afterEach(async () => {
  for (const c of stops.splice(0)) c.abort();
  await fake.close();
});

function startChannel(onMessage: OnMessage, token = fake.token) {
  const logs = captureLog();
  const { adapter, webhookHandler } = createTelegramChannel({ token, apiRoot: fake.url, log: logs.log });
  const controller = new AbortController();
  stops.push(controller);
  const started = adapter.start(onMessage, controller.signal);
  return { adapter, webhookHandler, logs, started, stop: () => controller.abort() };
}

const waitFor = (check: () => void, timeout = 4000) => vi.waitFor(check, { timeout, interval: 20 });

describe("long polling", () => {
  it("delivers messages in order per chat, then confirms them to Telegram", async () => {
    for (const text of ["a1", "a2", "a3"]) fake.pushUpdate(fake.updates.privateText(text, { userId: 1 }));
    for (const text of ["b1", "b2"]) fake.pushUpdate(fake.updates.privateText(text, { userId: 2 }));
    const received: InboundMessage[] = [];
    const { adapter, started, webhookHandler } = startChannel(async (m) => {
      await new Promise((r) => setTimeout(r, m.text === "a1" ? 50 : 1)); // a slow first message must not be overtaken
      received.push(m);
    });
    await started;
    expect(webhookHandler).toBeUndefined();
    expect(adapter.status()).toMatchObject({ state: "running", detail: "long polling as @ParleyTestBot" });
    await waitFor(() => expect(received).toHaveLength(5));
    expect(received.filter((m) => m.chat === "telegram:1").map((m) => m.text)).toEqual(["a1", "a2", "a3"]);
    expect(received.filter((m) => m.chat === "telegram:2").map((m) => m.text)).toEqual(["b1", "b2"]);
    await waitFor(() => expect(fake.pending()).toHaveLength(0));
  });

  it("delivers a message again when onMessage rejects, without confirming it in between", async () => {
    const update = fake.pushUpdate(fake.updates.privateText("remember me", { userId: 3 }));
    const calls: Array<{ id: string; stillPending: boolean }> = [];
    const { started, logs } = startChannel(async (m) => {
      calls.push({ id: m.platformMessageId, stillPending: fake.pending().some((u) => u.update_id === update.update_id) });
      if (calls.length === 1) throw new Error("database unavailable");
    });
    await started;
    await waitFor(() => expect(calls).toHaveLength(2));
    expect(calls[1]).toEqual({ id: calls[0]!.id, stillPending: true });
    expect(calls[0]!.id).toBe(`3:${update.message!.message_id}`);
    await waitFor(() => expect(fake.pending()).toHaveLength(0));
    expect(logs.text()).toContain("storing a Telegram message failed; retrying");
  });

  it("keeps an unstored update at Telegram across a restart while other chats keep flowing", async () => {
    const stuck = fake.pushUpdate(fake.updates.privateText("stuck", { userId: 10 }));
    fake.pushUpdate(fake.updates.privateText("flowing", { userId: 11 }));
    const first: string[] = [];
    const one = startChannel(async (m) => {
      first.push(m.text);
      if (m.text === "stuck") throw new Error("cannot store this one yet");
    });
    await one.started;
    await waitFor(() => expect(first.filter((t) => t === "stuck").length).toBeGreaterThanOrEqual(2));
    expect(first).toContain("flowing");
    one.stop();
    await waitFor(() => expect(one.adapter.status().state).toBe("stopped"));
    expect(fake.pending().map((u) => u.update_id)).toContain(stuck.update_id);

    const second: string[] = [];
    const two = startChannel(async (m) => void second.push(m.text));
    await two.started;
    await waitFor(() => expect(second).toContain("stuck"));
    await waitFor(() => expect(fake.pending()).toHaveLength(0));
  });

  it("stops when the signal aborts and reports stopped", async () => {
    const received: string[] = [];
    const { adapter, started, stop } = startChannel(async (m) => void received.push(m.text));
    await started;
    fake.pushUpdate(fake.updates.privateText("before", { userId: 20 }));
    await waitFor(() => expect(received).toEqual(["before"]));
    stop();
    await waitFor(() => expect(adapter.status()).toEqual({ state: "stopped" }));
    fake.pushUpdate(fake.updates.privateText("after", { userId: 20 }));
    await new Promise((r) => setTimeout(r, 200));
    expect(received).toEqual(["before"]);
  });

  it("deletes a webhook left from before (getUpdates would answer 409), keeping its pending updates", async () => {
    fake.presetWebhook("https://old.example/hook", "old-secret");
    fake.pushUpdate(fake.updates.privateText("queued while the webhook was set", { userId: 30 }));
    const received: string[] = [];
    const { started } = startChannel(async (m) => void received.push(m.text));
    await started;
    expect(fake.webhook()).toBeUndefined();
    await waitFor(() => expect(received).toEqual(["queued while the webhook was set"]));
    expect(fake.sent.find((c) => c.method === "deleteWebhook")?.params.drop_pending_updates).toBeUndefined();
  });

  it("reports a rejected token as failed without throwing or logging the token", async () => {
    const wrong = "987654321:WrongTokenWrongTokenWrongTokenWrong12";
    const { adapter, started, logs } = startChannel(async () => {}, wrong);
    await expect(started).resolves.toBeUndefined();
    expect(adapter.status()).toEqual({
      state: "failed",
      detail: "TELEGRAM_BOT_TOKEN was rejected by Telegram (Call to 'getMe' failed! (401: Unauthorized))",
    });
    expect(logs.text()).toContain("Telegram rejected the bot token");
    expect(logs.text()).not.toContain(wrong);
    expect(logs.text()).not.toContain("WrongToken");
  });

  it("reports a getUpdates conflict (another instance) as failed", async () => {
    fake.failNext("getUpdates", { error_code: 409, description: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running" });
    const { adapter, started } = startChannel(async () => {});
    await started;
    await waitFor(() => expect(adapter.status().state).toBe("failed"));
    expect(adapter.status().detail).toMatch(/^another process receives this bot's updates \(.*409: Conflict/);
  });

  it("refuses to start twice", async () => {
    const { adapter, started } = startChannel(async () => {});
    await started;
    await expect(adapter.start(async () => {}, new AbortController().signal)).rejects.toThrow(/already started/);
  });
});

describe("UpdateLedger", () => {
  it("never offers an offset past an update in flight and hands each update out once", () => {
    const ledger = new UpdateLedger();
    const ids = (list: Array<{ update_id: number }>) => list.map((u) => u.update_id);
    expect(ledger.offset()).toBe(0);
    ledger.requested(0);
    expect(ids(ledger.accept([{ update_id: 5 }, { update_id: 6 }, { update_id: 7 }]))).toEqual([5, 6, 7]);
    expect(ledger.offset()).toBe(5);
    ledger.complete(6);
    ledger.complete(7);
    expect(ledger.offset()).toBe(5);
    // Telegram answers from 5 again: only the new one is fresh.
    ledger.requested(ledger.offset());
    expect(ids(ledger.accept([{ update_id: 5 }, { update_id: 6 }, { update_id: 7 }, { update_id: 8 }]))).toEqual([8]);
    ledger.complete(5);
    expect(ledger.offset()).toBe(8);
    ledger.requested(8);
    expect(ids(ledger.accept([{ update_id: 8 }]))).toEqual([]);
    ledger.complete(8);
    expect(ledger.offset()).toBe(9);
    expect(ledger.inFlight()).toBe(0);
  });

  it("does not hand out again what an answer to an older request still carries", () => {
    const ledger = new UpdateLedger();
    const ids = (list: Array<{ update_id: number }>) => list.map((u) => u.update_id);
    ledger.requested(ledger.offset());
    ledger.accept([{ update_id: 5 }, { update_id: 6 }]);
    ledger.requested(ledger.offset()); // getUpdates(offset 5) under way…
    ledger.complete(5);
    ledger.complete(6);
    expect(ids(ledger.accept([{ update_id: 5 }, { update_id: 6 }]))).toEqual([]); // …answers with both
    ledger.requested(ledger.offset());
    expect(ledger.lastRequested()).toBe(7);
    expect(ids(ledger.accept([{ update_id: 7 }]))).toEqual([7]);
  });

  it("settles when an update completes", async () => {
    const ledger = new UpdateLedger();
    ledger.accept([{ update_id: 1 }]);
    const settled = ledger.settled(10_000, new AbortController().signal);
    ledger.complete(1);
    await expect(settled).resolves.toBeUndefined();
  });
});
