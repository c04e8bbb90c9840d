import { isWebVisitor, WEB_OPERATOR } from "../core/keys.ts";
import type { ChatKey, InboundMessage, UserKey } from "../core/types.ts";

/**
 * Who may talk to Parley, decided on the immutable keys (platform ids), never on a display name or username. Pure.
 *
 * - Direct messages follow ACCESS_POLICY: `pairing` (an unknown sender gets a code the operator approves),
 *   `allowlist` (only ALLOWED_USERS and users approved on the admin page) or `open`.
 * - Groups follow GROUP_POLICY on their own: `off`, `allowlist` (GROUP_ALLOWLIST of chat keys; empty means off) or
 *   `open`. A person approved for direct messages is not thereby approved in any group, and in an approved group
 *   everyone may ask (the group was approved, not each member).
 * - A blocked user is refused everywhere.
 * - The web chat is a channel like the others. Its one exception is the operator's own identity (WEB_OPERATOR, which
 *   only the holder of the link printed at start gets): allowed like an ADMIN_USERS entry, but not an admin unless
 *   ADMIN_USERS names it. Public web visitors follow ACCESS_POLICY, and are never admins, whatever ADMIN_USERS says:
 *   their identity is a cookie, not an account on a platform.
 */

export type AccessPolicyName = "pairing" | "allowlist" | "open";
export type GroupPolicyName = "off" | "allowlist" | "open";
export type UserStatus = "pending" | "allowed" | "blocked";

export interface AccessSettings {
  policy: AccessPolicyName;
  allowedUsers: ReadonlySet<UserKey>;
  /** ADMIN_USERS: allowed in direct messages, and may use /block, /allow, /approve and /stats there. */
  adminUsers: ReadonlySet<UserKey>;
  groups: { policy: GroupPolicyName; allowlist: ReadonlySet<ChatKey> };
}

export type AccessVerdict =
  | { type: "allowed" }
  | { type: "blocked" }
  /** A group that is not approved: nothing is answered there. */
  | { type: "group-closed" }
  /** A direct message from someone not approved yet: `policy` says what to tell them. */
  | { type: "unknown"; policy: "pairing" | "allowlist" };

export function decideAccess(settings: AccessSettings, message: InboundMessage, status: UserStatus): AccessVerdict {
  if (status === "blocked") return { type: "blocked" };
  if (message.channel === "web" && message.user === WEB_OPERATOR && !message.isGroup) return { type: "allowed" };
  if (message.isGroup) return groupOpen(settings.groups, message.chat) ? { type: "allowed" } : { type: "group-closed" };
  if (
    settings.policy === "open" ||
    status === "allowed" ||
    settings.allowedUsers.has(message.user) ||
    isAdmin(settings, message.user)
  ) {
    return { type: "allowed" };
  }
  return { type: "unknown", policy: settings.policy };
}

export function groupOpen(groups: AccessSettings["groups"], chat: ChatKey): boolean {
  switch (groups.policy) {
    case "off":
      return false;
    case "open":
      return true;
    case "allowlist": {
      // A Telegram forum topic (telegram:<group>:<topic>) is open when its group is listed.
      const topic = /^(telegram:-\d+):\d+$/.exec(chat);
      return groups.allowlist.has(chat) || (topic !== null && groups.allowlist.has(topic[1] as ChatKey));
    }
  }
}

/** ADMIN_USERS, matched on the exact key; never a web visitor. Where a request comes from plays no part. */
export function isAdmin(settings: Pick<AccessSettings, "adminUsers">, user: UserKey): boolean {
  return settings.adminUsers.has(user) && !isWebVisitor(user);
}
