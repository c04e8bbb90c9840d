import { isIP } from "node:net";

/**
 * Whether the admin page is served at all. It shows every conversation, so it never runs without a password:
 * with ADMIN_PASSWORD unset it is off (404 for /admin/*), and the start-up log says how to turn it on — more
 * urgently when HOST exposes Parley beyond this machine. (A generated password was considered and rejected: it
 * would have to be printed, and a printed secret ends up in log files and in the logs page itself.)
 */

export type AdminAvailability =
  | { type: "on"; password: string }
  | { type: "off"; level: "info" | "warn"; reason: string };

export function decideAdminAvailability(host: string, password: string | undefined): AdminAvailability {
  if (password !== undefined && password !== "") return { type: "on", password };
  if (isLoopbackHost(host)) {
    return { type: "off", level: "info", reason: "the admin page is off: set ADMIN_PASSWORD to open it at /admin" };
  }
  return {
    type: "off",
    level: "warn",
    reason: `the admin page is off: HOST is ${host}, reachable beyond this machine, and ADMIN_PASSWORD is not set; set ADMIN_PASSWORD to open it at /admin`,
  };
}

/** A listening address that only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const name = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  const lower = name.toLowerCase();
  if (lower === "localhost" || lower.endsWith(".localhost")) return true;
  if (isIP(lower) === 4) return lower.startsWith("127.");
  if (lower === "::1" || lower === "0:0:0:0:0:0:0:1") return true;
  return /^::ffff:127\./.test(lower);
}
