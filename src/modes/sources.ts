import type { Source } from "../models/router.ts";

/**
 * The pages a provider's web search cited, kept with the answer: a list after the text, streamed to the user and
 * stored with the reply. Pure; titles are kept on one line and stripped of Markdown link syntax.
 */

const MAX_SOURCES = 10;

export function sourcesFooter(sources: readonly Source[] | undefined): string {
  const unique = [...new Map((sources ?? []).map((s) => [s.url, s])).values()].slice(0, MAX_SOURCES);
  if (unique.length === 0) return "";
  const lines = unique.map(({ url, title }) => {
    const label = (title ?? "").replace(/[[\]()\r\n]+/g, " ").replace(/\s+/g, " ").trim();
    return label ? `- [${label}](${url.replace(/[()\s]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0").toUpperCase()}`)})` : `- ${url}`;
  });
  return `\n\nSources:\n${lines.join("\n")}`;
}
