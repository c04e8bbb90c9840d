import { html, type Html } from "./html.ts";
import { csrfField, page, type PageContext } from "./layout.ts";

export function loginView(ctx: PageContext, error?: string): Html {
  return page(
    { base: ctx.base },
    "login",
    "Sign in",
    html`<form class="login" method="post" action="${ctx.base}/login">
      ${csrfField(ctx)}
      ${error === undefined ? "" : html`<p class="error" role="alert">${error}</p>`}
      <label for="password">Admin password</label>
      <input id="password" name="password" type="password" autocomplete="current-password" required autofocus>
      <button type="submit">Sign in</button>
      <p class="hint">The password is ADMIN_PASSWORD in Parley's configuration.</p>
    </form>`,
  );
}

/** A short page for requests the admin refuses (expired form, cross-site post). */
export function refusedView(ctx: PageContext, title: string, text: string): Html {
  return page({ base: ctx.base, csrf: ctx.csrf }, "overview", title, html`<p class="error">${text}</p><p><a href="${ctx.base}/">Back to the admin page</a></p>`);
}
