import { request } from "node:http";
import os from "node:os";
import type { Request } from "express";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { metricsAccess } from "../src/observability/metrics.ts";
import { type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { type FakeTelegram } from "./fakes/telegram-api.ts";
import { DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { startTestParley, type TestParley } from "./support/parley.ts";
import { closeScene, openScene, sceneEnv } from "./support/scene.ts";

const MODEL = "metrics-model";
const TOKEN = "metrics-token-0123456789abcdef";
const waitFor = <T>(check: () => T | Promise<T>) => vi.waitFor(check, { timeout: 10_000, interval: 50 });

/** The value of one sample line, e.g. value(text, 'parley_messages_received_total{channel="telegram"}'). */
function value(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** A GET with full control of the headers (fetch would not send some) and the local address. */
function get(url: string, headers: Record<string, string> = {}, localAddress?: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, ...(localAddress ? { localAddress } : {}) }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"] ?? ""), body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe.each(DATABASE_KINDS)("/metrics through Parley's HTTP server on %s", (kind) => {
  let db: TestDatabase;
  let telegram: FakeTelegram;
  let model: FakeOpenAIServer;
  let parley: TestParley | undefined;

  const start = async (extra: Record<string, string> = {}) =>
    (parley = await startTestParley(db, {
      ...sceneEnv({ telegram, model }, MODEL),
      ...extra,
    }));
  const replies = (chatId: number) =>
    telegram.sent.filter((c) => c.method === "sendMessage" && c.params.chat_id === chatId && c.errorCode === undefined);

  beforeEach(async () => {
    ({ db, telegram, model } = await openScene(kind));
  });
  afterEach(async () => {
    await parley?.stop();
    parley = undefined;
    await closeScene({ db, telegram, model });
  });

  it("counts messages, replies, model calls and the queue, in Prometheus' text format", async () => {
    await start();
    model.replyOnce(MODEL, { delayMs: 1_500 });
    telegram.pushUpdate(telegram.updates.privateText("first", { userId: 61 }));
    await waitFor(() => expect(model.requestsFor(MODEL)).toHaveLength(1));

    // While the model works, the message is in the queue.
    const during = await get(`${parley!.url}/metrics`);
    expect(during.status).toBe(200);
    expect(during.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(value(during.body, 'parley_inbox_messages{state="working"}')).toBe(1);
    expect(value(during.body, 'parley_inbox_messages{state="pending"}')).toBe(0);
    expect(value(during.body, 'parley_messages_received_total{channel="telegram"}')).toBe(1);

    await waitFor(() => expect(replies(61)).toHaveLength(1));
    model.replyOnce(MODEL, { error: { status: 400, message: "bad request" } });
    telegram.pushUpdate(telegram.updates.privateText("second", { userId: 62 }));
    await waitFor(() => expect(replies(62)).toHaveLength(1));

    const after = await waitFor(async () => {
      const { body } = await get(`${parley!.url}/metrics`);
      expect(value(body, 'parley_reply_latency_seconds_count{channel="telegram"}')).toBe(2);
      return body;
    });
    expect(value(after, 'parley_messages_received_total{channel="telegram"}')).toBe(2);
    expect(value(after, 'parley_model_calls_total{provider="openai-compatible",purpose="answer",outcome="ok"}')).toBeGreaterThanOrEqual(1);
    expect(value(after, 'parley_model_calls_total{provider="openai-compatible",purpose="answer",outcome="error"}')).toBeGreaterThanOrEqual(1);
    expect(value(after, 'parley_model_call_duration_seconds_count{provider="openai-compatible",outcome="ok"}')).toBeGreaterThanOrEqual(1);
    // The first reply waited for a 1.5 s model: it is past the 1 s bucket.
    expect(value(after, 'parley_reply_latency_seconds_bucket{le="1",channel="telegram"}')).toBeLessThanOrEqual(1);
    expect(value(after, 'parley_reply_latency_seconds_bucket{le="+Inf",channel="telegram"}')).toBe(2);
    expect(value(after, 'parley_inbox_messages{state="working"}')).toBe(0);
    // Process metrics, from this registry.
    expect(value(after, "process_cpu_user_seconds_total")).toBeGreaterThan(0);
    expect(after).toContain("nodejs_eventloop_lag_seconds");
  });

  it("answers only loopback peers talking to it directly when no token is set", async () => {
    await start({ HOST: "0.0.0.0" });
    const port = new URL(parley!.url).port;
    expect((await get(`http://127.0.0.1:${port}/metrics`)).status).toBe(200);
    const proxied = await get(`http://127.0.0.1:${port}/metrics`, { "X-Forwarded-For": "203.0.113.9" });
    expect(proxied.status).toBe(403);
    expect(proxied.body).toContain("METRICS_TOKEN");
    // A peer on another interface of this machine, when it has one.
    const external = Object.values(os.networkInterfaces())
      .flat()
      .find((i) => i && i.family === "IPv4" && !i.internal)?.address;
    if (external) expect((await get(`http://${external}:${port}/metrics`, {}, external)).status).toBe(403);
  });

  it("requires the bearer token when METRICS_TOKEN is set, from loopback too", async () => {
    await start({ METRICS_TOKEN: TOKEN });
    const url = `${parley!.url}/metrics`;
    const missing = await get(url);
    expect(missing.status).toBe(401);
    expect((await get(url, { Authorization: "Bearer not-the-token-0123456789" })).status).toBe(401);
    expect((await get(url, { Authorization: `Basic ${TOKEN}` })).status).toBe(401);
    const ok = await get(url, { Authorization: `Bearer ${TOKEN}` });
    expect(ok.status).toBe(200);
    expect(ok.body).toContain("parley_messages_received_total");
    expect(parley!.logs.text()).not.toContain(TOKEN);
  });
});

describe("who may read /metrics", () => {
  const req = (remoteAddress: string, headers: Record<string, string> = {}) =>
    ({ socket: { remoteAddress }, get: (name: string) => headers[name.toLowerCase()] }) as unknown as Request;

  it.each([
    ["127.0.0.1", {}, "ok"],
    ["127.8.9.10", {}, "ok"],
    ["::1", {}, "ok"],
    ["::ffff:127.0.0.1", {}, "ok"],
    ["10.1.2.3", {}, "forbidden"],
    ["::ffff:192.168.1.4", {}, "forbidden"],
    ["2001:db8::1", {}, "forbidden"],
    ["127.0.0.1", { "x-forwarded-for": "198.51.100.7" }, "forbidden"],
    ["127.0.0.1", { forwarded: "for=198.51.100.7" }, "forbidden"],
  ])("without a token: %s %j is %s", (address, headers, verdict) => {
    expect(metricsAccess(undefined)(req(address, headers))).toBe(verdict);
  });

  it.each([
    [`Bearer ${TOKEN}`, "ok"],
    [`bearer ${TOKEN}`, "ok"],
    [`Bearer ${TOKEN}x`, "unauthorized"],
    [`Bearer ${TOKEN.slice(0, -1)}`, "unauthorized"],
    ["Bearer", "unauthorized"],
    [undefined, "unauthorized"],
  ])("with a token, from anywhere: %s is %s", (authorization, verdict) => {
    const headers: Record<string, string> = authorization === undefined ? {} : { authorization };
    expect(metricsAccess(TOKEN)(req("10.1.2.3", headers))).toBe(verdict);
  });
});
