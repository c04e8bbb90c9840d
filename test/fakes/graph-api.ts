/**
 * A fake Meta Graph API: a real HTTP server on 127.0.0.1 that answers the calls Parley's WhatsApp Cloud and Messenger
 * adapters make, in Graph's own shapes, so the production code path runs against it (`graphApiRoot: fake.root`).
 *
 * - `POST /{version}/{phone-number-id}/messages`: WhatsApp text and document sends and read+typing indicators;
 * - `POST /{version}/{phone-number-id}/media`: a WhatsApp media upload (multipart: messaging_product, type, file),
 *   answered `{ id }`; the id can then be sent as a document and looked up like received media;
 * - `POST /{version}/me/messages`: Messenger sends and sender actions, as JSON, or as multipart with the attachment
 *   in `filedata` (the fields `recipient` and `message` are JSON texts, as Graph reads them);
 * - `GET /{version}/{media-id}`: WhatsApp media metadata, whose `url` points at `GET /media/{id}` on this server,
 *   which like lookaside.fbsbx.com wants the same Bearer token;
 * - `GET /cdn/{name}`: a Messenger attachment URL (no token, like Meta's CDN).
 *
 * Every request is recorded, multipart bodies parsed (fields in `body`, file parts in `files`); failures are
 * scripted per route in Graph's error shape. The fake is stricter than Graph in one place: a document whose media
 * id was never uploaded is refused at once (Graph accepts it and reports the failure later in a status webhook).
 * Also here, since Meta is the one that signs them: builders for webhook payloads and their `X-Hub-Signature-256`.
 */
import { createHmac, randomBytes } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export const GRAPH_VERSION = "v23.0";

/** One file part of a multipart body, as Graph would store it. */
export interface FakeFilePart {
  /** The part's filename. */
  name: string;
  /** The part's Content-Type. */
  type: string;
  bytes: Uint8Array;
}

export interface GraphRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body, or a multipart body's text fields (those holding JSON parsed), when there was one. */
  body: unknown;
  /** A multipart body's file parts by field name; empty otherwise. */
  files: Record<string, FakeFilePart>;
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
  /** What the metadata says `file_size` is; default the real length; null leaves it out. */
  declaredSize?: number | null;
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
  /** The next `times` requests whose "METHOD path" matches (or for which the function is true) fail like this. */
  failNext(match: RegExp | ((request: GraphRequest) => boolean), failure: GraphFailureScript, times?: number): void;
  addMedia(media: FakeMedia): void;
  /** A file on the fake CDN; returns its URL. */
  addCdnFile(name: string, bytes: Uint8Array, opts?: { withLength?: boolean; endless?: boolean }): string;
  /** Bytes written for each download path so far (to see that an endless stream was cut). */
  bytesServed(path: string): number;
  /** Files uploaded to `/{phone-number-id}/media`, by the media id they were given. */
  uploads: Map<string, FakeFilePart>;
  /**
   * Requests to one route: "whatsapp" (/{id}/messages), "messenger" (/me/messages), "media" (GET /{media-id}),
   * "upload" (POST /{id}/media) or "download".
   */
  calls(route: "whatsapp" | "messenger" | "media" | "upload" | "download"): GraphRequest[];
  close(): Promise<void>;
}

const CHUNK = new Uint8Array(64 * 1024);
/** What WhatsApp's media endpoint takes for a document (and the image types), per its Supported Media Types table. */
const WHATSAPP_UPLOAD_TYPES = new Set([
  "text/plain", "application/pdf", "application/vnd.ms-powerpoint", "application/msword", "application/vnd.ms-excel",
  "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  "application/vnd.openxmlformats-officedocument.presentationml.presentation",
  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
  "image/jpeg", "image/png",
]);
const WHATSAPP_DOCUMENT_MAX_BYTES = 100 * 1024 * 1024;
const WHATSAPP_CAPTION_MAX = 1024;
const MESSENGER_ATTACHMENT_MAX_BYTES = 25 * 1024 * 1024;

export async function startFakeGraph(options: { token?: string; phoneNumberId?: string } = {}): Promise<FakeGraph> {
  const token = options.token ?? `EAAG${randomBytes(24).toString("hex")}`;
  const phoneNumberId = options.phoneNumberId ?? "106540352242922";
  const requests: GraphRequest[] = [];
  const scripts: Array<{ match: (request: GraphRequest) => boolean; failure: GraphFailureScript; times: number }> = [];
  const media = new Map<string, FakeMedia>();
  const uploads = new Map<string, FakeFilePart>();
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

    if (method === "POST" && rest === "me/messages") return messenger(res, body, record.files);
    const wa = /^(\d+)\/(messages|media)$/.exec(rest);
    if (method === "POST" && wa) {
      if (wa[1] !== phoneNumberId) return invalidParameter(res, `Unsupported post request. Object with ID '${wa[1]}' does not exist`);
      return wa[2] === "media" ? whatsappUpload(res, body, record.files) : whatsapp(res, body);
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
        ...(item.declaredSize === null ? {} : { file_size: String(item.declaredSize ?? item.bytes?.byteLength ?? 0) }),
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
    if (typeof body.to !== "string") return invalidParameter(res, "The parameter to is required.");
    if (body.type === "document") {
      const document = body.document as { id?: unknown; link?: unknown; caption?: unknown; filename?: unknown } | undefined;
      if (typeof document?.id !== "string" && typeof document?.link !== "string") return invalidParameter(res, "Param document must contain id or link.");
      if (typeof document.id === "string" && !uploads.has(document.id)) return invalidParameter(res, `Invalid media id ${document.id}`);
      if (document.caption !== undefined && (typeof document.caption !== "string" || document.caption.length > WHATSAPP_CAPTION_MAX)) {
        return invalidParameter(res, `Param document['caption'] must be at most ${WHATSAPP_CAPTION_MAX} characters long.`);
      }
      if (document.filename !== undefined && typeof document.filename !== "string") return invalidParameter(res, "Param document['filename'] must be a string.");
      return sent(res, body.to);
    }
    const text = body.text as { body?: unknown } | undefined;
    if (body.type !== "text" || typeof text?.body !== "string") return invalidParameter(res, "Invalid parameter");
    if (text.body.length === 0 || text.body.length > 4096) return invalidParameter(res, "Param text['body'] must be at most 4096 characters long.");
    return sent(res, body.to);
  };
  const sent = (res: ServerResponse, to: string) =>
    json(res, 200, { messaging_product: "whatsapp", contacts: [{ input: to, wa_id: to }], messages: [{ id: `wamid.FAKE${++counter}` }] });

  /** POST /{phone-number-id}/media: Graph wants all three parts, and a type it can deliver. */
  const whatsappUpload = (res: ServerResponse, body: Record<string, unknown> | undefined, files: Record<string, FakeFilePart>) => {
    if (body?.messaging_product !== "whatsapp") return invalidParameter(res, "The parameter messaging_product is required.");
    const file = files.file;
    if (!file) return invalidParameter(res, "The parameter file is required.");
    if (typeof body.type !== "string") return invalidParameter(res, "The parameter type is required.");
    if (!WHATSAPP_UPLOAD_TYPES.has(body.type) || file.bytes.byteLength === 0 || file.bytes.byteLength > WHATSAPP_DOCUMENT_MAX_BYTES) {
      return json(res, 400, {
        error: {
          message: "(#131053) Media upload error",
          type: "OAuthException",
          code: 131053,
          error_data: { messaging_product: "whatsapp", details: `Unsupported file type or size: ${body.type}, ${file.bytes.byteLength} bytes` },
          fbtrace_id: `Afake${++counter}`,
        },
      });
    }
    const id = String(900000000000000 + ++counter);
    uploads.set(id, file);
    media.set(id, { id, mimeType: body.type, bytes: file.bytes });
    return json(res, 200, { id });
  };

  const messenger = (res: ServerResponse, body: Record<string, unknown> | undefined, files: Record<string, FakeFilePart>) => {
    const recipient = (body?.recipient as { id?: unknown } | undefined)?.id;
    if (typeof recipient !== "string") return invalidParameter(res, "param recipient must be non-empty.");
    if (body?.sender_action !== undefined) {
      if (!["typing_on", "typing_off", "mark_seen"].includes(String(body.sender_action))) return invalidParameter(res, "Invalid sender_action");
      return json(res, 200, { recipient_id: recipient });
    }
    const attachment = (body?.message as { attachment?: { type?: unknown; payload?: Record<string, unknown> } } | undefined)?.attachment;
    if (attachment !== undefined) return messengerAttachment(res, body!, recipient, attachment, files.filedata);
    const text = (body?.message as { text?: unknown } | undefined)?.text;
    if (typeof text !== "string" || text.length === 0) return invalidParameter(res, "param message must be non-empty.");
    if (text.length > 2000) return invalidParameter(res, "Length of param message[text] must be less than or equal to 2000");
    if (typeof body?.messaging_type !== "string") return invalidParameter(res, "param messaging_type is required.");
    return json(res, 200, { recipient_id: recipient, message_id: `m_FAKE${++counter}` });
  };

  /** A Send API attachment: uploaded in `filedata`, or named by url / attachment_id (not uploaded then). */
  const messengerAttachment = (
    res: ServerResponse,
    body: Record<string, unknown>,
    recipient: string,
    attachment: { type?: unknown; payload?: Record<string, unknown> },
    file: FakeFilePart | undefined,
  ) => {
    if (!["image", "audio", "video", "file"].includes(String(attachment.type))) return invalidParameter(res, "param message[attachment][type] must be one of {image, audio, video, file, template}");
    if (typeof body.messaging_type !== "string") return invalidParameter(res, "param messaging_type is required.");
    const payload = attachment.payload ?? {};
    if (file === undefined && typeof payload.url !== "string" && typeof payload.attachment_id !== "string") {
      return invalidParameter(res, "Upload attachment failure: no filedata, url or attachment_id.");
    }
    if (file !== undefined && (file.bytes.byteLength === 0 || file.bytes.byteLength > MESSENGER_ATTACHMENT_MAX_BYTES)) {
      return invalidParameter(res, "Upload attachment failure.");
    }
    return json(res, 200, {
      recipient_id: recipient,
      message_id: `m_FAKE${++counter}`,
      ...(payload.is_reusable === true ? { attachment_id: String(++counter) } : {}),
    });
  };

  /** The body as Graph reads it: JSON, or multipart whose text fields may hold JSON and whose files are kept apart. */
  const parseBody = async (raw: Buffer, contentType: string): Promise<{ body: unknown; files: Record<string, FakeFilePart> }> => {
    if (!/^multipart\/form-data/i.test(contentType)) {
      try {
        return { body: raw.length === 0 ? undefined : JSON.parse(raw.toString("utf8")), files: {} };
      } catch {
        return { body: undefined, files: {} };
      }
    }
    const form = await new Request("http://fake.invalid/", { method: "POST", headers: { "content-type": contentType }, body: new Uint8Array(raw) }).formData();
    const fields: Record<string, unknown> = {};
    const files: Record<string, FakeFilePart> = {};
    const entries: Array<[string, FormDataEntryValue]> = [];
    form.forEach((value, name) => entries.push([name, value]));
    for (const [name, value] of entries) {
      if (typeof value === "string") {
        try {
          fields[name] = /^\s*[[{]/.test(value) ? JSON.parse(value) : value;
        } catch {
          fields[name] = value;
        }
      } else {
        files[name] = { name: value.name, type: value.type, bytes: new Uint8Array(await value.arrayBuffer()) };
      }
    }
    return { body: fields, files };
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", async () => {
      const url = new URL(req.url ?? "/", "http://localhost");
      let parsed: { body: unknown; files: Record<string, FakeFilePart> };
      try {
        parsed = await parseBody(Buffer.concat(chunks), req.headers["content-type"] ?? "");
      } catch {
        return invalidParameter(res, "The request body could not be parsed.");
      }
      const record: GraphRequest = {
        method: req.method ?? "GET",
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: req.headers,
        body: parsed.body,
        files: parsed.files,
        at: Date.now(),
      };
      requests.push(record);
      const script = scripts.find((s) => s.match(record));
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
    uploads,
    failNext(match, failure, times = 1) {
      scripts.push({ match: match instanceof RegExp ? (r) => match.test(`${r.method} ${r.path}`) : match, failure, times });
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
        upload: (r: GraphRequest) => r.method === "POST" && /^\/v[\d.]+\/\d+\/media$/.test(r.path),
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

/** POSTs a webhook payload to `url` as Meta does: JSON, signed with the app secret. */
export function deliverWebhook(url: string, payload: unknown, appSecret: string): Promise<Response> {
  const body = JSON.stringify(payload);
  return fetch(url, { method: "POST", headers: { "content-type": "application/json", "x-hub-signature-256": hubSignature(body, appSecret) }, body });
}

/** Events are built as Meta sends them, stamped with the time they are made (older ones are outside the reply window). */
const nowSeconds = () => String(Math.floor(Date.now() / 1000));

export const whatsappWebhook = {
  text: (from: string, id: string, body: string, timestamp = nowSeconds()) => ({ from, id, timestamp, type: "text", text: { body } }),
  image: (from: string, id: string, mediaId: string, caption?: string, timestamp = nowSeconds()) => ({
    from, id, timestamp, type: "image",
    image: { id: mediaId, mime_type: "image/jpeg", sha256: "abc=", ...(caption === undefined ? {} : { caption }) },
  }),
  audio: (from: string, id: string, mediaId: string, timestamp = nowSeconds()) => ({
    from, id, timestamp, type: "audio", audio: { id: mediaId, mime_type: "audio/ogg; codecs=opus", sha256: "def=", voice: true },
  }),
  /** A message as the user forwarded it: `context.forwarded`, or `frequently_forwarded` after many forwards. */
  forwarded: (message: Record<string, unknown>, frequently = false) => ({
    ...message,
    context: frequently ? { frequently_forwarded: true } : { forwarded: true },
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
  text: (psid: string, mid: string, text: string, timestamp = Date.now()) => ({
    sender: { id: psid }, recipient: { id: "PAGE" }, timestamp, message: { mid, text },
  }),
  attachment: (psid: string, mid: string, type: string, url: string, opts: { text?: string; timestamp?: number } = {}) => ({
    sender: { id: psid }, recipient: { id: "PAGE" }, timestamp: opts.timestamp ?? Date.now(),
    message: { mid, ...(opts.text === undefined ? {} : { text: opts.text }), attachments: [{ type, payload: { url } }] },
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
