import { describe, expect, it } from "vitest";
import { chatKey, isKey, parseKey, userKey } from "../src/core/keys.ts";

describe("key codec", () => {
  it.each([
    ["telegram", "-1001234", "telegram:-1001234"],
    ["telegram", 12345, "telegram:12345"],
    ["whatsapp", "4915112345678@c.us", "whatsapp:4915112345678@c.us"],
    ["whatsapp-cloud", "4915112345678", "whatsapp-cloud:4915112345678"],
    ["messenger", "6543210987", "messenger:6543210987"],
    ["web", "a:b:c", "web:a:b:c"],
  ] as const)("round-trips %s / %s", (channel, id, key) => {
    expect(chatKey(channel, id)).toBe(key);
    expect(userKey(channel, id)).toBe(key);
    expect(parseKey(key)).toEqual({ channel, id: String(id) });
  });

  it.each(["", "telegram", "telegram:", ":123", "signal:123", "Telegram:1"])("rejects %j", (bad) => {
    expect(isKey(bad)).toBe(false);
    expect(() => parseKey(bad)).toThrow(/not a key/);
  });

  it("refuses an empty platform id", () => {
    expect(() => chatKey("telegram", "")).toThrow(/empty platform id/);
  });
});
