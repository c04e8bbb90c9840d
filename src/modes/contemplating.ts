import { errorMessage } from "../core/errors.ts";
import { estimateTokens } from "../models/tokens.ts";
import { ModelUnavailableError, NoCapableModelError, type CallRecord, type Source } from "../models/router.ts";
import {
  agentSystem,
  angleOf,
  FALLBACK_NOTE,
  synthesisSystem,
  SYNTHESIS_FAILED_NOTE,
  type DraftForSynthesis,
  type MissingAngle,
} from "./contemplate-prompts.ts";
import { failureResult, streamOn, withSources } from "./single-call.ts";
import { runThinking } from "./thinking.ts";
import type { ModeContext, ModeResult } from "./types.ts";

/**
 * Contemplating: N sub-agents work on the same message in parallel, each from its own angle and on its own chain,
 * then one synthesis call writes the reply from their drafts, streamed to the user. Wall time is about the slowest
 * agent plus the synthesis. A failed or timed-out agent is left out and the synthesis is told which angles are
 * missing; when all fail, Thinking answers and the reply says so. Each agent's output is capped (maxOutputTokens)
 * and all of it together by a budget: when that runs out, the agents still writing are cut off and their drafts so
 * far are used. Every call points to one parent model_calls row, so the admin page shows the tree.
 */

type AgentOutcome =
  | ({ type: "draft"; tokensIn?: number; tokensOut?: number; costUsd?: number; sources?: Source[] } & DraftForSynthesis)
  | ({ type: "failed" } & MissingAngle);

class BudgetExhausted extends Error {
  override readonly name = "BudgetExhausted";
  constructor() {
    super("the contemplation's token budget was used up");
  }
}

export async function runContemplating(ctx: ModeContext): Promise<ModeResult> {
  const { agents, agentTimeoutMs, maxOutputTokens, budgetTokens } = ctx.settings.contemplate;
  const { contemplating: chains, synthesis: synthesisChain } = ctx.settings.chains;
  const startedAt = new Date();
  const started = performance.now();
  const parentId = await ctx.calls.open({
    ...ctx.trace,
    purpose: "answer",
    mode: "contemplating",
    provider: "parley",
    model: `contemplation of ${agents} agents`,
    startedAt,
    latencyMs: 0,
    ok: false,
    error: "in progress",
  });
  const close = (patch: Partial<CallRecord>) =>
    ctx.calls.close(parentId, { latencyMs: Math.round(performance.now() - started), ...patch }).catch((error: unknown) => {
      ctx.log.warn({ err: error, parentId }, "could not record the end of a contemplation");
    });

  const budget = new AbortController();
  let spent = 0;
  const spend = (delta: string) => {
    spent += estimateTokens(delta) - 4;
    if (spent >= budgetTokens && !budget.signal.aborted) budget.abort(new BudgetExhausted());
  };

  const runAgent = async (index: number): Promise<AgentOutcome> => {
    const { angle } = angleOf(index);
    const timeout = AbortSignal.timeout(agentTimeoutMs);
    let partial = "";
    try {
      const answer = await ctx.router.stream({
        system: agentSystem(ctx.system, index, agents),
        messages: ctx.messages,
        signal: AbortSignal.any([ctx.signal, timeout, budget.signal]),
        chain: chains[index % chains.length]!,
        requires: ctx.requires,
        reasoning: true,
        maxOutputTokens,
        tools: ctx.tools,
        maxSteps: ctx.settings.maxSteps,
        trace: { ...ctx.trace, purpose: "agent", mode: "contemplating", parentId },
        onDelta: (delta) => {
          partial += delta;
          spend(delta);
        },
        onReset: () => (partial = ""),
      });
      return {
        type: "draft",
        label: angle.label,
        text: answer.text,
        cutOff: false,
        tokensIn: answer.tokensIn,
        tokensOut: answer.tokensOut,
        costUsd: answer.costUsd,
        sources: answer.sources,
      };
    } catch (error) {
      if (ctx.signal.aborted || error instanceof NoCapableModelError) throw error;
      if (budget.signal.aborted && partial.trim() !== "") return { type: "draft", label: angle.label, text: partial, cutOff: true };
      const reason = timeout.aborted
        ? `timed out after ${agentTimeoutMs / 1000} s`
        : budget.signal.aborted
          ? "the token budget ran out before it wrote anything"
          : error instanceof ModelUnavailableError
            ? "no model answered"
            : errorMessage(error);
      ctx.log.warn({ parentId, agent: index + 1, angle: angle.key, reason, detail: errorMessage(error) }, "contemplation agent left out");
      return { type: "failed", label: angle.label, reason };
    }
  };

  let outcomes: AgentOutcome[];
  try {
    let finished = 0;
    ctx.output.setStatus(`${agents} agent${agents === 1 ? "" : "s"} working…`);
    outcomes = await Promise.all(
      Array.from({ length: agents }, (_, index) =>
        runAgent(index).finally(() => {
          finished++;
          if (finished < agents) ctx.output.setStatus(`${finished} of ${agents} done…`);
        }),
      ),
    );
  } catch (error) {
    await close({ error: ctx.signal.aborted ? "cancelled" : errorMessage(error) });
    if (ctx.signal.aborted) throw ctx.signal.reason ?? error;
    return failureResult(error);
  }

  const drafts = outcomes.filter((o) => o.type === "draft");
  const missing = outcomes.filter((o) => o.type === "failed");
  const agentTotals = totals(drafts);

  if (drafts.length === 0) {
    ctx.log.warn({ parentId, reasons: missing.map((m) => m.reason) }, "every contemplation agent failed; answering in thinking mode");
    const fallback = await runThinking(ctx, { parentId }).catch(async (error: unknown) => {
      await close({ error: "cancelled" });
      throw error;
    });
    const why = `all ${agents} agents failed (${missing.map((m) => `${m.label}: ${m.reason}`).join("; ")})`;
    await close({ error: `${why}; ${fallback.type === "answer" ? "answered in thinking mode" : "thinking mode failed too"}` });
    return fallback.type === "answer" ? { ...fallback, text: `${FALLBACK_NOTE}\n\n${fallback.text}` } : fallback;
  }

  ctx.output.setStatus("Writing the answer…");
  try {
    const answer = await streamOn(ctx, {
      mode: "contemplating",
      chain: synthesisChain,
      reasoning: false,
      system: synthesisSystem(ctx.system, drafts, missing),
      parentId,
      purpose: "synthesis",
    });
    const all = totals([...drafts, answer]);
    await close({
      ok: true,
      error: missing.length > 0 ? `left out: ${missing.map((m) => `${m.label} (${m.reason})`).join(", ")}` : undefined,
      tokensIn: all.tokensIn,
      tokensOut: all.tokensOut,
      costUsd: all.costUsd,
    });
    const sources = [...drafts.flatMap((d) => d.sources ?? []), ...(answer.sources ?? [])];
    return { type: "answer", mode: "contemplating", text: withSources(ctx, answer.text, sources) };
  } catch (error) {
    if (ctx.signal.aborted || error instanceof NoCapableModelError) {
      await close({ error: ctx.signal.aborted ? "cancelled" : errorMessage(error) });
      if (ctx.signal.aborted) throw ctx.signal.reason ?? error;
      return failureResult(error);
    }
    // The drafts are there: the most direct one is better than no answer.
    const best = drafts[0]!;
    await close({ error: `synthesis failed: ${errorMessage(error)}`, ...agentTotals });
    return { type: "answer", mode: "contemplating", text: `${SYNTHESIS_FAILED_NOTE}\n\n${best.text.trim()}` };
  }
}

function totals(parts: ReadonlyArray<{ tokensIn?: number; tokensOut?: number; costUsd?: number }>) {
  const sum = (pick: (p: (typeof parts)[number]) => number | undefined) => {
    const values = parts.map(pick).filter((v): v is number => v !== undefined);
    return values.length > 0 ? values.reduce((a, b) => a + b, 0) : undefined;
  };
  return { tokensIn: sum((p) => p.tokensIn), tokensOut: sum((p) => p.tokensOut), costUsd: sum((p) => p.costUsd) };
}
