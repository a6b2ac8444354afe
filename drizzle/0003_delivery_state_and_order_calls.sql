CREATE TABLE "order_calls" (
	"order_id" text NOT NULL,
	"kind" text NOT NULL,
	"key" text DEFAULT '' NOT NULL,
	"state" text DEFAULT 'pending' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"last_error" text,
	"data" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "order_calls_order_id_kind_key_pk" PRIMARY KEY("order_id","kind","key")
);
--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "delivery_attempts" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "delivery" jsonb;--> statement-breakpoint
ALTER TABLE "inbound_events" ADD COLUMN "kind" text;--> statement-breakpoint
CREATE INDEX "order_calls_pending_idx" ON "order_calls" USING btree ("updated_at") WHERE "order_calls"."state" = 'pending';