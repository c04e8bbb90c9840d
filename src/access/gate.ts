import type { InboundMessage } from "../core/types.ts";
import type { Db } from "../db/client.ts";
import { noteRefusal, requestPairing } from "./pairing.ts";
import { decideAccess, type AccessSettings, type UserStatus } from "./policy.ts";

/**
 * The conversation service's access step: the pure policy (policy.ts) plus what it needs from the database (pairing
 * codes, the once-an-hour notice). Returns null for a message that may be answered, or why not and what (if
 * anything) to tell the sender.
 */

export interface Refusal {
  /** Recorded with the inbox row (admins see it). */
  reason: string;
  /** Sent to the sender; absent when they are not told (again). */
  reply?: string;
}

export interface AccessGate {
  readonly settings: AccessSettings;
  decide(message: InboundMessage, status: UserStatus): Promise<Refusal | null>;
}

export const NOT_ALLOWED = "sender not allowed";
export const GROUP_CLOSED = "group not allowed";

export const pairingReply = (code: string) =>
  "Hi! This assistant only talks to people its operator has approved. " +
  `Ask the operator to approve code ${code}: on the admin page, or with \`npm run parley -- approve ${code}\`. ` +
  "The code is valid for an hour; write again once you are approved.";

export const allowlistReply = (user: string) =>
  `This assistant is private. If you know its operator, send them your id ${user} and ask them to add it to ALLOWED_USERS.`;

export function createAccessGate(deps: { db: Db; settings: AccessSettings; clock?: () => Date }): AccessGate {
  const { db, settings } = deps;
  const clock = deps.clock ?? (() => new Date());
  return {
    settings,
    async decide(message, status) {
      const verdict = decideAccess(settings, message, status);
      switch (verdict.type) {
        case "allowed":
          return null;
        case "blocked":
          return { reason: NOT_ALLOWED };
        case "group-closed":
          return { reason: GROUP_CLOSED };
        case "unknown": {
          const sender = { user: message.user, channel: message.channel, displayName: message.displayName };
          if (verdict.policy === "allowlist") {
            const notify = await noteRefusal(db, sender, clock());
            return { reason: NOT_ALLOWED, ...(notify ? { reply: allowlistReply(message.user) } : {}) };
          }
          const outcome = await requestPairing(db, sender, clock());
          // A code expired early for newer requests: they were told within the hour, and a new one waits for its end.
          if (outcome.type === "replaced" || !outcome.notify) return { reason: NOT_ALLOWED };
          return { reason: NOT_ALLOWED, reply: pairingReply(outcome.code) };
        }
      }
    },
  };
}
