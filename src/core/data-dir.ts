import { chmod, lstat, mkdir, readdir, realpath } from "node:fs/promises";
import path from "node:path";

/**
 * The data directory (PARLEY_DATA_DIR) holds the embedded database, the web chat's token and uploads, the WhatsApp
 * session and its QR code: it is the operator's alone. Directories are 0700 and files 0600 (owner bits kept, group
 * and other cleared), whatever the umask or whoever made them wider (PGlite writes its files 0666).
 *
 * Symlinks inside are never followed nor changed (chmod would change their target, which may be anything). The
 * directory itself is tightened before its contents, so from then on no other user can reach into it to swap an
 * entry for a link between the look and the change. Only the directory given may itself be a link: it is the
 * operator's choice of where the data lives, so its target is what gets tightened.
 */

export interface Tightened {
  dir: string;
  /** Files and directories whose group or other permission bits were cleared. */
  tightened: number;
  /** Entries that could not be changed (owned by another user), left as they were. */
  failed: number;
}

const OWNER = 0o700;
const GROUP_OTHER = 0o077;

/** Creates `dir` (0700) when it is missing, then clears group and other permissions on everything under it. */
export async function tightenDataDir(dir: string): Promise<Tightened> {
  try {
    await mkdir(dir, { recursive: true, mode: OWNER });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  const root = await realpath(dir);
  const info = await lstat(root);
  if (!info.isDirectory()) throw new Error(`the data directory ${dir} is not a directory (PARLEY_DATA_DIR)`);
  const result: Tightened = { dir, tightened: 0, failed: 0 };
  await tighten(root, info.mode, result);
  await walk(root, result);
  return result;
}

async function walk(dir: string, result: Tightened): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if (gone(error)) return;
    result.failed++;
    return;
  }
  for (const name of names) {
    const entry = path.join(dir, name);
    let info;
    try {
      info = await lstat(entry);
    } catch (error) {
      if (!gone(error)) result.failed++;
      continue;
    }
    if (info.isSymbolicLink()) continue;
    await tighten(entry, info.mode, result);
    if (info.isDirectory()) await walk(entry, result);
  }
}

async function tighten(entry: string, mode: number, result: Tightened): Promise<void> {
  if ((mode & GROUP_OTHER) === 0) return;
  try {
    await chmod(entry, mode & OWNER);
    result.tightened++;
  } catch (error) {
    if (!gone(error)) result.failed++;
  }
}

/** A file that went away between listing and changing it (PGlite's temporary files): nothing left to protect. */
function gone(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === "ENOENT";
}
