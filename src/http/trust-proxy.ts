import { BlockList, isIP } from "node:net";

/**
 * TRUST_PROXY: the hops allowed to say who the client is (X-Forwarded-For) and whether it used HTTPS
 * (X-Forwarded-Proto). Unset trusts no hop. Otherwise a comma-separated list of `loopback` (127.0.0.0/8 and ::1),
 * addresses and CIDR ranges, IPv4 or IPv6. There is deliberately no way to say "every hop": not `true`, `*`, `all`,
 * a hop count or a /0 range, since trusting a hop that is not your proxy lets any client write its own address.
 */

export interface TrustedRange {
  address: string;
  prefix: number;
  family: "ipv4" | "ipv6";
}

export type ParsedTrust = { ok: true; value: TrustedRange[] } | { ok: false; error: string };

const LOOPBACK: TrustedRange[] = [
  { address: "127.0.0.0", prefix: 8, family: "ipv4" },
  { address: "::1", prefix: 128, family: "ipv6" },
];

export function parseTrustProxy(text: string | undefined): ParsedTrust {
  if (text === undefined || text.trim() === "") return { ok: true, value: [] };
  const entries = text.split(",").map((e) => e.trim()).filter(Boolean);
  if (entries.length === 0) return { ok: false, error: "lists no address (unset it to trust no proxy)" };
  const ranges: TrustedRange[] = [];
  for (const entry of entries) {
    const range = parseEntry(entry);
    if (typeof range === "string") return { ok: false, error: `"${entry}" ${range}` };
    ranges.push(...range);
  }
  return { ok: true, value: ranges };
}

function parseEntry(entry: string): TrustedRange[] | string {
  if (entry.toLowerCase() === "loopback") return LOOPBACK;
  const slash = entry.indexOf("/");
  const address = slash === -1 ? entry : entry.slice(0, slash);
  const family = isIP(address);
  if (family === 0 || address.includes("%")) {
    return /^(true|yes|on|\*|all|any|\d+)$/i.test(entry)
      ? "would trust any hop; name your proxy's address instead, e.g. loopback or 10.0.0.5"
      : "is not loopback, an IP address or a CIDR range such as 10.0.0.0/8";
  }
  const max = family === 4 ? 32 : 128;
  let prefix = max;
  if (slash !== -1) {
    const bits = entry.slice(slash + 1);
    if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return `has no valid prefix length (0-${max} after the /)`;
    prefix = Number(bits);
    if (prefix === 0) return "would trust every address; name your proxy's address or subnet instead";
  }
  return [{ address, prefix, family: family === 4 ? "ipv4" : "ipv6" }];
}

/** Whether an address (the socket's peer, or an X-Forwarded-For entry) is one of the trusted hops. */
export function trustsAddress(ranges: readonly TrustedRange[]): (address: string) => boolean {
  if (ranges.length === 0) return () => false;
  const list = new BlockList();
  for (const range of ranges) list.addSubnet(range.address, range.prefix, range.family);
  return (address) => {
    const family = isIP(address);
    return family !== 0 && list.check(address, family === 4 ? "ipv4" : "ipv6");
  };
}
