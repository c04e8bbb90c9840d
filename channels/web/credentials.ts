import { randomBytes } from "node:crypto";
import { chmod, link, mkdir, open, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";

/**
 * The web chat's two secrets, kept in the data directory so a restart keeps them:
 * - `web-chat-token`: the operator's credential, the `#token=…` of the link printed at start (and shown on the admin
 *   page). Whoever has it is the operator; delete the file and restart to make a new one (old links and the sessions
 *   they opened stop working).
 * - `web-chat-secret`: the key that signs the session cookies (the operator's, and a public chat's visitors'), so a
 *   page cannot mint or alter one.
 * Each is 32 random bytes (base64url), written mode 0600 whatever the umask, published by a hard link so that two
 * processes starting at once agree on one value, and tightened to 0600 when found wider. A file that does not hold a
 * value of that shape (cut short, edited by hand) is replaced by a new one: a weak value is never used.
 */

export interface WebChatCredentials {
  token: string;
  secret: string;
}

export const TOKEN_FILE = "web-chat-token";
export const SECRET_FILE = "web-chat-secret";
const VALUE = /^[A-Za-z0-9_-]{43}$/;

/** What loading found and fixed, for one log line each (no value is ever part of a note). */
export type CredentialNote = { type: "created" | "replaced" | "tightened"; file: string };

export async function loadWebChatCredentials(dataDir: string): Promise<{ credentials: WebChatCredentials; notes: CredentialNote[] }> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const notes: CredentialNote[] = [];
  const token = await loadOrCreate(join(dataDir, TOKEN_FILE), notes);
  const secret = await loadOrCreate(join(dataDir, SECRET_FILE), notes);
  return { credentials: { token, secret }, notes };
}

async function loadOrCreate(path: string, notes: CredentialNote[]): Promise<string> {
  const found = await readValue(path);
  if (found.type === "ok") {
    if ((found.mode & 0o077) !== 0) {
      await chmod(path, 0o600);
      notes.push({ type: "tightened", file: path });
    }
    return found.value;
  }
  if (found.type === "bad") {
    await rm(path, { force: true });
    notes.push({ type: "replaced", file: path });
  }
  const value = randomBytes(32).toString("base64url");
  const part = `${path}.${randomBytes(6).toString("hex")}.part`;
  const handle = await open(part, "wx", 0o600);
  try {
    await handle.chmod(0o600);
    await handle.writeFile(`${value}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await link(part, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    // Another process published its value first: use that one.
    const other = await readValue(path);
    if (other.type !== "ok") throw new Error(`${path} changed while Parley was starting; start it again`, { cause: error });
    return other.value;
  } finally {
    await rm(part, { force: true });
  }
  if (found.type === "missing") notes.push({ type: "created", file: path });
  return value;
}

async function readValue(path: string): Promise<{ type: "ok"; value: string; mode: number } | { type: "missing" } | { type: "bad" }> {
  let text: string;
  let mode: number;
  try {
    [text, { mode }] = await Promise.all([readFile(path, "utf8"), stat(path)]);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { type: "missing" };
    throw error;
  }
  const value = text.trim();
  return VALUE.test(value) ? { type: "ok", value, mode } : { type: "bad" };
}
