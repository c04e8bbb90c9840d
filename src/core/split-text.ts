/**
 * Splits a model's Markdown reply into messages a platform accepts.
 *
 * Lengths are UTF-16 code units, as Telegram, Messenger and WhatsApp count them. A chunk ends at the best break in
 * reach: a blank line, else a line break, else a sentence end, else a space (or between two CJK characters, which
 * have no spaces); only a "word" longer than the chunk is cut, and then between grapheme clusters, so that emoji,
 * ZWJ sequences and flags stay whole. The whitespace at a break is dropped and nothing else is lost.
 *
 * A fenced code block that has to be cut is closed at the end of one chunk and reopened with the same info string
 * at the start of the next, so each chunk renders on its own; those fence lines count toward the limit. Inline
 * formatting is not balanced, but a cut never falls between the two stars of `**`.
 */

const MIN_LENGTH = 16;

/** Break quality, best last. A chunk ends at the last break of the best quality within reach. */
const Level = { Hard: 0, Space: 1, Sentence: 2, Line: 3, Paragraph: 4 } as const;
type Level = (typeof Level)[keyof typeof Level];

interface Break {
  /** The chunk is `text.slice(start, end)`; the whitespace that follows `end` is dropped. */
  end: number;
  level: Level;
}

interface Fence {
  /** Opening line: `[openStart, openEnd)`, without its line ending. */
  openStart: number;
  openEnd: number;
  /** Closing line: `[closeStart, closeEnd)`; both are `text.length` for a fence the text never closes. */
  closeStart: number;
  closeEnd: number;
  /** What starts a continuation chunk ("```ts") and what ends a cut one ("\n```"); absent when they would not fit. */
  reopen?: string;
  close?: string;
}

/** Where a chunk that ends at some index stands. */
type EndPlace =
  | { kind: "inside"; fence: Fence } // in a block's content: the chunk closes the fence, the next reopens it
  | { kind: "fence-line"; lineStart: number } // on an opening or closing fence line: not a place to cut
  | { kind: "free" };

export function splitText(text: string, maxLength: number): string[] {
  if (!Number.isInteger(maxLength) || maxLength < MIN_LENGTH) {
    throw new RangeError(`splitText: maxLength must be an integer of at least ${MIN_LENGTH}, got ${maxLength}`);
  }
  if (text === "") return [];
  if (text.length <= maxLength) return [text];

  const n = text.length;
  const fences = findFences(text, maxLength);
  let graphemes: Intl.Segments | undefined;

  /** The fence whose opening line starts before `at`, if any (fences are sorted and do not overlap). */
  const fenceBefore = (at: number): Fence | undefined => {
    let lo = 0;
    let hi = fences.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (fences[mid]!.openStart < at) lo = mid + 1;
      else hi = mid;
    }
    return lo > 0 ? fences[lo - 1] : undefined;
  };

  const classifyEnd = (end: number): EndPlace => {
    const fence = fenceBefore(end);
    if (!fence || (end >= fence.closeEnd && fence.closeEnd > fence.closeStart)) return { kind: "free" };
    if (end <= fence.openEnd) return { kind: "fence-line", lineStart: fence.openStart };
    if (end <= fence.closeStart) return { kind: "inside", fence };
    return { kind: "fence-line", lineStart: fence.closeStart };
  };

  /** The fence whose content a chunk starting at `start` begins in. */
  const openAt = (start: number): Fence | undefined => {
    const fence = fenceBefore(start);
    return fence && fence.openEnd < start && start <= fence.closeStart ? fence : undefined;
  };

  /** The best break with `start < end <= limit`. */
  const chooseBreak = (start: number, limit: number): Break => {
    const candidates: Break[] = [];
    let i = start;
    while (i < n && isSpace(text.charCodeAt(i))) i++;
    for (i++; i <= limit && i < n; ) {
      const code = text.charCodeAt(i);
      if (isSpace(code)) {
        const end = i;
        let newlines = 0;
        for (; i < n && isSpace(text.charCodeAt(i)); i++) if (text.charCodeAt(i) === 10) newlines++;
        const level =
          newlines >= 2
            ? Level.Paragraph
            : newlines === 1
              ? Level.Line
              : endsSentence(text, end, start, false)
                ? Level.Sentence
                : Level.Space;
        candidates.push({ end, level });
        continue;
      }
      if (!CLOSERS.has(text[i]!) && endsSentence(text, i, start, true)) {
        candidates.push({ end: i, level: Level.Sentence });
      }
      else if (isCjk(text.charCodeAt(i - 1)) && isCjk(code)) candidates.push({ end: i, level: Level.Space });
      i++;
    }
    for (let level: number = Level.Paragraph; level >= Level.Space; level--) {
      for (let k = candidates.length - 1; k >= 0; k--) {
        const candidate = candidates[k]!;
        if (candidate.level >= level && classifyEnd(candidate.end).kind !== "fence-line") return candidate;
      }
    }
    return { end: hardBreak(start, limit), level: Level.Hard };
  };

  /** A cut inside a word: between grapheme clusters, else between code points; never inside `**` or a fence line. */
  const hardBreak = (start: number, limit: number): number => {
    graphemes ??= new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(text);
    let end = graphemes.containing(limit)?.index ?? limit;
    if (end <= start) {
      end = limit;
      if (isHighSurrogate(text.charCodeAt(end - 1)) && isLowSurrogate(text.charCodeAt(end))) end--;
    }
    if (end - 1 > start && text[end - 1] === "*" && text[end] === "*") end--;
    const where = classifyEnd(end);
    if (where.kind === "fence-line" && where.lineStart > start) end = where.lineStart;
    while (end - 1 > start && isSpace(text.charCodeAt(end - 1))) end--;
    return end;
  };

  /** Where the next chunk starts: past the dropped whitespace, keeping a code line's indentation. */
  const nextStart = (end: number, fence: Fence | undefined): number => {
    let i = end;
    let afterNewline = -1;
    for (; i < n && isSpace(text.charCodeAt(i)); i++) if (text.charCodeAt(i) === 10) afterNewline = i + 1;
    if (!fence) return i;
    if (i >= fence.closeStart) {
      // Only whitespace was left in the block: the closing fence this chunk ends with replaces the original one.
      for (i = fence.closeEnd; i < n && isSpace(text.charCodeAt(i)); ) i++;
      return i;
    }
    return afterNewline >= 0 ? afterNewline : i;
  };

  const chunks: string[] = [];
  let start = 0;
  while (start < n) {
    const reopened = openAt(start)?.reopen;
    const prefix = reopened === undefined ? "" : `${reopened}\n`;
    if (prefix.length + n - start <= maxLength) {
      chunks.push(prefix + text.slice(start));
      break;
    }
    let limit = start + maxLength - prefix.length;
    for (;;) {
      const { end } = chooseBreak(start, limit);
      const where = classifyEnd(end);
      // A fence too long to repeat (findFences) is cut like plain text.
      const fence = where.kind === "inside" && where.fence.close !== undefined ? where.fence : undefined;
      const suffix = fence?.close ?? "";
      // Closing the fence may push the chunk over the limit: then look for a break earlier. The fence decorations
      // take at most half of maxLength (findFences), so this ends with at least half of maxLength of content.
      const over = prefix.length + (end - start) + suffix.length - maxLength;
      if (over > 0) {
        limit -= over;
        continue;
      }
      chunks.push(prefix + text.slice(start, end) + suffix);
      start = nextStart(end, fence);
      break;
    }
  }
  return chunks;
}

const FENCE_LINE = /^[ \t]*(`{3,}|~{3,})(.*?)\r?$/;

/** The fenced code blocks of `text`, CommonMark-like (any indentation, since models indent fences inside lists). */
function findFences(text: string, maxLength: number): Fence[] {
  const fences: Fence[] = [];
  let open: { start: number; end: number; marker: string; info: string } | undefined;
  for (let lineStart = 0; lineStart <= text.length; ) {
    const newline = text.indexOf("\n", lineStart);
    const lineEnd = newline < 0 ? text.length : newline;
    const match = FENCE_LINE.exec(text.slice(lineStart, lineEnd));
    const textEnd = text[lineEnd - 1] === "\r" && lineEnd > lineStart ? lineEnd - 1 : lineEnd;
    if (match) {
      const marker = match[1]!;
      const info = match[2]!.trim();
      if (!open) {
        if (!(marker[0] === "`" && info.includes("`"))) open = { start: lineStart, end: textEnd, marker, info };
      } else if (marker[0] === open.marker[0] && marker.length >= open.marker.length && info === "") {
        fences.push(decorate(open, lineStart, textEnd, maxLength));
        open = undefined;
      }
    }
    if (newline < 0) break;
    lineStart = newline + 1;
  }
  if (open) fences.push(decorate(open, text.length, text.length, maxLength));
  return fences;
}

function decorate(
  open: { start: number; end: number; marker: string; info: string },
  closeStart: number,
  closeEnd: number,
  maxLength: number,
): Fence {
  const close = `\n${open.marker}`;
  const language = open.info.split(/\s/, 1)[0] ?? "";
  const reopen = [`${open.marker}${open.info}`, `${open.marker}${language}`, open.marker].find(
    (line) => line.length + 1 + close.length <= maxLength / 2,
  );
  const fence: Fence = { openStart: open.start, openEnd: open.end, closeStart, closeEnd };
  return reopen === undefined ? fence : { ...fence, reopen, close };
}

const CLOSERS = new Set([")", "]", '"', "'", "”", "’", "»", "*", "_", "」", "』", "）", "】"]);
const SENTENCE_ENDS = new Set([".", "!", "?", "…"]);
const CJK_SENTENCE_ENDS = new Set(["。", "！", "？"]);

/** Whether `text` before `at` ends a sentence (closing quotes and emphasis markers allowed after the stop). */
function endsSentence(text: string, at: number, start: number, cjkOnly: boolean): boolean {
  let k = at - 1;
  while (k > start && CLOSERS.has(text[k]!)) k--;
  const stop = text[k]!;
  return CJK_SENTENCE_ENDS.has(stop) || (!cjkOnly && SENTENCE_ENDS.has(stop));
}

function isSpace(code: number): boolean {
  return code === 32 || (code >= 9 && code <= 13);
}

/** Han, kana and CJK punctuation: scripts written without spaces, where a line may break between any two characters. */
function isCjk(code: number): boolean {
  return (
    (code >= 0x3001 && code <= 0x30ff) ||
    (code >= 0x3400 && code <= 0x4dbf) ||
    (code >= 0x4e00 && code <= 0x9fff) ||
    (code >= 0xf900 && code <= 0xfaff) ||
    (code >= 0xff01 && code <= 0xff60)
  );
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

/** At most `max` UTF-16 code units (as the platforms count), ending in "…" when cut; a surrogate pair is never split. */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max - 1;
  if (isHighSurrogate(text.charCodeAt(end - 1))) end--;
  return `${text.slice(0, end)}…`;
}
