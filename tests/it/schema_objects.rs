//! The catalog objects beyond tables against the 6.6.9 contract (reference §1.1, §1.3–§1.6): the
//! 13 statistics objects with their columns and indexes (materialized views in 6.6.9, tables kept
//! incrementally since migration 0004), the 27 functions of 6.6.9 by signature plus this
//! project's two refresh functions, and the extensions.

use bigbrotr_testkit::TestDb;
use serde_json::json;
use sqlx::Row;

use crate::dbkit::{self, VIEWS_IN_ORDER, insert_events};
use crate::schema::index_definitions;

#[tokio::test]
async fn the_thirteen_statistics_objects_have_the_documented_columns() {
    let db = TestDb::new().await;
    let event_cols = "id:bytea,pubkey:bytea,created_at:bigint,kind:integer,tags:jsonb,\
                      tagvalues:text[],content:text,sig:bytea";
    let addressable = format!("{event_cols},d_tag:text");
    // Reference §1.6, with the types the SQL aggregates produce (COUNT → bigint, ROUND → numeric).
    let expected: Vec<(&str, &str)> = vec![
        (
            "event_daily_counts",
            "day:date,event_count:bigint,unique_pubkeys:bigint,unique_kinds:bigint",
        ),
        (
            "event_stats",
            "singleton_key:integer,event_count:bigint,unique_pubkeys:bigint,unique_kinds:bigint,\
             earliest_event_timestamp:bigint,latest_event_timestamp:bigint,\
             regular_event_count:bigint,replaceable_event_count:bigint,ephemeral_event_count:bigint,\
             addressable_event_count:bigint,event_count_last_1h:bigint,event_count_last_24h:bigint,\
             event_count_last_7d:bigint,event_count_last_30d:bigint,events_per_day:numeric",
        ),
        ("events_addressable_latest", &addressable),
        ("events_replaceable_latest", event_cols),
        (
            "kind_counts",
            "kind:integer,event_count:bigint,unique_pubkeys:bigint,category:text",
        ),
        (
            "kind_counts_by_relay",
            "kind:integer,relay_url:text,event_count:bigint,unique_pubkeys:bigint",
        ),
        (
            "network_stats",
            "network:text,relay_count:bigint,event_count:bigint,unique_pubkeys:bigint,unique_kinds:bigint",
        ),
        (
            "pubkey_counts",
            "pubkey:text,event_count:bigint,unique_kinds:bigint,first_event_timestamp:bigint,\
             last_event_timestamp:bigint",
        ),
        (
            "pubkey_counts_by_relay",
            "relay_url:text,pubkey:text,event_count:bigint,unique_kinds:bigint,\
             first_event_timestamp:bigint,last_event_timestamp:bigint",
        ),
        (
            "relay_metadata_latest",
            "relay_url:text,metadata_type:text,generated_at:bigint,metadata_id:bytea,data:jsonb",
        ),
        (
            "relay_software_counts",
            "software:text,version:text,relay_count:bigint",
        ),
        (
            "relay_stats",
            "relay_url:text,network:text,discovered_at:bigint,first_event_timestamp:bigint,\
             last_event_timestamp:bigint,avg_rtt_open:numeric,avg_rtt_read:numeric,\
             avg_rtt_write:numeric,event_count:bigint,unique_pubkeys:bigint,unique_kinds:bigint,\
             nip11_name:text,nip11_software:text,nip11_version:text",
        ),
        ("supported_nip_counts", "nip:integer,relay_count:bigint"),
    ];
    let got: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT c.relname::text,
                string_agg(a.attname || ':' || format_type(a.atttypid, a.atttypmod), ','
                           ORDER BY a.attnum),
                bool_and(c.relispopulated)
         FROM pg_class c
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
           AND c.relname = ANY($1)
         GROUP BY c.relname ORDER BY c.relname",
    )
    .bind(VIEWS_IN_ORDER.to_vec())
    .fetch_all(db.pool())
    .await
    .unwrap();
    let want: Vec<(String, String, bool)> = expected
        .iter()
        .map(|(v, cols)| (v.to_string(), cols.to_string(), true))
        .collect();
    // Tables since 0004 (relkind 'r' above); relispopulated stays true.
    assert_eq!(got, want);
    let mut names: Vec<&str> = VIEWS_IN_ORDER.to_vec();
    names.sort_unstable();
    assert_eq!(got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(), names);
}

#[tokio::test]
async fn every_view_has_its_unique_index_and_lookup_indexes() {
    let db = TestDb::new().await;
    // (view, index, unique, columns). The unique index of each 6.6.9 view is, since 0004, the
    // primary key of the table of the same name, under the same index name.
    let indexes = [
        (
            "relay_metadata_latest",
            "idx_relay_metadata_latest_pk",
            true,
            "relay_url, metadata_type",
        ),
        (
            "relay_metadata_latest",
            "idx_relay_metadata_latest_type",
            false,
            "metadata_type",
        ),
        (
            "event_stats",
            "idx_event_stats_singleton_key",
            true,
            "singleton_key",
        ),
        (
            "relay_stats",
            "idx_relay_stats_relay_url",
            true,
            "relay_url",
        ),
        ("relay_stats", "idx_relay_stats_network", false, "network"),
        ("kind_counts", "idx_kind_counts_kind", true, "kind"),
        (
            "kind_counts_by_relay",
            "idx_kind_counts_by_relay_composite",
            true,
            "kind, relay_url",
        ),
        (
            "kind_counts_by_relay",
            "idx_kind_counts_by_relay_relay",
            false,
            "relay_url",
        ),
        ("pubkey_counts", "idx_pubkey_counts_pubkey", true, "pubkey"),
        (
            "pubkey_counts_by_relay",
            "idx_pubkey_counts_by_relay_composite",
            true,
            "pubkey, relay_url",
        ),
        (
            "pubkey_counts_by_relay",
            "idx_pubkey_counts_by_relay_relay",
            false,
            "relay_url",
        ),
        (
            "network_stats",
            "idx_network_stats_network",
            true,
            "network",
        ),
        (
            "relay_software_counts",
            "idx_relay_software_counts_composite",
            true,
            "software, version",
        ),
        (
            "supported_nip_counts",
            "idx_supported_nip_counts_nip",
            true,
            "nip",
        ),
        (
            "event_daily_counts",
            "idx_event_daily_counts_day",
            true,
            "day",
        ),
        (
            "events_replaceable_latest",
            "idx_events_replaceable_latest_pubkey_kind",
            true,
            "pubkey, kind",
        ),
        (
            "events_replaceable_latest",
            "idx_events_replaceable_latest_kind",
            false,
            "kind",
        ),
        (
            "events_addressable_latest",
            "idx_events_addressable_latest_pubkey_kind_d_tag",
            true,
            "pubkey, kind, d_tag",
        ),
        (
            "events_addressable_latest",
            "idx_events_addressable_latest_kind",
            false,
            "kind",
        ),
    ];
    let mut expected: Vec<String> = indexes
        .iter()
        .map(|(view, name, unique, cols)| {
            let unique = if *unique { "UNIQUE " } else { "" };
            format!("CREATE {unique}INDEX {name} ON public.{view} USING btree ({cols})")
        })
        .collect();
    expected.sort();
    let got: Vec<String> = sqlx::query_scalar(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
         JOIN pg_class t ON t.oid = i.indrelid
         WHERE t.relnamespace = 'public'::regnamespace AND t.relname = ANY($1)
         ORDER BY 1",
    )
    .bind(VIEWS_IN_ORDER.to_vec())
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(got, expected);
    assert!(
        index_definitions(&db, "'m'").await.is_empty(),
        "no materialized view is left"
    );
    for view in VIEWS_IN_ORDER {
        assert!(
            indexes
                .iter()
                .any(|(v, _, unique, _)| *v == view && *unique),
            "{view} has a unique index"
        );
    }
}

/// (regprocedure, arguments with names and defaults, result) of the 27 functions, from §1.3–§1.6,
/// and the refresh functions of relay_uptime_daily and relay_uptime (migration 0004).
fn expected_functions() -> Vec<(String, String, String)> {
    let int = "integer";
    let mut f: Vec<(String, String, String)> = vec![
        ("tags_to_tagvalues(jsonb)", "jsonb", "text[]"),
        ("relay_insert(text[],text[],bigint[])", "p_urls text[], p_networks text[], p_discovered_ats bigint[]", int),
        (
            "event_insert(bytea[],bytea[],bigint[],integer[],jsonb[],text[],bytea[])",
            "p_event_ids bytea[], p_pubkeys bytea[], p_created_ats bigint[], p_kinds integer[], \
             p_tags jsonb[], p_content_values text[], p_sigs bytea[]",
            int,
        ),
        ("metadata_insert(bytea[],text[],jsonb[])", "p_ids bytea[], p_metadata_types text[], p_data jsonb[]", int),
        (
            "event_relay_insert(bytea[],text[],bigint[])",
            "p_event_ids bytea[], p_relay_urls text[], p_seen_ats bigint[]",
            int,
        ),
        (
            "relay_metadata_insert(text[],bytea[],text[],bigint[])",
            "p_relay_urls text[], p_metadata_ids bytea[], p_metadata_types text[], p_generated_ats bigint[]",
            int,
        ),
        (
            "event_relay_insert_cascade(bytea[],bytea[],bigint[],integer[],jsonb[],text[],bytea[],\
             text[],text[],bigint[],bigint[])",
            "p_event_ids bytea[], p_pubkeys bytea[], p_created_ats bigint[], p_kinds integer[], \
             p_tags jsonb[], p_content_values text[], p_sigs bytea[], p_relay_urls text[], \
             p_relay_networks text[], p_relay_discovered_ats bigint[], p_seen_ats bigint[]",
            int,
        ),
        (
            "relay_metadata_insert_cascade(text[],text[],bigint[],bytea[],text[],jsonb[],bigint[])",
            "p_relay_urls text[], p_relay_networks text[], p_relay_discovered_ats bigint[], \
             p_metadata_ids bytea[], p_metadata_types text[], p_metadata_data jsonb[], \
             p_generated_ats bigint[]",
            int,
        ),
        (
            "service_state_upsert(text[],text[],text[],jsonb[])",
            "p_service_names text[], p_state_types text[], p_state_keys text[], p_state_values jsonb[]",
            int,
        ),
        (
            "service_state_get(text,text,text)",
            "p_service_name text, p_state_type text, p_state_key text DEFAULT NULL::text",
            "TABLE(state_key text, state_value jsonb)",
        ),
        (
            "service_state_delete(text[],text[],text[])",
            "p_service_names text[], p_state_types text[], p_state_keys text[]",
            int,
        ),
        ("orphan_metadata_delete(integer)", "p_batch_size integer DEFAULT 10000", int),
        ("orphan_event_delete(integer)", "p_batch_size integer DEFAULT 10000", int),
        ("all_statistics_refresh()", "", "void"),
    ]
    .into_iter()
    .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    .collect();
    f.extend(
        bigbrotr_db::migrate::STATISTICS_OBJECTS
            .iter()
            .map(|v| (format!("{v}_refresh()"), String::new(), "void".to_owned())),
    );
    f.sort();
    f
}

#[tokio::test]
async fn the_functions_have_the_6_6_9_signatures() {
    let db = TestDb::new().await;
    // Functions of extensions (btree_gin puts many in public) are not ours.
    let rows = dbkit::rows(
        db.pool(),
        "SELECT p.oid::regprocedure::text AS sig, pg_get_function_arguments(p.oid) AS args,
                pg_get_function_result(p.oid) AS result, l.lanname::text AS lang,
                p.provolatile::text AS volatility, p.proisstrict AS strict, p.prosecdef AS definer
         FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
         WHERE p.pronamespace = 'public'::regnamespace
           AND NOT EXISTS (SELECT 1 FROM pg_depend d
                           WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                             AND d.deptype = 'e')
         ORDER BY 1",
    )
    .await;
    let got: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.get("sig"), r.get("args"), r.get("result")))
        .collect();
    assert_eq!(got.len(), 29);
    assert_eq!(got, expected_functions());
    for row in &rows {
        let sig: String = row.get("sig");
        let (lang, volatility, strict): (String, String, bool) =
            (row.get("lang"), row.get("volatility"), row.get("strict"));
        assert!(!row.get::<bool, _>("definer"), "{sig} is SECURITY INVOKER");
        if sig == "tags_to_tagvalues(jsonb)" {
            // SQL, IMMUTABLE, RETURNS NULL ON NULL INPUT (reference §1.3).
            assert_eq!(
                (lang.as_str(), volatility.as_str(), strict),
                ("sql", "i", true),
                "{sig}"
            );
        } else {
            assert_eq!(
                (lang.as_str(), volatility.as_str(), strict),
                ("plpgsql", "v", false),
                "{sig}"
            );
        }
    }
}

#[tokio::test]
async fn the_extensions_are_installed_and_no_regular_view_exists() {
    let db = TestDb::new().await;
    let extensions: Vec<String> = sqlx::query_scalar(
        "SELECT extname::text FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(extensions, ["btree_gin", "pg_stat_statements"]);
    // §1.5: 05_views.sql defines no regular views; pg_stat_statements' own views are extension
    // members.
    let views: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
           AND c.relkind = 'v'
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(views, 0);
    // The GIN index on tagvalues answers containment queries (what btree_gin is there for).
    let pool = db.pool();
    let e = dbkit::ev(1, 1, 10, 1, json!([["t", "x"]]));
    insert_events(pool, &[e]).await;
    let hits: i64 =
        sqlx::query_scalar("SELECT count(*) FROM event WHERE tagvalues @> ARRAY['t:x']")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(hits, 1);
}
