/**
 * What Contemplating's sub-agents and its synthesis are told. Pure, so the wording is tested as text.
 */

export interface Angle {
  key: "direct" | "critic" | "needs";
  /** How the synthesis and the admin page name it. */
  label: string;
  instruction: string;
}

export const ANGLES: readonly Angle[] = [
  {
    key: "direct",
    label: "direct solution",
    instruction: "Solve it directly: work out the best, complete and correct answer to the user's latest message.",
  },
  {
    key: "critic",
    label: "what could be wrong",
    instruction:
      "Look for what could be wrong: question the assumptions, look for mistakes, edge cases, risks and the strongest " +
      "counter-arguments, then say what the correct answer is.",
  },
  {
    key: "needs",
    label: "what the user really needs",
    instruction:
      "Consider what the user really needs: the goal behind the question, context they may have left out, and the most " +
      "useful form for the answer (steps, an example, a caveat, a decision).",
  },
];

/** Agent `index` (0-based) takes the angles in turn; a second round of the same angle is asked for another route. */
export function angleOf(index: number): { angle: Angle; round: number } {
  return { angle: ANGLES[index % ANGLES.length]!, round: Math.floor(index / ANGLES.length) };
}

export function agentSystem(base: string, index: number, agents: number): string {
  const { angle, round } = angleOf(index);
  return [
    base,
    "",
    `You are adviser ${index + 1} of ${agents}, working in parallel with the others on the user's latest message.`,
    `Your angle: ${angle.instruction}${round > 0 ? " Take a different route from the most obvious one." : ""}`,
    "Write a draft for the editor who will combine the advisers' drafts into one reply; the user will not see your " +
      "draft. Be substantive and concise.",
  ].join("\n");
}

export interface DraftForSynthesis {
  label: string;
  text: string;
  /** Stopped at the token budget. */
  cutOff: boolean;
}

export interface MissingAngle {
  label: string;
  reason: string;
}

export function synthesisSystem(base: string, drafts: readonly DraftForSynthesis[], missing: readonly MissingAngle[]): string {
  const lines = [
    base,
    "",
    "Several advisers worked on the user's latest message in parallel, each from one angle; their drafts follow. Write " +
      "the one reply the user will read: keep what is correct and useful, settle disagreements, drop what is wrong or " +
      "beside the point. Answer in the user's language. Do not mention the advisers, the drafts or the angles.",
  ];
  if (missing.length > 0) {
    lines.push(
      "",
      `Missing angles: the drafts for ${missing.map((m) => `"${m.label}" (${m.reason})`).join(", ")} did not arrive. ` +
        "Cover what they would have added as well as you can.",
    );
  }
  for (const draft of drafts) {
    lines.push("", `<draft angle="${draft.label}"${draft.cutOff ? ' note="cut off at the token budget"' : ""}>`, draft.text.trim(), "</draft>");
  }
  return lines.join("\n");
}

export const FALLBACK_NOTE = "(Contemplating was unavailable; answered in Thinking mode.)";
export const SYNTHESIS_FAILED_NOTE = "(The final write-up failed; this is the most direct of the drafts.)";
