/**
 * A fake OpenAI-compatible model server on 127.0.0.1 that the real AI SDK providers talk to.
 *
 * It speaks the wire protocol (chat completions streamed and not, the Responses API, model listing, audio
 * transcription, OpenAI-shaped errors, bearer auth) and answers from scripts keyed by model name, so one server can
 * stand in for several providers and models in a test. Unscripted requests get `echo: <last user text>`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { chatCompletion, chatCompletionEvents, wantsStreamUsage } from "./openai-chat.ts";
import {
  emptySummary,
  isAuthorized,
  parseRequest,
  readBody,
  redactedHeaders,
  sendError,
  sendJson,
  unauthorized,
  type ParsedRequest,
} from "./openai-http.ts";
import { metaRefusal } from "./meta-model-api.ts";
import { requestedIncludes, responseEvents, responseObject, responseOutput } from "./openai-responses.ts";
import { isErrorScript, isHangScript, resolveAnswer, type RequestSummary, type Script, type SseEvent } from "./openai-script.ts";

export type { ErrorScript, HangScript, ReplyScript, RequestSummary, Script, ToolCallScript } from "./openai-script.ts";

export interface FakeOpenAIServerOptions {
  /** When set, every request must carry `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Models listed by `GET /v1/models`, besides every model that has a script. */
  models?: string[];
  /** Answer a Responses API request the way Meta's Model API does when it breaks Meta's wire rules: HTTP 400. */
  wireRules?: "meta";
}

/** How a request ended: answered in full, dropped by the client, cut by a `cutAfterChunks` script, or by `close()`. */
export type RequestOutcome = "pending" | "completed" | "client-aborted" | "cut" | "server-closed";

export interface RecordedRequest extends RequestSummary {
  seq: number;
  method: string;
  path: string;
  /** Parsed JSON; for transcriptions the form fields, with `file` as `{ name, type, size }`. */
  body: unknown;
  /** Request headers without `authorization`. */
  headers: Record<string, string>;
  authorized: boolean;
  outcome: RequestOutcome;
}

export type ScriptSource = Script | ((request: RecordedRequest) => Script);

export interface FakeOpenAIServer {
  /** `http://127.0.0.1:<port>`; providers take `url + "/v1"` as their baseURL. */
  readonly url: string;
  readonly requests: readonly RecordedRequest[];
  /** Requests whose response has not ended yet (hung, delayed or streaming). */
  readonly activeRequests: number;
  /** Sets what every request for `model` gets once its queued scripts are used up. */
  reply(model: string, script: ScriptSource): void;
  /** Queues scripts for the next requests for `model`, one each, in order. */
  replyOnce(model: string, ...scripts: ScriptSource[]): void;
  requestsFor(model: string): RecordedRequest[];
  lastRequest(): RecordedRequest | undefined;
  waitForRequests(count: number, timeoutMs?: number): Promise<RecordedRequest[]>;
  /** Resolves once no request is active, i.e. the server has seen every connection it was answering end. */
  waitForIdle(timeoutMs?: number): Promise<void>;
  /** Closes the server and every open socket, hung ones included. */
  close(): Promise<void>;
}

type Json = Record<string, unknown>;

export async function startFakeOpenAIServer(options: FakeOpenAIServerOptions = {}): Promise<FakeOpenAIServer> {
  const requests: RecordedRequest[] = [];
  const queued = new Map<string, ScriptSource[]>();
  const defaults = new Map<string, ScriptSource>();
  const storedItems = new Set<string>();
  const waiters = new Set<() => void>();
  let active = 0;
  let closing: Promise<void> | undefined;
  let lastId = 0;
  const nextId = (prefix: string) => `${prefix}_fake_${++lastId}`;
  const notify = () => waiters.forEach((check) => check());

  function nextScript(record: RecordedRequest): Script {
    const model = record.model ?? "";
    const source = queued.get(model)?.shift() ?? defaults.get(model) ?? {};
    return typeof source === "function" ? source(record) : source;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await readBody(req);
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const route = `${req.method} ${path}`;
    const record: RecordedRequest = {
      seq: requests.length + 1,
      method: req.method ?? "GET",
      path,
      ...emptySummary(),
      body: undefined,
      headers: redactedHeaders(req),
      authorized: isAuthorized(req, options.apiKey),
      outcome: "pending",
    };
    const conn = track(res, record);
    requests.push(record);

    let parsed: ParsedRequest | undefined;
    try {
      parsed = await parseRequest(route, req, raw);
      Object.assign(record, parsed.summary, { body: parsed.body });
    } catch {
      record.body = raw.toString("utf8");
    }
    notify();

    if (!record.authorized) return sendError(res, unauthorized(req));
    if (!parsed) return sendError(res, { status: 400, message: "We could not parse the JSON body of your request." });
    if (route === "GET /v1/models") {
      const ids = [...new Set([...(options.models ?? []), ...defaults.keys(), ...queued.keys()])];
      return sendJson(res, 200, { object: "list", data: ids.map((id) => ({ id, object: "model", created: 0, owned_by: "fake" })) });
    }
    if (record.api === "unknown") {
      return sendError(res, { status: 404, message: `Invalid URL (${route})`, code: null });
    }
    const refused = options.wireRules === "meta" && record.api === "responses" ? metaRefusal(record.body) : undefined;
    if (refused) return sendError(res, { status: 400, message: refused, type: "invalid_request_error", code: null });
    const missing = parsed.itemReferences.find((id) => !storedItems.has(id));
    if (missing) return sendError(res, { status: 404, message: `Item with id '${missing}' not found.`, code: null });

    let script: Script;
    try {
      script = nextScript(record);
    } catch (error) {
      return sendError(res, { status: 500, message: `fake script threw: ${String(error)}` });
    }
    if (isHangScript(script)) return conn.closed;
    if (isErrorScript(script)) {
      await conn.sleep(script.error.delayMs);
      return sendError(res, script.error);
    }
    await conn.sleep(script.delayMs);
    if (res.destroyed) return;
    if (record.api === "transcription") {
      if (script.cutAfterChunks !== undefined) return conn.cut();
      const file = (record.body as { file?: { name: string; size: number } }).file;
      return sendJson(res, 200, { text: script.text ?? `transcript of ${file?.name} (${file?.size} bytes)` });
    }
    const body = (record.body ?? {}) as Json;
    const answer = resolveAnswer(script, record, body.messages ?? body.input, nextId);
    const created = Math.floor(Date.now() / 1000);
    let events: SseEvent[];
    if (record.api === "chat") {
      const id = nextId("chatcmpl");
      if (!record.stream) return answer.cutAfterChunks !== undefined ? conn.cut() : sendJson(res, 200, chatCompletion(answer, id, created));
      events = chatCompletionEvents(answer, id, created, wantsStreamUsage(record.body));
    } else {
      const output = responseOutput(answer, nextId, requestedIncludes(record.body));
      output.forEach((item) => storedItems.add(String(item.id)));
      const response = responseObject(answer, nextId("resp"), created, output);
      if (!record.stream) return answer.cutAfterChunks !== undefined ? conn.cut() : sendJson(res, 200, response);
      events = responseEvents(answer, response, output);
    }
    await writeEvents(res, conn, events, answer.cutAfterChunks, script.chunkDelayMs);
  }

  /** Follows one response to its end, and gives the handler a sleep that stops early when the connection closes. */
  function track(res: ServerResponse, record: RecordedRequest) {
    active++;
    let cutting = false;
    const closed = new Promise<void>((resolve) => {
      res.once("close", () => {
        active--;
        record.outcome = res.writableFinished ? "completed" : cutting ? "cut" : closing !== undefined ? "server-closed" : "client-aborted";
        resolve();
        notify();
      });
    });
    return {
      closed,
      sleep: async (ms: number | undefined) => {
        if (!ms) return;
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([closed, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
        clearTimeout(timer);
      },
      cut: () => {
        cutting = true;
        res.socket?.destroy();
        return closed;
      },
    };
  }

  async function writeEvents(
    res: ServerResponse,
    conn: ReturnType<typeof track>,
    events: SseEvent[],
    cutAfterChunks: number | undefined,
    chunkDelayMs: number | undefined,
  ): Promise<void> {
    const deltas = events.filter((event) => event.counts).length;
    const cutAt = cutAfterChunks === undefined ? undefined : Math.min(cutAfterChunks, deltas);
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" });
    res.flushHeaders();
    let sent = 0;
    for (const event of events) {
      if (cutAt !== undefined && sent >= cutAt) return conn.cut();
      if (event.counts) await conn.sleep(chunkDelayMs);
      if (res.destroyed) return;
      const data = typeof event.data === "string" ? event.data : JSON.stringify(event.data);
      const frame = `${event.event ? `event: ${event.event}\n` : ""}data: ${data}\n\n`;
      await Promise.race([new Promise((resolve) => res.write(frame, resolve)), conn.closed]);
      if (event.counts) sent++;
    }
    res.end();
  }

  function waitFor(done: () => boolean, timeoutMs: number, describe: () => string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!done()) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`fake OpenAI server: ${describe()} after ${timeoutMs} ms`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendError(res, { status: 500, message: `fake server failed: ${String(error)}` });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    get activeRequests() {
      return active;
    },
    reply: (model, script) => void defaults.set(model, script),
    replyOnce: (model, ...scripts) => void queued.set(model, [...(queued.get(model) ?? []), ...scripts]),
    requestsFor: (model) => requests.filter((request) => request.model === model),
    lastRequest: () => requests.at(-1),
    waitForRequests: async (count, timeoutMs = 2000) => {
      await waitFor(() => requests.length >= count, timeoutMs, () => `expected ${count} requests, got ${requests.length}`);
      return requests.slice(0, count);
    },
    waitForIdle: (timeoutMs = 2000) => waitFor(() => active === 0, timeoutMs, () => `${active} requests still active`),
    close: () =>
      (closing ??= new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      })),
  };
}
