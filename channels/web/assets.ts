import { readFileSync } from "node:fs";
import { repoPath } from "../../src/core/package-root.ts";

/**
 * The page, its script and its style sheet, read once from ./public. They are separate files so the page works under
 * a Content-Security-Policy without 'unsafe-inline'. The page names its assets and API under the router's mount
 * path, which it learns per request (`{{base}}` in chat.html), and learns the upload limit (`{{maxUpload}}`) so it
 * can refuse a large image before sending it.
 */
export interface WebAssets {
  page(base: string, maxUploadBytes: number): string;
  script: string;
  style: string;
}

export function loadWebAssets(): WebAssets {
  const read = (name: string) => readFileSync(repoPath("channels/web/public", name), "utf8");
  const html = read("chat.html");
  return {
    page: (base, maxUploadBytes) =>
      html.replaceAll("{{base}}", escapeHtml(base)).replaceAll("{{maxUpload}}", String(Math.floor(maxUploadBytes))),
    script: read("chat.js"),
    style: read("chat.css"),
  };
}

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
