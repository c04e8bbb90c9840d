import type { Logger } from "pino";
import { errorMessage } from "../../src/core/errors.ts";
import type { InboundMessage, OnMessage } from "../../src/core/types.ts";
import { backoffDelay, type Backoff, type Timers } from "./timers.ts";

/**
 * whatsapp-web.js hands each message over once and never again, so a message that cannot be stored yet (the
 * database is down) is kept here and offered again with backoff until it is stored. Nothing is dropped while the
 * process lives; what is still waiting when the channel stops is logged by id.
 */

export interface InboundQueue {
  push(message: InboundMessage): void;
  /** Messages stored in no attempt yet. */
  pending(): number;
  /** Stops retrying and reports what is left. */
  close(): void;
}

export function createInboundQueue(deps: {
  deliver: OnMessage;
  timers: Timers;
  log: Logger;
  backoff: Backoff;
  random: () => number;
}): InboundQueue {
  const waiting = new Map<string, { message: InboundMessage; timer?: unknown }>();
  let closed = false;

  async function attempt(message: InboundMessage, attemptNo: number): Promise<void> {
    const id = message.platformMessageId;
    try {
      await deps.deliver(message);
      waiting.delete(id);
      if (attemptNo > 0) deps.log.info({ platformMessageId: id, attempts: attemptNo + 1 }, "WhatsApp message stored after retrying");
    } catch (error) {
      if (closed) return;
      const retryInMs = backoffDelay(attemptNo, deps.backoff, deps.random);
      deps.log.warn(
        { platformMessageId: id, chat: message.chat, attempt: attemptNo + 1, retryInMs, err: errorMessage(error) },
        "storing a WhatsApp message failed; it is kept in memory and retried (WhatsApp will not deliver it again)",
      );
      const entry = waiting.get(id);
      if (entry) entry.timer = deps.timers.setTimeout(() => void attempt(message, attemptNo + 1), retryInMs);
    }
  }

  return {
    push(message) {
      if (closed || waiting.has(message.platformMessageId)) return;
      waiting.set(message.platformMessageId, { message });
      void attempt(message, 0);
    },
    pending: () => waiting.size,
    close() {
      closed = true;
      for (const entry of waiting.values()) deps.timers.clearTimeout(entry.timer);
      if (waiting.size > 0) {
        deps.log.error(
          { platformMessageIds: [...waiting.keys()] },
          `the WhatsApp channel stopped with ${waiting.size} message(s) not stored; they are lost`,
        );
      }
      waiting.clear();
    },
  };
}
