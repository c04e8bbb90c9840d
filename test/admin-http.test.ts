import { createHash, randomUUID } from "node:crypto";
import { request as httpRequest } from "node:http";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadStartupCredentials, startParley, type Parley } from "../src/app.ts";
import { decideAdminAvailability } from "../src/admin/availability.ts";
import { loadConfig, secretsOf } from "../src/config.ts";
import { conversations, inbox, logs, media, messages, modelCalls, users } from "../src/db/schema.ts";
import { createLogSink, type LogSink } from "../src/observability/log-sink.ts";
import { createLogger, type Logger } from "../src/observability/logger.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from "./support/databases.ts";
import { openWebChat, tokenOf, type WebChatClient } from "./support/web-chat.ts";

/**
 * The admin page over real HTTP against a whole Parley (startParley) on a test database: the gate in front of every
 * route, sign-in and sessions, CSRF, the pages with data that went through the web channel and a fake model, media,
 * logs and the live tail, and that no secret reaches a page.
 */

const PASSWORD = "correct horse battery staple";
const API_KEY = "sk-admin-test-canary-5b2f0c9e7d";
const MODEL = "fake-model";
const XSS = `<script>window.__pwned=1</script><img src=x onerror="alert(1)"> \u001b[31mred\u001b[0m`;
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
  "base64",
);
const SVG = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`);
const sha = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

interface Harness {
  parley: Parley;
  sink: LogSink;
  log: Logger;
  lines: string[];
  /** The key that signs web chat sessions: on no page, ever. */
  webChatSecret: string;
}

async function startAdminParley(db: TestDatabase, env: Record<string, string>): Promise<Harness> {
  const config = loadConfig(
    { PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "debug", WORKER_CONCURRENCY: "2", ...db.env, ...env },
    "/nonexistent/.env",
  );
  const startup = await loadStartupCredentials(config);
  const secrets = [...secretsOf(config), ...startup.secrets];
  const lines: string[] = [];
  const sink = createLogSink({ tee: (line) => lines.push(line), warn: (text) => lines.push(text), flushMs: 100 });
  const log = createLogger({ level: "debug", secrets, write: sink.write });
  const parley = await startParley({
    config,
    log,
    secrets,
    logSink: sink,
    webChatCredentials: startup.webChat,
    tuning: { leaseMs: 1_000, pollMs: 50, retryBaseMs: 100 },
  });
  return { parley, sink, log, lines, webChatSecret: startup.webChat!.secret };
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 8_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function cookieOf(res: Response): string | undefined {
  const line = res.headers.getSetCookie().find((c) => c.startsWith("parley_admin="));
  return line?.split(";")[0];
}

function csrfOf(html: string): string {
  const match = html.match(/name="_csrf" value="([^"]+)"/);
  if (!match) throw new Error("no CSRF field on the page");
  return match[1]!;
}

describe.each(DATABASE_KINDS)("admin over HTTP on %s", (kind) => {
  let testDb: TestDatabase;
  let fake: FakeOpenAIServer;
  let h: Harness;
  let base: string;
  /** Every body an admin route answered, checked for secrets at the end. */
  const bodies: string[] = [];
  let webUser: string;
  let webConversation: number;
  let seeded: { conversation: number; rootCall: number; user: string };

  const get = async (path: string, cookie?: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${base}${path}`, { redirect: "manual", headers: { ...(cookie ? { cookie } : {}), ...headers } });
    return res;
  };
  const getText = async (path: string, cookie?: string) => {
    const res = await get(path, cookie);
    const text = await res.text();
    bodies.push(text);
    return { res, text };
  };
  const post = (path: string, form: Record<string, string>, cookie?: string, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded", ...(cookie ? { cookie } : {}), ...headers },
      body: new URLSearchParams(form).toString(),
    });

  async function signIn(): Promise<{ cookie: string; csrf: string; formCookie: string }> {
    const login = await get("/admin/login");
    const formCookie = cookieOf(login)!;
    const token = csrfOf(await login.text());
    const res = await post("/admin/login", { _csrf: token, password: PASSWORD }, formCookie);
    expect(res.status).toBe(303);
    const cookie = cookieOf(res)!;
    const page = await getText("/admin/", cookie);
    expect(page.res.status).toBe(200);
    return { cookie, csrf: csrfOf(page.text), formCookie };
  }

  /** One signed-in session for the tests that are not about signing in (each sign-in costs a slow hash). */
  let sharedSession: Promise<{ cookie: string; csrf: string }> | undefined;
  const shared = () => (sharedSession ??= signIn());

  /** The operator's web chat session (the link's token traded for a cookie). */
  let operator: WebChatClient;

  async function chat(text: string): Promise<void> {
    const res = await operator.post({ text, id: randomUUID() });
    expect(res.status).toBe(202);
  }

  beforeAll(async () => {
    [testDb, fake] = await Promise.all([createTestDatabase(kind), startFakeOpenAIServer({ apiKey: API_KEY })]);
    fake.reply(MODEL, { usage: { promptTokens: 40, completionTokens: 12 } });
    h = await startAdminParley(testDb, {
      ADMIN_PASSWORD: PASSWORD,
      MODELS_INSTANT: `openai-compatible:${MODEL}`,
      OPENAI_COMPATIBLE_BASE_URL: `${fake.url}/v1`,
      OPENAI_COMPATIBLE_API_KEY: API_KEY,
    });
    base = h.parley.url;
    const db = h.parley.database.db;

    // A conversation with two turns through the web channel and the fake model.
    operator = await openWebChat(base, tokenOf(h.parley.webChatLink));
    webUser = "web:operator";
    await chat(XSS);
    await waitFor("the first reply", async () => (await db.select().from(messages).where(eq(messages.role, "assistant"))).length >= 1);
    await chat("And a second question");
    await waitFor("the second reply", async () => (await db.select().from(messages).where(eq(messages.role, "assistant"))).length >= 2);
    webConversation = (await db.select().from(conversations).where(eq(conversations.userKey, webUser)))[0]!.id;

    // A Telegram conversation with media and a tree of model calls (a contemplating answer), one of them failed.
    const user = "telegram:4242";
    await db.insert(users).values({ key: user, channel: "telegram", displayName: `Mallory <b onmouseover=alert(1)>`, status: "pending" });
    const [conversation] = await db.insert(conversations).values({ userKey: user, chatKey: user }).returning();
    const [row] = await db
      .insert(inbox)
      .values({ channel: "telegram", platformMessageId: "t1", chatKey: user, userKey: user, payload: {}, state: "done" })
      .returning();
    await db.insert(media).values([
      { sha256: sha(PNG), mimeType: "image/png", width: 1, height: 1, bytes: PNG.length, data: PNG },
      { sha256: sha(SVG), mimeType: "image/svg+xml", bytes: SVG.length, data: SVG },
    ]);
    await db.insert(messages).values({
      conversationId: conversation!.id,
      inboxId: row!.id,
      role: "user",
      text: "look at this picture",
      tokens: 5,
      media: [sha(PNG), sha(SVG)],
    });
    const [answer] = await db
      .insert(messages)
      .values({ conversationId: conversation!.id, inboxId: row!.id, role: "assistant", text: "a pixel", tokens: 3, mode: "contemplating", deliveredAt: new Date() })
      .returning();
    const call = { inboxId: row!.id, userKey: user, mode: "contemplating", startedAt: new Date(), ok: true } as const;
    const [root] = await db
      .insert(modelCalls)
      .values({ ...call, purpose: "synthesis", provider: "anthropic", model: "root-model", messageId: answer!.id, latencyMs: 900, firstTokenMs: 300, tokensIn: 300, tokensOut: 80, costUsd: 0.0042 })
      .returning();
    await db.insert(modelCalls).values([
      { ...call, parentId: root!.id, purpose: "agent", provider: "openai", model: "agent-model-1", latencyMs: 500, tokensIn: 100, tokensOut: 40 },
      { ...call, parentId: root!.id, purpose: "agent", provider: "google", model: "agent-model-2", latencyMs: 700, tokensIn: 100, tokensOut: 50 },
      { ...call, parentId: root!.id, purpose: "agent", provider: "openai", model: "agent-model-3", latencyMs: 30_000, ok: false, error: "HTTP 500: <img src=x onerror=alert(3)>" },
    ]);
    seeded = { conversation: conversation!.id, rootCall: root!.id, user };
  }, 60_000);

  afterAll(async () => {
    await h?.parley.stop();
    await fake?.close();
    await testDb?.drop();
  });

  it("sends every route to the sign-in page (pages) or answers 401 (JSON, event stream, media) when signed out", async () => {
    for (const path of ["/admin", "/admin/", "/admin/conversations", `/admin/conversations/${webConversation}`, "/admin/users", `/admin/users/${encodeURIComponent(webUser)}`, "/admin/logs", "/admin/no-such-page"]) {
      const res = await get(path);
      expect(res.status, path).toBe(302);
      expect(res.headers.get("location"), path).toBe("/admin/login");
    }
    for (const path of ["/admin/api/overview", "/admin/logs/stream", `/admin/media/${sha(PNG)}`]) {
      const res = await get(path);
      expect(res.status, path).toBe(401);
      expect(await res.json()).toEqual({ error: expect.stringContaining("Sign in") });
    }
    for (const path of [`/admin/users/${encodeURIComponent(webUser)}/status`, "/admin/logout"]) {
      const res = await post(path, { status: "blocked" });
      expect(res.status, path).toBe(302);
    }
    expect((await h.parley.database.db.select().from(users).where(eq(users.key, webUser)))[0]?.status).toBe("pending");
  });

  it("serves the sign-in page and its assets with a strict CSP and no-store", async () => {
    const { res, text } = await getText("/admin/login");
    expect(res.status).toBe(200);
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain("unsafe-inline");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    expect(res.headers.get("referrer-policy")).toBe("same-origin");
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(text).toContain('name="password"');
    expect(text).not.toMatch(/<script>|style=/);
    const css = await get("/admin/assets/admin.css");
    expect(css.status).toBe(200);
    expect(css.headers.get("content-type")).toMatch(/^text\/css/);
    const js = await get("/admin/assets/admin.js");
    expect(js.headers.get("content-type")).toMatch(/^text\/javascript/);
    expect((await get("/admin/assets/secrets.txt")).status).toBe(404);
  });

  it("signs in with an HttpOnly SameSite=Strict cookie and a new session id; the sign-in form's id stops working", async () => {
    const login = await get("/admin/login");
    const formCookie = cookieOf(login)!;
    const token = csrfOf(await login.text());

    const wrong = await post("/admin/login", { _csrf: token, password: "not the password" }, formCookie);
    expect(wrong.status).toBe(401);
    expect(await wrong.text()).toContain("Wrong password");

    const res = await post("/admin/login", { _csrf: token, password: PASSWORD }, formCookie);
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/admin/");
    const setCookie = res.headers.getSetCookie().find((c) => c.startsWith("parley_admin="))!;
    expect(setCookie).toMatch(/; HttpOnly/);
    expect(setCookie).toMatch(/; SameSite=Strict/);
    expect(setCookie).toMatch(/; Path=\/admin/);
    expect(setCookie).not.toMatch(/Secure/); // plain HTTP here; Secure is set on HTTPS requests
    const cookie = cookieOf(res)!;
    expect(cookie).not.toBe(formCookie);
    expect(cookie.length).toBeGreaterThan("parley_admin=".length + 40);

    expect((await get("/admin/", cookie)).status).toBe(200);
    expect((await get("/admin/", formCookie)).status).toBe(302);

    // Signing in again from a signed-in session rotates it too.
    const page = await getText("/admin/", cookie);
    const again = await post("/admin/login", { _csrf: csrfOf(page.text), password: PASSWORD }, cookie);
    expect(again.status).toBe(303);
    const rotated = cookieOf(again)!;
    expect(rotated).not.toBe(cookie);
    expect((await get("/admin/", rotated)).status).toBe(200);
    expect((await get("/admin/", cookie)).status).toBe(302);
  });

  it("refuses a sign-in without the form's CSRF token or from another origin", async () => {
    const login = await get("/admin/login");
    const formCookie = cookieOf(login)!;
    const token = csrfOf(await login.text());
    expect((await post("/admin/login", { password: PASSWORD }, formCookie)).status).toBe(403);
    expect((await post("/admin/login", { _csrf: "x".repeat(43), password: PASSWORD }, formCookie)).status).toBe(403);
    expect((await post("/admin/login", { _csrf: token, password: PASSWORD })).status).toBe(403);
    const crossSite = await post("/admin/login", { _csrf: token, password: PASSWORD }, formCookie, { origin: "http://evil.example" });
    expect(crossSite.status).toBe(403);
    expect(cookieOf(crossSite)).toBeUndefined();
  });

  it("signs out: the session is gone on the server, not only in the browser", async () => {
    const { cookie, csrf } = await signIn();
    const res = await post("/admin/logout", { _csrf: csrf }, cookie);
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/admin/login");
    expect(res.headers.getSetCookie().join()).toMatch(/parley_admin=;.*Max-Age=0/);
    // The old cookie, replayed, is worth nothing.
    expect((await get("/admin/", cookie)).status).toBe(302);
    expect((await get("/admin/api/overview", cookie)).status).toBe(401);
  });

  it("requires the session's CSRF token and a same-origin Origin for every POST", async () => {
    const { cookie, csrf } = await signIn();
    const other = await signIn();
    const path = `/admin/users/${encodeURIComponent(webUser)}/status`;
    const cases: Array<[string, Record<string, string>, Record<string, string>]> = [
      ["no token", { status: "blocked" }, {}],
      ["wrong token", { status: "blocked", _csrf: "A".repeat(43) }, {}],
      ["another session's token", { status: "blocked", _csrf: other.csrf }, {}],
      ["cross-origin Origin", { status: "blocked", _csrf: csrf }, { origin: "http://evil.example" }],
      ["opaque Origin", { status: "blocked", _csrf: csrf }, { origin: "null" }],
      ["cross-site fetch metadata", { status: "blocked", _csrf: csrf }, { "sec-fetch-site": "cross-site" }],
    ];
    for (const [name, form, headers] of cases) {
      const res = await post(path, form, cookie, headers);
      expect(res.status, name).toBe(403);
    }
    const db = h.parley.database.db;
    expect((await db.select().from(users).where(eq(users.key, webUser)))[0]?.status).toBe("pending");
    const ok = await post(path, { status: "allowed", _csrf: csrf }, cookie, { origin: base, "sec-fetch-site": "same-origin" });
    expect(ok.status).toBe(303);
    expect((await db.select().from(users).where(eq(users.key, webUser)))[0]?.status).toBe("allowed");
  });

  it("shows the overview: channels, counts, latency, cost, providers and a server-drawn chart", async () => {
    const { cookie } = await shared();
    const { res, text } = await getText("/admin/", cookie);
    expect(res.status).toBe(200);
    expect(text).toMatch(/<td><a href="\/admin\/conversations\?channel=web">web<\/a><\/td>\s*<td><span class="state state-running">running<\/span>/);
    expect(text).toContain('<svg class="chart"');
    expect(text).toMatch(/<rect class="bar"[^>]*><title>[^<]*: [1-9]\d* messages<\/title>/);
    expect(text).toContain("openai-compatible");
    expect(text).toContain("Latency p50 / p95");
    expect(text).not.toMatch(/ style=/);

    const json = await get("/admin/api/overview", cookie);
    expect(json.status).toBe(200);
    const body = (await json.json()) as { channels: Record<string, { state: string }>; messages: { day: number }; calls: { day: { calls: number; p50Ms: number } } };
    bodies.push(JSON.stringify(body));
    expect(body.channels.web?.state).toBe("running");
    expect(body.messages.day).toBeGreaterThanOrEqual(6);
    expect(body.calls.day.calls).toBeGreaterThanOrEqual(2);
    expect(body.calls.day.p50Ms).toBeGreaterThanOrEqual(0);
  });

  it("lists conversations with filters and search, and pages nothing larger than a page", async () => {
    const { cookie } = await shared();
    const all = await getText("/admin/conversations", cookie);
    expect(all.text).toContain(`/admin/conversations/${webConversation}"`);
    expect(all.text).toContain(`/admin/conversations/${seeded.conversation}"`);
    // The display name is text, never markup.
    expect(all.text).toContain("Mallory &lt;b onmouseover=alert(1)&gt;");
    expect(all.text).not.toContain("<b onmouseover");

    const onlyWeb = await getText("/admin/conversations?channel=web", cookie);
    expect(onlyWeb.text).toContain(`/admin/conversations/${webConversation}"`);
    expect(onlyWeb.text).not.toContain(`/admin/conversations/${seeded.conversation}"`);

    const withErrors = await getText("/admin/conversations?error=1", cookie);
    expect(withErrors.text).toContain(`/admin/conversations/${seeded.conversation}"`);
    expect(withErrors.text).not.toContain(`/admin/conversations/${webConversation}"`);

    const search = await getText(`/admin/conversations?q=${encodeURIComponent("second question")}`, cookie);
    expect(search.text).toContain(`/admin/conversations/${webConversation}"`);
    expect(search.text).not.toContain(`/admin/conversations/${seeded.conversation}"`);

    const byUser = await getText(`/admin/conversations?user=${encodeURIComponent(seeded.user)}&mode=contemplating`, cookie);
    expect(byUser.text).toContain(`/admin/conversations/${seeded.conversation}"`);
    expect(byUser.text).not.toContain(`/admin/conversations/${webConversation}"`);

    const today = new Date().toISOString().slice(0, 10);
    const inRange = await getText(`/admin/conversations?from=${today}&to=${today}`, cookie);
    expect(inRange.text).toContain(`/admin/conversations/${webConversation}"`);
    const past = await getText("/admin/conversations?from=2001-01-01&to=2001-01-02", cookie);
    expect(past.text).toContain("No conversations match.");

    // Junk parameters are ignored, not errors.
    const junk = await get("/admin/conversations?channel=nope&from=yesterday&before=1;drop&error[]=1", cookie);
    expect(junk.status).toBe(200);
  });

  it("shows a conversation's turns as text with the model calls under them", async () => {
    const { cookie } = await shared();
    const { res, text } = await getText(`/admin/conversations/${webConversation}`, cookie);
    expect(res.status).toBe(200);
    expect(text).toContain("&lt;script&gt;window.__pwned=1&lt;/script&gt;&lt;img src=x onerror=&quot;alert(1)&quot;&gt;");
    expect(text).not.toContain("<script>window.__pwned");
    expect(text).not.toContain('onerror="alert');
    // The inbox removes control characters before storing (src/core/clean-text.ts): the ANSI escape never arrives.
    expect(text).toContain(" [31mred[0m");
    expect(text).not.toContain("\u001b");
    expect(text).toContain("And a second question");
    expect(text).toContain(`echo: And a second question`);
    expect(text.match(/<li class="turn turn-/g)).toHaveLength(4);
    expect(text).toContain("<strong>openai-compatible:fake-model</strong>");
    expect(text).toMatch(/<dt>Tokens in \/ out<\/dt><dd>40 \/ 12<\/dd>/);
    expect(text).toMatch(/<summary>1 model call/);
    expect((await get("/admin/conversations/999999", cookie)).status).toBe(404);
    expect((await get("/admin/conversations/abc", cookie)).status).toBe(404);
  });

  it("nests model calls under their parent and shows media as thumbnails or downloads", async () => {
    const { cookie } = await shared();
    const { text } = await getText(`/admin/conversations/${seeded.conversation}`, cookie);
    expect(text).toMatch(/<summary>4 model calls, <span class="error-text">1 failed<\/span> · \$0\.00420<\/summary>/);
    const root = text.indexOf("<strong>anthropic:root-model</strong>");
    const nested = text.indexOf('<ul class="call-tree">', root);
    expect(root).toBeGreaterThan(0);
    expect(nested).toBeGreaterThan(root);
    for (const child of ["openai:agent-model-1", "google:agent-model-2", "openai:agent-model-3"]) {
      expect(text.indexOf(`<strong>${child}</strong>`)).toBeGreaterThan(nested);
    }
    expect(text).toContain("HTTP 500: &lt;img src=x onerror=alert(3)&gt;");
    expect(text).toContain(`<img src="/admin/media/${sha(PNG)}"`);
    expect(text).not.toContain(`<img src="/admin/media/${sha(SVG)}"`);
    expect(text).toContain(`<a class="file" href="/admin/media/${sha(SVG)}" download>`);

    const png = await get(`/admin/media/${sha(PNG)}`, cookie);
    expect(png.status).toBe(200);
    expect(png.headers.get("content-type")).toBe("image/png");
    expect(png.headers.get("content-security-policy")).toBe("default-src 'none'; sandbox");
    expect(png.headers.get("x-content-type-options")).toBe("nosniff");
    expect(Buffer.from(await png.arrayBuffer()).equals(PNG)).toBe(true);

    const svg = await get(`/admin/media/${sha(SVG)}`, cookie);
    expect(svg.status).toBe(200);
    expect(svg.headers.get("content-type")).toBe("application/octet-stream");
    expect(svg.headers.get("content-disposition")).toMatch(/^attachment;/);
    expect(svg.headers.get("content-security-policy")).toBe("default-src 'none'; sandbox");

    expect((await get(`/admin/media/${"0".repeat(64)}`, cookie)).status).toBe(404);
    expect((await get("/admin/media/..%2F..%2Fetc%2Fpasswd", cookie)).status).toBe(404);
  });

  it("lists users with usage, changes status and mode, and the conversation service obeys a block", async () => {
    const { cookie, csrf } = await shared();
    const list = await getText("/admin/users", cookie);
    expect(list.text).toContain(`href="/admin/users/${encodeURIComponent(webUser)}"`);
    expect(list.text).toContain(`href="/admin/users/${encodeURIComponent(seeded.user)}"`);
    const pending = await getText("/admin/users?status=pending", cookie);
    expect(pending.text).toContain(encodeURIComponent(seeded.user));
    expect(pending.text).not.toContain(encodeURIComponent(webUser)); // approved by the CSRF test

    const detail = await getText(`/admin/users/${encodeURIComponent(seeded.user)}`, cookie);
    expect(detail.text).toMatch(/<dt>Tokens in \/ out<\/dt><dd>500 \/ 170<\/dd>/);
    expect(detail.text).toContain("$0.00420");
    const web = await getText(`/admin/users/${encodeURIComponent(webUser)}`, cookie);
    expect(web.text).toMatch(/<dt>Messages sent<\/dt><dd>2<\/dd>/);
    expect(web.text).toMatch(/<dt>Model calls<\/dt><dd>2<\/dd>/);

    const path = `/admin/users/${encodeURIComponent(webUser)}`;
    const mode = await post(`${path}/mode`, { _csrf: csrf, mode: "thinking" }, cookie);
    expect(mode.status).toBe(303);
    const bad = await post(`${path}/mode`, { _csrf: csrf, mode: "reckless" }, cookie);
    expect(bad.status).toBe(404);
    const block = await post(`${path}/status`, { _csrf: csrf, status: "blocked" }, cookie);
    expect(block.status).toBe(303);
    expect(block.headers.get("location")).toBe(`${path}?notice=blocked`);
    const db = h.parley.database.db;
    const [row] = await db.select().from(users).where(eq(users.key, webUser));
    expect(row).toMatchObject({ status: "blocked", defaultMode: "thinking" });
    expect((await getText(`${path}?notice=blocked`, cookie)).text).toContain("The user is blocked.");

    // The next message of a blocked user is refused without a model call.
    const calls = fake.requests.length;
    await chat("am I still here?");
    const refused = await waitFor("the refusal", async () => {
      const rows = await db.select().from(inbox).where(and(eq(inbox.userKey, webUser), eq(inbox.state, "ignored")));
      return rows[0];
    });
    expect(refused.error).toBe("sender not allowed");
    expect(fake.requests.length).toBe(calls);
    expect((await get("/admin/users/not-a-key", cookie)).status).toBe(404);
  });

  it("deletes all of a user's data through the conversation store, only when confirmed", async () => {
    const { cookie, csrf } = await shared();
    const path = `/admin/users/${encodeURIComponent(seeded.user)}/delete`;
    expect((await post(path, { _csrf: csrf }, cookie)).status).toBe(400);
    const db = h.parley.database.db;
    expect(await db.select().from(users).where(eq(users.key, seeded.user))).toHaveLength(1);
    const res = await post(path, { _csrf: csrf, confirm: "yes" }, cookie);
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/admin/users?notice=deleted");
    expect(await db.select().from(users).where(eq(users.key, seeded.user))).toHaveLength(0);
    expect(await db.select().from(conversations).where(eq(conversations.userKey, seeded.user))).toHaveLength(0);
    expect(await db.select().from(modelCalls).where(eq(modelCalls.userKey, seeded.user))).toHaveLength(0);
    expect((await get(`/admin/conversations/${seeded.conversation}`, cookie)).status).toBe(404);
  });

  it("stores scrubbed log lines, pages and filters them, and streams new ones live", async () => {
    const { cookie } = await shared();
    const log = h.log.child({ source: "admin-test" });
    log.warn({ apiKey: API_KEY, note: `key=${API_KEY}` }, `stored-marker with ${API_KEY} <script>alert(1)</script>`);
    const db = h.parley.database.db;
    const [stored] = await waitFor("the stored line", async () => {
      const rows = await db.select().from(logs).where(eq(logs.source, "admin-test"));
      return rows.length > 0 ? rows : undefined;
    });
    expect(stored).toMatchObject({ level: "warn", source: "admin-test" });
    expect(stored!.message).toBe("stored-marker with [redacted] <script>alert(1)</script>");
    expect(JSON.stringify(stored!.data)).not.toContain(API_KEY);

    const page = await getText("/admin/logs?level=warn&source=admin-test", cookie);
    expect(page.text).toContain("stored-marker with [redacted] &lt;script&gt;alert(1)&lt;/script&gt;");
    expect((await getText("/admin/logs?level=error&source=admin-test", cookie)).text).not.toContain("stored-marker");
    expect((await getText("/admin/logs?q=STORED-MARKER", cookie)).text).toContain("stored-marker");
    expect((await getText("/admin/logs?q=no-such-text-anywhere", cookie)).text).toContain("No stored log lines match.");
    expect(page.text).toContain('data-stream="/admin/logs/stream?level=warn&amp;source=admin-test"');

    // The live tail: the backlog first, then a line written after the stream opened.
    const controller = new AbortController();
    const res = await fetch(`${base}/admin/logs/stream?source=admin-test`, { headers: { cookie }, signal: controller.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let received = "";
    const readUntil = async (needle: string) => {
      const deadline = Date.now() + 5_000;
      while (!received.includes(needle)) {
        if (Date.now() > deadline) throw new Error(`no ${needle} in the stream: ${received}`);
        const { value, done } = await reader.read();
        if (done) throw new Error("stream ended");
        received += decoder.decode(value, { stream: true });
      }
    };
    await readUntil("event: ready");
    expect(received).toContain("stored-marker");
    log.info("live-marker");
    h.log.child({ source: "other" }).info("filtered-out-marker");
    await readUntil("live-marker");
    expect(received).not.toContain("filtered-out-marker");

    // Signing out ends the stream: the next line is not sent to a session that no longer exists.
    const second = await signIn();
    const tail = await fetch(`${base}/admin/logs/stream?source=admin-test`, { headers: { cookie: second.cookie }, signal: controller.signal });
    const tailReader = tail.body!.getReader();
    let tailText = "";
    while (!tailText.includes("event: ready")) tailText += decoder.decode((await tailReader.read()).value, { stream: true });
    expect((await post("/admin/logout", { _csrf: second.csrf }, second.cookie)).status).toBe(303);
    log.info("after-sign-out-marker");
    for (;;) {
      const { value, done } = await tailReader.read();
      if (done) break;
      tailText += decoder.decode(value, { stream: true });
    }
    expect(tailText).not.toContain("after-sign-out-marker");
    controller.abort();
    expect(received).not.toContain(API_KEY);
    bodies.push(received);
  });

  it("deletes log lines older than LOG_RETENTION_DAYS", async () => {
    // The sink of this Parley deletes hourly; a second sink attached with a short period shows the same job at work.
    const db = h.parley.database.db;
    await db.insert(logs).values([
      { time: new Date(Date.now() - 15 * 24 * 3600 * 1000), level: "info", source: "retention", message: "too old" },
      { time: new Date(Date.now() - 13 * 24 * 3600 * 1000), level: "info", source: "retention", message: "recent enough" },
    ]);
    const sink = createLogSink({ tee: () => undefined, warn: () => undefined });
    sink.attach(db, { retentionDays: 14, retentionEveryMs: 50 });
    await waitFor("the old line to go", async () => (await db.select().from(logs).where(eq(logs.message, "too old"))).length === 0);
    await sink.detach();
    expect(await db.select().from(logs).where(eq(logs.message, "recent enough"))).toHaveLength(1);
  });

  it("pages every list at a fixed size", async () => {
    const { cookie } = await shared();
    const db = h.parley.database.db;
    const bulkUsers = Array.from({ length: 55 }, (_, i) => `telegram:9000${String(i).padStart(2, "0")}`);
    await db.insert(users).values(bulkUsers.map((key) => ({ key, channel: "telegram", displayName: `bulk user ${key}` })));
    const convs = await db.insert(conversations).values(bulkUsers.map((key) => ({ userKey: key, chatKey: key }))).returning();
    await db.insert(messages).values(convs.map((c) => ({ conversationId: c.id, role: "user" as const, text: "bulk hello", tokens: 2 })));
    const long = convs[0]!;
    await db.insert(messages).values(Array.from({ length: 59 }, (_, i) => ({ conversationId: long.id, role: "assistant" as const, text: `turn ${i}`, tokens: 1 })));
    await db.insert(logs).values(Array.from({ length: 120 }, (_, i) => ({ level: "info", source: "bulk", message: `bulk line ${i}` })));
    const count = (text: string, pattern: RegExp) => text.match(pattern)?.length ?? 0;
    const nextLink = (text: string, label: string) => {
      const match = text.match(new RegExp(`<a href="([^"]+)">${label} →</a>`));
      return match?.[1]?.replaceAll("&amp;", "&");
    };

    const first = await getText("/admin/conversations?q=bulk+hello", cookie);
    expect(count(first.text, /<td><a href="\/admin\/conversations\/\d+">/g)).toBe(50);
    const older = nextLink(first.text, "Older");
    expect(older).toMatch(/^\/admin\/conversations\?q=bulk\+hello&before=\d+\.\d+$/);
    const second = await getText(older!, cookie);
    expect(count(second.text, /<td><a href="\/admin\/conversations\/\d+">/g)).toBe(5);
    expect(nextLink(second.text, "Older")).toBeUndefined();

    const newest = await getText(`/admin/conversations/${long.id}`, cookie);
    expect(count(newest.text, /<li class="turn turn-/g)).toBe(50);
    expect(newest.text).toContain("turn 58");
    expect(newest.text).not.toContain("bulk hello");
    const olderTurns = newest.text.match(/<a href="([^"]+)">← Older turns<\/a>/)?.[1];
    const oldest = await getText(olderTurns!, cookie);
    expect(count(oldest.text, /<li class="turn turn-/g)).toBe(10);
    expect(oldest.text).toContain("bulk hello");
    expect(oldest.text).toContain("Newer turns →");

    const userPage = await getText("/admin/users?q=bulk+user", cookie);
    expect(count(userPage.text, /<td><a href="\/admin\/users\//g)).toBe(50);
    const userPage2 = await getText(nextLink(userPage.text, "Next")!, cookie);
    expect(count(userPage2.text, /<td><a href="\/admin\/users\//g)).toBe(5);

    const logPage = await getText("/admin/logs?source=bulk", cookie);
    expect(count(logPage.text, /bulk line \d+/g)).toBe(100);
    expect(logPage.text).toContain("bulk line 119");
    const logPage2 = await getText(nextLink(logPage.text, "Older")!, cookie);
    expect(count(logPage2.text, /bulk line \d+/g)).toBe(20);
    expect(logPage2.text).toContain("bulk line 0<");
  });

  it("never shows a secret on any page", () => {
    expect(bodies.length).toBeGreaterThan(20);
    for (const body of bodies) {
      expect(body).not.toContain(API_KEY);
      expect(body).not.toContain(PASSWORD);
      expect(body).not.toContain(h.webChatSecret);
    }
  });

  it("rate-limits failed sign-ins per socket address, whatever X-Forwarded-For says; another address still signs in", async () => {
    const login = await get("/admin/login");
    const formCookie = cookieOf(login)!;
    const token = csrfOf(await login.text());
    const statuses: number[] = [];
    // A successful sign-in clears the count, so ten failures in a row are needed.
    for (let i = 0; i < 10; i++) {
      const res = await post("/admin/login", { _csrf: token, password: `guess ${i}` }, formCookie, { "x-forwarded-for": `10.0.0.${i}` });
      statuses.push(res.status);
    }
    expect(statuses.every((s) => s === 401)).toBe(true);
    const blocked = await post("/admin/login", { _csrf: token, password: PASSWORD }, formCookie, { "x-forwarded-for": "203.0.113.9" });
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get("retry-after"))).toBeGreaterThan(200);
    expect(await blocked.text()).toContain("Too many failed sign-ins");
    expect(cookieOf(blocked)).toBeUndefined();
    expect(h.lines.join("")).toContain("admin sign-in failed");
    // The operator hears, once, that forwarding headers come from a hop TRUST_PROXY does not name.
    expect(h.lines.filter((line) => line.includes("from a hop TRUST_PROXY does not name"))).toHaveLength(1);
    // Another socket address is another client: the lockout of 127.0.0.1 is not everyone's.
    const other = await signInFrom(base, "127.0.0.2");
    expect(other.status).toBe(303);
    // An untrusted hop's X-Forwarded-Proto does not make the cookie Secure (nor does anything else on plain HTTP).
    expect(other.cookie).not.toMatch(/Secure/);
  });
});

/** One HTTP exchange with full control of the headers and of the local address the client connects from. */
function send(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string; localAddress?: string } = {},
): Promise<{ status: number; setCookies: string[]; body: string; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? "GET", headers: options.headers, localAddress: options.localAddress }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, setCookies: res.headers["set-cookie"] ?? [], body, headers: res.headers }));
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

const adminCookie = (setCookies: string[]) => setCookies.find((c) => c.startsWith("parley_admin="));

/** Fetches the sign-in form and posts `password` (default: the right one) from `localAddress`, with `headers` on both. */
async function signInFrom(base: string, localAddress: string, headers: Record<string, string> = {}, password = PASSWORD) {
  const form = await send(`${base}/admin/login`, { headers, localAddress });
  const formCookie = adminCookie(form.setCookies)!;
  const res = await send(`${base}/admin/login`, {
    method: "POST",
    localAddress,
    headers: { ...headers, "content-type": "application/x-www-form-urlencoded", cookie: formCookie.split(";")[0]! },
    body: new URLSearchParams({ _csrf: csrfOf(form.body), password }).toString(),
  });
  return { status: res.status, cookie: adminCookie(res.setCookies), formCookie, body: res.body, headers: res.headers };
}

describe("admin sign-in behind a trusted reverse proxy (TRUST_PROXY=loopback)", () => {
  let testDb: TestDatabase;
  let h: Harness;
  let base: string;
  /** A form session to post guesses with: the cookie and its CSRF token. */
  let form: { cookie: string; token: string };

  beforeAll(async () => {
    testDb = await createTestDatabase(DATABASE_KINDS[DATABASE_KINDS.length - 1]!);
    h = await startAdminParley(testDb, { ADMIN_PASSWORD: PASSWORD, TRUST_PROXY: "loopback" });
    base = h.parley.url;
    const login = await send(`${base}/admin/login`);
    form = { cookie: adminCookie(login.setCookies)!.split(";")[0]!, token: csrfOf(login.body) };
  }, 60_000);
  afterAll(async () => {
    await h?.parley.stop();
    await testDb?.drop();
  });

  /** A sign-in attempt that came through the proxy from `client`. */
  const attempt = (client: string, password: string, headers: Record<string, string> = {}) =>
    send(`${base}/admin/login`, {
      method: "POST",
      headers: { "x-forwarded-for": client, "content-type": "application/x-www-form-urlencoded", cookie: form.cookie, ...headers },
      body: new URLSearchParams({ _csrf: form.token, password }).toString(),
    });

  it("locks out the address that failed, not the right password from another address", async () => {
    for (let i = 0; i < 10; i++) expect((await attempt("203.0.113.10", `guess number ${i}`)).status).toBe(401);
    const locked = await attempt("203.0.113.10", PASSWORD);
    expect(locked.status).toBe(429);
    expect(locked.body).toContain("Too many failed sign-ins from your address");
    // A client writing its own X-Forwarded-For to the proxy does not escape: the proxy appends the address it saw.
    expect((await attempt("198.51.100.99, 203.0.113.10", PASSWORD)).status).toBe(429);

    const other = await signInFrom(base, "127.0.0.1", { "x-forwarded-for": "203.0.113.20" });
    expect(other.status).toBe(303);
    expect(other.cookie).toBeDefined();

    const logged = h.lines.join("");
    expect(logged).toMatch(/"client":"203\.0\.113\.10".*admin sign-in failed/);
    expect(logged).toMatch(/"client":"203\.0\.113\.20".*admin signed in/);
    expect(logged).not.toContain("guess number");
    expect(logged).not.toContain(PASSWORD);
  });

  it("makes the cookie Secure when the trusted proxy says the client used HTTPS", async () => {
    const https = await signInFrom(base, "127.0.0.1", { "x-forwarded-for": "203.0.113.30", "x-forwarded-proto": "https" });
    expect(https.status).toBe(303);
    expect(https.formCookie).toMatch(/; Secure/);
    expect(https.cookie).toMatch(/; Secure/);
    const plain = await signInFrom(base, "127.0.0.1", { "x-forwarded-for": "203.0.113.31", "x-forwarded-proto": "http" });
    expect(plain.status).toBe(303);
    expect(plain.cookie).not.toMatch(/Secure/);
  });

  it("slows guessing from many addresses to a bounded rate, and still lets the right password in", async () => {
    // At most 5 checks at once, then 2 per second, across all addresses: the k-th answer cannot come before (k-5)/2 s.
    const started = performance.now();
    const at: number[] = [];
    const guesses = Array.from({ length: 13 }, (_, i) =>
      attempt(`198.51.100.${i + 1}`, `flood guess ${i}`).then((res) => {
        at.push(performance.now() - started);
        return res.status;
      }),
    );
    const right = signInFrom(base, "127.0.0.1", { "x-forwarded-for": "203.0.113.40" });
    expect(await Promise.all(guesses)).toEqual(Array(13).fill(401));
    expect((await right).status).toBe(303);
    at.sort((a, b) => a - b);
    at.forEach((ms, i) => expect(ms, `answer ${i + 1}`).toBeGreaterThanOrEqual(((i + 1 - 5) / 2) * 1000 - 25));
    // The same address cannot queue a second guess while its first waits.
    const [first, second] = await Promise.all([attempt("198.51.100.200", "twin 1"), attempt("198.51.100.200", "twin 2")]);
    expect([first.status, second.status].sort()).toEqual([401, 429]);
  });
});

describe("without ADMIN_PASSWORD", () => {
  it("keeps the admin page off on loopback (404 everywhere) and says how to turn it on", async () => {
    const testDb = await createTestDatabase(DATABASE_KINDS[DATABASE_KINDS.length - 1]!);
    const h = await startAdminParley(testDb, {});
    try {
      for (const path of ["/admin", "/admin/", "/admin/login", "/admin/logs/stream", "/admin/assets/admin.js"]) {
        const res = await fetch(`${h.parley.url}${path}`, { redirect: "manual" });
        expect(res.status, path).toBe(404);
      }
      const login = await fetch(`${h.parley.url}/admin/login`, { method: "POST", body: "password=x", headers: { "content-type": "application/x-www-form-urlencoded" } });
      expect(login.status).toBe(404);
      expect(h.lines.join("")).toContain("the admin page is off: set ADMIN_PASSWORD");
      // The web chat does not need the admin page: it opens with the link printed at start.
      const operator = await openWebChat(h.parley.url, tokenOf(h.parley.webChatLink));
      expect((await fetch(`${h.parley.url}/chat`, { headers: { Cookie: operator.cookie } })).status).toBe(200);
    } finally {
      await h.parley.stop();
      await testDb.drop();
    }
  });

  it("decides: off with a warning when HOST is reachable from elsewhere, off quietly on loopback, on with a password", () => {
    expect(decideAdminAvailability("0.0.0.0", undefined)).toMatchObject({ type: "off", level: "warn" });
    expect(decideAdminAvailability("::", undefined)).toMatchObject({ type: "off", level: "warn" });
    expect(decideAdminAvailability("192.168.1.10", "")).toMatchObject({ type: "off", level: "warn" });
    for (const host of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"]) {
      expect(decideAdminAvailability(host, undefined), host).toMatchObject({ type: "off", level: "info" });
    }
    expect(decideAdminAvailability("0.0.0.0", "long enough secret")).toEqual({ type: "on", password: "long enough secret" });
  });
});
