CREATE TABLE "partner_calls" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"integration" text NOT NULL,
	"operation" text NOT NULL,
	"order_id" text,
	"method" text NOT NULL,
	"url" text NOT NULL,
	"attempt" integer NOT NULL,
	"status" integer,
	"latency_ms" integer NOT NULL,
	"error_class" text,
	"error" text,
	"request_body" jsonb,
	"response_body" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "incidents" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"cause" text NOT NULL,
	"state" text DEFAULT 'open' NOT NULL,
	"severity" text NOT NULL,
	"summary" text NOT NULL,
	"detail" jsonb NOT NULL,
	"opened_at" timestamp with time zone DEFAULT now() NOT NULL,
	"resolved_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "notifications" (
	"order_id" text NOT NULL,
	"status" integer NOT NULL,
	"template" text NOT NULL,
	"state" text DEFAULT 'claimed' NOT NULL,
	"claimed_at" timestamp with time zone DEFAULT now() NOT NULL,
	"sent_at" timestamp with time zone
);
--> statement-breakpoint
CREATE INDEX "partner_calls_order_idx" ON "partner_calls" USING btree ("order_id","id");--> statement-breakpoint
CREATE INDEX "partner_calls_integration_idx" ON "partner_calls" USING btree ("integration","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "incidents_one_open_uq" ON "incidents" USING btree ("cause") WHERE "incidents"."state" = 'open';--> statement-breakpoint
CREATE INDEX "incidents_state_idx" ON "incidents" USING btree ("state","opened_at");--> statement-breakpoint
CREATE UNIQUE INDEX "notifications_order_status_uq" ON "notifications" USING btree ("order_id","status");