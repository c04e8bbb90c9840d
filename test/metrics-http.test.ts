import { request } from "node:http";
import os from "node:os";
import type { Client } from "../src/http/client.ts";
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

  it("refuses a local request that carries any forwarding header or a Host that is not loopback", async () => {
    await start();
    const url = `${parley!.url}/metrics`;
    expect((await get(url)).status).toBe(200);
    expect((await get(url, { Host: "localhost:9090" })).status).toBe(200);
    const refused: Array<Record<string, string>> = [
      { "X-Forwarded-For": "203.0.113.9" },
      { "X-Real-IP": "203.0.113.9" },
      { "X-Forwarded-Host": "parley.example.com" },
      { "X-Forwarded-Proto": "https" },
      { "X-Forwarded-Port": "443" },
      { "X-Forwarded-Server": "proxy" },
      { Forwarded: "for=203.0.113.9;proto=https" },
      { Via: "1.1 proxy" },
      { "True-Client-IP": "203.0.113.9" },
      { "CF-Connecting-IP": "203.0.113.9" },
      { Host: "parley.example.com" },
      { Host: "203.0.113.9:3000" },
    ];
    for (const headers of refused) {
      const res = await get(url, headers);
      expect(res.status, JSON.stringify(headers)).toBe(403);
      expect(res.body).not.toContain("parley_");
    }
  });

  it("with TRUST_PROXY, a request through the trusted proxy is a remote client and needs the token", async () => {
    await start({ TRUST_PROXY: "loopback" });
    const url = `${parley!.url}/metrics`;
    expect((await get(url)).status).toBe(200);
    expect((await get(url, { "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https" })).status).toBe(403);
    // Even when the client behind the proxy is on this machine: the proxy is how the internet gets in.
    expect((await get(url, { "X-Forwarded-For": "127.0.0.1" })).status).toBe(403);
    // A trusted proxy that names no client (no X-Forwarded-For) still said it forwarded the request.
    expect((await get(url, { "X-Forwarded-Host": "parley.example.com", "X-Forwarded-Proto": "https" })).status).toBe(403);
    await parley!.stop();

    await start({ TRUST_PROXY: "loopback", METRICS_TOKEN: TOKEN });
    const tokenUrl = `${parley!.url}/metrics`;
    expect((await get(tokenUrl, { "X-Forwarded-For": "203.0.113.9" })).status).toBe(401);
    expect((await get(tokenUrl, { "X-Forwarded-For": "203.0.113.9", Authorization: `Bearer ${TOKEN}` })).status).toBe(200);
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
  const req = (address: string, via: Client["via"] = "direct", host = "127.0.0.1:3000", authorization?: string) => ({
    client: { address, via },
    host,
    authorization,
  });

  it.each([
    ["127.0.0.1", "direct", "127.0.0.1:3000", "ok"],
    ["127.8.9.10", "direct", "localhost:3000", "ok"],
    ["::1", "direct", "[::1]:3000", "ok"],
    ["::ffff:127.0.0.1", "direct", "localhost", "ok"],
    ["127.0.0.1", "direct", "LOCALHOST:9", "ok"],
    ["10.1.2.3", "direct", "127.0.0.1:3000", "forbidden"],
    ["::ffff:192.168.1.4", "direct", "127.0.0.1:3000", "forbidden"],
    ["2001:db8::1", "direct", "127.0.0.1:3000", "forbidden"],
    ["127.0.0.1", "untrusted-proxy", "127.0.0.1:3000", "forbidden"],
    ["127.0.0.1", "trusted-proxy", "127.0.0.1:3000", "forbidden"],
    ["127.0.0.1", "direct", "parley.example.com", "forbidden"],
    ["127.0.0.1", "direct", "203.0.113.9:3000", "forbidden"],
    ["127.0.0.1", "direct", "localhost.example.com", "forbidden"],
    ["127.0.0.1", "direct", "127.0.0.1@evil.example", "forbidden"],
    ["127.0.0.1", "direct", "[::1]:3000, evil.example", "forbidden"],
    ["127.0.0.1", "direct", "", "forbidden"],
  ] as const)("without a token: %s %s Host %j is %s", (address, via, host, verdict) => {
    expect(metricsAccess(undefined)(req(address, via, host))).toBe(verdict);
  });

  it("without a token: a request without Host is refused", () => {
    expect(metricsAccess(undefined)({ client: { address: "127.0.0.1", via: "direct" }, host: undefined, authorization: undefined })).toBe("forbidden");
  });

  it.each([
    [`Bearer ${TOKEN}`, "ok"],
    [`bearer ${TOKEN}`, "ok"],
    [`Bearer ${TOKEN}x`, "unauthorized"],
    [`Bearer ${TOKEN.slice(0, -1)}`, "unauthorized"],
    ["Bearer", "unauthorized"],
    [undefined, "unauthorized"],
  ])("with a token, from anywhere: %s is %s", (authorization, verdict) => {
    expect(metricsAccess(TOKEN)(req("10.1.2.3", "untrusted-proxy", "parley.example.com", authorization))).toBe(verdict);
  });
});
