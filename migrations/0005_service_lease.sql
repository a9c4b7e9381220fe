-- 0005_service_lease.sql
--
-- Leases: how several replicas of one daemon (finder, validator, monitor, synchronizer) share
-- its work on one database without a coordinator of their own (docs/scaling.md). A unit of work
-- (a relay to walk or check, a candidate to validate, a publication) is a key; the replica that
-- claims a key holds it until the lease expires, and renews it while it works. A replica that
-- dies (kill -9, partitioned from the database) stops renewing, and after the lease's time to
-- live any other replica may claim the key. A finished key stays marked with the time it was
-- finished, so the other replicas of the same cycle do not do it again.
--
-- Times are the database server's clock (clock_timestamp()), never a replica's: replicas on
-- machines whose clocks disagree still agree on who holds what.
--
-- Expand-only (README rule 2): a new schema `lease` with one table and seven functions; nothing
-- 6.6.9 uses changes, and schema public (what 6.6.9's API lists) is left as it was.
-- A 6.6.9 daemon does not know leases: it neither takes nor respects them (docs/scaling.md says
-- what that means for an operator mixing both).

-- Objects belong in schema public (see the same check in 0001).
DO $$
BEGIN
    IF current_schema() IS DISTINCT FROM 'public' THEN
        RAISE EXCEPTION 'BigBrotr objects live in schema public, but new objects would go to %',
            coalesce(current_schema(), '(no schema)')
            USING HINT = 'Run with the default search_path ("$user", public) and no schema named '
                         'after the role, or with search_path = public.';
    END IF;
END
$$;

CREATE SCHEMA IF NOT EXISTS lease;
-- Coordination state, not data: only the writing daemons (role writer) use it; the read side
-- (reader) and the refresher do not see it.
REVOKE ALL ON SCHEMA lease FROM PUBLIC;
GRANT USAGE ON SCHEMA lease TO writer;

-- One row per (service, key) that a replica holds or has finished.
--   holder       the replica's id (its `replica.id`, by default host name and process id)
--   acquired_at  when this holder claimed the key
--   expires_at   until when the claim holds without a renewal (an unfinished lease)
--   finished_at  when the holder finished the key (NULL while it works on it)
CREATE TABLE IF NOT EXISTS lease.service_lease (
    service_name TEXT NOT NULL,
    lease_key TEXT NOT NULL,
    holder TEXT NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    PRIMARY KEY (service_name, lease_key),
    CONSTRAINT service_lease_holder_not_empty CHECK (holder <> '')
);

GRANT SELECT, INSERT, UPDATE, DELETE ON lease.service_lease TO writer;

-- Claims, in the order given, at most p_limit of p_keys that are free for p_holder: never
-- claimed, or finished before p_cycle_start (done in an earlier cycle), or unfinished and either
-- expired or already p_holder's (a claim is idempotent). Returns the keys claimed; each is held
-- for p_ttl seconds. Two replicas claiming the same key at once: the second waits for the
-- first's row and then finds it taken, so exactly one gets it. A key given twice counts once.
CREATE OR REPLACE FUNCTION lease.acquire(
    p_service_name TEXT,
    p_holder TEXT,
    p_keys TEXT[],
    p_ttl DOUBLE PRECISION,
    p_limit INTEGER,
    p_cycle_start TIMESTAMPTZ
)
RETURNS SETOF TEXT
LANGUAGE sql
AS $$
    WITH clock AS (SELECT clock_timestamp() AS now),
    wanted AS (
        SELECT u.k
        FROM unnest(p_keys) WITH ORDINALITY AS u(k, ord)
        WHERE u.k IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM lease.service_lease AS l, clock
            WHERE l.service_name = p_service_name AND l.lease_key = u.k
              AND CASE
                      WHEN l.finished_at IS NOT NULL THEN l.finished_at >= p_cycle_start
                      ELSE l.holder <> p_holder AND l.expires_at > clock.now
                  END)
        GROUP BY u.k
        ORDER BY min(u.ord)
        LIMIT greatest(p_limit, 0)
    )
    INSERT INTO lease.service_lease AS l
        (service_name, lease_key, holder, acquired_at, expires_at, finished_at)
    SELECT p_service_name, w.k, p_holder, clock.now,
           clock.now + make_interval(secs => p_ttl), NULL
    FROM wanted AS w, clock
    -- Rows are locked in key order, whatever order each replica asked in: two claims over
    -- the same keys wait for each other instead of deadlocking.
    ORDER BY w.k
    ON CONFLICT (service_name, lease_key) DO UPDATE
        SET holder = EXCLUDED.holder,
            acquired_at = CASE WHEN l.holder = EXCLUDED.holder AND l.finished_at IS NULL
                               THEN l.acquired_at ELSE EXCLUDED.acquired_at END,
            expires_at = EXCLUDED.expires_at,
            finished_at = NULL
        -- Re-checked on the row as it is now (a concurrent claim may have taken it).
        WHERE CASE
                  WHEN l.finished_at IS NOT NULL THEN l.finished_at < p_cycle_start
                  ELSE l.holder = EXCLUDED.holder OR l.expires_at <= EXCLUDED.acquired_at
              END
    RETURNING l.lease_key;
$$;

-- Extends p_holder's unfinished leases among p_keys by p_ttl seconds from now. Returns the keys
-- still held: a key missing from the answer was taken over (its lease had expired), and its
-- work must stop.
CREATE OR REPLACE FUNCTION lease.renew(
    p_service_name TEXT,
    p_holder TEXT,
    p_keys TEXT[],
    p_ttl DOUBLE PRECISION
)
RETURNS SETOF TEXT
LANGUAGE sql
AS $$
    UPDATE lease.service_lease AS l
    SET expires_at = clock_timestamp() + make_interval(secs => p_ttl)
    WHERE l.service_name = p_service_name AND l.holder = p_holder
      AND l.finished_at IS NULL AND l.lease_key = ANY (p_keys)
    RETURNING l.lease_key;
$$;

-- Marks p_holder's unfinished leases among p_keys finished now: done for the cycles that started
-- before now. Returns how many it marked.
CREATE OR REPLACE FUNCTION lease.finish(
    p_service_name TEXT,
    p_holder TEXT,
    p_keys TEXT[]
)
RETURNS INTEGER
LANGUAGE plpgsql
AS $$
DECLARE
    v_rows INTEGER;
BEGIN
    UPDATE lease.service_lease AS l
    SET finished_at = clock_timestamp(), expires_at = clock_timestamp()
    WHERE l.service_name = p_service_name AND l.holder = p_holder
      AND l.finished_at IS NULL AND l.lease_key = ANY (p_keys);
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END;
$$;

-- Gives p_holder's unfinished leases among p_keys back unfinished (a replica stopping, or
-- giving up on a key for this cycle): any replica may claim them at once. Returns how many.
CREATE OR REPLACE FUNCTION lease.release(
    p_service_name TEXT,
    p_holder TEXT,
    p_keys TEXT[]
)
RETURNS INTEGER
LANGUAGE plpgsql
AS $$
DECLARE
    v_rows INTEGER;
BEGIN
    DELETE FROM lease.service_lease AS l
    WHERE l.service_name = p_service_name AND l.holder = p_holder
      AND l.finished_at IS NULL AND l.lease_key = ANY (p_keys);
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END;
$$;

-- The keys among p_keys that p_holder holds unfinished, locked FOR SHARE until the end of the
-- calling transaction: no other replica can take them over before it commits. A writer calls it
-- in the transaction that records the work (a cursor, a checkpoint) and records only the keys
-- it returns, so a replica that lost a lease never writes over its successor.
CREATE OR REPLACE FUNCTION lease.fence(
    p_service_name TEXT,
    p_holder TEXT,
    p_keys TEXT[]
)
RETURNS SETOF TEXT
LANGUAGE sql
AS $$
    SELECT l.lease_key FROM lease.service_lease AS l
    WHERE l.service_name = p_service_name AND l.holder = p_holder
      AND l.finished_at IS NULL AND l.lease_key = ANY (p_keys)
    FOR SHARE;
$$;

-- The keys among p_keys that another replica holds unfinished and unexpired: work p_holder may
-- not claim now but must wait for (it is either finished or given back, or its lease expires).
CREATE OR REPLACE FUNCTION lease.pending(
    p_service_name TEXT,
    p_holder TEXT,
    p_keys TEXT[]
)
RETURNS SETOF TEXT
LANGUAGE sql
AS $$
    SELECT l.lease_key FROM lease.service_lease AS l
    WHERE l.service_name = p_service_name AND l.holder <> p_holder
      AND l.finished_at IS NULL AND l.expires_at > clock_timestamp()
      AND l.lease_key = ANY (p_keys);
$$;

-- Deletes the service's rows that no cycle can need any more: finished, or expired unfinished
-- (a replica that died), more than p_older_than seconds ago. A finished row only matters to
-- cycles that started before it was finished; with p_older_than at least the longest cycle
-- (the daemons pass a week, the longest interval), none does. Returns how many it deleted.
CREATE OR REPLACE FUNCTION lease.purge(
    p_service_name TEXT,
    p_older_than DOUBLE PRECISION
)
RETURNS INTEGER
LANGUAGE plpgsql
AS $$
DECLARE
    v_rows INTEGER;
BEGIN
    DELETE FROM lease.service_lease AS l
    WHERE l.service_name = p_service_name
      AND COALESCE(l.finished_at, l.expires_at)
          < clock_timestamp() - make_interval(secs => p_older_than);
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END;
$$;

REVOKE ALL ON FUNCTION lease.acquire(TEXT, TEXT, TEXT[], DOUBLE PRECISION, INTEGER, TIMESTAMPTZ)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION lease.renew(TEXT, TEXT, TEXT[], DOUBLE PRECISION) FROM PUBLIC;
REVOKE ALL ON FUNCTION lease.finish(TEXT, TEXT, TEXT[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION lease.release(TEXT, TEXT, TEXT[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION lease.fence(TEXT, TEXT, TEXT[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION lease.pending(TEXT, TEXT, TEXT[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION lease.purge(TEXT, DOUBLE PRECISION) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lease.acquire(TEXT, TEXT, TEXT[], DOUBLE PRECISION, INTEGER, TIMESTAMPTZ)
    TO writer;
GRANT EXECUTE ON FUNCTION lease.renew(TEXT, TEXT, TEXT[], DOUBLE PRECISION) TO writer;
GRANT EXECUTE ON FUNCTION lease.finish(TEXT, TEXT, TEXT[]) TO writer;
GRANT EXECUTE ON FUNCTION lease.release(TEXT, TEXT, TEXT[]) TO writer;
GRANT EXECUTE ON FUNCTION lease.fence(TEXT, TEXT, TEXT[]) TO writer;
GRANT EXECUTE ON FUNCTION lease.pending(TEXT, TEXT, TEXT[]) TO writer;
GRANT EXECUTE ON FUNCTION lease.purge(TEXT, DOUBLE PRECISION) TO writer;
