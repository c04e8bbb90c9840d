import { describe, expect, it } from "vitest";
import { markdownToWhatsApp } from "../src/core/whatsapp-markers.ts";

describe("markdownToWhatsApp", () => {
  it.each([
    ["bold", "this is **important**", "this is *important*"],
    ["bold with underscores", "__very__ much", "*very* much"],
    ["italic with a star", "an *aside* here", "an _aside_ here"],
    ["italic with an underscore", "an _aside_ here", "an _aside_ here"],
    ["bold italic", "***both***", "*_both_*"],
    ["strikethrough", "~~gone~~ now", "~gone~ now"],
    ["inline code keeps its markers untouched", "run `npm *install*` now", "run `npm *install*` now"],
    ["fenced block → monospace, language dropped", "```ts\nconst a = **1**;\n```", "```const a = **1**;```"],
    ["an unclosed fence keeps its text", "```\nhalf a block", "half a block"],
    ["headings become bold lines", "# Title\n## Sub *part*", "*Title*\n*Sub _part_*"],
    ["a heading that is already bold is not doubled", "## **Done**", "*Done*"],
    ["bullets become dashes", "* one\n+ two\n  - nested", "- one\n- two\n  - nested"],
    ["numbered lists stay", "1. first\n2. second", "1. first\n2. second"],
    ["quotes stay quotes", "> wise words", "> wise words"],
    ["links show their URL", "see [the docs](https://example.com/a_b) now", "see the docs (https://example.com/a_b) now"],
    ["a link whose label is its URL is written once", "[https://x.org](https://x.org)", "https://x.org"],
    ["a horizontal rule", "---", "———"],
    ["snake_case is not italic", "call my_func_name please", "call my_func_name please"],
    ["unpaired markers stay", "2 * 3 = 6 and **open", "2 * 3 = 6 and **open"],
    ["backslash escapes", "\\*not italic\\*", "*not italic*"],
    ["emoji and accents pass through", "**café** 😀", "*café* 😀"],
  ])("%s", (_name, markdown, expected) => {
    expect(markdownToWhatsApp(markdown)).toBe(expected);
  });

  it("is never longer than the Markdown (except a >quote written without its space)", () => {
    const samples = [
      "# H", "**b** *i* ~~s~~ `c`", "```py\nx\n```", "[a](https://b.c)", "- x\n* y", "***", "__x__", "___x___", "```\n```", "> q",
      "## **x**", "*a **b** c*",
    ];
    for (const sample of samples) expect(markdownToWhatsApp(sample).length, sample).toBeLessThanOrEqual(sample.length);
  });
});
