import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import { afterEach, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.ts";
import { createClients, forwardingHeadersOf, limitKey } from "../src/http/client.ts";
import { closeServer, createHttpApp, listen } from "../src/http/server.ts";
import { trustsAddress } from "../src/http/trust-proxy.ts";

/**
 * TRUST_PROXY, said once: the setting's grammar (a table), the hops it trusts, the key per-address limits count on,
 * and, through real HTTP, that every router mounted on the app sees the same req.ip and req.secure.
 */

const load = (value: string | undefined) =>
  loadConfig(value === undefined ? {} : { TRUST_PROXY: value }, "/nonexistent/.env");

describe("TRUST_PROXY", () => {
  it.each([
    // setting, trusted addresses, untrusted addresses
    [undefined, [], ["127.0.0.1", "::1", "10.0.0.5"]],
    ["", [], ["127.0.0.1", "::1"]],
    ["loopback", ["127.0.0.1", "127.9.8.7", "::1", "::ffff:127.0.0.1"], ["10.0.0.5", "::2", "192.168.1.1"]],
    ["LOOPBACK", ["127.0.0.1"], ["10.0.0.5"]],
    ["10.0.0.5", ["10.0.0.5", "::ffff:10.0.0.5"], ["10.0.0.6", "127.0.0.1"]],
    [" 10.0.0.0/8 , 2001:db8::/32 ", ["10.255.0.1", "2001:db8:1::5"], ["11.0.0.1", "2001:db9::1", "127.0.0.1"]],
    ["loopback, 172.16.0.0/12,", ["127.0.0.1", "172.20.1.2"], ["172.32.0.1"]],
    ["fd00::1/128", ["fd00::1"], ["fd00::2"]],
  ])("%j trusts %j and not %j", (value, trusted, untrusted) => {
    const trusts = trustsAddress(load(value).http.trustProxy);
    for (const address of trusted) expect(trusts(address), address).toBe(true);
    for (const address of untrusted) expect(trusts(address), address).toBe(false);
    expect(trusts("not an address")).toBe(false);
  });

  it.each([
    ["true", /would trust any hop/],
    ["*", /would trust any hop/],
    ["all", /would trust any hop/],
    ["1", /would trust any hop/],
    ["0.0.0.0/0", /would trust every address/],
    ["::/0", /would trust every address/],
    [",", /lists no address/],
    [" , , ", /lists no address/],
    ["loopback,proxy.example.com", /"proxy.example.com" is not loopback, an IP address or a CIDR range/],
    ["uniquelocal", /is not loopback/],
    ["10.0.0.0/33", /no valid prefix length \(0-32/],
    ["2001:db8::/129", /no valid prefix length \(0-128/],
    ["10.0.0.0/", /no valid prefix length/],
    ["10.0.0.0/8/8", /no valid prefix length/],
    ["10.0.0.256", /is not loopback/],
    ["fe80::1%eth0", /is not loopback/],
  ])("refuses %j at start-up, naming the variable", (value, message) => {
    let error: unknown;
    try {
      load(value);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(/TRUST_PROXY/);
    expect((error as Error).message).toMatch(message);
  });
});

describe("the client's limit key", () => {
  it.each([
    ["203.0.113.9", "203.0.113.9"],
    ["::ffff:203.0.113.9", "203.0.113.9"],
    ["::ffff:cb00:7109", "203.0.113.9"],
    ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"],
    ["2001:db8:1:2::ffff", "2001:db8:1:2::/64"],
    ["2001:db8::1", "2001:db8:0:0::/64"],
    ["2001:0db8:0000:0000:ffff::1", "2001:db8:0:0::/64"],
    ["::1", "0:0:0:0::/64"],
    ["::", "0:0:0:0::/64"],
    ["fe80::1%eth0", "fe80:0:0:0::/64"],
    ["not an address", undefined],
  ])("%s counts as %s", (address, key) => {
    expect(limitKey(address)).toBe(key);
  });

  it("lists the forwarding headers a request carries", () => {
    expect(forwardingHeadersOf({ host: "x", "user-agent": "curl" })).toEqual([]);
    expect(
      forwardingHeadersOf({
        "x-forwarded-for": "1.2.3.4",
        "x-forwarded-anything": "y",
        forwarded: "for=1.2.3.4",
        via: "1.1 proxy",
        "x-real-ip": "1.2.3.4",
        "cf-connecting-ip": "1.2.3.4",
        accept: "*/*",
      }).sort(),
    ).toEqual(["cf-connecting-ip", "forwarded", "via", "x-forwarded-anything", "x-forwarded-for", "x-real-ip"]);
  });
});

describe("req.ip and req.secure on every router of the app", () => {
  let server: Server | undefined;
  afterEach(async () => {
    if (server) await closeServer(server);
    server = undefined;
  });

  async function start(trustProxy: string | undefined): Promise<string> {
    const clients = createClients(trustsAddress(load(trustProxy).http.trustProxy));
    const router = express.Router();
    router.get("/who", (req, res) => {
      res.json({ ip: req.ip, ips: req.ips, secure: req.secure, client: clients.of(req) });
    });
    const app = createHttpApp({ readiness: async () => ({ ok: true }), routers: [{ path: "/nested", router }], clients });
    server = await listen(app, 0, "127.0.0.1");
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/nested/who`;
  }
  const who = async (url: string, headers: Record<string, string> = {}) => (await fetch(url, { headers })).json();

  it("believes X-Forwarded-For and X-Forwarded-Proto only from a trusted hop", async () => {
    const untrusting = await start(undefined);
    expect(await who(untrusting, { "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https" })).toEqual({
      ip: "127.0.0.1",
      ips: [],
      secure: false,
      client: { address: "127.0.0.1", key: "127.0.0.1", secure: false, via: "untrusted-proxy" },
    });
    expect((await who(untrusting, { "X-Real-IP": "203.0.113.9" })).client.via).toBe("untrusted-proxy");
    expect((await who(untrusting)).client.via).toBe("direct");
    await closeServer(server!);

    const trusting = await start("loopback");
    // The proxy appended the address it saw; what the client wrote before it is not believed.
    expect(await who(trusting, { "X-Forwarded-For": "198.51.100.1, 203.0.113.9", "X-Forwarded-Proto": "https" })).toEqual({
      ip: "203.0.113.9",
      ips: ["203.0.113.9"],
      secure: true,
      client: { address: "203.0.113.9", key: "203.0.113.9", secure: true, via: "trusted-proxy" },
    });
    expect((await who(trusting, { "X-Forwarded-For": "2001:db8:1:2::7" })).client).toMatchObject({
      address: "2001:db8:1:2::7",
      key: "2001:db8:1:2::/64",
    });
    expect((await who(trusting)).client).toEqual({ address: "127.0.0.1", key: "127.0.0.1", secure: false, via: "direct" });
  });
});
