import { tool } from "ai";
import { z } from "zod";
import type { ToolDefinition } from "./types.ts";
import { dateFormat } from "../core/date-format.ts";

/** The current date and time, in the user's time zone (or another one the model asks for). */
export const timeTool: ToolDefinition = {
  name: "time",
  create: ({ now, timeZone }) =>
    tool({
      description:
        "Get the current date and time. Use it for anything about today, now, the weekday, or how long until a date. " +
        `Without a time zone it answers in the user's (${timeZone}).`,
      inputSchema: z.object({
        timeZone: z.string().max(64).optional().describe("IANA time zone such as Europe/Paris or America/New_York"),
      }),
      execute: async (input) => describeTime(now(), input.timeZone ?? timeZone),
    }),
};

export function describeTime(at: Date, timeZone: string): { timeZone: string; local: string; weekday: string; iso: string } {
  let format: Intl.DateTimeFormat;
  try {
    format = dateFormat("en-CA", {
      timeZone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hourCycle: "h23",
      timeZoneName: "shortOffset",
    });
  } catch {
    throw new Error(`unknown time zone "${timeZone}"; use an IANA name such as Europe/Paris`);
  }
  const parts = Object.fromEntries(format.formatToParts(at).map((p) => [p.type, p.value]));
  const weekday = dateFormat("en-US", { timeZone, weekday: "long" }).format(at);
  return {
    timeZone,
    local: `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} ${parts.timeZoneName ?? ""}`.trim(),
    weekday,
    iso: at.toISOString(),
  };
}
