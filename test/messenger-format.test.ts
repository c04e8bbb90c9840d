import { describe, expect, it } from "vitest";
import { markdownToPlainText } from "../channels/messenger/format.ts";

describe("markdownToPlainText", () => {
  it.each([
    ["bold, italic and strikethrough lose their markers", "**bold**, *italic*, _also_, ~~gone~~", "bold, italic, also, gone"],
    ["inline code keeps its text", "use `a*b*c` here", "use a*b*c here"],
    ["a fenced block keeps its body", "```js\nlet x = 1;\n```\nafter", "let x = 1;\nafter"],
    ["headings keep their words", "### Steps", "Steps"],
    ["bullets become •", "- one\n  * two", "• one\n  • two"],
    ["links show label and URL", "[Parley](https://parley.example)", "Parley (https://parley.example)"],
    ["snake_case and lone stars survive", "my_var * 2", "my_var * 2"],
    ["a rule", "***", "———"],
    ["emoji pass through", "**🎉 done**", "🎉 done"],
  ])("%s", (_name, markdown, expected) => {
    expect(markdownToPlainText(markdown)).toBe(expected);
  });

  it("is never longer than the Markdown", () => {
    for (const sample of ["**x**", "# t", "```\ncode\n```", "[l](https://u.v)", "- a", "___", "`c`", "```\n```"]) {
      expect(markdownToPlainText(sample).length, sample).toBeLessThanOrEqual(sample.length);
    }
  });
});
