import { renderMarkdown, type MarkdownStyle } from "../../src/core/markdown.ts";

/**
 * Markdown as a model writes it → Telegram's HTML parse mode (the walk is src/core/markdown.ts).
 *
 * The output is always valid for Telegram: every tag this style opens it closes around the same slice, text is
 * escaped, and nothing nests where Telegram forbids it (no tags inside code or links, no quote inside a quote:
 * nested quotes become one level). The visible text is never longer than the input, so a Markdown text within
 * `maxText` stays within it. Constructs Telegram cannot show are kept as escaped text.
 */
const TELEGRAM_STYLE: MarkdownStyle = {
  text: escapeHtml,
  bold: (inner) => `<b>${inner}</b>`,
  italic: (inner) => `<i>${inner}</i>`,
  strike: (inner) => `<s>${inner}</s>`,
  code: (text) => `<code>${escapeHtml(text)}</code>`,
  codeBlock(text, _closed, language) {
    const safeLanguage = language.replace(/[^\w+#.-]/g, "");
    const code = escapeHtml(text);
    return safeLanguage ? `<pre><code class="language-${safeLanguage}">${code}</code></pre>` : `<pre>${code}</pre>`;
  },
  heading: (inner) => `<b>${inner}</b>`,
  bullet: (indent, inner) => `${indent}• ${inner}`,
  quote: (lines) => `<blockquote>${lines.map((line) => line.text).join("\n")}</blockquote>`,
  link: (_label, url, written) => `<a href="${escapeHtml(url)}">${escapeHtml(written)}</a>`,
  rule: () => "———",
};

export function markdownToTelegramHtml(markdown: string): string {
  return renderMarkdown(markdown, TELEGRAM_STYLE);
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : "&quot;"));
}
