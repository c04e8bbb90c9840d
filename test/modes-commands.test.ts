import { describe, expect, it } from "vitest";
import { ASK_EMPTY_TEXT, HELP_TEXT, modeText, parseCommand } from "../src/conversation/commands.ts";
import { modelsOf, parseModeName } from "../src/modes/index.ts";
import { ref } from "./fakes/openai-providers.ts";

describe("mode commands", () => {
  it.each([
    ["/mode", { type: "mode" }],
    ["/mode thinking", { type: "mode", set: "thinking" }],
    ["/mode   Contemplate ", { type: "mode", set: "contemplating" }],
    ["/mode@ParleyBot fast", { type: "mode", set: "instant" }],
    ["/mode loud", { type: "bad-mode", given: "loud" }],
    ["/think Why is the sky blue?", { type: "ask", mode: "thinking", text: "Why is the sky blue?" }],
    ["/think", { type: "ask", mode: "thinking", text: "" }],
    ["/contemplate Should I\nmove to Lisbon?", { type: "ask", mode: "contemplating", text: "Should I\nmove to Lisbon?" }],
    ["/instant Quick: 2+2?", { type: "ask", mode: "instant", text: "Quick: 2+2?" }],
    ["/THINK Case Kept", { type: "ask", mode: "thinking", text: "Case Kept" }],
    ["/reset", { type: "reset" }],
    ["/teleport", { type: "unknown", name: "teleport" }],
    ["think about /mode", null],
  ])("%j → %j", (text, command) => {
    expect(parseCommand(text)).toEqual(command);
  });

  it("explains the modes and how to switch, in text (the channel contract has no buttons)", () => {
    const text = modeText("thinking", 3);
    expect(text.split("\n")[0]).toBe("Your default mode is Thinking.");
    expect(text).toContain("• Thinking: reasons the question through");
    expect(text).toContain("Contemplating: 3 agents work on it");
    expect(text).toContain("/mode instant, /mode thinking or /mode contemplating");
    expect(modeText("instant", 3, true).split("\n")[0]).toBe("Done: your default mode is now Instant.");
    expect(HELP_TEXT).toContain("/mode");
    expect(ASK_EMPTY_TEXT("contemplating")).toContain("/contemplate how many");
  });

  it("names modes and the models each may call", () => {
    expect(parseModeName("DEEP")).toBe("contemplating");
    expect(parseModeName("slow")).toBeUndefined();
    const settings = {
      chains: { instant: [ref("openai:a")], thinking: [ref("openai:b")], contemplating: [[ref("ollama:c")], [ref("meta:d")]], synthesis: [ref("openai:e")] },
      contemplate: { agents: 2, agentTimeoutMs: 1, maxOutputTokens: 1, budgetTokens: 1 },
      maxSteps: 1,
    };
    expect(modelsOf("instant", settings).map((r) => r.model)).toEqual(["a"]);
    expect(modelsOf("contemplating", settings).map((r) => r.model)).toEqual(["c", "d", "e", "b"]);
  });
});
