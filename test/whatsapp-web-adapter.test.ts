import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createWhatsAppWebChannel } from "../channels/whatsapp/adapter.ts";
import { DeliveryError, RateLimitedError, RefusedInputError } from "../src/core/errors.ts";
import type { InboundMessage, OnMessage, OutboundFile } from "../src/core/types.ts";
import {
  BOT_WID,
  fakeClientFactory,
  ManualTimers,
  settle,
  waMessage,
  type FakeWhatsAppClient,
} from "./fakes/whatsapp-web-client.ts";

const PERSON = "4915112345678@c.us";
const GROUP = "120363025246125888@g.us";
/** With random() = 0.5 the n-th restart waits ¾ of min(300 s, 2 s·2^n): 1.5 s, 3 s, 6 s, … */
const FIRST_BACKOFF = 1_500;

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "parley-wa-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface SetupOptions {
  onCreate?: (client: FakeWhatsAppClient) => void;
  onMessage?: OnMessage;
  /** Default: an empty directory, so no process ever "uses" the profile. */
  procRoot?: string;
  qrModules?: Record<string, unknown>;
}

async function setup(options: SetupOptions = {}) {
  const dataDir = tempDir();
  const timers = new ManualTimers();
  const factory = fakeClientFactory(options.onCreate);
  const lines: string[] = [];
  const log = pino({ level: "debug" }, { write: (line: string) => void lines.push(line) });
  const killed: number[] = [];
  const terminal: string[] = [];
  const received: InboundMessage[] = [];
  const { adapter } = createWhatsAppWebChannel({
    dataDir,
    chromiumPath: "/usr/bin/chromium",
    log,
    createClient: factory.create,
    timers,
    random: () => 0.5,
    clock: () => new Date("2030-01-01T00:00:00Z"),
    procRoot: "procRoot" in options ? options.procRoot : tempDir(),
    killProcess: (pid) => void killed.push(pid),
    qr: {
      loadModule: async (name) => {
        const found = options.qrModules?.[name];
        if (found === undefined) throw new Error(`Cannot find package '${name}'`);
        return found;
      },
      terminal: (text) => void terminal.push(text),
    },
  });
  const controller = new AbortController();
  cleanups.push(() => controller.abort());
  await adapter.start(options.onMessage ?? (async (m) => void received.push(m)), controller.signal);
  return {
    adapter,
    dataDir,
    timers,
    factory,
    killed,
    terminal,
    received,
    controller,
    logs: () => lines.join(""),
    client: () => factory.latest(),
  };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error("expected a rejection");
    },
    (error: unknown) => error,
  );
}

async function expectDeliveryError(promise: Promise<unknown>, retryable: boolean, message: RegExp): Promise<void> {
  const error = await rejection(promise);
  expect(error).toBeInstanceOf(DeliveryError);
  expect((error as DeliveryError).retryable).toBe(retryable);
  expect((error as DeliveryError).message).toMatch(message);
}

async function connectedSetup(options: SetupOptions = {}) {
  const t = await setup(options);
  t.client().connect();
  await settle();
  expect(t.adapter.status().state).toBe("running");
  return t;
}

describe("login", () => {
  it("starts without waiting for a scan, shows the QR code (status, log, file) and runs once linked", async () => {
    const t = await setup();
    expect(t.factory.clients).toHaveLength(1);
    const client = t.client();
    expect(client.initializeCalls).toBe(1);
    expect(client.options).toEqual({
      sessionDir: join(t.dataDir, "whatsapp-session"),
      chromiumPath: "/usr/bin/chromium",
      puppeteerArgs: expect.arrayContaining(["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]),
    });
    expect(t.adapter.status()).toEqual({ state: "starting", detail: "launching Chromium" });
    expect(t.adapter.limits).toEqual({ maxText: 4096, canEdit: false, canDraft: false });

    const qr = client.showQr();
    const status = t.adapter.status();
    expect(status.state).toBe("needs-login");
    expect(status.detail).toMatch(/scan the QR code/);
    expect(status.detail).toContain(qr);

    const qrFile = join(t.dataDir, "whatsapp-qr.txt");
    await vi.waitFor(() => expect(readFileSync(qrFile, "utf8")).toBe(`${qr}\n`), { timeout: 2000, interval: 10 });
    expect(existsSync(join(t.dataDir, "whatsapp-qr.png"))).toBe(false);
    await vi.waitFor(() => expect(t.logs()).toContain("no QR renderer is installed"), { timeout: 2000, interval: 10 });
    expect(t.logs()).toContain(qr);

    const second = client.showQr("2@refreshed,k,i,s,1");
    expect(t.adapter.status().detail).toContain(second);

    client.connect();
    expect(t.adapter.status()).toEqual({ state: "running", detail: `connected as ${BOT_WID}` });
    await vi.waitFor(() => expect(existsSync(qrFile)).toBe(false), { timeout: 2000, interval: 10 });
  });

  it("draws the QR code in the terminal and saves a PNG when qrcode-terminal and qrcode are installed", async () => {
    const t = await setup({
      qrModules: {
        "qrcode-terminal": {
          default: { generate: (text: string, _o: unknown, done: (drawing: string) => void) => done(`▄▄▄ ${text.length} ▄▄▄`) },
        },
        qrcode: { toFile: async (path: string, text: string) => writeFile(path, `PNG ${text}`) },
      },
    });
    const qr = t.client().showQr();
    const png = join(t.dataDir, "whatsapp-qr.png");
    await vi.waitFor(() => expect(readFileSync(png, "utf8")).toBe(`PNG ${qr}`), { timeout: 2000, interval: 10 });
    await vi.waitFor(() => expect(t.terminal.join("")).toContain(`▄▄▄ ${qr.length} ▄▄▄`), { timeout: 2000, interval: 10 });
    expect(t.logs()).toContain("scan the QR code shown in the terminal");
    expect(existsSync(join(t.dataDir, "whatsapp-qr.txt"))).toBe(false);
  });

  it("restores a saved session without a QR code", async () => {
    const t = await setup();
    t.client().connect();
    expect(t.adapter.status().state).toBe("running");
    expect(t.factory.clients).toHaveLength(1);
  });
});

describe("send", () => {
  it("converts Markdown to WhatsApp formatting, quotes the message it answers and returns the id", async () => {
    const t = await connectedSetup();
    const replyTo = `false_${PERSON}_3EB0CAFE`;
    const { id } = await t.adapter.send(`whatsapp:${PERSON}`, "# Plan\n**Bold** and *italic*, ~~gone~~", { replyTo });
    expect(id).toBe(`true_${PERSON}_3EB0SENT1`);
    expect(t.client().sent).toEqual([
      { chatId: PERSON, text: "*Plan*\n*Bold* and _italic_, ~gone~", options: { quotedMessageId: replyTo } },
    ]);

    await t.adapter.send(`whatsapp:${GROUP}`, "plain");
    expect(t.client().sent[1]).toEqual({ chatId: GROUP, text: "plain" });

    await t.adapter.typing!(`whatsapp:${PERSON}`);
    expect(t.client().typing).toEqual([PERSON]);

    // A rendering that would pass the limit (">q" gains a space) is sent as the Markdown it came from.
    const quotes = `${">q\n".repeat(1364)}>qqq`;
    expect(quotes).toHaveLength(4096);
    await t.adapter.send(`whatsapp:${PERSON}`, quotes);
    expect(t.client().sent[2]?.text).toBe(quotes);
  });

  it("refuses, retryably, while WhatsApp is not connected", async () => {
    const t = await setup();
    await expectDeliveryError(t.adapter.send(`whatsapp:${PERSON}`, "hi"), true, /WhatsApp is not connected/);
    t.client().showQr();
    await expectDeliveryError(t.adapter.send(`whatsapp:${PERSON}`, "hi"), true, /WhatsApp is not connected \(needs-login\)/);
    await expectDeliveryError(t.adapter.typing!(`whatsapp:${PERSON}`), true, /not connected/);
    t.client().authenticate();
    await expectDeliveryError(t.adapter.send(`whatsapp:${PERSON}`, "hi"), true, /not connected/);
    expect(t.client().sent).toEqual([]);
  });

  it("refuses for good what can never be sent", async () => {
    const t = await connectedSetup();
    await expectDeliveryError(t.adapter.send(`whatsapp:${PERSON}`, "x".repeat(4097)), false, /4097 characters exceed the limit of 4096/);
    await expectDeliveryError(t.adapter.send("telegram:12345", "hi"), false, /not a WhatsApp chat/);
    await expectDeliveryError(t.adapter.send("whatsapp:status@broadcast", "hi"), false, /not a WhatsApp chat/);
    expect(t.client().sent).toEqual([]);
  });

  it("maps the library's errors: an unknown chat is final, a page that went away is retryable", async () => {
    const t = await connectedSetup();
    t.client().sendError = new Error("Evaluation failed: Error: wid error: invalid wid");
    await expectDeliveryError(t.adapter.send(`whatsapp:${PERSON}`, "hi"), false, /failed for good/);
    t.client().sendError = new Error("Protocol error (Runtime.callFunctionOn): Session closed. Most likely the page has been closed.");
    await expectDeliveryError(t.adapter.send(`whatsapp:${PERSON}`, "hi"), true, /WhatsApp Web was reloading or closed/);
    t.client().sendError = "Invalid usage! Can only revoke the message its from own status broadcast"; // the library throws strings too
    await expectDeliveryError(t.adapter.send(`whatsapp:${PERSON}`, "hi"), false, /Invalid usage/);
  });
});

describe("sendFile", () => {
  const file = (extra: Partial<OutboundFile> = {}): OutboundFile => ({
    name: "parley-export-2030-01-01.jsonl",
    mimeType: "application/x-ndjson",
    bytes: new TextEncoder().encode('{"type":"user"}\n{"type":"message","text":"hi"}\n'),
    ...extra,
  });

  it("sends the file as a document (MessageMedia from base64, mime type, name, size) with its caption", async () => {
    const t = await connectedSetup();
    const sent = file({ caption: "Everything stored about you" });
    const { id } = await t.adapter.sendFile!(`whatsapp:${PERSON}`, sent);
    expect(id).toBe(`true_${PERSON}_3EB0SENT1`);
    expect(t.client().documents).toEqual([
      {
        chatId: PERSON,
        media: {
          mimetype: "application/x-ndjson",
          data: Buffer.from(sent.bytes).toString("base64"),
          filename: "parley-export-2030-01-01.jsonl",
          filesize: sent.bytes.byteLength,
        },
        options: { sendMediaAsDocument: true, caption: "Everything stored about you" },
      },
    ]);
    expect(Buffer.from(t.client().documents[0]!.media.data, "base64").toString("utf8")).toBe(new TextDecoder().decode(sent.bytes));
    expect(t.client().sent).toEqual([]);

    // In a group it quotes the message it answers; a long caption is cut to WhatsApp's 1024 characters.
    const replyTo = `false_${GROUP}_3EB0ASK_${PERSON}`;
    await t.adapter.sendFile!(`whatsapp:${GROUP}`, file({ caption: "x".repeat(2000) }), { replyTo });
    const second = t.client().documents[1]!;
    expect(second.chatId).toBe(GROUP);
    expect(second.options.quotedMessageId).toBe(replyTo);
    expect(second.options.caption).toHaveLength(1024);
    expect(second.options.caption?.endsWith("…")).toBe(true);

    // A view of a larger buffer is sent as its own bytes only.
    const backing = new TextEncoder().encode("HEADER:payload:TRAILER");
    await t.adapter.sendFile!(`whatsapp:${PERSON}`, file({ bytes: backing.subarray(7, 14) }));
    expect(Buffer.from(t.client().documents[2]!.media.data, "base64").toString("utf8")).toBe("payload");
    expect(t.client().documents[2]!.options).toEqual({ sendMediaAsDocument: true });
  });

  it("refuses, retryably, while WhatsApp is not connected", async () => {
    const t = await setup();
    await expectDeliveryError(t.adapter.sendFile!(`whatsapp:${PERSON}`, file()), true, /WhatsApp is not connected/);
    t.client().showQr();
    await expectDeliveryError(t.adapter.sendFile!(`whatsapp:${PERSON}`, file()), true, /not connected \(needs-login\)/);
    expect(t.client().documents).toEqual([]);
  });

  it("refuses for good what can never be sent", async () => {
    const t = await connectedSetup();
    await expectDeliveryError(t.adapter.sendFile!("telegram:12345", file()), false, /not a WhatsApp chat/);
    await expectDeliveryError(t.adapter.sendFile!(`whatsapp:${PERSON}`, file({ bytes: new Uint8Array(0) })), false, /is empty/);
    const huge = file({ bytes: new Uint8Array(100 * 1024 * 1024 + 1) });
    await expectDeliveryError(t.adapter.sendFile!(`whatsapp:${PERSON}`, huge), false, /documents up to 100 MB/);
    expect(t.client().documents).toEqual([]);
  });

  it("maps the library's errors like send, and a send without an id is not repeated", async () => {
    const t = await connectedSetup();
    t.client().sendError = new Error("Evaluation failed: Error: wid error: invalid wid");
    await expectDeliveryError(t.adapter.sendFile!(`whatsapp:${PERSON}`, file()), false, /WhatsApp sendFile failed for good/);
    t.client().sendError = new Error("Protocol error (Runtime.callFunctionOn): Target closed.");
    await expectDeliveryError(t.adapter.sendFile!(`whatsapp:${PERSON}`, file()), true, /sendFile failed \(WhatsApp Web was reloading or closed\)/);
    t.client().sendError = new Error("rate-overlimit");
    const limited = await rejection(t.adapter.sendFile!(`whatsapp:${PERSON}`, file()));
    expect(limited).toBeInstanceOf(RateLimitedError);
    t.client().sendError = undefined;
    t.client().sendDocument = async () => ({ id: { _serialized: "" } });
    await expectDeliveryError(t.adapter.sendFile!(`whatsapp:${PERSON}`, file()), false, /sent the file but returned no id/);
  });

  it("gives up waiting on a send that never answers, retryably, and has the watchdog look at once", async () => {
    const t = await connectedSetup();
    t.client().sendDocument = () => new Promise(() => {});
    t.client().hangGetState = true;
    const pending = rejection(t.adapter.sendFile!(`whatsapp:${PERSON}`, file()));
    await t.timers.advance(30_000);
    const error = await pending;
    expect(error).toBeInstanceOf(DeliveryError);
    expect((error as DeliveryError).retryable).toBe(true);
    expect((error as DeliveryError).message).toMatch(/sendFile got no answer within 30 s/);
    await t.timers.advance(10_000); // the check started by the timeout finds a page that does not answer
    expect(t.adapter.status()).toMatchObject({ state: "failed", detail: expect.stringMatching(/stopped answering/) });
  });
});

describe("survival", () => {
  it("restarts after a disconnect with backoff and runs again; the replaced client is ignored", async () => {
    const t = await connectedSetup();
    const first = t.client();
    first.disconnect("NAVIGATION");
    expect(t.adapter.status()).toMatchObject({ state: "starting" });
    expect(t.adapter.status().detail).toMatch(/disconnected \(NAVIGATION\); restarting WhatsApp Web in 1\.5 s \(attempt 1\)/);
    await expectDeliveryError(t.adapter.send(`whatsapp:${PERSON}`, "hi"), true, /not connected/);

    await t.timers.advance(FIRST_BACKOFF - 1);
    expect(first.destroyCalls).toBe(1);
    expect(t.factory.clients).toHaveLength(1);
    await t.timers.advance(1);
    expect(t.factory.clients).toHaveLength(2);
    expect(t.adapter.status().detail).toMatch(/launching Chromium \(last problem: WhatsApp Web disconnected \(NAVIGATION\)\)/);

    const second = t.client();
    expect(second.initializeCalls).toBe(1);
    second.connect();
    expect(t.adapter.status().state).toBe("running");
    first.disconnect("CONFLICT"); // a late event of the replaced client
    await t.timers.advance(60_000);
    expect(t.factory.clients).toHaveLength(2);
    expect((await t.adapter.send(`whatsapp:${PERSON}`, "back")).id).toMatch(/^true_/);
  });

  it("grows the backoff while restarts keep failing, and resets it once ready", async () => {
    const t = await setup({
      onCreate: (client) => {
        if (client.index <= 2) client.initializeError = new Error("Failed to launch the browser process! spawn /usr/bin/chromium ENOENT");
      },
    });
    await settle();
    expect(t.adapter.status().state).toBe("failed");
    expect(t.adapter.status().detail).toMatch(/could not start: .*ENOENT \(is Chromium installed at \/usr\/bin\/chromium\? set CHROMIUM_PATH\); restarting WhatsApp Web in 1\.5 s/);
    await t.timers.advance(FIRST_BACKOFF);
    expect(t.factory.clients).toHaveLength(2);
    expect(t.adapter.status().detail).toMatch(/restarting WhatsApp Web in 3 s \(attempt 2\)/);
    await t.timers.advance(2_999);
    expect(t.factory.clients).toHaveLength(2);
    await t.timers.advance(1);
    expect(t.factory.clients).toHaveLength(3);
    t.client().connect();
    t.client().disconnect("TIMEOUT");
    expect(t.adapter.status().detail).toMatch(/in 1\.5 s \(attempt 1\)/);
  });

  it("on LOGOUT asks for a new link and starts one fresh client for the QR code, without a restart loop", async () => {
    const t = await connectedSetup();
    t.client().disconnect("LOGOUT");
    expect(t.adapter.status().state).toBe("needs-login");
    expect(t.adapter.status().detail).toMatch(/logged this device out.*a new QR code will be shown/);

    await t.timers.advance(1_999); // the library deletes the stale session meanwhile
    expect(t.factory.clients).toHaveLength(1);
    await t.timers.advance(1);
    expect(t.factory.clients).toHaveLength(2);
    expect(t.adapter.status()).toMatchObject({ state: "needs-login", detail: expect.stringMatching(/opening WhatsApp Web for a new QR code/) });
    const qr = t.client().showQr();
    expect(t.adapter.status().detail).toMatch(/logged this device out.*scan the QR code/);
    expect(t.adapter.status().detail).toContain(qr);

    t.client().disconnect("LOGOUT");
    await t.timers.advance(24 * 3600_000);
    expect(t.factory.clients).toHaveLength(2);
    expect(t.adapter.status().state).toBe("needs-login");
    expect(t.adapter.status().detail).toMatch(/restart Parley to show a new QR code/);
    expect(t.logs()).toContain("it will not be restarted automatically");
  });

  it("after a new link, a later LOGOUT again gets one fresh client", async () => {
    const t = await connectedSetup();
    t.client().disconnect("LOGOUT");
    await t.timers.advance(2_000);
    t.client().showQr();
    t.client().connect();
    expect(t.adapter.status().state).toBe("running");
    t.client().disconnect("LOGOUT");
    await t.timers.advance(2_000);
    expect(t.factory.clients).toHaveLength(3);
    t.client().showQr(); // waiting for the scan, however long it takes
    await t.timers.advance(3600_000);
    expect(t.factory.clients).toHaveLength(3);
  });

  it("restarts a client whose getState() never answers (a browser that died silently)", async () => {
    const t = await connectedSetup();
    await t.timers.advance(5 * 60_000); // healthy: the watchdog asks every 30 s and is answered
    expect(t.factory.clients).toHaveLength(1);

    const first = t.client();
    first.hangGetState = true;
    await t.timers.advance(30_000 + 9_999);
    expect(t.adapter.status().state).toBe("running");
    await t.timers.advance(1);
    expect(t.adapter.status()).toMatchObject({ state: "failed", detail: expect.stringMatching(/stopped answering \(no state within 10 s\)/) });
    expect(first.destroyCalls).toBe(1);
    await t.timers.advance(FIRST_BACKOFF);
    expect(t.factory.clients).toHaveLength(2);
  });

  it("restarts a ready client that stays disconnected for three checks", async () => {
    const t = await connectedSetup();
    t.client().state = "TIMEOUT";
    await t.timers.advance(60_000);
    expect(t.adapter.status()).toEqual({ state: "running", detail: "WhatsApp Web reports TIMEOUT" });
    await t.timers.advance(30_000);
    expect(t.adapter.status().detail).toMatch(/stayed TIMEOUT for 3 checks/);
    await t.timers.advance(FIRST_BACKOFF);
    expect(t.factory.clients).toHaveLength(2);
  });

  it("carries on when destroy() hangs: the browser is killed and the new client starts after the timeout", async () => {
    const t = await connectedSetup({
      onCreate: (client) => {
        client.pid = 40_000 + client.index;
        client.hangDestroy = client.index === 1;
      },
    });
    t.client().disconnect("CONFLICT");
    expect(t.adapter.status().detail).toMatch(/CONFLICT: WhatsApp Web was opened on another computer/);
    await t.timers.advance(9_999);
    expect(t.factory.clients).toHaveLength(1);
    expect(t.killed).toEqual([]);
    await t.timers.advance(1);
    expect(t.killed).toEqual([40_001]);
    expect(t.factory.clients).toHaveLength(2);
    expect(t.logs()).toContain("did not finish within 10 s; carrying on");
  });

  it("restarts when WhatsApp Web logs in but never becomes ready, and says so", async () => {
    const t = await setup();
    t.client().authenticate();
    expect(t.adapter.status()).toEqual({ state: "starting", detail: "logged in; loading WhatsApp Web" });
    await t.timers.advance(59_999);
    expect(t.factory.clients).toHaveLength(1);
    await t.timers.advance(1);
    const status = t.adapter.status();
    expect(status.state).toBe("failed");
    expect(status.detail).toMatch(/logged in but did not become ready within 60 s/);
    await expectDeliveryError(t.adapter.send(`whatsapp:${PERSON}`, "hi"), true, /not connected \(failed\)/);
    await t.timers.advance(FIRST_BACKOFF);
    expect(t.factory.clients).toHaveLength(2);
    expect(t.adapter.status().detail).toMatch(/last problem: WhatsApp Web logged in but did not become ready/);
  });

  it("replaces a launch that shows neither a QR code nor a login nor progress", async () => {
    const t = await setup();
    await t.timers.advance(170_000);
    t.client().loading(40); // a big account syncing slowly is not stuck
    expect(t.adapter.status()).toEqual({ state: "starting", detail: "loading WhatsApp Web (40 %)" });
    await t.timers.advance(179_999);
    expect(t.factory.clients).toHaveLength(1);
    await t.timers.advance(1);
    expect(t.adapter.status().detail).toMatch(/did not load within 180 s/);
    await t.timers.advance(FIRST_BACKOFF);
    expect(t.factory.clients).toHaveLength(2);
  });

  it("a session the server refuses asks for a new login", async () => {
    const t = await setup();
    t.client().failAuth();
    expect(t.adapter.status()).toMatchObject({ state: "needs-login", detail: expect.stringMatching(/refused the saved session/) });
    await t.timers.advance(FIRST_BACKOFF);
    expect(t.factory.clients).toHaveLength(2);
  });

  it("clears a stale Chromium profile lock before launching when no Chromium runs", async () => {
    const dataDirLocks: boolean[] = [];
    // The lock is planted where LocalAuth keeps the profile; the check before launch reads the real /proc.
    const t = await setup({
      procRoot: undefined,
      onCreate: (client) => {
        const profile = join(client.options.sessionDir, "session");
        dataDirLocks.push(existsSync(join(profile, "SingletonCookie")));
        if (client.index === 1) {
          mkdirSync(profile, { recursive: true });
          symlinkSync("gone-host-999", join(profile, "SingletonLock"));
          writeFileSync(join(profile, "SingletonCookie"), "1");
        }
      },
    });
    t.client().connect();
    t.client().disconnect("NAVIGATION");
    await t.timers.advance(FIRST_BACKOFF);
    expect(t.factory.clients).toHaveLength(2);
    expect(dataDirLocks).toEqual([false, false]);
    expect(t.logs()).toContain("removed a stale Chromium profile lock");
  });

  it("stops when the signal aborts: the client is destroyed and nothing restarts", async () => {
    const t = await connectedSetup();
    t.controller.abort();
    expect(t.adapter.status()).toEqual({ state: "stopped" });
    await settle();
    expect(t.client().destroyCalls).toBe(1);
    t.client().disconnect("NAVIGATION");
    await t.timers.advance(600_000);
    expect(t.factory.clients).toHaveLength(1);
    await expectDeliveryError(t.adapter.send(`whatsapp:${PERSON}`, "hi"), true, /not connected \(stopped\)/);
  });
});

describe("receiving", () => {
  it("delivers a message again when storing it failed, and never drops it", async () => {
    const calls: InboundMessage[] = [];
    const t = await connectedSetup({
      onMessage: async (m) => {
        calls.push(m);
        if (calls.length <= 2) throw new Error("database unavailable");
      },
    });
    t.client().receive(waMessage({ chat: PERSON, body: "remember me", notifyName: "Anna" }));
    await settle();
    expect(calls).toHaveLength(1);
    expect(t.logs()).toContain("storing a WhatsApp message failed");
    await t.timers.advance(749); // first retry after ¾ of 1 s
    expect(calls).toHaveLength(1);
    await t.timers.advance(1);
    expect(calls).toHaveLength(2);
    await t.timers.advance(1_500);
    expect(calls).toHaveLength(3);
    expect(new Set(calls.map((m) => m.platformMessageId)).size).toBe(1);
    expect(calls[2]).toMatchObject({ text: "remember me", user: `whatsapp:${PERSON}`, displayName: "Anna" });
    await t.timers.advance(600_000);
    expect(calls).toHaveLength(3);
    expect(t.logs()).toContain("WhatsApp message stored after retrying");
  });

  it("skips a message of the wrong shape with one log line, without its values, and takes the next one", async () => {
    const t = await connectedSetup();
    const client = t.client();
    const numericId = waMessage({ chat: PERSON, body: "numeric id" });
    (numericId.id as { _serialized: unknown })._serialized = 4242;
    const objectBody = waMessage({ chat: PERSON });
    (objectBody as { body: unknown }).body = { text: "object body secret" };
    const numericName = waMessage({ chat: PERSON, body: "numeric name" });
    numericName._data = { notifyName: 42 as never };
    const stringMentions = waMessage({ chat: GROUP, author: PERSON, body: "mentions", mentionedIds: [] });
    (stringMentions as { mentionedIds: unknown }).mentionedIds = BOT_WID;
    for (const m of [numericId, objectBody, numericName, stringMentions]) client.receive(m);
    client.receive(waMessage({ chat: PERSON, body: "a good one", notifyName: "Anna" }));
    await settle();
    expect(t.received).toEqual([expect.objectContaining({ text: "a good one", displayName: "Anna" })]);
    const skipped = t.logs().split("\n").filter((line) => line.includes("unreadable WhatsApp message skipped"));
    expect(skipped).toHaveLength(4);
    expect(skipped.join("")).not.toContain("object body secret");
  });

  it("ignores the bot's own messages and status updates, and survives garbage events", async () => {
    const t = await connectedSetup();
    const client = t.client();
    client.receive(waMessage({ chat: PERSON, body: "from my phone", fromMe: true }));
    client.receive(waMessage({ chat: "status@broadcast", author: PERSON, body: "story" }));
    expect(() => client.emitRaw("message", {})).not.toThrow();
    expect(() => client.emitRaw("message", null)).not.toThrow();
    expect(() => client.emitRaw("disconnected")).not.toThrow();
    await settle();
    expect(t.received).toEqual([]);
    expect(t.logs()).toContain("unreadable WhatsApp message skipped");

    await t.timers.advance(FIRST_BACKOFF);
    const next = t.client();
    next.connect();
    next.receive(waMessage({ chat: GROUP, author: PERSON, body: "@15550001111 hi", mentionedIds: [BOT_WID], quoted: { fromMe: true } }));
    await settle();
    expect(t.received).toEqual([expect.objectContaining({ chat: `whatsapp:${GROUP}`, mentionsBot: true, replyToBot: true, text: "hi" })]);
  });
});

describe("download", () => {
  const image = Buffer.from("fake jpeg bytes, not a real image");

  async function withImage(spec: { size?: number; media?: { mimetype: string; data: string; filesize?: number | null } }) {
    const t = await connectedSetup();
    t.client().receive(
      waMessage({ chat: PERSON, type: "image", body: "look", mimetype: "image/jpeg", hasMedia: true, media: spec.media ?? null, ...spec }),
    );
    await settle();
    const attachment = t.received[0]?.attachments[0];
    expect(attachment).toMatchObject({ kind: "image", mimeType: "image/jpeg" });
    return { t, attachment: attachment! };
  }

  it("returns the bytes of media within the cap", async () => {
    const { t, attachment } = await withImage({ media: { mimetype: "image/jpeg", data: image.toString("base64"), filesize: image.length } });
    const bytes = await t.adapter.download!(attachment, 1024, new AbortController().signal);
    expect(Buffer.from(bytes).equals(image)).toBe(true);
  });

  it("refuses media over the cap with a message for the user, before downloading when the size is known", async () => {
    const declared = await withImage({ size: 8 * 1024 * 1024, media: { mimetype: "image/jpeg", data: image.toString("base64") } });
    expect(declared.attachment.sizeBytes).toBe(8 * 1024 * 1024);
    const spy = vi.spyOn(declared.t.client(), "getMessageById");
    const refused = await rejection(declared.t.adapter.download!(declared.attachment, 5 * 1024 * 1024, new AbortController().signal));
    expect(refused).toBeInstanceOf(RefusedInputError);
    expect((refused as RefusedInputError).userMessage).toBe("That file is too large for me (8 MB): the limit is 5 MB.");
    expect(spy).not.toHaveBeenCalled();

    const undeclared = await withImage({ media: { mimetype: "image/jpeg", data: Buffer.alloc(3000).toString("base64") } });
    expect(undeclared.attachment.sizeBytes).toBeUndefined();
    const late = await rejection(undeclared.t.adapter.download!(undeclared.attachment, 2048, new AbortController().signal));
    expect(late).toBeInstanceOf(RefusedInputError);

    const reported = await withImage({ media: { mimetype: "image/jpeg", data: "AAAA", filesize: 10_000 } });
    await expect(reported.t.adapter.download!(reported.attachment, 2048, new AbortController().signal)).rejects.toBeInstanceOf(RefusedInputError);
  });

  it("says when the media cannot be fetched, and refuses while disconnected", async () => {
    const { t, attachment } = await withImage({});
    await expectDeliveryError(t.adapter.download!(attachment, 1024, new AbortController().signal), true, /could not download the media/);
    t.client().stored.clear();
    await expectDeliveryError(t.adapter.download!(attachment, 1024, new AbortController().signal), false, /no longer has the message/);
    t.client().disconnect("NAVIGATION");
    await expectDeliveryError(t.adapter.download!(attachment, 1024, new AbortController().signal), true, /not connected/);
  });
});
