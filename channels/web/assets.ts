import { readFileSync } from "node:fs";
import { repoPath } from "../../src/core/package-root.ts";

/**
 * The page, its script and its style sheet, read once from ./public. They are separate files so the page works under
 * a Content-Security-Policy without 'unsafe-inline'. The page names its assets and API under the router's mount
 * path, which it learns per request (`{{base}}` in chat.html), learns the upload limit (`{{maxUpload}}`) so it
 * can refuse a large image before sending it, and whether the request had a session (`{{session}}`: none, operator,
 * visitor; a public chat's page opens one first). gate.html is what the operator's chat shows without a session: a
 * short explanation, whose script (the same chat.js) trades the token of a link for a session and reloads.
 */
export interface WebAssets {
  page(base: string, maxUploadBytes: number, session: "none" | "operator" | "visitor"): string;
  gate(base: string): string;
  script: string;
  style: string;
}

export function loadWebAssets(): WebAssets {
  const read = (name: string) => readFileSync(repoPath("channels/web/public", name), "utf8");
  const html = read("chat.html");
  const gate = read("gate.html");
  return {
    page: (base, maxUploadBytes, session) =>
      html
        .replaceAll("{{base}}", escapeHtml(base))
        .replaceAll("{{maxUpload}}", String(Math.floor(maxUploadBytes)))
        .replaceAll("{{session}}", session),
    gate: (base) => gate.replaceAll("{{base}}", escapeHtml(base)),
    script: read("chat.js"),
    style: read("chat.css"),
  };
}

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
