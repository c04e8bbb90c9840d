import { lstatSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";

/**
 * Chromium marks a profile as in use with three files in its directory. After an unclean stop (a container killed,
 * a browser SIGKILLed) they stay behind and the next Chromium refuses the profile ("The profile appears to be in
 * use by another Chromium process"). They are removed only when no running process has the profile on its command
 * line, so a live browser, ours or anyone's, is never robbed of its lock.
 */

export const PROFILE_LOCK_FILES = ["SingletonLock", "SingletonSocket", "SingletonCookie"] as const;

export type ProfileLockOutcome =
  | { kind: "none" }
  | { kind: "cleared"; files: string[] }
  | { kind: "in-use"; pid: number };

export function clearStaleProfileLock(profileDir: string, procRoot = "/proc"): ProfileLockOutcome {
  const present = PROFILE_LOCK_FILES.filter((name) => exists(join(profileDir, name)));
  if (present.length === 0) return { kind: "none" };
  const pid = processUsingProfile(profileDir, procRoot);
  if (pid !== undefined) return { kind: "in-use", pid };
  for (const name of present) rmSync(join(profileDir, name), { force: true });
  return { kind: "cleared", files: present };
}

/** The id of a process whose command line names the profile directory (e.g. --user-data-dir=<dir>), if any. */
export function processUsingProfile(profileDir: string, procRoot = "/proc"): number | undefined {
  const wanted = resolve(profileDir);
  let entries: string[];
  try {
    entries = readdirSync(procRoot);
  } catch {
    return undefined; // no /proc (not Linux): nothing to compare against
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(join(procRoot, entry, "cmdline"), "utf8");
    } catch {
      continue; // the process ended meanwhile, or is not ours to read
    }
    if (cmdline.split("\0").some((arg) => mentionsDir(arg, wanted))) return Number(entry);
  }
  return undefined;
}

function mentionsDir(arg: string, dir: string): boolean {
  const value = arg.startsWith("--user-data-dir=") ? arg.slice("--user-data-dir=".length) : arg;
  if (value === "") return false;
  return resolve(value) === dir;
}

/** lstat, not exists: SingletonLock and SingletonSocket are symlinks, usually dangling after a crash. */
function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
