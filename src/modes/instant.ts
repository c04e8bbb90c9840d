import { answerOnce } from "./single-call.ts";
import type { ModeContext, ModeResult } from "./types.ts";

/** Instant: one call to the instant chain, no reasoning; the fastest answer. */
export function runInstant(ctx: ModeContext): Promise<ModeResult> {
  return answerOnce(ctx, { mode: "instant", chain: ctx.settings.chains.instant, reasoning: false });
}
