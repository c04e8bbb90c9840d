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
