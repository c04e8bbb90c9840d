import { describe, expect, it } from "vitest";
import { newPairingCode, normalizeCode, PAIRING_ALPHABET } from "../src/access/pairing.ts";
import { decideAccess, isAdmin, type AccessSettings } from "../src/access/policy.ts";
import { loadConfig } from "../src/config.ts";
import type { ChatKey, InboundMessage, UserKey } from "../src/core/types.ts";

const settings = (o: Partial<Omit<AccessSettings, "groups">> & { groups?: Partial<AccessSettings["groups"]> } = {}): AccessSettings => ({
  policy: o.policy ?? "pairing",
  allowedUsers: o.allowedUsers ?? new Set<UserKey>(["telegram:82"]),
  adminUsers: o.adminUsers ?? new Set<UserKey>(["telegram:1"]),
  groups: { policy: o.groups?.policy ?? "allowlist", allowlist: o.groups?.allowlist ?? new Set<ChatKey>(["telegram:-100500"]) },
});

const dm = (user: string, displayName?: string): InboundMessage => ({
  channel: user.startsWith("web:") ? "web" : "telegram",
  platformMessageId: "1",
  chat: user as ChatKey,
  user: user as UserKey,
  ...(displayName ? { displayName } : {}),
  isGroup: false,
  mentionsBot: false,
  replyToBot: false,
  text: "hi",
  attachments: [],
  receivedAt: new Date(0),
});
const group = (user: string, chat: string): InboundMessage => ({ ...dm(user), chat: chat as ChatKey, isGroup: true, mentionsBot: true });

describe("access policy", () => {
  it.each([
    ["an allowlisted key", settings(), dm("telegram:82"), "pending", "allowed"],
    ["an admin", settings(), dm("telegram:1"), "pending", "allowed"],
    ["a user approved on the admin page", settings(), dm("telegram:5"), "allowed", "allowed"],
    ["an unknown sender under pairing", settings(), dm("telegram:5"), "pending", "unknown"],
    ["an unknown sender under allowlist", settings({ policy: "allowlist" }), dm("telegram:5"), "pending", "unknown"],
    ["anyone under open", settings({ policy: "open" }), dm("telegram:5"), "pending", "allowed"],
    // A6: the display name (or username) is never what is checked.
    ["a display name equal to an allowlisted key", settings(), dm("telegram:81", "telegram:82"), "pending", "unknown"],
    ["a display name equal to an admin's key", settings({ policy: "allowlist" }), dm("telegram:81", "telegram:1"), "pending", "unknown"],
    ["a blocked allowlisted user", settings(), dm("telegram:82"), "blocked", "blocked"],
    ["a blocked user under open", settings({ policy: "open" }), dm("telegram:5"), "blocked", "blocked"],
    ["the web chat's operator (the holder of the link)", settings(), dm("web:operator"), "pending", "allowed"],
    ["the web chat's operator under allowlist", settings({ policy: "allowlist" }), dm("web:operator"), "pending", "allowed"],
    ["a blocked web chat operator", settings(), dm("web:operator"), "blocked", "blocked"],
    ["a public web chat visitor under pairing", settings(), dm("web:v-0123456789abcdefghijkl"), "pending", "unknown"],
    ["a public web chat visitor under allowlist", settings({ policy: "allowlist" }), dm("web:v-0123456789abcdefghijkl"), "pending", "unknown"],
    ["a public web chat visitor approved on the admin page", settings(), dm("web:v-0123456789abcdefghijkl"), "allowed", "allowed"],
    ["a public web chat visitor under open", settings({ policy: "open" }), dm("web:v-0123456789abcdefghijkl"), "pending", "allowed"],
    ["a web visitor listed in ADMIN_USERS (never an admin)", settings({ adminUsers: new Set(["web:v-0123456789abcdefghijkl" as UserKey]) }), dm("web:v-0123456789abcdefghijkl"), "pending", "unknown"],
    ["any other web key (an old page's client id)", settings(), dm("web:abc"), "pending", "unknown"],
    ["a blocked web chat user", settings(), dm("web:abc"), "blocked", "blocked"],
    // A7: groups have their own approval, whatever the sender's.
    ["a DM-approved user in a group not on the list", settings(), group("telegram:82", "telegram:-100999"), "allowed", "group-closed"],
    ["an admin in a group not on the list", settings(), group("telegram:1", "telegram:-100999"), "pending", "group-closed"],
    ["anyone in a listed group", settings(), group("telegram:5", "telegram:-100500"), "pending", "allowed"],
    ["a topic of a listed forum group", settings(), group("telegram:5", "telegram:-100500:77"), "pending", "allowed"],
    ["a group with GROUP_POLICY=off", settings({ groups: { policy: "off" } }), group("telegram:82", "telegram:-100500"), "allowed", "group-closed"],
    ["any group with GROUP_POLICY=open", settings({ groups: { policy: "open" } }), group("telegram:5", "telegram:-1"), "pending", "allowed"],
    ["open DMs do not open groups", settings({ policy: "open" }), group("telegram:5", "telegram:-1"), "pending", "group-closed"],
    ["a blocked user in an open group", settings({ groups: { policy: "open" } }), group("telegram:5", "telegram:-1"), "blocked", "blocked"],
  ] as const)("%s", (_name, s, message, status, expected) => {
    expect(decideAccess(s, message, status).type).toBe(expected);
  });

  it.each([
    ["a key ADMIN_USERS names", ["telegram:1"], "telegram:1", true],
    ["another key", ["telegram:1"], "telegram:2", false],
    ["a key that only starts like one", ["telegram:1"], "telegram:12", false],
    ["the web chat's operator, not named", ["telegram:1"], "web:operator", false],
    ["the web chat's operator, named", ["web:operator"], "web:operator", true],
    ["a web visitor, even named", ["web:v-0123456789abcdefghijkl"], "web:v-0123456789abcdefghijkl", false],
    ["anyone, with ADMIN_USERS empty", [], "web:operator", false],
  ] as const)("isAdmin: %s", (_name, admins, user, expected) => {
    expect(isAdmin({ adminUsers: new Set<UserKey>(admins as readonly UserKey[]) }, user as UserKey)).toBe(expected);
  });

  it("reads the policies from the configuration, pairing and closed groups by default", () => {
    const base = { PARLEY_DATA_DIR: "/tmp/x" };
    const defaults = loadConfig(base, "/nonexistent/.env");
    expect(defaults.access.policy).toBe("pairing");
    expect(defaults.access.groups.policy).toBe("allowlist");
    expect(defaults.access.groups.allowlist.size).toBe(0);
    expect(defaults.quotas).toEqual({ messagesPerMinute: 10, contemplationsPerHour: 10, tokensPerDay: 200_000, costPerDayUsd: null });
    expect(defaults.privacy.historyRetentionDays).toBeUndefined();
    const set = loadConfig(
      {
        ...base,
        ACCESS_POLICY: "allowlist",
        GROUP_POLICY: "allowlist",
        GROUP_ALLOWLIST: "telegram:-100500, whatsapp-cloud:123",
        ADMIN_USERS: "telegram:1",
        QUOTA_MESSAGES_PER_MINUTE: "0",
        QUOTA_COST_PER_DAY_USD: "0.5",
        HISTORY_RETENTION_DAYS: "30",
      },
      "/nonexistent/.env",
    );
    expect([...set.access.groups.allowlist]).toEqual(["telegram:-100500", "whatsapp-cloud:123"]);
    expect([...set.access.adminUsers]).toEqual(["telegram:1"]);
    expect(set.quotas.messagesPerMinute).toBeNull();
    expect(set.quotas.costPerDayUsd).toBe(0.5);
    expect(set.privacy.historyRetentionDays).toBe(30);
    expect(() => loadConfig({ ...base, GROUP_ALLOWLIST: "-100500" }, "/nonexistent/.env")).toThrow(/GROUP_ALLOWLIST/);
    expect(() => loadConfig({ ...base, ACCESS_POLICY: "pair" }, "/nonexistent/.env")).toThrow(/ACCESS_POLICY/);
    expect(() => loadConfig({ ...base, QUOTA_TOKENS_PER_DAY: "-1" }, "/nonexistent/.env")).toThrow(/QUOTA_TOKENS_PER_DAY/);
  });
});

describe("pairing codes", () => {
  it("are 8 characters from an alphabet without look-alikes", () => {
    expect(PAIRING_ALPHABET).not.toMatch(/[01OIL]/);
    const codes = new Set(Array.from({ length: 500 }, () => newPairingCode()));
    expect(codes.size).toBe(500);
    for (const code of codes) expect(code).toMatch(/^[ABCDEFGHJKMNPQRSTUVWXYZ2-9]{8}$/);
  });

  it.each([
    ["abcd2345", "ABCD2345"],
    [" ABCD-2345 ", "ABCD2345"],
    ["ABCD 2345", "ABCD2345"],
    ["ABCD234", undefined],
    ["ABCD23450", undefined],
    ["ABCD0345", undefined],
    ["ABCDI345", undefined],
  ])("reads %j as %j", (input, expected) => {
    expect(normalizeCode(input)).toBe(expected);
  });
});
