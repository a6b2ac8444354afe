-- Events stored before event kinds existed are all Slick ship events; their partner type is in the payload.
UPDATE "inbound_events" SET "kind" = 'ship-event', "type" = "payload"->>'eventType' WHERE "kind" IS NULL AND "type" = 'ship-event';--> statement-breakpoint
UPDATE "inbound_events" SET "kind" = 'ship-event' WHERE "kind" IS NULL;--> statement-breakpoint
ALTER TABLE "inbound_events" ALTER COLUMN "kind" SET NOT NULL;--> statement-breakpoint
-- Slick confirmations move from their per-order column to the per-order call record.
INSERT INTO "order_calls" ("order_id", "kind", "key", "state", "data", "updated_at")
SELECT o."order_id", 'slick.ship-confirmation', '', o."slick_confirmation",
       jsonb_build_object('orderId', o."order_id", 'shipEventId',
         (SELECT e."event_id" FROM "inbound_events" e
          WHERE e."order_id" = o."order_id" AND e."state" = 'applied' AND e."payload"->>'eventType' = 'shipped'
          ORDER BY e."processed_at" DESC LIMIT 1)),
       o."updated_at"
FROM "orders" o WHERE o."slick_confirmation" IS NOT NULL
ON CONFLICT DO NOTHING;--> statement-breakpoint
-- Customer notifications already sent or claimed stay at most once per order and status.
INSERT INTO "order_calls" ("order_id", "kind", "key", "state", "data", "created_at", "updated_at")
SELECT n."order_id", 'notify.customer', n."status"::text,
       CASE n."state" WHEN 'sent' THEN 'confirmed' WHEN 'failed' THEN 'failed' ELSE 'pending' END,
       jsonb_build_object('orderId', n."order_id", 'status', n."status"),
       n."claimed_at", coalesce(n."sent_at", n."claimed_at")
FROM "notifications" n
ON CONFLICT DO NOTHING;
