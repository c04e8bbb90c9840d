import { renderMarkdown, type MarkdownStyle } from "../../src/core/markdown.ts";

/**
 * Markdown → plain text for Messenger, which shows no formatting: markers are dropped, code keeps its text,
 * headings stay as their words, "- item" becomes "• item", links "label (url)". Never longer than the Markdown
 * (except a ">quote" without its space; send() falls back to the Markdown if the limit is ever passed).
 */
const PLAIN_STYLE: MarkdownStyle = {
  text: (text) => text,
  bold: (inner) => inner,
  italic: (inner) => inner,
  strike: (inner) => inner,
  code: (text) => text,
  codeBlock: (text) => text,
  heading: (inner) => inner,
  bullet: (indent, inner) => `${indent}• ${inner}`,
  quote: (lines) => lines.map((line) => `${"> ".repeat(line.depth)}${line.text}`).join("\n"),
  link: (label, url) => (label === url ? url : `${label} (${url})`),
  rule: () => "———",
};

export function markdownToPlainText(markdown: string): string {
  return renderMarkdown(markdown, PLAIN_STYLE);
}
