// What a fake OpenAI-compatible server answers, and the pure pieces shared by its chat and responses dialects.

/** A tool call the fake model makes. `arguments` is sent as-is when a string, else JSON-encoded. */
export interface ToolCallScript {
  name: string;
  arguments: unknown;
  id?: string;
}

/** A successful answer. Every field is optional: an empty script answers `echo: <last user text>`. */
export interface ReplyScript {
  text?: string;
  /** Sent as `reasoning_content` (chat) or a reasoning summary item (responses). */
  reasoning?: string;
  toolCalls?: ToolCallScript[];
  /** How a streamed text is split into deltas: a count of near-equal pieces, or the pieces themselves. Default: words. */
  chunks?: number | string[];
  /** Wait before sending the status line and headers. */
  delayMs?: number;
  /** Wait before each delta of a stream. */
  chunkDelayMs?: number;
  /** `cachedTokens` is the part of the prompt read from the prompt cache (reported within promptTokens). */
  usage?: { promptTokens?: number; completionTokens?: number; reasoningTokens?: number; cachedTokens?: number };
  /** Responses API only: a server-side web search before the answer, whose sources the text cites. */
  webSearch?: { query: string; sources: { url: string; title: string }[] };
  /** The raw finish reason; default `tool_calls` when there are tool calls, else `stop`. */
  finishReason?: string;
  /** Send this many deltas (text, reasoning or tool-argument pieces), then destroy the socket. */
  cutAfterChunks?: number;
}

/** An HTTP error in OpenAI's shape. 429 carries `retry-after` when `retryAfterSeconds` is set. */
export interface ErrorScript {
  error: {
    status: number;
    message?: string;
    type?: string;
    code?: string | null;
    retryAfterSeconds?: number;
    delayMs?: number;
  };
}

/** Accept the request and send nothing until the client goes away (or the server closes). */
export interface HangScript {
  hang: true;
}

export type Script = ReplyScript | ErrorScript | HangScript;

/** The normalized view of a request that scripts and tests look at, whatever the API dialect. */
export interface RequestSummary {
  api: "chat" | "responses" | "transcription" | "models" | "unknown";
  model: string | undefined;
  stream: boolean;
  lastUserText: string | undefined;
  /** The system (or developer) instructions, joined by blank lines. */
  systemText: string | undefined;
  /** Image parts in the user messages (chat `image_url`, responses `input_image`). */
  imageCount: number;
  /** Results of tool calls sent back by the client, in order. */
  toolResults: { callId: string; output: string }[];
}

/** A reply script resolved against its request: everything a dialect needs to write the answer. */
export interface Answer {
  model: string;
  text: string;
  pieces: string[];
  reasoning: string;
  reasoningPieces: string[];
  toolCalls: { id: string; name: string; arguments: string }[];
  finishReason: string;
  usage: { promptTokens: number; completionTokens: number; reasoningTokens: number; cachedTokens: number };
  webSearch: ReplyScript["webSearch"];
  cutAfterChunks: number | undefined;
}

/** A server-sent event; `counts` marks the deltas that `cutAfterChunks` and `chunkDelayMs` apply to. */
export interface SseEvent {
  event?: string;
  data: unknown;
  counts: boolean;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function echoText(summary: RequestSummary): string {
  return `echo: ${summary.lastUserText ?? "(no text)"}`;
}

export function splitText(text: string, chunks: number | string[] | undefined): string[] {
  if (Array.isArray(chunks)) return chunks;
  if (text === "") return [];
  if (chunks === undefined) return text.match(/\s*\S+\s*/g) ?? [text];
  const size = Math.max(1, Math.ceil(text.length / Math.max(1, chunks)));
  const pieces: string[] = [];
  for (let at = 0; at < text.length; at += size) pieces.push(text.slice(at, at + size));
  return pieces;
}

/** A rough, deterministic token count: one token per four characters, at least one. */
export function estimateTokens(value: unknown): number {
  const text = typeof value === "string" ? value : JSON.stringify(value ?? "");
  return Math.max(1, Math.ceil(text.length / 4));
}

export function resolveAnswer(
  script: ReplyScript,
  summary: RequestSummary,
  prompt: unknown,
  nextId: (prefix: string) => string,
): Answer {
  const text = script.text ?? (Array.isArray(script.chunks) ? script.chunks.join("") : script.toolCalls ? "" : echoText(summary));
  const reasoning = script.reasoning ?? "";
  const toolCalls = (script.toolCalls ?? []).map((call) => ({
    id: call.id ?? nextId("call"),
    name: call.name,
    arguments: typeof call.arguments === "string" ? call.arguments : JSON.stringify(call.arguments ?? {}),
  }));
  const reasoningTokens = script.usage?.reasoningTokens ?? (reasoning ? estimateTokens(reasoning) : 0);
  const promptTokens = script.usage?.promptTokens ?? estimateTokens(prompt);
  const outputTokens = estimateTokens(text + toolCalls.map((call) => call.name + call.arguments).join(""));
  return {
    model: summary.model ?? "unknown",
    text,
    pieces: splitText(text, script.chunks),
    reasoning,
    reasoningPieces: splitText(reasoning, undefined),
    toolCalls,
    finishReason: script.finishReason ?? (toolCalls.length > 0 ? "tool_calls" : "stop"),
    usage: {
      promptTokens,
      completionTokens: script.usage?.completionTokens ?? outputTokens + reasoningTokens,
      reasoningTokens,
      cachedTokens: Math.min(script.usage?.cachedTokens ?? 0, promptTokens),
    },
    webSearch: script.webSearch,
    cutAfterChunks: script.cutAfterChunks,
  };
}

const errorDefaults: Record<number, { type: string; code: string | null; message: string }> = {
  400: { type: "invalid_request_error", code: null, message: "Invalid request." },
  401: { type: "invalid_request_error", code: "invalid_api_key", message: "Incorrect API key provided." },
  403: { type: "invalid_request_error", code: "unsupported_country_region_territory", message: "Forbidden." },
  404: { type: "invalid_request_error", code: "model_not_found", message: "The model does not exist." },
  429: { type: "requests", code: "rate_limit_exceeded", message: "Rate limit reached. Please try again later." },
  500: { type: "server_error", code: null, message: "The server had an error while processing your request." },
  503: { type: "server_error", code: "service_unavailable", message: "The engine is currently overloaded." },
};

/** The body OpenAI sends with an HTTP error: `{"error":{"message","type","param","code"}}`. */
export function errorBody(error: ErrorScript["error"]): { error: { message: string; type: string; param: null; code: string | null } } {
  const defaults = errorDefaults[error.status] ?? { type: error.status >= 500 ? "server_error" : "invalid_request_error", code: null, message: `Error ${error.status}.` };
  return {
    error: {
      message: error.message ?? defaults.message,
      type: error.type ?? defaults.type,
      param: null,
      code: error.code === undefined ? defaults.code : error.code,
    },
  };
}

export function isErrorScript(script: Script): script is ErrorScript {
  return "error" in script && script.error !== undefined;
}

export function isHangScript(script: Script): script is HangScript {
  return "hang" in script && script.hang === true;
}
