import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { WEB_OPERATOR, WEB_VISITOR_PREFIX } from "../../src/core/keys.ts";
import type { UserKey } from "../../src/core/types.ts";
import type { WebChatCredentials } from "./credentials.ts";

/**
 * Who is on the other end of a web chat request, decided by a signed cookie only: never by the network address, the
 * Host header or anything the page says. Two kinds:
 * - the operator: whoever traded the token of the link printed at start (`tokenMatches`) for a cookie;
 * - a visitor of a public web chat: a random id the server made.
 * A cookie is `o.<issued>.<mac>` or `v.<id>.<issued>.<mac>`, the mac an HMAC-SHA256 under the secret from the data
 * directory; the operator's also covers a digest of the token, so a new token ends the sessions the old one opened.
 * The chat and user key come from the identity (web:operator, web:v-<id>), so a page cannot pick another's.
 */

export type WebIdentity = { kind: "operator" } | { kind: "visitor"; id: string };

export const OPERATOR_SESSION_MS = 30 * 24 * 60 * 60 * 1000;
export const VISITOR_SESSION_MS = 180 * 24 * 60 * 60 * 1000;

export interface WebSessions {
  /** Constant time in the token's content. */
  tokenMatches(candidate: unknown): boolean;
  /** A cookie value for a new session: the operator's, or a new visitor's (a new random id). */
  issue(kind: "operator" | "visitor"): { value: string; identity: WebIdentity; maxAgeMs: number };
  /** The identity a cookie value proves, or undefined for a missing, malformed, forged, altered or expired one. */
  verify(value: string | undefined): WebIdentity | undefined;
}

const OPERATOR_COOKIE = /^o\.(\d{1,15})\.([A-Za-z0-9_-]{43})$/;
const VISITOR_COOKIE = /^v\.([A-Za-z0-9_-]{22})\.(\d{1,15})\.([A-Za-z0-9_-]{43})$/;
/** A cookie issued this far in the future (clock skew between processes) is still taken. */
const SKEW_MS = 5 * 60 * 1000;

export function createWebSessions(credentials: WebChatCredentials, now: () => number): WebSessions {
  const tokenDigest = sha256(credentials.token);
  const mac = (payload: string) => createHmac("sha256", credentials.secret).update(payload).digest("base64url");
  const macMatches = (payload: string, candidate: string) => equal(Buffer.from(mac(payload)), Buffer.from(candidate));
  const fresh = (issued: number, maxAgeMs: number) => {
    const at = now();
    return issued <= at + SKEW_MS && at - issued <= maxAgeMs;
  };

  return {
    tokenMatches(candidate) {
      return typeof candidate === "string" && equal(sha256(candidate), tokenDigest);
    },

    issue(kind) {
      const issued = now();
      if (kind === "operator") {
        return { value: `o.${issued}.${mac(`o.${issued}.${tokenDigest.toString("hex")}`)}`, identity: { kind }, maxAgeMs: OPERATOR_SESSION_MS };
      }
      const id = randomBytes(16).toString("base64url");
      return { value: `v.${id}.${issued}.${mac(`v.${id}.${issued}`)}`, identity: { kind, id }, maxAgeMs: VISITOR_SESSION_MS };
    },

    verify(value) {
      if (typeof value !== "string") return undefined;
      const operator = OPERATOR_COOKIE.exec(value);
      if (operator) {
        const [, issued, candidate] = operator as unknown as [string, string, string];
        const ok = macMatches(`o.${issued}.${tokenDigest.toString("hex")}`, candidate) && fresh(Number(issued), OPERATOR_SESSION_MS);
        return ok ? { kind: "operator" } : undefined;
      }
      const visitor = VISITOR_COOKIE.exec(value);
      if (visitor) {
        const [, id, issued, candidate] = visitor as unknown as [string, string, string, string];
        const ok = macMatches(`v.${id}.${issued}`, candidate) && fresh(Number(issued), VISITOR_SESSION_MS);
        return ok ? { kind: "visitor", id } : undefined;
      }
      return undefined;
    },
  };
}

/** The user key (also the chat key) of an identity. */
export function identityKey(identity: WebIdentity): UserKey {
  return identity.kind === "operator" ? WEB_OPERATOR : `web:${WEB_VISITOR_PREFIX}${identity.id}`;
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** True for the platform id of a web chat: `operator` or `v-<id>`. */
export function isWebChatId(value: unknown): value is string {
  return typeof value === "string" && /^(operator|v-[A-Za-z0-9_-]{22})$/.test(value);
}
