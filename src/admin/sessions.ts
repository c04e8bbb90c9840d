import { randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Admin sessions, kept in this process's memory: a random id in an HttpOnly cookie points at a server-side record.
 * A signed-out session exists only to carry the sign-in form's CSRF token. Signing in always makes a new id (the
 * old one stops working), signing out deletes the record, and a session unused for `idleMs` is gone. Both kinds are
 * capped so a flood of visitors cannot grow memory; the oldest are dropped first.
 */

export interface Session {
  readonly id: string;
  readonly csrf: string;
  readonly signedIn: boolean;
  readonly createdAt: number;
  lastSeenAt: number;
}

export interface SessionStoreOptions {
  idleMs: number;
  /** A signed-in session ends after this long, used or not. */
  maxAgeMs?: number;
  now?: () => number;
}

export interface SessionStore {
  /** A signed-out session whose CSRF token protects the sign-in form. */
  startSignedOut(): Session;
  /** The live session with this id (its idle timer restarts), or undefined. */
  get(id: string | undefined): Session | undefined;
  /** Whether this id is still a live signed-in session, without counting as use (for long-lived streams). */
  isSignedIn(id: string | undefined): boolean;
  /** A new signed-in session; the session that signed in (if any) is ended. */
  signIn(previousId: string | undefined): Session;
  end(id: string | undefined): void;
  readonly size: number;
}

const SIGNED_OUT_IDLE_MS = 30 * 60 * 1000;
const MAX_SIGNED_OUT = 2_000;
const MAX_SIGNED_IN = 200;

export function createSessionStore(options: SessionStoreOptions): SessionStore {
  const now = options.now ?? Date.now;
  const maxAgeMs = options.maxAgeMs ?? 12 * 60 * 60 * 1000;
  // Maps keep insertion order, so the first key is the oldest session.
  const signedIn = new Map<string, Session>();
  const signedOut = new Map<string, Session>();

  const make = (isSignedIn: boolean): Session => {
    const at = now();
    return { id: token(), csrf: token(), signedIn: isSignedIn, createdAt: at, lastSeenAt: at };
  };

  const add = (map: Map<string, Session>, session: Session, cap: number) => {
    while (map.size >= cap) map.delete(map.keys().next().value as string);
    map.set(session.id, session);
  };

  const expired = (session: Session, at: number) =>
    session.signedIn
      ? at - session.lastSeenAt > options.idleMs || at - session.createdAt > maxAgeMs
      : at - session.lastSeenAt > SIGNED_OUT_IDLE_MS;

  const end = (id: string | undefined) => {
    if (id === undefined) return;
    signedIn.delete(id);
    signedOut.delete(id);
  };

  return {
    startSignedOut() {
      const session = make(false);
      add(signedOut, session, MAX_SIGNED_OUT);
      return session;
    },
    get(id) {
      if (id === undefined || id === "") return undefined;
      const map = signedIn.has(id) ? signedIn : signedOut;
      const session = map.get(id);
      if (session === undefined) return undefined;
      const at = now();
      if (expired(session, at)) {
        map.delete(id);
        return undefined;
      }
      session.lastSeenAt = at;
      return session;
    },
    isSignedIn(id) {
      const session = id === undefined ? undefined : signedIn.get(id);
      return session !== undefined && !expired(session, now());
    },
    signIn(previousId) {
      end(previousId);
      const session = make(true);
      add(signedIn, session, MAX_SIGNED_IN);
      return session;
    },
    end,
    get size() {
      return signedIn.size + signedOut.size;
    },
  };
}

/** True when `candidate` is this session's CSRF token; constant time in the token's content. */
export function csrfMatches(session: Session, candidate: unknown): boolean {
  if (typeof candidate !== "string") return false;
  const a = Buffer.from(candidate);
  const b = Buffer.from(session.csrf);
  return a.length === b.length && timingSafeEqual(a, b);
}

function token(): string {
  return randomBytes(32).toString("base64url");
}
