-- Wakes the outbox relay only when it sleeps. A NOTIFY takes one lock for the whole cluster at commit
-- and holds it through the commit's WAL flush, so when every outbox write notified (0009), every such
-- commit waited for the one before it, row locks held meanwhile: under load half the hub's statements
-- were found waiting for that lock. Now the relay holds advisory lock (7500, 1) exclusively while it
-- sleeps (src/workers/outbox-relay.ts, RelaySleep), and a writer notifies only when it cannot take
-- that lock shared. A writer that can holds it shared until its own commit, so the relay cannot fall
-- asleep before that commit is visible to the look it takes once asleep: no wake-up is lost.
CREATE OR REPLACE FUNCTION hub_outbox_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT pg_try_advisory_xact_lock_shared(7500, 1) THEN
    PERFORM pg_notify('hub_outbox', '');
  END IF;
  RETURN NULL;
END
$$;
