import { BlockList, isIP } from "node:net";
import type { NextFunction, Request, Response } from "express";

/**
 * The web chat is the operator's own window into Parley, so it answers only on this machine. The decision uses the
 * socket's peer address, never X-Forwarded-For (any client can write that header), and the Host header must name a
 * loopback host too, so a web page elsewhere cannot reach the chat through DNS rebinding.
 */

export const NOT_LOOPBACK_MESSAGE = "The web chat only answers on this machine (loopback).";

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback (::ffff:127.x.y.z), in any spelling Node accepts. */
export function isLoopbackAddress(addr: string | undefined | null): boolean {
  if (typeof addr !== "string") return false;
  const family = isIP(addr);
  if (family === 0) return false;
  return LOOPBACK.check(addr, family === 4 ? "ipv4" : "ipv6");
}

/** True when a Host header names this machine: localhost, *.localhost or a loopback address, with any port. */
export function isLoopbackHost(host: string | undefined): boolean {
  if (typeof host !== "string" || host === "") return false;
  const name = host.startsWith("[") ? host.slice(1, host.indexOf("]")) : host.replace(/:\d*$/, "");
  const lower = name.toLowerCase();
  return lower === "localhost" || lower.endsWith(".localhost") || isLoopbackAddress(lower);
}

/** Express middleware: 403 with a plain sentence for anything that is not a loopback request. */
export function requireLoopback(req: Request, res: Response, next: NextFunction): void {
  if (!isLoopbackAddress(req.socket.remoteAddress)) {
    res.status(403).type("text/plain; charset=utf-8").send(NOT_LOOPBACK_MESSAGE);
    return;
  }
  if (!isLoopbackHost(req.headers.host)) {
    res
      .status(403)
      .type("text/plain; charset=utf-8")
      .send(`${NOT_LOOPBACK_MESSAGE} Open it as http://localhost:<port>/chat, not through another host name.`);
    return;
  }
  next();
}
