import { randomInt } from "node:crypto";
import { and, asc, eq, gt, inArray, isNotNull, ne, sql } from "drizzle-orm";
import { parseKey } from "../core/keys.ts";
import type { ChannelName, UserKey } from "../core/types.ts";
import type { Db } from "../db/client.ts";
import { pairingRequests, users } from "../db/schema.ts";

/**
 * Pairing: an unknown sender gets a short code, and the operator approves the code (admin page, `npm run parley --
 * approve CODE`, or /approve from an admin's chat). The approval is stored on the user row, keyed by the immutable
 * user key, so a later change of name or username changes nothing.
 *
 * A code is 8 characters from an alphabet without look-alikes (no 0/O, 1/I/L) and is valid for an hour. A sender is
 * told at most once an hour. Codes are kept for the MAX_PENDING_PER_CHANNEL most recent requests of a channel: a new
 * stranger always gets a code, and the oldest pending one of that channel is expired early in its place, so a flood
 * of strangers can neither bury the real requests (the operator's list stays short) nor lock a real person out (as a
 * cap that answers "full" would). Nobody gets a second code within the hour of their first, even when the first was
 * expired early: asking again gives the same code, so one sender can push out at most one other an hour.
 * Issuing a code takes a transaction-scoped advisory lock per channel, so several workers or processes keep the
 * count together.
 */

export const PAIRING_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789";
export const CODE_LENGTH = 8;
export const CODE_TTL_MS = 60 * 60 * 1000;
export const NOTICE_EVERY_MS = 60 * 60 * 1000;
export const MAX_PENDING_PER_CHANNEL = 20;

export interface PairingSender {
  user: UserKey;
  channel: ChannelName;
  displayName?: string;
}

export type PairingOutcome =
  /** A code is waiting for approval; `notify` is false when the sender was told within the hour. */
  | { type: "code"; code: string; expiresAt: Date; notify: boolean }
  /** Their code was expired early for newer requests; no new one (and no notice) before `retryAt`, its hour's end. */
  | { type: "replaced"; retryAt: Date };

export interface PendingPairing {
  code: string;
  user: UserKey;
  channel: string;
  displayName: string | null;
  createdAt: Date;
  expiresAt: Date;
}

export function newPairingCode(pick: (max: number) => number = randomInt): string {
  let code = "";
  for (let i = 0; i < CODE_LENGTH; i++) code += PAIRING_ALPHABET[pick(PAIRING_ALPHABET.length)];
  return code;
}

/** A code as typed by the operator ("abcd-2345", " ABCD 2345 "), or undefined when it cannot be one. */
export function normalizeCode(input: string): string | undefined {
  const code = input.toUpperCase().replace(/[\s-]/g, "");
  if (code.length !== CODE_LENGTH) return undefined;
  for (const c of code) if (!PAIRING_ALPHABET.includes(c)) return undefined;
  return code;
}

/**
 * Gives the sender a code (or the one they have), expiring the channel's oldest pending one when
 * MAX_PENDING_PER_CHANNEL are pending; or says their code was expired early and a new one waits for its hour's end.
 */
export async function requestPairing(db: Db, sender: PairingSender, now: Date): Promise<PairingOutcome> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`parley:pairing:${sender.channel}`}))`);
    const [row] = await tx.select().from(pairingRequests).where(eq(pairingRequests.userKey, sender.user));
    const dueForNotice = !row || row.notifiedAt.getTime() <= now.getTime() - NOTICE_EVERY_MS;
    if (row?.code && row.expiresAt && row.expiresAt > now) {
      if (dueForNotice) await tx.update(pairingRequests).set({ notifiedAt: now }).where(eq(pairingRequests.userKey, sender.user));
      return { type: "code", code: row.code, expiresAt: row.expiresAt, notify: dueForNotice };
    }
    // Expired early (code cleared, expires_at kept): a new code now would push out someone else in its turn.
    if (row && !row.code && row.expiresAt && row.expiresAt > now) return { type: "replaced", retryAt: row.expiresAt };
    const pending = await tx
      .select({ user: pairingRequests.userKey })
      .from(pairingRequests)
      .where(
        and(
          eq(pairingRequests.channel, sender.channel),
          isNotNull(pairingRequests.code),
          gt(pairingRequests.expiresAt, now),
          ne(pairingRequests.userKey, sender.user),
        ),
      )
      .orderBy(asc(pairingRequests.createdAt), asc(pairingRequests.userKey));
    const oldest = pending.slice(0, Math.max(0, pending.length - MAX_PENDING_PER_CHANNEL + 1)).map((p) => p.user);
    if (oldest.length > 0) await tx.update(pairingRequests).set({ code: null }).where(inArray(pairingRequests.userKey, oldest));
    const expiresAt = new Date(now.getTime() + CODE_TTL_MS);
    // An expired code may still sit on another row; a collision among 31^8 codes is a retry, not an error.
    for (let attempt = 0; ; attempt++) {
      const code = newPairingCode();
      const [taken] = await tx.select({ user: pairingRequests.userKey }).from(pairingRequests).where(eq(pairingRequests.code, code));
      if (taken && attempt < 5) continue;
      if (taken) await tx.update(pairingRequests).set({ code: null }).where(eq(pairingRequests.code, code));
      await upsert(tx, sender, { code, expiresAt, notifiedAt: now });
      return { type: "code", code, expiresAt, notify: true };
    }
  });
}

/**
 * For the allowlist policy (no codes): whether the refused sender should be told now (at most once an hour).
 * Records the notice when it returns true.
 */
export async function noteRefusal(db: Db, sender: PairingSender, now: Date): Promise<boolean> {
  const cutoff = new Date(now.getTime() - NOTICE_EVERY_MS);
  const rows = await db
    .insert(pairingRequests)
    .values({ userKey: sender.user, channel: sender.channel, displayName: sender.displayName, notifiedAt: now })
    .onConflictDoUpdate({
      target: pairingRequests.userKey,
      set: { notifiedAt: now },
      setWhere: sql`${pairingRequests.notifiedAt} <= ${cutoff}`,
    })
    .returning({ user: pairingRequests.userKey });
  return rows.length > 0;
}

/** Approves a pending, unexpired code: its user becomes allowed. Returns the user, or undefined for no such code. */
export async function approvePairing(db: Db, code: string, now: Date): Promise<{ user: UserKey; displayName: string | null } | undefined> {
  return db.transaction(async (tx) => {
    const [row] = await tx
      .delete(pairingRequests)
      .where(and(eq(pairingRequests.code, code), gt(pairingRequests.expiresAt, now)))
      .returning();
    if (!row) return undefined;
    const user = row.userKey as UserKey;
    await tx
      .insert(users)
      .values({ key: user, channel: row.channel, displayName: row.displayName, status: "allowed" })
      .onConflictDoUpdate({ target: users.key, set: { status: "allowed" } });
    return { user, displayName: row.displayName };
  });
}

/** Codes waiting for approval, oldest first. */
export async function listPendingPairings(db: Db, now: Date): Promise<PendingPairing[]> {
  const rows = await db
    .select()
    .from(pairingRequests)
    .where(and(isNotNull(pairingRequests.code), gt(pairingRequests.expiresAt, now)))
    .orderBy(asc(pairingRequests.createdAt));
  return rows.map((r) => ({
    code: r.code!,
    user: r.userKey as UserKey,
    channel: r.channel,
    displayName: r.displayName,
    createdAt: r.createdAt,
    expiresAt: r.expiresAt!,
  }));
}

/**
 * Sets a user's status by key (creating the user row for someone who has not written yet), for /allow, /block and the
 * CLI. Allowing someone ends their pairing request.
 */
export async function setUserAccess(db: Db, user: UserKey, status: "allowed" | "blocked" | "pending"): Promise<void> {
  const { channel } = parseKey(user);
  await db.transaction(async (tx) => {
    await tx.insert(users).values({ key: user, channel, status }).onConflictDoUpdate({ target: users.key, set: { status } });
    if (status !== "pending") await tx.delete(pairingRequests).where(eq(pairingRequests.userKey, user));
  });
}

type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];

async function upsert(tx: Tx, sender: PairingSender, fields: { code: string | null; expiresAt: Date | null; notifiedAt: Date }) {
  await tx
    .insert(pairingRequests)
    .values({ userKey: sender.user, channel: sender.channel, displayName: sender.displayName, createdAt: fields.notifiedAt, ...fields })
    .onConflictDoUpdate({
      target: pairingRequests.userKey,
      set: { ...fields, displayName: sender.displayName ?? null, ...(fields.code ? { createdAt: fields.notifiedAt } : {}) },
    });
}
