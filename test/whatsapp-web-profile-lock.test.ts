import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { clearStaleProfileLock, processUsingProfile } from "../channels/whatsapp/profile-lock.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "parley-wa-lock-"));
  dirs.push(dir);
  return dir;
}

/** What Chromium leaves after being killed: two dangling symlinks and a cookie file. */
function leaveStaleLock(profileDir: string): void {
  mkdirSync(profileDir, { recursive: true });
  symlinkSync("deadhost-424242", join(profileDir, "SingletonLock"));
  symlinkSync("/tmp/.org.chromium.Chromium.gone/SingletonSocket", join(profileDir, "SingletonSocket"));
  writeFileSync(join(profileDir, "SingletonCookie"), "1234");
  writeFileSync(join(profileDir, "Local State"), "{}");
}

const present = (profileDir: string) => readdirSync(profileDir).filter((name) => name.startsWith("Singleton")).sort();

describe("clearStaleProfileLock", () => {
  it("removes a stale lock (dangling symlinks included) when no process uses the profile, and keeps the profile", () => {
    const profile = join(tempDir(), "whatsapp-session", "session");
    leaveStaleLock(profile);
    expect(present(profile)).toEqual(["SingletonCookie", "SingletonLock", "SingletonSocket"]);

    const outcome = clearStaleProfileLock(profile); // the real /proc: nothing runs with this fresh temp profile
    expect(outcome).toEqual({ kind: "cleared", files: ["SingletonLock", "SingletonSocket", "SingletonCookie"] });
    expect(present(profile)).toEqual([]);
    expect(existsSync(join(profile, "Local State"))).toBe(true);
  });

  it("keeps the lock while a Chromium runs with the profile", () => {
    const root = tempDir();
    const profile = join(root, "session");
    leaveStaleLock(profile);
    const proc = join(root, "proc");
    mkdirSync(join(proc, "4242"), { recursive: true });
    mkdirSync(join(proc, "77"), { recursive: true });
    mkdirSync(join(proc, "self"), { recursive: true });
    writeFileSync(join(proc, "77", "cmdline"), ["/usr/bin/bash", "-l", ""].join("\0"));
    writeFileSync(
      join(proc, "4242", "cmdline"),
      ["/usr/bin/chromium", "--headless=new", `--user-data-dir=${profile}`, "--no-sandbox", ""].join("\0"),
    );

    expect(processUsingProfile(profile, proc)).toBe(4242);
    expect(clearStaleProfileLock(profile, proc)).toEqual({ kind: "in-use", pid: 4242 });
    expect(lstatSync(join(profile, "SingletonLock")).isSymbolicLink()).toBe(true);
    expect(present(profile)).toHaveLength(3);
  });

  it("does nothing when there is no lock or no profile yet", () => {
    const root = tempDir();
    expect(clearStaleProfileLock(join(root, "missing"))).toEqual({ kind: "none" });
    mkdirSync(join(root, "clean"));
    expect(clearStaleProfileLock(join(root, "clean"))).toEqual({ kind: "none" });
  });
});
