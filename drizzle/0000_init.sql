CREATE TABLE "locations" (
	"location_id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"region" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "orders" (
	"order_id" text PRIMARY KEY NOT NULL,
	"ship_from_location_id" text NOT NULL,
	"customer" jsonb NOT NULL,
	"payment_method" text NOT NULL,
	"cod_amount" numeric(12, 2),
	"status" integer NOT NULL,
	"sub_step" text,
	"version" integer DEFAULT 1 NOT NULL,
	"history_seq" integer DEFAULT 0 NOT NULL,
	"tracking_id" text,
	"carrier_code" text,
	"estimated_delivery" timestamp with time zone,
	"slick_confirmation" text,
	"registration_hash" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"status_changed_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "status_history" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"order_id" text NOT NULL,
	"seq" integer NOT NULL,
	"from_status" integer,
	"to_status" integer NOT NULL,
	"sub_step" text,
	"occurred_at" timestamp with time zone,
	"recorded_at" timestamp with time zone DEFAULT now() NOT NULL,
	"actor" text NOT NULL,
	"source" text NOT NULL,
	"reason_code" text,
	"event_id" text,
	"note" text,
	"implied" boolean DEFAULT false NOT NULL,
	"override" boolean DEFAULT false NOT NULL
);
--> statement-breakpoint
CREATE TABLE "inbound_events" (
	"event_id" text PRIMARY KEY NOT NULL,
	"source" text NOT NULL,
	"type" text NOT NULL,
	"order_id" text NOT NULL,
	"actor" text NOT NULL,
	"body_hash" text NOT NULL,
	"payload" jsonb NOT NULL,
	"state" text DEFAULT 'queued' NOT NULL,
	"reason" text,
	"order_status" integer,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL,
	"processed_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "outbox" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"position" bigserial NOT NULL,
	"type" text NOT NULL,
	"order_id" text NOT NULL,
	"occurred_at" timestamp with time zone NOT NULL,
	"payload" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"published_at" timestamp with time zone,
	"stream_id" text
);
--> statement-breakpoint
CREATE TABLE "interventions" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"order_id" text NOT NULL,
	"cause" text NOT NULL,
	"state" text DEFAULT 'open' NOT NULL,
	"detail" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"resolved_at" timestamp with time zone,
	"resolved_by" text,
	"resolution" text,
	"note" text
);
--> statement-breakpoint
ALTER TABLE "orders" ADD CONSTRAINT "orders_ship_from_location_id_locations_location_id_fk" FOREIGN KEY ("ship_from_location_id") REFERENCES "public"."locations"("location_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "status_history" ADD CONSTRAINT "status_history_order_id_orders_order_id_fk" FOREIGN KEY ("order_id") REFERENCES "public"."orders"("order_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "orders_status_idx" ON "orders" USING btree ("status","order_id");--> statement-breakpoint
CREATE INDEX "orders_location_status_idx" ON "orders" USING btree ("ship_from_location_id","status");--> statement-breakpoint
CREATE INDEX "orders_slick_pending_idx" ON "orders" USING btree ("updated_at") WHERE "orders"."slick_confirmation" = 'pending';--> statement-breakpoint
CREATE UNIQUE INDEX "status_history_order_seq_uq" ON "status_history" USING btree ("order_id","seq");--> statement-breakpoint
CREATE INDEX "inbound_events_queued_idx" ON "inbound_events" USING btree ("received_at") WHERE "inbound_events"."state" = 'queued';--> statement-breakpoint
CREATE INDEX "inbound_events_order_idx" ON "inbound_events" USING btree ("order_id","received_at");--> statement-breakpoint
CREATE INDEX "outbox_unpublished_idx" ON "outbox" USING btree ("position") WHERE "outbox"."published_at" is null;--> statement-breakpoint
CREATE UNIQUE INDEX "interventions_one_open_uq" ON "interventions" USING btree ("order_id","cause") WHERE "interventions"."state" = 'open';--> statement-breakpoint
CREATE INDEX "interventions_state_idx" ON "interventions" USING btree ("state","created_at");