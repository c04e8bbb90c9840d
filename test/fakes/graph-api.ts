/**
 * A fake Meta Graph API: a real HTTP server on 127.0.0.1 that answers the calls Parley's WhatsApp Cloud and Messenger
 * adapters make, in Graph's own shapes, so the production code path runs against it (`graphApiRoot: fake.root`).
 *
 * - `POST /{version}/{phone-number-id}/messages`: WhatsApp text sends and read+typing indicators;
 * - `POST /{version}/me/messages`: Messenger sends and sender actions;
 * - `GET /{version}/{media-id}`: WhatsApp media metadata, whose `url` points at `GET /media/{id}` on this server,
 *   which like lookaside.fbsbx.com wants the same Bearer token;
 * - `GET /cdn/{name}`: a Messenger attachment URL (no token, like Meta's CDN).
 *
 * Every request is recorded; failures are scripted per route in Graph's error shape. Also here, since Meta is the
 * one that signs them: builders for webhook payloads and their `X-Hub-Signature-256`.
 */
import { createHmac, randomBytes } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export const GRAPH_VERSION = "v23.0";

export interface GraphRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body, when there was one. */
  body: unknown;
  at: number;
}

export interface GraphFailureScript {
  status: number;
  error?: { message: string; type?: string; code: number; error_subcode?: number };
  headers?: Record<string, string>;
  /** Answer only after this long (a slow Graph). */
  delayMs?: number;
}

export interface FakeMedia {
  id: string;
  mimeType: string;
  bytes?: Uint8Array;
  /** What the metadata says `file_size` is; default the real length. */
  declaredSize?: number;
  /** Send Content-Length with the download (default true). */
  withLength?: boolean;
  /** Stream zeros until the client goes away (a huge chunked download). */
  endless?: boolean;
}

export interface FakeGraph {
  url: string;
  /** Give this to the adapters as graphApiRoot. */
  root: string;
  token: string;
  phoneNumberId: string;
  requests: GraphRequest[];
  /** The next `times` requests whose "METHOD path" matches fail like this. */
  failNext(match: RegExp, failure: GraphFailureScript, times?: number): void;
  addMedia(media: FakeMedia): void;
  /** A file on the fake CDN; returns its URL. */
  addCdnFile(name: string, bytes: Uint8Array, opts?: { withLength?: boolean; endless?: boolean }): string;
  /** Bytes written for each download path so far (to see that an endless stream was cut). */
  bytesServed(path: string): number;
  /** Requests to one route: "whatsapp" (/{id}/messages), "messenger" (/me/messages), "media" or "download". */
  calls(route: "whatsapp" | "messenger" | "media" | "download"): GraphRequest[];
  close(): Promise<void>;
}

const CHUNK = new Uint8Array(64 * 1024);

export async function startFakeGraph(options: { token?: string; phoneNumberId?: string } = {}): Promise<FakeGraph> {
  const token = options.token ?? `EAAG${randomBytes(24).toString("hex")}`;
  const phoneNumberId = options.phoneNumberId ?? "106540352242922";
  const requests: GraphRequest[] = [];
  const scripts: Array<{ match: RegExp; failure: GraphFailureScript; times: number }> = [];
  const media = new Map<string, FakeMedia>();
  const cdn = new Map<string, { bytes: Uint8Array; withLength: boolean; endless: boolean }>();
  const served = new Map<string, number>();
  let counter = 0;
  let base = "";

  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { "content-type": "application/json; charset=UTF-8", ...headers });
    res.end(JSON.stringify(body));
  };
  const graphError = (res: ServerResponse, status: number, code: number, message: string, extra: Record<string, unknown> = {}) =>
    json(res, status, { error: { message, type: "OAuthException", code, ...extra, fbtrace_id: `Afake${++counter}` } });
  const invalidParameter = (res: ServerResponse, message: string) => graphError(res, 400, 100, `(#100) ${message}`);

  const authorized = (req: IncomingMessage) => req.headers.authorization === `Bearer ${token}`;

  const stream = (res: ServerResponse, path: string, file: { bytes?: Uint8Array; withLength: boolean; endless: boolean }, mime: string) => {
    const bytes = file.bytes ?? new Uint8Array();
    res.writeHead(200, { "content-type": mime, ...(file.withLength && !file.endless ? { "content-length": String(bytes.byteLength) } : {}) });
    if (!file.endless) {
      served.set(path, (served.get(path) ?? 0) + bytes.byteLength);
      res.end(bytes);
      return;
    }
    const pump = () => {
      while (!res.destroyed) {
        served.set(path, (served.get(path) ?? 0) + CHUNK.byteLength);
        if (!res.write(CHUNK)) return void res.once("drain", pump);
      }
    };
    res.on("close", () => res.destroy());
    pump();
  };

  const route = (req: IncomingMessage, res: ServerResponse, record: GraphRequest) => {
    const { method, path } = record;
    const body = record.body as Record<string, unknown> | undefined;

    const download = /^\/media\/([\w.-]+)$/.exec(path);
    if (method === "GET" && download) {
      const item = media.get(download[1]!);
      if (!authorized(req)) return void res.writeHead(401).end("unauthorized");
      if (!item) return void res.writeHead(404).end("not found");
      return stream(res, path, { ...(item.bytes ? { bytes: item.bytes } : {}), withLength: item.withLength ?? true, endless: item.endless ?? false }, item.mimeType);
    }
    const cdnFile = /^\/cdn\/([\w.-]+)$/.exec(path);
    if (method === "GET" && cdnFile) {
      const item = cdn.get(cdnFile[1]!);
      if (!item) return void res.writeHead(404).end("not found");
      return stream(res, path, item, "application/octet-stream");
    }

    const prefix = `/${GRAPH_VERSION}/`;
    if (!path.startsWith(prefix)) return graphError(res, 400, 2500, "Unknown path components");
    const rest = path.slice(prefix.length);
    if (record.query.access_token !== undefined) {
      // Real Graph accepts it; the adapters must never put the token in a URL, so the fake refuses it loudly.
      return invalidParameter(res, "access_token in the URL: use the Authorization header");
    }
    if (!authorized(req)) return graphError(res, 401, 190, "Invalid OAuth access token - Cannot parse access token");

    if (method === "POST" && rest === "me/messages") return messenger(res, body);
    const wa = /^(\d+)\/messages$/.exec(rest);
    if (method === "POST" && wa) {
      if (wa[1] !== phoneNumberId) return invalidParameter(res, `Unsupported post request. Object with ID '${wa[1]}' does not exist`);
      return whatsapp(res, body);
    }
    const mediaId = /^([\w.-]+)$/.exec(rest);
    if (method === "GET" && mediaId) {
      const item = media.get(mediaId[1]!);
      if (!item) return invalidParameter(res, `Unsupported get request. Object with ID '${mediaId[1]}' does not exist`);
      return json(res, 200, {
        messaging_product: "whatsapp",
        url: `${base}/media/${item.id}`,
        mime_type: item.mimeType,
        sha256: "fakesha256",
        file_size: String(item.declaredSize ?? item.bytes?.byteLength ?? 0),
        id: item.id,
      });
    }
    return invalidParameter(res, `Unsupported ${method.toLowerCase()} request`);
  };

  const whatsapp = (res: ServerResponse, body: Record<string, unknown> | undefined) => {
    if (body?.messaging_product !== "whatsapp") return invalidParameter(res, "The parameter messaging_product is required.");
    if (body.status === "read") {
      if (typeof body.message_id !== "string") return invalidParameter(res, "The parameter message_id is required.");
      return json(res, 200, { success: true });
    }
    const text = body.text as { body?: unknown } | undefined;
    if (typeof body.to !== "string" || body.type !== "text" || typeof text?.body !== "string") {
      return invalidParameter(res, "Invalid parameter");
    }
    if (text.body.length === 0 || text.body.length > 4096) return invalidParameter(res, "Param text['body'] must be at most 4096 characters long.");
    return json(res, 200, {
      messaging_product: "whatsapp",
      contacts: [{ input: body.to, wa_id: body.to }],
      messages: [{ id: `wamid.FAKE${++counter}` }],
    });
  };

  const messenger = (res: ServerResponse, body: Record<string, unknown> | undefined) => {
    const recipient = (body?.recipient as { id?: unknown } | undefined)?.id;
    if (typeof recipient !== "string") return invalidParameter(res, "param recipient must be non-empty.");
    if (body?.sender_action !== undefined) {
      if (!["typing_on", "typing_off", "mark_seen"].includes(String(body.sender_action))) return invalidParameter(res, "Invalid sender_action");
      return json(res, 200, { recipient_id: recipient });
    }
    const text = (body?.message as { text?: unknown } | undefined)?.text;
    if (typeof text !== "string" || text.length === 0) return invalidParameter(res, "param message must be non-empty.");
    if (text.length > 2000) return invalidParameter(res, "Length of param message[text] must be less than or equal to 2000");
    if (typeof body?.messaging_type !== "string") return invalidParameter(res, "param messaging_type is required.");
    return json(res, 200, { recipient_id: recipient, message_id: `m_FAKE${++counter}` });
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://localhost");
      const raw = Buffer.concat(chunks).toString("utf8");
      let body: unknown;
      try {
        body = raw === "" ? undefined : JSON.parse(raw);
      } catch {
        body = undefined;
      }
      const record: GraphRequest = {
        method: req.method ?? "GET",
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: req.headers,
        body,
        at: Date.now(),
      };
      requests.push(record);
      const script = scripts.find((s) => s.match.test(`${record.method} ${record.path}`));
      if (script) {
        if (--script.times <= 0) scripts.splice(scripts.indexOf(script), 1);
        const { failure } = script;
        const answer = () => {
          if (res.destroyed) return;
          if (failure.error) {
            json(res, failure.status, { error: { type: "OAuthException", ...failure.error, fbtrace_id: `Afake${++counter}` } }, failure.headers);
          } else {
            res.writeHead(failure.status, failure.headers ?? {}).end();
          }
        };
        if (failure.delayMs) setTimeout(answer, failure.delayMs);
        else answer();
        return;
      }
      route(req, res, record);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: base,
    root: `${base}/${GRAPH_VERSION}`,
    token,
    phoneNumberId,
    requests,
    failNext(match, failure, times = 1) {
      scripts.push({ match, failure, times });
    },
    addMedia(item) {
      media.set(item.id, item);
    },
    addCdnFile(name, bytes, opts = {}) {
      cdn.set(name, { bytes, withLength: opts.withLength ?? true, endless: opts.endless ?? false });
      return `${base}/cdn/${name}`;
    },
    bytesServed: (path) => served.get(path) ?? 0,
    calls(kind) {
      const test = {
        whatsapp: (r: GraphRequest) => /^\/v[\d.]+\/\d+\/messages$/.test(r.path),
        messenger: (r: GraphRequest) => /^\/v[\d.]+\/me\/messages$/.test(r.path),
        media: (r: GraphRequest) => r.method === "GET" && /^\/v[\d.]+\/[\w.-]+$/.test(r.path),
        download: (r: GraphRequest) => /^\/(media|cdn)\//.test(r.path),
      }[kind];
      return requests.filter(test);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Webhooks as Meta sends them.

/** `X-Hub-Signature-256` for a body: sha256=<hex HMAC-SHA256(app secret, the exact bytes)>. */
export function hubSignature(body: string | Uint8Array, appSecret: string): string {
  return `sha256=${createHmac("sha256", appSecret).update(body).digest("hex")}`;
}

export const whatsappWebhook = {
  text: (from: string, id: string, body: string, timestamp = "1750000000") => ({ from, id, timestamp, type: "text", text: { body } }),
  image: (from: string, id: string, mediaId: string, caption?: string) => ({
    from, id, timestamp: "1750000000", type: "image",
    image: { id: mediaId, mime_type: "image/jpeg", sha256: "abc=", ...(caption === undefined ? {} : { caption }) },
  }),
  audio: (from: string, id: string, mediaId: string) => ({
    from, id, timestamp: "1750000000", type: "audio", audio: { id: mediaId, mime_type: "audio/ogg; codecs=opus", sha256: "def=", voice: true },
  }),
  status: (id: string, recipient: string, status = "delivered") => ({
    id, status, timestamp: "1750000001", recipient_id: recipient,
  }),
  /** One `messages` change; contacts are derived from the senders unless given. */
  change(phoneNumberId: string, items: { messages?: Array<Record<string, unknown>>; statuses?: unknown[]; names?: Record<string, string> }) {
    const senders = [...new Set((items.messages ?? []).map((m) => String(m.from)))];
    return {
      field: "messages",
      value: {
        messaging_product: "whatsapp",
        metadata: { display_phone_number: "15550001111", phone_number_id: phoneNumberId },
        ...(senders.length > 0 ? { contacts: senders.map((wa_id) => ({ profile: { name: items.names?.[wa_id] ?? `User ${wa_id}` }, wa_id })) } : {}),
        ...(items.messages ? { messages: items.messages } : {}),
        ...(items.statuses ? { statuses: items.statuses } : {}),
      },
    };
  },
  /** The whole payload: one entry per array of changes. */
  payload: (...entries: unknown[][]) => ({
    object: "whatsapp_business_account",
    entry: entries.map((changes, i) => ({ id: `10000000000000${i}`, changes })),
  }),
};

export const messengerWebhook = {
  text: (psid: string, mid: string, text: string, timestamp = 1750000000000) => ({
    sender: { id: psid }, recipient: { id: "PAGE" }, timestamp, message: { mid, text },
  }),
  attachment: (psid: string, mid: string, type: string, url: string) => ({
    sender: { id: psid }, recipient: { id: "PAGE" }, timestamp: 1750000000000, message: { mid, attachments: [{ type, payload: { url } }] },
  }),
  echo: (psid: string, mid: string, text: string) => ({
    sender: { id: "PAGE" }, recipient: { id: psid }, timestamp: 1750000000000, message: { mid, text, is_echo: true, app_id: 1 },
  }),
  delivery: (psid: string) => ({ sender: { id: psid }, recipient: { id: "PAGE" }, delivery: { mids: ["m_1"], watermark: 1750000000000 } }),
  read: (psid: string) => ({ sender: { id: psid }, recipient: { id: "PAGE" }, timestamp: 1750000000000, read: { watermark: 1750000000000 } }),
  postback: (psid: string) => ({
    sender: { id: psid }, recipient: { id: "PAGE" }, timestamp: 1750000000000, postback: { title: "Get Started", payload: "GET_STARTED", mid: "m_pb" },
  }),
  /** The whole payload: one entry per array of messaging items. */
  payload: (...entries: unknown[][]) => ({
    object: "page",
    entry: entries.map((messaging, i) => ({ id: `PAGE${i}`, time: 1750000000000, messaging })),
  }),
};
