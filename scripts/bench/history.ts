import { performance } from "node:perf_hooks";
import { sql } from "drizzle-orm";
import { buildPrompt, defaultSystemPrompt } from "../../src/conversation/prompt.ts";
import { createConversationStore, type ConversationStore } from "../../src/conversation/store.ts";
import { openDatabase, rowsOf, type DatabaseTarget } from "../../src/db/client.ts";
import { createLogger } from "../../src/observability/logger.ts";
import { percentile } from "./load.ts";
import { round } from "./report.ts";

/**
 * Long histories: users whose conversations already hold many messages, seeded in bulk with one INSERT … SELECT
 * generate_series, and the time Parley's prompt assembly takes for them (the conversation row with its recent turns, in one query, and
 * buildPrompt, as the conversation service does), measured in this process on the same database Parley uses.
 */

/** The page of recent turns the conversation service reads (HISTORY_PAGE in src/conversation/service.ts). */
const HISTORY_PAGE = 500;
const BUDGET_TOKENS = 24_000;

export interface SeededUser {
  telegramId: number;
  conversationId: number;
  messages: number;
}

export async function seedHistories(target: DatabaseTarget, users: Array<{ telegramId: number; messages: number }>): Promise<SeededUser[]> {
  const database = await openDatabase(target, createLogger({ level: "silent", secrets: [] }));
  try {
    await database.migrate();
    const seeded: SeededUser[] = [];
    for (const user of users) {
      const key = `telegram:${user.telegramId}`;
      await database.db.execute(sql`insert into users (key, channel, display_name, status) values (${key}, 'telegram', 'Seeded', 'allowed') on conflict do nothing`);
      const [row] = rowsOf<{ id: number | string }>(
        await database.db.execute(sql`insert into conversations (user_key, chat_key) values (${key}, ${key}) returning id`),
      );
      const conversationId = Number(row!.id);
      // About 50 tokens a turn, as chat messages go; alternating user and assistant.
      await database.db.execute(sql`
        insert into messages (conversation_id, role, text, tokens, delivered_at)
        select ${conversationId}, case when g % 2 = 1 then 'user' else 'assistant' end,
               'Message ' || g || ' of a long conversation: ' || repeat('lorem ipsum dolor sit amet ', 6), 50,
               case when g % 2 = 0 then now() end
        from generate_series(1, ${user.messages}) as g`);
      seeded.push({ telegramId: user.telegramId, conversationId, messages: user.messages });
    }
    await database.db.execute(sql`analyze messages`);
    return seeded;
  } finally {
    await database.close();
  }
}

export interface AssemblyTiming {
  messages: number;
  /**
   * Median and 95th percentile, in milliseconds, of what the service does for a message: read the conversation row with
   * its recent turns, buildPrompt. Here the next message of a conversation this process has seen: its turns are
   * cached, and the query reads only newer ones (none here; one or two in the service, the reply and the new message).
   */
  p50Ms: number;
  p95Ms: number;
  /** The same for the first message after a start: a new store, nothing cached, the whole page read. */
  coldP50Ms: number;
  coldP95Ms: number;
  turnsInPrompt: number;
}

/** Times prompt assembly for each user, interleaved so that all see the same machine load. */
export async function timePromptAssembly(target: DatabaseTarget, users: SeededUser[], iterations: number): Promise<AssemblyTiming[]> {
  const database = await openDatabase(target, createLogger({ level: "silent", secrets: [] }));
  try {
    const system = defaultSystemPrompt(new Date());
    const turns = users.map(() => 0);
    const once = async (store: ConversationStore, u: number) => {
      const key = `telegram:${users[u]!.telegramId}` as const;
      const started = performance.now();
      const { conversation, recent } = await store.openConversationWithTurns(key, key, HISTORY_PAGE);
      const prompt = buildPrompt({ system, summary: conversation.summary, recent, budgetTokens: BUDGET_TOKENS });
      const elapsed = performance.now() - started;
      turns[u] = prompt.messages.length;
      return elapsed;
    };
    const store = createConversationStore(database.db);
    const warm = users.map(() => [] as number[]);
    const cold = users.map(() => [] as number[]);
    // The first 20 rounds warm up; in each, every user's message is timed with the warm store and with a new one.
    for (let i = 0; i < 20 + iterations; i++) {
      for (let u = 0; u < users.length; u++) {
        const steady = await once(store, u);
        const first = await once(createConversationStore(database.db), u);
        if (i < 20) continue;
        warm[u]!.push(steady);
        cold[u]!.push(first);
      }
    }
    const ms = (times: number[], p: number) => round(percentile(times, p), 3);
    return users.map((user, u) => ({
      messages: user.messages,
      p50Ms: ms(warm[u]!, 50),
      p95Ms: ms(warm[u]!, 95),
      coldP50Ms: ms(cold[u]!, 50),
      coldP95Ms: ms(cold[u]!, 95),
      turnsInPrompt: turns[u]!,
    }));
  } finally {
    await database.close();
  }
}
