/**
 * HTML by tagged template: every interpolated value is escaped unless it is already `Html` (the result of another
 * `html` template). Arrays are rendered item by item; null, undefined and false render as nothing. Control
 * characters and bidirectional overrides in text are shown as visible marks, so a message cannot hide or reorder
 * what the operator reads.
 */

export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

export type Renderable = Html | string | number | boolean | null | undefined | readonly Renderable[];

export function html(strings: TemplateStringsArray, ...values: Renderable[]): Html {
  let out = strings[0] ?? "";
  for (let i = 0; i < values.length; i++) {
    out += render(values[i]) + (strings[i + 1] ?? "");
  }
  return new Html(out);
}

/** Trusted markup that was built here, not from any input (e.g. a server-rendered SVG path). Use sparingly. */
export function trusted(markup: string): Html {
  return new Html(markup);
}

export function render(value: Renderable): string {
  if (value instanceof Html) return value.value;
  if (Array.isArray(value)) return value.map((v: Renderable) => render(v)).join("");
  if (value === null || value === undefined || value === false) return "";
  return escapeHtml(String(value));
}

const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;", "`": "&#96;" };

// C0/C1 controls except tab and newline, DEL, and the bidi embedding/override/isolate marks.
// eslint-disable-next-line no-control-regex
const INVISIBLE = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]/g;

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"'`]/g, (c) => ENTITIES[c]!).replace(INVISIBLE, (c) => {
    const code = c.charCodeAt(0);
    // U+2400 Control Pictures for C0 (␀ ␁ … ␛ …) and DEL; a bracketed code point for the rest.
    if (code < 0x20) return String.fromCharCode(0x2400 + code);
    if (code === 0x7f) return "\u2421";
    return `[U+${code.toString(16).toUpperCase().padStart(4, "0")}]`;
  });
}

/** An internal link: path segments are encoded, query values too; empty query values are left out. */
export function href(path: string, query: Record<string, string | number | boolean | undefined | null> = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === "" || value === false) continue;
    params.set(key, String(value));
  }
  const search = params.toString();
  return search === "" ? path : `${path}?${search}`;
}
