import type { ModelMessage, ToolSet } from "ai";
import type { ModelRef } from "../models/providers.ts";
import type { CallRecord, ModelRequirements, ModelRouter } from "../models/router.ts";
import type { Logger } from "../observability/logger.ts";

/**
 * The three ways of answering, behind one small contract: a mode gets the prompt, the router and a place to show
 * progress, and returns a tagged result. It never stores the reply or talks to a channel: the conversation service
 * does that with the result. Cancellation (the signal) is thrown, everything else is a result.
 */

export const MODES = ["instant", "thinking", "contemplating"] as const;
export type ModeName = (typeof MODES)[number];

export interface ModeSettings {
  chains: {
    instant: readonly ModelRef[];
    thinking: readonly ModelRef[];
    /** One chain per sub-agent (cycled), or one for all. */
    contemplating: ReadonlyArray<readonly ModelRef[]>;
    synthesis: readonly ModelRef[];
  };
  contemplate: {
    agents: number;
    agentTimeoutMs: number;
    /** Per agent, through maxOutputTokens. */
    maxOutputTokens: number;
    /** All agents' output together; what comes after it is cut off. */
    budgetTokens: number;
  };
  /** Tool steps per call. */
  maxSteps: number;
}

/** Where a mode shows its progress and streams the answer: the reply stream. */
export interface ModeOutput {
  push(delta: string): void;
  /** The model failed mid-stream and another starts over. */
  reset(): void;
  /** Shown while there is no answer text yet, e.g. "Thinking…" or "2 of 3 done…". */
  setStatus(text: string): void;
}

/** The parent model_calls row of a contemplation, opened before its sub-agents so they can point to it. */
export interface CallLog {
  open(call: CallRecord): Promise<number>;
  close(id: number, patch: Partial<CallRecord>): Promise<void>;
}

export interface ModeContext {
  router: ModelRouter;
  settings: ModeSettings;
  system: string;
  /** The conversation as the model sees it, ending with the user's message being answered. */
  messages: ModelMessage[];
  requires: ModelRequirements;
  /** Offered to models that take tools. */
  tools?: ToolSet;
  output: ModeOutput;
  signal: AbortSignal;
  trace: { inboxId?: number; userKey?: string };
  calls: CallLog;
  log: Logger;
}

export type ModeResult =
  /** `mode` is the mode that actually answered (thinking when contemplating fell back). */
  | { type: "answer"; mode: ModeName; text: string }
  /** No model answered; worth trying again later. */
  | { type: "unavailable"; reason: string }
  /** The request cannot be answered as configured (e.g. an image, and no model takes images); `reply` says so. */
  | { type: "refused"; reply: string };
