-- conversations.history_epoch is raised whenever turns of a conversation are deleted or their content changes, so
-- that a process's cache of recent turns (src/conversation/history-cache.ts) reads that conversation afresh.
-- Deletions (retention, /forget, a conversation's cascade): once per statement, for every conversation touched.
CREATE FUNCTION "messages_deleted_bump_history_epoch"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE "conversations" SET "history_epoch" = "history_epoch" + 1
  WHERE "id" IN (SELECT DISTINCT "conversation_id" FROM "deleted_messages");
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "messages_deleted_bump_history_epoch" AFTER DELETE ON "messages"
  REFERENCING OLD TABLE AS "deleted_messages"
  FOR EACH STATEMENT EXECUTE FUNCTION "messages_deleted_bump_history_epoch"();
--> statement-breakpoint
-- Changed turns. PostgreSQL allows no transition table on a trigger with a column list, so this one is per row; the
-- column list keeps it off the hot path (every reply's delivery updates delivered_at), and nothing in Parley updates
-- these columns.
CREATE FUNCTION "messages_changed_bump_history_epoch"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE "conversations" SET "history_epoch" = "history_epoch" + 1
  WHERE "id" IN (OLD."conversation_id", NEW."conversation_id");
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "messages_changed_bump_history_epoch" AFTER UPDATE OF "conversation_id", "role", "text", "tokens", "media" ON "messages"
  FOR EACH ROW
  WHEN ((OLD."conversation_id", OLD."role", OLD."text", OLD."tokens", OLD."media")
    IS DISTINCT FROM (NEW."conversation_id", NEW."role", NEW."text", NEW."tokens", NEW."media"))
  EXECUTE FUNCTION "messages_changed_bump_history_epoch"();
--> statement-breakpoint
-- An operator emptying the table by hand.
CREATE FUNCTION "messages_truncated_bump_history_epoch"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE "conversations" SET "history_epoch" = "history_epoch" + 1;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "messages_truncated_bump_history_epoch" AFTER TRUNCATE ON "messages"
  FOR EACH STATEMENT EXECUTE FUNCTION "messages_truncated_bump_history_epoch"();
