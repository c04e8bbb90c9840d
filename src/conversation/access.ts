import type { InboundMessage, UserKey } from "../core/types.ts";

/**
 * Who may talk to Parley. Decided on the immutable platform id in the user key, never on a display name.
 * The web chat is reachable only from this machine (the web channel enforces loopback), so it is the operator.
 */

export interface AccessPolicy {
  policy: "allowlist" | "open";
  allowedUsers: ReadonlySet<UserKey>;
}

export type AccessDecision = { type: "allowed" } | { type: "refused"; reply: string };

export function decideAccess(access: AccessPolicy, message: InboundMessage, status: "pending" | "allowed" | "blocked"): AccessDecision {
  if (status === "blocked") return { type: "refused", reply: "The operator of this assistant has blocked you." };
  if (message.channel === "web" || access.policy === "open" || status === "allowed" || access.allowedUsers.has(message.user)) {
    return { type: "allowed" };
  }
  return {
    type: "refused",
    reply:
      `This assistant is private. If you know its operator, send them your id ${message.user} ` +
      "and ask them to add it to ALLOWED_USERS.",
  };
}
