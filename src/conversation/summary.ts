import { truncate } from "../core/split-text.ts";
import type { Logger } from "../observability/logger.ts";
import type { ModelRouter } from "../models/router.ts";
import type { ConversationRow, ConversationStore } from "./store.ts";

const FOLD_LIMIT = 200;
/**
 * The summary rides in every later prompt, so its size is bounded whatever the model writes: the call may write this
 * many tokens, and what is kept is cut at SUMMARY_MAX_CHARS (about 300 words asked for is ~2,000 characters).
 */
const SUMMARY_MAX_TOKENS = 800;
export const SUMMARY_MAX_CHARS = 4_000;

/**
 * Folds the turns that no longer fit the prompt into the conversation's rolling summary with one model call. A
 * failure only costs context: the answer was already delivered, so it is logged and tried again next time.
 */
export async function foldIntoSummary(args: {
  store: ConversationStore;
  router: ModelRouter;
  log: Logger;
  signal: AbortSignal;
  conversation: ConversationRow;
  /** Turns before this id (and after the current summary) are folded. */
  beforeId: number;
  userKey: string;
}): Promise<void> {
  const { store, router, log, conversation } = args;
  const turns = await store.turnsBetween(conversation.id, conversation.summaryThroughId ?? 0, args.beforeId - 1, FOLD_LIMIT);
  const last = turns.at(-1);
  if (!last) return;
  const transcript = turns.map((t) => `${t.role === "user" ? "User" : "Assistant"}: ${t.text}`).join("\n\n");
  try {
    const { text } = await router.stream({
      system:
        "You maintain the memory of a chat between a user and an assistant. Write a concise summary (at most 300 " +
        "words) that keeps facts about the user, their preferences, open questions and decisions. Write only the summary.",
      messages: [
        {
          role: "user",
          content: `${conversation.summary ? `Summary so far:\n${conversation.summary}\n\n` : ""}New part of the conversation:\n${transcript}`,
        },
      ],
      signal: args.signal,
      maxOutputTokens: SUMMARY_MAX_TOKENS,
      trace: { purpose: "summary", userKey: args.userKey },
    });
    await store.saveSummary(conversation.id, truncate(text.trim(), SUMMARY_MAX_CHARS), last.id);
  } catch (error) {
    log.warn({ err: error, conversationId: conversation.id }, "could not fold old turns into the summary");
  }
}
