/**
 * Markdown as a model writes it → Telegram's HTML parse mode.
 *
 * The output is always valid for Telegram: every tag this function opens it closes within the same line (or the
 * same block for code and quotes), text is escaped, and nothing nests where Telegram forbids it (no tags inside
 * code, no link inside a link, no quote inside a quote). The visible text is never longer than the input, so a
 * Markdown text within `maxText` stays within it. Constructs Telegram cannot show are kept as escaped text.
 */

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)/;
const HEADING = /^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/;
const BULLET = /^(\s*)[-*+]\s+(.*)$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;
const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;

export function markdownToTelegramHtml(markdown: string): string {
  const lines = markdown.replace(/\r\n?/g, "\n").split("\n");
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const fence = FENCE.exec(line);
    if (fence) {
      const marker = fence[1]!;
      const body: string[] = [];
      let j = i + 1;
      while (j < lines.length && !isClosingFence(lines[j]!, marker)) body.push(lines[j++]!);
      const language = fence[2]!.replace(/[^\w+#.-]/g, "");
      const code = escapeHtml(body.join("\n"));
      out.push(language ? `<pre><code class="language-${language}">${code}</code></pre>` : `<pre>${code}</pre>`);
      i = j; // skips the closing fence (or ends the loop for an unclosed block)
      continue;
    }
    if (QUOTE.test(line)) {
      const quoted: string[] = [];
      while (i < lines.length && QUOTE.test(lines[i]!)) {
        // Nested quotes (">>") become one level: Telegram cannot nest blockquotes.
        quoted.push(renderLine(lines[i]!.replace(/^(?:\s*>\s?)+/, "")));
        i++;
      }
      i--;
      out.push(`<blockquote>${quoted.join("\n")}</blockquote>`);
      continue;
    }
    out.push(renderLine(line));
  }
  return out.join("\n");
}

function isClosingFence(line: string, opening: string): boolean {
  const trimmed = line.trim();
  return trimmed.length >= opening.length && trimmed === opening[0]!.repeat(trimmed.length);
}

/** One line outside code blocks: heading → bold, "- item" → "• item", a rule → a line, the rest inline Markdown. */
function renderLine(line: string): string {
  if (RULE.test(line)) return "———";
  const heading = HEADING.exec(line);
  if (heading) return heading[1] === "" ? "" : `<b>${renderInline(heading[1]!)}</b>`;
  const bullet = BULLET.exec(line);
  if (bullet) return `${bullet[1]}• ${renderInline(bullet[2]!)}`;
  return renderInline(line);
}

interface Delimiter {
  mark: string;
  tag: "b" | "i" | "s";
  /** Underscores only count at word boundaries, so snake_case stays as it is. */
  wordBound: boolean;
}
const DELIMITERS: Delimiter[] = [
  { mark: "**", tag: "b", wordBound: false },
  { mark: "__", tag: "b", wordBound: true },
  { mark: "~~", tag: "s", wordBound: false },
  { mark: "*", tag: "i", wordBound: false },
  { mark: "_", tag: "i", wordBound: true },
];
const ESCAPABLE = /[!-/:-@[-`{-~]/;

/** Inline Markdown of one line. Each construct is rendered recursively from its own slice, so tags always balance. */
export function renderInline(text: string): string {
  let out = "";
  let i = 0;
  outer: while (i < text.length) {
    const c = text[i]!;
    if (c === "\\" && i + 1 < text.length && ESCAPABLE.test(text[i + 1]!)) {
      out += escapeHtml(text[i + 1]!);
      i += 2;
      continue;
    }
    if (c === "`") {
      const run = runLength(text, i, "`");
      const close = findBacktickRun(text, i + run, run);
      if (close < 0) {
        out += escapeHtml(text.slice(i, i + run));
      } else {
        out += `<code>${escapeHtml(text.slice(i + run, close))}</code>`;
        i = close;
      }
      i += run;
      continue;
    }
    if (c === "[") {
      const link = matchLink(text, i);
      if (link) {
        out += `<a href="${escapeHtml(link.url)}">${escapeHtml(link.label)}</a>`;
        i = link.end;
        continue;
      }
    }
    for (const d of DELIMITERS) {
      if (!text.startsWith(d.mark, i)) continue;
      const close = findClosing(text, i, d);
      if (close < 0) {
        // An unmatched "**" stays literal as a whole instead of opening an italic.
        out += escapeHtml(d.mark);
        i += d.mark.length;
      } else {
        out += `<${d.tag}>${renderInline(text.slice(i + d.mark.length, close))}</${d.tag}>`;
        i = close + d.mark.length;
      }
      continue outer;
    }
    out += escapeHtml(c);
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

/** `[label](url)` with an http(s) URL; anything else is left as text. */
function matchLink(text: string, open: number): { label: string; url: string; end: number } | undefined {
  const closeLabel = text.indexOf("](", open + 1);
  if (closeLabel < 0 || text.slice(open + 1, closeLabel).includes("[")) return undefined;
  let depth = 0;
  for (let j = closeLabel + 2; j < text.length; j++) {
    if (text[j] === "(") depth++;
    else if (text[j] === ")" && depth-- === 0) {
      const url = text.slice(closeLabel + 2, j).trim().split(/\s+/)[0] ?? "";
      const label = text.slice(open + 1, closeLabel);
      if (!/^https?:\/\/[^\s<>"]+$/i.test(url) || label.trim() === "") return undefined;
      return { label, url, end: j + 1 };
    }
  }
  return undefined;
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : "&quot;"));
}
