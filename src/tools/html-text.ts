/**
 * The readable text of an HTML page: no scripts, styles or markup, block elements on their own lines, entities
 * decoded, whitespace collapsed. A linear scan (no backtracking regular expression over the whole page). Pure.
 */

const SKIPPED = new Set(["script", "style", "noscript", "template", "svg", "head", "iframe", "object"]);
const BLOCK = new Set([
  "p", "div", "br", "hr", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "section", "article",
  "header", "footer", "nav", "aside", "main", "blockquote", "pre", "dd", "dt", "dl", "figure", "figcaption", "form",
]);
const NAMED: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: " ", mdash: "—", ndash: "–", hellip: "…", copy: "©" };

export function htmlToText(html: string): { title?: string; text: string } {
  const titleMatch = /<title\b[^>]{0,200}>([^<]{0,500})/i.exec(html);
  const lower = html.toLowerCase();
  const out: string[] = [];
  let i = 0;
  while (i < html.length) {
    const lt = html.indexOf("<", i);
    if (lt < 0) {
      out.push(html.slice(i));
      break;
    }
    out.push(html.slice(i, lt));
    if (html.startsWith("<!--", lt)) {
      const end = html.indexOf("-->", lt + 4);
      i = end < 0 ? html.length : end + 3;
      continue;
    }
    const gt = html.indexOf(">", lt + 1);
    if (gt < 0) break;
    const name = /^<\/?\s*([a-z][a-z0-9-]*)/i.exec(html.slice(lt, Math.min(gt + 1, lt + 40)))?.[1]?.toLowerCase() ?? "";
    const closing = html[lt + 1] === "/";
    i = gt + 1;
    if (!closing && SKIPPED.has(name)) {
      const end = lower.indexOf(`</${name}`, i);
      if (end < 0) break;
      const endGt = html.indexOf(">", end);
      i = endGt < 0 ? html.length : endGt + 1;
      continue;
    }
    if (name === "li") out.push(closing ? " " : "\n- ");
    else if (BLOCK.has(name)) out.push("\n");
    else out.push(" ");
  }
  const text = decodeEntities(out.join(""))
    .replace(/[ \t\f\v\r\u00a0]+/g, " ")
    .replace(/ *\n */g, "\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
  const title = titleMatch ? decodeEntities(titleMatch[1]!).replace(/\s+/g, " ").trim() : undefined;
  return { title: title || undefined, text };
}

export function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]{1,6}|#\d{1,7}|[a-z]{2,8});/gi, (whole, code: string) => {
    if (code[0] === "#") {
      const n = code[1] === "x" || code[1] === "X" ? Number.parseInt(code.slice(2), 16) : Number.parseInt(code.slice(1), 10);
      return n > 0 && n <= 0x10ffff && !(n >= 0xd800 && n <= 0xdfff) ? String.fromCodePoint(n) : whole;
    }
    return NAMED[code.toLowerCase()] ?? whole;
  });
}
