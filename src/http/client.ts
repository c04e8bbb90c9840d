import type { IncomingHttpHeaders } from "node:http";
import { isIP } from "node:net";
import type { Request } from "express";

/**
 * Who sent a request, said once. The express app trusts exactly the hops of TRUST_PROXY (`trust` below is its
 * "trust proxy" function), so `req.ip` and `req.secure` are right on every route and router; this file adds what
 * express does not say: whether forwarding headers came from an untrusted hop, and the key per-address limits use.
 *
 * Parley reads the client's address from X-Forwarded-For and the scheme from X-Forwarded-Proto, as express does,
 * and only from a trusted hop. It does not read RFC 7239 `Forwarded` (configure the proxy to send the X-Forwarded-*
 * pair, as nginx, Caddy, Traefik, Apache and HAProxy all can); a request that carries it, or any other header below,
 * from a hop that is not trusted came through a proxy Parley does not know.
 */

export interface Client {
  /** The client's address: the socket's peer, or what a trusted proxy said in X-Forwarded-For. */
  address: string;
  /** What per-address limits count on: an IPv4 address (IPv4-mapped IPv6 unwrapped), or an IPv6 address's /64. */
  key: string;
  /** Came over HTTPS: TLS on the socket, or X-Forwarded-Proto: https from a trusted hop. */
  secure: boolean;
  /** direct: no forwarding header at all; trusted-proxy: one from a trusted peer; untrusted-proxy: from any other. */
  via: "direct" | "trusted-proxy" | "untrusted-proxy";
}

/**
 * Headers that reverse proxies, load balancers and CDNs add: any X-Forwarded-* (For, Proto, Host, Port, Server,
 * Prefix, Ssl: nginx setups, Caddy, Traefik, Apache mod_proxy, AWS ALB), RFC 7239 Forwarded (HAProxy's
 * `option forwarded`), Via (Apache ProxyVia, Squid, Varnish, Google's load balancers), X-Real-IP (nginx setups,
 * Traefik) and the client-address headers of CDNs and ingress controllers.
 */
const FORWARDING_HEADERS = new Set([
  "forwarded",
  "via",
  "x-real-ip",
  "x-client-ip",
  "x-cluster-client-ip",
  "x-original-forwarded-for",
  "x-envoy-external-address",
  "x-scheme",
  "front-end-https",
  "true-client-ip",
  "cf-connecting-ip",
  "fastly-client-ip",
]);

/** The forwarding headers a request carries (lower case), empty when it came straight from its client. */
export function forwardingHeadersOf(headers: IncomingHttpHeaders): string[] {
  return Object.keys(headers).filter((name) => name.startsWith("x-forwarded-") || FORWARDING_HEADERS.has(name));
}

export interface Clients {
  /** express's "trust proxy" function: may this hop (the socket's peer, then each X-Forwarded-For entry) be believed? */
  trust(address: string, hop: number): boolean;
  of(req: Request): Client;
}

export function createClients(trusts: (address: string) => boolean): Clients {
  return {
    trust: (address) => trusts(address),
    of(req) {
      const peer = req.socket.remoteAddress ?? "";
      // req.ip is a valid address unless a trusted hop passed on something that is not one.
      const address = req.ip && isIP(req.ip) ? req.ip : peer;
      const forwarded = forwardingHeadersOf(req.headers).length > 0;
      return {
        address: address || "unknown",
        key: limitKey(address) ?? "unknown",
        secure: req.secure,
        via: !forwarded ? "direct" : trusts(peer) ? "trusted-proxy" : "untrusted-proxy",
      };
    },
  };
}

/** The per-address limit key of an address: IPv4 as is, IPv4-mapped IPv6 unwrapped, other IPv6 by its /64. */
export function limitKey(address: string): string | undefined {
  const family = isIP(address);
  if (family === 4) return address;
  if (family !== 6) return undefined;
  const groups = ipv6Groups(address);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return [groups[6]! >> 8, groups[6]! & 0xff, groups[7]! >> 8, groups[7]! & 0xff].join(".");
  }
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(":")}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (node:net's isIP said so). */
function ipv6Groups(address: string): number[] {
  let text = address.split("%")[0]!;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split("::") as [string, string | undefined];
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const zeros = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill("0");
  return [...left, ...zeros, ...right].map((g) => parseInt(g, 16));
}
