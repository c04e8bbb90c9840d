import { describe, expect, it } from "vitest";
import { evaluate } from "../src/tools/expression.ts";
import { createToolSet, TOOL_NAMES } from "../src/tools/registry.ts";
import { describeTime } from "../src/tools/time.ts";

describe("calculator expressions", () => {
  it.each([
    ["1 + 2 * 3", 7],
    ["(1 + 2) * 3", 9],
    ["2 ^ 3 ^ 2", 512],
    ["2 ** 10", 1024],
    ["-2 ^ 2", -4],
    ["(-2) ^ 2", 4],
    ["10 / 4", 2.5],
    ["10 % 4", 2],
    ["0.1 + 0.2", 0.3],
    [".5 * 4", 2],
    ["1e3 + 1_000", 2000],
    ["5!", 120],
    ["3! ^ 2", 36],
    ["sqrt(16) + abs(-3)", 7],
    ["log(1000)", 3],
    ["log(8, 2)", 3],
    ["ln(e)", 1],
    ["round(pi, 2)", 3.14],
    ["max(1, 7, 3) - min(4, 2)", 5],
    ["sin(pi / 2)", 1],
    ["12 × 3 ÷ 4", 9],
    ["--3", 3],
    ["hypot(3, 4)", 5],
  ])("%s = %d", (expression, value) => {
    expect(evaluate(expression)).toEqual({ ok: true, value });
  });

  it.each([
    ["", "the expression is empty"],
    ["1 +", "the expression ends too early"],
    ["(1 + 2", 'expected ")" at the end'],
    ["1 / 0", "division by zero"],
    ["2 pi", 'unexpected "pi" at position 3'],
    ["foo(1)", 'unknown name "foo"'],
    ["sqrt", "sqrt needs parentheses: sqrt(…)"],
    ["atan2(1)", "atan2() takes 2 arguments"],
    ["171!", "factorial is only computed up to 170!"],
    ["2.5!", "factorial needs a whole number ≥ 0"],
    ["10 ^ 400", "the result is not a finite number"],
    ["constructor.constructor('return process')()", 'unexpected "." at position 12'],
    ["process.exit(1)", 'unexpected "." at position 8'],
    ["1; 2", 'unexpected ";" at position 2'],
  ])("refuses %j: %s", (expression, error) => {
    expect(evaluate(expression)).toEqual({ ok: false, error });
  });

  it("bounds nesting and length", () => {
    expect(evaluate(`${"(".repeat(200)}1${")".repeat(200)}`)).toEqual({ ok: false, error: "the expression is nested too deeply" });
    expect(evaluate(`${"-".repeat(200)}1`)).toEqual({ ok: false, error: "the expression is nested too deeply" });
    expect(evaluate("1+".repeat(600) + "1")).toEqual({ ok: false, error: "the expression is longer than 1000 characters" });
  });
});

describe("tool registry and built-in tools", () => {
  const deps = { now: () => new Date("2026-03-29T01:30:00Z"), timeZone: "Europe/Berlin" };

  it("lists the tools and builds only the enabled ones", () => {
    expect(TOOL_NAMES).toEqual(["time", "calculator", "url_reader"]);
    expect(Object.keys(createToolSet(["calculator"], deps))).toEqual(["calculator"]);
    expect(Object.keys(createToolSet(["time", "calculator"], deps))).toEqual(["time", "calculator"]);
  });

  it("the calculator tool answers and throws on a bad expression", async () => {
    const { calculator } = createToolSet(["calculator"], deps);
    const options = { toolCallId: "1", messages: [] };
    expect(await calculator!.execute!({ expression: "6 * 7" }, options)).toEqual({ expression: "6 * 7", result: 42 });
    await expect(calculator!.execute!({ expression: "6 *" }, options)).rejects.toThrow('cannot evaluate "6 *": the expression ends too early');
  });

  it("the time tool answers in the user's time zone, or one asked for", async () => {
    const { time } = createToolSet(["time"], deps);
    const options = { toolCallId: "1", messages: [] };
    expect(await time!.execute!({}, options)).toEqual({
      timeZone: "Europe/Berlin",
      local: "2026-03-29 03:30:00 GMT+2",
      weekday: "Sunday",
      iso: "2026-03-29T01:30:00.000Z",
    });
    expect(describeTime(new Date("2026-03-29T01:30:00Z"), "America/New_York").local).toBe("2026-03-28 21:30:00 GMT-4");
    expect(() => describeTime(new Date(), "Mars/Olympus")).toThrow('unknown time zone "Mars/Olympus"');
  });
});
