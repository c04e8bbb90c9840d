import { isIP } from "node:net";

/**
 * Whether an IP address is a public unicast address that a tool may connect to. Everything else is refused:
 * loopback, private (RFC 1918, ULA), link-local (169.254/16 with the cloud metadata service, fe80::/10), CGNAT,
 * multicast, documentation and benchmarking ranges, "this network", broadcast, and IPv6 forms that embed one of
 * those (IPv4-mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96). Pure; the IANA special-purpose registries are the source.
 */

const V4_RESERVED: Array<[string, number]> = [
  ["0.0.0.0", 8], // this network
  ["10.0.0.0", 8], // private
  ["100.64.0.0", 10], // shared address space (CGNAT)
  ["127.0.0.0", 8], // loopback
  ["169.254.0.0", 16], // link-local, cloud metadata
  ["172.16.0.0", 12], // private
  ["192.0.0.0", 24], // IETF protocol assignments
  ["192.0.2.0", 24], // documentation
  ["192.31.196.0", 24], // AS112
  ["192.52.193.0", 24], // AMT
  ["192.88.99.0", 24], // 6to4 relay anycast
  ["192.168.0.0", 16], // private
  ["192.175.48.0", 24], // AS112
  ["198.18.0.0", 15], // benchmarking
  ["198.51.100.0", 24], // documentation
  ["203.0.113.0", 24], // documentation
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, broadcast
];

const V6_REFUSED_IN_GLOBAL: Array<[string, number]> = [
  ["2001::", 23], // IETF protocol assignments (Teredo, benchmarking, ORCHID, …)
  ["2001:db8::", 32], // documentation
  ["2002::", 16], // 6to4: embeds an IPv4 address of any kind
  ["3fff::", 20], // documentation
];

export function isPublicAddress(address: string): boolean {
  const ip = address.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  const family = isIP(ip);
  if (family === 4) return isPublicV4(v4ToNumber(ip));
  if (family === 6) return isPublicV6(v6ToBigInt(ip));
  return false;
}

function isPublicV4(n: number): boolean {
  return !V4_RESERVED.some(([base, bits]) => inV4(n, v4ToNumber(base), bits));
}

function isPublicV6(n: bigint): boolean {
  const high96 = n >> 32n;
  // IPv4-mapped (::ffff:0:0/96) and NAT64 (64:ff9b::/96) reach an IPv4 address: judge that one.
  if (high96 === 0xffffn || high96 === 0x0064ff9b_00000000_00000000n) return isPublicV4(Number(n & 0xffffffffn));
  // Only global unicast (2000::/3) is public, minus its special ranges.
  if (!inV6(n, v6ToBigInt("2000::"), 3)) return false;
  return !V6_REFUSED_IN_GLOBAL.some(([base, bits]) => inV6(n, v6ToBigInt(base), bits));
}

function inV4(n: number, base: number, bits: number): boolean {
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return ((n & mask) >>> 0) === ((base & mask) >>> 0);
}

function inV6(n: bigint, base: bigint, bits: number): boolean {
  const shift = BigInt(128 - bits);
  return n >> shift === base >> shift;
}

function v4ToNumber(ip: string): number {
  return ip.split(".").reduce((acc, part) => ((acc << 8) | Number(part)) >>> 0, 0);
}

/** A valid IPv6 text (as isIP accepts it, with `::` and an optional trailing dotted quad) as a 128-bit number. */
function v6ToBigInt(ip: string): bigint {
  let text = ip.toLowerCase();
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (quad) {
    const v4 = v4ToNumber(quad[1]!);
    text = `${text.slice(0, quad.index)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const [head, tail] = text.includes("::") ? text.split("::") : [text, undefined];
  const headParts = head ? head.split(":") : [];
  const tailParts = tail ? tail.split(":") : [];
  const groups =
    tail === undefined ? headParts : [...headParts, ...Array<string>(8 - headParts.length - tailParts.length).fill("0"), ...tailParts];
  return groups.reduce((acc, group) => (acc << 16n) | BigInt(Number.parseInt(group || "0", 16)), 0n);
}
