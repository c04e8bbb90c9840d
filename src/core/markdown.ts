/**
 * Markdown as a model writes it, walked once for every channel: a style says how each construct looks (Telegram's
 * HTML, WhatsApp's markers, plain text), this file decides what the constructs are. Pure.
 *
 * Recognised: fenced code blocks, headings, "- / * / +" bullets, "> " quotes, rules, and inline `code`, **bold**,
 * __bold__, *italic*, _italic_, ~~strike~~, [label](http(s) url) and backslash escapes. Markers that do not pair up
 * stay as text; underscores count only at word boundaries, so snake_case stays as it is. Each inline construct is
 * rendered from its own slice, so whatever a style opens around `inner` it can close within the same line.
 *
 * A style must keep the visible text no longer than the Markdown (markers only shrink or keep their length), so a
 * text the conversation service split to `maxText` still fits after rendering.
 */

export interface MarkdownStyle {
  /** Literal text outside any construct, markers that did not pair up included (Telegram escapes it as HTML). */
  text(text: string): string;
  bold(inner: string): string;
  italic(inner: string): string;
  strike(inner: string): string;
  /** Inline code: the text between the backticks, as written. */
  code(text: string): string;
  /**
   * A fenced block's body as written; `language` is the first word after the opening fence ("" when none) and
   * `closed` is false for a fence the text never closes (the block then runs to the end).
   */
  codeBlock(text: string, closed: boolean, language: string): string;
  heading(inner: string): string;
  /** `- item`, `* item`, `+ item` with its indentation. */
  bullet(indent: string, inner: string): string;
  /** A run of consecutive quoted lines, each rendered, with how many ">" it was nested under (1 or more). */
  quote(lines: readonly QuotedLine[]): string;
  /** `label` is rendered; `written` is the label as the model wrote it, for a style that shows no formatting there. */
  link(label: string, url: string, written: string): string;
  rule(): string;
}

export interface QuotedLine {
  depth: number;
  text: string;
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)/;
const HEADING = /^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/;
const BULLET = /^(\s*)[-*+]\s+(.*)$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;
const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
/** An http(s) URL with nothing in it that would need quoting in HTML. */
const LINK_URL = /^https?:\/\/[^\s<>"]+$/i;

export function renderMarkdown(markdown: string, style: MarkdownStyle): string {
  const lines = markdown.replace(/\r\n?/g, "\n").split("\n");
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const fence = FENCE.exec(lines[i]!);
    if (fence) {
      const marker = fence[1]!;
      const body: string[] = [];
      let j = i + 1;
      while (j < lines.length && !closesFence(lines[j]!, marker)) body.push(lines[j++]!);
      out.push(style.codeBlock(body.join("\n"), j < lines.length, fence[2]!));
      i = j; // skips the closing fence (or ends the loop for an unclosed block)
      continue;
    }
    if (QUOTE.test(lines[i]!)) {
      const quoted: QuotedLine[] = [];
      for (; i < lines.length && QUOTE.test(lines[i]!); i++) quoted.push(quotedLine(lines[i]!, style));
      i--;
      out.push(style.quote(quoted));
      continue;
    }
    out.push(renderLine(lines[i]!, style));
  }
  return out.join("\n");
}

function closesFence(line: string, opening: string): boolean {
  const trimmed = line.trim();
  return trimmed.length >= opening.length && trimmed === opening[0]!.repeat(trimmed.length);
}

/** ">> text" is depth 2: each ">" may follow up to three spaces, as in CommonMark. */
function quotedLine(line: string, style: MarkdownStyle): QuotedLine {
  let depth = 0;
  let rest = line;
  for (let quote = QUOTE.exec(rest); quote; quote = QUOTE.exec(rest)) {
    depth++;
    rest = quote[1]!;
  }
  return { depth, text: renderLine(rest, style) };
}

/** One line outside code blocks and quotes: a rule, a heading, a bullet, or inline Markdown. */
function renderLine(line: string, style: MarkdownStyle): string {
  if (RULE.test(line)) return style.rule();
  const heading = HEADING.exec(line);
  if (heading) return heading[1] === "" ? "" : style.heading(renderInline(heading[1]!, style));
  const bullet = BULLET.exec(line);
  if (bullet) return style.bullet(bullet[1]!, renderInline(bullet[2]!, style));
  return renderInline(line, style);
}

interface Delimiter {
  mark: string;
  render: (style: MarkdownStyle, inner: string) => string;
  /** Underscores count only at word boundaries, so snake_case stays as it is. */
  wordBound: boolean;
}

const DELIMITERS: Delimiter[] = [
  { mark: "**", render: (s, t) => s.bold(t), wordBound: false },
  { mark: "__", render: (s, t) => s.bold(t), wordBound: true },
  { mark: "~~", render: (s, t) => s.strike(t), wordBound: false },
  { mark: "*", render: (s, t) => s.italic(t), wordBound: false },
  { mark: "_", render: (s, t) => s.italic(t), wordBound: true },
];
const ESCAPABLE = /[!-/:-@[-`{-~]/;

/** Inline Markdown of one line. */
function renderInline(text: string, style: MarkdownStyle): string {
  let out = "";
  let i = 0;
  outer: while (i < text.length) {
    const c = text[i]!;
    if (c === "\\" && ESCAPABLE.test(text[i + 1] ?? "")) {
      out += style.text(text[i + 1]!);
      i += 2;
      continue;
    }
    if (c === "`") {
      const run = runLength(text, i, "`");
      const close = findBacktickRun(text, i + run, run);
      if (close < 0) {
        out += style.text(text.slice(i, i + run));
        i += run;
      } else {
        out += style.code(text.slice(i + run, close));
        i = close + run;
      }
      continue;
    }
    if (c === "[") {
      const link = matchLink(text, i);
      if (link) {
        out += style.link(renderInline(link.label, style), link.url, link.label);
        i = link.end;
        continue;
      }
    }
    for (const d of DELIMITERS) {
      if (!text.startsWith(d.mark, i)) continue;
      const close = findClosing(text, i, d);
      if (close < 0) {
        // An unmatched "**" stays literal as a whole instead of opening an italic.
        out += style.text(d.mark);
        i += d.mark.length;
      } else {
        out += d.render(style, renderInline(text.slice(i + d.mark.length, close), style));
        i = close + d.mark.length;
      }
      continue outer;
    }
    out += style.text(c);
    i++;
  }
  return out;
}

function runLength(text: string, at: number, char: string): number {
  let n = 0;
  while (text[at + n] === char) n++;
  return n;
}

function findBacktickRun(text: string, from: number, length: number): number {
  for (let j = text.indexOf("`", from); j >= 0; j = text.indexOf("`", j)) {
    const run = runLength(text, j, "`");
    if (run === length && j > from) return j;
    j += run;
  }
  return -1;
}

function findClosing(text: string, open: number, d: Delimiter): number {
  const start = open + d.mark.length;
  const isWordChar = (ch: string | undefined) => ch !== undefined && /[\p{L}\p{N}]/u.test(ch);
  if (/\s/.test(text[start] ?? " ")) return -1;
  if (d.wordBound && isWordChar(text[open - 1])) return -1;
  for (let j = text.indexOf(d.mark, start + 1); j >= 0; j = text.indexOf(d.mark, j + 1)) {
    if (/\s/.test(text[j - 1]!)) continue;
    if (d.mark.length === 1 && (text[j + 1] === d.mark || text[j - 1] === d.mark)) {
      j++; // part of a double marker: not ours
      continue;
    }
    if (d.mark.length === 2 && text[j + 2] === d.mark[0]) {
      // "***" closes an inner single marker first: the double one is the last two characters of the run.
      const end = j + runLength(text, j, d.mark[0]!);
      if (d.wordBound && isWordChar(text[end])) continue;
      return end - 2;
    }
    if (d.wordBound && isWordChar(text[j + d.mark.length])) continue;
    return j;
  }
  return -1;
}

/** `[label](url)` with an http(s) URL; anything else stays text. */
function matchLink(text: string, open: number): { label: string; url: string; end: number } | undefined {
  const closeLabel = text.indexOf("](", open + 1);
  if (closeLabel < 0 || text.slice(open + 1, closeLabel).includes("[")) return undefined;
  let depth = 0;
  for (let j = closeLabel + 2; j < text.length; j++) {
    if (text[j] === "(") depth++;
    else if (text[j] === ")" && depth-- === 0) {
      const url = text.slice(closeLabel + 2, j).trim().split(/\s+/)[0] ?? "";
      const label = text.slice(open + 1, closeLabel);
      if (!LINK_URL.test(url) || label.trim() === "") return undefined;
      return { label, url, end: j + 1 };
    }
  }
  return undefined;
}
