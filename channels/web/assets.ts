import { readFileSync } from "node:fs";
import { repoPath } from "../../src/core/package-root.ts";

/**
 * The page, its script and its style sheet, read once from ./public. They are separate files so the page works under
 * a Content-Security-Policy without 'unsafe-inline'. The page names its assets and API under the router's mount
 * path, which it learns per request (`{{base}}` in chat.html).
 */
export interface WebAssets {
  page(base: string): string;
  script: string;
  style: string;
}

export function loadWebAssets(): WebAssets {
  const read = (name: string) => readFileSync(repoPath("channels/web/public", name), "utf8");
  const html = read("chat.html");
  return {
    page: (base) => html.replaceAll("{{base}}", escapeHtml(base)),
    script: read("chat.js"),
    style: read("chat.css"),
  };
}

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
