// The Responses API dialect (POST /v1/responses): reading `input` items, writing the response object and its events.
import { argumentPieces, contentText, countParts, joinTexts } from "./openai-chat.ts";
import { isRecord, type Answer, type RequestSummary, type SseEvent } from "./openai-script.ts";

type Json = Record<string, unknown>;

export interface ResponsesRequest extends RequestSummary {
  /** Ids of `item_reference` inputs, which must name output items this server sent earlier. */
  itemReferences: string[];
}

export function readResponsesRequest(body: unknown): ResponsesRequest {
  const request = isRecord(body) ? body : {};
  const items = typeof request.input === "string"
    ? [{ role: "user", content: request.input }]
    : Array.isArray(request.input) ? request.input.filter(isRecord) : [];
  const lastUser = items.filter((item) => item.role === "user").at(-1);
  return {
    api: "responses",
    model: typeof request.model === "string" ? request.model : undefined,
    stream: request.stream === true,
    lastUserText: lastUser ? contentText(lastUser.content) : undefined,
    systemText: joinTexts([
      typeof request.instructions === "string" ? request.instructions : undefined,
      ...items.filter((item) => item.role === "system" || item.role === "developer").map((item) => contentText(item.content)),
    ]),
    imageCount: countParts(items, "input_image"),
    toolResults: items
      .filter((item) => item.type === "function_call_output")
      .map((item) => ({ callId: String(item.call_id), output: contentText(item.output) ?? "" })),
    itemReferences: items.filter((item) => item.type === "item_reference").map((item) => String(item.id)),
  };
}

/** The `include` list of a request body: extra output the client asked for. */
export function requestedIncludes(body: unknown): string[] {
  return isRecord(body) && Array.isArray(body.include) ? body.include.filter((i): i is string => typeof i === "string") : [];
}

/**
 * The output items of an answer: a reasoning item (its summary, and its `encrypted_content` when the request's
 * `include` asks for `reasoning.encrypted_content`), a `web_search_call` when scripted (its `action.sources` when
 * `include` asks for `web_search_call.action.sources`), the assistant message with a `url_citation` annotation per
 * source, then one item per function call.
 */
export function responseOutput(answer: Answer, nextId: (prefix: string) => string, include: readonly string[] = []): Json[] {
  const output: Json[] = [];
  if (answer.reasoning || include.includes("reasoning.encrypted_content")) {
    const id = nextId("rs");
    const item: Json = { type: "reasoning", id, summary: answer.reasoning ? [{ type: "summary_text", text: answer.reasoning }] : [] };
    if (include.includes("reasoning.encrypted_content")) item.encrypted_content = Buffer.from(`fake-encrypted:${id}`).toString("base64");
    output.push(item);
  }
  const search = answer.webSearch;
  if (search) {
    const action: Json = { type: "search", query: search.query };
    if (include.includes("web_search_call.action.sources")) action.sources = search.sources.map(({ url }) => ({ type: "url", url }));
    output.push({ type: "web_search_call", id: nextId("ws"), status: "completed", action });
  }
  if (answer.text !== "" || answer.toolCalls.length === 0) {
    const annotations = (search?.sources ?? []).map(({ url, title }) => ({ type: "url_citation", start_index: 0, end_index: answer.text.length, url, title }));
    output.push({
      type: "message",
      id: nextId("msg"),
      status: "completed",
      role: "assistant",
      content: [{ type: "output_text", text: answer.text, annotations, logprobs: [] }],
    });
  }
  for (const call of answer.toolCalls) {
    output.push({
      type: "function_call",
      id: nextId("fc"),
      call_id: call.id,
      name: call.name,
      arguments: call.arguments,
      status: "completed",
    });
  }
  return output;
}

const incompleteReasons: Record<string, string> = { length: "max_output_tokens", content_filter: "content_filter" };

/** The `response` object, as returned without streaming and inside `response.completed`. */
export function responseObject(answer: Answer, id: string, createdAt: number, output: Json[]): Json {
  const { promptTokens, completionTokens, reasoningTokens, cachedTokens } = answer.usage;
  const incomplete = incompleteReasons[answer.finishReason];
  return {
    id,
    object: "response",
    created_at: createdAt,
    status: incomplete ? "incomplete" : "completed",
    error: null,
    incomplete_details: incomplete ? { reason: incomplete } : null,
    model: answer.model,
    output,
    usage: {
      input_tokens: promptTokens,
      input_tokens_details: { cached_tokens: cachedTokens },
      output_tokens: completionTokens,
      output_tokens_details: { reasoning_tokens: reasoningTokens },
      total_tokens: promptTokens + completionTokens,
    },
  };
}

/** The named events of a streamed response, from `response.created` to `response.completed`. */
export function responseEvents(answer: Answer, response: Json, output: Json[]): SseEvent[] {
  const events: SseEvent[] = [];
  const push = (type: string, fields: Json, counts = false) => {
    events.push({ event: type, data: { type, sequence_number: events.length, ...fields }, counts });
  };
  const pending = { ...response, status: "in_progress", incomplete_details: null, output: [], usage: null };
  push("response.created", { response: pending });
  push("response.in_progress", { response: pending });
  output.forEach((item, outputIndex) => {
    const at = { item_id: item.id, output_index: outputIndex };
    if (item.type === "reasoning") {
      const { encrypted_content: _encrypted, ...added } = item;
      push("response.output_item.added", { output_index: outputIndex, item: { ...added, summary: [] } });
      if (answer.reasoning) {
        push("response.reasoning_summary_part.added", { ...at, summary_index: 0, part: { type: "summary_text", text: "" } });
        for (const delta of answer.reasoningPieces) push("response.reasoning_summary_text.delta", { ...at, summary_index: 0, delta }, true);
        push("response.reasoning_summary_text.done", { ...at, summary_index: 0, text: answer.reasoning });
        push("response.reasoning_summary_part.done", { ...at, summary_index: 0, part: { type: "summary_text", text: answer.reasoning } });
      }
    } else if (item.type === "web_search_call") {
      const { action: _action, ...added } = item;
      push("response.output_item.added", { output_index: outputIndex, item: { ...added, status: "in_progress" } });
      push("response.web_search_call.in_progress", at);
      push("response.web_search_call.searching", at);
      push("response.web_search_call.completed", at);
    } else if (item.type === "message") {
      push("response.output_item.added", { output_index: outputIndex, item: { ...item, status: "in_progress", content: [] } });
      const part = { type: "output_text", text: "", annotations: [] };
      const done = (item.content as Json[])[0]!;
      push("response.content_part.added", { ...at, content_index: 0, part });
      for (const delta of answer.pieces) push("response.output_text.delta", { ...at, content_index: 0, delta, logprobs: [] }, true);
      (done.annotations as Json[]).forEach((annotation, annotationIndex) => {
        push("response.output_text.annotation.added", { ...at, content_index: 0, annotation_index: annotationIndex, annotation });
      });
      push("response.output_text.done", { ...at, content_index: 0, text: answer.text, logprobs: [] });
      push("response.content_part.done", { ...at, content_index: 0, part: { ...part, text: answer.text, annotations: done.annotations } });
    } else if (item.type === "function_call") {
      const args = String(item.arguments);
      push("response.output_item.added", { output_index: outputIndex, item: { ...item, arguments: "", status: "in_progress" } });
      for (const delta of argumentPieces(args)) push("response.function_call_arguments.delta", { ...at, delta }, true);
      push("response.function_call_arguments.done", { ...at, arguments: args });
    }
    push("response.output_item.done", { output_index: outputIndex, item });
  });
  push(response.status === "incomplete" ? "response.incomplete" : "response.completed", { response });
  return events;
}
