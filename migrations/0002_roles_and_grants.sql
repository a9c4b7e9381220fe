-- 0002_roles_and_grants.sql
--
-- The three application roles of BigBrotr 6.6.9 and their privileges (6.6.9's 01_roles.sh and
-- 98_grants.sh):
--   writer    - every daemon that stores data: SELECT/INSERT/UPDATE/DELETE on all tables;
--   reader    - api, dvm and monitoring: SELECT only, plus pg_monitor;
--   refresher - the refresher daemon: SELECT, and OWNER of the 13 materialized views, because
--               only a view's owner may REFRESH it (CONCURRENTLY or not).
-- All three get USAGE on schema public and EXECUTE on every function. The functions are
-- SECURITY INVOKER, so EXECUTE alone grants nothing: reader calling relay_insert() is still
-- refused the INSERT inside it.
--
-- Everything here is idempotent. Roles are cluster-wide, so this file also runs in databases
-- of a cluster where another database (or a 6.6.9 install) already created them, possibly at
-- the same moment; it must then change nothing and fail on nothing.
--
-- The roles are created WITH LOGIN and without a password: the migrate tool sets passwords
-- afterwards from the environment. An existing role is left exactly as it is (its password
-- included). The migrating role must be a superuser, as 6.6.9's admin is: creating roles,
-- granting pg_monitor and giving views to refresher all need it.

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
-- Roles
-- ==========================================================================
-- The existence check avoids the common case of an error; the handler covers the race where
-- another database's migration creates the same role between our check and our CREATE (the
-- second CREATE then fails with a duplicate once the first commits).
DO $$
DECLARE
    v_role TEXT;
BEGIN
    FOREACH v_role IN ARRAY ARRAY['writer', 'reader', 'refresher'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = v_role) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I WITH LOGIN', v_role);
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN
                    RAISE NOTICE 'role % was created concurrently; keeping it', v_role;
            END;
        END IF;
    END LOOP;
END
$$;

-- reader may read the server's statistics views (pg_stat_*, pg_stat_statements) for the
-- monitoring exporter. Membership is cluster-wide too, hence the same check-then-handle.
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1
        FROM pg_catalog.pg_auth_members AS am
        WHERE am.roleid = 'pg_monitor'::regrole
          AND am.member = 'reader'::regrole
    ) THEN
        BEGIN
            GRANT pg_monitor TO reader;
        EXCEPTION
            WHEN unique_violation THEN
                RAISE NOTICE 'reader was added to pg_monitor concurrently';
        END;
    END IF;
END
$$;


-- ==========================================================================
-- Privileges on existing objects
-- ==========================================================================
-- GRANT is idempotent: granting a privilege that is already held changes nothing.
-- "ALL TABLES" covers tables, partitions and materialized views.

GRANT USAGE ON SCHEMA public TO writer, reader, refresher;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO writer, reader, refresher;

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO writer;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO refresher;

-- refresher owns the views so that it can refresh them. ALTER ... OWNER carries the grants
-- above over to the new owner's ACL, so writer and reader keep their SELECT. Re-running it
-- when refresher already owns a view is a no-op.
ALTER MATERIALIZED VIEW relay_metadata_latest OWNER TO refresher;
ALTER MATERIALIZED VIEW event_stats OWNER TO refresher;
ALTER MATERIALIZED VIEW relay_stats OWNER TO refresher;
ALTER MATERIALIZED VIEW kind_counts OWNER TO refresher;
ALTER MATERIALIZED VIEW kind_counts_by_relay OWNER TO refresher;
ALTER MATERIALIZED VIEW pubkey_counts OWNER TO refresher;
ALTER MATERIALIZED VIEW pubkey_counts_by_relay OWNER TO refresher;
ALTER MATERIALIZED VIEW network_stats OWNER TO refresher;
ALTER MATERIALIZED VIEW relay_software_counts OWNER TO refresher;
ALTER MATERIALIZED VIEW supported_nip_counts OWNER TO refresher;
ALTER MATERIALIZED VIEW event_daily_counts OWNER TO refresher;
ALTER MATERIALIZED VIEW events_replaceable_latest OWNER TO refresher;
ALTER MATERIALIZED VIEW events_addressable_latest OWNER TO refresher;


-- ==========================================================================
-- Default privileges for objects created later by the migrating role
-- ==========================================================================
-- 6.6.9 writes FOR ROLE admin; here the default applies to whichever role runs the migrations
-- (no FOR ROLE clause means the current role), since it need not be called admin. Later
-- migrations still re-assign new views to refresher explicitly: default privileges cannot
-- change an owner.

ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO writer;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT ON TABLES TO reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT ON TABLES TO refresher;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT EXECUTE ON FUNCTIONS TO writer, reader, refresher;
