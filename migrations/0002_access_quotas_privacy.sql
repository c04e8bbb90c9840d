CREATE TABLE "pairing_requests" (
	"user_key" text PRIMARY KEY NOT NULL,
	"channel" text NOT NULL,
	"display_name" text,
	"code" text,
	"expires_at" timestamp with time zone,
	"notified_at" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "pairing_requests_code_unique" UNIQUE("code")
);
--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "quota_messages_per_minute" integer;--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "quota_contemplations_per_hour" integer;--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "quota_tokens_per_day" integer;--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "quota_cost_per_day_usd" double precision;--> statement-breakpoint
CREATE INDEX "pairing_requests_channel_idx" ON "pairing_requests" USING btree ("channel","expires_at");--> statement-breakpoint
CREATE INDEX "inbox_user_idx" ON "inbox" USING btree ("user_key","id");--> statement-breakpoint
CREATE INDEX "messages_created_idx" ON "messages" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "model_calls_user_idx" ON "model_calls" USING btree ("user_key","started_at");