import { createHash, createHmac, timingSafeEqual } from "node:crypto";

/**
 * Meta signs every webhook POST with `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`. The
 * HMAC covers the bytes exactly as they arrived: re-serialising parsed JSON changes escapes (`\u00e9` → `é`) and
 * whitespace and breaks it. The legacy SHA-1 `X-Hub-Signature` is never accepted.
 */
export const SIGNATURE_HEADER = "x-hub-signature-256";
const SIGNATURE_FORMAT = /^sha256=([0-9a-f]{64})$/i;

export function signatureMatches(rawBody: Uint8Array, header: string | undefined, appSecret: string): boolean {
  const match = header === undefined ? null : SIGNATURE_FORMAT.exec(header.trim());
  if (!match) return false;
  const expected = createHmac("sha256", appSecret).update(rawBody).digest();
  return timingSafeEqual(Buffer.from(match[1]!, "hex"), expected);
}

/** Compares two strings in constant time whatever their lengths (both are hashed first). */
export function sameSecret(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  return timingSafeEqual(sha256(given), sha256(expected));
}

function sha256(value: string): Buffer {
  return createHash("sha256").update(value, "utf8").digest();
}
