-- 0001_bigbrotr_baseline.sql
--
-- The schema of BigBrotr 6.6.9, as its own init SQL (deployments/bigbrotr/postgres/init,
-- files 00 to 08) leaves a fresh database: 2 extensions; 6 tables (event and event_relay
-- hash-partitioned 16 ways); 27 functions (tags_to_tagvalues, 10 CRUD/cascade/state functions,
-- 2 orphan cleanups, 13 view refreshes and all_statistics_refresh); 13 materialized views and
-- their indexes; the 11 table indexes. Roles and grants are in 0002; bug fixes start in 0003.
--
-- This file is the contract with databases created by 6.6.9 itself: the migrate tool adopts it
-- on such a database instead of running it, so it must describe exactly what 6.6.9 creates,
-- bugs included. It is never edited once released. Every statement is also idempotent
-- (IF NOT EXISTS, CREATE OR REPLACE with the original parameter names), so running it over a
-- 6.6.9 database fails on nothing and leaves its tables, views and data as they are.
--
-- sqlx runs it inside one transaction; it must therefore avoid CREATE INDEX CONCURRENTLY and
-- VACUUM. It also runs under `psql -v ON_ERROR_STOP=1 --single-transaction -f`.

-- Every object belongs in schema public, where unqualified names create them only if public is
-- the first schema of the search_path. This is checked rather than forced with SET: sqlx records
-- the migration in the same transaction through the unqualified _sqlx_migrations, which must keep
-- resolving as it did when sqlx created it.
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


-- ==========================================================================
-- Extensions
-- ==========================================================================

-- btree_gin lets the GIN index on event.tagvalues be built (6.6.9 creates it for that).
CREATE EXTENSION IF NOT EXISTS btree_gin;

-- pg_stat_statements only collects when listed in shared_preload_libraries; creating the
-- extension without it succeeds, and querying the view then fails, as in 6.6.9.
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;


-- ==========================================================================
-- Utility function (created before the tables, as in 6.6.9)
-- ==========================================================================

-- tags_to_tagvalues(JSONB) -> TEXT[]: for every tag whose key (element 0) is exactly one
-- character, emit 'key:value' with only the first value (element 1), in tag order, duplicates
-- kept. A key-only tag such as ["e"] yields a NULL element, because text || NULL is NULL.
-- Non-array elements and multi-character keys are skipped. An empty or fully filtered array
-- gives '{}', never NULL; a NULL input gives NULL (RETURNS NULL ON NULL INPUT).
-- The parameter is unnamed, as in 6.6.9, so CREATE OR REPLACE stays compatible with it.
CREATE OR REPLACE FUNCTION tags_to_tagvalues(JSONB)
RETURNS TEXT []
LANGUAGE sql
IMMUTABLE
RETURNS NULL ON NULL INPUT
AS $$
    SELECT COALESCE(
        array_agg((t.tag ->> 0) || ':' || (t.tag ->> 1) ORDER BY t.ord),
        '{}'::TEXT []
    )
    FROM jsonb_array_elements($1) WITH ORDINALITY AS t(tag, ord)
    WHERE length(t.tag ->> 0) = 1
$$;


-- ==========================================================================
-- Tables
-- ==========================================================================

-- relay: relays that passed validation. discovered_at is set once; relay_insert never
-- overwrites it.
CREATE TABLE IF NOT EXISTS relay (
    url TEXT PRIMARY KEY,
    network TEXT NOT NULL,
    discovered_at BIGINT NOT NULL
);

-- event: full NIP-01 events. id, pubkey and sig are the raw bytes of their hex forms.
-- tagvalues is a plain column filled by event_insert() (not a generated column), which is what
-- lets LilBrotr keep it while dropping tags. Hash partitioning on id spreads writes and lets
-- event and event_relay (partitioned on the same key and modulus) be joined partition-wise.
CREATE TABLE IF NOT EXISTS event (
    id BYTEA NOT NULL,
    pubkey BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    kind INTEGER NOT NULL,
    tags JSONB NOT NULL,
    tagvalues TEXT [] NOT NULL,
    content TEXT NOT NULL,
    sig BYTEA NOT NULL,
    PRIMARY KEY (id)
) PARTITION BY HASH (id);

-- event_relay: which relay served which event, and when it was first seen there. Both foreign
-- keys cascade, so deleting a relay or an event removes its observations.
CREATE TABLE IF NOT EXISTS event_relay (
    event_id BYTEA NOT NULL,
    relay_url TEXT NOT NULL,
    seen_at BIGINT NOT NULL,
    PRIMARY KEY (event_id, relay_url),
    FOREIGN KEY (event_id) REFERENCES event (id) ON DELETE CASCADE,
    FOREIGN KEY (relay_url) REFERENCES relay (url) ON DELETE CASCADE
) PARTITION BY HASH (event_id);

-- The 16 leaf partitions of each table (event_p0..event_p15, event_relay_p0..event_relay_p15).
-- event_relay takes many small inserts, so its leaves are vacuumed and analysed far more
-- eagerly than the server default, with the same storage parameters as 6.6.9.
DO $$
DECLARE
    i INTEGER;
BEGIN
    FOR i IN 0..15 LOOP
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF event '
            'FOR VALUES WITH (MODULUS 16, REMAINDER %s)',
            'event_p' || i, i
        );
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF event_relay '
            'FOR VALUES WITH (MODULUS 16, REMAINDER %s)',
            'event_relay_p' || i, i
        );
        EXECUTE format(
            'ALTER TABLE %I SET ('
            'autovacuum_vacuum_scale_factor = 0.02, '
            'autovacuum_vacuum_threshold = 10000, '
            'autovacuum_analyze_scale_factor = 0.01)',
            'event_relay_p' || i
        );
    END LOOP;
END
$$;

-- metadata: content-addressed NIP-11 / NIP-66 documents. id is the SHA-256 of the canonical
-- JSON computed by the application; the key includes the type, so identical data under two
-- types is stored twice and dedup works within a type.
CREATE TABLE IF NOT EXISTS metadata (
    id BYTEA NOT NULL,
    type TEXT NOT NULL,
    data JSONB NOT NULL,
    PRIMARY KEY (id, type)
);

-- relay_metadata: one row per (relay, check type, collection time), pointing at a document.
-- No CHECK on metadata_type: the application enforces the 7 values, as in 6.6.9.
CREATE TABLE IF NOT EXISTS relay_metadata (
    relay_url TEXT NOT NULL,
    metadata_id BYTEA NOT NULL,
    metadata_type TEXT NOT NULL,
    generated_at BIGINT NOT NULL,
    PRIMARY KEY (relay_url, generated_at, metadata_type),
    FOREIGN KEY (relay_url) REFERENCES relay (url) ON DELETE CASCADE,
    FOREIGN KEY (metadata_id, metadata_type)
        REFERENCES metadata (id, type) ON DELETE CASCADE
);

-- service_state: the hand-over table between daemons (candidates, cursors, checkpoints).
CREATE TABLE IF NOT EXISTS service_state (
    service_name TEXT NOT NULL,
    state_type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    state_value JSONB NOT NULL DEFAULT '{}',
    PRIMARY KEY (service_name, state_type, state_key)
);

-- lz4 TOAST compression on the large columns (event.tags, event.content, metadata.data), but
-- only where the server was built with lz4: SET COMPRESSION lz4 fails otherwise. On a
-- partitioned table SET COMPRESSION does not recurse (PostgreSQL 15), and the rows live in the
-- leaves, so each event partition is altered as well; the parent's setting is what partitions
-- created later inherit. It only affects values written from now on; nothing is rewritten.
DO $$
DECLARE
    v_leaf REGCLASS;
BEGIN
    IF (
        SELECT 'lz4' = ANY(enumvals)
        FROM pg_settings
        WHERE name = 'default_toast_compression'
    ) THEN
        ALTER TABLE event
            ALTER COLUMN tags SET COMPRESSION lz4,
            ALTER COLUMN content SET COMPRESSION lz4;
        FOR v_leaf IN
            SELECT inhrelid::REGCLASS FROM pg_inherits WHERE inhparent = 'event'::REGCLASS
        LOOP
            EXECUTE format(
                'ALTER TABLE %s ALTER COLUMN tags SET COMPRESSION lz4, '
                'ALTER COLUMN content SET COMPRESSION lz4',
                v_leaf
            );
        END LOOP;
        ALTER TABLE metadata
            ALTER COLUMN data SET COMPRESSION lz4;
    END IF;
END
$$;


-- ==========================================================================
-- CRUD functions: bulk, over parallel arrays, returning the final ROW_COUNT
-- ==========================================================================
-- All are plpgsql and SECURITY INVOKER (the default), so a caller needs the table privileges
-- itself: reader can execute relay_insert but the INSERT inside is denied.

-- relay_insert: the first discovered_at wins (ON CONFLICT DO NOTHING).
CREATE OR REPLACE FUNCTION relay_insert(
    p_urls TEXT [],
    p_networks TEXT [],
    p_discovered_ats BIGINT []
)
RETURNS INTEGER
LANGUAGE plpgsql
AS $$
DECLARE
    v_row_count INTEGER;
BEGIN
    INSERT INTO relay (url, network, discovered_at)
    SELECT t.url, t.network, t.discovered_at
    FROM unnest(p_urls, p_networks, p_discovered_ats) AS t(url, network, discovered_at)
    ON CONFLICT (url) DO NOTHING;

    GET DIAGNOSTICS v_row_count = ROW_COUNT;
    RETURN v_row_count;
END;
$$;

-- event_insert: stores all seven NIP-01 fields plus tagvalues computed here. The signature is
-- fixed (daemons and event_relay_insert_cascade call it); the INSERT inside is the one place a
-- deployment customises (see variants/lilbrotr.sql).
CREATE OR REPLACE FUNCTION event_insert(
    p_event_ids BYTEA [],
    p_pubkeys BYTEA [],
    p_created_ats BIGINT [],
    p_kinds INTEGER [],
    p_tags JSONB [],
    p_content_values TEXT [],
    p_sigs BYTEA []
)
RETURNS INTEGER
LANGUAGE plpgsql
AS $$
DECLARE
    v_row_count INTEGER;
BEGIN
    INSERT INTO event (id, pubkey, created_at, kind, tags, tagvalues, content, sig)
    SELECT t.id, t.pubkey, t.created_at, t.kind, t.tags, tags_to_tagvalues(t.tags),
           t.content, t.sig
    FROM unnest(
        p_event_ids, p_pubkeys, p_created_ats, p_kinds, p_tags, p_content_values, p_sigs
    ) AS t(id, pubkey, created_at, kind, tags, content, sig)
    ON CONFLICT (id) DO NOTHING;

    GET DIAGNOSTICS v_row_count = ROW_COUNT;
    RETURN v_row_count;
END;
$$;

-- metadata_insert: a document already stored under the same (id, type) is skipped.
CREATE OR REPLACE FUNCTION metadata_insert(
    p_ids BYTEA [],
    p_metadata_types TEXT [],
    p_data JSONB []
)
RETURNS INTEGER
LANGUAGE plpgsql
AS $$
DECLARE
    v_row_count INTEGER;
BEGIN
    INSERT INTO metadata (id, type, data)
    SELECT t.id, t.type, t.data
    FROM unnest(p_ids, p_metadata_types, p_data) AS t(id, type, data)
    ON CONFLICT (id, type) DO NOTHING;

    GET DIAGNOSTICS v_row_count = ROW_COUNT;
    RETURN v_row_count;
END;
$$;

-- event_relay_insert: the event and relay rows must already exist (the FKs reject otherwise).
CREATE OR REPLACE FUNCTION event_relay_insert(
    p_event_ids BYTEA [],
    p_relay_urls TEXT [],
    p_seen_ats BIGINT []
)
RETURNS INTEGER
LANGUAGE plpgsql
AS $$
DECLARE
    v_row_count INTEGER;
BEGIN
    INSERT INTO event_relay (event_id, relay_url, seen_at)
    SELECT t.event_id, t.relay_url, t.seen_at
    FROM unnest(p_event_ids, p_relay_urls, p_seen_ats) AS t(event_id, relay_url, seen_at)
    ON CONFLICT (event_id, relay_url) DO NOTHING;

    GET DIAGNOSTICS v_row_count = ROW_COUNT;
    RETURN v_row_count;
END;
$$;

-- relay_metadata_insert: the relay and the (id, type) document must already exist.
CREATE OR REPLACE FUNCTION relay_metadata_insert(
    p_relay_urls TEXT [],
    p_metadata_ids BYTEA [],
    p_metadata_types TEXT [],
    p_generated_ats BIGINT []
)
RETURNS INTEGER
LANGUAGE plpgsql
AS $$
DECLARE
    v_row_count INTEGER;
BEGIN
    INSERT INTO relay_metadata (relay_url, generated_at, metadata_type, metadata_id)
    SELECT t.relay_url, t.generated_at, t.metadata_type, t.metadata_id
    FROM unnest(p_relay_urls, p_metadata_ids, p_metadata_types, p_generated_ats)
        AS t(relay_url, metadata_id, metadata_type, generated_at)
    ON CONFLICT (relay_url, generated_at, metadata_type) DO NOTHING;

    GET DIAGNOSTICS v_row_count = ROW_COUNT;
    RETURN v_row_count;
END;
$$;

-- event_relay_insert_cascade: relays, then events, then the observations, in one statement and
-- so atomically. It calls event_insert() rather than inserting events itself, so a deployment
-- that replaces event_insert() (LilBrotr) changes this path too. DISTINCT ON keeps one
-- observation per (event, relay) within the batch; which seen_at wins among duplicates is not
-- specified, as in 6.6.9. Returns the number of observation rows inserted.
CREATE OR REPLACE FUNCTION event_relay_insert_cascade(
    p_event_ids BYTEA [],
    p_pubkeys BYTEA [],
    p_created_ats BIGINT [],
    p_kinds INTEGER [],
    p_tags JSONB [],
    p_content_values TEXT [],
    p_sigs BYTEA [],
    p_relay_urls TEXT [],
    p_relay_networks TEXT [],
    p_relay_discovered_ats BIGINT [],
    p_seen_ats BIGINT []
)
RETURNS INTEGER
LANGUAGE plpgsql
AS $$
DECLARE
    v_row_count INTEGER;
BEGIN
    PERFORM relay_insert(p_relay_urls, p_relay_networks, p_relay_discovered_ats);

    PERFORM event_insert(
        p_event_ids, p_pubkeys, p_created_ats, p_kinds, p_tags, p_content_values, p_sigs
    );

    INSERT INTO event_relay (event_id, relay_url, seen_at)
    SELECT DISTINCT ON (t.event_id, t.relay_url) t.event_id, t.relay_url, t.seen_at
    FROM unnest(p_event_ids, p_relay_urls, p_seen_ats) AS t(event_id, relay_url, seen_at)
    ON CONFLICT (event_id, relay_url) DO NOTHING;

    GET DIAGNOSTICS v_row_count = ROW_COUNT;
    RETURN v_row_count;
END;
$$;

-- relay_metadata_insert_cascade: relays, then documents, then the snapshots. Note the order of
-- the document arrays: ids, types, data. Returns the number of snapshot rows inserted.
CREATE OR REPLACE FUNCTION relay_metadata_insert_cascade(
    p_relay_urls TEXT [],
    p_relay_networks TEXT [],
    p_relay_discovered_ats BIGINT [],
    p_metadata_ids BYTEA [],
    p_metadata_types TEXT [],
    p_metadata_data JSONB [],
    p_generated_ats BIGINT []
)
RETURNS INTEGER
LANGUAGE plpgsql
AS $$
DECLARE
    v_row_count INTEGER;
BEGIN
    PERFORM relay_insert(p_relay_urls, p_relay_networks, p_relay_discovered_ats);

    PERFORM metadata_insert(p_metadata_ids, p_metadata_types, p_metadata_data);

    INSERT INTO relay_metadata (relay_url, generated_at, metadata_type, metadata_id)
    SELECT t.relay_url, t.generated_at, t.metadata_type, t.metadata_id
    FROM unnest(p_relay_urls, p_metadata_ids, p_metadata_types, p_generated_ats)
        AS t(relay_url, metadata_id, metadata_type, generated_at)
    ON CONFLICT (relay_url, generated_at, metadata_type) DO NOTHING;

    GET DIAGNOSTICS v_row_count = ROW_COUNT;
    RETURN v_row_count;
END;
$$;

-- service_state_upsert: insert or fully replace state_value. DISTINCT ON drops duplicate keys
-- within the batch (one of them survives, unspecified which, as in 6.6.9), because
-- ON CONFLICT DO UPDATE cannot touch the same row twice in one statement.
CREATE OR REPLACE FUNCTION service_state_upsert(
    p_service_names TEXT [],
    p_state_types TEXT [],
    p_state_keys TEXT [],
    p_state_values JSONB []
)
RETURNS INTEGER
LANGUAGE plpgsql
AS $$
DECLARE
    v_row_count INTEGER;
BEGIN
    INSERT INTO service_state (service_name, state_type, state_key, state_value)
    SELECT DISTINCT ON (t.service_name, t.state_type, t.state_key)
        t.service_name, t.state_type, t.state_key, t.state_value
    FROM unnest(p_service_names, p_state_types, p_state_keys, p_state_values)
        AS t(service_name, state_type, state_key, state_value)
    ON CONFLICT (service_name, state_type, state_key)
    DO UPDATE SET state_value = EXCLUDED.state_value;

    GET DIAGNOSTICS v_row_count = ROW_COUNT;
    RETURN v_row_count;
END;
$$;

-- service_state_get: one row for a given key, or every row of (service, type) ordered by
-- state_key when the key is NULL. The output columns are also plpgsql variables, hence the
-- qualified ss.* references.
CREATE OR REPLACE FUNCTION service_state_get(
    p_service_name TEXT,
    p_state_type TEXT,
    p_state_key TEXT DEFAULT NULL
)
RETURNS TABLE (
    state_key TEXT,
    state_value JSONB
)
LANGUAGE plpgsql
AS $$
BEGIN
    IF p_state_key IS NOT NULL THEN
        RETURN QUERY
        SELECT ss.state_key, ss.state_value
        FROM service_state AS ss
        WHERE ss.service_name = p_service_name
          AND ss.state_type = p_state_type
          AND ss.state_key = p_state_key;
    ELSE
        RETURN QUERY
        SELECT ss.state_key, ss.state_value
        FROM service_state AS ss
        WHERE ss.service_name = p_service_name
          AND ss.state_type = p_state_type
        ORDER BY ss.state_key ASC;
    END IF;
END;
$$;

-- service_state_delete: deletes the listed (service, type, key) rows; returns how many.
CREATE OR REPLACE FUNCTION service_state_delete(
    p_service_names TEXT [],
    p_state_types TEXT [],
    p_state_keys TEXT []
)
RETURNS INTEGER
LANGUAGE plpgsql
AS $$
DECLARE
    v_row_count INTEGER;
BEGIN
    DELETE FROM service_state AS ss
    USING unnest(p_service_names, p_state_types, p_state_keys) AS d(sn, st, sk)
    WHERE ss.service_name = d.sn
      AND ss.state_type = d.st
      AND ss.state_key = d.sk;

    GET DIAGNOSTICS v_row_count = ROW_COUNT;
    RETURN v_row_count;
END;
$$;


-- ==========================================================================
-- Cleanup functions: batched, so each DELETE holds few locks and writes little WAL
-- ==========================================================================
-- Both loop until a batch deletes fewer rows than p_batch_size and return the total. As in
-- 6.6.9, p_batch_size must be positive: 0 never ends the loop and a negative value fails on
-- LIMIT, so callers validate it.

-- orphan_metadata_delete: documents that no relay_metadata row references on (id, type).
CREATE OR REPLACE FUNCTION orphan_metadata_delete(p_batch_size INTEGER DEFAULT 10000)
RETURNS INTEGER
LANGUAGE plpgsql
AS $$
DECLARE
    v_deleted INTEGER := 0;
    v_batch INTEGER;
BEGIN
    LOOP
        DELETE FROM metadata AS m
        WHERE (m.id, m.type) IN (
            SELECT o.id, o.type
            FROM metadata AS o
            WHERE NOT EXISTS (
                SELECT 1
                FROM relay_metadata AS rm
                WHERE rm.metadata_id = o.id AND rm.metadata_type = o.type
            )
            LIMIT p_batch_size
        );
        GET DIAGNOSTICS v_batch = ROW_COUNT;
        v_deleted := v_deleted + v_batch;
        EXIT WHEN v_batch < p_batch_size;
    END LOOP;
    RETURN v_deleted;
END;
$$;

-- orphan_event_delete: events with no event_relay row (every stored event should have been
-- seen on at least one relay; deleting a relay cascades to event_relay but not to event).
CREATE OR REPLACE FUNCTION orphan_event_delete(p_batch_size INTEGER DEFAULT 10000)
RETURNS INTEGER
LANGUAGE plpgsql
AS $$
DECLARE
    v_deleted INTEGER := 0;
    v_batch INTEGER;
BEGIN
    LOOP
        DELETE FROM event AS e
        WHERE e.id IN (
            SELECT o.id
            FROM event AS o
            WHERE NOT EXISTS (
                SELECT 1 FROM event_relay AS er WHERE er.event_id = o.id
            )
            LIMIT p_batch_size
        );
        GET DIAGNOSTICS v_batch = ROW_COUNT;
        v_deleted := v_deleted + v_batch;
        EXIT WHEN v_batch < p_batch_size;
    END LOOP;
    RETURN v_deleted;
END;
$$;


-- ==========================================================================
-- Materialized views (13)
-- ==========================================================================
-- Stored metadata is the envelope {"data": {...}, "logs": {...}}, so the views read
-- data -> 'data' ->> 'field'. Kind ranges (NIP-01): regular 1, 2, 4-44, 1000-9999;
-- replaceable 0, 3, 10000-19999; ephemeral 20000-29999; addressable 30000-39999.
-- The ORDER BY clauses only set the physical order of a fresh view, as in 6.6.9.

-- 1. relay_metadata_latest: newest snapshot per (relay, check type) with its document.
-- (relay_url, metadata_type, generated_at) is the table's key, so the pick is deterministic.
CREATE MATERIALIZED VIEW IF NOT EXISTS relay_metadata_latest AS
SELECT DISTINCT ON (rm.relay_url, rm.metadata_type)
    rm.relay_url,
    rm.metadata_type,
    rm.generated_at,
    rm.metadata_id,
    m.data
FROM relay_metadata AS rm
INNER JOIN metadata AS m ON m.id = rm.metadata_id AND m.type = rm.metadata_type
ORDER BY rm.relay_url ASC, rm.metadata_type ASC, rm.generated_at DESC;

-- 2. event_stats: a single row (singleton_key = 1 gives REFRESH CONCURRENTLY its unique key).
-- The last_* windows are measured against NOW() at refresh time.
CREATE MATERIALIZED VIEW IF NOT EXISTS event_stats AS
SELECT
    1 AS singleton_key,
    COUNT(*) AS event_count,
    COUNT(DISTINCT pubkey) AS unique_pubkeys,
    COUNT(DISTINCT kind) AS unique_kinds,
    MIN(created_at) AS earliest_event_timestamp,
    MAX(created_at) AS latest_event_timestamp,
    COUNT(*) FILTER (
        WHERE kind = 1 OR kind = 2
           OR (kind >= 4 AND kind <= 44)
           OR (kind >= 1000 AND kind <= 9999)
    ) AS regular_event_count,
    COUNT(*) FILTER (
        WHERE kind = 0 OR kind = 3
           OR (kind >= 10000 AND kind <= 19999)
    ) AS replaceable_event_count,
    COUNT(*) FILTER (WHERE kind >= 20000 AND kind <= 29999) AS ephemeral_event_count,
    COUNT(*) FILTER (WHERE kind >= 30000 AND kind <= 39999) AS addressable_event_count,
    COUNT(*) FILTER (
        WHERE created_at >= EXTRACT(EPOCH FROM NOW() - INTERVAL '1 hour')
    ) AS event_count_last_1h,
    COUNT(*) FILTER (
        WHERE created_at >= EXTRACT(EPOCH FROM NOW() - INTERVAL '24 hours')
    ) AS event_count_last_24h,
    COUNT(*) FILTER (
        WHERE created_at >= EXTRACT(EPOCH FROM NOW() - INTERVAL '7 days')
    ) AS event_count_last_7d,
    COUNT(*) FILTER (
        WHERE created_at >= EXTRACT(EPOCH FROM NOW() - INTERVAL '30 days')
    ) AS event_count_last_30d,
    CASE
        WHEN MAX(created_at) > MIN(created_at) THEN ROUND(
            COUNT(*)::NUMERIC
            / GREATEST((MAX(created_at) - MIN(created_at)) / 86400.0, 1),
            2
        )
        ELSE COUNT(*)::NUMERIC
    END AS events_per_day
FROM event;

-- 3. relay_stats: one row per relay. The RTT averages cover the 10 newest nip66_rtt snapshots
-- (values cast to INTEGER, as in 6.6.9); the NIP-11 fields come from relay_metadata_latest,
-- which must therefore be refreshed first.
CREATE MATERIALIZED VIEW IF NOT EXISTS relay_stats AS
WITH event_agg AS (
    SELECT
        er.relay_url,
        COUNT(*) AS event_count,
        COUNT(DISTINCT e.pubkey) AS unique_pubkeys,
        COUNT(DISTINCT e.kind) AS unique_kinds,
        MIN(e.created_at) AS first_event_timestamp,
        MAX(e.created_at) AS last_event_timestamp
    FROM event_relay AS er
    INNER JOIN event AS e ON e.id = er.event_id
    GROUP BY er.relay_url
),
rtt_ranked AS (
    SELECT
        rm.relay_url,
        m.data -> 'data' ->> 'rtt_open' AS rtt_open,
        m.data -> 'data' ->> 'rtt_read' AS rtt_read,
        m.data -> 'data' ->> 'rtt_write' AS rtt_write,
        ROW_NUMBER() OVER (
            PARTITION BY rm.relay_url ORDER BY rm.generated_at DESC
        ) AS rn
    FROM relay_metadata AS rm
    INNER JOIN metadata AS m ON m.id = rm.metadata_id AND m.type = rm.metadata_type
    WHERE rm.metadata_type = 'nip66_rtt'
),
rtt_agg AS (
    SELECT
        relay_url,
        ROUND(AVG(rtt_open::INTEGER)::NUMERIC, 2) AS avg_rtt_open,
        ROUND(AVG(rtt_read::INTEGER)::NUMERIC, 2) AS avg_rtt_read,
        ROUND(AVG(rtt_write::INTEGER)::NUMERIC, 2) AS avg_rtt_write
    FROM rtt_ranked
    WHERE rn <= 10
    GROUP BY relay_url
)
SELECT
    r.url AS relay_url,
    r.network,
    r.discovered_at,
    ea.first_event_timestamp,
    ea.last_event_timestamp,
    rtt.avg_rtt_open,
    rtt.avg_rtt_read,
    rtt.avg_rtt_write,
    COALESCE(ea.event_count, 0) AS event_count,
    COALESCE(ea.unique_pubkeys, 0) AS unique_pubkeys,
    COALESCE(ea.unique_kinds, 0) AS unique_kinds,
    nip11.data -> 'data' ->> 'name' AS nip11_name,
    nip11.data -> 'data' ->> 'software' AS nip11_software,
    nip11.data -> 'data' ->> 'version' AS nip11_version
FROM relay AS r
LEFT JOIN event_agg AS ea ON ea.relay_url = r.url
LEFT JOIN rtt_agg AS rtt ON rtt.relay_url = r.url
LEFT JOIN relay_metadata_latest AS nip11
    ON nip11.relay_url = r.url AND nip11.metadata_type = 'nip11_info'
ORDER BY r.url;

-- 4. kind_counts: events and authors per kind, with the NIP-01 category.
CREATE MATERIALIZED VIEW IF NOT EXISTS kind_counts AS
SELECT
    kind,
    COUNT(*) AS event_count,
    COUNT(DISTINCT pubkey) AS unique_pubkeys,
    CASE
        WHEN kind = 1 OR kind = 2
            OR (kind >= 4 AND kind <= 44)
            OR (kind >= 1000 AND kind <= 9999) THEN 'regular'
        WHEN kind = 0 OR kind = 3
            OR (kind >= 10000 AND kind <= 19999) THEN 'replaceable'
        WHEN kind >= 20000 AND kind <= 29999 THEN 'ephemeral'
        WHEN kind >= 30000 AND kind <= 39999 THEN 'addressable'
        ELSE 'other'
    END AS category
FROM event
GROUP BY kind
ORDER BY event_count DESC;

-- 5. kind_counts_by_relay: events and authors per (kind, relay).
CREATE MATERIALIZED VIEW IF NOT EXISTS kind_counts_by_relay AS
SELECT
    e.kind,
    er.relay_url,
    COUNT(*) AS event_count,
    COUNT(DISTINCT e.pubkey) AS unique_pubkeys
FROM event AS e
INNER JOIN event_relay AS er ON er.event_id = e.id
GROUP BY e.kind, er.relay_url
ORDER BY e.kind ASC, event_count DESC;

-- 6. pubkey_counts: activity per author; pubkey is lowercase hex text.
CREATE MATERIALIZED VIEW IF NOT EXISTS pubkey_counts AS
SELECT
    ENCODE(pubkey, 'hex') AS pubkey,
    COUNT(*) AS event_count,
    COUNT(DISTINCT kind) AS unique_kinds,
    MIN(created_at) AS first_event_timestamp,
    MAX(created_at) AS last_event_timestamp
FROM event
GROUP BY pubkey
ORDER BY event_count DESC;

-- 7. pubkey_counts_by_relay: activity per (relay, author), keeping only pairs with at least
-- 2 events, which bounds the size of this otherwise relay x author cross product.
CREATE MATERIALIZED VIEW IF NOT EXISTS pubkey_counts_by_relay AS
SELECT
    er.relay_url,
    ENCODE(e.pubkey, 'hex') AS pubkey,
    COUNT(*) AS event_count,
    COUNT(DISTINCT e.kind) AS unique_kinds,
    MIN(e.created_at) AS first_event_timestamp,
    MAX(e.created_at) AS last_event_timestamp
FROM event AS e
INNER JOIN event_relay AS er ON er.event_id = e.id
GROUP BY e.pubkey, er.relay_url
HAVING COUNT(*) >= 2
ORDER BY e.pubkey ASC, event_count DESC;

-- 8. network_stats: per network, relays and distinct events. An event seen on several relays
-- of the same network counts once (deduplicated on (network, event_id) first).
CREATE MATERIALIZED VIEW IF NOT EXISTS network_stats AS
WITH relay_counts AS (
    SELECT network, COUNT(*) AS relay_count
    FROM relay
    GROUP BY network
),
network_events AS (
    SELECT DISTINCT r.network, er.event_id
    FROM relay AS r
    INNER JOIN event_relay AS er ON er.relay_url = r.url
),
event_agg AS (
    SELECT
        ne.network,
        COUNT(*)::BIGINT AS event_count,
        COUNT(DISTINCT e.pubkey)::BIGINT AS unique_pubkeys,
        COUNT(DISTINCT e.kind)::BIGINT AS unique_kinds
    FROM network_events AS ne
    INNER JOIN event AS e ON e.id = ne.event_id
    GROUP BY ne.network
)
SELECT
    rc.network,
    rc.relay_count,
    COALESCE(ea.event_count, 0)::BIGINT AS event_count,
    COALESCE(ea.unique_pubkeys, 0)::BIGINT AS unique_pubkeys,
    COALESCE(ea.unique_kinds, 0)::BIGINT AS unique_kinds
FROM relay_counts AS rc
LEFT JOIN event_agg AS ea ON ea.network = rc.network
ORDER BY rc.relay_count DESC;

-- 9. relay_software_counts: relays per NIP-11 (software, version), version defaulting to
-- 'unknown'; relays that report no software are left out. Reads relay_metadata_latest.
CREATE MATERIALIZED VIEW IF NOT EXISTS relay_software_counts AS
SELECT
    data -> 'data' ->> 'software' AS software,
    COALESCE(data -> 'data' ->> 'version', 'unknown') AS version,
    COUNT(*) AS relay_count
FROM relay_metadata_latest
WHERE metadata_type = 'nip11_info'
  AND data -> 'data' ->> 'software' IS NOT NULL
GROUP BY data -> 'data' ->> 'software', COALESCE(data -> 'data' ->> 'version', 'unknown')
ORDER BY relay_count DESC;

-- 10. supported_nip_counts: relays per NIP number, from the NIP-11 supported_nips array;
-- elements that are not plain digit strings are ignored. Reads relay_metadata_latest.
CREATE MATERIALIZED VIEW IF NOT EXISTS supported_nip_counts AS
SELECT
    nip_text::INTEGER AS nip,
    COUNT(*) AS relay_count
FROM relay_metadata_latest
CROSS JOIN LATERAL jsonb_array_elements_text(data -> 'data' -> 'supported_nips') AS nip_text
WHERE metadata_type = 'nip11_info'
  AND data -> 'data' ? 'supported_nips'
  AND jsonb_typeof(data -> 'data' -> 'supported_nips') = 'array'
  AND nip_text ~ '^\d+$'
GROUP BY nip_text::INTEGER
ORDER BY relay_count DESC;

-- 11. event_daily_counts: one row per UTC day of created_at (integer arithmetic on the epoch,
-- cheaper than to_timestamp and a time zone conversion).
CREATE MATERIALIZED VIEW IF NOT EXISTS event_daily_counts AS
SELECT
    '1970-01-01'::DATE + (created_at / 86400)::INTEGER AS day,
    COUNT(*) AS event_count,
    COUNT(DISTINCT pubkey) AS unique_pubkeys,
    COUNT(DISTINCT kind) AS unique_kinds
FROM event
GROUP BY created_at / 86400
ORDER BY day DESC;

-- 12. events_replaceable_latest: the newest event per (pubkey, kind) for replaceable kinds,
-- with every event column. 6.6.9 orders by created_at only, so equal timestamps are broken
-- arbitrarily; 0003 adds NIP-01's tie-break (lowest id wins).
CREATE MATERIALIZED VIEW IF NOT EXISTS events_replaceable_latest AS
SELECT DISTINCT ON (pubkey, kind)
    id,
    pubkey,
    created_at,
    kind,
    tags,
    tagvalues,
    content,
    sig
FROM event
WHERE kind = 0 OR kind = 3 OR (kind >= 10000 AND kind <= 19999)
ORDER BY pubkey, kind, created_at DESC;

-- 13. events_addressable_latest: the newest event per (pubkey, kind, d_tag) for addressable
-- kinds. d_tag is the first value of the first "d" tag, or '' when there is none (NIP-01).
-- Same arbitrary tie-break as above, fixed in 0003.
CREATE MATERIALIZED VIEW IF NOT EXISTS events_addressable_latest AS
SELECT DISTINCT ON (e.pubkey, e.kind, d_tag)
    e.id,
    e.pubkey,
    e.created_at,
    e.kind,
    e.tags,
    e.tagvalues,
    e.content,
    e.sig,
    COALESCE(d.val, '') AS d_tag
FROM event AS e
LEFT JOIN LATERAL (
    SELECT elem ->> 1 AS val
    FROM jsonb_array_elements(e.tags) AS elem
    WHERE elem ->> 0 = 'd'
    LIMIT 1
) AS d ON TRUE
WHERE e.kind >= 30000 AND e.kind <= 39999
ORDER BY e.pubkey, e.kind, d_tag, e.created_at DESC;


-- ==========================================================================
-- Refresh functions (13 + all_statistics_refresh)
-- ==========================================================================
-- REFRESH ... CONCURRENTLY keeps each view readable during the refresh; it needs the view's
-- unique index and must be run by the view's owner (refresher, see 0002). The functions are
-- SECURITY INVOKER, so the calling role's rights apply.

DO $$
DECLARE
    v TEXT;
BEGIN
    FOREACH v IN ARRAY ARRAY[
        'relay_metadata_latest', 'event_stats', 'relay_stats', 'kind_counts',
        'kind_counts_by_relay', 'pubkey_counts', 'pubkey_counts_by_relay', 'network_stats',
        'relay_software_counts', 'supported_nip_counts', 'event_daily_counts',
        'events_replaceable_latest', 'events_addressable_latest'
    ] LOOP
        EXECUTE format(
            'CREATE OR REPLACE FUNCTION %I() RETURNS VOID LANGUAGE plpgsql AS '
            '$body$ BEGIN REFRESH MATERIALIZED VIEW CONCURRENTLY %I; END; $body$',
            v || '_refresh', v
        );
    END LOOP;
END
$$;

-- all_statistics_refresh: every view in dependency order. relay_metadata_latest comes first
-- because relay_stats, relay_software_counts and supported_nip_counts read it; the last two
-- come last. It is one transaction: one failing view rolls back the whole call.
CREATE OR REPLACE FUNCTION all_statistics_refresh()
RETURNS VOID
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM relay_metadata_latest_refresh();
    PERFORM event_stats_refresh();
    PERFORM relay_stats_refresh();
    PERFORM kind_counts_refresh();
    PERFORM kind_counts_by_relay_refresh();
    PERFORM pubkey_counts_refresh();
    PERFORM pubkey_counts_by_relay_refresh();
    PERFORM network_stats_refresh();
    PERFORM event_daily_counts_refresh();
    PERFORM events_replaceable_latest_refresh();
    PERFORM events_addressable_latest_refresh();
    PERFORM relay_software_counts_refresh();
    PERFORM supported_nip_counts_refresh();
END;
$$;


-- ==========================================================================
-- Table indexes (11)
-- ==========================================================================
-- On the partitioned tables each index is created on the parent and cascades to every leaf.

-- event: timeline with a tie-breaker for (created_at, id) cursor paging.
CREATE INDEX IF NOT EXISTS idx_event_created_at_id
ON event USING btree (created_at DESC, id DESC);

-- event: WHERE kind = ? ORDER BY created_at DESC (also kind alone, as a prefix).
CREATE INDEX IF NOT EXISTS idx_event_kind_created_at
ON event USING btree (kind, created_at DESC);

-- event: author timeline (also pubkey alone).
CREATE INDEX IF NOT EXISTS idx_event_pubkey_created_at
ON event USING btree (pubkey, created_at DESC);

-- event: author + kind timeline.
CREATE INDEX IF NOT EXISTS idx_event_pubkey_kind_created_at
ON event USING btree (pubkey, kind, created_at DESC);

-- event: tag containment, WHERE tagvalues @> ARRAY['e:<hex>'] (needs btree_gin).
CREATE INDEX IF NOT EXISTS idx_event_tagvalues
ON event USING gin (tagvalues);

-- event_relay: newest observations first.
CREATE INDEX IF NOT EXISTS idx_event_relay_seen_at
ON event_relay USING btree (seen_at DESC);

-- event_relay: the finder's cursor, WHERE relay_url = ? AND (seen_at, event_id) > (?, ?)
-- ORDER BY seen_at, event_id, answered from the index alone.
CREATE INDEX IF NOT EXISTS idx_event_relay_relay_url_seen_at_event_id
ON event_relay USING btree (relay_url, seen_at ASC, event_id ASC);

-- relay_metadata: newest snapshots first.
CREATE INDEX IF NOT EXISTS idx_relay_metadata_generated_at
ON relay_metadata USING btree (generated_at DESC);

-- relay_metadata: the composite FK to metadata, used by cascades and orphan_metadata_delete.
CREATE INDEX IF NOT EXISTS idx_relay_metadata_metadata_id_type
ON relay_metadata USING btree (metadata_id, metadata_type);

-- relay_metadata: newest snapshot per (relay, type), which relay_metadata_latest computes.
CREATE INDEX IF NOT EXISTS idx_relay_metadata_relay_url_metadata_type_generated_at
ON relay_metadata USING btree (relay_url, metadata_type, generated_at DESC);

-- service_state: the validator filters its candidates (checkpoint rows) by network.
CREATE INDEX IF NOT EXISTS idx_service_state_candidate_network
ON service_state USING btree ((state_value ->> 'network'))
WHERE service_name = 'validator' AND state_type = 'checkpoint';


-- ==========================================================================
-- Materialized view indexes
-- ==========================================================================
-- Each view has a UNIQUE index on its natural key, which REFRESH CONCURRENTLY requires and
-- which the API reads as the view's primary key; some have one extra lookup index.

CREATE UNIQUE INDEX IF NOT EXISTS idx_relay_metadata_latest_pk
ON relay_metadata_latest USING btree (relay_url, metadata_type);
CREATE INDEX IF NOT EXISTS idx_relay_metadata_latest_type
ON relay_metadata_latest USING btree (metadata_type);

CREATE UNIQUE INDEX IF NOT EXISTS idx_event_stats_singleton_key
ON event_stats USING btree (singleton_key);

CREATE UNIQUE INDEX IF NOT EXISTS idx_relay_stats_relay_url
ON relay_stats USING btree (relay_url);
CREATE INDEX IF NOT EXISTS idx_relay_stats_network
ON relay_stats USING btree (network);

CREATE UNIQUE INDEX IF NOT EXISTS idx_kind_counts_kind
ON kind_counts USING btree (kind);

CREATE UNIQUE INDEX IF NOT EXISTS idx_kind_counts_by_relay_composite
ON kind_counts_by_relay USING btree (kind, relay_url);
CREATE INDEX IF NOT EXISTS idx_kind_counts_by_relay_relay
ON kind_counts_by_relay USING btree (relay_url);

CREATE UNIQUE INDEX IF NOT EXISTS idx_pubkey_counts_pubkey
ON pubkey_counts USING btree (pubkey);

CREATE UNIQUE INDEX IF NOT EXISTS idx_pubkey_counts_by_relay_composite
ON pubkey_counts_by_relay USING btree (pubkey, relay_url);
CREATE INDEX IF NOT EXISTS idx_pubkey_counts_by_relay_relay
ON pubkey_counts_by_relay USING btree (relay_url);

CREATE UNIQUE INDEX IF NOT EXISTS idx_network_stats_network
ON network_stats USING btree (network);

CREATE UNIQUE INDEX IF NOT EXISTS idx_relay_software_counts_composite
ON relay_software_counts USING btree (software, version);

CREATE UNIQUE INDEX IF NOT EXISTS idx_supported_nip_counts_nip
ON supported_nip_counts USING btree (nip);

CREATE UNIQUE INDEX IF NOT EXISTS idx_event_daily_counts_day
ON event_daily_counts USING btree (day);

CREATE UNIQUE INDEX IF NOT EXISTS idx_events_replaceable_latest_pubkey_kind
ON events_replaceable_latest USING btree (pubkey, kind);
CREATE INDEX IF NOT EXISTS idx_events_replaceable_latest_kind
ON events_replaceable_latest USING btree (kind);

CREATE UNIQUE INDEX IF NOT EXISTS idx_events_addressable_latest_pubkey_kind_d_tag
ON events_addressable_latest USING btree (pubkey, kind, d_tag);
CREATE INDEX IF NOT EXISTS idx_events_addressable_latest_kind
ON events_addressable_latest USING btree (kind);
