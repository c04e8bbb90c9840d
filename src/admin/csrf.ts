import type { NextFunction, Request, Response } from "express";
import { bodyText } from "./params.ts";
import { csrfMatches, type Session } from "./sessions.ts";

/**
 * Protection for state-changing requests (every admin POST). Two checks, both needed:
 * - the request comes from our own pages: an Origin header, when the browser sends one, names this host, and
 *   Sec-Fetch-Site, when sent, is same-origin;
 * - the form carries the session's synchronizer token (`_csrf`), which a page elsewhere cannot read.
 */

export const CSRF_FIELD = "_csrf";

export function isSameOrigin(req: Request): boolean {
  const site = req.get("Sec-Fetch-Site");
  if (site !== undefined && site !== "same-origin" && site !== "none") return false;
  const origin = req.get("Origin");
  if (origin === undefined) return true;
  if (origin === "null") return false;
  try {
    return new URL(origin).host === req.get("Host");
  } catch {
    return false;
  }
}

/** Express middleware: 403 for a cross-origin POST, before anything else looks at it. */
export function requireSameOrigin(req: Request, res: Response, next: NextFunction): void {
  if (req.method === "POST" && !isSameOrigin(req)) {
    res.status(403).type("text/plain; charset=utf-8").send("Cross-origin requests are refused.");
    return;
  }
  next();
}

export function hasValidToken(req: Request, session: Session | undefined): boolean {
  return session !== undefined && csrfMatches(session, bodyText(req, CSRF_FIELD, 200));
}
