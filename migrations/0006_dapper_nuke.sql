CREATE TABLE "inbox_dead_letters" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"channel" text NOT NULL,
	"platform_message_id" text NOT NULL,
	"reason" text NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX "inbox_dead_letters_message_uq" ON "inbox_dead_letters" USING btree ("channel","platform_message_id");