import { lookup as dnsLookup } from "node:dns/promises";
import http from "node:http";
import https from "node:https";
import { isIP, type LookupFunction } from "node:net";
import { isPublicAddress } from "./addresses.ts";

/**
 * GET a URL from the public internet only, for tools that read pages the model names (scenario B7, SSRF):
 *
 * - http and https only, no credentials in the URL;
 * - the host is resolved once (every address it has), and every address must be public (see addresses.ts);
 * - the connection goes to the address that was checked (pinned through `lookup`), so a DNS answer that changes
 *   between the check and the connect (rebinding) cannot redirect it;
 * - redirects are followed by hand, at most `maxRedirects`, each new URL checked the same way;
 * - the body is read up to `maxBytes`; the whole fetch is bounded by `timeoutMs`.
 */

export interface ResolvedAddress {
  address: string;
  family: number;
}

export interface PublicFetchOptions {
  resolve: (hostname: string) => Promise<ResolvedAddress[]>;
  isAllowedAddress: (address: string) => boolean;
  maxBytes: number;
  timeoutMs: number;
  maxRedirects: number;
  userAgent: string;
}

export const PUBLIC_FETCH_DEFAULTS: PublicFetchOptions = {
  resolve: (hostname) => dnsLookup(hostname, { all: true, verbatim: true }),
  isAllowedAddress: isPublicAddress,
  maxBytes: 1_000_000,
  timeoutMs: 10_000,
  maxRedirects: 3,
  userAgent: "Parley/0.1 (url_reader; +https://github.com/)",
};

/** The URL may not be fetched; `message` is safe to show the model and the user. */
export class RefusedUrlError extends Error {
  override readonly name = "RefusedUrlError";
}

export interface FetchedPage {
  /** The URL finally read, after redirects. */
  url: string;
  status: number;
  contentType: string;
  body: Uint8Array;
  /** The body was longer than `maxBytes` and was cut there. */
  truncated: boolean;
}

export async function fetchPublic(rawUrl: string, options: Partial<PublicFetchOptions> = {}, signal?: AbortSignal): Promise<FetchedPage> {
  const o = { ...PUBLIC_FETCH_DEFAULTS, ...options };
  const deadline = AbortSignal.timeout(o.timeoutMs);
  const abort = signal ? AbortSignal.any([signal, deadline]) : deadline;
  let url = checkedUrl(rawUrl);
  for (let redirects = 0; ; redirects++) {
    const pinned = await resolvePublic(url, o);
    const response = await get(url, pinned, o, abort);
    if (response.status >= 300 && response.status < 400 && response.location !== undefined) {
      if (redirects >= o.maxRedirects) throw new RefusedUrlError(`more than ${o.maxRedirects} redirects`);
      url = checkedUrl(new URL(response.location, url).toString());
      continue;
    }
    return { url: url.toString(), status: response.status, contentType: response.contentType, body: response.body, truncated: response.truncated };
  }
}

function checkedUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new RefusedUrlError(`"${raw.slice(0, 200)}" is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new RefusedUrlError(`only http and https URLs are read, not ${url.protocol}`);
  if (url.username || url.password) throw new RefusedUrlError("URLs with a user name or password are refused");
  if (!url.hostname) throw new RefusedUrlError("the URL has no host");
  return url;
}

async function resolvePublic(url: URL, o: PublicFetchOptions): Promise<ResolvedAddress> {
  // WHATWG URL parsing already turned 2130706433, 0177.0.0.1 and 0x7f.1 into 127.0.0.1, and brackets IPv6.
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const family = isIP(host);
  let addresses: ResolvedAddress[];
  if (family !== 0) {
    addresses = [{ address: host, family }];
  } else {
    try {
      addresses = await o.resolve(host);
    } catch {
      throw new RefusedUrlError(`cannot resolve ${host}`);
    }
  }
  if (addresses.length === 0) throw new RefusedUrlError(`cannot resolve ${host}`);
  for (const { address } of addresses) {
    if (!o.isAllowedAddress(address)) {
      throw new RefusedUrlError(
        family === 0 ? `${host} resolves to ${address}, a private or reserved address` : `${address} is a private or reserved address`,
      );
    }
  }
  return addresses[0]!;
}

interface RawResponse {
  status: number;
  location?: string;
  contentType: string;
  body: Uint8Array;
  truncated: boolean;
}

const TEXT_TYPES = /^(text\/[\w.+-]+|application\/(json|xml|xhtml\+xml|[\w.-]+\+(json|xml)))$/i;

function get(url: URL, pinned: ResolvedAddress, o: PublicFetchOptions, signal: AbortSignal): Promise<RawResponse> {
  const client = url.protocol === "https:" ? https : http;
  // Every connection of this request goes to the address that was checked, whatever DNS says now.
  const lookup: LookupFunction = (_hostname, options, callback) => {
    if ((options as { all?: boolean }).all) callback(null, [{ address: pinned.address, family: pinned.family }]);
    else callback(null, pinned.address, pinned.family);
  };
  return new Promise<RawResponse>((resolve, reject) => {
    let settled = false;
    const settle = (run: () => void) => {
      if (!settled) {
        settled = true;
        run();
      }
    };
    const req = client.request(
      url,
      {
        method: "GET",
        agent: false,
        lookup,
        signal,
        headers: { "user-agent": o.userAgent, accept: "text/html,text/plain;q=0.9,*/*;q=0.1", "accept-encoding": "identity" },
      },
      (res) => {
        const status = res.statusCode ?? 0;
        const contentType = String(res.headers["content-type"] ?? "");
        const done = (body: Uint8Array, truncated: boolean) =>
          settle(() => resolve({ status, location: res.headers.location, contentType, body, truncated }));
        const encoding = String(res.headers["content-encoding"] ?? "identity").toLowerCase();
        const mime = contentType.split(";")[0]!.trim();
        if ((status >= 300 && status < 400) || status >= 400 || encoding !== "identity" || (mime !== "" && !TEXT_TYPES.test(mime))) {
          // Nothing to read: a redirect, an error, or a body we would not use.
          res.destroy();
          if (encoding !== "identity" && status < 300) settle(() => reject(new RefusedUrlError(`the page is sent ${encoding}-compressed`)));
          else done(new Uint8Array(), false);
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          if (size + chunk.length > o.maxBytes) {
            chunks.push(chunk.subarray(0, o.maxBytes - size));
            size = o.maxBytes;
            res.destroy();
            done(Buffer.concat(chunks), true);
            return;
          }
          chunks.push(chunk);
          size += chunk.length;
        });
        res.on("end", () => done(Buffer.concat(chunks), false));
        res.on("error", (error) => settle(() => reject(error)));
        res.on("close", () => settle(() => reject(new Error("the connection closed before the page was read"))));
      },
    );
    req.on("error", (error) => {
      const reason = signal.aborted ? new RefusedUrlError(`the page did not load within ${o.timeoutMs / 1000} s`) : error;
      settle(() => reject(reason));
    });
    req.end();
  });
}
