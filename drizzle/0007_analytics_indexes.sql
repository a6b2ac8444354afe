CREATE INDEX "orders_created_idx" ON "orders" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "orders_location_created_idx" ON "orders" USING btree ("ship_from_location_id","created_at");--> statement-breakpoint
CREATE INDEX "partner_calls_errors_idx" ON "partner_calls" USING btree ("created_at") WHERE "partner_calls"."error_class" is not null;