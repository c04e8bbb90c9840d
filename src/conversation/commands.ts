/**
 * Chat commands, parsed from the sender's own text only (never from quoted or forwarded content, which adapters do
 * not put in `text`). The @botname suffix is removed by the adapters.
 */
export type Command =
  | { type: "help" }
  | { type: "reset" }
  | { type: "forget"; confirmed: boolean }
  | { type: "unknown"; name: string };

export function parseCommand(text: string): Command | null {
  const match = /^\/([a-z_]+)(?:@\S+)?(?:\s+(.*))?$/is.exec(text.trim());
  if (!match) return null;
  const name = match[1]!.toLowerCase();
  const args = (match[2] ?? "").trim().toLowerCase();
  switch (name) {
    case "help":
    case "start":
      return { type: "help" };
    case "reset":
    case "new":
      return { type: "reset" };
    case "forget":
      return { type: "forget", confirmed: args === "confirm" };
    default:
      return { type: "unknown", name };
  }
}

export const HELP_TEXT = [
  "Hi, I'm Parley, an AI assistant. Write to me as you would to a person.",
  "",
  "/reset: start a new conversation (I stop using the earlier messages)",
  "/forget: delete everything stored about you",
  "/help: this message",
].join("\n");

export const FORGET_ASK =
  "This deletes every message and conversation stored about you, for good. To go ahead, send: /forget confirm";
