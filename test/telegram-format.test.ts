import { describe, expect, it } from "vitest";
import { markdownToTelegramHtml } from "../channels/telegram/format.ts";
import { parseTelegramHtml } from "./fakes/telegram-api.ts";

describe("markdownToTelegramHtml", () => {
  it.each([
    ["plain text", "hello", "hello"],
    ["escapes HTML", `a < b && c > "d"`, "a &lt; b &amp;&amp; c &gt; &quot;d&quot;"],
    ["bold", "**bold** and __bold__", "<b>bold</b> and <b>bold</b>"],
    ["italic", "*it* and _it_", "<i>it</i> and <i>it</i>"],
    ["snake_case stays", "use snake_case_names here", "use snake_case_names here"],
    ["lonely asterisk stays", "2 * 3 = 6", "2 * 3 = 6"],
    ["unclosed bold stays", "**not closed", "**not closed"],
    ["nested", "**bold *and italic***", "<b>bold <i>and italic</i></b>"],
    ["strike", "~~gone~~", "<s>gone</s>"],
    ["inline code is escaped, not formatted", "`a <b> **c**`", "<code>a &lt;b&gt; **c**</code>"],
    ["double-backtick code", "``a ` b``", "<code>a ` b</code>"],
    ["fenced block with language", "```python\nif a < b:\n    pass\n```", '<pre><code class="language-python">if a &lt; b:\n    pass</code></pre>'],
    ["fenced block without language", "```\nx\n```\nafter", "<pre>x</pre>\nafter"],
    ["unclosed fence runs to the end", "```js\nlet a = 1;", '<pre><code class="language-js">let a = 1;</code></pre>'],
    ["http link", "[docs](https://example.com/a?b=1&c=2)", '<a href="https://example.com/a?b=1&amp;c=2">docs</a>'],
    ["link with parentheses", "[w](https://en.wikipedia.org/wiki/A_(b))", '<a href="https://en.wikipedia.org/wiki/A_(b)">w</a>'],
    ["non-http link stays text", "[x](javascript:alert(1))", "[x](javascript:alert(1))"],
    ["heading becomes bold", "## Title *here*", "<b>Title <i>here</i></b>"],
    ["list items become bullets", "- one\n  * two\n+ three", "• one\n  • two\n• three"],
    ["numbered list kept", "1. first\n2. second", "1. first\n2. second"],
    ["quote becomes blockquote", "> quoted **line**\n> second\nafter", "<blockquote>quoted <b>line</b>\nsecond</blockquote>\nafter"],
    ["nested quote flattened", ">> deep", "<blockquote>deep</blockquote>"],
    ["horizontal rule", "---", "———"],
    ["backslash escapes", "\\*not italic\\*", "*not italic*"],
  ])("%s", (_name, markdown, html) => {
    expect(markdownToTelegramHtml(markdown)).toBe(html);
    expect(parseTelegramHtml(markdownToTelegramHtml(markdown)).ok).toBe(true);
  });

  it("always produces HTML Telegram accepts, never longer than the input (random Markdown)", () => {
    const pieces = ["*", "**", "_", "__", "~~", "`", "```", "[", "](", "https://x.io/", ")", "<", ">", "&", '"', "#", "- ",
      "> ", "\n", " ", "a", "word", "é", "😀", "\\", "(", "1. ", "---"];
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let n = 0; n < 3000; n++) {
      const length = 1 + Math.floor(random() * 40);
      let markdown = "";
      for (let i = 0; i < length; i++) markdown += pieces[Math.floor(random() * pieces.length)];
      const parsed = parseTelegramHtml(markdownToTelegramHtml(markdown));
      if (!parsed.ok) throw new Error(`invalid HTML for ${JSON.stringify(markdown)}: ${parsed.description}`);
      expect(parsed.text.length).toBeLessThanOrEqual(markdown.length);
    }
  });
});

describe("the fake's HTML check (Telegram's rules)", () => {
  it.each([
    ["<b>ok</b> <i>x</i> <u>u</u> <s>s</s> <tg-spoiler>t</tg-spoiler> <span class=\"tg-spoiler\">s</span>", true],
    ['<pre><code class="language-ts">x</code></pre> <blockquote expandable>q</blockquote> <a href="https://a.b">l</a>', true],
    ["&lt;&gt;&amp;&quot;&#128512;", true],
    ["<b>unclosed", false],
    ["<b><i>crossed</b></i>", false],
    ["</b>", false],
    ["<div>x</div>", false],
    ["<span>x</span>", false],
    ["a & b", false],
    ["&nbsp;", false],
    ["<code><b>x</b></code>", false],
    ["<blockquote><blockquote>x</blockquote></blockquote>", false],
  ])("%s → %s", (html, valid) => {
    const parsed = parseTelegramHtml(html);
    expect(parsed.ok).toBe(valid);
    if (!parsed.ok) expect(parsed.description).toMatch(/^Bad Request: can't parse entities: /);
  });

  it("returns the visible text", () => {
    expect(parseTelegramHtml("<b>a</b> &lt;b&gt;")).toEqual({ ok: true, text: "a <b>" });
  });
});
