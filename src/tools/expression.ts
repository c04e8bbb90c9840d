/**
 * Arithmetic expressions, parsed by recursive descent and evaluated on numbers: never eval or Function. Pure.
 *
 *     expression := term (("+" | "-") term)*
 *     term       := unary (("*" | "/" | "%") unary)*
 *     unary      := ("+" | "-") unary | power
 *     power      := postfix (("^" | "**") unary)?        right-associative; -2^2 = -4
 *     postfix    := primary "!"*                          factorial of a whole number ≤ 170
 *     primary    := number | name | name "(" arguments ")" | "(" expression ")"
 *
 * Numbers: 12, 3.5, .5, 1e-3, 1_000. Names: pi, π, e, tau; functions below (trigonometry in radians).
 * `×`, `·` and `÷` are read as `*` and `/`. Inputs are capped in length and nesting depth.
 */

export type Evaluation = { ok: true; value: number } | { ok: false; error: string };

const MAX_LENGTH = 1_000;
const MAX_DEPTH = 64;

const CONSTANTS: Record<string, number> = { pi: Math.PI, "π": Math.PI, e: Math.E, tau: 2 * Math.PI };

type Fn = { arity: [number, number]; apply: (args: number[]) => number };
const fn1 = (f: (x: number) => number): Fn => ({ arity: [1, 1], apply: ([x]) => f(x!) });
const FUNCTIONS: Record<string, Fn> = {
  sqrt: fn1(Math.sqrt),
  cbrt: fn1(Math.cbrt),
  abs: fn1(Math.abs),
  sign: fn1(Math.sign),
  exp: fn1(Math.exp),
  ln: fn1(Math.log),
  log2: fn1(Math.log2),
  log10: fn1(Math.log10),
  log: { arity: [1, 2], apply: ([x, base]) => (base === undefined ? Math.log10(x!) : Math.log(x!) / Math.log(base)) },
  sin: fn1(Math.sin),
  cos: fn1(Math.cos),
  tan: fn1(Math.tan),
  asin: fn1(Math.asin),
  acos: fn1(Math.acos),
  atan: fn1(Math.atan),
  atan2: { arity: [2, 2], apply: ([y, x]) => Math.atan2(y!, x!) },
  sinh: fn1(Math.sinh),
  cosh: fn1(Math.cosh),
  tanh: fn1(Math.tanh),
  floor: fn1(Math.floor),
  ceil: fn1(Math.ceil),
  trunc: fn1(Math.trunc),
  round: {
    arity: [1, 2],
    apply: ([x, digits]) => {
      const f = 10 ** Math.trunc(digits ?? 0);
      return Math.round(x! * f) / f;
    },
  },
  min: { arity: [1, 100], apply: (args) => Math.min(...args) },
  max: { arity: [1, 100], apply: (args) => Math.max(...args) },
  pow: { arity: [2, 2], apply: ([x, y]) => x! ** y! },
  hypot: { arity: [1, 100], apply: (args) => Math.hypot(...args) },
};

type Token = { kind: "number"; value: number; at: number } | { kind: "name"; value: string; at: number } | { kind: "op"; value: string; at: number };

class ExpressionError extends Error {}

function tokenize(input: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < input.length) {
    const rest = input.slice(i);
    const space = /^\s+/.exec(rest);
    if (space) {
      i += space[0].length;
      continue;
    }
    const number = /^(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?/i.exec(rest);
    if (number) {
      const text = number[0];
      if (/_$|__|_\./.test(text)) throw new ExpressionError(`malformed number "${text}" at position ${i + 1}`);
      tokens.push({ kind: "number", value: Number(text.replaceAll("_", "")), at: i });
      i += text.length;
      continue;
    }
    const name = /^(?:[a-z][a-z0-9]*|π)/i.exec(rest);
    if (name) {
      tokens.push({ kind: "name", value: name[0].toLowerCase(), at: i });
      i += name[0].length;
      continue;
    }
    if (rest.startsWith("**")) {
      tokens.push({ kind: "op", value: "^", at: i });
      i += 2;
      continue;
    }
    const c = rest[0]!;
    const op = c === "×" || c === "·" ? "*" : c === "÷" ? "/" : c === "−" ? "-" : c;
    if (!"+-*/%^!(),".includes(op)) throw new ExpressionError(`unexpected "${c}" at position ${i + 1}`);
    tokens.push({ kind: "op", value: op, at: i });
    i += 1;
  }
  return tokens;
}

export function evaluate(input: string): Evaluation {
  if (input.length > MAX_LENGTH) return { ok: false, error: `the expression is longer than ${MAX_LENGTH} characters` };
  try {
    const tokens = tokenize(input);
    if (tokens.length === 0) return { ok: false, error: "the expression is empty" };
    let pos = 0;
    let depth = 0;
    const peek = () => tokens[pos];
    const isOp = (value: string) => {
      const t = tokens[pos];
      return t?.kind === "op" && t.value === value;
    };
    const expect = (value: string) => {
      if (!isOp(value)) {
        const t = tokens[pos];
        throw new ExpressionError(t ? `expected "${value}" at position ${t.at + 1}` : `expected "${value}" at the end`);
      }
      pos++;
    };
    const nested = <T>(run: () => T): T => {
      if (++depth > MAX_DEPTH) throw new ExpressionError("the expression is nested too deeply");
      try {
        return run();
      } finally {
        depth--;
      }
    };

    const expression = (): number =>
      nested(() => {
        let value = term();
        while (isOp("+") || isOp("-")) {
          const op = tokens[pos++]!.value;
          const right = term();
          value = op === "+" ? value + right : value - right;
        }
        return value;
      });

    const term = (): number => {
      let value = unary();
      while (isOp("*") || isOp("/") || isOp("%")) {
        const op = tokens[pos++]!.value;
        const right = unary();
        if ((op === "/" || op === "%") && right === 0) throw new ExpressionError("division by zero");
        value = op === "*" ? value * right : op === "/" ? value / right : value % right;
      }
      return value;
    };

    const unary = (): number =>
      nested(() => {
        if (isOp("-")) {
          pos++;
          return -unary();
        }
        if (isOp("+")) {
          pos++;
          return unary();
        }
        return power();
      });

    const power = (): number => {
      const base = postfix();
      if (!isOp("^")) return base;
      pos++;
      return base ** unary();
    };

    const postfix = (): number => {
      let value = primary();
      while (isOp("!")) {
        pos++;
        value = factorial(value);
      }
      return value;
    };

    const primary = (): number => {
      const t = peek();
      if (!t) throw new ExpressionError("the expression ends too early");
      if (t.kind === "number") {
        pos++;
        return t.value;
      }
      if (t.kind === "op" && t.value === "(") {
        pos++;
        const value = expression();
        expect(")");
        return value;
      }
      if (t.kind === "name") {
        pos++;
        const f = FUNCTIONS[t.value];
        if (f && isOp("(")) {
          pos++;
          const args: number[] = [];
          if (!isOp(")")) {
            args.push(expression());
            while (isOp(",")) {
              pos++;
              args.push(expression());
            }
          }
          expect(")");
          const [least, most] = f.arity;
          if (args.length < least || args.length > most) {
            throw new ExpressionError(`${t.value}() takes ${least === most ? least : `${least} to ${most}`} argument${most === 1 ? "" : "s"}`);
          }
          return f.apply(args);
        }
        const constant = CONSTANTS[t.value];
        if (constant !== undefined) return constant;
        throw new ExpressionError(f ? `${t.value} needs parentheses: ${t.value}(…)` : `unknown name "${t.value}"`);
      }
      throw new ExpressionError(`unexpected "${t.value}" at position ${t.at + 1}`);
    };

    const value = expression();
    const rest = peek();
    if (rest) throw new ExpressionError(`unexpected "${rest.value}" at position ${rest.at + 1}`);
    if (!Number.isFinite(value)) return { ok: false, error: "the result is not a finite number" };
    // 0.1 + 0.2 is 0.3 to a person: keep 15 significant digits.
    return { ok: true, value: Number(value.toPrecision(15)) };
  } catch (error) {
    if (error instanceof ExpressionError) return { ok: false, error: error.message };
    throw error;
  }
}

function factorial(n: number): number {
  if (!Number.isInteger(n) || n < 0) throw new ExpressionError("factorial needs a whole number ≥ 0");
  if (n > 170) throw new ExpressionError("factorial is only computed up to 170!");
  let result = 1;
  for (let k = 2; k <= n; k++) result *= k;
  return result;
}
