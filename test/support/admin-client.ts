/**
 * A signed-in client of the admin page over real HTTP, for tests outside admin-http.test.ts: sign in with the
 * password, then GET pages and POST forms with the session cookie and CSRF token.
 */
export interface AdminClient {
  get(path: string): Promise<{ status: number; text: string; location: string | null }>;
  post(path: string, form?: Record<string, string>): Promise<{ status: number; location: string | null }>;
}

export async function signInAdmin(base: string, password: string): Promise<AdminClient> {
  const login = await fetch(`${base}/admin/login`, { redirect: "manual" });
  const formCookie = cookieOf(login);
  const token = csrfOf(await login.text());
  const signedIn = await fetch(`${base}/admin/login`, {
    method: "POST",
    redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded", ...(formCookie ? { cookie: formCookie } : {}) },
    body: new URLSearchParams({ _csrf: token, password }).toString(),
  });
  const cookie = cookieOf(signedIn);
  if (signedIn.status !== 303 || !cookie) throw new Error(`admin sign-in failed with ${signedIn.status}`);
  const overview = await fetch(`${base}/admin/`, { headers: { cookie } });
  const csrf = csrfOf(await overview.text());
  return {
    async get(path) {
      const res = await fetch(`${base}${path}`, { redirect: "manual", headers: { cookie } });
      return { status: res.status, text: await res.text(), location: res.headers.get("location") };
    },
    async post(path, form = {}) {
      const res = await fetch(`${base}${path}`, {
        method: "POST",
        redirect: "manual",
        headers: { "content-type": "application/x-www-form-urlencoded", cookie },
        body: new URLSearchParams({ _csrf: csrf, ...form }).toString(),
      });
      await res.arrayBuffer();
      return { status: res.status, location: res.headers.get("location") };
    },
  };
}

function cookieOf(res: Response): string | undefined {
  return res.headers.getSetCookie().find((c) => c.startsWith("parley_admin="))?.split(";")[0];
}

function csrfOf(html: string): string {
  const match = /name="_csrf" value="([^"]+)"/.exec(html);
  if (!match) throw new Error("no CSRF field on the page");
  return match[1]!;
}
