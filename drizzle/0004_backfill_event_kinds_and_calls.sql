-- Events stored before event kinds existed are all Slick ship events; their partner type is in the payload.
UPDATE "inbound_events" SET "kind" = 'ship-event', "type" = "payload"->>'eventType' WHERE "kind" IS NULL AND "type" = 'ship-event';--> statement-breakpoint
UPDATE "inbound_events" SET "kind" = 'ship-event' WHERE "kind" IS NULL;--> statement-breakpoint
ALTER TABLE "inbound_events" ALTER COLUMN "kind" SET NOT NULL;--> statement-breakpoint
-- Slick confirmations move from their per-order column to the per-order call record, naming the
-- `shipped` event they confirm; one whose event cannot be found is recorded failed, for a person.
INSERT INTO "order_calls" ("order_id", "kind", "key", "state", "last_error", "data", "updated_at")
SELECT c."order_id", 'slick.ship-confirmation', '',
       CASE WHEN c."ship_event_id" IS NULL THEN 'failed' ELSE c."slick_confirmation" END,
       CASE WHEN c."ship_event_id" IS NULL THEN 'no applied shipped event found when call records were introduced' END,
       jsonb_build_object('orderId', c."order_id", 'shipEventId', coalesce(c."ship_event_id", '')),
       c."updated_at"
FROM (SELECT o."order_id", o."slick_confirmation", o."updated_at",
             (SELECT e."event_id" FROM "inbound_events" e
              WHERE e."order_id" = o."order_id" AND e."state" = 'applied' AND e."payload"->>'eventType' = 'shipped'
              ORDER BY e."processed_at" DESC LIMIT 1) AS "ship_event_id"
      FROM "orders" o WHERE o."slick_confirmation" IS NOT NULL) c
ON CONFLICT DO NOTHING;--> statement-breakpoint
-- Customer notifications already sent stay at most once per order and status. One claimed but never
-- marked sent was either in flight (recently claimed: still owed) or failed for good long ago (its job
-- dead-lettered): that one is recorded failed, to be retried by a person rather than sent unasked.
INSERT INTO "order_calls" ("order_id", "kind", "key", "state", "last_error", "data", "created_at", "updated_at")
SELECT n."order_id", 'notify.customer', n."status"::text,
       CASE WHEN n."state" = 'sent' THEN 'confirmed'
            WHEN n."state" = 'failed' OR n."claimed_at" < now() - interval '1 hour' THEN 'failed'
            ELSE 'pending' END,
       CASE WHEN n."state" <> 'sent' AND (n."state" = 'failed' OR n."claimed_at" < now() - interval '1 hour')
            THEN 'not sent when call records were introduced' END,
       jsonb_build_object('orderId', n."order_id", 'status', n."status"),
       n."claimed_at", coalesce(n."sent_at", n."claimed_at")
FROM "notifications" n
ON CONFLICT DO NOTHING;
