import { databaseError } from "./client.ts";

/**
 * What a failed write means for the message being written:
 * - `data`: the database refused these values (SQLSTATE class 22 data exception, 23 integrity constraint, 54 program
 *   limit such as an index row too large). Writing the same values again fails again, so the message is set aside
 *   and its neighbours go on.
 * - `outage`: anything else — no connection, the server shutting down or out of resources (08, 57P, 53), a
 *   serialization failure (40), a missing table (42), or an error that carries no SQLSTATE at all (pg's "Connection
 *   terminated", a pool timeout). Trying again later may work, so the platform is told to deliver again.
 *
 * Only a proven data error sets a message aside: when in doubt, keep it for a retry rather than lose it.
 */
export type StorageFailure = { kind: "outage" } | { kind: "data"; code: string; constraint?: string };

const DATA_CLASSES = new Set(["22", "23", "54"]);
const SQLSTATE = /^[0-9A-Z]{5}$/;

export function storageFailure(error: unknown): StorageFailure {
  const found = databaseError(error);
  if (!found || !SQLSTATE.test(found.code) || !DATA_CLASSES.has(found.code.slice(0, 2))) return { kind: "outage" };
  return { kind: "data", code: found.code, ...(found.constraint ? { constraint: found.constraint } : {}) };
}

/** A reason to store or log for a data failure: the SQLSTATE and constraint, never a value. */
export function failureReason(failure: Extract<StorageFailure, { kind: "data" }>): string {
  return failure.constraint ? `SQLSTATE ${failure.code} (${failure.constraint})` : `SQLSTATE ${failure.code}`;
}
