-- Wakes the outbox relay when a transaction that wrote the outbox commits: one notification per
-- statement (Postgres folds identical notifications of one transaction into one), delivered at commit.
CREATE OR REPLACE FUNCTION hub_outbox_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('hub_outbox', '');
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER outbox_written AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION hub_outbox_written();
