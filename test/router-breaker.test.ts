import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createBreaker, type BreakerState } from "../src/models/breaker.ts";
import { createModelFactory } from "../src/models/registry.ts";
import { createRouter, ModelUnavailableError, type CallRecord, type ModelRequest } from "../src/models/router.ts";
import { providersFor, ref } from "./fakes/openai-providers.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { captureLogs } from "./support/logs.ts";

describe("circuit breaker", () => {
  const settings = { failureThreshold: 3, cooldownMs: 30_000, maxCooldownMs: 300_000 };
  let now: number;
  let transitions: Array<[BreakerState, BreakerState]>;
  const breaker = () => createBreaker(settings, () => now, (from, to) => void transitions.push([from, to]));

  beforeEach(() => {
    now = 1_000_000;
    transitions = [];
  });

  it("opens after K consecutive failures and skips the provider for the cool-down", () => {
    const b = breaker();
    b.failure("500", false);
    b.success(false);
    b.failure("500", false);
    b.failure("500", false);
    expect(b.snapshot()).toMatchObject({ state: "closed", consecutiveFailures: 2 });
    b.failure("500", false);
    expect(b.snapshot()).toMatchObject({ state: "open", consecutiveFailures: 3, openUntil: now + 30_000, lastError: "500" });
    expect(b.admit()).toEqual({ type: "skip", openUntil: now + 30_000 });
    now += 29_999;
    expect(b.admit().type).toBe("skip");
    expect(transitions).toEqual([["closed", "open"]]);
  });

  it("lets one trial through when half-open; success closes it and resets the cool-down", () => {
    const b = breaker();
    for (let i = 0; i < 3; i++) b.failure("down", false);
    now += 30_000;
    expect(b.snapshot().state).toBe("half-open");
    expect(b.admit()).toEqual({ type: "call", trial: true });
    expect(b.admit().type).toBe("skip");
    b.success(true);
    expect(b.snapshot()).toMatchObject({ state: "closed", consecutiveFailures: 0, cooldownMs: 30_000 });
    expect(b.admit()).toEqual({ type: "call", trial: false });
    expect(transitions).toEqual([
      ["closed", "open"],
      ["open", "half-open"],
      ["half-open", "closed"],
    ]);
  });

  it("doubles the cool-down after each failed trial, up to the maximum", () => {
    const b = breaker();
    for (let i = 0; i < 3; i++) b.failure("down", false);
    const cooldowns: number[] = [];
    for (let round = 0; round < 6; round++) {
      now = b.snapshot().openUntil!;
      expect(b.admit()).toEqual({ type: "call", trial: true });
      b.failure("still down", true);
      cooldowns.push(b.snapshot().openUntil! - now);
    }
    expect(cooldowns).toEqual([60_000, 120_000, 240_000, 300_000, 300_000, 300_000]);
  });

  it("a cancelled trial frees the slot for the next one", () => {
    const b = breaker();
    for (let i = 0; i < 3; i++) b.failure("down", false);
    now += 30_000;
    expect(b.admit()).toEqual({ type: "call", trial: true });
    b.release(true);
    expect(b.admit()).toEqual({ type: "call", trial: true });
  });
});

describe("model router with circuit breakers (injected clock)", () => {
  let fake: FakeOpenAIServer;
  let now: number;
  let records: CallRecord[];

  beforeEach(async () => {
    fake = await startFakeOpenAIServer();
    now = Date.parse("2026-01-01T00:00:00Z");
    records = [];
  });
  afterEach(() => fake.close());

  it("opens a failing provider's breaker, skips it while open, and closes it after a good trial", async () => {
    const logs = captureLogs();
    const router = createRouter({
      chain: [ref("openai-compatible:primary"), ref("ollama:backup")],
      models: createModelFactory(providersFor(fake.url)),
      record: async (call) => void records.push(call),
      log: logs.log,
      timeoutMs: 5_000,
      retries: 0,
      breaker: { failureThreshold: 3, cooldownMs: 30_000, maxCooldownMs: 300_000 },
      clock: { now: () => now, sleep: async () => {} },
    });
    const ask = (): ModelRequest => ({
      system: "test",
      messages: [{ role: "user", content: "hi" }],
      signal: new AbortController().signal,
      trace: { purpose: "answer" },
    });
    const state = (provider: string) => router.health().find((h) => h.provider === provider);

    fake.reply("primary", { error: { status: 503, message: "overloaded" } });
    for (let i = 0; i < 3; i++) expect((await router.stream(ask())).ref.model).toBe("backup");
    expect(fake.requestsFor("primary")).toHaveLength(3);
    expect(state("openai-compatible")).toMatchObject({
      state: "open",
      consecutiveFailures: 3,
      openUntil: new Date(now + 30_000),
      lastError: "HTTP 503: overloaded",
    });
    expect(state("ollama")).toMatchObject({ state: "closed", consecutiveFailures: 0 });
    expect(logs.text()).toContain("circuit breaker for openai-compatible opened: skipping it for 30 s");

    // Open: skipped without a request.
    now += 10_000;
    expect((await router.stream(ask())).ref.model).toBe("backup");
    expect(fake.requestsFor("primary")).toHaveLength(3);

    // Half-open after the cool-down: one trial, which succeeds and closes the breaker.
    now += 20_000;
    expect(state("openai-compatible")?.state).toBe("half-open");
    fake.reply("primary", { text: "back again" });
    expect((await router.stream(ask())).text).toBe("back again");
    expect(state("openai-compatible")).toMatchObject({ state: "closed", consecutiveFailures: 0, openUntil: undefined });
    expect(logs.text()).toContain("circuit breaker for openai-compatible: half-open → closed");
  });

  it("says which providers were skipped when every breaker is open", async () => {
    const router = createRouter({
      chain: [ref("openai-compatible:only")],
      models: createModelFactory(providersFor(fake.url)),
      record: async (call) => void records.push(call),
      log: captureLogs().log,
      timeoutMs: 5_000,
      retries: 0,
      breaker: { failureThreshold: 1 },
      clock: { now: () => now, sleep: async () => {} },
    });
    fake.reply("only", { error: { status: 500 } });
    const ask = (): ModelRequest => ({ system: "s", messages: [{ role: "user", content: "x" }], signal: new AbortController().signal, trace: { purpose: "answer" } });
    await expect(router.stream(ask())).rejects.toBeInstanceOf(ModelUnavailableError);
    const error = (await router.stream(ask()).then(
      () => undefined,
      (e: unknown) => e,
    )) as ModelUnavailableError;
    expect(error.message).toContain("skipped: openai-compatible is failing (circuit open until 2026-01-01T00:00:30.000Z)");
    expect(fake.requestsFor("only")).toHaveLength(1);
    expect(records).toHaveLength(1);
  });
});
