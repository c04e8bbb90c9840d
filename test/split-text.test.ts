import { describe, expect, it } from "vitest";
import { splitText, truncate } from "../src/core/split-text.ts";

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const FENCE_LINE = /^[ \t]*(`{3,}|~{3,})/;
const FAMILY = "👨‍👩‍👧‍👦";

const nonSpace = (text: string) => text.replace(/\s/g, "");
const fenceLines = (text: string) => text.split("\n").filter((line) => FENCE_LINE.test(line)).length;
const withoutFenceLines = (text: string) =>
  text
    .split("\n")
    .filter((line) => !FENCE_LINE.test(line))
    .join("\n");

/** For text without fences: the chunks appear in order and only whitespace lies between them. */
function expectOnlyWhitespaceDropped(text: string, chunks: string[]) {
  let at = 0;
  for (const chunk of chunks) {
    const found = text.indexOf(chunk, at);
    expect(found, `chunk ${JSON.stringify(chunk)} is a piece of the text`).toBeGreaterThanOrEqual(at);
    expect(text.slice(at, found).trim()).toBe("");
    at = found + chunk.length;
  }
  expect(text.slice(at).trim()).toBe("");
  expect(nonSpace(chunks.join(""))).toBe(nonSpace(text));
}

describe("splitText", () => {
  it.each([
    ["returns no chunk for empty text", "", 16, []],
    ["returns text within the limit as it is", "Hello, world!", 16, ["Hello, world!"]],
    ["returns text exactly at the limit as it is", "x".repeat(16), 16, ["x".repeat(16)]],
    ["prefers a blank line to a line break", "One.\n\nTwo two\nthree three three", 20, ["One.", "Two two", "three three three"]],
    ["prefers a line break to a sentence end", "First line\nSecond. Third sentence here", 24, ["First line", "Second.", "Third sentence here"]],
    ["prefers a sentence end to a space", "Alpha beta. Gamma delta epsilon", 20, ["Alpha beta.", "Gamma delta epsilon"]],
    ["sees a sentence end inside emphasis", "It **works.** And then more words", 20, ["It **works.**", "And then more words"]],
    ["breaks at a space, filling the chunk exactly", "alpha beta gamma delta", 16, ["alpha beta gamma", "delta"]],
    ["drops the whitespace at a break, on both sides", "aaaa bbbb cccc  \n\n   dddd eeee", 16, ["aaaa bbbb cccc", "dddd eeee"]],
    ["handles CRLF paragraphs", "Para one.\r\n\r\nPara two is here.", 16, ["Para one.", "Para two is", "here."]],
    ["hard-splits a word longer than the limit", "x".repeat(40), 16, ["x".repeat(16), "x".repeat(16), "x".repeat(8)]],
    [
      "breaks before a long URL, then inside it",
      "see https://example.com/a/very/long/path ok",
      16,
      ["see", "https://example.", "com/a/very/long/", "path ok"],
    ],
    ["never halves a surrogate pair", "a" + "😀".repeat(20), 16, ["a" + "😀".repeat(7), "😀".repeat(8), "😀".repeat(5)]],
    ["keeps ZWJ family emoji whole", FAMILY.repeat(3), 16, [FAMILY, FAMILY, FAMILY]],
    ["keeps flags whole", "🇩🇪".repeat(10), 16, ["🇩🇪".repeat(4), "🇩🇪".repeat(4), "🇩🇪".repeat(2)]],
    ["keeps combining marks on their letter", "e\u0301".repeat(10), 16, ["e\u0301".repeat(8), "e\u0301".repeat(2)]],
    ["never cuts between the stars of **", "a".repeat(15) + "**b**", 16, ["a".repeat(15), "**b**"]],
    ["breaks CJK at a full stop", "这是第一句。这是第二句。这是第三句。", 16, ["这是第一句。这是第二句。", "这是第三句。"]],
    ["breaks CJK without punctuation between characters", "汉".repeat(40), 16, ["汉".repeat(16), "汉".repeat(16), "汉".repeat(8)]],
    [
      "closes a cut code block and reopens it with its language",
      "Intro\n\n```ts\nconst a = 1;\nconst b = 2;\nconst c = 3;\n```\n\nOutro",
      32,
      ["Intro", "```ts\nconst a = 1;\n```", "```ts\nconst b = 2;\n```", "```ts\nconst c = 3;\n```\n\nOutro"],
    ],
    [
      "keeps code indentation after a break",
      "```ts\n  if (x) {\n    y();\n  }\n```",
      24,
      ["```ts\n  if (x) {\n```", "```ts\n    y();\n  }\n```"],
    ],
    [
      "replaces the closing fence when only it is left",
      "```\nabcdefgh\nijklmnop\n```\nqrstuvwx yz",
      20,
      ["```\nabcdefgh\n```", "```\nijklmnop\n```", "qrstuvwx yz"],
    ],
    [
      "never breaks right after a fence's opening line",
      "Text here\n```python\nprint(1)\n```",
      24,
      ["Text here", "```python\nprint(1)\n```"],
    ],
  ] as const)("%s", (_name, text, max, expected) => {
    const chunks = splitText(text, max);
    expect(chunks).toEqual(expected);
    for (const chunk of chunks) expect(chunk.length).toBeLessThanOrEqual(max);
    if (!text.includes("```")) expectOnlyWhitespaceDropped(text, chunks);
  });

  it.each([15, 0, -1, 20.5, Number.NaN])("refuses maxLength %s", (max) => {
    expect(() => splitText("some text", max)).toThrow(RangeError);
  });

  it("hard-splits a grapheme cluster longer than the limit between code points, not inside a surrogate pair", () => {
    const cluster = Array.from({ length: 4 }, () => FAMILY).join("\u200d"); // one cluster, 47 code units
    const chunks = splitText(cluster, 16);
    expect(chunks.join("")).toBe(cluster);
    for (const chunk of chunks) {
      expect(chunk.length).toBeLessThanOrEqual(16);
      expect(chunk).not.toMatch(LONE_SURROGATE);
    }
  });

  it("keeps a fence line of absurd length as plain text rather than failing", () => {
    const text = "`".repeat(12) + "\n" + "code line\n".repeat(10) + "`".repeat(12);
    const chunks = splitText(text, 16);
    for (const chunk of chunks) expect(chunk.length).toBeLessThanOrEqual(16);
    expect(nonSpace(chunks.join(""))).toBe(nonSpace(text));
  });

  describe("a 10,000-character answer", () => {
    const url = "https://example.com/" + "very-long-path-segment/".repeat(20) + "?q=" + "x".repeat(100);
    const prose = (i: number) =>
      `Paragraph ${i}: the assistant explains something at length 😀, with **bold words** and a family ${FAMILY} ` +
      `emoji. It cites ${url} as a source, mentions 🇯🇵 and 東京 (東京は日本の首都です。とても大きな都市です。), ` +
      "and ends the thought here. Another sentence follows to make the paragraph longer and more realistic.";
    const code = "```ts\n" + Array.from({ length: 150 }, (_, i) => `  const value${i} = compute(${i}); // ✓`).join("\n") + "\n```";
    const answer = [
      ...Array.from({ length: 6 }, (_, i) => prose(i)),
      code,
      ...Array.from({ length: 6 }, (_, i) => prose(i + 6)),
      "汉字".repeat(600),
    ].join("\n\n");

    it("is the size the scenario asks for", () => {
      expect(answer.length).toBeGreaterThan(10_000);
      expect(code.length).toBeGreaterThan(4096);
    });

    it.each([4096, 2000, 100])("splits into well-formed chunks of at most %i", (max) => {
      const chunks = splitText(answer, max);
      expect(chunks.length).toBeGreaterThanOrEqual(Math.ceil(answer.length / max));
      for (const chunk of chunks) {
        expect(chunk.length).toBeLessThanOrEqual(max);
        expect(chunk).not.toMatch(LONE_SURROGATE);
        expect(chunk).toBe(chunk.trim());
        expect(fenceLines(chunk) % 2, `fences balanced in ${JSON.stringify(chunk.slice(0, 60))}…`).toBe(0);
      }
      // The code block spans a boundary, so some chunk reopens it with its language.
      expect(chunks.slice(1).some((chunk) => chunk.startsWith("```ts\n  const value"))).toBe(true);
      // Nothing but whitespace and the added fence lines differs, and emoji survive whole.
      const joined = chunks.join("\n");
      expect(nonSpace(withoutFenceLines(joined))).toBe(nonSpace(withoutFenceLines(answer)));
      expect(joined.split(FAMILY).length).toBe(answer.split(FAMILY).length);
      expect(joined.split("🇯🇵").length).toBe(answer.split("🇯🇵").length);
    });

    it("breaks prose at paragraphs when the limit allows", () => {
      const chunks = splitText(answer, 4096);
      const firstBreak = answer.indexOf(chunks[1]!.slice(0, 40));
      expect(answer.slice(firstBreak - 2, firstBreak)).toBe("\n\n");
    });

    it("ends a chunk inside a word only for words longer than the limit", () => {
      const prosePart = answer.slice(0, answer.indexOf("```"));
      const chunks = splitText(prosePart, 2000);
      expectOnlyWhitespaceDropped(prosePart, chunks);
      let at = 0;
      for (const chunk of chunks.slice(0, -1)) {
        at = prosePart.indexOf(chunk, at) + chunk.length;
        expect(prosePart[at]).toMatch(/\s/);
      }
    });
  });
});

describe("truncate", () => {
  it("keeps a short text, cuts a long one to the limit with an ellipsis, and never splits a surrogate pair", () => {
    expect(truncate("short", 10)).toBe("short");
    expect(truncate("abcdefghij", 10)).toBe("abcdefghij");
    expect(truncate("abcdefghijk", 10)).toBe("abcdefghi…");
    const cut = truncate(`${"a".repeat(8)}😀😀`, 10);
    expect(cut).toBe(`${"a".repeat(8)}…`);
    expect(cut.length).toBeLessThanOrEqual(10);
  });
});
