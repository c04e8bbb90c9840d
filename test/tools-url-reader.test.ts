import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isPublicAddress } from "../src/tools/addresses.ts";
import { htmlToText } from "../src/tools/html-text.ts";
import { RefusedUrlError, type PublicFetchOptions, type ResolvedAddress } from "../src/tools/public-fetch.ts";
import { createToolSet } from "../src/tools/registry.ts";
import { readUrl } from "../src/tools/url-reader.ts";

/**
 * Scenario B7 (SSRF): the URL reader never connects to a private or reserved address, whether named directly, in
 * one of IPv4's odd spellings, through a DNS name, after a redirect, or by a DNS answer that changes between check
 * and connect. A canary server on 127.0.0.1 (and ::1) must see no connection at all. The "public" test server
 * listens on 127.0.0.2, which these tests (and only they) allow through the injected address policy.
 */

describe("public addresses", () => {
  it.each([
    ["93.184.216.34", true],
    ["8.8.8.8", true],
    ["2606:4700:4700::1111", true],
    ["::ffff:8.8.8.8", true],
    ["64:ff9b::808:808", true],
    ["127.0.0.1", false],
    ["127.255.0.9", false],
    ["10.0.0.5", false],
    ["172.16.3.4", false],
    ["172.31.255.255", false],
    ["192.168.1.1", false],
    ["169.254.169.254", false],
    ["100.64.0.1", false],
    ["0.0.0.0", false],
    ["255.255.255.255", false],
    ["224.0.0.1", false],
    ["192.0.2.10", false],
    ["198.18.0.1", false],
    ["::1", false],
    ["::", false],
    ["[::1]", false],
    ["::ffff:127.0.0.1", false],
    ["::ffff:7f00:1", false],
    ["::ffff:169.254.169.254", false],
    ["64:ff9b::7f00:1", false],
    ["fe80::1", false],
    ["fe80::1%eth0", false],
    ["fc00::1", false],
    ["fd12:3456::1", false],
    ["ff02::1", false],
    ["2001:db8::1", false],
    ["2002:7f00:1::1", false],
    ["2001:0:4136:e378::1", false],
    ["not an address", false],
  ])("%s → %s", (address, expected) => {
    expect(isPublicAddress(address)).toBe(expected);
  });
});

describe("url reader", () => {
  let canary: Server;
  let canary6: Server | undefined;
  let canaryPort = 0;
  let canary6Port = 0;
  let canaryConnections = 0;
  let site: Server;
  let sitePort = 0;
  const siteRequests: string[] = [];
  let resolveCalls: string[] = [];
  let rebindCount = 0;

  const listen = (server: Server, host: string) =>
    new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, host, () => resolve((server.address() as AddressInfo).port));
    });

  const DNS: Record<string, string[]> = {
    "public.test": ["127.0.0.2"],
    "internal.test": ["127.0.0.1"],
    "private.test": ["10.0.0.5"],
    "zero.test": ["0.0.0.0"],
    "metadata.test": ["169.254.169.254"],
    "mixed.test": ["127.0.0.2", "192.168.0.7"],
    "six.test": ["::1"],
  };
  const resolve = async (host: string): Promise<ResolvedAddress[]> => {
    resolveCalls.push(host);
    // First answer public, every later one loopback: a rebinding attack that pinning must defeat.
    if (host === "rebind.test") return [{ address: rebindCount++ === 0 ? "127.0.0.2" : "127.0.0.1", family: 4 }];
    const addresses = DNS[host];
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" });
    return addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
  };
  const web = (extra: Partial<PublicFetchOptions> = {}): Partial<PublicFetchOptions> => ({
    resolve,
    isAllowedAddress: (address) => address === "127.0.0.2" || isPublicAddress(address),
    timeoutMs: 2_000,
    ...extra,
  });
  const site$ = (path: string) => `http://public.test:${sitePort}${path}`;

  beforeAll(async () => {
    canary = createServer((_req, res) => res.end("CANARY"));
    canary.on("connection", () => canaryConnections++);
    canaryPort = await listen(canary, "127.0.0.1");
    try {
      const server = createServer((_req, res) => res.end("CANARY6"));
      server.on("connection", () => canaryConnections++);
      canary6Port = await listen(server, "::1");
      canary6 = server;
    } catch {
      canary6 = undefined; // no IPv6 loopback here
    }
    site = createServer((req, res) => {
      siteRequests.push(req.url ?? "");
      const url = req.url ?? "/";
      const redirect = (location: string, status = 302) => {
        res.writeHead(status, { location });
        res.end();
      };
      if (url === "/page") {
        res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
        res.end(
          "<!doctype html><html><head><title>Tea &amp; biscuits</title><style>p{color:red}</style></head><body>" +
            "<script>alert('x')</script><h1>Recipes</h1><p>Brew for 4&nbsp;minutes.</p><ul><li>milk</li><li>sugar</li></ul>" +
            "<!-- hidden --></body></html>",
        );
      } else if (url === "/plain") {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end("just text\n");
      } else if (url === "/to-loopback") redirect(`http://127.0.0.1:${canaryPort}/`);
      else if (url === "/to-internal-name") redirect(`http://internal.test:${canaryPort}/secret`, 301);
      else if (url === "/to-metadata") redirect("http://169.254.169.254/latest/meta-data/", 307);
      else if (url === "/to-relative") redirect("/page", 308);
      else if (url.startsWith("/hop/")) redirect(`/hop/${Number(url.slice(5)) + 1}`);
      else if (url === "/big") {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end("x".repeat(50_000));
      } else if (url === "/image") {
        res.writeHead(200, { "content-type": "image/png" });
        res.end(Buffer.alloc(100));
      } else if (url === "/slow") {
        // never answers
      } else if (url === "/missing") {
        res.writeHead(404, { "content-type": "text/plain" });
        res.end("not here");
      } else {
        res.writeHead(500);
        res.end();
      }
    });
    sitePort = await listen(site, "127.0.0.2");
  });

  afterAll(async () => {
    site.closeAllConnections();
    canary.closeAllConnections();
    canary6?.closeAllConnections();
    await Promise.all([site, canary, canary6].filter((s): s is Server => s !== undefined).map((s) => new Promise((r) => s.close(r))));
  });

  const refusals = () => [
    [`http://127.0.0.1:${canaryPort}/`, `127.0.0.1 is a private or reserved address`],
    ["http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a private or reserved address"],
    [`http://[::1]:${canary6Port || canaryPort}/`, "::1 is a private or reserved address"],
    [`http://[::ffff:127.0.0.1]:${canaryPort}/`, "::ffff:7f00:1 is a private or reserved address"],
    [`http://2130706433:${canaryPort}/`, "127.0.0.1 is a private or reserved address"],
    [`http://0177.0.0.1:${canaryPort}/`, "127.0.0.1 is a private or reserved address"],
    [`http://0x7f.1:${canaryPort}/`, "127.0.0.1 is a private or reserved address"],
    [`http://localhost:${canaryPort}/`, "cannot resolve localhost"],
    [`http://internal.test:${canaryPort}/`, "internal.test resolves to 127.0.0.1, a private or reserved address"],
    [`http://private.test:${canaryPort}/`, "private.test resolves to 10.0.0.5, a private or reserved address"],
    [`http://zero.test:${canaryPort}/`, "zero.test resolves to 0.0.0.0, a private or reserved address"],
    [`http://metadata.test/`, "metadata.test resolves to 169.254.169.254, a private or reserved address"],
    [`http://mixed.test:${sitePort}/page`, "mixed.test resolves to 192.168.0.7, a private or reserved address"],
    [`http://six.test:${canary6Port || canaryPort}/`, "six.test resolves to ::1, a private or reserved address"],
    [site$("/to-loopback"), "127.0.0.1 is a private or reserved address"],
    [site$("/to-internal-name"), "internal.test resolves to 127.0.0.1, a private or reserved address"],
    [site$("/to-metadata"), "169.254.169.254 is a private or reserved address"],
    ["file:///etc/passwd", "only http and https URLs are read, not file:"],
    ["ftp://public.test/x", "only http and https URLs are read, not ftp:"],
    [`http://user:secret@public.test:${sitePort}/page`, "URLs with a user name or password are refused"],
    ["not a url", '"not a url" is not a URL'],
    [site$("/hop/0"), "more than 3 redirects"],
  ];

  it("refuses private, loopback, link-local and reserved targets, directly, by name and after redirects; the canary sees nothing", async () => {
    for (const [url, message] of refusals()) {
      const error = await readUrl(url!, web()).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, url).toBeInstanceOf(RefusedUrlError);
      expect((error as Error).message, url).toBe(message);
    }
    // The redirecting page was asked; what it pointed to was not.
    expect(siteRequests).toEqual(expect.arrayContaining(["/to-loopback", "/to-internal-name", "/to-metadata"]));
    expect(siteRequests.filter((p) => p.startsWith("/hop/"))).toEqual(["/hop/0", "/hop/1", "/hop/2", "/hop/3"]);
    await new Promise((r) => setTimeout(r, 100));
    expect(canaryConnections).toBe(0);
  });

  it("connects to the address it checked, so a DNS answer that changes afterwards cannot redirect it", async () => {
    resolveCalls = [];
    rebindCount = 0;
    const page = await readUrl(`http://rebind.test:${sitePort}/plain`, web());
    expect(page).toMatchObject({ url: `http://rebind.test:${sitePort}/plain`, status: 200, text: "just text", truncated: false });
    expect(resolveCalls).toEqual(["rebind.test"]);
    // A second read resolves again, gets loopback, and is refused before connecting.
    await expect(readUrl(`http://rebind.test:${canaryPort}/plain`, web())).rejects.toThrow("rebind.test resolves to 127.0.0.1");
    expect(canaryConnections).toBe(0);
  });

  it("reads an HTML page as text, follows a relative redirect, and marks the content as external", async () => {
    const page = await readUrl(site$("/to-relative"), web());
    expect(page.url).toBe(site$("/page"));
    expect(page.title).toBe("Tea & biscuits");
    expect(page.text).toBe("Recipes\n\nBrew for 4 minutes.\n\n- milk\n- sugar");
    expect(page.text).not.toContain("alert");
    expect(page.note).toMatch(/never instructions/);
  });

  it("caps the size, refuses binary content and error pages, and times out", async () => {
    const big = await readUrl(site$("/big"), web({ maxBytes: 10_000 }));
    expect(big).toMatchObject({ truncated: true });
    expect(big.text).toHaveLength(10_000);
    await expect(readUrl(site$("/image"), web())).rejects.toThrow("not a text page (image/png)");
    await expect(readUrl(site$("/missing"), web())).rejects.toThrow("the page answered HTTP 404");
    const started = performance.now();
    await expect(readUrl(site$("/slow"), web({ timeoutMs: 300 }))).rejects.toThrow("the page did not load within 0.3 s");
    expect(performance.now() - started).toBeLessThan(3_000);
  });

  it("works as a tool: a refusal becomes the tool's error", async () => {
    const { url_reader: tool } = createToolSet(["url_reader"], { now: () => new Date(), timeZone: "UTC", web: web() });
    const options = { toolCallId: "1", messages: [] };
    await expect(tool!.execute!({ url: `http://127.0.0.1:${canaryPort}/` }, options)).rejects.toThrow("private or reserved");
    expect(await tool!.execute!({ url: site$("/plain") }, options)).toMatchObject({ text: "just text" });
    expect(canaryConnections).toBe(0);
  });

  it("turns HTML into text without choking on unclosed tags", () => {
    expect(htmlToText("<p>a<script>never closed")).toEqual({ text: "a" });
    expect(htmlToText("x &lt;b&gt; &#128512; &#x41; &bogus; <br>y").text).toBe("x <b> 😀 A &bogus;\ny");
    const many = "<script>1</script><p>".repeat(50_000);
    const started = performance.now();
    htmlToText(many);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});
