/**
 * Text as it may be stored and shown: what a platform delivers can hold characters that PostgreSQL refuses (NUL in
 * text and jsonb, a lone surrogate in jsonb) or that mean nothing to a reader (other C0 controls). Every inbound
 * message passes through `cleanDeep` once, at the inbox, so a field added later cannot slip past.
 *
 * - CRLF and a lone CR become LF; tab and LF stay.
 * - The other C0 controls (U+0000–U+001F) and DEL (U+007F) are removed.
 * - A lone surrogate (half of a UTF-16 pair without its other half) becomes U+FFFD.
 */
const CONTROLS = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/g;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

export function cleanText(text: string): string {
  return text.replace(/\r\n?/g, "\n").replace(CONTROLS, "").replace(LONE_SURROGATE, "\uFFFD");
}

/**
 * A copy of `value` with every string in it cleaned, object keys too, at any depth. Dates, numbers, booleans, null
 * and undefined are kept as they are; other objects (class instances) are kept by reference.
 */
export function cleanDeep<T>(value: T): T {
  return walk(value) as T;
}

function walk(value: unknown): unknown {
  if (typeof value === "string") return cleanText(value);
  if (Array.isArray(value)) return value.map(walk);
  if (value === null || typeof value !== "object") return value;
  const prototype = Object.getPrototypeOf(value) as unknown;
  if (prototype !== Object.prototype && prototype !== null) return value;
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [cleanText(key), walk(item)]));
}
