import { answerOnce } from "./single-call.ts";
import type { ModeContext, ModeResult } from "./types.ts";

/**
 * Thinking: one call to the thinking chain with reasoning effort high where the model supports it (see
 * models/reasoning.ts). The user sees "Thinking…" until the answer starts; the reasoning text is never sent as the
 * answer, it is recorded with the call (model_calls.reasoning) for admins.
 */

export const THINKING_STATUS = "Thinking…";

const THINKING_HINT =
  "Think the question through carefully before answering: check your reasoning and your facts. Then give the answer " +
  "with the key steps the user needs, not your whole scratch work.";

export function runThinking(ctx: ModeContext, o: { parentId?: number } = {}): Promise<ModeResult> {
  ctx.output.setStatus(THINKING_STATUS);
  return answerOnce(ctx, {
    mode: "thinking",
    chain: ctx.settings.chains.thinking,
    reasoning: true,
    system: `${ctx.system}\n\n${THINKING_HINT}`,
    parentId: o.parentId,
  });
}
