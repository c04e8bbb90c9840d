import { chmod, lstat, mkdir, mkdtemp, readlink, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { tightenDataDir } from "../src/core/data-dir.ts";

/** The data directory is the operator's alone: tightened on a real directory tree, symlinks never followed. */

const modeOf = async (file: string) => (await lstat(file)).mode & 0o7777;

describe("tightenDataDir", () => {
  let root: string;
  let dataDir: string;
  let outside: string;

  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), "parley-data-dir-"));
    dataDir = path.join(root, "data");
    outside = path.join(root, "outside");
    // Made wide on purpose, past any umask: what an old PGlite or a careless copy leaves behind.
    await mkdir(path.join(dataDir, "pglite", "base", "1"), { recursive: true });
    await mkdir(path.join(outside, "dir"), { recursive: true });
    for (const file of ["pglite/PG_VERSION", "pglite/base/1/1259", "web-chat-token", "whatsapp-qr.png"]) {
      await writeFile(path.join(dataDir, file), "x");
      await chmod(path.join(dataDir, file), 0o666);
    }
    for (const dir of ["", "pglite", "pglite/base", "pglite/base/1"]) await chmod(path.join(dataDir, dir), 0o777);
    await writeFile(path.join(outside, "secret.txt"), "not Parley's");
    await chmod(path.join(outside, "secret.txt"), 0o666);
    await chmod(path.join(outside, "dir"), 0o777);
    // Links from inside the data directory to things outside it: a file and a directory.
    await symlink(path.join(outside, "secret.txt"), path.join(dataDir, "link-to-file"));
    await symlink(path.join(outside, "dir"), path.join(dataDir, "pglite", "link-to-dir"));
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  it("makes every directory 0700 and every file 0600, and counts what it changed", async () => {
    const result = await tightenDataDir(dataDir);

    for (const dir of ["", "pglite", "pglite/base", "pglite/base/1"]) expect([dir, await modeOf(path.join(dataDir, dir))]).toEqual([dir, 0o700]);
    for (const file of ["pglite/PG_VERSION", "pglite/base/1/1259", "web-chat-token", "whatsapp-qr.png"]) {
      expect([file, await modeOf(path.join(dataDir, file))]).toEqual([file, 0o600]);
    }
    expect(result).toEqual({ dir: dataDir, tightened: 8, failed: 0 });
  });

  it("never follows a symlink: what it points to outside the data directory keeps its mode", async () => {
    await tightenDataDir(dataDir);

    expect(await modeOf(path.join(dataDir, "pglite"))).toBe(0o700); // the directory holding a link is tightened

    expect(await modeOf(path.join(outside, "secret.txt"))).toBe(0o666);
    expect(await modeOf(path.join(outside, "dir"))).toBe(0o777);
    expect(await readlink(path.join(dataDir, "link-to-file"))).toBe(path.join(outside, "secret.txt"));
    expect((await lstat(path.join(dataDir, "pglite", "link-to-dir"))).isSymbolicLink()).toBe(true);
  });

  it("leaves what is already tight alone, so a second run changes nothing", async () => {
    expect((await tightenDataDir(dataDir)).tightened).toBe(8);
    await chmod(path.join(dataDir, "web-chat-token"), 0o400);

    expect(await tightenDataDir(dataDir)).toEqual({ dir: dataDir, tightened: 0, failed: 0 });
    expect(await modeOf(path.join(dataDir, "web-chat-token"))).toBe(0o400);
  });

  it("creates a missing data directory 0700", async () => {
    const fresh = path.join(root, "new", "data");

    expect(await tightenDataDir(fresh)).toEqual({ dir: fresh, tightened: 0, failed: 0 });
    expect((await stat(fresh)).mode & 0o777).toBe(0o700);
  });

  it("refuses a data directory that is a file, with an error naming it", async () => {
    await writeFile(path.join(root, "file"), "x");

    await expect(tightenDataDir(path.join(root, "file"))).rejects.toThrow(`${path.join(root, "file")} is not a directory`);
  });
});
