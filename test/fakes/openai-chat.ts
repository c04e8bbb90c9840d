// The chat completions dialect (POST /v1/chat/completions): reading requests, writing answers and stream chunks.
import { isRecord, type Answer, type RequestSummary, type SseEvent } from "./openai-script.ts";

type Json = Record<string, unknown>;

/** The text of an OpenAI message content: a string, or the `text` parts of an array, joined by newlines. */
export function contentText(content: unknown): string | undefined {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return undefined;
  const texts = content.filter(isRecord).flatMap((part) => (typeof part.text === "string" ? [part.text] : []));
  return texts.length > 0 ? texts.join("\n") : undefined;
}

/** Texts joined by blank lines; undefined when there are none. */
export function joinTexts(texts: Array<string | undefined>): string | undefined {
  const present = texts.filter((t): t is string => t !== undefined);
  return present.length > 0 ? present.join("\n\n") : undefined;
}

/** How many content parts of `type` the user messages carry. */
export function countParts(messages: Record<string, unknown>[], type: string): number {
  return messages
    .filter((m) => m.role === "user" && Array.isArray(m.content))
    .reduce((n, m) => n + (m.content as unknown[]).filter((part) => isRecord(part) && part.type === type).length, 0);
}

export function readChatRequest(body: unknown): RequestSummary {
  const request = isRecord(body) ? body : {};
  const messages = Array.isArray(request.messages) ? request.messages.filter(isRecord) : [];
  const lastUser = messages.filter((message) => message.role === "user").at(-1);
  return {
    api: "chat",
    model: typeof request.model === "string" ? request.model : undefined,
    stream: request.stream === true,
    lastUserText: lastUser ? contentText(lastUser.content) : undefined,
    systemText: joinTexts(messages.filter((m) => m.role === "system" || m.role === "developer").map((m) => contentText(m.content))),
    imageCount: countParts(messages, "image_url"),
    toolResults: messages
      .filter((message) => message.role === "tool")
      .map((message) => ({ callId: String(message.tool_call_id), output: contentText(message.content) ?? "" })),
  };
}

export function wantsStreamUsage(body: unknown): boolean {
  return isRecord(body) && isRecord(body.stream_options) && body.stream_options.include_usage === true;
}

function usageJson(answer: Answer): Json {
  const { promptTokens, completionTokens, reasoningTokens, cachedTokens } = answer.usage;
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: { cached_tokens: cachedTokens },
    completion_tokens_details: { reasoning_tokens: reasoningTokens },
  };
}

/** The non-streamed `chat.completion` object. */
export function chatCompletion(answer: Answer, id: string, created: number): Json {
  const message: Json = {
    role: "assistant",
    content: answer.text === "" && answer.toolCalls.length > 0 ? null : answer.text,
    refusal: null,
  };
  if (answer.reasoning) message.reasoning_content = answer.reasoning;
  if (answer.toolCalls.length > 0) {
    message.tool_calls = answer.toolCalls.map((call) => ({
      id: call.id,
      type: "function",
      function: { name: call.name, arguments: call.arguments },
    }));
  }
  return {
    id,
    object: "chat.completion",
    created,
    model: answer.model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: answer.finishReason }],
    usage: usageJson(answer),
    system_fingerprint: null,
  };
}

/**
 * The `chat.completion.chunk` events of a stream: a role chunk, reasoning_content deltas (as DeepSeek, vLLM and
 * Ollama send them), content deltas, tool call deltas (name first, then argument pieces), the finish chunk, the
 * usage chunk when the client asked for it, and `[DONE]`.
 */
export function chatCompletionEvents(answer: Answer, id: string, created: number, includeUsage: boolean): SseEvent[] {
  const chunk = (delta: Json, finishReason: string | null = null): Json => ({
    id,
    object: "chat.completion.chunk",
    created,
    model: answer.model,
    system_fingerprint: null,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
    ...(includeUsage ? { usage: null } : {}),
  });
  const events: SseEvent[] = [{ data: chunk({ role: "assistant", content: "" }), counts: false }];
  for (const piece of answer.reasoningPieces) {
    events.push({ data: chunk({ content: null, reasoning_content: piece }), counts: true });
  }
  for (const piece of answer.pieces) events.push({ data: chunk({ content: piece }), counts: true });
  answer.toolCalls.forEach((call, index) => {
    const head = { index, id: call.id, type: "function", function: { name: call.name, arguments: "" } };
    events.push({ data: chunk({ tool_calls: [head] }), counts: true });
    for (const piece of argumentPieces(call.arguments)) {
      events.push({ data: chunk({ tool_calls: [{ index, function: { arguments: piece } }] }), counts: true });
    }
  });
  events.push({ data: chunk({}, answer.finishReason), counts: false });
  if (includeUsage) {
    events.push({
      data: { id, object: "chat.completion.chunk", created, model: answer.model, choices: [], usage: usageJson(answer) },
      counts: false,
    });
  }
  events.push({ data: "[DONE]", counts: false });
  return events;
}

/** Tool arguments arrive in a few pieces, as real servers stream them. */
export function argumentPieces(args: string): string[] {
  if (args.length <= 1) return [args];
  const size = Math.ceil(args.length / 3);
  const pieces: string[] = [];
  for (let at = 0; at < args.length; at += size) pieces.push(args.slice(at, at + size));
  return pieces;
}
