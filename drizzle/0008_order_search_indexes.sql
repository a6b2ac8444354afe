DROP INDEX "orders_status_idx";--> statement-breakpoint
CREATE INDEX "orders_status_updated_idx" ON "orders" USING btree ("status","updated_at","order_id");--> statement-breakpoint
CREATE INDEX "orders_updated_idx" ON "orders" USING btree ("updated_at","order_id");--> statement-breakpoint
CREATE INDEX "orders_location_updated_idx" ON "orders" USING btree ("ship_from_location_id","updated_at","order_id");--> statement-breakpoint
CREATE INDEX "orders_tracking_idx" ON "orders" USING btree ("tracking_id") WHERE "orders"."tracking_id" is not null;--> statement-breakpoint
CREATE INDEX "orders_customer_name_idx" ON "orders" USING btree ((lower("customer" ->> 'name') collate "C")) WHERE ("orders"."customer" ->> 'name') is not null;--> statement-breakpoint
CREATE INDEX "orders_customer_phone_idx" ON "orders" USING btree (lower("customer" ->> 'phone')) WHERE ("orders"."customer" ->> 'phone') is not null;--> statement-breakpoint
CREATE INDEX "orders_customer_email_idx" ON "orders" USING btree (lower("customer" ->> 'email')) WHERE ("orders"."customer" ->> 'email') is not null;