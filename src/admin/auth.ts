import type { NextFunction, Request, Response } from "express";
import type { Clients } from "../http/client.ts";
import type { Logger } from "../observability/logger.ts";
import type { CheckQueue } from "./check-queue.ts";
import { hasValidToken } from "./csrf.ts";
import type { PageContext } from "./layout.ts";
import { bodyText } from "./params.ts";
import type { PasswordCheck } from "./password.ts";
import type { FailureLimiter } from "./rate-limit.ts";
import type { Session, SessionStore } from "./sessions.ts";
import { loginView, refusedView } from "./views-login.ts";

/**
 * Signing in and out, and the gate in front of every other admin route. The session id travels in one cookie:
 * HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it), Secure on HTTPS, scoped to the
 * admin path, and without an expiry (the server forgets it after the idle time anyway).
 */

export const SESSION_COOKIE = "parley_admin";

export interface AuthDeps {
  sessions: SessionStore;
  password: PasswordCheck;
  /** Failures per client address: a locked-out address is refused before its password is looked at. */
  limiter: FailureLimiter;
  /** Password checks across all addresses, at a bounded rate. */
  checks: CheckQueue;
  clients: Clients;
  log: Logger;
}

export function sessionIdOf(req: Request): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function setSessionCookie(req: Request, res: Response, session: Session): void {
  res.append(
    "Set-Cookie",
    `${SESSION_COOKIE}=${session.id}; Path=${req.baseUrl || "/"}; HttpOnly; SameSite=Strict${req.secure ? "; Secure" : ""}`,
  );
}

function clearSessionCookie(req: Request, res: Response): void {
  res.append(
    "Set-Cookie",
    `${SESSION_COOKIE}=; Path=${req.baseUrl || "/"}; HttpOnly; SameSite=Strict; Max-Age=0${req.secure ? "; Secure" : ""}`,
  );
}

/** The signed-in session of this request, if any. */
export function signedInSession(req: Request, sessions: SessionStore): Session | undefined {
  const session = sessions.get(sessionIdOf(req));
  return session?.signedIn ? session : undefined;
}

/** Routes that answer machines (JSON, event streams, media) get 401; pages redirect to the sign-in form. */
function wantsStatusCode(req: Request): boolean {
  return (
    /^\/(api|media)\//.test(req.path) ||
    req.path === "/logs/stream" ||
    (req.get("Accept") ?? "").includes("text/event-stream") ||
    ((req.get("Accept") ?? "").includes("application/json") && !(req.get("Accept") ?? "").includes("text/html"))
  );
}

export function createAuth(deps: AuthDeps) {
  const { sessions, password, limiter, checks, clients, log } = deps;

  /** Lets signed-in requests through (with `res.locals.session`); for POSTs the CSRF token must match as well. */
  const requireSignedIn = (req: Request, res: Response, next: NextFunction): void => {
    const session = signedInSession(req, sessions);
    if (!session) {
      if (wantsStatusCode(req)) res.status(401).json({ error: "Sign in at /admin/login first." });
      else res.redirect(302, `${req.baseUrl}/login`);
      return;
    }
    if (req.method === "POST" && !hasValidToken(req, session)) {
      res.status(403).type("text/html; charset=utf-8").send(
        refusedView(
          { base: req.baseUrl, csrf: session.csrf },
          "Refused",
          "This form is out of date or did not come from the admin page. Reload the page and try again.",
        ).value,
      );
      return;
    }
    res.locals.session = session;
    next();
  };

  const showLogin = (req: Request, res: Response): void => {
    if (signedInSession(req, sessions)) {
      res.redirect(302, `${req.baseUrl}/`);
      return;
    }
    const session = sessions.get(sessionIdOf(req)) ?? sessions.startSignedOut();
    setSessionCookie(req, res, session);
    res.type("text/html; charset=utf-8").send(loginView(ctxOf(req, session)).value);
  };

  const signIn = async (req: Request, res: Response): Promise<void> => {
    const client = clients.of(req);
    const wait = limiter.retryAfterMs(client.key);
    const current = sessions.get(sessionIdOf(req));
    /** The session whose token the re-shown form carries (a new one when the request had none). */
    const formSession = () => {
      if (current && !current.signedIn) return current;
      const session = sessions.startSignedOut();
      setSessionCookie(req, res, session);
      return session;
    };
    const refuse = (status: number, retryAfterSeconds: number, message: string) => {
      res
        .status(status)
        .set("Retry-After", String(retryAfterSeconds))
        .type("text/html; charset=utf-8")
        .send(loginView(ctxOf(req, formSession()), message).value);
    };
    if (wait > 0) {
      const minutes = Math.ceil(wait / 60_000);
      refuse(429, Math.ceil(wait / 1000), `Too many failed sign-ins from your address. Try again in ${minutes} minute${minutes === 1 ? "" : "s"}.`);
      return;
    }
    if (!hasValidToken(req, current)) {
      res
        .status(403)
        .type("text/html; charset=utf-8")
        .send(loginView(ctxOf(req, formSession()), "The sign-in form expired. Please enter the password again.").value);
      return;
    }
    const candidate = bodyText(req, "password", 1024) ?? "";
    const gone = new AbortController();
    res.once("close", () => gone.abort());
    const outcome = await checks.run(client.key, limiter.failures(client.key), gone.signal, () => password.verify(candidate));
    if (outcome.type === "gone") return;
    if (outcome.type === "busy") {
      refuse(429, 1, "A sign-in from your address is being checked already. Wait for it, then try again.");
      return;
    }
    if (outcome.type === "full") {
      refuse(503, 60, "Too many sign-ins are waiting to be checked right now. Try again in a minute.");
      return;
    }
    if (!outcome.value) {
      limiter.fail(client.key);
      log.warn({ client: client.address }, "admin sign-in failed");
      if (limiter.retryAfterMs(client.key) > 0) log.warn({ client: client.address }, "admin sign-in locked for this address after repeated failures");
      res.status(401).type("text/html; charset=utf-8").send(loginView(ctxOf(req, formSession()), "Wrong password.").value);
      return;
    }
    limiter.succeed(client.key);
    // A new id at every sign-in: an id planted or seen before signing in is worth nothing after it.
    const session = sessions.signIn(current?.id);
    setSessionCookie(req, res, session);
    log.info({ client: client.address }, "admin signed in");
    res.redirect(303, `${req.baseUrl}/`);
  };

  const signOut = (req: Request, res: Response): void => {
    sessions.end(sessionIdOf(req));
    clearSessionCookie(req, res);
    log.info("admin signed out");
    res.redirect(303, `${req.baseUrl}/login`);
  };

  return { requireSignedIn, showLogin, signIn, signOut };
}

export function ctxOf(req: Request, session: Session | undefined): PageContext {
  return { base: req.baseUrl, csrf: session?.csrf };
}
