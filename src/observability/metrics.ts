import { createHash, timingSafeEqual } from "node:crypto";
import { BlockList, isIP } from "node:net";
import type { RequestHandler } from "express";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { ChannelName } from "../core/types.ts";
import type { Client, Clients } from "../http/client.ts";
import type { Inbox, InboxItem } from "../inbox/inbox.ts";

/**
 * Prometheus metrics of one Parley process, in a registry of its own (never prom-client's global one, so two
 * Parleys in one process, as in tests, do not share counters):
 *
 * - parley_messages_received_total{channel}: messages stored in the inbox (redeliveries not counted);
 * - parley_reply_latency_seconds{channel}: from the message being stored to its reply being delivered;
 * - parley_model_calls_total{provider,purpose,outcome} and parley_model_call_duration_seconds{provider,outcome};
 * - parley_inbox_messages{state="pending"|"working"}: the shared queue's depth, read with one query per scrape;
 * - the process metrics of prom-client (CPU, memory, event loop lag, handles, GC).
 */

export interface ModelCallObservation {
  provider: string;
  purpose: string;
  ok: boolean;
  latencyMs: number;
}

export interface QueueDepth {
  pending: number;
  working: number;
}

export interface Metrics {
  readonly registry: Registry;
  messageReceived(channel: ChannelName): void;
  replyDelivered(channel: ChannelName, seconds: number): void;
  modelCall(call: ModelCallObservation): void;
}

export function createMetrics(deps: { queueDepth: () => Promise<QueueDepth> }): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const received = new Counter({
    name: "parley_messages_received_total",
    help: "Messages stored in the inbox, by channel (redeliveries of a stored message are not counted).",
    labelNames: ["channel"] as const,
    registers: [registry],
  });
  const replyLatency = new Histogram({
    name: "parley_reply_latency_seconds",
    help: "Time from a message being stored to its reply being delivered, by channel.",
    labelNames: ["channel"] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300],
    registers: [registry],
  });
  const modelCalls = new Counter({
    name: "parley_model_calls_total",
    help: "Model calls (each attempt of a fallback chain), by provider, purpose and outcome.",
    labelNames: ["provider", "purpose", "outcome"] as const,
    registers: [registry],
  });
  const modelLatency = new Histogram({
    name: "parley_model_call_duration_seconds",
    help: "Duration of one model call, by provider and outcome.",
    labelNames: ["provider", "outcome"] as const,
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120],
    registers: [registry],
  });
  new Gauge({
    name: "parley_inbox_messages",
    help: "Inbox rows waiting to be answered (pending) or being answered (working), across all processes.",
    labelNames: ["state"] as const,
    registers: [registry],
    async collect() {
      try {
        const depth = await deps.queueDepth();
        this.set({ state: "pending" }, depth.pending);
        this.set({ state: "working" }, depth.working);
      } catch {
        // Database unreachable: no value is better than a stale one (readiness reports the outage).
        this.reset();
      }
    },
  });

  return {
    registry,
    messageReceived: (channel) => received.inc({ channel }),
    replyDelivered: (channel, seconds) => replyLatency.observe({ channel }, seconds),
    modelCall: (call) => {
      const outcome = call.ok ? "ok" : "error";
      modelCalls.inc({ provider: call.provider, purpose: call.purpose, outcome });
      modelLatency.observe({ provider: call.provider, outcome }, call.latencyMs / 1000);
    },
  };
}

/**
 * The inbox, observed: a row completed is a reply delivered, so its time since being stored goes into the reply
 * latency histogram. Claims made by this process are remembered until they end, whichever way.
 */
export function instrumentInbox(inbox: Inbox, metrics: Pick<Metrics, "replyDelivered">, now: () => number = Date.now): Inbox {
  const claimed = new Map<number, { channel: ChannelName; storedAt: number }>();
  const forget = <A extends unknown[]>(end: (id: number, ...rest: A) => Promise<void>) =>
    async (id: number, ...rest: A) => {
      claimed.delete(id);
      await end(id, ...rest);
    };
  const remember = (item: InboxItem | null | undefined) => {
    if (item?.storedAt) claimed.set(item.id, { channel: item.message.channel, storedAt: item.storedAt.getTime() });
  };
  return {
    ...inbox,
    async accept(message, options) {
      const accepted = await inbox.accept(message, options);
      remember(accepted.claimed);
      return accepted;
    },
    async claim(channels) {
      const item = await inbox.claim(channels);
      remember(item);
      return item;
    },
    async complete(id, delivered) {
      const claim = claimed.get(id);
      claimed.delete(id);
      await inbox.complete(id, delivered);
      if (claim) metrics.replyDelivered(claim.channel, Math.max(0, now() - claim.storedAt) / 1000);
    },
    ignore: forget(inbox.ignore),
    fail: forget(inbox.fail),
    retryLater: forget(inbox.retryLater),
  };
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

function isLoopbackAddress(address: string): boolean {
  const family = isIP(address);
  return family !== 0 && LOOPBACK.check(address, family === 4 ? "ipv4" : "ipv6");
}

/** A Host header naming this machine's loopback: localhost, 127.x.y.z or [::1], with or without a port. */
function isLoopbackHost(host: string | undefined): boolean {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::\d{1,5})?$/.exec(host ?? "");
  if (!match) return false;
  const name = (match[1] ?? match[2]!).toLowerCase();
  return name === "localhost" || isLoopbackAddress(name);
}

const digest = (value: string) => createHash("sha256").update(value, "utf8").digest();

/** What /metrics decides on: the client (src/http/client.ts), the Host header and the Authorization header. */
export interface MetricsRequest {
  client: Pick<Client, "address" | "via">;
  host: string | undefined;
  authorization: string | undefined;
}

/**
 * Who may read /metrics. With a token: anyone presenting `Authorization: Bearer <token>` (compared in constant
 * time). Without: only a scraper on this machine talking to Parley directly: a loopback client address, a loopback
 * Host, and no forwarding header of any kind. A reverse proxy on the same machine is a loopback peer too; what it
 * adds (X-Forwarded-*, X-Real-IP, Forwarded, Via, or the public Host it passes on) is what tells it apart, and with
 * TRUST_PROXY the client behind it is a remote address anyway.
 */
export function metricsAccess(token: string | undefined): (request: MetricsRequest) => "ok" | "unauthorized" | "forbidden" {
  const expected = token === undefined ? undefined : digest(token);
  return ({ client, host, authorization }) => {
    if (expected) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
      return match && timingSafeEqual(digest(match[1]!), expected) ? "ok" : "unauthorized";
    }
    return client.via === "direct" && isLoopbackAddress(client.address) && isLoopbackHost(host) ? "ok" : "forbidden";
  };
}

/** `GET /metrics` in Prometheus' text format, behind `metricsAccess`. */
export function createMetricsHandler(metrics: Metrics, token: string | undefined, clients: Clients): RequestHandler {
  const access = metricsAccess(token);
  return async (req, res) => {
    const verdict = access({ client: clients.of(req), host: req.get("host"), authorization: req.get("authorization") });
    if (verdict === "unauthorized") {
      res.status(401).set("WWW-Authenticate", 'Bearer realm="metrics"').type("text/plain").send("a bearer token is required\n");
      return;
    }
    if (verdict === "forbidden") {
      res.status(403).type("text/plain").send("/metrics answers only on this machine; set METRICS_TOKEN to scrape it from elsewhere\n");
      return;
    }
    const body = await metrics.registry.metrics();
    res.status(200).set("Cache-Control", "no-store").type(metrics.registry.contentType).send(body);
  };
}
