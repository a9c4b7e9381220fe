-- 0003_fixes.sql
--
-- Fixes to bugs of BigBrotr 6.6.9 that live in SQL. Expand-only: every object keeps its name,
-- its columns (names, types, order) and its indexes, so Python 6.6.9 daemons running against
-- the same database notice nothing except the corrected rows.
--
-- Changes:
--   1. events_replaceable_latest: deterministic winner for equal created_at (reference §10.8:
--      "events_replaceable_latest ties are broken arbitrarily"). NIP-01: when two versions of
--      a replaceable event share created_at, the one with the lowest id is kept.
--   2. events_addressable_latest: the same tie-break (same bug, same rule), plus two
--      corrections to d_tag found while redefining it:
--        a. the "first d tag" is taken in explicit array order instead of relying on the
--           order a LIMIT 1 happens to return;
--        b. when event.tags is NULL (LilBrotr stores no tags), d_tag falls back to the first
--           'd:<value>' element of tagvalues. 6.6.9 gave every LilBrotr addressable event
--           d_tag = '', collapsing all of an author's events of one kind into a single row.
--           On BigBrotr, where tags is never NULL, this changes nothing.
--   3. supported_nip_counts: not in reference §10, found while verifying 0001. The view casts
--      every all-digit supported_nips element to INTEGER, so a single relay whose NIP-11
--      document lists a number above 2147483647 makes every later refresh of the view (and
--      all_statistics_refresh) fail with "value out of range". Such elements are now skipped
--      like any other non-NIP value; real NIP numbers are unaffected.
--
-- A materialized view's query cannot be altered, so the views are dropped and re-created with
-- the same columns and the same index names. They are created WITH DATA (CREATE computes them
-- now, inside this migration): REFRESH ... CONCURRENTLY refuses an unpopulated view, so an
-- empty one would break the refresher. On a large archive this step scans the replaceable and
-- addressable events once while holding an exclusive lock on the re-created views (readers of
-- those views wait; event ingestion does not).
--
-- The refresh functions (<view>_refresh() and all_statistics_refresh()) name the views in
-- their bodies and resolve them when they run, so they keep working unchanged; no other object
-- depends on these three views.

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


-- ==========================================================================
-- 1. events_replaceable_latest (fixes reference §10.8)
-- ==========================================================================

DROP MATERIALIZED VIEW IF EXISTS events_replaceable_latest;

-- id ASC after created_at DESC: of several versions with the same timestamp, the lowest id
-- (bytea order equals the order of the lowercase hex) is the one NIP-01 keeps.
CREATE MATERIALIZED VIEW events_replaceable_latest AS
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
ORDER BY pubkey, kind, created_at DESC, id ASC;

CREATE UNIQUE INDEX idx_events_replaceable_latest_pubkey_kind
ON events_replaceable_latest USING btree (pubkey, kind);
CREATE INDEX idx_events_replaceable_latest_kind
ON events_replaceable_latest USING btree (kind);


-- ==========================================================================
-- 2. events_addressable_latest (fixes reference §10.8, and LilBrotr's d_tag)
-- ==========================================================================

DROP MATERIALIZED VIEW IF EXISTS events_addressable_latest;

CREATE MATERIALIZED VIEW events_addressable_latest AS
SELECT DISTINCT ON (e.pubkey, e.kind, d_tag)
    e.id,
    e.pubkey,
    e.created_at,
    e.kind,
    e.tags,
    e.tagvalues,
    e.content,
    e.sig,
    COALESCE(
        CASE
            WHEN e.tags IS NOT NULL THEN (
                -- First value of the first "d" tag, in array order; a key-only ["d"] gives
                -- NULL and so ''.
                SELECT t.tag ->> 1
                FROM jsonb_array_elements(e.tags) WITH ORDINALITY AS t(tag, ord)
                WHERE t.tag ->> 0 = 'd'
                ORDER BY t.ord
                LIMIT 1
            )
            ELSE (
                -- LilBrotr: tags is NULL but tagvalues kept 'd:<first value>' in tag order.
                SELECT substr(v.val, 3)
                FROM unnest(e.tagvalues) WITH ORDINALITY AS v(val, ord)
                WHERE v.val LIKE 'd:%'
                ORDER BY v.ord
                LIMIT 1
            )
        END,
        ''
    ) AS d_tag
FROM event AS e
WHERE e.kind >= 30000 AND e.kind <= 39999
ORDER BY e.pubkey, e.kind, d_tag, e.created_at DESC, e.id ASC;

CREATE UNIQUE INDEX idx_events_addressable_latest_pubkey_kind_d_tag
ON events_addressable_latest USING btree (pubkey, kind, d_tag);
CREATE INDEX idx_events_addressable_latest_kind
ON events_addressable_latest USING btree (kind);


-- ==========================================================================
-- 3. supported_nip_counts (integer overflow on hostile NIP-11 data)
-- ==========================================================================

DROP MATERIALIZED VIEW IF EXISTS supported_nip_counts;

-- Same query as 0001 except the element filter: at most 9 significant digits (leading zeros
-- allowed), so every accepted value fits INTEGER.
CREATE MATERIALIZED VIEW supported_nip_counts AS
SELECT
    nip_text::INTEGER AS nip,
    COUNT(*) AS relay_count
FROM relay_metadata_latest
CROSS JOIN LATERAL jsonb_array_elements_text(data -> 'data' -> 'supported_nips') AS nip_text
WHERE metadata_type = 'nip11_info'
  AND data -> 'data' ? 'supported_nips'
  AND jsonb_typeof(data -> 'data' -> 'supported_nips') = 'array'
  AND nip_text ~ '^0*\d{1,9}$'
GROUP BY nip_text::INTEGER
ORDER BY relay_count DESC;

CREATE UNIQUE INDEX idx_supported_nip_counts_nip
ON supported_nip_counts USING btree (nip);


-- ==========================================================================
-- Ownership and privileges of the re-created views
-- ==========================================================================
-- The same as 0002 gives every view: refresher owns them (only the owner may refresh), writer
-- has what GRANT ... ON ALL TABLES gave it, reader and refresher can read. Granted explicitly
-- rather than left to default privileges, which depend on who runs the migration.

GRANT SELECT, INSERT, UPDATE, DELETE
    ON events_replaceable_latest, events_addressable_latest, supported_nip_counts
    TO writer;
GRANT SELECT
    ON events_replaceable_latest, events_addressable_latest, supported_nip_counts
    TO reader, refresher;

ALTER MATERIALIZED VIEW events_replaceable_latest OWNER TO refresher;
ALTER MATERIALIZED VIEW events_addressable_latest OWNER TO refresher;
ALTER MATERIALIZED VIEW supported_nip_counts OWNER TO refresher;
