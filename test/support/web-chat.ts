/**
 * What the web chat page does, over real HTTP: trade the token of the operator's link (or nothing, on a public chat)
 * for a session cookie at POST /chat/api/session, then send messages, upload images and read the event stream with
 * that cookie. The identity is the server's; `post` may add any field (an old page's `clientId`), which changes nothing.
 */

export interface WebChatClient {
  cookie: string;
  post(body: Record<string, unknown>): Promise<Response>;
  upload(bytes: Uint8Array, type: string): Promise<Response>;
  events(options?: { signal?: AbortSignal }): Promise<Response>;
}

/** The token in a link such as http://127.0.0.1:3000/chat#token=… */
export function tokenOf(link: string | undefined): string {
  const token = /#token=([A-Za-z0-9_-]+)$/.exec(link ?? "")?.[1];
  if (!token) throw new Error(`no token in the web chat link ${link}`);
  return token;
}

/** Opens a session: the operator's with `token`, a visitor's without (public chat); throws unless it is granted. */
export async function openWebChat(base: string, token?: string, cookie?: string): Promise<WebChatClient> {
  const res = await fetch(`${base}/chat/api/session`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...(cookie ? { Cookie: cookie } : {}) },
    body: JSON.stringify(token ? { token } : {}),
  });
  if (res.status !== 200) throw new Error(`the web chat refused a session: ${res.status} ${await res.text()}`);
  const set = res.headers.getSetCookie().find((c) => c.startsWith("parley_chat="))?.split(";")[0] ?? cookie;
  if (!set) throw new Error("the web chat granted a session without a cookie");
  return webChatClient(base, set);
}

export function webChatClient(base: string, cookie: string): WebChatClient {
  return {
    cookie,
    post: (body) =>
      fetch(`${base}/chat/api/messages`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Cookie: cookie },
        body: JSON.stringify(body),
      }),
    upload: (bytes, type) =>
      fetch(`${base}/chat/api/uploads`, { method: "POST", headers: { "Content-Type": type, Cookie: cookie }, body: new Uint8Array(bytes) }),
    events: (options = {}) =>
      fetch(`${base}/chat/api/events`, { headers: { Accept: "text/event-stream", Cookie: cookie }, signal: options.signal }),
  };
}
