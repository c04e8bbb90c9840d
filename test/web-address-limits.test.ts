import { mkdtempSync, rmSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import express from "express";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWebChannel } from "../channels/web/adapter.ts";

/**
 * The web chat's per-address limits count a network, not one address of it: an IPv6 client holds a whole /64 and can
 * take a new address for every request, so its visitors are counted by their /64 (as the sign-in limits do).
 */
const dataDir = mkdtempSync(join(tmpdir(), "parley-web-net-"));
const CREDENTIALS = { token: "T".repeat(43), secret: "S".repeat(43) };
const chat = createWebChannel({ log: pino({ level: "silent" }), dataDir, maxUploadBytes: 1024, mode: "public", credentials: CREDENTIALS });
const stop = new AbortController();
let server: Server;
let base: string;

beforeAll(async () => {
  const app = express();
  app.set("trust proxy", "loopback"); // what TRUST_PROXY=loopback sets: the test's requests come through "a proxy"
  app.use("/chat", chat.router);
  server = app.listen(0, "127.0.0.1");
  await new Promise<void>((resolve, reject) => server.once("listening", resolve).once("error", reject));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  await chat.adapter.start(async () => {}, stop.signal);
});

afterAll(async () => {
  stop.abort();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dataDir, { recursive: true, force: true });
});

function openSession(forwardedFor: string): Promise<globalThis.Response> {
  return fetch(`${base}/chat/api/session`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Forwarded-For": forwardedFor },
    body: "{}",
  });
}

describe("web chat limits per network", () => {
  it("counts the new visitors of one IPv6 /64 together, whichever of its addresses each comes from", async () => {
    const statuses: number[] = [];
    for (let i = 1; i <= 21; i++) statuses.push((await openSession(`2001:db8:1:2::${i.toString(16)}`)).status);
    expect(statuses.slice(0, 20).every((s) => s === 200)).toBe(true);
    expect(statuses[20]).toBe(429);
    // Another /64, and an IPv4 client, are counted on their own.
    expect((await openSession("2001:db8:1:3::1")).status).toBe(200);
    expect((await openSession("198.51.100.7")).status).toBe(200);
  });
});
