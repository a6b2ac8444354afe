ALTER TABLE "notifications" DISABLE ROW LEVEL SECURITY;--> statement-breakpoint
DROP TABLE "notifications" CASCADE;--> statement-breakpoint
DROP INDEX "orders_slick_pending_idx";--> statement-breakpoint
ALTER TABLE "inbound_events" ALTER COLUMN "kind" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "orders" DROP COLUMN "slick_confirmation";