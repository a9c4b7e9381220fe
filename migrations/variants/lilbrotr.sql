-- variants/lilbrotr.sql
--
-- Turns a database built by the numbered migrations into the LilBrotr variant of BigBrotr
-- 6.6.9 (reference §1.9): events keep id, pubkey, created_at, kind and tagvalues, while tags,
-- content and sig become nullable and are never stored. That is about 60% less disk; the
-- tables, functions and materialized views are otherwise the same.
--
-- This is not a migration (sqlx only reads the top directory). The migrate tool applies it
-- after every migration run on a LilBrotr database, because a later migration may redefine
-- event_insert(). It is therefore idempotent and cheap to repeat: each catalog change is made
-- only when it is still needed, so a repeat takes no table lock beyond replacing one function.
-- Run it in one transaction (`psql -v ON_ERROR_STOP=1 --single-transaction -f`), so that a
-- failure leaves nothing half-done.

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


-- Schema: tags, content and sig accept NULL, and nothing but NULL.
DO $$
DECLARE
    v_col TEXT;
BEGIN
    -- DROP NOT NULL on the partitioned parent also applies to every partition.
    FOREACH v_col IN ARRAY ARRAY['tags', 'content', 'sig'] LOOP
        IF EXISTS (
            SELECT 1
            FROM pg_catalog.pg_attribute
            WHERE attrelid = 'event'::regclass AND attname = v_col AND attnotnull
        ) THEN
            EXECUTE format('ALTER TABLE event ALTER COLUMN %I DROP NOT NULL', v_col);
        END IF;
    END LOOP;

    -- A guard beyond 6.6.9: whatever path writes an event (event_insert(), the cascade, a
    -- stale full event_insert() left by a later migration, a hand-written INSERT), a row that
    -- carries tags, content or sig is refused instead of being stored. NOT VALID skips the
    -- scan of existing rows, so adding it to a large database is instant; new rows are checked.
    IF NOT EXISTS (
        SELECT 1
        FROM pg_catalog.pg_constraint
        WHERE conrelid = 'event'::regclass AND conname = 'event_lilbrotr_payload_null'
    ) THEN
        ALTER TABLE event ADD CONSTRAINT event_lilbrotr_payload_null
            CHECK (tags IS NULL AND content IS NULL AND sig IS NULL) NOT VALID;
    END IF;
END
$$;


-- event_insert: same signature, parameter names and return value as the BigBrotr version (the
-- daemons and event_relay_insert_cascade() call it), but only the lightweight columns are
-- stored. tagvalues is still computed from p_tags before the tags are dropped; p_content_values
-- and p_sigs are accepted and ignored. event_relay_insert_cascade() inserts events only through
-- this function, so it stores NULLs as well.
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
    INSERT INTO event (id, pubkey, created_at, kind, tagvalues)
    SELECT t.id, t.pubkey, t.created_at, t.kind, tags_to_tagvalues(t.tags)
    FROM unnest(p_event_ids, p_pubkeys, p_created_ats, p_kinds, p_tags)
        AS t(id, pubkey, created_at, kind, tags)
    ON CONFLICT (id) DO NOTHING;

    GET DIAGNOSTICS v_row_count = ROW_COUNT;
    RETURN v_row_count;
END;
$$;
