import { and, eq, inArray, sql } from "drizzle-orm";
import type { InboundMessage } from "../core/types.ts";
import type { Db } from "../db/client.ts";
import { inbox } from "../db/schema.ts";
import { decideAlbum, mergeAlbum } from "../media/album.ts";
import type { InboxItem } from "./inbox.ts";

/**
 * Albums in the inbox. A platform that sends several photos as one album (Telegram's media groups) delivers one
 * message per photo, sharing a `groupId`. Each part is stored (and acknowledged) on its own, so nothing is lost;
 * the worker that claims the first part waits until the album is complete, then answers the parts as one turn and
 * marks the others done. Because one chat's rows are claimed in order, the first part is always the one claimed.
 */
export type AlbumOutcome = { type: "ready"; item: InboxItem } | { type: "wait"; delayMs: number };

export interface Albums {
  collect(item: InboxItem): Promise<AlbumOutcome>;
}

export function createAlbums(db: Db): Albums {
  return {
    async collect(item) {
      const groupId = item.message.groupId;
      if (!groupId) return { type: "ready", item };
      const rows = await db
        .select({
          id: inbox.id,
          payload: inbox.payload,
          ageMs: sql<number>`(extract(epoch from now() - ${inbox.createdAt}) * 1000)::float8`,
        })
        .from(inbox)
        .where(
          and(
            eq(inbox.chatKey, item.message.chat),
            sql`${inbox.id} >= ${item.id}`,
            sql`(${inbox.id} = ${item.id} or ${inbox.state} = 'pending')`,
            sql`${inbox.payload}->>'groupId' = ${groupId}`,
          ),
        )
        .orderBy(inbox.id);
      const decision = decideAlbum(rows.map((row) => -Number(row.ageMs)), 0);
      if (decision.kind === "wait") {
        // Give the claim back without counting an attempt: waiting for the rest of an album is not a failure.
        await db
          .update(inbox)
          .set({
            state: "pending",
            attempts: sql`greatest(${inbox.attempts} - 1, 0)`,
            leaseUntil: null,
            availableAt: sql`now() + ${`${Math.ceil(decision.untilMs)} milliseconds`}::interval`,
            updatedAt: sql`now()`,
          })
          .where(eq(inbox.id, item.id));
        return { type: "wait", delayMs: decision.untilMs };
      }
      const others = rows.filter((row) => row.id !== item.id);
      if (others.length === 0) return { type: "ready", item };
      await db
        .update(inbox)
        .set({ state: "done", error: `answered with album row ${item.id}`, leaseUntil: null, updatedAt: sql`now()` })
        .where(inArray(inbox.id, others.map((row) => row.id)));
      const parts = [item.message, ...others.map((row) => revive(row.payload))];
      return { type: "ready", item: { ...item, message: mergeAlbum(parts) } };
    },
  };
}

function revive(payload: unknown): InboundMessage {
  const message = payload as InboundMessage & { receivedAt: string };
  return { ...message, receivedAt: new Date(message.receivedAt) };
}
