import { existsSync } from "node:fs";
import { chmod, lstat, mkdir, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { fakeClientFactory, type FakeClientFactory } from "./fakes/whatsapp-web-client.ts";
import { createTestDatabase, type TestDatabase } from "./support/databases.ts";
import { solidJpeg } from "./support/images.ts";
import { startTestParley, type TestParley } from "./support/parley.ts";
import { openWebChat, tokenOf } from "./support/web-chat.ts";

/**
 * Everything Parley keeps in its data directory on PGlite (the database, the web chat's token and uploads, the
 * WhatsApp session and QR code) is the operator's alone once it runs: nothing is readable by group or others, even
 * what an earlier version or PGlite itself (0666) left wider. The test process' umask (022) is not Parley's to set.
 */

const waitFor = <T>(check: () => T | Promise<T>) => vi.waitFor(check, { timeout: 15_000, interval: 25 });

/** Every entry under `dir` (and `dir` itself) whose mode lets group or others in, as "path 0644". */
async function openToOthers(dir: string): Promise<string[]> {
  const wide: string[] = [];
  const entries = ["", ...(await readdir(dir, { recursive: true })).map(String)];
  for (const entry of entries) {
    const info = await lstat(path.join(dir, entry));
    if (!info.isSymbolicLink() && (info.mode & 0o077) !== 0) wide.push(`${entry || "."} ${(info.mode & 0o777).toString(8)}`);
  }
  return wide;
}

describe("the data directory on PGlite", () => {
  let db: TestDatabase;
  let dataDir: string;
  let factory: FakeClientFactory;
  let parley: TestParley | undefined;

  beforeEach(async () => {
    db = await createTestDatabase("pglite");
    dataDir = db.env.PARLEY_DATA_DIR!;
    factory = fakeClientFactory();
    // What an older Parley left: a wide data directory and a Chromium profile file anyone could read.
    await mkdir(path.join(dataDir, "whatsapp-session", "session", "Default"), { recursive: true, mode: 0o777 });
    await writeFile(path.join(dataDir, "whatsapp-session", "session", "Default", "Cookies"), "x");
    await chmod(path.join(dataDir, "whatsapp-session", "session", "Default", "Cookies"), 0o666);
    await chmod(dataDir, 0o777);
    expect((await openToOthers(dataDir)).length).toBeGreaterThan(100); // PGlite's own files are 0666
  });
  afterEach(async () => {
    await parley?.stop();
    parley = undefined;
    await db.drop();
  });

  it("is the operator's alone after start, with uploads and the QR code written since; said once in the log", async () => {
    parley = await startTestParley(db, { WHATSAPP_WEB: "true" }, { createWhatsAppClient: factory.create });
    // Written while running: a login QR code and a web chat upload.
    factory.latest().showQr();
    await waitFor(() => expect(parley!.adapters.get("whatsapp")?.status().state).toBe("needs-login"));
    await waitFor(() => expect(existsSync(path.join(dataDir, "whatsapp-qr.png"))).toBe(true));
    const chat = await openWebChat(parley.url, tokenOf(parley.webChatLink));
    expect((await chat.upload(await solidJpeg(20, 20), "image/jpeg")).status).toBe(201);

    expect(await openToOthers(dataDir)).toEqual([]);
    const said = parley.logs.lines.map((line) => JSON.parse(line) as { msg: string; dir?: string; files?: number })
      .filter((line) => line.msg.includes("open to other users"));
    expect(said).toHaveLength(1);
    expect(said[0]).toMatchObject({ dir: dataDir, files: expect.any(Number) });
    expect(said[0]!.files).toBeGreaterThan(100);

    await parley.stop();
    parley = undefined;
    expect(await openToOthers(dataDir)).toEqual([]);
  });
});
