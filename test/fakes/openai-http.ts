// HTTP plumbing of the fake OpenAI server: routing and parsing requests, auth, and writing JSON and OpenAI errors.
import type { IncomingMessage, ServerResponse } from "node:http";
import { readChatRequest } from "./openai-chat.ts";
import { readResponsesRequest } from "./openai-responses.ts";
import { errorBody, type ErrorScript, type RequestSummary } from "./openai-script.ts";

export interface ParsedRequest {
  body: unknown;
  summary: RequestSummary;
  /** Responses API `item_reference` ids, which must name output items the server sent earlier. */
  itemReferences: string[];
}

export function emptySummary(): RequestSummary {
  return { api: "unknown", model: undefined, stream: false, lastUserText: undefined, systemText: undefined, imageCount: 0, toolResults: [] };
}

/** Parses a request by route; throws when a JSON or multipart body does not parse. */
export async function parseRequest(route: string, req: IncomingMessage, raw: Buffer): Promise<ParsedRequest> {
  switch (route) {
    case "POST /v1/chat/completions": {
      const body: unknown = JSON.parse(raw.toString("utf8"));
      return { body, summary: readChatRequest(body), itemReferences: [] };
    }
    case "POST /v1/responses": {
      const body: unknown = JSON.parse(raw.toString("utf8"));
      const { itemReferences, ...summary } = readResponsesRequest(body);
      return { body, summary, itemReferences };
    }
    case "POST /v1/audio/transcriptions": {
      const form = await new Request("http://fake/", {
        method: "POST",
        headers: { "content-type": req.headers["content-type"] ?? "" },
        body: new Uint8Array(raw),
      }).formData();
      const body: Record<string, unknown> = {};
      form.forEach((value, key) => {
        body[key] = typeof value === "string" ? value : { name: value.name, type: value.type, size: value.size };
      });
      const model = typeof body.model === "string" ? body.model : undefined;
      return { body, summary: { ...emptySummary(), api: "transcription", model }, itemReferences: [] };
    }
    case "GET /v1/models":
      return { body: undefined, summary: { ...emptySummary(), api: "models" }, itemReferences: [] };
    default:
      return { body: raw.length > 0 ? raw.toString("utf8") : undefined, summary: emptySummary(), itemReferences: [] };
  }
}

export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on("data", (part: Buffer) => parts.push(part));
    req.on("end", () => resolve(Buffer.concat(parts)));
    req.on("error", reject);
  });
}

/** The request headers without `authorization`, multi-valued ones joined. */
export function redactedHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (name !== "authorization" && value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return headers;
}

export function isAuthorized(req: IncomingMessage, apiKey: string | undefined): boolean {
  return apiKey === undefined || req.headers.authorization === `Bearer ${apiKey}`;
}

/** OpenAI's 401s: a wrong key and a missing key read differently. */
export function unauthorized(req: IncomingMessage): ErrorScript["error"] {
  return req.headers.authorization
    ? { status: 401, message: "Incorrect API key provided.", code: "invalid_api_key" }
    : { status: 401, message: "You didn't provide an API key.", code: null };
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.destroyed) return;
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

export function sendError(res: ServerResponse, error: ErrorScript["error"]): void {
  const retryAfter: Record<string, string> = error.retryAfterSeconds === undefined ? {} : { "retry-after": String(error.retryAfterSeconds) };
  sendJson(res, error.status, errorBody(error), retryAfter);
}
