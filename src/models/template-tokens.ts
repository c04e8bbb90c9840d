import type { ModelMessage } from "ai";

/**
 * Chat-template control tokens (`<|im_start|>`, `<|eot_id|>`, `[INST]`, `<start_of_turn>`, …) in user text can end a
 * turn and forge a system message when a self-hosted server (Ollama, vLLM, llama.cpp) renders the prompt with its
 * template (scenario B10). They are removed from what is sent to those providers; hosted APIs tokenize them as text.
 * Pure.
 */

const TOKENS = /<\|[a-z0-9_]{1,40}\|>|\[\/?INST\]|<<\/?SYS>>|<\/?(?:start|end)_of_turn>/gi;

export function stripTemplateTokens(text: string): string {
  return text.replace(TOKENS, "");
}

/** The messages with template tokens removed from every text (strings and text parts); other parts as they were. */
export function stripTemplateTokensFrom(messages: readonly ModelMessage[]): ModelMessage[] {
  return messages.map((message): ModelMessage => {
    if (message.role === "tool") return message;
    if (typeof message.content === "string") return { ...message, content: stripTemplateTokens(message.content) } as ModelMessage;
    return {
      ...message,
      content: message.content.map((part) => (part.type === "text" ? { ...part, text: stripTemplateTokens(part.text) } : part)),
    } as ModelMessage;
  });
}
