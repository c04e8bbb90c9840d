import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadWebChatCredentials, SECRET_FILE, TOKEN_FILE } from "../channels/web/credentials.ts";
import { createWindowLimiter } from "../channels/web/limits.ts";
import { createWebSessions, identityKey, isWebChatId, OPERATOR_SESSION_MS, VISITOR_SESSION_MS } from "../channels/web/sessions.ts";
import { loadStartupCredentials } from "../src/app.ts";
import { loadConfig, secretsOf } from "../src/config.ts";
import { captureLogs } from "./support/logs.ts";

/** The web chat's credentials on disk, its session cookies and its limits, on their own. */

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "parley-web-credentials-"));
  dirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe("web chat credentials", () => {
  it("creates a 32-byte token and key mode 0600 whatever the umask, and reads the same ones back", async () => {
    const dir = join(tempDir(), "data");
    const before = process.umask(0o000);
    let first;
    try {
      first = await loadWebChatCredentials(dir);
    } finally {
      process.umask(before);
    }
    expect(first.credentials.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(first.credentials.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(first.credentials.token).not.toBe(first.credentials.secret);
    expect(first.notes.map((n) => n.type)).toEqual(["created", "created"]);
    for (const name of [TOKEN_FILE, SECRET_FILE]) expect(statSync(join(dir, name)).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const again = await loadWebChatCredentials(dir);
    expect(again.credentials).toEqual(first.credentials);
    expect(again.notes).toEqual([]);
  });

  it("agrees on one value when several processes create it at once", async () => {
    const dir = tempDir();
    const all = await Promise.all(Array.from({ length: 8 }, () => loadWebChatCredentials(dir)));
    expect(new Set(all.map((a) => a.credentials.token)).size).toBe(1);
    expect(readFileSync(join(dir, TOKEN_FILE), "utf8").trim()).toBe(all[0]!.credentials.token);
  });

  it("replaces a file that holds no token of that shape, and tightens one readable by others", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, TOKEN_FILE), "hunter2\n", { mode: 0o644 });
    const good = "Q".repeat(43);
    writeFileSync(join(dir, SECRET_FILE), `${good}\n`, { mode: 0o644 });
    const { credentials, notes } = await loadWebChatCredentials(dir);
    expect(credentials.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(credentials.secret).toBe(good);
    expect(notes).toEqual([
      { type: "replaced", file: join(dir, TOKEN_FILE) },
      { type: "tightened", file: join(dir, SECRET_FILE) },
    ]);
    for (const name of [TOKEN_FILE, SECRET_FILE]) expect(statSync(join(dir, name)).mode & 0o777).toBe(0o600);
  });

  it("joins the secrets every log line is scrubbed of, and none at all when the chat is off", async () => {
    const dir = tempDir();
    const config = loadConfig({ PARLEY_DATA_DIR: dir }, "/nonexistent/.env");
    const startup = await loadStartupCredentials(config);
    const { token, secret } = startup.webChat!;
    const logs = captureLogs([...secretsOf(config), ...startup.secrets]);
    logs.log.error({ err: new Error(`cannot open http://127.0.0.1:3000/chat#token=${token}`) }, `key ${secret}`);
    expect(logs.text()).toContain("[redacted]");
    expect(logs.text()).not.toContain(token);
    expect(logs.text()).not.toContain(secret);
    const off = await loadStartupCredentials(loadConfig({ PARLEY_DATA_DIR: tempDir(), WEB_CHAT: "off" }, "/nonexistent/.env"));
    expect(off).toEqual({ secrets: [], notes: [] });
  });

  it("reads WEB_CHAT: operator by default, public or off, and refuses anything else naming the variable", () => {
    expect(loadConfig({}, "/nonexistent/.env").webChat).toEqual({ mode: "operator" });
    expect(loadConfig({ WEB_CHAT: "public" }, "/nonexistent/.env").webChat).toEqual({ mode: "public" });
    expect(() => loadConfig({ WEB_CHAT: "loopback" }, "/nonexistent/.env")).toThrow(/WEB_CHAT/);
  });
});

describe("web chat sessions", () => {
  const credentials = { token: "t".repeat(43), secret: "s".repeat(43) };
  let now = 1_750_000_000_000;
  const sessions = createWebSessions(credentials, () => now);

  it("proves the operator and a visitor by their signed cookies, and derives their keys", () => {
    const operator = sessions.issue("operator");
    expect(operator.maxAgeMs).toBe(OPERATOR_SESSION_MS);
    expect(sessions.verify(operator.value)).toEqual({ kind: "operator" });
    expect(identityKey({ kind: "operator" })).toBe("web:operator");
    const visitor = sessions.issue("visitor");
    expect(visitor.maxAgeMs).toBe(VISITOR_SESSION_MS);
    const identity = sessions.verify(visitor.value);
    expect(identity).toEqual(visitor.identity);
    expect(identityKey(identity!)).toMatch(/^web:v-[A-Za-z0-9_-]{22}$/);
    expect(isWebChatId(identityKey(identity!).slice(4))).toBe(true);
    expect(sessions.issue("visitor").identity).not.toEqual(identity);
  });

  it("compares the token in full", () => {
    expect(sessions.tokenMatches(credentials.token)).toBe(true);
    for (const wrong of [credentials.token.slice(1), `${credentials.token}t`, "", undefined, 42, ["t".repeat(43)]]) {
      expect(sessions.tokenMatches(wrong)).toBe(false);
    }
  });

  it("refuses a cookie forged, altered, expired, or opened by another token or key", () => {
    const visitor = sessions.issue("visitor").value;
    const operator = sessions.issue("operator").value;
    const [, id, issued, mac] = visitor.split(".") as [string, string, string, string];
    const otherKey = createWebSessions({ ...credentials, secret: "x".repeat(43) }, () => now);
    const otherToken = createWebSessions({ ...credentials, token: "y".repeat(43) }, () => now);
    const forged = [
      `v.${id}.${issued}.${mac.slice(0, -1)}${mac.endsWith("A") ? "B" : "A"}`,
      `v.${id.slice(0, -1)}${id.endsWith("A") ? "B" : "A"}.${issued}.${mac}`,
      `v.${id}.${Number(issued) + 1}.${mac}`,
      `v.${id}.${issued}`,
      `o.${issued}.${mac}`,
      `${visitor} `,
      `x${operator}`,
      "",
      undefined,
    ];
    for (const value of forged) expect(sessions.verify(value)).toBeUndefined();
    expect(otherKey.verify(visitor)).toBeUndefined();
    expect(otherKey.verify(operator)).toBeUndefined();
    // A new token ends the operator's sessions; a visitor's rests on the key only.
    expect(otherToken.verify(operator)).toBeUndefined();
    expect(otherToken.verify(visitor)).toEqual({ kind: "visitor", id });

    const start = now;
    now = start + OPERATOR_SESSION_MS + 1;
    expect(sessions.verify(operator)).toBeUndefined();
    expect(sessions.verify(visitor)).toBeDefined();
    now = start + VISITOR_SESSION_MS + 1;
    expect(sessions.verify(visitor)).toBeUndefined();
    now = start - 60 * 60 * 1000; // issued an hour in the future
    expect(sessions.verify(visitor)).toBeUndefined();
    now = start;
  });
});

describe("window limiter", () => {
  it("allows `limit` a window per key, says when to retry, and forgets the least recent keys beyond maxKeys", () => {
    let now = 0;
    const limiter = createWindowLimiter({ limit: 2, windowMs: 1000, now: () => now, maxKeys: 2 });
    expect(limiter.take("a")).toEqual({ ok: true });
    expect(limiter.take("a")).toEqual({ ok: true });
    now = 400;
    expect(limiter.take("a")).toEqual({ ok: false, retryAfterMs: 600 });
    expect(limiter.take("b")).toEqual({ ok: true });
    now = 1000;
    expect(limiter.take("a")).toEqual({ ok: true });
    limiter.take("c");
    limiter.take("c");
    expect(limiter.take("c").ok).toBe(false);
    // Beyond two keys the least recently counted go: b, a, then c, whose full window is forgotten with it.
    limiter.take("d");
    limiter.take("e");
    expect(limiter.take("c")).toEqual({ ok: true });
  });
});
