CREATE TABLE "cod_ledger" (
	"order_id" text PRIMARY KEY NOT NULL,
	"expected_amount" numeric(12, 2) NOT NULL,
	"collected_amount" numeric(12, 2),
	"collected_at" timestamp with time zone,
	"collected_by" text,
	"event_id" text,
	"relay" text,
	"confirmed_at" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "order_discrepancies" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"order_id" text NOT NULL,
	"code" text NOT NULL,
	"tier" integer,
	"detail" jsonb NOT NULL,
	"opened_at" timestamp with time zone DEFAULT now() NOT NULL,
	"resolved_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "order_tiers" (
	"order_id" text NOT NULL,
	"tier" integer NOT NULL,
	"state" text NOT NULL,
	"detail" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "order_tiers_order_id_tier_pk" PRIMARY KEY("order_id","tier")
);
--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "partner_id" text;--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "partner_name" text;--> statement-breakpoint
CREATE UNIQUE INDEX "order_discrepancies_one_open_uq" ON "order_discrepancies" USING btree ("order_id","code") WHERE "order_discrepancies"."resolved_at" is null;--> statement-breakpoint
CREATE INDEX "order_discrepancies_order_idx" ON "order_discrepancies" USING btree ("order_id","opened_at");--> statement-breakpoint
CREATE INDEX "order_tiers_pending_idx" ON "order_tiers" USING btree ("created_at") WHERE "order_tiers"."state" = 'pending';