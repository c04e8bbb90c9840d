import type { ChannelName, ChatKey, UserKey } from "./types.ts";

/** The one codec for chat and user keys: `<channel>:<platform id>`. The platform id may itself contain colons. */

export const CHANNEL_NAMES: readonly ChannelName[] = ["telegram", "whatsapp", "whatsapp-cloud", "messenger", "web"];

export function chatKey(channel: ChannelName, platformId: string | number): ChatKey {
  return makeKey(channel, platformId);
}

export function userKey(channel: ChannelName, platformId: string | number): UserKey {
  return makeKey(channel, platformId);
}

export interface ParsedKey {
  channel: ChannelName;
  id: string;
}

export function parseKey(key: string): ParsedKey {
  const colon = key.indexOf(":");
  const channel = colon > 0 ? key.slice(0, colon) : "";
  const id = colon > 0 ? key.slice(colon + 1) : "";
  if (!isChannelName(channel) || id === "") {
    throw new Error(`"${key}" is not a key of the form <channel>:<id> with channel one of ${CHANNEL_NAMES.join(", ")}`);
  }
  return { channel, id };
}

export function isKey(key: string): key is ChatKey {
  try {
    parseKey(key);
    return true;
  } catch {
    return false;
  }
}

/**
 * What a platform's own id looks like on each channel, for the keys an operator writes (ALLOWED_USERS, ADMIN_USERS,
 * GROUP_ALLOWLIST): a key no platform can send would match no one while the operator believes it names someone.
 * From the platforms' documentation: Telegram user ids are positive integers of at most 52 bits, chat ids negative
 * for groups (`<chat>:<topic>` for a forum topic, see channels/telegram/chat-ref.ts); whatsapp-web.js ids are
 * `<number>@c.us` or `<number>@lid` for people and `<id>@g.us` for groups; the Cloud API's wa_id is digits without a
 * `+`, its business-scoped user id `CC.<alphanumerics>` (or `CC.ENT.…`), a group id opaque alphanumerics; Messenger's
 * page-scoped ids are digits; the web chat's ids are `operator` and `v-<22 characters>` (channels/web/sessions.ts).
 */
const ID_SHAPES: Record<ChannelName, Record<KeyRole, { shape: RegExp; says: string }>> = {
  telegram: {
    // A person's id is positive; an anonymous admin or a channel that speaks in a group is keyed by its chat's id.
    user: { shape: /^-?[1-9]\d{0,19}$/, says: "a number, e.g. telegram:12345 (not a @username)" },
    chat: { shape: /^-?[1-9]\d{0,19}(:[1-9]\d{0,9})?$/, says: "a number, negative for a group, e.g. telegram:-1001234 (telegram:-1001234:42 for a forum topic)" },
  },
  whatsapp: {
    user: { shape: /^\d{1,32}@(c\.us|lid)$/, says: "<number>@c.us or <number>@lid, e.g. whatsapp:4915112345678@c.us" },
    chat: { shape: /^(\d{1,32}@(c\.us|lid)|\d[\d-]{0,63}@g\.us)$/, says: "<number>@c.us, <number>@lid or <id>@g.us, e.g. whatsapp:120363012345678901@g.us" },
  },
  "whatsapp-cloud": {
    user: { shape: /^(\d{1,20}|[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128})$/, says: "the wa_id's digits without +, e.g. whatsapp-cloud:4915112345678, or a business-scoped id such as whatsapp-cloud:US.13491208655302741918" },
    chat: { shape: /^(\d{1,20}|[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}|[A-Za-z0-9_-]{1,256})$/, says: "the wa_id's digits without +, a business-scoped id or a group id (letters and digits)" },
  },
  messenger: {
    user: { shape: /^\d{1,32}$/, says: "the page-scoped id's digits, e.g. messenger:6543210987" },
    chat: { shape: /^\d{1,32}$/, says: "the page-scoped id's digits, e.g. messenger:6543210987" },
  },
  web: {
    user: { shape: /^(operator|v-[A-Za-z0-9_-]{22})$/, says: "web:operator or a visitor's web:v-<id> from the admin page" },
    chat: { shape: /^(operator|v-[A-Za-z0-9_-]{22})$/, says: "web:operator or a visitor's web:v-<id> from the admin page" },
  },
};

export type KeyRole = "user" | "chat";

/**
 * Why `key` is not a user (or chat) key a platform could send, or undefined when it is one. The answer never quotes
 * the key (it may be a secret pasted into the wrong variable), only a channel name or "*".
 */
export function keyProblem(key: string, role: KeyRole): string | undefined {
  if (key === "*") return `"*" is not a wildcard: list the keys one by one (${role === "user" ? "ACCESS_POLICY=open lets anyone write" : "GROUP_POLICY=open answers in any group"})`;
  const colon = key.indexOf(":");
  const channel = colon > 0 ? key.slice(0, colon) : "";
  if (!isChannelName(channel)) return `is not <channel>:<id> with channel one of ${CHANNEL_NAMES.join(", ")}`;
  const id = key.slice(colon + 1);
  if (id === "") return `has no id after ${channel}:`;
  const { shape, says } = ID_SHAPES[channel][role];
  return shape.test(id) ? undefined : `is not a ${channel} ${role} key: a ${channel} ${role} id is ${says}`;
}

export function isChannelName(value: string): value is ChannelName {
  return (CHANNEL_NAMES as readonly string[]).includes(value);
}

function makeKey(channel: ChannelName, platformId: string | number): `${ChannelName}:${string}` {
  const id = String(platformId);
  if (id === "") throw new Error(`empty platform id for channel ${channel}`);
  return `${channel}:${id}`;
}

/**
 * The web chat's identities, issued by the server only (never chosen by the page): the operator, who holds the link
 * printed at start, is `web:operator`; a visitor of a public web chat is `web:v-<random id>`.
 */
export const WEB_OPERATOR: UserKey = "web:operator";
export const WEB_VISITOR_PREFIX = "v-";

export function isWebVisitor(user: string): boolean {
  return user.startsWith(`web:${WEB_VISITOR_PREFIX}`);
}
