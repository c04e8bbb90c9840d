ALTER TABLE "model_calls" ADD COLUMN "reasoning" text;--> statement-breakpoint
ALTER TABLE "model_calls" ADD COLUMN "tools" jsonb;--> statement-breakpoint
CREATE INDEX "model_calls_parent_idx" ON "model_calls" USING btree ("parent_id");