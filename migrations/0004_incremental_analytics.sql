-- 0004_incremental_analytics.sql
--
-- Incremental analytics: the 13 statistics objects of 6.6.9 become tables kept up to date from
-- the changes since their last refresh, instead of materialized views recomputed from the whole
-- archive; plus relay availability history (relay_uptime_daily, relay_uptime).
--
-- The contract with every daemon stays (README rule 2): each object keeps its name, its columns
-- (names, types, order) and its index names, is readable by the same queries, and is brought up
-- to date by the same zero-argument function <view>_refresh() (and all_statistics_refresh()),
-- which 6.6.9's refresher calls as role refresher. What changes is the relation kind (a table
-- with a primary key where the view had its unique index, so 6.6.9's API still finds the key)
-- and the cost of a refresh: it follows the rows written since the previous refresh, not the
-- size of the archive.
--
-- How (docs/ARCHITECTURE.md, "Incremental analytics", says the same for operators):
--   1. Capture. Statement-level AFTER triggers with transition tables on event, event_relay,
--      relay, relay_metadata and metadata (and on each partition) append one row per inserted
--      or deleted row (an update is both) to the delta tables analytics.*_delta, stamped with
--      the writing transaction's id (xid8). They run inside the writer's transaction: a change
--      and its delta row commit or roll back together.
--   2. Watermark. Three consumers (event, sighting, metadata) each remember the snapshot
--      (pg_snapshot) up to which they have applied the deltas. A refresh takes the current
--      snapshot and applies exactly the delta rows visible in it and not in the stored one:
--      rows of transactions that commit later are picked up by a later refresh, none twice,
--      none lost, whatever the commit order of concurrent writers. Delta rows every consumer
--      has applied are deleted.
--   3. Apply. Counts are maintained from the deltas alone, distinct counts through count tables
--      (a pubkey enters kind_counts.unique_pubkeys when its (pubkey, kind) count goes from 0 to
--      positive, leaves it when it returns to 0). Minimums and maximums grow from inserted rows
--      and are recomputed from the base tables (by index) for the groups that lost rows. The
--      "latest" objects recompute the affected keys from the base tables by index. Time windows
--      (event_count_last_*, relay_uptime) are computed at refresh from hourly buckets plus one
--      partial hour read by index.
--   4. Rebuild. analytics.rebuild() recomputes every object and count table from scratch under
--      a SHARE lock on the base tables (writers wait, readers do not) and resets the watermarks.
--      This migration runs it once; an operator runs it after restoring a partial dump, a
--      TRUNCATE, or anything else that bypassed the triggers.
--
-- Bugs of 6.6.9 fixed on the way (reference §10 where numbered):
--   - event_daily_counts: one event whose created_at lies past year 5,874,780 (a relay can
--     send any 64-bit timestamp) made every refresh fail with "integer out of range" / "date
--     out of range"; such events are left out of the daily counts (and only there).
--   - event_stats: the span of events_per_day is computed in NUMERIC; one event dated near the
--     end of the BIGINT range made 6.6.9's refresh fail with "bigint out of range".
--   - relay_stats: RTT values are cast with analytics.int_or_null; one document holding 12.5
--     made 6.6.9's refresh fail with "invalid input syntax for type integer".
--   - all_statistics_refresh() and a refresh are no longer all-or-nothing over 20 s of work.

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

-- Internal state lives in its own schema: public keeps only the objects daemons and API
-- clients read (6.6.9's API lists every table of public).
CREATE SCHEMA analytics;
GRANT USAGE ON SCHEMA analytics TO writer, reader, refresher;


-- ==========================================================================
-- Helpers
-- ==========================================================================

-- +1 when a count appears (0 -> positive), -1 when it vanishes (positive -> 0), else 0.
CREATE FUNCTION analytics.transition(old_n BIGINT, new_n BIGINT)
RETURNS INTEGER
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN old_n = 0 AND new_n > 0 THEN 1
                WHEN old_n > 0 AND new_n = 0 THEN -1
                ELSE 0 END
$$;

-- NIP-01 category of a kind, as kind_counts.category and event_stats spell it.
CREATE FUNCTION analytics.kind_category(k INTEGER)
RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN k = 1 OR k = 2 OR (k >= 4 AND k <= 44) OR (k >= 1000 AND k <= 9999) THEN 'regular'
        WHEN k = 0 OR k = 3 OR (k >= 10000 AND k <= 19999) THEN 'replaceable'
        WHEN k >= 20000 AND k <= 29999 THEN 'ephemeral'
        WHEN k >= 30000 AND k <= 39999 THEN 'addressable'
        ELSE 'other'
    END
$$;

-- UTC day number of a timestamp (6.6.9's created_at / 86400), or NULL when the day is not a
-- representable DATE (see the header: such an event used to break every refresh).
CREATE FUNCTION analytics.day_of(ts BIGINT)
RETURNS INTEGER
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN ts / 86400 BETWEEN -2440587 AND 2145000000 THEN (ts / 86400)::INTEGER END
$$;

-- The d tag of an addressable event, exactly as events_addressable_latest defines it (0003):
-- the first value of the first "d" tag, the tagvalues fallback for LilBrotr, '' otherwise.
CREATE FUNCTION analytics.d_tag_of(tags JSONB, tagvalues TEXT[])
RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT COALESCE(
        CASE
            WHEN tags IS NOT NULL THEN (
                SELECT t.tag ->> 1
                FROM jsonb_array_elements(tags) WITH ORDINALITY AS t(tag, ord)
                WHERE t.tag ->> 0 = 'd'
                ORDER BY t.ord
                LIMIT 1
            )
            ELSE (
                SELECT substr(v.val, 3)
                FROM unnest(tagvalues) WITH ORDINALITY AS v(val, ord)
                WHERE v.val LIKE 'd:%'
                ORDER BY v.ord
                LIMIT 1
            )
        END,
        ''
    )
$$;

-- Whole seconds of the transaction's clock: the "now" of every time window.
CREATE FUNCTION analytics.epoch_now()
RETURNS BIGINT
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT floor(extract(EPOCH FROM now()))::BIGINT $$;

-- A JSON value as INTEGER when it is a plain integer that fits, else NULL: 6.6.9 cast with
-- ::INTEGER, so one RTT document holding 12.5 or 1e99 made every refresh of relay_stats fail.
CREATE FUNCTION analytics.int_or_null(v TEXT)
RETURNS INTEGER
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN v ~ '^\s*[-+]?[0-9]{1,9}\s*$' THEN v::INTEGER END $$;

-- Whether a nip66_rtt document records a successful open phase.
CREATE FUNCTION analytics.open_ok(data JSONB)
RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT COALESCE(data -> 'logs' ->> 'open_success' = 'true', FALSE) $$;


-- ==========================================================================
-- 1. Capture: delta tables and triggers
-- ==========================================================================
-- No index: a delta table only holds the rows not yet applied by every consumer, and each
-- refresh reads it whole. sign is +1 for an inserted row, -1 for a deleted one.

CREATE TABLE analytics.event_delta (
    xid XID8 NOT NULL DEFAULT pg_current_xact_id(),
    sign SMALLINT NOT NULL,
    id BYTEA NOT NULL,
    pubkey BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    kind INTEGER NOT NULL,
    d_tag TEXT
);

-- pubkey/kind/created_at and network are read at capture time; a deleted sighting whose event
-- or relay was deleted in the same statement has NULLs there, filled in from the event or relay
-- delta of the same transaction when it is applied.
CREATE TABLE analytics.sighting_delta (
    xid XID8 NOT NULL DEFAULT pg_current_xact_id(),
    sign SMALLINT NOT NULL,
    event_id BYTEA NOT NULL,
    relay_url TEXT NOT NULL,
    pubkey BYTEA,
    created_at BIGINT,
    kind INTEGER,
    network TEXT
);

CREATE TABLE analytics.relay_delta (
    xid XID8 NOT NULL DEFAULT pg_current_xact_id(),
    sign SMALLINT NOT NULL,
    url TEXT NOT NULL,
    network TEXT NOT NULL
);

CREATE TABLE analytics.relay_metadata_delta (
    xid XID8 NOT NULL DEFAULT pg_current_xact_id(),
    sign SMALLINT NOT NULL,
    relay_url TEXT NOT NULL,
    metadata_type TEXT NOT NULL,
    generated_at BIGINT NOT NULL,
    metadata_id BYTEA NOT NULL,
    open_ok BOOLEAN
);

-- A deleted metadata document takes its relay_metadata rows with it (cascade): their delta rows
-- then cannot read the RTT result, which this delta of the same transaction keeps.
CREATE TABLE analytics.metadata_delta (
    xid XID8 NOT NULL DEFAULT pg_current_xact_id(),
    id BYTEA NOT NULL,
    type TEXT NOT NULL,
    open_ok BOOLEAN
);

-- Every refresh deletes what it applied: vacuum them after a fixed number of dead rows rather
-- than a fraction of their (small, changing) size, so a refresh never scans a bloated heap.
ALTER TABLE analytics.event_delta SET (autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000, autovacuum_vacuum_insert_scale_factor = 0);
ALTER TABLE analytics.sighting_delta SET (autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000, autovacuum_vacuum_insert_scale_factor = 0);
ALTER TABLE analytics.relay_delta SET (autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000);
ALTER TABLE analytics.relay_metadata_delta SET (autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000);
ALTER TABLE analytics.metadata_delta SET (autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000);

-- Trigger functions are SECURITY DEFINER (owned by refresher, below): any role allowed to
-- write the base tables records its changes, without rights on the analytics schema. Every
-- relation they name is schema-qualified, and their search_path holds only pg_catalog, so no
-- object a writer can create is ever resolved in them. An UPDATE is recorded as the deletion of
-- the old row and the insertion of the new one, and moves what depends on it: the sightings of
-- an event whose author, kind or time changed, or of a relay whose network changed; the
-- monitor results that point at a document whose data changed.
CREATE FUNCTION analytics.capture_event()
RETURNS TRIGGER
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        INSERT INTO analytics.event_delta (sign, id, pubkey, created_at, kind, d_tag)
        SELECT -1, o.id, o.pubkey, o.created_at, o.kind,
               CASE WHEN o.kind BETWEEN 30000 AND 39999
                    THEN analytics.d_tag_of(o.tags, o.tagvalues) END
        FROM old_rows AS o;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO analytics.event_delta (sign, id, pubkey, created_at, kind, d_tag)
        SELECT 1, n.id, n.pubkey, n.created_at, n.kind,
               CASE WHEN n.kind BETWEEN 30000 AND 39999
                    THEN analytics.d_tag_of(n.tags, n.tagvalues) END
        FROM new_rows AS n;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        -- The id is the key (and referenced): a changed id is a new event without sightings.
        INSERT INTO analytics.sighting_delta
            (sign, event_id, relay_url, pubkey, created_at, kind, network)
        SELECT s.sign, er.event_id, er.relay_url,
               CASE WHEN s.sign < 0 THEN o.pubkey ELSE n.pubkey END,
               CASE WHEN s.sign < 0 THEN o.created_at ELSE n.created_at END,
               CASE WHEN s.sign < 0 THEN o.kind ELSE n.kind END,
               r.network
        FROM old_rows AS o
        INNER JOIN new_rows AS n ON n.id = o.id
        INNER JOIN public.event_relay AS er ON er.event_id = o.id
        LEFT JOIN public.relay AS r ON r.url = er.relay_url
        CROSS JOIN (VALUES (-1::SMALLINT), (1::SMALLINT)) AS s(sign)
        WHERE (o.pubkey, o.created_at, o.kind) IS DISTINCT FROM (n.pubkey, n.created_at, n.kind);
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION analytics.capture_event_relay()
RETURNS TRIGGER
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        INSERT INTO analytics.sighting_delta
            (sign, event_id, relay_url, pubkey, created_at, kind, network)
        SELECT -1, o.event_id, o.relay_url, e.pubkey, e.created_at, e.kind, r.network
        FROM old_rows AS o
        LEFT JOIN public.event AS e ON e.id = o.event_id
        LEFT JOIN public.relay AS r ON r.url = o.relay_url;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO analytics.sighting_delta
            (sign, event_id, relay_url, pubkey, created_at, kind, network)
        SELECT 1, n.event_id, n.relay_url, e.pubkey, e.created_at, e.kind, r.network
        FROM new_rows AS n
        LEFT JOIN public.event AS e ON e.id = n.event_id
        LEFT JOIN public.relay AS r ON r.url = n.relay_url;
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION analytics.capture_relay()
RETURNS TRIGGER
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        INSERT INTO analytics.relay_delta (sign, url, network)
        SELECT -1, o.url, o.network FROM old_rows AS o;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO analytics.relay_delta (sign, url, network)
        SELECT 1, n.url, n.network FROM new_rows AS n;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        -- A relay that changes network takes its sightings along. (The url is referenced
        -- without ON UPDATE CASCADE, so only a relay without sightings can change it.)
        INSERT INTO analytics.sighting_delta
            (sign, event_id, relay_url, pubkey, created_at, kind, network)
        SELECT s.sign, er.event_id, er.relay_url, e.pubkey, e.created_at, e.kind,
               CASE WHEN s.sign < 0 THEN o.network ELSE n.network END
        FROM old_rows AS o
        INNER JOIN new_rows AS n ON n.url = o.url
        INNER JOIN public.event_relay AS er ON er.relay_url = o.url
        INNER JOIN public.event AS e ON e.id = er.event_id
        CROSS JOIN (VALUES (-1::SMALLINT), (1::SMALLINT)) AS s(sign)
        WHERE o.network IS DISTINCT FROM n.network;
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION analytics.capture_relay_metadata()
RETURNS TRIGGER
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- open_ok is NULL when the document was deleted by the same statement (a cascade); the
    -- refresh then reads it from analytics.metadata_delta.
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        INSERT INTO analytics.relay_metadata_delta
            (sign, relay_url, metadata_type, generated_at, metadata_id, open_ok)
        SELECT -1, o.relay_url, o.metadata_type, o.generated_at, o.metadata_id,
               CASE WHEN o.metadata_type = 'nip66_rtt' AND m.id IS NOT NULL
                    THEN analytics.open_ok(m.data) END
        FROM old_rows AS o
        LEFT JOIN public.metadata AS m
            ON o.metadata_type = 'nip66_rtt' AND m.id = o.metadata_id AND m.type = o.metadata_type;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO analytics.relay_metadata_delta
            (sign, relay_url, metadata_type, generated_at, metadata_id, open_ok)
        SELECT 1, n.relay_url, n.metadata_type, n.generated_at, n.metadata_id,
               CASE WHEN n.metadata_type = 'nip66_rtt' AND m.id IS NOT NULL
                    THEN analytics.open_ok(m.data) END
        FROM new_rows AS n
        LEFT JOIN public.metadata AS m
            ON n.metadata_type = 'nip66_rtt' AND m.id = n.metadata_id AND m.type = n.metadata_type;
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION analytics.capture_metadata()
RETURNS TRIGGER
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO analytics.metadata_delta (id, type, open_ok)
        SELECT o.id, o.type, analytics.open_ok(o.data) FROM old_rows AS o
        WHERE o.type = 'nip66_rtt';
    ELSE
        -- A document whose data changed: every monitor result pointing at it is withdrawn
        -- with the old data and recorded again with the new.
        INSERT INTO analytics.relay_metadata_delta
            (sign, relay_url, metadata_type, generated_at, metadata_id, open_ok)
        SELECT s.sign, rm.relay_url, rm.metadata_type, rm.generated_at, rm.metadata_id,
               CASE WHEN rm.metadata_type <> 'nip66_rtt' THEN NULL
                    WHEN s.sign < 0 THEN analytics.open_ok(o.data)
                    ELSE analytics.open_ok(n.data) END
        FROM old_rows AS o
        INNER JOIN new_rows AS n ON n.id = o.id AND n.type = o.type
        INNER JOIN public.relay_metadata AS rm
            ON rm.metadata_id = o.id AND rm.metadata_type = o.type
        CROSS JOIN (VALUES (-1::SMALLINT), (1::SMALLINT)) AS s(sign)
        WHERE o.data IS DISTINCT FROM n.data;
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION analytics.capture_truncate()
RETURNS TRIGGER
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO analytics.truncate_log (table_name) VALUES (TG_TABLE_NAME);
    RETURN NULL;
END;
$$;

-- TRUNCATE removes rows without row triggers: it is recorded, and a refresh that meets it stops
-- with an error that says to rebuild (the statistics cannot be derived from what was lost).
CREATE TABLE analytics.truncate_log (
    xid XID8 NOT NULL DEFAULT pg_current_xact_id(),
    table_name TEXT NOT NULL
);

-- The triggers. Only a statement that changed rows pays: transition tables hold exactly the
-- rows that changed (ON CONFLICT DO NOTHING skips are not in them). A statement on a
-- partitioned table fires the parent's statement triggers only; a statement naming one
-- partition (event_p3, event_relay_p7) fires that partition's only: each is captured once.
DO $$
DECLARE
    t RECORD;
BEGIN
    FOR t IN
        SELECT c.relname::TEXT AS name,
               CASE WHEN c.relname IN ('event', 'event_relay') OR c.relispartition
                    THEN CASE WHEN c.relname LIKE 'event\_relay%' THEN 'event_relay'
                              ELSE 'event' END
                    ELSE c.relname::TEXT END AS base
        FROM pg_class AS c
        WHERE c.relnamespace = 'public'::regnamespace
          AND (c.relname IN ('event', 'event_relay', 'relay', 'relay_metadata', 'metadata')
               OR (c.relispartition AND c.relname ~ '^event(_relay)?_p[0-9]+$'))
    LOOP
        IF t.base <> 'metadata' THEN
            EXECUTE format(
                'CREATE TRIGGER analytics_capture_insert AFTER INSERT ON public.%I '
                'REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT '
                'EXECUTE FUNCTION analytics.capture_%s()', t.name, t.base);
        END IF;
        EXECUTE format(
            'CREATE TRIGGER analytics_capture_delete AFTER DELETE ON public.%I '
            'REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT '
            'EXECUTE FUNCTION analytics.capture_%s()', t.name, t.base);
        EXECUTE format(
            'CREATE TRIGGER analytics_capture_update AFTER UPDATE ON public.%I '
            'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT '
            'EXECUTE FUNCTION analytics.capture_%s()', t.name, t.base);
        EXECUTE format(
            'CREATE TRIGGER analytics_capture_truncate AFTER TRUNCATE ON public.%I '
            'FOR EACH STATEMENT EXECUTE FUNCTION analytics.capture_truncate()', t.name);
    END LOOP;
END
$$;

-- Watermarks: the snapshot up to which each consumer has applied the deltas (one row per
-- consumer, written by analytics.rebuild() at the end of this file).
CREATE TABLE analytics.consumer (
    name TEXT PRIMARY KEY,
    applied PG_SNAPSHOT NOT NULL,
    refreshed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);


-- ==========================================================================
-- 2. Count tables (internal state)
-- ==========================================================================

-- Events per (author, kind): kind_counts.unique_pubkeys and pubkey_counts.unique_kinds.
CREATE TABLE analytics.pubkey_kind (
    pubkey BYTEA NOT NULL, kind INTEGER NOT NULL, n BIGINT NOT NULL,
    PRIMARY KEY (pubkey, kind)
);
-- Events per (day, author) and (day, kind): event_daily_counts' distinct counts.
CREATE TABLE analytics.day_pubkey (
    day INTEGER NOT NULL, pubkey BYTEA NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (day, pubkey)
);
CREATE TABLE analytics.day_kind (
    day INTEGER NOT NULL, kind INTEGER NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (day, kind)
);
-- Events per hour of created_at (created_at / 3600): the event_count_last_* windows.
CREATE TABLE analytics.event_hour (hour BIGINT PRIMARY KEY, n BIGINT NOT NULL);
-- A small id per relay URL, so the largest count table below is keyed narrower.
CREATE TABLE analytics.relay_key (
    url TEXT PRIMARY KEY,
    id INTEGER GENERATED ALWAYS AS IDENTITY UNIQUE
);
-- Sightings per (relay, author, kind) with their first and last created_at: the distinct counts
-- of the per-relay objects, and every (relay, author) pair (pubkey_counts_by_relay publishes
-- the pairs with 2 events or more) as the handful of rows under its key prefix.
CREATE TABLE analytics.relay_pubkey_kind (
    relay_id INTEGER NOT NULL, pubkey BYTEA NOT NULL, kind INTEGER NOT NULL, n BIGINT NOT NULL,
    first_ts BIGINT NOT NULL, last_ts BIGINT NOT NULL,
    PRIMARY KEY (relay_id, pubkey, kind)
);
-- Per relay: the event part of relay_stats.
CREATE TABLE analytics.relay_events (
    relay_url TEXT PRIMARY KEY, n BIGINT NOT NULL, unique_pubkeys BIGINT NOT NULL,
    unique_kinds BIGINT NOT NULL, first_ts BIGINT NOT NULL, last_ts BIGINT NOT NULL
);
-- Sightings per (network, event): an event counts once per network in network_stats.
CREATE TABLE analytics.network_event (
    network TEXT NOT NULL, event_id BYTEA NOT NULL, n BIGINT NOT NULL,
    PRIMARY KEY (network, event_id)
);
CREATE TABLE analytics.network_pubkey (
    network TEXT NOT NULL, pubkey BYTEA NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (network, pubkey)
);
CREATE TABLE analytics.network_kind (
    network TEXT NOT NULL, kind INTEGER NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (network, kind)
);
CREATE TABLE analytics.network_events (
    network TEXT PRIMARY KEY, event_count BIGINT NOT NULL, unique_pubkeys BIGINT NOT NULL,
    unique_kinds BIGINT NOT NULL
);
-- RTT checks per (relay, hour of generated_at) over the last 31 days: relay_uptime's windows.
CREATE TABLE analytics.uptime_hour (
    relay_url TEXT NOT NULL, hour BIGINT NOT NULL, checks BIGINT NOT NULL,
    open_ok BIGINT NOT NULL, PRIMARY KEY (relay_url, hour)
);
CREATE INDEX uptime_hour_hour ON analytics.uptime_hour (hour);


-- ==========================================================================
-- 3. Full definitions (analytics.<object>_full)
-- ==========================================================================
-- What each object holds, computed from the base tables alone: 6.6.9's view queries with the
-- 0003 fixes (and the day guard above), and the definitions of the two new objects. The rebuild
-- fills the objects that have no count tables from them, and the test suite checks every
-- incremental refresh against them;
-- they are not meant for routine reads (each costs a full recomputation).

CREATE VIEW analytics.relay_metadata_latest_full AS
SELECT DISTINCT ON (rm.relay_url, rm.metadata_type)
    rm.relay_url, rm.metadata_type, rm.generated_at, rm.metadata_id, m.data
FROM relay_metadata AS rm
INNER JOIN metadata AS m ON m.id = rm.metadata_id AND m.type = rm.metadata_type
ORDER BY rm.relay_url ASC, rm.metadata_type ASC, rm.generated_at DESC;

CREATE VIEW analytics.event_stats_full AS
SELECT
    1 AS singleton_key,
    COUNT(*) AS event_count,
    COUNT(DISTINCT pubkey) AS unique_pubkeys,
    COUNT(DISTINCT kind) AS unique_kinds,
    MIN(created_at) AS earliest_event_timestamp,
    MAX(created_at) AS latest_event_timestamp,
    COUNT(*) FILTER (WHERE analytics.kind_category(kind) = 'regular') AS regular_event_count,
    COUNT(*) FILTER (WHERE analytics.kind_category(kind) = 'replaceable')
        AS replaceable_event_count,
    COUNT(*) FILTER (WHERE analytics.kind_category(kind) = 'ephemeral') AS ephemeral_event_count,
    COUNT(*) FILTER (WHERE analytics.kind_category(kind) = 'addressable')
        AS addressable_event_count,
    COUNT(*) FILTER (WHERE created_at >= EXTRACT(EPOCH FROM NOW() - INTERVAL '1 hour'))
        AS event_count_last_1h,
    COUNT(*) FILTER (WHERE created_at >= EXTRACT(EPOCH FROM NOW() - INTERVAL '24 hours'))
        AS event_count_last_24h,
    COUNT(*) FILTER (WHERE created_at >= EXTRACT(EPOCH FROM NOW() - INTERVAL '7 days'))
        AS event_count_last_7d,
    COUNT(*) FILTER (WHERE created_at >= EXTRACT(EPOCH FROM NOW() - INTERVAL '30 days'))
        AS event_count_last_30d,
    CASE
        WHEN MAX(created_at) > MIN(created_at) THEN ROUND(
            COUNT(*)::NUMERIC / GREATEST((MAX(created_at)::NUMERIC - MIN(created_at)) / 86400.0, 1),
            2)
        ELSE COUNT(*)::NUMERIC
    END AS events_per_day
FROM event;

CREATE VIEW analytics.relay_stats_full AS
WITH event_agg AS (
    SELECT er.relay_url, COUNT(*) AS event_count, COUNT(DISTINCT e.pubkey) AS unique_pubkeys,
           COUNT(DISTINCT e.kind) AS unique_kinds, MIN(e.created_at) AS first_event_timestamp,
           MAX(e.created_at) AS last_event_timestamp
    FROM event_relay AS er
    INNER JOIN event AS e ON e.id = er.event_id
    GROUP BY er.relay_url
),
rtt_ranked AS (
    SELECT rm.relay_url,
           m.data -> 'data' ->> 'rtt_open' AS rtt_open,
           m.data -> 'data' ->> 'rtt_read' AS rtt_read,
           m.data -> 'data' ->> 'rtt_write' AS rtt_write,
           ROW_NUMBER() OVER (PARTITION BY rm.relay_url ORDER BY rm.generated_at DESC) AS rn
    FROM relay_metadata AS rm
    INNER JOIN metadata AS m ON m.id = rm.metadata_id AND m.type = rm.metadata_type
    WHERE rm.metadata_type = 'nip66_rtt'
),
rtt_agg AS (
    SELECT relay_url,
           ROUND(AVG(analytics.int_or_null(rtt_open))::NUMERIC, 2) AS avg_rtt_open,
           ROUND(AVG(analytics.int_or_null(rtt_read))::NUMERIC, 2) AS avg_rtt_read,
           ROUND(AVG(analytics.int_or_null(rtt_write))::NUMERIC, 2) AS avg_rtt_write
    FROM rtt_ranked
    WHERE rn <= 10
    GROUP BY relay_url
)
SELECT
    r.url AS relay_url, r.network, r.discovered_at,
    ea.first_event_timestamp, ea.last_event_timestamp,
    rtt.avg_rtt_open, rtt.avg_rtt_read, rtt.avg_rtt_write,
    COALESCE(ea.event_count, 0) AS event_count,
    COALESCE(ea.unique_pubkeys, 0) AS unique_pubkeys,
    COALESCE(ea.unique_kinds, 0) AS unique_kinds,
    nip11.data -> 'data' ->> 'name' AS nip11_name,
    nip11.data -> 'data' ->> 'software' AS nip11_software,
    nip11.data -> 'data' ->> 'version' AS nip11_version
FROM relay AS r
LEFT JOIN event_agg AS ea ON ea.relay_url = r.url
LEFT JOIN rtt_agg AS rtt ON rtt.relay_url = r.url
LEFT JOIN analytics.relay_metadata_latest_full AS nip11
    ON nip11.relay_url = r.url AND nip11.metadata_type = 'nip11_info';

CREATE VIEW analytics.kind_counts_full AS
SELECT kind, COUNT(*) AS event_count, COUNT(DISTINCT pubkey) AS unique_pubkeys,
       analytics.kind_category(kind) AS category
FROM event
GROUP BY kind;

CREATE VIEW analytics.kind_counts_by_relay_full AS
SELECT e.kind, er.relay_url, COUNT(*) AS event_count, COUNT(DISTINCT e.pubkey) AS unique_pubkeys
FROM event AS e
INNER JOIN event_relay AS er ON er.event_id = e.id
GROUP BY e.kind, er.relay_url;

CREATE VIEW analytics.pubkey_counts_full AS
SELECT ENCODE(pubkey, 'hex') AS pubkey, COUNT(*) AS event_count,
       COUNT(DISTINCT kind) AS unique_kinds, MIN(created_at) AS first_event_timestamp,
       MAX(created_at) AS last_event_timestamp
FROM event
GROUP BY pubkey;

CREATE VIEW analytics.pubkey_counts_by_relay_full AS
SELECT er.relay_url, ENCODE(e.pubkey, 'hex') AS pubkey, COUNT(*) AS event_count,
       COUNT(DISTINCT e.kind) AS unique_kinds, MIN(e.created_at) AS first_event_timestamp,
       MAX(e.created_at) AS last_event_timestamp
FROM event AS e
INNER JOIN event_relay AS er ON er.event_id = e.id
GROUP BY e.pubkey, er.relay_url
HAVING COUNT(*) >= 2;

CREATE VIEW analytics.network_stats_full AS
WITH relay_counts AS (
    SELECT network, COUNT(*) AS relay_count FROM relay GROUP BY network
),
network_events AS (
    SELECT DISTINCT r.network, er.event_id
    FROM relay AS r
    INNER JOIN event_relay AS er ON er.relay_url = r.url
),
event_agg AS (
    SELECT ne.network, COUNT(*)::BIGINT AS event_count,
           COUNT(DISTINCT e.pubkey)::BIGINT AS unique_pubkeys,
           COUNT(DISTINCT e.kind)::BIGINT AS unique_kinds
    FROM network_events AS ne
    INNER JOIN event AS e ON e.id = ne.event_id
    GROUP BY ne.network
)
SELECT rc.network, rc.relay_count,
       COALESCE(ea.event_count, 0)::BIGINT AS event_count,
       COALESCE(ea.unique_pubkeys, 0)::BIGINT AS unique_pubkeys,
       COALESCE(ea.unique_kinds, 0)::BIGINT AS unique_kinds
FROM relay_counts AS rc
LEFT JOIN event_agg AS ea ON ea.network = rc.network;

CREATE VIEW analytics.relay_software_counts_full AS
SELECT data -> 'data' ->> 'software' AS software,
       COALESCE(data -> 'data' ->> 'version', 'unknown') AS version,
       COUNT(*) AS relay_count
FROM analytics.relay_metadata_latest_full
WHERE metadata_type = 'nip11_info' AND data -> 'data' ->> 'software' IS NOT NULL
GROUP BY data -> 'data' ->> 'software', COALESCE(data -> 'data' ->> 'version', 'unknown');

CREATE VIEW analytics.supported_nip_counts_full AS
SELECT nip_text::INTEGER AS nip, COUNT(*) AS relay_count
FROM analytics.relay_metadata_latest_full
CROSS JOIN LATERAL jsonb_array_elements_text(data -> 'data' -> 'supported_nips') AS nip_text
WHERE metadata_type = 'nip11_info'
  AND data -> 'data' ? 'supported_nips'
  AND jsonb_typeof(data -> 'data' -> 'supported_nips') = 'array'
  AND nip_text ~ '^0*\d{1,9}$'
GROUP BY nip_text::INTEGER;

CREATE VIEW analytics.event_daily_counts_full AS
SELECT '1970-01-01'::DATE + analytics.day_of(created_at) AS day, COUNT(*) AS event_count,
       COUNT(DISTINCT pubkey) AS unique_pubkeys, COUNT(DISTINCT kind) AS unique_kinds
FROM event
WHERE analytics.day_of(created_at) IS NOT NULL
GROUP BY analytics.day_of(created_at);

CREATE VIEW analytics.events_replaceable_latest_full AS
SELECT DISTINCT ON (pubkey, kind) id, pubkey, created_at, kind, tags, tagvalues, content, sig
FROM event
WHERE kind = 0 OR kind = 3 OR (kind >= 10000 AND kind <= 19999)
ORDER BY pubkey, kind, created_at DESC, id ASC;

CREATE VIEW analytics.events_addressable_latest_full AS
SELECT DISTINCT ON (e.pubkey, e.kind, d_tag)
    e.id, e.pubkey, e.created_at, e.kind, e.tags, e.tagvalues, e.content, e.sig,
    analytics.d_tag_of(e.tags, e.tagvalues) AS d_tag
FROM event AS e
WHERE e.kind >= 30000 AND e.kind <= 39999
ORDER BY e.pubkey, e.kind, d_tag, e.created_at DESC, e.id ASC;

-- New: RTT open-phase success per relay and UTC day of the check, over every stored check.
CREATE VIEW analytics.relay_uptime_daily_full AS
SELECT rm.relay_url,
       '1970-01-01'::DATE + analytics.day_of(rm.generated_at) AS day,
       COUNT(*) AS checks,
       COUNT(*) FILTER (WHERE analytics.open_ok(m.data)) AS open_ok,
       ROUND((COUNT(*) FILTER (WHERE analytics.open_ok(m.data)))::NUMERIC / COUNT(*), 4)
           AS uptime
FROM relay_metadata AS rm
INNER JOIN metadata AS m ON m.id = rm.metadata_id AND m.type = rm.metadata_type
WHERE rm.metadata_type = 'nip66_rtt' AND analytics.day_of(rm.generated_at) IS NOT NULL
GROUP BY rm.relay_url, analytics.day_of(rm.generated_at);

-- New: the same over the last 24 hours, 7 days and 30 days before the refresh (generated_at
-- >= now - window), one row per relay with at least one check in the last 30 days.
CREATE VIEW analytics.relay_uptime_full AS
WITH c AS (
    SELECT rm.relay_url, rm.generated_at, analytics.open_ok(m.data) AS ok
    FROM relay_metadata AS rm
    INNER JOIN metadata AS m ON m.id = rm.metadata_id AND m.type = rm.metadata_type
    WHERE rm.metadata_type = 'nip66_rtt' AND rm.generated_at >= analytics.epoch_now() - 2592000
),
agg AS (
    SELECT relay_url,
           COUNT(*) FILTER (WHERE generated_at >= analytics.epoch_now() - 86400) AS checks_24h,
           COUNT(*) FILTER (WHERE ok AND generated_at >= analytics.epoch_now() - 86400) AS ok_24h,
           COUNT(*) FILTER (WHERE generated_at >= analytics.epoch_now() - 604800) AS checks_7d,
           COUNT(*) FILTER (WHERE ok AND generated_at >= analytics.epoch_now() - 604800) AS ok_7d,
           COUNT(*) AS checks_30d,
           COUNT(*) FILTER (WHERE ok) AS ok_30d
    FROM c
    GROUP BY relay_url
)
SELECT relay_url,
       checks_24h, ROUND(ok_24h::NUMERIC / NULLIF(checks_24h, 0), 4) AS uptime_24h,
       checks_7d, ROUND(ok_7d::NUMERIC / NULLIF(checks_7d, 0), 4) AS uptime_7d,
       checks_30d, ROUND(ok_30d::NUMERIC / NULLIF(checks_30d, 0), 4) AS uptime_30d
FROM agg;


-- ==========================================================================
-- 4. The 13 materialized views become tables
-- ==========================================================================
-- Same names, columns (LIKE copies names, types and order) and index names; the unique index
-- of each view becomes the table's primary key under the same name, so clients that look up
-- a primary key in pg_constraint (6.6.9's API does for tables) find the key the view had.
-- They are filled by analytics.rebuild() at the end of this file.

ALTER MATERIALIZED VIEW relay_metadata_latest RENAME TO relay_metadata_latest_0003;
ALTER MATERIALIZED VIEW event_stats RENAME TO event_stats_0003;
ALTER MATERIALIZED VIEW relay_stats RENAME TO relay_stats_0003;
ALTER MATERIALIZED VIEW kind_counts RENAME TO kind_counts_0003;
ALTER MATERIALIZED VIEW kind_counts_by_relay RENAME TO kind_counts_by_relay_0003;
ALTER MATERIALIZED VIEW pubkey_counts RENAME TO pubkey_counts_0003;
ALTER MATERIALIZED VIEW pubkey_counts_by_relay RENAME TO pubkey_counts_by_relay_0003;
ALTER MATERIALIZED VIEW network_stats RENAME TO network_stats_0003;
ALTER MATERIALIZED VIEW relay_software_counts RENAME TO relay_software_counts_0003;
ALTER MATERIALIZED VIEW supported_nip_counts RENAME TO supported_nip_counts_0003;
ALTER MATERIALIZED VIEW event_daily_counts RENAME TO event_daily_counts_0003;
ALTER MATERIALIZED VIEW events_replaceable_latest RENAME TO events_replaceable_latest_0003;
ALTER MATERIALIZED VIEW events_addressable_latest RENAME TO events_addressable_latest_0003;

CREATE TABLE relay_metadata_latest (LIKE relay_metadata_latest_0003);
CREATE TABLE event_stats (LIKE event_stats_0003);
CREATE TABLE relay_stats (LIKE relay_stats_0003);
CREATE TABLE kind_counts (LIKE kind_counts_0003);
CREATE TABLE kind_counts_by_relay (LIKE kind_counts_by_relay_0003);
CREATE TABLE pubkey_counts (LIKE pubkey_counts_0003);
CREATE TABLE pubkey_counts_by_relay (LIKE pubkey_counts_by_relay_0003);
CREATE TABLE network_stats (LIKE network_stats_0003);
CREATE TABLE relay_software_counts (LIKE relay_software_counts_0003);
CREATE TABLE supported_nip_counts (LIKE supported_nip_counts_0003);
CREATE TABLE event_daily_counts (LIKE event_daily_counts_0003);
CREATE TABLE events_replaceable_latest (LIKE events_replaceable_latest_0003);
CREATE TABLE events_addressable_latest (LIKE events_addressable_latest_0003);

-- Dependents first: three views read relay_metadata_latest.
DROP MATERIALIZED VIEW relay_stats_0003;
DROP MATERIALIZED VIEW relay_software_counts_0003;
DROP MATERIALIZED VIEW supported_nip_counts_0003;
DROP MATERIALIZED VIEW relay_metadata_latest_0003;
DROP MATERIALIZED VIEW event_stats_0003;
DROP MATERIALIZED VIEW kind_counts_0003;
DROP MATERIALIZED VIEW kind_counts_by_relay_0003;
DROP MATERIALIZED VIEW pubkey_counts_0003;
DROP MATERIALIZED VIEW pubkey_counts_by_relay_0003;
DROP MATERIALIZED VIEW network_stats_0003;
DROP MATERIALIZED VIEW event_daily_counts_0003;
DROP MATERIALIZED VIEW events_replaceable_latest_0003;
DROP MATERIALIZED VIEW events_addressable_latest_0003;

ALTER TABLE relay_metadata_latest
    ADD CONSTRAINT idx_relay_metadata_latest_pk PRIMARY KEY (relay_url, metadata_type);
CREATE INDEX idx_relay_metadata_latest_type ON relay_metadata_latest USING btree (metadata_type);
ALTER TABLE event_stats ADD CONSTRAINT idx_event_stats_singleton_key PRIMARY KEY (singleton_key);
ALTER TABLE relay_stats ADD CONSTRAINT idx_relay_stats_relay_url PRIMARY KEY (relay_url);
CREATE INDEX idx_relay_stats_network ON relay_stats USING btree (network);
ALTER TABLE kind_counts ADD CONSTRAINT idx_kind_counts_kind PRIMARY KEY (kind);
ALTER TABLE kind_counts_by_relay
    ADD CONSTRAINT idx_kind_counts_by_relay_composite PRIMARY KEY (kind, relay_url);
CREATE INDEX idx_kind_counts_by_relay_relay ON kind_counts_by_relay USING btree (relay_url);
ALTER TABLE pubkey_counts ADD CONSTRAINT idx_pubkey_counts_pubkey PRIMARY KEY (pubkey);
ALTER TABLE pubkey_counts_by_relay
    ADD CONSTRAINT idx_pubkey_counts_by_relay_composite PRIMARY KEY (pubkey, relay_url);
CREATE INDEX idx_pubkey_counts_by_relay_relay ON pubkey_counts_by_relay USING btree (relay_url);
ALTER TABLE network_stats ADD CONSTRAINT idx_network_stats_network PRIMARY KEY (network);
ALTER TABLE relay_software_counts
    ADD CONSTRAINT idx_relay_software_counts_composite PRIMARY KEY (software, version);
ALTER TABLE supported_nip_counts ADD CONSTRAINT idx_supported_nip_counts_nip PRIMARY KEY (nip);
ALTER TABLE event_daily_counts ADD CONSTRAINT idx_event_daily_counts_day PRIMARY KEY (day);
ALTER TABLE events_replaceable_latest
    ADD CONSTRAINT idx_events_replaceable_latest_pubkey_kind PRIMARY KEY (pubkey, kind);
CREATE INDEX idx_events_replaceable_latest_kind ON events_replaceable_latest USING btree (kind);
ALTER TABLE events_addressable_latest
    ADD CONSTRAINT idx_events_addressable_latest_pubkey_kind_d_tag
    PRIMARY KEY (pubkey, kind, d_tag);
CREATE INDEX idx_events_addressable_latest_kind ON events_addressable_latest USING btree (kind);

-- New: relay availability (docs/ARCHITECTURE.md, "Relay availability").
CREATE TABLE relay_uptime_daily (
    relay_url TEXT NOT NULL,
    day DATE NOT NULL,
    checks BIGINT NOT NULL,
    open_ok BIGINT NOT NULL,
    uptime NUMERIC NOT NULL,
    CONSTRAINT relay_uptime_daily_pkey PRIMARY KEY (relay_url, day)
);
CREATE INDEX idx_relay_uptime_daily_day ON relay_uptime_daily USING btree (day);
CREATE TABLE relay_uptime (
    relay_url TEXT NOT NULL,
    checks_24h BIGINT NOT NULL,
    uptime_24h NUMERIC,
    checks_7d BIGINT NOT NULL,
    uptime_7d NUMERIC,
    checks_30d BIGINT NOT NULL,
    uptime_30d NUMERIC,
    CONSTRAINT relay_uptime_pkey PRIMARY KEY (relay_url)
);


-- ==========================================================================
-- 5. Applying the deltas
-- ==========================================================================

-- The cluster the watermarks were taken on: a stored snapshot means nothing in another cluster
-- (its transaction ids start elsewhere), so a database restored into a new cluster refuses to
-- refresh until it is rebuilt, instead of silently skipping or repeating changes.
CREATE FUNCTION analytics.system_identifier()
RETURNS BIGINT
LANGUAGE sql STABLE
AS $$ SELECT system_identifier FROM pg_control_system() $$;
ALTER TABLE analytics.consumer ADD COLUMN system_identifier BIGINT NOT NULL
    DEFAULT analytics.system_identifier();

-- Locks the consumer's watermark (concurrent refreshes of one consumer queue here) and returns
-- it with the snapshot to apply up to: the caller applies the delta rows visible in cur and not
-- in prev, then stores cur with end_window.
CREATE FUNCTION analytics.begin_window(p_consumer TEXT, OUT prev PG_SNAPSHOT, OUT cur PG_SNAPSHOT)
LANGUAGE plpgsql
AS $$
DECLARE
    v_system BIGINT;
BEGIN
    SELECT c.applied, c.system_identifier INTO prev, v_system
    FROM analytics.consumer AS c WHERE c.name = p_consumer FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'analytics: no watermark for consumer %', p_consumer
            USING HINT = 'Run SELECT analytics.rebuild(); as the database owner.';
    END IF;
    IF v_system <> analytics.system_identifier() THEN
        RAISE EXCEPTION 'analytics: the watermarks were taken on another PostgreSQL cluster'
            USING HINT = 'After a restore into a new cluster, run SELECT analytics.rebuild(); '
                         'as the database owner.';
    END IF;
    cur := analytics.current_snapshot();
    PERFORM analytics.check_truncated(prev, cur);
END;
$$;

-- pg_current_snapshot(), except that the calling transaction, when it has written anything,
-- counts as still running: its own delta rows (written before or after this point) are applied
-- by a refresh after it commits, never taken as already applied. The snapshot's xmax is one
-- past the newest completed transaction, not the next id to be assigned: transactions at or
-- past it, the caller's included, are already invisible, so the caller's id is added to the
-- in-progress list only below xmax (raising xmax instead would make other running
-- transactions look committed).
CREATE FUNCTION analytics.current_snapshot()
RETURNS PG_SNAPSHOT
LANGUAGE plpgsql
AS $$
DECLARE
    v_snap PG_SNAPSHOT := pg_current_snapshot();
    v_own XID8 := pg_current_xact_id_if_assigned();
BEGIN
    IF v_own IS NULL OR v_own >= pg_snapshot_xmax(v_snap) THEN
        RETURN v_snap;
    END IF;
    RETURN format('%s:%s:%s',
        LEAST(pg_snapshot_xmin(v_snap), v_own),
        pg_snapshot_xmax(v_snap),
        (SELECT string_agg(x::TEXT, ',' ORDER BY x::TEXT::NUMERIC)
         FROM (SELECT pg_snapshot_xip(v_snap) AS x UNION SELECT v_own) AS xs))::PG_SNAPSHOT;
END;
$$;

-- Multi-consumer refreshes lock every watermark they need first, in name order, so two
-- refreshes never wait for each other's watermark (or for a lock taken after one).
CREATE FUNCTION analytics.lock_consumers(p_names TEXT[])
RETURNS VOID
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM name FROM analytics.consumer WHERE name = ANY (p_names) ORDER BY name FOR UPDATE;
END;
$$;

CREATE FUNCTION analytics.check_truncated(p_prev PG_SNAPSHOT, p_cur PG_SNAPSHOT)
RETURNS VOID
LANGUAGE plpgsql
AS $$
DECLARE
    v_table TEXT;
BEGIN
    SELECT t.table_name INTO v_table FROM analytics.truncate_log AS t
    WHERE pg_visible_in_snapshot(t.xid, p_cur) AND NOT pg_visible_in_snapshot(t.xid, p_prev)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'analytics: table % was truncated; the statistics must be rebuilt', v_table
            USING HINT = 'Run SELECT analytics.rebuild(); as the database owner.';
    END IF;
END;
$$;

CREATE FUNCTION analytics.end_window(p_consumer TEXT, p_cur PG_SNAPSHOT)
RETURNS VOID
LANGUAGE plpgsql
AS $$
DECLARE
    v_horizon XID8;
BEGIN
    UPDATE analytics.consumer SET applied = p_cur, refreshed_at = now() WHERE name = p_consumer;
    -- Rows below every watermark's xmin were applied by every consumer. One refresh at a time
    -- collects them (another skips it): two collecting transactions could wait on each other's
    -- deleted rows while holding watermarks the other needs.
    IF NOT pg_try_advisory_xact_lock(hashtext('analytics.end_window')) THEN
        RETURN;
    END IF;
    SELECT min(pg_snapshot_xmin(applied)) INTO v_horizon FROM analytics.consumer;
    DELETE FROM analytics.event_delta WHERE xid < v_horizon;
    DELETE FROM analytics.sighting_delta WHERE xid < v_horizon;
    DELETE FROM analytics.relay_delta WHERE xid < v_horizon;
    DELETE FROM analytics.relay_metadata_delta WHERE xid < v_horizon;
    DELETE FROM analytics.truncate_log WHERE xid < v_horizon;
    DELETE FROM analytics.metadata_delta WHERE xid < v_horizon;
END;
$$;

CREATE FUNCTION analytics.check_counts(p_what TEXT, p_negative BOOLEAN)
RETURNS VOID
LANGUAGE plpgsql
AS $$
BEGIN
    IF p_negative THEN
        RAISE EXCEPTION 'analytics: % would go below zero; the state no longer matches the archive',
            p_what
            USING HINT = 'Something changed the base tables without the capture triggers '
                         '(a data-only restore, or disabled triggers). Run SELECT '
                         'analytics.rebuild(); as the database owner.';
    END IF;
END;
$$;

-- Adds deltas to a count table: p_delta is a query yielding the key columns p_keys, dn (the
-- change of the key's count) and any other columns. Each key's count moves by dn in key order;
-- the temporary table p_result receives p_delta's rows with the count before (old_n) and after
-- (new_n); keys back at 0 are deleted, and a count below 0 stops the refresh (check_counts).
CREATE FUNCTION analytics.add_counts(p_result TEXT, p_table TEXT, p_keys TEXT[], p_delta TEXT)
RETURNS VOID
LANGUAGE plpgsql
AS $$
DECLARE
    v_keys TEXT := (SELECT string_agg(format('%I', k), ', ') FROM unnest(p_keys) AS k);
    v_returning TEXT := (SELECT string_agg(format('s.%I', k), ', ') FROM unnest(p_keys) AS k);
    v_join TEXT := (SELECT string_agg(format('d.%1$I = up.%1$I', k), ' AND ')
                    FROM unnest(p_keys) AS k);
    v_match TEXT := (SELECT string_agg(format('s.%1$I = t.%1$I', k), ' AND ')
                     FROM unnest(p_keys) AS k);
    v_negative BOOLEAN;
BEGIN
    EXECUTE format('DROP TABLE IF EXISTS pg_temp.%I', p_result);
    EXECUTE format('CREATE TEMP TABLE %I ON COMMIT DROP AS '
                   'SELECT d.*, 0::BIGINT AS old_n, 0::BIGINT AS new_n FROM (%s) AS d WITH NO DATA',
                   p_result, p_delta);
    EXECUTE format('WITH d AS (%s), '
                   'up AS (INSERT INTO %s AS s (%s, n) SELECT %3$s, dn FROM d WHERE dn <> 0 '
                   '       ORDER BY %3$s '
                   '       ON CONFLICT (%3$s) DO UPDATE SET n = s.n + EXCLUDED.n '
                   '       RETURNING %s, s.n) '
                   'INSERT INTO %I SELECT d.*, up.n - d.dn, up.n FROM up INNER JOIN d ON %s',
                   p_delta, p_table, v_keys, v_returning, p_result, v_join);
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE new_n < 0)', p_result) INTO v_negative;
    PERFORM analytics.check_counts(p_table, v_negative);
    EXECUTE format('DELETE FROM %s AS s USING %I AS t WHERE t.new_n = 0 AND %s',
                   p_table, p_result, v_match);
END;
$$;

-- Events counted in hour buckets from p_since on, plus the partial hour before the first
-- bucket read from the created_at index: count(*) FROM event WHERE created_at >= p_since.
CREATE FUNCTION analytics.events_since(p_since BIGINT)
RETURNS BIGINT
LANGUAGE sql STABLE
AS $$
    SELECT COALESCE((SELECT sum(n) FROM analytics.event_hour
                     WHERE hour >= (p_since + 3599) / 3600), 0)::BIGINT
         + (SELECT count(*) FROM public.event
            WHERE created_at >= p_since AND created_at < ((p_since + 3599) / 3600) * 3600)
$$;


-- The event_stats columns that depend on the clock or on the extremes of the archive (both read
-- by index), and events_per_day from them: run at every refresh.
CREATE FUNCTION analytics.event_stats_finish()
RETURNS VOID
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE public.event_stats AS s
    SET earliest_event_timestamp = x.lo,
        latest_event_timestamp = x.hi,
        event_count_last_1h = analytics.events_since(
            ceil(EXTRACT(EPOCH FROM NOW() - INTERVAL '1 hour'))::BIGINT),
        event_count_last_24h = analytics.events_since(
            ceil(EXTRACT(EPOCH FROM NOW() - INTERVAL '24 hours'))::BIGINT),
        event_count_last_7d = analytics.events_since(
            ceil(EXTRACT(EPOCH FROM NOW() - INTERVAL '7 days'))::BIGINT),
        event_count_last_30d = analytics.events_since(
            ceil(EXTRACT(EPOCH FROM NOW() - INTERVAL '30 days'))::BIGINT),
        events_per_day = CASE
            WHEN x.hi > x.lo THEN ROUND(
                s.event_count::NUMERIC / GREATEST((x.hi::NUMERIC - x.lo) / 86400.0, 1), 2)
            ELSE s.event_count::NUMERIC
        END
    FROM (SELECT (SELECT min(created_at) FROM public.event) AS lo,
                 (SELECT max(created_at) FROM public.event) AS hi) AS x
    WHERE s.singleton_key = 1;
END;
$$;


-- --------------------------------------------------------------------------
-- 5a. Event consumer: event_stats, kind_counts, pubkey_counts, event_daily_counts,
--     events_replaceable_latest, events_addressable_latest
-- --------------------------------------------------------------------------
CREATE FUNCTION analytics.apply_event()
RETURNS BIGINT
LANGUAGE plpgsql
SET client_min_messages = warning
SET random_page_cost = 1.1
AS $$
DECLARE
    w RECORD;
    v_rows BIGINT;
    v_events BIGINT; v_pubkeys BIGINT; v_kinds BIGINT;
    v_regular BIGINT; v_replaceable BIGINT; v_ephemeral BIGINT; v_addressable BIGINT;
BEGIN
    w := analytics.begin_window('event');
    DROP TABLE IF EXISTS pg_temp.an_ev;
    CREATE TEMP TABLE an_ev ON COMMIT DROP AS
        SELECT d.sign, d.id, d.pubkey, d.created_at, d.kind, d.d_tag,
               analytics.day_of(d.created_at) AS day
        FROM analytics.event_delta AS d
        WHERE d.xid >= pg_snapshot_xmin(w.prev)
          AND pg_visible_in_snapshot(d.xid, w.cur) AND NOT pg_visible_in_snapshot(d.xid, w.prev);
    GET DIAGNOSTICS v_rows = ROW_COUNT;

    IF v_rows > 0 THEN
        ANALYZE pg_temp.an_ev;

        -- (pubkey, kind) counts and their transitions.
        PERFORM analytics.add_counts('an_pk', 'analytics.pubkey_kind', ARRAY['pubkey', 'kind'],
            'SELECT pubkey, kind, sum(sign)::BIGINT AS dn FROM an_ev GROUP BY pubkey, kind');

        -- kind_counts.
        DROP TABLE IF EXISTS pg_temp.an_k;
        CREATE TEMP TABLE an_k ON COMMIT DROP AS
        WITH d AS (SELECT kind, sum(sign)::BIGINT AS dn FROM an_ev GROUP BY kind),
             u AS (SELECT kind, sum(analytics.transition(old_n, new_n))::BIGINT AS du
                   FROM an_pk GROUP BY kind)
        SELECT d.kind, COALESCE(s.event_count, 0) AS old_n,
               COALESCE(s.event_count, 0) + d.dn AS new_n,
               COALESCE(s.unique_pubkeys, 0) + COALESCE(u.du, 0) AS new_u
        FROM d
        LEFT JOIN u ON u.kind = d.kind
        LEFT JOIN public.kind_counts AS s ON s.kind = d.kind
        WHERE d.dn <> 0 OR COALESCE(u.du, 0) <> 0;
        PERFORM analytics.check_counts('kind_counts', EXISTS (SELECT 1 FROM an_k WHERE new_n < 0));
        INSERT INTO public.kind_counts (kind, event_count, unique_pubkeys, category)
        SELECT kind, new_n, new_u, analytics.kind_category(kind) FROM an_k WHERE new_n > 0
        ON CONFLICT (kind) DO UPDATE
            SET event_count = EXCLUDED.event_count, unique_pubkeys = EXCLUDED.unique_pubkeys;
        DELETE FROM public.kind_counts AS s USING an_k AS t WHERE t.new_n = 0 AND s.kind = t.kind;

        -- pubkey_counts: counts from the deltas; first/last grow with inserted events and are
        -- read back from the (pubkey, created_at) index for authors that lost events.
        DROP TABLE IF EXISTS pg_temp.an_p;
        CREATE TEMP TABLE an_p ON COMMIT DROP AS
        WITH d AS (
            SELECT pubkey, sum(sign)::BIGINT AS dn,
                   min(created_at) FILTER (WHERE sign > 0) AS mn,
                   max(created_at) FILTER (WHERE sign > 0) AS mx,
                   bool_or(sign < 0) AS has_del
            FROM an_ev GROUP BY pubkey
        ),
        u AS (SELECT pubkey, sum(analytics.transition(old_n, new_n))::BIGINT AS du
              FROM an_pk GROUP BY pubkey)
        SELECT d.pubkey, encode(d.pubkey, 'hex') AS hex, d.has_del,
               COALESCE(s.event_count, 0) AS old_n, COALESCE(s.event_count, 0) + d.dn AS new_n,
               COALESCE(s.unique_kinds, 0) + COALESCE(u.du, 0) AS new_u,
               LEAST(s.first_event_timestamp, d.mn) AS new_first,
               GREATEST(s.last_event_timestamp, d.mx) AS new_last
        FROM d
        LEFT JOIN u ON u.pubkey = d.pubkey
        LEFT JOIN public.pubkey_counts AS s ON s.pubkey = encode(d.pubkey, 'hex')
        WHERE d.dn <> 0 OR d.has_del;
        PERFORM analytics.check_counts('pubkey_counts', EXISTS (SELECT 1 FROM an_p WHERE new_n < 0));
        INSERT INTO public.pubkey_counts
            (pubkey, event_count, unique_kinds, first_event_timestamp, last_event_timestamp)
        SELECT hex, new_n, new_u, new_first, new_last FROM an_p WHERE new_n > 0 ORDER BY hex
        ON CONFLICT (pubkey) DO UPDATE
            SET event_count = EXCLUDED.event_count, unique_kinds = EXCLUDED.unique_kinds,
                first_event_timestamp = EXCLUDED.first_event_timestamp,
                last_event_timestamp = EXCLUDED.last_event_timestamp;
        DELETE FROM public.pubkey_counts AS s USING an_p AS t
        WHERE t.new_n = 0 AND s.pubkey = t.hex;
        UPDATE public.pubkey_counts AS s
        SET first_event_timestamp = (SELECT min(e.created_at) FROM public.event AS e
                                     WHERE e.pubkey = t.pubkey),
            last_event_timestamp = (SELECT max(e.created_at) FROM public.event AS e
                                    WHERE e.pubkey = t.pubkey)
        FROM an_p AS t
        WHERE t.has_del AND t.new_n > 0 AND s.pubkey = t.hex;

        -- event_daily_counts through (day, pubkey) and (day, kind) counts.
        PERFORM analytics.add_counts('an_dp', 'analytics.day_pubkey', ARRAY['day', 'pubkey'],
            'SELECT day, pubkey, sum(sign)::BIGINT AS dn FROM an_ev
             WHERE day IS NOT NULL GROUP BY day, pubkey');

        PERFORM analytics.add_counts('an_dk', 'analytics.day_kind', ARRAY['day', 'kind'],
            'SELECT day, kind, sum(sign)::BIGINT AS dn FROM an_ev
             WHERE day IS NOT NULL GROUP BY day, kind');

        DROP TABLE IF EXISTS pg_temp.an_d;
        CREATE TEMP TABLE an_d ON COMMIT DROP AS
        WITH d AS (SELECT day, sum(sign)::BIGINT AS dn FROM an_ev
                   WHERE day IS NOT NULL GROUP BY day),
             up AS (SELECT day, sum(analytics.transition(old_n, new_n))::BIGINT AS du
                    FROM an_dp GROUP BY day),
             uk AS (SELECT day, sum(analytics.transition(old_n, new_n))::BIGINT AS du
                    FROM an_dk GROUP BY day)
        SELECT '1970-01-01'::DATE + d.day AS day,
               COALESCE(s.event_count, 0) + d.dn AS new_n,
               COALESCE(s.unique_pubkeys, 0) + COALESCE(up.du, 0) AS new_up,
               COALESCE(s.unique_kinds, 0) + COALESCE(uk.du, 0) AS new_uk
        FROM d
        LEFT JOIN up ON up.day = d.day
        LEFT JOIN uk ON uk.day = d.day
        LEFT JOIN public.event_daily_counts AS s ON s.day = '1970-01-01'::DATE + d.day
        WHERE d.dn <> 0 OR COALESCE(up.du, 0) <> 0 OR COALESCE(uk.du, 0) <> 0;
        PERFORM analytics.check_counts('event_daily_counts',
                                       EXISTS (SELECT 1 FROM an_d WHERE new_n < 0));
        INSERT INTO public.event_daily_counts (day, event_count, unique_pubkeys, unique_kinds)
        SELECT day, new_n, new_up, new_uk FROM an_d WHERE new_n > 0
        ON CONFLICT (day) DO UPDATE
            SET event_count = EXCLUDED.event_count, unique_pubkeys = EXCLUDED.unique_pubkeys,
                unique_kinds = EXCLUDED.unique_kinds;
        DELETE FROM public.event_daily_counts AS s USING an_d AS t
        WHERE t.new_n = 0 AND s.day = t.day;

        -- Hour buckets of created_at for the time windows.
        INSERT INTO analytics.event_hour AS s (hour, n)
        SELECT created_at / 3600, sum(sign) FROM an_ev GROUP BY created_at / 3600
        HAVING sum(sign) <> 0
        ON CONFLICT (hour) DO UPDATE SET n = s.n + EXCLUDED.n;
        DELETE FROM analytics.event_hour AS s
        WHERE s.n = 0 AND s.hour IN (SELECT created_at / 3600 FROM an_ev);

        -- event_stats: the additive columns.
        SELECT COALESCE(sum(sign), 0),
               COALESCE(sum(sign) FILTER (WHERE analytics.kind_category(kind) = 'regular'), 0),
               COALESCE(sum(sign) FILTER (WHERE analytics.kind_category(kind) = 'replaceable'), 0),
               COALESCE(sum(sign) FILTER (WHERE analytics.kind_category(kind) = 'ephemeral'), 0),
               COALESCE(sum(sign) FILTER (WHERE analytics.kind_category(kind) = 'addressable'), 0)
        INTO v_events, v_regular, v_replaceable, v_ephemeral, v_addressable
        FROM an_ev;
        SELECT COALESCE(sum(analytics.transition(old_n, new_n)), 0) INTO v_pubkeys FROM an_p;
        SELECT COALESCE(sum(analytics.transition(old_n, new_n)), 0) INTO v_kinds FROM an_k;
        UPDATE public.event_stats
        SET event_count = event_count + v_events,
            unique_pubkeys = unique_pubkeys + v_pubkeys,
            unique_kinds = unique_kinds + v_kinds,
            regular_event_count = regular_event_count + v_regular,
            replaceable_event_count = replaceable_event_count + v_replaceable,
            ephemeral_event_count = ephemeral_event_count + v_ephemeral,
            addressable_event_count = addressable_event_count + v_addressable
        WHERE singleton_key = 1;

        -- Latest replaceable and addressable versions. A key that only gained events keeps its
        -- row unless the newest inserted event beats it (NIP-01: newer created_at, then lower
        -- id); a key that lost an event is read back from the (pubkey, kind, created_at) index.
        DROP TABLE IF EXISTS pg_temp.an_lk;
        CREATE TEMP TABLE an_lk ON COMMIT DROP AS
        SELECT pubkey, kind, COALESCE(d_tag, '') AS d_tag, bool_or(sign < 0) AS has_del,
               (array_agg(id ORDER BY created_at DESC, id ASC) FILTER (WHERE sign > 0))[1] AS id,
               max(created_at) FILTER (WHERE sign > 0) AS created_at
        FROM an_ev
        WHERE kind = 0 OR kind = 3 OR (kind >= 10000 AND kind <= 19999)
           OR (kind >= 30000 AND kind <= 39999)
        GROUP BY pubkey, kind, COALESCE(d_tag, '');

        INSERT INTO public.events_replaceable_latest AS cur
            (id, pubkey, created_at, kind, tags, tagvalues, content, sig)
        SELECT e.id, e.pubkey, e.created_at, e.kind, e.tags, e.tagvalues, e.content, e.sig
        FROM an_lk AS c
        INNER JOIN public.event AS e ON e.id = c.id
        WHERE NOT c.has_del AND c.kind < 30000
        ON CONFLICT (pubkey, kind) DO UPDATE
            SET id = EXCLUDED.id, created_at = EXCLUDED.created_at, tags = EXCLUDED.tags,
                tagvalues = EXCLUDED.tagvalues, content = EXCLUDED.content, sig = EXCLUDED.sig
            WHERE EXCLUDED.created_at > cur.created_at
               OR (EXCLUDED.created_at = cur.created_at AND EXCLUDED.id < cur.id);
        DELETE FROM public.events_replaceable_latest AS s USING an_lk AS k
        WHERE k.has_del AND k.kind < 30000 AND s.pubkey = k.pubkey AND s.kind = k.kind;
        INSERT INTO public.events_replaceable_latest
            (id, pubkey, created_at, kind, tags, tagvalues, content, sig)
        SELECT l.* FROM an_lk AS k
        CROSS JOIN LATERAL (
            SELECT e.id, e.pubkey, e.created_at, e.kind, e.tags, e.tagvalues, e.content, e.sig
            FROM public.event AS e
            WHERE e.pubkey = k.pubkey AND e.kind = k.kind
            ORDER BY e.created_at DESC, e.id ASC
            LIMIT 1
        ) AS l
        WHERE k.has_del AND k.kind < 30000;

        INSERT INTO public.events_addressable_latest AS cur
            (id, pubkey, created_at, kind, tags, tagvalues, content, sig, d_tag)
        SELECT e.id, e.pubkey, e.created_at, e.kind, e.tags, e.tagvalues, e.content, e.sig,
               c.d_tag
        FROM an_lk AS c
        INNER JOIN public.event AS e ON e.id = c.id
        WHERE NOT c.has_del AND c.kind >= 30000
        ON CONFLICT (pubkey, kind, d_tag) DO UPDATE
            SET id = EXCLUDED.id, created_at = EXCLUDED.created_at, tags = EXCLUDED.tags,
                tagvalues = EXCLUDED.tagvalues, content = EXCLUDED.content, sig = EXCLUDED.sig
            WHERE EXCLUDED.created_at > cur.created_at
               OR (EXCLUDED.created_at = cur.created_at AND EXCLUDED.id < cur.id);
        DELETE FROM public.events_addressable_latest AS s USING an_lk AS k
        WHERE k.has_del AND k.kind >= 30000 AND s.pubkey = k.pubkey AND s.kind = k.kind
          AND s.d_tag = k.d_tag;
        INSERT INTO public.events_addressable_latest
            (id, pubkey, created_at, kind, tags, tagvalues, content, sig, d_tag)
        SELECT l.* FROM an_lk AS k
        CROSS JOIN LATERAL (
            SELECT e.id, e.pubkey, e.created_at, e.kind, e.tags, e.tagvalues, e.content, e.sig,
                   k.d_tag
            FROM public.event AS e
            WHERE e.pubkey = k.pubkey AND e.kind = k.kind
              AND analytics.d_tag_of(e.tags, e.tagvalues) = k.d_tag
            ORDER BY e.created_at DESC, e.id ASC
            LIMIT 1
        ) AS l
        WHERE k.has_del AND k.kind >= 30000;
    END IF;

    PERFORM analytics.event_stats_finish();

    PERFORM analytics.end_window('event', w.cur);
    RETURN v_rows;
END;
$$;


-- --------------------------------------------------------------------------
-- 5b. relay_stats rows, recomputed for a set of relays from the count tables, the 10 newest
--     RTT checks (by index) and relay_metadata_latest.
-- --------------------------------------------------------------------------
CREATE FUNCTION analytics.relay_stats_recompute(p_urls TEXT[])
RETURNS VOID
LANGUAGE plpgsql
AS $$
BEGIN
    -- The sighting and metadata consumers may recompute the same relay at the same time.
    PERFORM pg_advisory_xact_lock(hashtext('analytics.relay_stats_recompute'));
    DELETE FROM public.relay_stats WHERE relay_url = ANY (p_urls);
    INSERT INTO public.relay_stats
    SELECT r.url, r.network, r.discovered_at, re.first_ts, re.last_ts,
           rtt.avg_rtt_open, rtt.avg_rtt_read, rtt.avg_rtt_write,
           COALESCE(re.n, 0), COALESCE(re.unique_pubkeys, 0), COALESCE(re.unique_kinds, 0),
           nip11.data -> 'data' ->> 'name', nip11.data -> 'data' ->> 'software',
           nip11.data -> 'data' ->> 'version'
    FROM public.relay AS r
    LEFT JOIN analytics.relay_events AS re ON re.relay_url = r.url
    LEFT JOIN LATERAL (
        SELECT ROUND(AVG(analytics.int_or_null(m.data -> 'data' ->> 'rtt_open'))::NUMERIC, 2)
                   AS avg_rtt_open,
               ROUND(AVG(analytics.int_or_null(m.data -> 'data' ->> 'rtt_read'))::NUMERIC, 2)
                   AS avg_rtt_read,
               ROUND(AVG(analytics.int_or_null(m.data -> 'data' ->> 'rtt_write'))::NUMERIC, 2)
                   AS avg_rtt_write
        FROM (SELECT rm.metadata_id, rm.metadata_type FROM public.relay_metadata AS rm
              WHERE rm.relay_url = r.url AND rm.metadata_type = 'nip66_rtt'
              ORDER BY rm.generated_at DESC LIMIT 10) AS x
        INNER JOIN public.metadata AS m ON m.id = x.metadata_id AND m.type = x.metadata_type
    ) AS rtt ON TRUE
    LEFT JOIN public.relay_metadata_latest AS nip11
        ON nip11.relay_url = r.url AND nip11.metadata_type = 'nip11_info'
    WHERE r.url = ANY (p_urls);
END;
$$;


-- --------------------------------------------------------------------------
-- 5c. Sighting consumer (event_relay and relay): kind_counts_by_relay, pubkey_counts_by_relay,
--     network_stats and the event part of relay_stats
-- --------------------------------------------------------------------------
CREATE FUNCTION analytics.apply_sighting()
RETURNS BIGINT
LANGUAGE plpgsql
SET client_min_messages = warning
SET random_page_cost = 1.1
AS $$
DECLARE
    w RECORD;
    v_rows BIGINT;
    v_relays BIGINT;
BEGIN
    w := analytics.begin_window('sighting');
    -- A sighting deleted together with its event (or relay) could not read the event's author,
    -- kind and time (or the relay's network) when it was captured: the event's (relay's) own
    -- delete delta of the same transaction has them.
    DROP TABLE IF EXISTS pg_temp.an_s;
    CREATE TEMP TABLE an_s ON COMMIT DROP AS
    SELECT d.sign, d.event_id, d.relay_url,
           COALESCE(d.pubkey, ed.pubkey) AS pubkey,
           COALESCE(d.created_at, ed.created_at) AS created_at,
           COALESCE(d.kind, ed.kind) AS kind,
           COALESCE(d.network, rd.network) AS network
    FROM analytics.sighting_delta AS d
    LEFT JOIN LATERAL (
        SELECT x.pubkey, x.created_at, x.kind FROM analytics.event_delta AS x
        WHERE d.pubkey IS NULL AND x.xid = d.xid AND x.id = d.event_id AND x.sign < 0
        LIMIT 1) AS ed ON TRUE
    LEFT JOIN LATERAL (
        SELECT y.network FROM analytics.relay_delta AS y
        WHERE d.network IS NULL AND y.xid = d.xid AND y.url = d.relay_url AND y.sign < 0
        LIMIT 1) AS rd ON TRUE
    WHERE d.xid >= pg_snapshot_xmin(w.prev)
      AND pg_visible_in_snapshot(d.xid, w.cur) AND NOT pg_visible_in_snapshot(d.xid, w.prev);
    GET DIAGNOSTICS v_rows = ROW_COUNT;

    DROP TABLE IF EXISTS pg_temp.an_rl;
    CREATE TEMP TABLE an_rl ON COMMIT DROP AS
    SELECT DISTINCT url FROM analytics.relay_delta AS d
    WHERE d.xid >= pg_snapshot_xmin(w.prev)
      AND pg_visible_in_snapshot(d.xid, w.cur) AND NOT pg_visible_in_snapshot(d.xid, w.prev);
    GET DIAGNOSTICS v_relays = ROW_COUNT;

    IF v_rows > 0 THEN
        ANALYZE pg_temp.an_s;
        IF EXISTS (SELECT 1 FROM an_s WHERE pubkey IS NULL OR network IS NULL) THEN
            RAISE EXCEPTION 'analytics: a deleted sighting has no recorded event or relay'
                USING HINT = 'Run SELECT analytics.rebuild(); as the database owner.';
        END IF;

        -- (relay, pubkey, kind) counts, first and last; a triple that lost events reads its
        -- first/last back from the (pubkey, kind, created_at) index.
        INSERT INTO analytics.relay_key (url)
        SELECT DISTINCT relay_url FROM an_s
        ON CONFLICT (url) DO NOTHING;
        DROP TABLE IF EXISTS pg_temp.an_rpk;
        CREATE TEMP TABLE an_rpk (relay_id INTEGER, relay_url TEXT, pubkey BYTEA, kind INTEGER,
                                  has_del BOOLEAN, old_n BIGINT, new_n BIGINT) ON COMMIT DROP;
        WITH d AS (
            SELECT k.id AS relay_id, x.relay_url, x.pubkey, x.kind, sum(x.sign)::BIGINT AS dn,
                   min(x.created_at) FILTER (WHERE x.sign > 0) AS mn,
                   max(x.created_at) FILTER (WHERE x.sign > 0) AS mx,
                   bool_or(x.sign < 0) AS has_del
            FROM an_s AS x INNER JOIN analytics.relay_key AS k ON k.url = x.relay_url
            GROUP BY k.id, x.relay_url, x.pubkey, x.kind
        ),
        up AS (
            INSERT INTO analytics.relay_pubkey_kind AS s
                (relay_id, pubkey, kind, n, first_ts, last_ts)
            SELECT relay_id, pubkey, kind, dn, COALESCE(mn, 9223372036854775807),
                   COALESCE(mx, -9223372036854775808)
            FROM d WHERE dn <> 0 OR has_del
            ORDER BY relay_id, pubkey, kind
            ON CONFLICT (relay_id, pubkey, kind) DO UPDATE
                SET n = s.n + EXCLUDED.n, first_ts = LEAST(s.first_ts, EXCLUDED.first_ts),
                    last_ts = GREATEST(s.last_ts, EXCLUDED.last_ts)
            RETURNING s.relay_id, s.pubkey, s.kind, s.n
        )
        INSERT INTO an_rpk
        SELECT d.relay_id, d.relay_url, d.pubkey, d.kind, d.has_del, up.n - d.dn, up.n
        FROM up INNER JOIN d
            ON d.relay_id = up.relay_id AND d.pubkey = up.pubkey AND d.kind = up.kind;
        PERFORM analytics.check_counts('relay_pubkey_kind',
                                       EXISTS (SELECT 1 FROM an_rpk WHERE new_n < 0));
        DELETE FROM analytics.relay_pubkey_kind AS s USING an_rpk AS t
        WHERE t.new_n = 0 AND s.relay_id = t.relay_id AND s.pubkey = t.pubkey
          AND s.kind = t.kind;
        UPDATE analytics.relay_pubkey_kind AS s
        SET first_ts = b.lo, last_ts = b.hi
        FROM (
            SELECT t.relay_id, t.pubkey, t.kind, min(e.created_at) AS lo, max(e.created_at) AS hi
            FROM an_rpk AS t
            INNER JOIN public.event AS e ON e.pubkey = t.pubkey AND e.kind = t.kind
            INNER JOIN public.event_relay AS er ON er.event_id = e.id AND er.relay_url = t.relay_url
            WHERE t.has_del AND t.new_n > 0
            GROUP BY t.relay_id, t.pubkey, t.kind
        ) AS b
        WHERE s.relay_id = b.relay_id AND s.pubkey = b.pubkey AND s.kind = b.kind;

        -- (relay, pubkey) pairs, summed from their triples after the update.
        DROP TABLE IF EXISTS pg_temp.an_rp;
        CREATE TEMP TABLE an_rp ON COMMIT DROP AS
        SELECT k.relay_url, k.pubkey, COALESCE(a.n, 0) - k.dn AS old_n, COALESCE(a.n, 0) AS new_n,
               a.kinds, a.lo, a.hi
        FROM (SELECT relay_id, relay_url, pubkey, sum(new_n - old_n)::BIGINT AS dn FROM an_rpk
              GROUP BY relay_id, relay_url, pubkey ORDER BY relay_id, pubkey) AS k
        LEFT JOIN LATERAL (
            SELECT sum(t.n)::BIGINT AS n, count(*) AS kinds, min(t.first_ts) AS lo,
                   max(t.last_ts) AS hi
            FROM analytics.relay_pubkey_kind AS t
            WHERE t.relay_id = k.relay_id AND t.pubkey = k.pubkey
        ) AS a ON TRUE;

        -- pubkey_counts_by_relay publishes the pairs with two events or more: only pairs that
        -- are or were published are touched.
        DELETE FROM public.pubkey_counts_by_relay AS p USING an_rp AS t
        WHERE t.old_n >= 2 AND t.new_n < 2
          AND p.pubkey = encode(t.pubkey, 'hex') AND p.relay_url = t.relay_url;
        INSERT INTO public.pubkey_counts_by_relay AS p
            (relay_url, pubkey, event_count, unique_kinds, first_event_timestamp,
             last_event_timestamp)
        SELECT relay_url, encode(pubkey, 'hex'), new_n, kinds, lo, hi
        FROM an_rp WHERE new_n >= 2
        ORDER BY encode(pubkey, 'hex'), relay_url
        ON CONFLICT (pubkey, relay_url) DO UPDATE
            SET event_count = EXCLUDED.event_count, unique_kinds = EXCLUDED.unique_kinds,
                first_event_timestamp = EXCLUDED.first_event_timestamp,
                last_event_timestamp = EXCLUDED.last_event_timestamp;

        -- kind_counts_by_relay.
        DROP TABLE IF EXISTS pg_temp.an_kr;
        CREATE TEMP TABLE an_kr ON COMMIT DROP AS
        WITH d AS (SELECT kind, relay_url, sum(sign)::BIGINT AS dn FROM an_s
                   GROUP BY kind, relay_url),
             u AS (SELECT kind, relay_url, sum(analytics.transition(old_n, new_n))::BIGINT AS du
                   FROM an_rpk GROUP BY kind, relay_url)
        SELECT d.kind, d.relay_url, COALESCE(s.event_count, 0) AS old_n,
               COALESCE(s.event_count, 0) + d.dn AS new_n,
               COALESCE(s.unique_pubkeys, 0) + COALESCE(u.du, 0) AS new_u
        FROM d
        LEFT JOIN u ON u.kind = d.kind AND u.relay_url = d.relay_url
        LEFT JOIN public.kind_counts_by_relay AS s ON s.kind = d.kind AND s.relay_url = d.relay_url
        WHERE d.dn <> 0 OR COALESCE(u.du, 0) <> 0;
        PERFORM analytics.check_counts('kind_counts_by_relay',
                                       EXISTS (SELECT 1 FROM an_kr WHERE new_n < 0));
        INSERT INTO public.kind_counts_by_relay (kind, relay_url, event_count, unique_pubkeys)
        SELECT kind, relay_url, new_n, new_u FROM an_kr WHERE new_n > 0
        ON CONFLICT (kind, relay_url) DO UPDATE
            SET event_count = EXCLUDED.event_count, unique_pubkeys = EXCLUDED.unique_pubkeys;
        DELETE FROM public.kind_counts_by_relay AS s USING an_kr AS t
        WHERE t.new_n = 0 AND s.kind = t.kind AND s.relay_url = t.relay_url;

        -- Per relay: events, distinct authors (pairs appearing), distinct kinds ((kind, relay)
        -- rows appearing), first/last (from the pairs when the relay lost events).
        DROP TABLE IF EXISTS pg_temp.an_r;
        CREATE TEMP TABLE an_r ON COMMIT DROP AS
        WITH d AS (
            SELECT relay_url, sum(sign)::BIGINT AS dn,
                   min(created_at) FILTER (WHERE sign > 0) AS mn,
                   max(created_at) FILTER (WHERE sign > 0) AS mx,
                   bool_or(sign < 0) AS has_del
            FROM an_s GROUP BY relay_url
        ),
        up AS (SELECT relay_url, sum(analytics.transition(old_n, new_n))::BIGINT AS du
               FROM an_rp GROUP BY relay_url),
        uk AS (SELECT relay_url, sum(analytics.transition(old_n, new_n))::BIGINT AS du
               FROM an_kr GROUP BY relay_url)
        SELECT d.relay_url, d.has_del, COALESCE(s.n, 0) + d.dn AS new_n,
               COALESCE(s.unique_pubkeys, 0) + COALESCE(up.du, 0) AS new_up,
               COALESCE(s.unique_kinds, 0) + COALESCE(uk.du, 0) AS new_uk,
               LEAST(s.first_ts, d.mn) AS new_first, GREATEST(s.last_ts, d.mx) AS new_last
        FROM d
        LEFT JOIN up ON up.relay_url = d.relay_url
        LEFT JOIN uk ON uk.relay_url = d.relay_url
        LEFT JOIN analytics.relay_events AS s ON s.relay_url = d.relay_url;
        PERFORM analytics.check_counts('relay_events', EXISTS (SELECT 1 FROM an_r WHERE new_n < 0));
        INSERT INTO analytics.relay_events
            (relay_url, n, unique_pubkeys, unique_kinds, first_ts, last_ts)
        SELECT relay_url, new_n, new_up, new_uk, new_first, new_last FROM an_r WHERE new_n > 0
        ON CONFLICT (relay_url) DO UPDATE
            SET n = EXCLUDED.n, unique_pubkeys = EXCLUDED.unique_pubkeys,
                unique_kinds = EXCLUDED.unique_kinds, first_ts = EXCLUDED.first_ts,
                last_ts = EXCLUDED.last_ts;
        DELETE FROM analytics.relay_events AS s USING an_r AS t
        WHERE t.new_n = 0 AND s.relay_url = t.relay_url;
        UPDATE analytics.relay_events AS s
        SET first_ts = b.lo, last_ts = b.hi
        FROM (SELECT k.url AS relay_url, min(p.first_ts) AS lo, max(p.last_ts) AS hi
              FROM analytics.relay_pubkey_kind AS p
              INNER JOIN analytics.relay_key AS k ON k.id = p.relay_id
              WHERE k.url IN (SELECT relay_url FROM an_r WHERE has_del AND new_n > 0)
              GROUP BY k.url) AS b
        WHERE s.relay_url = b.relay_url;

        -- Networks: an event counts once per network, and its author and kind with it.
        PERFORM analytics.add_counts('an_ne', 'analytics.network_event',
            ARRAY['network', 'event_id'],
            'SELECT network, event_id, sum(sign)::BIGINT AS dn, (array_agg(pubkey))[1] AS pubkey,
                    min(kind) AS kind
             FROM an_s GROUP BY network, event_id');

        PERFORM analytics.add_counts('an_np', 'analytics.network_pubkey',
            ARRAY['network', 'pubkey'],
            'SELECT network, pubkey, sum(analytics.transition(old_n, new_n))::BIGINT AS dn
             FROM an_ne GROUP BY network, pubkey');

        PERFORM analytics.add_counts('an_nk', 'analytics.network_kind', ARRAY['network', 'kind'],
            'SELECT network, kind, sum(analytics.transition(old_n, new_n))::BIGINT AS dn
             FROM an_ne GROUP BY network, kind');

        INSERT INTO analytics.network_events AS s
            (network, event_count, unique_pubkeys, unique_kinds)
        SELECT n.network, sum(n.de), sum(n.dp), sum(n.dk)
        FROM (
            SELECT network, analytics.transition(old_n, new_n) AS de, 0 AS dp, 0 AS dk FROM an_ne
            UNION ALL
            SELECT network, 0, analytics.transition(old_n, new_n), 0 FROM an_np
            UNION ALL
            SELECT network, 0, 0, analytics.transition(old_n, new_n) FROM an_nk
        ) AS n
        GROUP BY n.network
        ON CONFLICT (network) DO UPDATE
            SET event_count = s.event_count + EXCLUDED.event_count,
                unique_pubkeys = s.unique_pubkeys + EXCLUDED.unique_pubkeys,
                unique_kinds = s.unique_kinds + EXCLUDED.unique_kinds;
        DELETE FROM analytics.network_events WHERE event_count = 0;
    END IF;

    IF v_rows > 0 OR v_relays > 0 THEN
        -- network_stats has one row per network with relays: recomputed whole (a handful of
        -- rows, relay counts by a scan of relay).
        DELETE FROM public.network_stats;
        INSERT INTO public.network_stats
            (network, relay_count, event_count, unique_pubkeys, unique_kinds)
        SELECT rc.network, rc.relay_count, COALESCE(ne.event_count, 0),
               COALESCE(ne.unique_pubkeys, 0), COALESCE(ne.unique_kinds, 0)
        FROM (SELECT network, count(*) AS relay_count FROM public.relay GROUP BY network) AS rc
        LEFT JOIN analytics.network_events AS ne ON ne.network = rc.network;

        PERFORM analytics.relay_stats_recompute(ARRAY(
            SELECT relay_url FROM an_s UNION SELECT url FROM an_rl));
    END IF;

    PERFORM analytics.end_window('sighting', w.cur);
    RETURN v_rows + v_relays;
END;
$$;


-- --------------------------------------------------------------------------
-- 5d. Metadata consumer (relay_metadata): relay_metadata_latest, relay_software_counts,
--     supported_nip_counts, relay_uptime_daily, relay_uptime and the RTT/NIP-11 part of
--     relay_stats
-- --------------------------------------------------------------------------

-- relay_uptime over the last 24 h / 7 d / 30 d, recomputed whole at every refresh (the windows
-- move with the clock): hour buckets from the first whole hour of each window, plus the checks
-- of the partial hour before it read by index. Its cost follows the relays checked in the last
-- 30 days, not the history.
CREATE FUNCTION analytics.relay_uptime_recompute()
RETURNS VOID
LANGUAGE plpgsql
SET client_min_messages = warning
AS $$
DECLARE
    v_now BIGINT := analytics.epoch_now();
    t24 BIGINT := v_now - 86400;
    t7 BIGINT := v_now - 604800;
    t30 BIGINT := v_now - 2592000;
BEGIN
    -- Buckets older than every window are no longer needed.
    DELETE FROM analytics.uptime_hour WHERE hour < t30 / 3600 - 24;

    DROP TABLE IF EXISTS pg_temp.an_up;
    CREATE TEMP TABLE an_up ON COMMIT DROP AS
    WITH edge AS (
        SELECT rm.relay_url, rm.generated_at, analytics.open_ok(m.data) AS ok
        FROM public.relay_metadata AS rm
        INNER JOIN public.metadata AS m ON m.id = rm.metadata_id AND m.type = rm.metadata_type
        WHERE rm.metadata_type = 'nip66_rtt'
          AND ((rm.generated_at >= t24 AND rm.generated_at < ((t24 + 3599) / 3600) * 3600)
            OR (rm.generated_at >= t7 AND rm.generated_at < ((t7 + 3599) / 3600) * 3600)
            OR (rm.generated_at >= t30 AND rm.generated_at < ((t30 + 3599) / 3600) * 3600))
    ),
    parts AS (
        SELECT relay_url,
               sum(checks) FILTER (WHERE hour >= (t24 + 3599) / 3600) AS c24,
               sum(open_ok) FILTER (WHERE hour >= (t24 + 3599) / 3600) AS o24,
               sum(checks) FILTER (WHERE hour >= (t7 + 3599) / 3600) AS c7,
               sum(open_ok) FILTER (WHERE hour >= (t7 + 3599) / 3600) AS o7,
               sum(checks) AS c30, sum(open_ok) AS o30
        FROM analytics.uptime_hour WHERE hour >= (t30 + 3599) / 3600
        GROUP BY relay_url
        UNION ALL
        SELECT relay_url,
               count(*) FILTER (WHERE generated_at >= t24
                                  AND generated_at < ((t24 + 3599) / 3600) * 3600),
               count(*) FILTER (WHERE ok AND generated_at >= t24
                                  AND generated_at < ((t24 + 3599) / 3600) * 3600),
               count(*) FILTER (WHERE generated_at >= t7
                                  AND generated_at < ((t7 + 3599) / 3600) * 3600),
               count(*) FILTER (WHERE ok AND generated_at >= t7
                                  AND generated_at < ((t7 + 3599) / 3600) * 3600),
               count(*) FILTER (WHERE generated_at >= t30
                                  AND generated_at < ((t30 + 3599) / 3600) * 3600),
               count(*) FILTER (WHERE ok AND generated_at >= t30
                                  AND generated_at < ((t30 + 3599) / 3600) * 3600)
        FROM edge GROUP BY relay_url
    ),
    agg AS (
        SELECT relay_url, COALESCE(sum(c24), 0)::BIGINT AS c24, COALESCE(sum(o24), 0) AS o24,
               COALESCE(sum(c7), 0)::BIGINT AS c7, COALESCE(sum(o7), 0) AS o7,
               COALESCE(sum(c30), 0)::BIGINT AS c30, COALESCE(sum(o30), 0) AS o30
        FROM parts GROUP BY relay_url
    )
    SELECT relay_url,
           c24 AS checks_24h, ROUND(o24::NUMERIC / NULLIF(c24, 0), 4) AS uptime_24h,
           c7 AS checks_7d, ROUND(o7::NUMERIC / NULLIF(c7, 0), 4) AS uptime_7d,
           c30 AS checks_30d, ROUND(o30::NUMERIC / NULLIF(c30, 0), 4) AS uptime_30d
    FROM agg WHERE c30 > 0;

    DELETE FROM public.relay_uptime AS u
    WHERE NOT EXISTS (SELECT 1 FROM an_up AS n WHERE n.relay_url = u.relay_url);
    INSERT INTO public.relay_uptime AS u
    SELECT * FROM an_up
    ON CONFLICT (relay_url) DO UPDATE
        SET checks_24h = EXCLUDED.checks_24h, uptime_24h = EXCLUDED.uptime_24h,
            checks_7d = EXCLUDED.checks_7d, uptime_7d = EXCLUDED.uptime_7d,
            checks_30d = EXCLUDED.checks_30d, uptime_30d = EXCLUDED.uptime_30d
        WHERE (u.checks_24h, u.uptime_24h, u.checks_7d, u.uptime_7d, u.checks_30d, u.uptime_30d)
              IS DISTINCT FROM
              (EXCLUDED.checks_24h, EXCLUDED.uptime_24h, EXCLUDED.checks_7d, EXCLUDED.uptime_7d,
               EXCLUDED.checks_30d, EXCLUDED.uptime_30d);
END;
$$;

CREATE FUNCTION analytics.apply_metadata()
RETURNS BIGINT
LANGUAGE plpgsql
SET client_min_messages = warning
SET random_page_cost = 1.1
AS $$
DECLARE
    w RECORD;
    v_rows BIGINT;
BEGIN
    w := analytics.begin_window('metadata');
    DROP TABLE IF EXISTS pg_temp.an_m;
    CREATE TEMP TABLE an_m ON COMMIT DROP AS
    SELECT d.sign, d.relay_url, d.metadata_type, d.generated_at,
           COALESCE(d.open_ok, md.open_ok) AS open_ok
    FROM analytics.relay_metadata_delta AS d
    LEFT JOIN LATERAL (
        SELECT x.open_ok FROM analytics.metadata_delta AS x
        WHERE d.open_ok IS NULL AND d.metadata_type = 'nip66_rtt' AND x.xid = d.xid
          AND x.id = d.metadata_id AND x.type = d.metadata_type
        LIMIT 1) AS md ON TRUE
    WHERE d.xid >= pg_snapshot_xmin(w.prev)
      AND pg_visible_in_snapshot(d.xid, w.cur) AND NOT pg_visible_in_snapshot(d.xid, w.prev);
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    IF EXISTS (SELECT 1 FROM an_m WHERE metadata_type = 'nip66_rtt' AND open_ok IS NULL) THEN
        RAISE EXCEPTION 'analytics: a deleted RTT result has no recorded document'
            USING HINT = 'Run SELECT analytics.rebuild(); as the database owner.';
    END IF;

    IF v_rows > 0 THEN
        ANALYZE pg_temp.an_m;

        -- relay_metadata_latest: the newest snapshot of each affected (relay, type), by index.
        DROP TABLE IF EXISTS pg_temp.an_mk;
        CREATE TEMP TABLE an_mk ON COMMIT DROP AS
        SELECT DISTINCT relay_url, metadata_type FROM an_m;
        DELETE FROM public.relay_metadata_latest AS s USING an_mk AS k
        WHERE s.relay_url = k.relay_url AND s.metadata_type = k.metadata_type;
        INSERT INTO public.relay_metadata_latest
            (relay_url, metadata_type, generated_at, metadata_id, data)
        SELECT l.* FROM an_mk AS k
        CROSS JOIN LATERAL (
            SELECT rm.relay_url, rm.metadata_type, rm.generated_at, rm.metadata_id, m.data
            FROM public.relay_metadata AS rm
            INNER JOIN public.metadata AS m ON m.id = rm.metadata_id AND m.type = rm.metadata_type
            WHERE rm.relay_url = k.relay_url AND rm.metadata_type = k.metadata_type
            ORDER BY rm.generated_at DESC
            LIMIT 1
        ) AS l;

        -- The two NIP-11 summaries: one row per software/NIP, recomputed whole from
        -- relay_metadata_latest (one row per relay) when a NIP-11 document changed.
        IF EXISTS (SELECT 1 FROM an_mk WHERE metadata_type = 'nip11_info') THEN
            DELETE FROM public.relay_software_counts;
            INSERT INTO public.relay_software_counts (software, version, relay_count)
            SELECT data -> 'data' ->> 'software', COALESCE(data -> 'data' ->> 'version', 'unknown'),
                   count(*)
            FROM public.relay_metadata_latest
            WHERE metadata_type = 'nip11_info' AND data -> 'data' ->> 'software' IS NOT NULL
            GROUP BY 1, 2;
            DELETE FROM public.supported_nip_counts;
            INSERT INTO public.supported_nip_counts (nip, relay_count)
            SELECT nip_text::INTEGER, count(*)
            FROM public.relay_metadata_latest
            CROSS JOIN LATERAL jsonb_array_elements_text(data -> 'data' -> 'supported_nips')
                AS nip_text
            WHERE metadata_type = 'nip11_info'
              AND data -> 'data' ? 'supported_nips'
              AND jsonb_typeof(data -> 'data' -> 'supported_nips') = 'array'
              AND nip_text ~ '^0*\d{1,9}$'
            GROUP BY nip_text::INTEGER;
        END IF;

        -- relay_uptime_daily and the hour buckets: additive over the RTT checks.
        DROP TABLE IF EXISTS pg_temp.an_ud;
        CREATE TEMP TABLE an_ud ON COMMIT DROP AS
        WITH d AS (
            SELECT relay_url, analytics.day_of(generated_at) AS day, sum(sign)::BIGINT AS dc,
                   sum(sign) FILTER (WHERE open_ok)::BIGINT AS dok
            FROM an_m
            WHERE metadata_type = 'nip66_rtt' AND analytics.day_of(generated_at) IS NOT NULL
            GROUP BY 1, 2
        )
        SELECT d.relay_url, '1970-01-01'::DATE + d.day AS day,
               COALESCE(s.checks, 0) + d.dc AS new_c,
               COALESCE(s.open_ok, 0) + COALESCE(d.dok, 0) AS new_ok
        FROM d LEFT JOIN public.relay_uptime_daily AS s
            ON s.relay_url = d.relay_url AND s.day = '1970-01-01'::DATE + d.day
        WHERE d.dc <> 0 OR COALESCE(d.dok, 0) <> 0;
        PERFORM analytics.check_counts('relay_uptime_daily',
                                       EXISTS (SELECT 1 FROM an_ud WHERE new_c < 0 OR new_ok < 0));
        INSERT INTO public.relay_uptime_daily (relay_url, day, checks, open_ok, uptime)
        SELECT relay_url, day, new_c, new_ok, ROUND(new_ok::NUMERIC / new_c, 4)
        FROM an_ud WHERE new_c > 0
        ON CONFLICT (relay_url, day) DO UPDATE
            SET checks = EXCLUDED.checks, open_ok = EXCLUDED.open_ok, uptime = EXCLUDED.uptime;
        DELETE FROM public.relay_uptime_daily AS s USING an_ud AS t
        WHERE t.new_c = 0 AND s.relay_url = t.relay_url AND s.day = t.day;

        INSERT INTO analytics.uptime_hour AS s (relay_url, hour, checks, open_ok)
        SELECT relay_url, generated_at / 3600, sum(sign), COALESCE(sum(sign) FILTER (WHERE open_ok), 0)
        FROM an_m
        WHERE metadata_type = 'nip66_rtt'
          AND generated_at >= analytics.epoch_now() - 2592000 - 86400
        GROUP BY relay_url, generated_at / 3600
        ON CONFLICT (relay_url, hour) DO UPDATE
            SET checks = s.checks + EXCLUDED.checks, open_ok = s.open_ok + EXCLUDED.open_ok;
        DELETE FROM analytics.uptime_hour WHERE checks = 0
            AND (relay_url, hour) IN (SELECT relay_url, generated_at / 3600 FROM an_m);

        -- relay_stats of the relays whose RTT checks or NIP-11 changed.
        PERFORM analytics.relay_stats_recompute(ARRAY(
            SELECT DISTINCT relay_url FROM an_mk
            WHERE metadata_type IN ('nip66_rtt', 'nip11_info')));
    END IF;

    PERFORM analytics.relay_uptime_recompute();
    PERFORM analytics.end_window('metadata', w.cur);
    RETURN v_rows;
END;
$$;


-- ==========================================================================
-- 6. Refresh functions: the same names and signatures as 6.6.9's
-- ==========================================================================
-- Each brings its object up to date by applying the pending deltas of the consumer(s) that
-- maintain it. Objects of one consumer are refreshed together: after the first of them, the
-- others cost a snapshot comparison. Refreshes of different consumers may run at the same time;
-- refreshes of one consumer queue on its watermark row.

CREATE OR REPLACE FUNCTION relay_metadata_latest_refresh() RETURNS VOID
LANGUAGE plpgsql AS $$ BEGIN PERFORM analytics.apply_metadata(); END; $$;
CREATE OR REPLACE FUNCTION event_stats_refresh() RETURNS VOID
LANGUAGE plpgsql AS $$ BEGIN PERFORM analytics.apply_event(); END; $$;
CREATE OR REPLACE FUNCTION relay_stats_refresh() RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM analytics.lock_consumers(ARRAY['metadata', 'sighting']);
    PERFORM analytics.apply_metadata();
    PERFORM analytics.apply_sighting();
END;
$$;
CREATE OR REPLACE FUNCTION kind_counts_refresh() RETURNS VOID
LANGUAGE plpgsql AS $$ BEGIN PERFORM analytics.apply_event(); END; $$;
CREATE OR REPLACE FUNCTION kind_counts_by_relay_refresh() RETURNS VOID
LANGUAGE plpgsql AS $$ BEGIN PERFORM analytics.apply_sighting(); END; $$;
CREATE OR REPLACE FUNCTION pubkey_counts_refresh() RETURNS VOID
LANGUAGE plpgsql AS $$ BEGIN PERFORM analytics.apply_event(); END; $$;
CREATE OR REPLACE FUNCTION pubkey_counts_by_relay_refresh() RETURNS VOID
LANGUAGE plpgsql AS $$ BEGIN PERFORM analytics.apply_sighting(); END; $$;
CREATE OR REPLACE FUNCTION network_stats_refresh() RETURNS VOID
LANGUAGE plpgsql AS $$ BEGIN PERFORM analytics.apply_sighting(); END; $$;
CREATE OR REPLACE FUNCTION relay_software_counts_refresh() RETURNS VOID
LANGUAGE plpgsql AS $$ BEGIN PERFORM analytics.apply_metadata(); END; $$;
CREATE OR REPLACE FUNCTION supported_nip_counts_refresh() RETURNS VOID
LANGUAGE plpgsql AS $$ BEGIN PERFORM analytics.apply_metadata(); END; $$;
CREATE OR REPLACE FUNCTION event_daily_counts_refresh() RETURNS VOID
LANGUAGE plpgsql AS $$ BEGIN PERFORM analytics.apply_event(); END; $$;
CREATE OR REPLACE FUNCTION events_replaceable_latest_refresh() RETURNS VOID
LANGUAGE plpgsql AS $$ BEGIN PERFORM analytics.apply_event(); END; $$;
CREATE OR REPLACE FUNCTION events_addressable_latest_refresh() RETURNS VOID
LANGUAGE plpgsql AS $$ BEGIN PERFORM analytics.apply_event(); END; $$;
CREATE FUNCTION relay_uptime_daily_refresh() RETURNS VOID
LANGUAGE plpgsql AS $$ BEGIN PERFORM analytics.apply_metadata(); END; $$;
CREATE FUNCTION relay_uptime_refresh() RETURNS VOID
LANGUAGE plpgsql AS $$ BEGIN PERFORM analytics.apply_metadata(); END; $$;

CREATE OR REPLACE FUNCTION all_statistics_refresh()
RETURNS VOID
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM analytics.lock_consumers(ARRAY['event', 'metadata', 'sighting']);
    PERFORM analytics.apply_metadata();
    PERFORM analytics.apply_event();
    PERFORM analytics.apply_sighting();
END;
$$;


-- Which consumers each refresh function applies: refreshes that share one queue on its
-- watermark, so a refresher running several at once starts them grouped (bigbrotr-refresher
-- reads this table when it exists; the contract remains the functions themselves).
CREATE TABLE analytics.object_consumer (
    object TEXT PRIMARY KEY,
    consumers TEXT[] NOT NULL
);
INSERT INTO analytics.object_consumer (object, consumers) VALUES
    ('relay_metadata_latest', '{metadata}'), ('event_stats', '{event}'),
    ('relay_stats', '{metadata,sighting}'), ('kind_counts', '{event}'),
    ('kind_counts_by_relay', '{sighting}'), ('pubkey_counts', '{event}'),
    ('pubkey_counts_by_relay', '{sighting}'), ('network_stats', '{sighting}'),
    ('event_daily_counts', '{event}'), ('events_replaceable_latest', '{event}'),
    ('events_addressable_latest', '{event}'), ('relay_software_counts', '{metadata}'),
    ('supported_nip_counts', '{metadata}'), ('relay_uptime_daily', '{metadata}'),
    ('relay_uptime', '{metadata}'), ('all_statistics', '{event,metadata,sighting}');


-- ==========================================================================
-- 7. Rebuild from scratch
-- ==========================================================================
-- Recomputes every object and count table from the base tables and resets the watermarks.
-- Writers of event, event_relay, relay, relay_metadata and metadata wait for it (SHARE lock),
-- so what it reads is exactly what the watermark it stores covers; readers of the analytics
-- objects wait too (TRUNCATE). Run it as the database owner: SELECT analytics.rebuild();
CREATE FUNCTION analytics.rebuild()
RETURNS VOID
LANGUAGE plpgsql
SET client_min_messages = warning
AS $$
BEGIN
    PERFORM analytics.lock_consumers(ARRAY['event', 'metadata', 'sighting']);
    LOCK TABLE public.event, public.event_relay, public.relay, public.relay_metadata,
        public.metadata IN SHARE MODE;

    TRUNCATE analytics.pubkey_kind, analytics.day_pubkey, analytics.day_kind,
        analytics.event_hour, analytics.relay_pubkey_kind, analytics.relay_events, analytics.network_event, analytics.network_pubkey,
        analytics.network_kind, analytics.network_events, analytics.uptime_hour,
        public.relay_metadata_latest, public.event_stats, public.relay_stats,
        public.kind_counts, public.kind_counts_by_relay, public.pubkey_counts,
        public.pubkey_counts_by_relay, public.network_stats, public.relay_software_counts,
        public.supported_nip_counts, public.event_daily_counts,
        public.events_replaceable_latest, public.events_addressable_latest,
        public.relay_uptime_daily, public.relay_uptime;

    -- Events: one pass per grouping.
    DROP TABLE IF EXISTS pg_temp.rb_pk;
    CREATE TEMP TABLE rb_pk ON COMMIT DROP AS
    SELECT pubkey, kind, count(*) AS n, min(created_at) AS lo, max(created_at) AS hi
    FROM public.event GROUP BY pubkey, kind;
    INSERT INTO analytics.pubkey_kind SELECT pubkey, kind, n FROM rb_pk;
    INSERT INTO public.kind_counts (kind, event_count, unique_pubkeys, category)
    SELECT kind, sum(n), count(*), analytics.kind_category(kind) FROM rb_pk GROUP BY kind;
    INSERT INTO public.pubkey_counts
    SELECT encode(pubkey, 'hex'), sum(n), count(*), min(lo), max(hi) FROM rb_pk GROUP BY pubkey;
    INSERT INTO analytics.day_pubkey
    SELECT analytics.day_of(created_at), pubkey, count(*) FROM public.event
    WHERE analytics.day_of(created_at) IS NOT NULL GROUP BY 1, 2;
    INSERT INTO analytics.day_kind
    SELECT analytics.day_of(created_at), kind, count(*) FROM public.event
    WHERE analytics.day_of(created_at) IS NOT NULL GROUP BY 1, 2;
    INSERT INTO public.event_daily_counts (day, event_count, unique_pubkeys, unique_kinds)
    SELECT '1970-01-01'::DATE + k.day, k.n, p.n, k.kinds
    FROM (SELECT day, sum(n) AS n, count(*) AS kinds FROM analytics.day_kind GROUP BY day) AS k
    INNER JOIN (SELECT day, count(*) AS n FROM analytics.day_pubkey GROUP BY day) AS p
        ON p.day = k.day;
    INSERT INTO analytics.event_hour
    SELECT created_at / 3600, count(*) FROM public.event GROUP BY 1;
    INSERT INTO public.event_stats
    SELECT 1, COALESCE(sum(event_count), 0), (SELECT count(*) FROM public.pubkey_counts),
           count(*), NULL, NULL,
           COALESCE(sum(event_count) FILTER (WHERE category = 'regular'), 0),
           COALESCE(sum(event_count) FILTER (WHERE category = 'replaceable'), 0),
           COALESCE(sum(event_count) FILTER (WHERE category = 'ephemeral'), 0),
           COALESCE(sum(event_count) FILTER (WHERE category = 'addressable'), 0),
           0, 0, 0, 0, 0
    FROM public.kind_counts;
    PERFORM analytics.event_stats_finish();
    INSERT INTO public.events_replaceable_latest SELECT * FROM analytics.events_replaceable_latest_full;
    INSERT INTO public.events_addressable_latest SELECT * FROM analytics.events_addressable_latest_full;

    -- Sightings.
    DROP TABLE IF EXISTS pg_temp.rb_rpk;
    CREATE TEMP TABLE rb_rpk ON COMMIT DROP AS
    SELECT er.relay_url, e.pubkey, e.kind, count(*) AS n, min(e.created_at) AS lo,
           max(e.created_at) AS hi
    FROM public.event_relay AS er
    INNER JOIN public.event AS e ON e.id = er.event_id
    GROUP BY er.relay_url, e.pubkey, e.kind;
    INSERT INTO analytics.relay_key (url) SELECT url FROM public.relay ON CONFLICT (url) DO NOTHING;
    INSERT INTO analytics.relay_pubkey_kind
    SELECT k.id, r.pubkey, r.kind, r.n, r.lo, r.hi
    FROM rb_rpk AS r INNER JOIN analytics.relay_key AS k ON k.url = r.relay_url;
    INSERT INTO public.pubkey_counts_by_relay
    SELECT relay_url, encode(pubkey, 'hex'), sum(n), count(*), min(lo), max(hi) FROM rb_rpk
    GROUP BY relay_url, pubkey HAVING sum(n) >= 2;
    INSERT INTO public.kind_counts_by_relay
    SELECT kind, relay_url, sum(n), count(*) FROM rb_rpk GROUP BY kind, relay_url;
    INSERT INTO analytics.relay_events
    SELECT relay_url, sum(n), count(DISTINCT pubkey), count(DISTINCT kind), min(lo), max(hi)
    FROM rb_rpk GROUP BY relay_url;
    INSERT INTO analytics.network_event
    SELECT r.network, er.event_id, count(*)
    FROM public.event_relay AS er INNER JOIN public.relay AS r ON r.url = er.relay_url
    GROUP BY r.network, er.event_id;
    DROP TABLE IF EXISTS pg_temp.rb_npk;
    CREATE TEMP TABLE rb_npk ON COMMIT DROP AS
    SELECT ne.network, e.pubkey, e.kind, count(*) AS n
    FROM analytics.network_event AS ne INNER JOIN public.event AS e ON e.id = ne.event_id
    GROUP BY ne.network, e.pubkey, e.kind;
    INSERT INTO analytics.network_pubkey SELECT network, pubkey, sum(n) FROM rb_npk GROUP BY 1, 2;
    INSERT INTO analytics.network_kind SELECT network, kind, sum(n) FROM rb_npk GROUP BY 1, 2;
    INSERT INTO analytics.network_events
    SELECT network, sum(n), count(DISTINCT pubkey), count(DISTINCT kind) FROM rb_npk
    GROUP BY network;
    INSERT INTO public.network_stats
    SELECT rc.network, rc.relay_count, COALESCE(ne.event_count, 0),
           COALESCE(ne.unique_pubkeys, 0), COALESCE(ne.unique_kinds, 0)
    FROM (SELECT network, count(*) AS relay_count FROM public.relay GROUP BY network) AS rc
    LEFT JOIN analytics.network_events AS ne ON ne.network = rc.network;

    -- Metadata.
    INSERT INTO public.relay_metadata_latest SELECT * FROM analytics.relay_metadata_latest_full;
    INSERT INTO public.relay_software_counts SELECT * FROM analytics.relay_software_counts_full;
    INSERT INTO public.supported_nip_counts SELECT * FROM analytics.supported_nip_counts_full;
    INSERT INTO public.relay_uptime_daily SELECT * FROM analytics.relay_uptime_daily_full;
    INSERT INTO analytics.uptime_hour
    SELECT rm.relay_url, rm.generated_at / 3600, count(*),
           count(*) FILTER (WHERE analytics.open_ok(m.data))
    FROM public.relay_metadata AS rm
    INNER JOIN public.metadata AS m ON m.id = rm.metadata_id AND m.type = rm.metadata_type
    WHERE rm.metadata_type = 'nip66_rtt'
      AND rm.generated_at >= analytics.epoch_now() - 2592000 - 86400
    GROUP BY 1, 2;
    PERFORM analytics.relay_uptime_recompute();
    PERFORM analytics.relay_stats_recompute(ARRAY(SELECT url FROM public.relay));

    -- Nothing can be pending: writers wait for the lock, so every delta row is reflected.
    TRUNCATE analytics.event_delta, analytics.sighting_delta, analytics.relay_delta,
        analytics.relay_metadata_delta, analytics.metadata_delta, analytics.truncate_log;
    INSERT INTO analytics.consumer AS c (name, applied)
    VALUES ('event', analytics.current_snapshot()), ('sighting', analytics.current_snapshot()),
           ('metadata', analytics.current_snapshot())
    ON CONFLICT (name) DO UPDATE
        SET applied = EXCLUDED.applied, refreshed_at = now(),
            system_identifier = analytics.system_identifier();
END;
$$;


-- ==========================================================================
-- 8. Ownership and privileges
-- ==========================================================================
-- refresher owns the analytics objects, as it owned the views: its refresh calls write them.
-- The capture triggers run as refresher (SECURITY DEFINER), so a writer needs no right on the
-- analytics schema. writer loses the write rights default privileges gave it on the public
-- analytics tables: only refreshes write them. reader reads them.

DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'relay_metadata_latest', 'event_stats', 'relay_stats', 'kind_counts',
        'kind_counts_by_relay', 'pubkey_counts', 'pubkey_counts_by_relay', 'network_stats',
        'relay_software_counts', 'supported_nip_counts', 'event_daily_counts',
        'events_replaceable_latest', 'events_addressable_latest', 'relay_uptime_daily',
        'relay_uptime'
    ] LOOP
        EXECUTE format('ALTER TABLE public.%I OWNER TO refresher', t);
        EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON public.%I FROM writer', t);
        EXECUTE format('GRANT SELECT ON public.%I TO reader, writer', t);
    END LOOP;
    FOR t IN SELECT c.relname FROM pg_class AS c
             WHERE c.relnamespace = 'analytics'::regnamespace AND c.relkind IN ('r', 'v')
    LOOP
        EXECUTE format('ALTER TABLE analytics.%I OWNER TO refresher', t);
        EXECUTE format('GRANT SELECT ON analytics.%I TO reader', t);
    END LOOP;
END
$$;

ALTER FUNCTION analytics.capture_event() OWNER TO refresher;
ALTER FUNCTION analytics.capture_event_relay() OWNER TO refresher;
ALTER FUNCTION analytics.capture_relay() OWNER TO refresher;
ALTER FUNCTION analytics.capture_relay_metadata() OWNER TO refresher;
ALTER FUNCTION analytics.capture_truncate() OWNER TO refresher;
ALTER FUNCTION analytics.capture_metadata() OWNER TO refresher;
-- Trigger functions are called by triggers only.
REVOKE EXECUTE ON FUNCTION analytics.capture_event(), analytics.capture_event_relay(),
    analytics.capture_relay(), analytics.capture_relay_metadata(), analytics.capture_truncate(),
    analytics.capture_metadata()
    FROM PUBLIC;


-- ==========================================================================
-- 9. First build
-- ==========================================================================
-- On an empty database this is instant; on an archive it takes about as long as one full
-- refresh of 6.6.9's views, during which writers wait.
DO $$ BEGIN PERFORM analytics.rebuild(); END $$;
