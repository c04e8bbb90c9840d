import { describe, expect, it } from "vitest";
import { renderMarkdown, type MarkdownStyle } from "../src/core/markdown.ts";

/** A style that shows what the walk recognised, with every argument it was given. */
const TAGS: MarkdownStyle = {
  text: (text) => text.toUpperCase(),
  bold: (inner) => `B(${inner})`,
  italic: (inner) => `I(${inner})`,
  strike: (inner) => `S(${inner})`,
  code: (text) => `C(${text})`,
  codeBlock: (text, closed, language) => `PRE(${language}|${closed}|${text})`,
  heading: (inner) => `H(${inner})`,
  bullet: (indent, inner) => `LI(${indent.length}|${inner})`,
  quote: (lines) => `Q[${lines.map((line) => `${line.depth}:${line.text}`).join(",")}]`,
  link: (label, url, written) => `A(${label}|${url}|${written})`,
  rule: () => "HR",
};

describe("renderMarkdown", () => {
  it.each([
    ["literal text goes through text()", "a<b", "A<B"],
    ["emphasis nests, each from its own slice", "**a *b*** ~~c~~ __d__ _e_", "B(A I(B)) S(C) B(D) I(E)"],
    ["inline code is given as written", "`**x**` and ``a ` b``", "C(**x**) AND C(a ` b)"],
    ["unpaired markers are text", "2 * 3 and **open and `tick", "2 * 3 AND **OPEN AND `TICK"],
    ["snake_case is not italic", "my_var_name", "MY_VAR_NAME"],
    ["backslash escapes", "\\*x\\*", "*X*"],
    ["a fence with its language, closed", "```ts\nconst a = 1;\n```\nafter", "PRE(ts|true|const a = 1;)\nAFTER"],
    ["a fence never closed runs to the end", "~~~\nx\ny", "PRE(|false|x\ny)"],
    ["headings, bullets and rules", "## T *i*\n  - item\n---", "H(T I(I))\nLI(2|ITEM)\nHR"],
    ["consecutive quoted lines are one run, with their depth", "> a\n>> b\n> > - c\nd", "Q[1:A,2:B,2:LI(0|C)]\nD"],
    ["a \">\" indented four spaces inside a quote is text", ">     > x", "Q[1:    > X]"],
    ["a link gives the rendered label, the URL and the label as written", "[**go**](https://x.io/a_(b))", "A(B(GO)|https://x.io/a_(b)|**go**)"],
    ["a link needs an http(s) URL with nothing to quote in it", "[x](ftp://a) [y](https://a/<b>)", "[X](FTP://A) [Y](HTTPS://A/<B>)"],
    ["CRLF line ends", "a\r\nb", "A\nB"],
  ])("%s", (_name, markdown, expected) => {
    expect(renderMarkdown(markdown, TAGS)).toBe(expected);
  });
});
