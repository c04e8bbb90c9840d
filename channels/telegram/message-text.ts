import type { MessageEntity } from "grammy/types";

/** Who the bot is, as getMe answered: mentions and replies are recognised by id, and by username only for @mentions. */
export interface BotIdentity {
  id: number;
  username: string;
}

/**
 * A message's text as the model should read it, from the text and its entities (offsets in UTF-16 code units, as
 * Telegram counts them and JavaScript strings are indexed). Pure.
 *
 * - The bot's @mention, text mention or `/command@botname` suffix is removed without leaving debris
 *   ("hey @bot, translate" → "hey, translate"; "/mode@bot thinking" → "/mode thinking").
 * - A hidden link (`text_link`) keeps its address as a Markdown link, so "summarize [this](https://…)" reaches the
 *   page reader; bold, italic, strikethrough, code and pre blocks become Markdown. Other entities stay as written.
 */
export function readText(
  text: string,
  entities: readonly MessageEntity[],
  bot: BotIdentity,
): { text: string; mentionsBot: boolean } {
  const handle = `@${bot.username}`.toLowerCase();
  const cuts: Span[] = [];
  const marks: Mark[] = [];
  for (const e of entities) {
    if (!fits(e, text)) continue;
    const slice = text.slice(e.offset, e.offset + e.length);
    if (e.type === "mention" && slice.toLowerCase() === handle) cuts.push({ from: e.offset, to: e.offset + e.length });
    else if (e.type === "text_mention" && e.user.id === bot.id) cuts.push({ from: e.offset, to: e.offset + e.length });
    else if (e.type === "bot_command" && slice.toLowerCase().endsWith(handle)) {
      cuts.push({ from: e.offset + e.length - handle.length, to: e.offset + e.length });
    } else {
      const markup = markupOf(e);
      if (markup) marks.push({ from: e.offset, to: e.offset + e.length, ...markup });
    }
  }
  if (cuts.length === 0 && marks.length === 0) return { text, mentionsBot: false };

  // A character the text does not hold stands for each cut while markup is inserted around it.
  let cut = 0xe000;
  while (text.includes(String.fromCharCode(cut))) cut++;
  const marker = String.fromCharCode(cut);
  let result = withMarkup(text, cuts, marks, marker);
  // Each cut is taken out with the punctuation and spaces it leaves, from the last to the first.
  for (let at = result.lastIndexOf(marker); at >= 0; at = result.lastIndexOf(marker)) {
    let before = result.slice(0, at);
    let after = result.slice(at + 1);
    if (before.replaceAll(marker, "").trim() === "") after = after.replace(/^[\s,:;]+/, "");
    else if (/\s$/.test(before) && /^[,.;:!?]/.test(after)) before = before.replace(/\s+$/, "");
    else if (/\s$/.test(before)) after = after.replace(/^[ \t]+/, "");
    result = before + after;
  }
  return { text: cuts.length > 0 ? result.trim() : result, mentionsBot: cuts.length > 0 };
}

interface Span {
  from: number;
  to: number;
}
interface Mark extends Span {
  open: string;
  close: string;
}

function fits(e: MessageEntity, text: string): boolean {
  return Number.isInteger(e.offset) && Number.isInteger(e.length) && e.offset >= 0 && e.length > 0 && e.offset + e.length <= text.length;
}

function markupOf(e: MessageEntity): { open: string; close: string } | undefined {
  switch (e.type) {
    case "bold":
      return { open: "**", close: "**" };
    case "italic":
      return { open: "_", close: "_" };
    case "strikethrough":
      return { open: "~~", close: "~~" };
    case "code":
      return { open: "`", close: "`" };
    case "pre":
      return { open: `\`\`\`${String(e.language ?? "").replace(/[^\w+#.-]/g, "")}\n`, close: "\n```" };
    case "text_link":
      return typeof e.url === "string" && e.url !== "" ? { open: "[", close: `](${linkTarget(e.url)})` } : undefined;
    default:
      return undefined;
  }
}

/** A link's address as a Markdown link target: no space or parenthesis can end it early. */
function linkTarget(url: string): string {
  return url.replace(/[\s()<>]/g, (c) => encodeURIComponent(c).replace(/[()]/g, (p) => `%${p.charCodeAt(0).toString(16).toUpperCase()}`));
}

/**
 * The text with markup inserted where entities open and close (outer ones outside inner ones), and `marker` in place
 * of each removed mention. Entities are nested or apart, as Telegram sends them; one that crosses a cut stays plain.
 */
function withMarkup(text: string, cuts: readonly Span[], marks: readonly Mark[], marker: string): string {
  const kept = marks.filter((m) => !cuts.some((c) => c.from < m.to && m.from < c.to));
  const opens = new Map<number, Mark[]>();
  const closes = new Map<number, Mark[]>();
  for (const m of kept) {
    (opens.get(m.from) ?? opens.set(m.from, []).get(m.from)!).push(m);
    (closes.get(m.to) ?? closes.set(m.to, []).get(m.to)!).push(m);
  }
  const cutAt = new Map(cuts.map((c) => [c.from, c]));
  let out = "";
  for (let i = 0; i <= text.length; ) {
    // Inner entities close first (the one that opened last), then outer ones open first (the longest).
    for (const m of (closes.get(i) ?? []).sort((a, b) => b.from - a.from)) out += m.close;
    for (const m of (opens.get(i) ?? []).sort((a, b) => b.to - a.to)) out += m.open;
    const cut = cutAt.get(i);
    if (cut) {
      out += marker;
      i = cut.to;
      continue;
    }
    if (i < text.length) out += text[i];
    i++;
  }
  return out;
}
