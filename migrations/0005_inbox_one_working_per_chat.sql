-- Rows left claimed twice in one chat by an earlier version (none should exist) go back to waiting, oldest kept.
UPDATE "inbox" SET "state" = 'pending', "lease_until" = NULL
WHERE "state" = 'working' AND "id" NOT IN (SELECT min("id") FROM "inbox" WHERE "state" = 'working' GROUP BY "chat_key");--> statement-breakpoint
CREATE UNIQUE INDEX "inbox_one_working_per_chat_uq" ON "inbox" USING btree ("chat_key") WHERE "inbox"."state" = 'working';
