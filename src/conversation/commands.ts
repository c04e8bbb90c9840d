import { MODES, modeLabel, parseModeName, type ModeName } from "../modes/index.ts";
import type { Button } from "../core/types.ts";

/**
 * Chat commands, parsed from the sender's own text only (never from quoted or forwarded content, which adapters do
 * not put in `text`). The @botname suffix is removed by the adapters.
 */
export type Command =
  | { type: "help" }
  | { type: "reset" }
  | { type: "forget"; confirmed: boolean }
  /** /mode: show the default mode; /mode <name>: set it. */
  | { type: "mode"; set?: ModeName }
  | { type: "bad-mode"; given: string }
  /** /instant, /think, /contemplate …: answer this one message in that mode. `text` may be empty. */
  | { type: "ask"; mode: ModeName; text: string }
  /** Not one of these; `args` is the rest of the line (src/access/chat-commands.ts knows a few more). */
  | { type: "unknown"; name: string; args?: string };

const ASK: Record<string, ModeName> = {
  instant: "instant",
  think: "thinking",
  thinking: "thinking",
  contemplate: "contemplating",
  contemplating: "contemplating",
};

export function parseCommand(text: string): Command | null {
  const match = /^\/([a-z_]+)(?:@\S+)?(?:\s+(.*))?$/is.exec(text.trim());
  if (!match) return null;
  const name = match[1]!.toLowerCase();
  const rest = (match[2] ?? "").trim();
  const args = rest.toLowerCase();
  switch (name) {
    case "help":
    case "start":
      return { type: "help" };
    case "reset":
    case "new":
      return { type: "reset" };
    case "forget":
      return { type: "forget", confirmed: args === "confirm" };
    case "mode": {
      if (args === "") return { type: "mode" };
      const mode = parseModeName(args);
      return mode ? { type: "mode", set: mode } : { type: "bad-mode", given: rest.slice(0, 40) };
    }
    default: {
      const mode = ASK[name];
      return mode ? { type: "ask", mode, text: rest } : { type: "unknown", name, ...(rest === "" ? {} : { args: rest }) };
    }
  }
}

const MODE_LINES: Record<ModeName, (agents: number) => string> = {
  instant: () => "Instant: the fastest answer.",
  thinking: () => "Thinking: reasons the question through before answering; slower, better for hard questions.",
  contemplating: (agents) =>
    `Contemplating: ${agents} agents work on it from different angles, then one answer is written from their drafts; the slowest, for the hardest questions.`,
};

/** What /mode answers: the current default, the modes, and how to switch (text: the channel contract has no buttons). */
export function modeText(current: ModeName, agents: number, changed = false): string {
  return [
    changed ? `Done: your default mode is now ${modeLabel(current)}.` : `Your default mode is ${modeLabel(current)}.`,
    "",
    ...MODES.map((mode) => `${mode === current ? "• " : "  "}${MODE_LINES[mode](agents)}`),
    "",
    "Change it with /mode instant, /mode thinking or /mode contemplating.",
    "For one message only, start it with /think or /contemplate.",
  ].join("\n");
}

/** The /mode choices as buttons, where the platform shows them (the text names the commands as well). */
export function modeButtons(current: ModeName): Button[] {
  return MODES.map((mode) => ({ label: `${mode === current ? "✓ " : ""}${modeLabel(mode)}`, command: `/mode ${mode}` }));
}

export const BAD_MODE_TEXT = (given: string) =>
  `I don't know the mode "${given}". The modes are instant, thinking and contemplating, e.g. /mode thinking`;

export const ASK_EMPTY_TEXT = (mode: ModeName) =>
  `Write your question after the command, e.g. /${mode === "thinking" ? "think" : mode === "contemplating" ? "contemplate" : "instant"} how many weekdays are there in 2026?`;

export const HELP_TEXT = [
  "Hi, I'm Parley, an AI assistant. Write to me as you would to a person.",
  "",
  "/mode: how I answer (instant, thinking or contemplating) and how to change it",
  "/think …: answer this one message thinking it through",
  "/contemplate …: answer this one message with several agents working on it",
  "/reset: start a new conversation (I stop using the earlier messages)",
  "/usage: what you have used today and this month, and your limits",
  "/export: everything stored about you, as a file",
  "/forget: delete everything stored about you",
  "/help: this message",
].join("\n");

export const FORGET_ASK =
  "This deletes every message and conversation stored about you, for good. To go ahead, send: /forget confirm";
