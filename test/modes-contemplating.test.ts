import type { ModelMessage } from "ai";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { agentSystem, angleOf, FALLBACK_NOTE, SYNTHESIS_FAILED_NOTE, synthesisSystem } from "../src/modes/contemplate-prompts.ts";
import { runMode, type CallLog, type ModeContext, type ModeName, type ModeSettings } from "../src/modes/index.ts";
import { createModelFactory } from "../src/models/registry.ts";
import { createRouter, type CallRecord } from "../src/models/router.ts";
import { providersFor, ref } from "./fakes/openai-providers.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fakes/openai-server.ts";
import { captureLogs } from "./support/logs.ts";

/**
 * The modes on their own: the real router and AI SDK providers against the fake model server, with the reply stream
 * and the model_calls table replaced by recorders. Timings are measured on the wall clock with generous margins.
 */

const QUESTION: ModelMessage[] = [{ role: "user", content: "How many legs do three spiders have?" }];

describe("modes", () => {
  let fake: FakeOpenAIServer;
  let records: CallRecord[];
  let parents: Map<number, CallRecord>;
  let statuses: string[];
  let shown: string;
  let logs: ReturnType<typeof captureLogs>;

  const settings = (over: Partial<ModeSettings["contemplate"]> = {}, chains: Partial<ModeSettings["chains"]> = {}): ModeSettings => ({
    chains: {
      instant: [ref("openai-compatible:fast")],
      thinking: [ref("openai-compatible:thinker")],
      contemplating: [[ref("openai-compatible:agent-a")], [ref("ollama:agent-b")], [ref("meta:agent-c")]],
      synthesis: [ref("openai-compatible:synth")],
      ...chains,
    },
    contemplate: { agents: 3, agentTimeoutMs: 10_000, maxOutputTokens: 500, budgetTokens: 10_000, ...over },
    maxSteps: 3,
  });

  const context = (modeSettings: ModeSettings, extra: Partial<ModeContext> = {}): ModeContext => {
    let nextId = 100;
    const calls: CallLog = {
      open: async (call) => {
        parents.set(++nextId, { ...call });
        return nextId;
      },
      close: async (id, patch) => void parents.set(id, { ...parents.get(id)!, ...patch, error: patch.error }),
    };
    return {
      router: createRouter({
        chain: modeSettings.chains.instant,
        models: createModelFactory(providersFor(fake.url)),
        record: async (call) => void records.push(call),
        log: logs.log,
        timeoutMs: 10_000,
        retryDelayMs: 10,
        capabilities: [{ pattern: "openai-compatible:thinker", flags: { images: false, tools: false, reasoning: true } }],
      }),
      settings: modeSettings,
      system: "You are a test assistant.",
      messages: QUESTION,
      requires: {},
      output: {
        push: (delta) => void (shown += delta),
        reset: () => void (shown = ""),
        setStatus: (text) => void statuses.push(text),
      },
      signal: new AbortController().signal,
      trace: { inboxId: 7, userKey: "telegram:1" },
      calls,
      log: logs.log,
      ...extra,
    };
  };
  const run = (mode: ModeName, ctx: ModeContext) => runMode(mode, ctx);
  const timed = async <T>(work: () => Promise<T>): Promise<[T, number]> => {
    const started = performance.now();
    const result = await work();
    return [result, Math.round(performance.now() - started)];
  };

  beforeEach(async () => {
    fake = await startFakeOpenAIServer();
    records = [];
    parents = new Map();
    statuses = [];
    shown = "";
    logs = captureLogs();
  });
  afterEach(() => fake.close());

  it("runs the agents in parallel: three 500 ms agents and a 100 ms synthesis take about 600 ms, not 1.6 s", async () => {
    for (const agent of ["agent-a", "agent-b", "agent-c"]) fake.reply(agent, { text: `draft of ${agent}`, delayMs: 500 });
    fake.reply("synth", { text: "Eighteen... no: 24 legs.", delayMs: 100 });
    fake.reply("fast", { text: "24 legs.", delayMs: 500 });
    // Warm up the providers and connections so the measurement is of the modes.
    await run("instant", context(settings()));

    const [single, singleMs] = await timed(() => run("instant", context(settings())));
    expect(single).toEqual({ type: "answer", mode: "instant", text: "24 legs." });
    shown = "";
    const [result, contemplateMs] = await timed(() => run("contemplating", context(settings())));
    expect(result).toEqual({ type: "answer", mode: "contemplating", text: "Eighteen... no: 24 legs." });
    console.log(
      `[measured] contemplating with 3 agents × 500 ms + synthesis 100 ms (sum 1600 ms): ${contemplateMs} ms wall; one instant call of 500 ms: ${singleMs} ms wall`,
    );
    expect(contemplateMs).toBeGreaterThanOrEqual(600);
    expect(contemplateMs).toBeLessThan(1_600);

    const agentRequests = ["agent-a", "agent-b", "agent-c"].map((m) => fake.requestsFor(m).at(-1)!);
    expect(agentRequests.map((r) => r.lastUserText)).toEqual(Array(3).fill("How many legs do three spiders have?"));
    expect(shown).toBe("Eighteen... no: 24 legs.");
  });

  it("takes about as long as the slowest agent plus the synthesis, and shows progress", async () => {
    fake.reply("agent-a", { text: "A", delayMs: 100 });
    fake.reply("agent-b", { text: "B", delayMs: 400 });
    fake.reply("agent-c", { text: "C", delayMs: 900 });
    fake.reply("synth", { text: "done", delayMs: 100 });
    const [result, ms] = await timed(() => run("contemplating", context(settings())));
    expect(result).toMatchObject({ type: "answer", text: "done" });
    expect(ms).toBeGreaterThanOrEqual(1_000);
    expect(ms).toBeLessThan(1_900);
    expect(statuses).toEqual(["3 agents working…", "1 of 3 done…", "2 of 3 done…", "Writing the answer…"]);
  });

  it("records every call under one parent row: agents, synthesis, totals", async () => {
    fake.reply("agent-a", { text: "A", usage: { promptTokens: 10, completionTokens: 1 } });
    fake.reply("agent-b", { text: "B", usage: { promptTokens: 20, completionTokens: 2 } });
    fake.reply("agent-c", { text: "C", usage: { promptTokens: 30, completionTokens: 3 } });
    fake.reply("synth", { text: "ABC", usage: { promptTokens: 40, completionTokens: 4 } });
    await run("contemplating", context(settings()));
    expect([...parents.values()]).toEqual([
      expect.objectContaining({ purpose: "answer", mode: "contemplating", provider: "parley", ok: true, error: undefined, tokensIn: 100, tokensOut: 10, inboxId: 7 }),
    ]);
    const [parentId] = parents.keys();
    expect(records.map((r) => [r.purpose, r.provider, r.model, r.parentId, r.inboxId, r.userKey]).sort()).toEqual([
      ["agent", "meta", "agent-c", parentId, 7, "telegram:1"],
      ["agent", "ollama", "agent-b", parentId, 7, "telegram:1"],
      ["agent", "openai-compatible", "agent-a", parentId, 7, "telegram:1"],
      ["synthesis", "openai-compatible", "synth", parentId, 7, "telegram:1"],
    ]);
    // Each agent's output is capped.
    for (const m of ["agent-a", "agent-b"]) expect(fake.requestsFor(m)[0]?.body).toMatchObject({ max_tokens: 500 });
    // Meta's Muse Spark always reasons and counts reasoning against the cap: the thinking budget comes on top.
    expect(fake.requestsFor("agent-c")[0]?.body).toMatchObject({ max_output_tokens: 500 + 8_192 });
  });

  it("leaves out a failed agent and tells the synthesis which angle is missing", async () => {
    fake.reply("agent-a", { text: "DRAFT-A" });
    fake.reply("agent-b", { error: { status: 500, message: "broken" } });
    fake.reply("agent-c", { text: "DRAFT-C" });
    fake.reply("synth", { text: "combined" });
    const result = await run("contemplating", context(settings()));
    expect(result).toEqual({ type: "answer", mode: "contemplating", text: "combined" });
    const system = fake.requestsFor("synth")[0]!.systemText!;
    expect(system).toContain('Missing angles: the drafts for "what could be wrong" (no model answered) did not arrive.');
    expect(system).toContain('<draft angle="direct solution">\nDRAFT-A\n</draft>');
    expect(system).toContain('<draft angle="what the user really needs">\nDRAFT-C\n</draft>');
    expect(system).not.toContain('angle="what could be wrong"');
    expect([...parents.values()][0]).toMatchObject({ ok: true, error: "left out: what could be wrong (no model answered)" });
  });

  it("leaves out an agent that exceeds its time limit, without waiting for it", async () => {
    fake.reply("agent-a", { text: "A" });
    fake.reply("agent-b", { text: "B" });
    fake.reply("agent-c", { hang: true });
    fake.reply("synth", { text: "without C" });
    const [result, ms] = await timed(() => run("contemplating", context(settings({ agentTimeoutMs: 400 }))));
    expect(result).toMatchObject({ type: "answer", text: "without C" });
    expect(ms).toBeLessThan(3_000);
    expect(fake.requestsFor("synth")[0]!.systemText).toContain('"what the user really needs" (timed out after 0.4 s)');
    expect(records.find((r) => r.model === "agent-c")).toMatchObject({ ok: false, error: "timed out" });
  });

  it("answers in Thinking mode, and says so, when every agent fails", async () => {
    for (const agent of ["agent-a", "agent-b", "agent-c"]) fake.reply(agent, { error: { status: 503 } });
    fake.reply("thinker", { text: "24.", reasoning: "3 × 8" });
    const result = await run("contemplating", context(settings()));
    expect(result).toEqual({ type: "answer", mode: "thinking", text: `${FALLBACK_NOTE}\n\n24.` });
    expect(shown).toBe("24.");
    expect(statuses).toContain("Thinking…");
    expect(fake.requestsFor("synth")).toHaveLength(0);
    const parent = [...parents.values()][0]!;
    expect(parent.ok).toBe(false);
    expect(parent.error).toMatch(/^all 3 agents failed .*; answered in thinking mode$/);
    expect(records.find((r) => r.model === "thinker")).toMatchObject({ purpose: "answer", mode: "thinking", reasoning: "3 × 8", parentId: [...parents.keys()][0] });
  });

  it("cuts the agents off when the shared token budget runs out, and uses their drafts so far", async () => {
    const long = Array.from({ length: 60 }, (_, i) => `word${i}`).join(" ");
    for (const agent of ["agent-a", "agent-b", "agent-c"]) fake.reply(agent, { text: long, chunkDelayMs: 20 });
    fake.reply("synth", { text: "short answer" });
    const result = await run("contemplating", context(settings({ budgetTokens: 60 })));
    expect(result).toMatchObject({ type: "answer", text: "short answer" });
    const system = fake.requestsFor("synth")[0]!.systemText!;
    expect(system).toContain('note="cut off at the token budget"');
    expect(system).not.toContain("word59");
    const cut = records.filter((r) => r.purpose === "agent");
    expect(cut.length).toBe(3);
    expect(cut.every((r) => r.error === "cancelled: the contemplation's token budget was used up")).toBe(true);
  });

  it("falls back to the most direct draft when the synthesis fails", async () => {
    fake.reply("agent-a", { text: "DIRECT DRAFT" });
    fake.reply("agent-b", { text: "critic" });
    fake.reply("agent-c", { text: "needs" });
    fake.reply("synth", { error: { status: 400, message: "nope" } });
    const result = await run("contemplating", context(settings()));
    expect(result).toEqual({ type: "answer", mode: "contemplating", text: `${SYNTHESIS_FAILED_NOTE}\n\nDIRECT DRAFT` });
    expect([...parents.values()][0]!.error).toMatch(/^synthesis failed/);
  });

  it("cycles the per-agent chains and angles when there are more agents than either", async () => {
    const s = settings({ agents: 4 }, { contemplating: [[ref("openai-compatible:agent-a")], [ref("ollama:agent-b")]] });
    await run("contemplating", context(s));
    expect(fake.requestsFor("agent-a")).toHaveLength(2);
    expect(fake.requestsFor("agent-b")).toHaveLength(2);
    expect(statuses[0]).toBe("4 agents working…");
    expect(angleOf(3)).toEqual({ angle: angleOf(0).angle, round: 1 });
    expect(agentSystem("BASE", 3, 4)).toContain("You are adviser 4 of 4");
    expect(agentSystem("BASE", 3, 4)).toContain("Take a different route from the most obvious one.");
    expect(agentSystem("BASE", 0, 4)).not.toContain("different route");
  });

  it("Instant refuses an image when no configured model can see images; Thinking shows its status", async () => {
    const image: ModelMessage[] = [{ role: "user", content: [{ type: "image", image: new Uint8Array([1, 2, 3]), mediaType: "image/png" }] }];
    const refused = await run("instant", context(settings(), { messages: image, requires: { images: true } }));
    expect(refused).toMatchObject({ type: "refused" });
    expect(refused.type === "refused" && refused.reply).toContain("none of the models configured here can see them");
    expect(fake.requests).toHaveLength(0);

    fake.reply("thinker", { text: "thought", reasoning: "hmm" });
    expect(await run("thinking", context(settings()))).toEqual({ type: "answer", mode: "thinking", text: "thought" });
    expect(statuses).toEqual(["Thinking…"]);
    expect(fake.lastRequest()?.body).toMatchObject({ reasoning_effort: "high" });
  });

  it("reports 'unavailable' when no model answers, so the message can be retried later", async () => {
    fake.reply("fast", { error: { status: 401 } });
    const result = await run("instant", context(settings()));
    expect(result).toMatchObject({ type: "unavailable" });
    expect(result.type === "unavailable" && result.reason).toContain("openai-compatible:fast (HTTP 401");
  });

  it("builds the synthesis prompt from drafts and missing angles", () => {
    const text = synthesisSystem("BASE", [{ label: "direct solution", text: " 42 \n", cutOff: false }], [{ label: "what could be wrong", reason: "timed out after 90 s" }]);
    expect(text.startsWith("BASE\n\nSeveral advisers")).toBe(true);
    expect(text).toContain('Missing angles: the drafts for "what could be wrong" (timed out after 90 s) did not arrive.');
    expect(text.endsWith('<draft angle="direct solution">\n42\n</draft>')).toBe(true);
  });
});
