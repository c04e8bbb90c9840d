import { html, type Html, type Renderable } from "./html.ts";

/**
 * The page around every admin view: head with the one style sheet and script (no inline code, so the CSP can forbid
 * it), the navigation, and the sign-out form with its CSRF token.
 */

export interface PageContext {
  /** Where the admin router is mounted, e.g. "/admin". */
  base: string;
  /** The session's CSRF token, for forms; absent on the sign-in page. */
  csrf?: string;
}

export type Section = "overview" | "conversations" | "users" | "logs" | "login";

const NAV: Array<[Exclude<Section, "login">, string, string]> = [
  ["overview", "Overview", ""],
  ["conversations", "Conversations", "/conversations"],
  ["users", "Users", "/users"],
  ["logs", "Logs", "/logs"],
];

export function page(ctx: PageContext, section: Section, title: string, body: Renderable): Html {
  const nav =
    ctx.csrf === undefined
      ? ""
      : html`<nav aria-label="Admin sections">${NAV.map(
          ([key, label, path]) =>
            html`<a href="${ctx.base}${path === "" ? "/" : path}"${key === section ? html` aria-current="page"` : ""}>${label}</a>`,
        )}</nav>
        <form class="signout" method="post" action="${ctx.base}/logout">${csrfField(ctx)}<button type="submit" class="link">Sign out</button></form>`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Parley admin</title>
<link rel="stylesheet" href="${ctx.base}/assets/admin.css">
<script src="${ctx.base}/assets/admin.js" defer></script>
</head>
<body class="section-${section}">
<header class="top"><a class="brand" href="${ctx.base}/">Parley <span>admin</span></a>${nav}</header>
<main>
<h1>${title}</h1>
${body}
</main>
</body>
</html>
`;
}

export function csrfField(ctx: PageContext): Html {
  return html`<input type="hidden" name="_csrf" value="${ctx.csrf ?? ""}">`;
}

/** A one-line notice chosen from fixed texts by a code in the URL (never the URL's own text). */
export function notice(text: string | undefined): Html | "" {
  return text === undefined ? "" : html`<p class="notice" role="status">${text}</p>`;
}
