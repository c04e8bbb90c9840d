import { renderMarkdown, type MarkdownStyle } from "./markdown.ts";

/**
 * Markdown → WhatsApp's own formatting: *bold*, _italic_, ~strike~, `inline code`, ```monospace``` blocks,
 * "- " lists and "> " quotes (WhatsApp shows all of these). Headings become bold lines, links "label (url)".
 * The markers are WhatsApp's whichever API carries the text, so both WhatsApp channels (Cloud API and
 * whatsapp-web.js) use this one style. The result is never longer than the Markdown, except a ">quote" without
 * its space (the senders fall back to the Markdown itself if the rendering ever passes the limit).
 */
const WHATSAPP_STYLE: MarkdownStyle = {
  text: (text) => text,
  bold: (inner) => `*${inner}*`,
  italic: (inner) => `_${inner}_`,
  strike: (inner) => `~${inner}~`,
  code: (text) => (text.includes("`") ? text : `\`${text}\``),
  codeBlock: (text, closed) => (closed && text.trim() !== "" ? `\`\`\`${text}\`\`\`` : text),
  heading: (inner) => (/^\*[^*].*\*$/s.test(inner) ? inner : `*${inner}*`),
  bullet: (indent, inner) => `${indent}- ${inner}`,
  quote: (lines) => lines.map((line) => `${"> ".repeat(line.depth)}${line.text}`).join("\n"),
  link: (label, url) => (label === url ? url : `${label} (${url})`),
  rule: () => "———",
};

export function markdownToWhatsApp(markdown: string): string {
  return renderMarkdown(markdown, WHATSAPP_STYLE);
}
