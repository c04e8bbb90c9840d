import { tool } from "ai";
import { z } from "zod";
import { evaluate } from "./expression.ts";
import type { ToolDefinition } from "./types.ts";

/** Exact arithmetic for the model, which is bad at it: a real expression parser (see expression.ts). */
export const calculatorTool: ToolDefinition = {
  name: "calculator",
  create: () =>
    tool({
      description:
        "Evaluate an arithmetic expression exactly. Supports + - * / % ^ ! and parentheses, sqrt, cbrt, abs, exp, ln, " +
        "log (base 10, or log(x, base)), log2, sin, cos, tan (radians), asin, acos, atan, atan2, floor, ceil, round(x, digits), " +
        "min, max, pow, hypot, and the constants pi, e, tau. Use it for any calculation instead of doing it in your head.",
      inputSchema: z.object({ expression: z.string().min(1).max(1000).describe("for example: (12.5 * 4)^2 / sqrt(2)") }),
      execute: async ({ expression }) => {
        const result = evaluate(expression);
        if (!result.ok) throw new Error(`cannot evaluate "${expression}": ${result.error}`);
        return { expression, result: result.value };
      },
    }),
};
