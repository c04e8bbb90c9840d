/**
 * A fake Telegram Bot API: a real HTTP server on 127.0.0.1 that speaks the Bot API protocol closely enough for the
 * real grammY client (`client: { apiRoot: fake.url }`). Tests drive it through plain methods: push updates, script
 * errors, inspect what the bot sent. Long polling is real: getUpdates holds the request open, and an update is
 * confirmed (dropped) only when a later getUpdates passes an offset above its update_id, as Telegram does.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Document, File, Message, Update, UserFromGetMe } from "grammy/types";

// ---------------------------------------------------------------------------------------------------------------
// Telegram's HTML parse mode, validated the way the Bot API does (tdlib's rules, a little stricter about `&`).

const ALLOWED_TAGS = new Set([
  "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code", "pre",
  "blockquote", "tg-emoji",
]);
const NAMED_ENTITIES: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"' };

export type HtmlParse = { ok: true; text: string } | { ok: false; description: string };

/** Parses Telegram HTML: returns the visible text, or the 400 description Telegram would answer with. */
export function parseTelegramHtml(html: string): HtmlParse {
  const fail = (reason: string): HtmlParse => ({ ok: false, description: `Bad Request: can't parse entities: ${reason}` });
  const at = (pos: number) => Buffer.byteLength(html.slice(0, pos), "utf8");
  const stack: string[] = [];
  let text = "";
  let i = 0;
  const entityAt = (pos: number): { value: string; length: number } | undefined => {
    const m = /^&(#x[0-9a-f]{1,6}|#[0-9]{1,7}|[a-z]{2,8});/i.exec(html.slice(pos, pos + 12));
    if (!m) return undefined;
    const name = m[1]!;
    if (name.startsWith("#")) {
      const code = name[1] === "x" || name[1] === "X" ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? { value: String.fromCodePoint(code), length: m[0].length } : undefined;
    }
    const value = NAMED_ENTITIES[name];
    return value === undefined ? undefined : { value, length: m[0].length };
  };
  while (i < html.length) {
    const c = html[i]!;
    if (c === "&") {
      const entity = entityAt(i);
      if (!entity) return fail(`Unsupported HTML entity at byte offset ${at(i)}`);
      text += entity.value;
      i += entity.length;
    } else if (c === "<" && html[i + 1] === "/") {
      const m = /^<\/([a-z][a-z0-9-]*)\s*>/i.exec(html.slice(i));
      if (!m) return fail(`Unclosed end tag at byte offset ${at(i)}`);
      const name = m[1]!.toLowerCase();
      const open = stack.pop();
      if (open === undefined) return fail(`Unexpected end tag at byte offset ${at(i)}`);
      if (open !== name) return fail(`Unmatched end tag at byte offset ${at(i)}, expected "</${open}>", found "</${name}>"`);
      i += m[0].length;
    } else if (c === "<") {
      const start = i;
      const name = (/^<([a-z][a-z0-9-]*)/i.exec(html.slice(i))?.[1] ?? "").toLowerCase();
      if (!ALLOWED_TAGS.has(name)) return fail(`Unsupported start tag "${name}" at byte offset ${at(i)}`);
      i += 1 + name.length;
      const attributes = new Map<string, string>();
      for (;;) {
        while (/\s/.test(html[i] ?? "")) i++;
        if (i >= html.length) return fail(`Unclosed start tag at byte offset ${at(start)}`);
        if (html[i] === ">") break;
        const attr = /^[a-z0-9_-]+/i.exec(html.slice(i))?.[0];
        if (!attr) return fail(`Empty attribute name in the tag "${name}" at byte offset ${at(i)}`);
        i += attr.length;
        let value = "";
        if (html[i] === "=") {
          i++;
          const quote = html[i];
          const end = quote === '"' || quote === "'" ? html.indexOf(quote, i + 1) : html.slice(i).search(/[\s>]/) + i;
          if (end < i) return fail(`Unclosed start tag at byte offset ${at(start)}`);
          const raw = quote === '"' || quote === "'" ? html.slice(i + 1, end) : html.slice(i, end);
          value = raw.replace(/&(lt|gt|amp|quot);/g, (_, e: string) => NAMED_ENTITIES[e]!);
          i = quote === '"' || quote === "'" ? end + 1 : end;
        }
        attributes.set(attr.toLowerCase(), value);
      }
      i++; // ">"
      const problem = tagProblem(name, attributes, stack);
      if (problem) return fail(`${problem} at byte offset ${at(start)}`);
      stack.push(name);
    } else {
      text += c;
      i++;
    }
  }
  const unclosed = stack.pop();
  if (unclosed !== undefined) return fail(`Can't find end tag corresponding to start tag "${unclosed}"`);
  return { ok: true, text };
}

function tagProblem(name: string, attributes: Map<string, string>, stack: readonly string[]): string | undefined {
  const top = stack[stack.length - 1];
  if (stack.includes("code") || (stack.includes("pre") && !(name === "code" && top === "pre"))) {
    return `Tag "${name}" can't be nested in a code entity`;
  }
  if (name === "blockquote" && stack.includes("blockquote")) return `Tag "blockquote" can't be nested`;
  if (name === "a" && stack.includes("a")) return `Tag "a" can't be nested`;
  if (name === "a" && !attributes.get("href")) return `Tag "a" must have attribute "href"`;
  if (name === "span" && attributes.get("class") !== "tg-spoiler") return `Tag "span" must have class "tg-spoiler"`;
  if (name === "tg-emoji" && !/^\d+$/.test(attributes.get("emoji-id") ?? "")) return `Tag "tg-emoji" needs an emoji-id`;
  if (name === "code" && attributes.has("class") && !/^language-[\w+#.-]+$/.test(attributes.get("class")!)) {
    return `Unsupported class of tag "code"`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Builders for incoming updates (update_id 0: pushUpdate assigns the real one).

export interface SenderOptions {
  userId?: number;
  firstName?: string;
  lastName?: string;
  username?: string;
  chatId?: number;
  isBot?: boolean;
}

export interface FileSpec {
  file_id: string;
  file_unique_id: string;
  file_size?: number;
}

export type UpdateBuilder = ReturnType<typeof createUpdateBuilder>;

export function createUpdateBuilder(bot: UserFromGetMe) {
  let messageId = 0;
  const sender = (o: SenderOptions) => ({
    id: o.userId ?? 4242,
    is_bot: o.isBot ?? false,
    first_name: o.firstName ?? "Ada",
    ...(o.lastName === undefined ? {} : { last_name: o.lastName }),
    username: o.username ?? "ada",
  });
  const privateChat = (o: SenderOptions) => ({ id: o.chatId ?? o.userId ?? 4242, type: "private", first_name: o.firstName ?? "Ada" });
  const groupChat = (o: SenderOptions) => ({ id: o.chatId ?? -1001234, type: "supergroup", title: "Test group" });
  const message = (chat: object, o: SenderOptions, fields: object): Update =>
    ({ update_id: 0, message: { message_id: ++messageId, date: 1_700_000_000 + messageId, chat, from: sender(o), ...fields } }) as Update;
  const mention = `@${bot.username}`;
  return {
    privateText: (text: string, o: SenderOptions = {}) => message(privateChat(o), o, { text }),
    groupText: (text: string, o: SenderOptions = {}) => message(groupChat(o), o, { text }),
    /** A group message that starts with "@botname ". */
    groupMention: (text: string, o: SenderOptions = {}) =>
      message(groupChat(o), o, {
        text: `${mention} ${text}`,
        entities: [{ type: "mention", offset: 0, length: mention.length }],
      }),
    /** A group message that replies to an earlier message of the bot. */
    replyToBot: (text: string, o: SenderOptions = {}) =>
      message(groupChat(o), o, {
        text,
        reply_to_message: { message_id: 1, date: 1_700_000_000, chat: groupChat(o), from: { ...bot }, text: "earlier answer" },
      }),
    photo: (file: FileSpec, caption?: string, o: SenderOptions = {}) =>
      message(privateChat(o), o, {
        photo: [
          { file_id: `${file.file_id}-thumb`, file_unique_id: `${file.file_unique_id}-t`, width: 90, height: 60, file_size: 900 },
          { ...file, width: 1280, height: 853 },
        ],
        ...(caption === undefined ? {} : { caption }),
      }),
    document: (file: FileSpec & { mime_type?: string; file_name?: string }, caption?: string, o: SenderOptions = {}) =>
      message(privateChat(o), o, { document: file, ...(caption === undefined ? {} : { caption }) }),
    voice: (file: FileSpec, o: SenderOptions = {}) =>
      message(privateChat(o), o, { voice: { ...file, duration: 3, mime_type: "audio/ogg" } }),
    /** Any message: chat and sender are filled in unless given. */
    raw: (fields: Partial<Message> & object, o: SenderOptions = {}) => message(privateChat(o), o, fields),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The server.

export interface ScriptedError {
  error_code: number;
  description: string;
  retry_after?: number;
}
export interface SentCall {
  method: string;
  params: Record<string, unknown>;
  at: number;
  /** The error code answered, or undefined when the call succeeded. */
  errorCode?: number;
}
/** A file uploaded with multipart/form-data, as it arrived: the part's file name and content type, and its bytes. */
export interface UploadedFile {
  name: string;
  type: string;
  bytes: Uint8Array;
}
export interface RegisteredFile extends FileSpec {
  file_path: string;
}
export interface FakeTelegramOptions {
  token?: string;
  bot?: Partial<UserFromGetMe>;
  /** Called with each call recorded in `sent`, once it is answered (benchmarks watch replies arrive with it). */
  onCall?: (call: SentCall) => void;
}
type Answer = { status: number; body: Record<string, unknown> };
type Params = Record<string, unknown>;

const ok = (result: unknown): Answer => ({ status: 200, body: { ok: true, result } });
const err = (error_code: number, description: string, retry_after?: number): Answer => ({
  status: error_code,
  body: { ok: false, error_code, description, ...(retry_after === undefined ? {} : { parameters: { retry_after } }) },
});
const TWENTY_MB = 20 * 1024 * 1024;
const FIFTY_MB = 50 * 1024 * 1024;
/** The Bot API takes a document's type from its name when the upload says only application/octet-stream. */
const TYPES_BY_EXTENSION: Record<string, string> = {
  json: "application/json", txt: "text/plain", csv: "text/csv", pdf: "application/pdf",
  zip: "application/zip", png: "image/png", jpg: "image/jpeg",
};
const isUpload = (value: unknown): value is UploadedFile =>
  typeof value === "object" && value !== null && (value as UploadedFile).bytes instanceof Uint8Array;

export type FakeTelegram = Awaited<ReturnType<typeof startFakeTelegram>>;

export async function startFakeTelegram(options: FakeTelegramOptions = {}) {
  const token = options.token ?? "123456789:AAFakeTokenForTestsOnly_abcdefghijklm";
  const bot: UserFromGetMe = {
    id: 123456789, is_bot: true, first_name: "Parley", username: "ParleyTestBot", can_join_groups: true,
    can_read_all_group_messages: false, supports_inline_queries: false, can_connect_to_business: false,
    has_main_web_app: false, ...options.bot,
  } as UserFromGetMe;
  const updates = createUpdateBuilder(bot);
  let queue: Update[] = [];
  let nextUpdateId = 1000;
  let confirmedOffset = 0;
  let allowedUpdates: string[] = [];
  let poll: { wake(): void; terminate(): void } | undefined;
  let webhook: { url: string; secret_token?: string } | undefined;
  const sent: SentCall[] = [];
  const downloads: string[] = [];
  const scripted = new Map<string, ScriptedError[]>();
  /** Calls whose connection is cut instead of answered (a network error), per method, count. */
  const drops = new Map<string, number>();
  const files = new Map<string, { spec: RegisteredFile; bytes: Uint8Array; chunked: boolean; name?: string; mimeType?: string }>();
  const messages = new Map<string, { text: string }>();
  const documents = new Map<string, Document>();
  const messageIds = new Map<number, number>();

  const updateType = (u: Update) => Object.keys(u).find((k) => k !== "update_id") ?? "";
  const available = (limit: number) =>
    queue.filter((u) => allowedUpdates.length === 0 || allowedUpdates.includes(updateType(u))).slice(0, limit);

  async function getUpdates(p: Params, signal: AbortSignal): Promise<Answer> {
    if (webhook) {
      return err(409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first");
    }
    const offset = Number(p.offset ?? 0);
    if (offset > 0) {
      queue = queue.filter((u) => u.update_id >= offset);
      confirmedOffset = Math.max(confirmedOffset, offset);
    }
    if (Array.isArray(p.allowed_updates)) allowedUpdates = p.allowed_updates as string[];
    const limit = Math.min(100, Math.max(1, Number(p.limit ?? 100)));
    poll?.terminate();
    let terminated = false;
    if (available(limit).length === 0 && Number(p.timeout ?? 0) > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Number(p.timeout) * 1000);
        const current = { wake: done, terminate: () => ((terminated = true), done()) };
        function done() {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          if (poll === current) poll = undefined;
          resolve();
        }
        poll = current;
        signal.addEventListener("abort", done);
      });
    }
    if (terminated) return err(409, "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running");
    return ok(available(limit));
  }

  function checkText(p: Params, allowEmpty = false): Answer | { text: string } {
    const raw = typeof p.text === "string" ? p.text : "";
    let text = raw;
    if (p.parse_mode === "HTML") {
      const parsed = parseTelegramHtml(raw);
      if (!parsed.ok) return err(400, parsed.description);
      text = parsed.text;
    } else if (p.parse_mode !== undefined && p.parse_mode !== "MarkdownV2" && p.parse_mode !== "Markdown") {
      return err(400, "Bad Request: unsupported parse_mode");
    }
    if (text.trim() === "" && !allowEmpty) return err(400, "Bad Request: message text is empty");
    if (text.length > 4096) return err(400, "Bad Request: message is too long");
    return { text };
  }

  /** A sent message of the bot, numbered per chat as Telegram does. */
  function newMessage(chatId: number, p: Params, fields: Record<string, unknown>) {
    const messageId = (messageIds.get(chatId) ?? 100_000) + 1;
    messageIds.set(chatId, messageId);
    const thread = p.message_thread_id === undefined ? {} : { message_thread_id: Number(p.message_thread_id), is_topic_message: true };
    return { message_id: messageId, date: Math.floor(Date.now() / 1000), chat: chatOf(chatId), from: bot, ...fields, ...thread };
  }

  function chatOf(chatId: number) {
    return chatId > 0 ? { id: chatId, type: "private", first_name: "Ada" } : { id: chatId, type: "supergroup", title: "Test group" };
  }

  const methods: Record<string, (p: Params, signal: AbortSignal) => Answer | Promise<Answer>> = {
    getme: () => ok(bot),
    getupdates: getUpdates,
    sendmessage(p) {
      const chatId = Number(p.chat_id);
      if (!Number.isInteger(chatId) || chatId === 0) return err(400, "Bad Request: chat not found");
      const checked = checkText(p);
      if ("status" in checked) return checked;
      const message = newMessage(chatId, p, { text: checked.text });
      messages.set(`${chatId}:${message.message_id}`, { text: checked.text });
      return ok(message);
    },
    /** An uploaded file (multipart/form-data) or the file_id of one Telegram has; a URL is not fetched here. */
    senddocument(p) {
      const chatId = Number(p.chat_id);
      if (!Number.isInteger(chatId) || chatId === 0) return err(400, "Bad Request: chat not found");
      const caption = p.caption === undefined ? undefined : String(p.caption);
      if (caption !== undefined && caption.length > 1024) return err(400, "Bad Request: message caption is too long");
      let document: Document;
      if (isUpload(p.document)) {
        const upload = p.document;
        if (upload.bytes.length === 0) return err(400, "Bad Request: file must be non-empty");
        if (upload.bytes.length > FIFTY_MB) return err(413, "Request Entity Too Large");
        const extension = /\.([a-z0-9]+)$/i.exec(upload.name)?.[1]?.toLowerCase() ?? "";
        const mimeType = upload.type !== "application/octet-stream" ? upload.type : (TYPES_BY_EXTENSION[extension] ?? upload.type);
        const n = files.size + 1;
        const spec: RegisteredFile = { file_id: `document-${n}`, file_unique_id: `unique-document-${n}`, file_size: upload.bytes.length, file_path: `documents/file_${n}${extension ? `.${extension}` : ""}` };
        files.set(spec.file_id, { spec, bytes: upload.bytes, chunked: false, name: upload.name, mimeType });
        document = { file_id: spec.file_id, file_unique_id: spec.file_unique_id, file_name: upload.name, mime_type: mimeType, file_size: upload.bytes.length };
      } else {
        const known = files.get(String(p.document ?? ""));
        if (!known) return err(400, "Bad Request: wrong file identifier/HTTP URL specified");
        const { file_id, file_unique_id, file_size } = known.spec;
        document = { file_id, file_unique_id, file_size, ...(known.name ? { file_name: known.name } : {}), ...(known.mimeType ? { mime_type: known.mimeType } : {}) };
      }
      const message = newMessage(chatId, p, { document, ...(caption ? { caption } : {}) });
      documents.set(`${chatId}:${message.message_id}`, document);
      return ok(message);
    },
    sendmessagedraft(p) {
      if (!(Number(p.chat_id) > 0)) return err(400, "Bad Request: message drafts can be sent only to private chats");
      if (!Number(p.draft_id)) return err(400, "Bad Request: draft_id must be non-zero");
      const checked = checkText(p, true);
      return "status" in checked ? checked : ok(true);
    },
    editmessagetext(p) {
      const key = `${Number(p.chat_id)}:${Number(p.message_id)}`;
      const message = messages.get(key);
      if (!message) return err(400, "Bad Request: message to edit not found");
      const checked = checkText(p);
      if ("status" in checked) return checked;
      if (checked.text === message.text) {
        return err(400, "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message");
      }
      message.text = checked.text;
      return ok({ message_id: Number(p.message_id), date: Math.floor(Date.now() / 1000), edit_date: Math.floor(Date.now() / 1000), chat: chatOf(Number(p.chat_id)), from: bot, text: checked.text });
    },
    sendchataction: (p) => (p.action ? ok(true) : err(400, "Bad Request: action is empty")),
    getfile(p) {
      const file = files.get(String(p.file_id));
      if (!file) return err(400, "Bad Request: invalid file_id");
      if ((file.spec.file_size ?? 0) > TWENTY_MB) return err(400, "Bad Request: file is too big");
      return ok(file.spec satisfies File);
    },
    setwebhook(p) {
      const url = String(p.url ?? "");
      if (url === "") return (webhook = undefined), ok(true);
      if (!url.startsWith("https://")) return err(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook");
      const secret = p.secret_token === undefined ? undefined : String(p.secret_token);
      if (secret !== undefined && !/^[A-Za-z0-9_-]{1,256}$/.test(secret)) return err(400, "Bad Request: secret token contains unallowed characters");
      if (p.drop_pending_updates === true) queue = [];
      webhook = { url, ...(secret === undefined ? {} : { secret_token: secret }) };
      return ok(true);
    },
    deletewebhook(p) {
      webhook = undefined;
      if (p.drop_pending_updates === true) queue = [];
      return ok(true);
    },
    getwebhookinfo: () => ok({ url: webhook?.url ?? "", has_custom_certificate: false, pending_update_count: queue.length }),
    answercallbackquery: (p) => (p.callback_query_id ? ok(true) : err(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")),
    setmycommands: (p) => (Array.isArray(p.commands) ? ok(true) : err(400, "Bad Request: parameter \"commands\" is required")),
  };

  async function answerApi(tokenInPath: string, methodName: string, p: Params, signal: AbortSignal): Promise<Answer> {
    if (tokenInPath !== token) return err(401, "Unauthorized");
    const method = methods[methodName.toLowerCase()];
    if (!method) return err(404, "Not Found");
    const call: SentCall = { method: methodName, params: p, at: Date.now() };
    if (methodName.toLowerCase() !== "getupdates") sent.push(call);
    const drop = drops.get(methodName.toLowerCase()) ?? 0;
    if (drop > 0) {
      drops.set(methodName.toLowerCase(), drop - 1);
      call.errorCode = 0;
      return DROPPED;
    }
    const script = scripted.get(methodName.toLowerCase())?.shift();
    const answer = script ? err(script.error_code, script.description, script.retry_after) : await method(p, signal);
    if (answer.status !== 200) call.errorCode = answer.status;
    if (methodName.toLowerCase() !== "getupdates") options.onCall?.(call);
    return answer;
  }

  function serveFile(tokenInPath: string, path: string, res: ServerResponse) {
    const file = [...files.values()].find((f) => f.spec.file_path === path);
    if (tokenInPath !== token || !file) return void sendJson(res, err(404, "Not Found"));
    downloads.push(path);
    if (!file.chunked) {
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": file.bytes.length });
      return void res.end(file.bytes);
    }
    res.writeHead(200, { "content-type": "application/octet-stream" });
    for (let i = 0; i < file.bytes.length; i += 16 * 1024) res.write(file.bytes.subarray(i, i + 16 * 1024));
    res.end();
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const fileRoute = /^\/file\/bot([^/]+)\/(.+)$/.exec(url.pathname);
    if (fileRoute && req.method === "GET") return serveFile(decodeURIComponent(fileRoute[1]!), fileRoute[2]!, res);
    const apiRoute = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec(url.pathname);
    if (!apiRoute || (req.method !== "GET" && req.method !== "POST")) return sendJson(res, err(404, "Not Found"));
    const aborted = new AbortController();
    res.on("close", () => aborted.abort());
    readParams(req, url)
      .then((p) => (p ? answerApi(decodeURIComponent(apiRoute[1]!), apiRoute[2]!, p, aborted.signal) : err(400, "Bad Request: unsupported request body")))
      .then((answer) => sendJson(res, answer))
      .catch(() => sendJson(res, err(500, "Internal Server Error")));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    token,
    bot,
    /** Builders for incoming updates; pass their result to pushUpdate. */
    updates,
    /** Every call the bot made except getUpdates, in order (scripted failures included, with their errorCode). An
     * uploaded file is an {@link UploadedFile} under the parameter it was sent for (e.g. `params.document`). */
    sent,
    /** Paths of files downloaded through /file/bot<token>/… */
    downloads,
    /** Queues an update for getUpdates; returns it with its assigned update_id. */
    pushUpdate(update: Update): Update {
      const queued = { ...update, update_id: nextUpdateId++ };
      queue.push(queued);
      poll?.wake();
      return queued;
    },
    /** Updates not yet confirmed by an offset. */
    pending: (): readonly Update[] => queue,
    confirmedOffset: () => confirmedOffset,
    /** The next call to `method` answers with this error instead (queued: call again to script several). */
    failNext(method: string, error: ScriptedError) {
      const list = scripted.get(method.toLowerCase()) ?? [];
      list.push(error);
      scripted.set(method.toLowerCase(), list);
    },
    /** The next `times` calls to `method` are cut before an answer: the client sees a network error (recorded with errorCode 0). */
    dropNext(method: string, times = 1) {
      drops.set(method.toLowerCase(), (drops.get(method.toLowerCase()) ?? 0) + times);
    },
    /** The webhook Telegram would call, as set by setWebhook; undefined when long polling is allowed. */
    webhook: () => webhook,
    presetWebhook(url: string, secret_token?: string) {
      webhook = { url, ...(secret_token === undefined ? {} : { secret_token }) };
    },
    /** Makes a file available to getFile and download. `declaredSize` lets file_size differ from the bytes. */
    registerFile(bytes: Uint8Array, opts: { declaredSize?: number; chunked?: boolean; name?: string } = {}): RegisteredFile {
      const n = files.size + 1;
      const spec: RegisteredFile = {
        file_id: `file-${n}`, file_unique_id: `unique-${n}`, file_size: opts.declaredSize ?? bytes.length,
        file_path: `photos/${opts.name ?? `file_${n}.jpg`}`,
      };
      files.set(spec.file_id, { spec, bytes, chunked: opts.chunked ?? false });
      return spec;
    },
    /** Texts of messages the bot sent, as Telegram would show them (tags removed). */
    messageText: (chatId: number, messageId: number) => messages.get(`${chatId}:${messageId}`)?.text,
    /** The Document of a message the bot sent with sendDocument, as Telegram answered it. */
    documentOf: (chatId: number, messageId: number): Document | undefined => documents.get(`${chatId}:${messageId}`),
    async close() {
      poll?.terminate();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The answer that is no answer: the connection is destroyed. */
const DROPPED: Answer = { status: 0, body: {} };

function sendJson(res: ServerResponse, answer: Answer) {
  if (answer === DROPPED) return void res.destroy();
  if (res.headersSent || res.destroyed) return;
  const body = JSON.stringify(answer.body);
  res.writeHead(answer.status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/**
 * Bot API parameters from the query string, a JSON body, a form body or a multipart body (how files are uploaded).
 * An uploaded file becomes an {@link UploadedFile} under the parameter that names it, either directly or through an
 * `attach://<part>` reference (grammY's way). Undefined for any other body.
 */
async function readParams(req: IncomingMessage, url: URL): Promise<Params | undefined> {
  const params: Params = {};
  for (const [k, v] of url.searchParams) params[k] = coerce(k, v);
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const raw = Buffer.concat(chunks);
  if (raw.length === 0) return params;
  const type = req.headers["content-type"] ?? "";
  const body = raw.toString("utf8");
  if (type.startsWith("application/json")) return { ...params, ...(JSON.parse(body) as Params) };
  if (type.startsWith("application/x-www-form-urlencoded")) {
    for (const [k, v] of new URLSearchParams(body)) params[k] = coerce(k, v);
    return params;
  }
  const boundary = /^multipart\/form-data;.*\bboundary=(?:"([^"]+)"|([^;\s]+))/i.exec(type);
  if (!boundary) return undefined;
  const parts = parseMultipart(raw, boundary[1] ?? boundary[2]!);
  if (!parts) return undefined;
  const uploads = new Map<string, UploadedFile>();
  for (const part of parts) {
    if (part.filename !== undefined) uploads.set(part.name, { name: part.filename, type: part.type, bytes: new Uint8Array(part.data) });
  }
  for (const part of parts) {
    if (part.filename !== undefined) continue;
    const value = part.data.toString("utf8");
    const attached = value.startsWith("attach://") ? uploads.get(value.slice("attach://".length)) : undefined;
    params[part.name] = attached ?? coerce(part.name, value);
  }
  // A file sent as the parameter itself (other clients do this) rather than through attach://.
  for (const [name, file] of uploads) if (!(name in params) && !Object.values(params).includes(file)) params[name] = file;
  return params;
}

interface Part {
  name: string;
  filename?: string;
  type: string;
  data: Buffer;
}

/**
 * multipart/form-data (RFC 7578), read as leniently as the Bot API reads it: grammY writes its part headers without
 * spaces and the file name unquoted (`content-disposition:form-data;name="x";filename=a.json`), which Node 20's
 * `Request.formData()` refuses. Undefined when the body is not multipart with this boundary.
 */
function parseMultipart(body: Buffer, boundary: string): Part[] | undefined {
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  const data = Buffer.concat([Buffer.from("\r\n"), body]);
  if (data.indexOf(delimiter) !== 0) return undefined;
  const parts: Part[] = [];
  for (let at = delimiter.length; ; ) {
    if (data.subarray(at, at + 2).toString() === "--") return parts; // the closing delimiter
    const next = data.indexOf(delimiter, at);
    if (next < 0) return undefined;
    const part = data.subarray(data.indexOf("\r\n", at) + 2, next);
    const headerEnd = part.indexOf("\r\n\r\n");
    if (headerEnd < 0) return undefined;
    const headers = new Map<string, string>();
    for (const line of part.subarray(0, headerEnd).toString("utf8").split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const disposition = headers.get("content-disposition") ?? "";
    const field = (key: string) =>
      new RegExp(`;\\s*${key}=(?:"([^"]*)"|([^;]*))`, "i").exec(disposition)?.slice(1).find((v) => v !== undefined)?.trim();
    const name = field("name");
    if (!/^form-data\s*;/i.test(disposition) || name === undefined) return undefined;
    const filename = field("filename");
    parts.push({
      name,
      ...(filename === undefined ? {} : { filename }),
      type: headers.get("content-type") ?? "text/plain",
      data: Buffer.from(part.subarray(headerEnd + 4)),
    });
    at = next + delimiter.length;
  }
}

/** Parameters that are text whatever they look like (a caption "42" stays a string). */
const TEXT_PARAMS = new Set(["text", "caption", "file_name", "secret_token", "callback_query_id"]);

function coerce(name: string, value: string): unknown {
  if (TEXT_PARAMS.has(name)) return value;
  if (/^-?\d{1,15}$/.test(value)) return Number(value);
  if (value === "true" || value === "false") return value === "true";
  if (value.startsWith("[") || value.startsWith("{")) {
    try {
      return JSON.parse(value) as unknown;
    } catch {
      return value;
    }
  }
  return value;
}
