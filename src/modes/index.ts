import type { ModelRef } from "../models/providers.ts";
import { runContemplating } from "./contemplating.ts";
import { runInstant } from "./instant.ts";
import { runThinking } from "./thinking.ts";
import { MODES, type ModeContext, type ModeName, type ModeResult, type ModeSettings } from "./types.ts";

export { MODES, type CallLog, type ModeContext, type ModeName, type ModeOutput, type ModeResult, type ModeSettings } from "./types.ts";

/** Answers with one of the three modes. */
export function runMode(mode: ModeName, ctx: ModeContext): Promise<ModeResult> {
  switch (mode) {
    case "instant":
      return runInstant(ctx);
    case "thinking":
      return runThinking(ctx);
    case "contemplating":
      return runContemplating(ctx);
  }
}

/** Every model a mode may call, for budgeting the prompt to the smallest context window among them. */
export function modelsOf(mode: ModeName, settings: ModeSettings): ModelRef[] {
  const { chains } = settings;
  switch (mode) {
    case "instant":
      return [...chains.instant];
    case "thinking":
      return [...chains.thinking];
    case "contemplating":
      return [...chains.contemplating.flat(), ...chains.synthesis, ...chains.thinking];
  }
}

const ALIASES: Record<string, ModeName> = {
  instant: "instant",
  fast: "instant",
  quick: "instant",
  thinking: "thinking",
  think: "thinking",
  contemplating: "contemplating",
  contemplate: "contemplating",
  deep: "contemplating",
};

export function parseModeName(text: string): ModeName | undefined {
  return ALIASES[text.trim().toLowerCase()];
}

export function modeLabel(mode: ModeName): string {
  return mode[0]!.toUpperCase() + mode.slice(1);
}

export function isModeName(value: string): value is ModeName {
  return (MODES as readonly string[]).includes(value);
}
