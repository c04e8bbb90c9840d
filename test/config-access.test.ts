import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.ts";
import { decideAccess } from "../src/access/policy.ts";
import type { InboundMessage } from "../src/core/types.ts";

/**
 * The access lists fail closed at start-up: a list whose entries are blank or malformed stops Parley with a message
 * naming the variable, never quoting the entry (it may be a secret pasted into the wrong variable), and never leaves a
 * list that matches no one while the operator believes it names someone. Empty lists keep their documented meaning
 * (README: GROUP_ALLOWLIST empty means no group; the allowlist policy always admits ADMIN_USERS and users approved on
 * the admin page), and that meaning is "no one", not "everyone".
 */

const TOKEN = "123456789:AAsecretBotTokenValue_abcdefghijk";
const base = { TELEGRAM_BOT_TOKEN: TOKEN };
const load = (env: Record<string, string>) => loadConfig({ ...base, ...env }, "/nonexistent/.env");
const failure = (env: Record<string, string>) => {
  try {
    load(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("the configuration was accepted");
};

const LISTS = [
  ["ALLOWED_USERS", "user"],
  ["ADMIN_USERS", "user"],
  ["GROUP_ALLOWLIST", "chat"],
] as const;

describe("access lists in the configuration", () => {
  it.each(LISTS.flatMap(([name]) => [" , ,", ",", " ,, , "].map((value) => [name, value] as const)))(
    "refuses %s=%j: separators only, no key",
    (name, value) => {
      const message = failure({ ACCESS_POLICY: "allowlist", GROUP_POLICY: "allowlist", [name]: value });
      expect(message).toContain(`${name}: lists no key, only separators`);
    },
  );

  it.each([
    // [variable, value, what the message says]
    ["ALLOWED_USERS", "telegram:abc", "a telegram user id is a number"],
    ["ALLOWED_USERS", "telegram:@someone", "a telegram user id is a number"],
    ["ALLOWED_USERS", "telegram:", "has no id after telegram:"],
    ["ALLOWED_USERS", "whatsapp:+1", "a whatsapp user id is"],
    ["ALLOWED_USERS", "whatsapp:4915112345678", "a whatsapp user id is"],
    ["ALLOWED_USERS", "whatsapp-cloud:+4915112345678", "a whatsapp-cloud user id is"],
    ["ALLOWED_USERS", "messenger:me", "a messenger user id is"],
    ["ALLOWED_USERS", "web:someone", "a web user id is"],
    ["ALLOWED_USERS", "signal:12345", "is not <channel>:<id>"],
    ["ALLOWED_USERS", "12345", "is not <channel>:<id>"],
    ["ALLOWED_USERS", "*", `"*" is not a wildcard`],
    ["ALLOWED_USERS", "telegram:*", "a telegram user id is a number"],
    ["ADMIN_USERS", "telegram:abc", "a telegram user id is a number"],
    ["ADMIN_USERS", "*", `"*" is not a wildcard`],
    ["GROUP_ALLOWLIST", "telegram:abc", "a telegram chat id is a number"],
    ["GROUP_ALLOWLIST", "telegram:-100123:abc", "a telegram chat id is a number"],
    ["GROUP_ALLOWLIST", "whatsapp:1234-5678", "a whatsapp chat id is"],
    ["GROUP_ALLOWLIST", "*", `"*" is not a wildcard`],
    ["GROUP_ALLOWLIST", "-100500", "is not <channel>:<id>"],
  ] as const)("refuses %s=%j, saying what a key of that channel looks like", (name, value, says) => {
    const message = failure({ ACCESS_POLICY: "allowlist", GROUP_POLICY: "allowlist", [name]: value });
    expect(message).toContain(`${name}: entry 1 of 1 `);
    expect(message).toContain(says);
  });

  it("refuses a list in which every entry is invalid, and one in which a single entry is", () => {
    expect(failure({ ACCESS_POLICY: "allowlist", ALLOWED_USERS: "telegram:abc, ,whatsapp:+1" })).toContain("ALLOWED_USERS: entry 1 of 2");
    expect(failure({ ACCESS_POLICY: "allowlist", ALLOWED_USERS: "telegram:12345,telegram:bob" })).toContain("ALLOWED_USERS: entry 2 of 2");
  });

  it("never quotes the entry: a secret pasted into the wrong variable stays out of the error", () => {
    for (const value of [TOKEN, `telegram:${TOKEN}`, `whatsapp:${TOKEN}`, `${TOKEN},telegram:1`]) {
      for (const name of ["ALLOWED_USERS", "ADMIN_USERS", "GROUP_ALLOWLIST"]) {
        const message = failure({ [name]: value });
        expect(message).toContain(`${name}: entry 1 of`);
        expect(message).not.toContain("AAsecretBotTokenValue");
      }
    }
  });

  it.each([
    ["telegram:12345", "ALLOWED_USERS"],
    ["telegram:4503599627370495", "ALLOWED_USERS"],
    ["whatsapp:4915112345678@c.us", "ALLOWED_USERS"],
    ["whatsapp:123456789012345@lid", "ALLOWED_USERS"],
    ["whatsapp-cloud:4915112345678", "ALLOWED_USERS"],
    ["whatsapp-cloud:US.13491208655302741918", "ALLOWED_USERS"],
    ["whatsapp-cloud:US.ENT.11815799212886844830", "ALLOWED_USERS"],
    ["messenger:6543210987", "ALLOWED_USERS"],
    ["web:operator", "ADMIN_USERS"],
    ["web:v-0123456789abcdefghijkl", "ALLOWED_USERS"],
    ["telegram:-1001234", "GROUP_ALLOWLIST"],
    // The anonymous admins of a group, or a channel that speaks there.
    ["telegram:-1001234", "ALLOWED_USERS"],
    ["telegram:-1001234:42", "GROUP_ALLOWLIST"],
    ["telegram:-4001234", "GROUP_ALLOWLIST"],
    ["whatsapp:120363012345678901@g.us", "GROUP_ALLOWLIST"],
    ["whatsapp:4915112345678-1600000000@g.us", "GROUP_ALLOWLIST"],
    ["whatsapp-cloud:Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD", "GROUP_ALLOWLIST"],
  ])("takes %s in %s", (key, name) => {
    const config = load({ [name]: ` ${key} ,` });
    const list = name === "GROUP_ALLOWLIST" ? config.access.groups.allowlist : name === "ADMIN_USERS" ? config.access.adminUsers : config.access.allowedUsers;
    expect([...list]).toEqual([key]);
  });

  it("keeps the documented meaning of an unset or empty list, which lets no one in", () => {
    const dm: InboundMessage = {
      channel: "telegram", platformMessageId: "1:1", chat: "telegram:1", user: "telegram:1", isGroup: false,
      mentionsBot: false, replyToBot: false, text: "hi", attachments: [], receivedAt: new Date(0),
    };
    const group: InboundMessage = { ...dm, chat: "telegram:-1001", isGroup: true, mentionsBot: true };
    for (const value of [undefined, "", "   "]) {
      const env = { ACCESS_POLICY: "allowlist", GROUP_POLICY: "allowlist", ...(value === undefined ? {} : { ALLOWED_USERS: value, GROUP_ALLOWLIST: value }) };
      const { access } = load(env);
      expect(access.allowedUsers.size).toBe(0);
      expect(access.groups.allowlist.size).toBe(0);
      expect(decideAccess(access, dm, "pending")).toEqual({ type: "unknown", policy: "allowlist" });
      expect(decideAccess(access, group, "allowed")).toEqual({ type: "group-closed" });
      // Approved on the admin page (README: the allowlist policy admits them): direct messages only.
      expect(decideAccess(access, dm, "allowed")).toEqual({ type: "allowed" });
    }
  });
});
