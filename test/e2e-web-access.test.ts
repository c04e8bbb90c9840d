import { randomUUID } from "node:crypto";
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import path from "node:path";
import { eq, sql } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { inbox, logs, pairingRequests, users } from "../src/db/schema.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { signInAdmin } from "./support/admin-client.ts";
import { createTestDatabase, type TestDatabase } from "./support/databases.ts";
import { startLoggedParley } from "./support/logged-parley.ts";
import { startTestParley, type TestParley } from "./support/parley.ts";
import { openWebChat, tokenOf, webChatClient, type WebChatClient } from "./support/web-chat.ts";

/**
 * Who may use the web chat, through a whole Parley over real HTTP, with the fake model counting every call: nothing
 * about the network (a loopback peer, a loopback Host, forwarding headers) grants anything; the operator is whoever
 * holds the link's token; a public chat's visitors are signed identities the page cannot mint, under ACCESS_POLICY.
 */

const MODEL = "access-model";
const PASSWORD = "correct horse battery staple";

let db: TestDatabase;
let model: FakeOpenAIServer;
let parley: TestParley | undefined;

beforeEach(async () => {
  [db, model] = await Promise.all([createTestDatabase("pglite"), startFakeOpenAIServer()]);
});
afterEach(async () => {
  await parley?.stop();
  parley = undefined;
  await model.close();
  await db.drop();
});

const dataDir = () => db.env.PARLEY_DATA_DIR!;

function start(env: Record<string, string> = {}): Promise<TestParley> {
  return startTestParley(db, { MODELS_INSTANT: `openai-compatible:${MODEL}`, OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1`, ...env });
}

/** A raw HTTP request, so the Host header is exactly what a reverse proxy on this machine would send. */
function raw(
  url: string,
  options: { method?: string; path: string; headers?: Record<string, string>; body?: string },
): Promise<{ status: number; type: string; text: string }> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, method: options.method ?? "GET", path: options.path, headers: options.headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"] ?? ""), text }));
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

async function inboxCount(p: TestParley): Promise<number> {
  const [row] = await p.database.db.select({ n: sql<number>`count(*)`.mapWith(Number) }).from(inbox);
  return row?.n ?? 0;
}

/** Waits until every stored message is answered or refused: nothing is pending or being worked on. */
async function settled(p: TestParley, count: number): Promise<void> {
  await vi.waitFor(
    async () => {
      const rows = await p.database.db.select({ state: inbox.state }).from(inbox);
      expect(rows).toHaveLength(count);
      expect(rows.filter((r) => r.state === "pending" || r.state === "working")).toEqual([]);
    },
    { timeout: 30_000, interval: 50 },
  );
}

/** The texts of the replies sent to a session's chat, read from its event stream until `until` holds. */
async function replies(client: WebChatClient, until: (texts: string[]) => boolean): Promise<string[]> {
  const stop = new AbortController();
  const res = await client.events({ signal: stop.signal });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const texts: string[] = [];
  let buffer = "";
  const timer = setTimeout(() => stop.abort(), 15_000);
  try {
    while (!until(texts)) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (/^event: message$/m.test(block) && data) texts.push((JSON.parse(data) as { text: string }).text);
      }
    }
  } finally {
    clearTimeout(timer);
    stop.abort();
  }
  return texts;
}

const cookieValue = (client: WebChatClient) => client.cookie.slice("parley_chat=".length);

describe("the operator's web chat (WEB_CHAT unset: operator)", () => {
  const LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "[::1]"];

  it("answers a request from 127.0.0.1 with a loopback Host and no credential with the explanation or 401, and calls no model", async () => {
    parley = await start();
    const { port } = new URL(parley.url);
    model.reply(MODEL, { text: "should never be asked" });
    for (const name of LOOPBACK_HOSTS) {
      // What nginx's default proxy_pass sends: the peer is 127.0.0.1 and the Host names this machine.
      const host = `${name}:${port}`;
      const page = await raw(parley.url, { path: "/chat", headers: { host } });
      expect(page.status).toBe(401);
      expect(page.type).toMatch(/^text\/html/);
      expect(page.text).toContain("This web chat is the operator's");
      expect(page.text).toContain("#token=…");
      expect(page.text).not.toContain('<textarea id="input"');
      const variants: Array<Record<string, string>> = [{ host }, { host, "x-forwarded-for": "127.0.0.1" }, { host, "x-real-ip": "127.0.0.1" }];
      for (const headers of variants) {
        const body = JSON.stringify({ clientId: randomUUID(), id: randomUUID(), text: "hello from the internet" });
        const posted = await raw(parley.url, { method: "POST", path: "/chat/api/messages", headers: { ...headers, "content-type": "application/json" }, body });
        expect(posted.status).toBe(401);
        expect(posted.type).toMatch(/^application\/json/);
        expect(JSON.parse(posted.text).error).toMatch(/^This web chat is the operator's: open it with the link/);
      }
      const upload = await raw(parley.url, { method: "POST", path: "/chat/api/uploads", headers: { host, "content-type": "image/png" }, body: "\x89PNG" });
      expect(upload.status).toBe(401);
      const events = await raw(parley.url, { path: `/chat/api/events?clientId=${randomUUID()}`, headers: { host } });
      expect(events.status).toBe(401);
      const file = await raw(parley.url, { path: `/chat/files/${"A".repeat(43)}`, headers: { host } });
      expect(file.status).toBe(401);
      // Without a token there is no session to open either.
      const session = await raw(parley.url, { method: "POST", path: "/chat/api/session", headers: { host, "content-type": "application/json" }, body: "{}" });
      expect(session.status).toBe(401);
    }
    expect(existsSync(path.join(dataDir(), "web-uploads"))).toBe(false);
    // Refused before anything is stored: nothing waits in the inbox that could still reach the model.
    expect(await inboxCount(parley)).toBe(0);
    expect(model.requests).toHaveLength(0);
  });

  it("opens with the link's token, and binds the quota to the operator, not to the 30 client ids a page sends", async () => {
    parley = await start();
    model.reply(MODEL, { text: "an answer" });
    const operator = await openWebChat(parley.url, tokenOf(parley.webChatLink));
    const page = await fetch(`${parley.url}/chat`, { headers: { Cookie: operator.cookie } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<textarea id="input"');
    for (let i = 0; i < 30; i++) {
      const res = await operator.post({ clientId: randomUUID(), id: randomUUID(), text: `question ${i}` });
      expect(res.status).toBe(202);
    }
    await settled(parley, 30);
    // QUOTA_MESSAGES_PER_MINUTE is 10 by default: one identity, one quota.
    expect(model.requests).toHaveLength(10);
    const webUsers = await parley.database.db.select({ key: users.key }).from(users);
    expect(webUsers.map((u) => u.key)).toEqual(["web:operator"]);
  });

  it("refuses a wrong token, a tampered cookie and a made-up one", async () => {
    parley = await start();
    const token = tokenOf(parley.webChatLink);
    for (const wrong of [token.slice(0, -1) + (token.endsWith("A") ? "B" : "A"), "", "x".repeat(43), 12345]) {
      const res = await fetch(`${parley.url}/chat/api/session`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token: wrong }) });
      expect(res.status).toBe(401);
      expect((await res.json()).error).toMatch(/^That link is not \(or no longer\) valid/);
      expect(res.headers.getSetCookie()).toEqual([]);
    }
    // Guesses are logged once a minute per address, and never lock out the right token.
    expect(parley.logs.lines.filter((line) => line.includes("a link with a wrong token was opened"))).toHaveLength(1);
    const operator = await openWebChat(parley.url, token);
    const value = cookieValue(operator);
    const flipped = value.slice(0, -1) + (value.endsWith("A") ? "B" : "A");
    const later = value.replace(/^o\.(\d+)\./, (_m, at: string) => `o.${Number(at) + 1}.`);
    for (const forged of [flipped, later, `o.${Date.now()}.${"A".repeat(43)}`, "o", "operator"]) {
      const res = await webChatClient(parley.url, `parley_chat=${forged}`).post({ id: randomUUID(), text: "hi" });
      expect(res.status).toBe(401);
    }
    expect(await inboxCount(parley)).toBe(0);
  });

  it("creates the token file mode 0600 on first start, tightens a wider one, and keeps the token and sessions on restart", async () => {
    parley = await start();
    const tokenFile = path.join(dataDir(), "web-chat-token");
    const secretFile = path.join(dataDir(), "web-chat-secret");
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    expect(statSync(secretFile).mode & 0o777).toBe(0o600);
    const token = tokenOf(parley.webChatLink);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 random bytes
    expect(readFileSync(tokenFile, "utf8").trim()).toBe(token);
    expect(parley.webChatLink).toBe(`${parley.url}/chat#token=${token}`);
    const operator = await openWebChat(parley.url, token);
    await parley.stop();

    chmodSync(tokenFile, 0o644);
    parley = await start();
    expect(tokenOf(parley.webChatLink)).toBe(token);
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    // The cookie of the first run is still the operator's: same key, same token.
    const res = await webChatClient(parley.url, operator.cookie).post({ id: randomUUID(), text: "/usage" });
    expect(res.status).toBe(202);
    await parley.stop();

    // A token file that does not hold a token is replaced, and old links and sessions stop working.
    writeFileSync(tokenFile, "password\n");
    parley = await start();
    const renewed = tokenOf(parley.webChatLink);
    expect(renewed).not.toBe(token);
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    expect((await webChatClient(parley.url, operator.cookie).post({ id: randomUUID(), text: "hi" })).status).toBe(401);
  });

  it("never makes a web identity an admin because it is on loopback or the operator: only ADMIN_USERS naming its key does", async () => {
    // ADMIN_USERS names another platform's key only: the operator's web chat is not an admin.
    parley = await start({ ADMIN_USERS: "telegram:1" });
    model.reply(MODEL, { text: "a model answer" });
    let operator = await openWebChat(parley.url, tokenOf(parley.webChatLink));
    expect((await operator.post({ id: randomUUID(), text: "/stats" })).status).toBe(202);
    const [refused] = await replies(operator, (t) => t.length >= 1);
    expect(refused).toBe("I don't know the command /stats. Send /help to see what I understand.");
    await parley.stop();

    // ADMIN_USERS=web:operator: a request without the token that calls itself "operator" gets nothing …
    parley = await start({ ADMIN_USERS: "web:operator" });
    const stored = await inboxCount(parley);
    const posed = await raw(parley.url, {
      method: "POST",
      path: "/chat/api/messages",
      headers: { host: `localhost:${new URL(parley.url).port}`, "content-type": "application/json" },
      body: JSON.stringify({ clientId: "operator", id: randomUUID(), text: "/stats" }),
    });
    expect(posed.status).toBe(401);
    expect(await inboxCount(parley)).toBe(stored);
    // … and the holder of the link, named there, is an admin.
    operator = await openWebChat(parley.url, tokenOf(parley.webChatLink));
    expect((await operator.post({ id: randomUUID(), text: "/stats" })).status).toBe(202);
    const [stats] = await replies(operator, (t) => t.length >= 1);
    expect(stats).toMatch(/^Users: /);
  });

  it("shows the link on the admin page to a signed-in admin only", async () => {
    parley = await start({ ADMIN_PASSWORD: PASSWORD });
    const token = tokenOf(parley.webChatLink);
    const anonymous = await fetch(`${parley.url}/admin/`, { redirect: "manual" });
    expect(anonymous.status).toBe(302);
    expect(await anonymous.text()).not.toContain(token);
    const login = await fetch(`${parley.url}/admin/login`);
    expect(await login.text()).not.toContain(token);
    const api = await fetch(`${parley.url}/admin/api/overview`);
    expect(api.status).toBe(401);
    expect(await api.text()).not.toContain(token);

    const admin = await signInAdmin(parley.url, PASSWORD);
    const overview = await admin.get("/admin/");
    expect(overview.status).toBe(200);
    expect(overview.text).toContain(`<a class="web-chat-link" href="/chat#token=${token}" rel="noreferrer">Open the web chat as the operator</a>`);
  });
});

describe("the token in the logs", () => {
  it("is in no log line, error or stored log, while the link is traded, refused and used", async () => {
    const logged = await startLoggedParley(db, { MODELS_INSTANT: `openai-compatible:${MODEL}`, OPENAI_COMPATIBLE_BASE_URL: `${model.url}/v1` });
    try {
      const token = tokenOf(logged.webChatLink);
      const secret = readFileSync(path.join(dataDir(), "web-chat-secret"), "utf8").trim();
      model.reply(MODEL, { text: "fine" });
      const operator = await openWebChat(logged.url, token);
      await fetch(`${logged.url}/chat/api/session`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token: `${token}x` }) });
      await fetch(`${logged.url}/chat/?token=${token}`);
      expect((await operator.post({ id: randomUUID(), text: `my link is ${logged.webChatLink}` })).status).toBe(202);
      await vi.waitFor(() => expect(model.requests).toHaveLength(1), { timeout: 15_000, interval: 50 });
      await vi.waitFor(() => expect(logged.text()).toContain("web chat: the operator's link was opened"), { timeout: 5_000, interval: 50 });
      expect(logged.text()).not.toContain(token);
      expect(logged.text()).not.toContain(secret);
      // The logs table (the admin page's log view) neither.
      const stored = async () => JSON.stringify(await logged.database.db.select().from(logs));
      await vi.waitFor(async () => expect(await stored()).toContain("web chat: the operator's link was opened"), { timeout: 5_000, interval: 50 });
      expect(await stored()).not.toContain(token);
      expect(await stored()).not.toContain(secret);
    } finally {
      await logged.stop();
    }
  });
});

describe("WEB_CHAT=public", () => {
  it("gives a new visitor a pairing code under ACCESS_POLICY=pairing, and calls no model", async () => {
    parley = await start({ WEB_CHAT: "public" });
    model.reply(MODEL, { text: "should never be asked" });
    const page = await fetch(`${parley.url}/chat`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('data-session="none"');
    const visitor = await openWebChat(parley.url);
    expect(cookieValue(visitor)).toMatch(/^v\.[A-Za-z0-9_-]{22}\.\d+\.[A-Za-z0-9_-]{43}$/);
    expect((await visitor.post({ clientId: "operator", id: randomUUID(), text: "hello" })).status).toBe(202);
    const [reply] = await replies(visitor, (t) => t.length >= 1);
    expect(reply).toMatch(/Ask the operator to approve code [A-Z0-9]{8}/);
    const key = `web:v-${cookieValue(visitor).split(".")[1]}`;
    const pending = await parley.database.db.select().from(pairingRequests).where(eq(pairingRequests.userKey, key));
    expect(pending).toHaveLength(1);
    await settled(parley, 1);
    expect(model.requests).toHaveLength(0);
  });

  it("refuses a forged, unsigned or tampered visitor cookie, and never takes it as that visitor", async () => {
    parley = await start({ WEB_CHAT: "public", ACCESS_POLICY: "open" });
    model.reply(MODEL, { text: "hello visitor" });
    const victim = await openWebChat(parley.url);
    expect((await victim.post({ id: randomUUID(), text: "my secret question" })).status).toBe(202);
    await settled(parley, 1);
    const [, id, issued, mac] = cookieValue(victim).split(".") as [string, string, string, string];
    const forgeries = [
      `v.${id}.${issued}.${mac.slice(0, -1)}${mac.endsWith("A") ? "B" : "A"}`, // one character of the signature
      `v.${id}.${Number(issued) + 1}.${mac}`, // another time under the same signature
      `v.${id}.${issued}.${"A".repeat(43)}`, // a made-up signature
      `v.${id}`, // unsigned
      `v.${id.slice(0, -1)}${id.endsWith("A") ? "B" : "A"}.${issued}.${mac}`, // someone else's id under this signature
    ];
    for (const forged of forgeries) {
      const cookie = `parley_chat=${forged}`;
      const posted = await webChatClient(parley.url, cookie).post({ id: randomUUID(), text: "/export" });
      expect(posted.status).toBe(401);
      expect((await posted.json()).error).toBe("Your web chat session is not valid any more: reload the page to start a new one.");
      expect((await webChatClient(parley.url, cookie).events()).status).toBe(401);
      // Opening a session with it gives a new identity, never the victim's.
      const renewed = await openWebChat(parley.url, undefined, cookie);
      expect(renewed.cookie).not.toBe(cookie);
      expect(cookieValue(renewed).split(".")[1]).not.toBe(id);
    }
    expect(await inboxCount(parley)).toBe(1);
    const keys = (await parley.database.db.select({ key: users.key }).from(users)).map((u) => u.key);
    expect(keys).toEqual([`web:v-${id}`]);
  });

  it("bounds new identities per address, so clearing cookies does not multiply the quota", async () => {
    parley = await start({ WEB_CHAT: "public", ACCESS_POLICY: "open" });
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) {
      const res = await fetch(`${parley.url}/chat/api/session`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
      statuses.push(res.status);
      if (res.status === 429) {
        expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
        expect((await res.json()).error).toBe("Too many new visitors from your network right now: please try again later.");
      }
    }
    expect(statuses.filter((s) => s === 200)).toHaveLength(20);
    expect(statuses.filter((s) => s === 429)).toHaveLength(10);
  });

  it("counts visitors by the client's address only as TRUST_PROXY says, and marks the cookie Secure behind HTTPS", async () => {
    const newSession = (headers: Record<string, string>) =>
      fetch(`${parley!.url}/chat/api/session`, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: "{}" });
    // No TRUST_PROXY: a client's own X-Forwarded-For names nobody; every request counts for the socket's 127.0.0.1.
    parley = await start({ WEB_CHAT: "public" });
    const untrusted = [];
    for (let i = 0; i < 21; i++) untrusted.push((await newSession({ "X-Forwarded-For": `198.51.100.${i}` })).status);
    expect(untrusted.filter((s) => s === 429)).toHaveLength(1);
    const plain = await newSession({ "X-Forwarded-For": "198.51.100.200", "X-Forwarded-Proto": "https" });
    expect(plain.status).toBe(429);
    await parley.stop();

    // TRUST_PROXY=loopback: the proxy's X-Forwarded-For is the client, one address's limit leaves the others alone.
    parley = await start({ WEB_CHAT: "public", TRUST_PROXY: "loopback" });
    for (let i = 0; i < 20; i++) expect((await newSession({ "X-Forwarded-For": "198.51.100.7" })).status).toBe(200);
    expect((await newSession({ "X-Forwarded-For": "198.51.100.7" })).status).toBe(429);
    const other = await newSession({ "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https" });
    expect(other.status).toBe(200);
    expect(other.headers.getSetCookie()[0]).toMatch(/; HttpOnly; SameSite=Strict; Secure$/);
    const http = await newSession({ "X-Forwarded-For": "203.0.113.10" });
    expect(http.headers.getSetCookie()[0]).not.toMatch(/Secure/);
  });

  it("never makes a visitor an admin, even one calling itself the operator while ADMIN_USERS names web:operator", async () => {
    parley = await start({ WEB_CHAT: "public", ACCESS_POLICY: "open", ADMIN_USERS: "web:operator" });
    model.reply(MODEL, { text: "a model answer" });
    const visitor = await openWebChat(parley.url);
    expect((await visitor.post({ clientId: "operator", id: randomUUID(), text: "/stats" })).status).toBe(202);
    const [reply] = await replies(visitor, (t) => t.length >= 1);
    expect(reply).toBe("I don't know the command /stats. Send /help to see what I understand.");
  });
});

describe("WEB_CHAT=off", () => {
  it("serves no chat, no API and no link, and keeps no credential", async () => {
    parley = await start({ WEB_CHAT: "off" });
    for (const [method, route] of [["GET", "/chat"], ["GET", "/chat/chat.js"], ["POST", "/chat/api/session"], ["POST", "/chat/api/messages"], ["GET", "/chat/api/events"]]) {
      const res = await fetch(`${parley.url}${route}`, { method, headers: { "Content-Type": "application/json" }, ...(method === "POST" ? { body: "{}" } : {}) });
      expect(res.status).toBe(404);
      expect(await res.text()).toBe("The web chat is off (WEB_CHAT=off).");
    }
    expect(parley.adapters.has("web")).toBe(false);
    expect(parley.webChatLink).toBeUndefined();
    expect(existsSync(path.join(dataDir(), "web-chat-token"))).toBe(false);
  });
});
