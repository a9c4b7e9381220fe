//! The tables of a migrated BigBrotr database against the 6.6.9 contract (reference §1.2, §1.7):
//! columns, keys, hash partitions, storage options and the 11 table indexes. Views and functions
//! are in `schema_objects`, roles and grants in `schema_roles`.

use crate::dbkit::{ev0, insert_events, insert_relay, link};
use bigbrotr_testkit::TestDb;

const TABLES: [&str; 6] = [
    "relay",
    "event",
    "event_relay",
    "metadata",
    "relay_metadata",
    "service_state",
];

/// (column, type, NOT NULL, default) of every column of `table`, in column order.
async fn table_columns(db: &TestDb, table: &str) -> Vec<(String, String, bool, Option<String>)> {
    sqlx::query_as(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                pg_get_expr(d.adbin, d.adrelid)
         FROM pg_attribute a
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attnum",
    )
    .bind(table)
    .fetch_all(db.pool())
    .await
    .expect("columns of a table")
}

#[tokio::test]
async fn the_six_tables_have_the_6_6_9_columns_types_and_nullability() {
    let db = TestDb::new().await;
    let nn = |c: &str, t: &str| (c.to_owned(), t.to_owned(), true, None::<String>);
    let expected = [
        (
            "relay",
            vec![
                nn("url", "text"),
                nn("network", "text"),
                nn("discovered_at", "bigint"),
            ],
        ),
        (
            "event",
            vec![
                nn("id", "bytea"),
                nn("pubkey", "bytea"),
                nn("created_at", "bigint"),
                nn("kind", "integer"),
                nn("tags", "jsonb"),
                nn("tagvalues", "text[]"),
                nn("content", "text"),
                nn("sig", "bytea"),
            ],
        ),
        (
            "event_relay",
            vec![
                nn("event_id", "bytea"),
                nn("relay_url", "text"),
                nn("seen_at", "bigint"),
            ],
        ),
        (
            "metadata",
            vec![nn("id", "bytea"), nn("type", "text"), nn("data", "jsonb")],
        ),
        (
            "relay_metadata",
            vec![
                nn("relay_url", "text"),
                nn("metadata_id", "bytea"),
                nn("metadata_type", "text"),
                nn("generated_at", "bigint"),
            ],
        ),
        (
            "service_state",
            vec![
                nn("service_name", "text"),
                nn("state_type", "text"),
                nn("state_key", "text"),
                (
                    "state_value".into(),
                    "jsonb".into(),
                    true,
                    Some("'{}'::jsonb".into()),
                ),
            ],
        ),
    ];
    for (table, columns) in expected {
        assert_eq!(
            table_columns(&db, table).await,
            columns,
            "columns of {table}"
        );
    }
    // No other table in public besides sqlx's bookkeeping, the partitions and the statistics
    // tables of migration 0004 (the 13 views of 6.6.9 and the two availability tables).
    let others: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class
         WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')
           AND NOT relispartition AND relname <> '_sqlx_migrations'
         ORDER BY relname",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let mut tables: Vec<String> = TABLES
        .iter()
        .chain(bigbrotr_db::migrate::STATISTICS_OBJECTS.iter())
        .map(|t| t.to_string())
        .collect();
    tables.sort();
    assert_eq!(others, tables);
}

/// (table, contype, columns, referenced table(columns), ON DELETE action) of one constraint.
type Constraint = (String, String, String, Option<String>, Option<String>);

#[tokio::test]
async fn primary_keys_foreign_keys_and_the_absence_of_checks_match() {
    let db = TestDb::new().await;
    // Constraints of the parent tables only (partitions carry inherited copies).
    let constraints: Vec<Constraint> = sqlx::query_as(
        "SELECT c.conrelid::regclass::text, c.contype::text,
                (SELECT string_agg(a.attname, ',' ORDER BY k.ord)
                 FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum),
                CASE WHEN c.contype = 'f' THEN c.confrelid::regclass::text || '(' ||
                    (SELECT string_agg(a.attname, ',' ORDER BY k.ord)
                     FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, ord)
                     JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum)
                    || ')' END,
                CASE WHEN c.contype = 'f' THEN c.confdeltype::text END
         FROM pg_constraint c
         WHERE c.conrelid = ANY(ARRAY['relay', 'event', 'event_relay', 'metadata',
                                      'relay_metadata', 'service_state']::regclass[])
           AND c.conparentid = 0 AND c.contype <> 'n'
         ORDER BY 1, 2, 3",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let c = |t: &str, ty: &str, cols: &str, refs: Option<&str>| {
        (
            t.to_owned(),
            ty.to_owned(),
            cols.to_owned(),
            refs.map(str::to_owned),
            refs.map(|_| "c".to_owned()),
        )
    };
    let mut expected = vec![
        c("event", "p", "id", None),
        c("event_relay", "f", "event_id", Some("event(id)")),
        c("event_relay", "f", "relay_url", Some("relay(url)")),
        c("event_relay", "p", "event_id,relay_url", None),
        c("metadata", "p", "id,type", None),
        c("relay", "p", "url", None),
        c(
            "relay_metadata",
            "f",
            "metadata_id,metadata_type",
            Some("metadata(id,type)"),
        ),
        c("relay_metadata", "f", "relay_url", Some("relay(url)")),
        c(
            "relay_metadata",
            "p",
            "relay_url,generated_at,metadata_type",
            None,
        ),
        c(
            "service_state",
            "p",
            "service_name,state_type,state_key",
            None,
        ),
    ];
    expected.sort();
    // confdeltype 'c' = ON DELETE CASCADE; no CHECK ('c' contype) exists, e.g. on metadata_type.
    assert_eq!(constraints, expected);
}

#[tokio::test]
async fn event_and_event_relay_are_hash_partitioned_sixteen_ways() {
    let db = TestDb::new().await;
    for (parent, key) in [("event", "HASH (id)"), ("event_relay", "HASH (event_id)")] {
        let partkey: String = sqlx::query_scalar("SELECT pg_get_partkeydef($1::regclass)")
            .bind(parent)
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(partkey, key, "partition key of {parent}");
        let leaves: Vec<(String, String)> = sqlx::query_as(
            "SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid)
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = $1::regclass ORDER BY c.relname",
        )
        .bind(parent)
        .fetch_all(db.pool())
        .await
        .unwrap();
        let mut expected: Vec<(String, String)> = (0..16)
            .map(|r| {
                (
                    format!("{parent}_p{r}"),
                    format!("FOR VALUES WITH (modulus 16, remainder {r})"),
                )
            })
            .collect();
        expected.sort();
        assert_eq!(leaves, expected, "partitions of {parent}");
    }
}

#[tokio::test]
async fn a_sighting_lands_in_the_partition_number_of_its_event() {
    let db = TestDb::new().await;
    let pool = db.pool();
    insert_relay(pool, "wss://a.example.com", "clearnet", 1).await;
    let events: Vec<_> = (0..64).map(|n| ev0(n, 1, 1_700_000_000, 1)).collect();
    assert_eq!(insert_events(pool, &events).await, 64);
    let refs: Vec<_> = events.iter().collect();
    assert_eq!(link(pool, &refs, "wss://a.example.com", 5).await, 64);
    let (rows, mismatched, wrong_remainder, partitions): (i64, i64, i64, i64) = sqlx::query_as(
        "WITH placed AS (
             SELECT e.id,
                    substring(e.tableoid::regclass::text FROM '_p(\\d+)$')::int AS ep,
                    substring(er.tableoid::regclass::text FROM '_p(\\d+)$')::int AS rp
             FROM event_relay er JOIN event e ON e.id = er.event_id)
         SELECT count(*),
                count(*) FILTER (WHERE ep IS DISTINCT FROM rp),
                count(*) FILTER (WHERE NOT satisfies_hash_partition('event'::regclass, 16, ep, id)),
                count(DISTINCT ep)
         FROM placed",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(rows, 64);
    assert_eq!(
        mismatched, 0,
        "event_relay_pN holds the sightings of the events in event_pN"
    );
    assert_eq!(
        wrong_remainder, 0,
        "each event sits in partition (hash mod 16)"
    );
    assert!(
        partitions > 4,
        "64 ids spread over several partitions, got {partitions}"
    );
}

#[tokio::test]
async fn a_lookup_by_id_reads_a_single_partition() {
    let db = TestDb::new().await;
    for (table, column) in [("event", "id"), ("event_relay", "event_id")] {
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "EXPLAIN (COSTS OFF) SELECT * FROM {table} WHERE {column} = '\\x0102'::bytea"
        )))
        .fetch_all(db.pool())
        .await
        .unwrap();
        // Partitions named in the plan ("… on event_p5 event"), not their indexes (event_p5_pkey).
        let prefix = format!(" on {table}_p");
        let mut scanned: Vec<String> = plan
            .iter()
            .filter_map(|line| {
                let rest = &line[line.find(&prefix)? + prefix.len()..];
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let next = rest[digits.len()..].chars().next();
                (!digits.is_empty() && next != Some('_')).then_some(digits)
            })
            .collect();
        scanned.dedup();
        assert_eq!(scanned.len(), 1, "partition pruning on {table}: {plan:#?}");
    }
}

#[tokio::test]
async fn event_relay_leaves_vacuum_eagerly_and_large_columns_use_lz4() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let options: Vec<(String, Option<Vec<String>>)> = sqlx::query_as(
        "SELECT c.relname::text, c.reloptions FROM pg_class c
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
         ORDER BY c.relname",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let eager = vec![
        "autovacuum_vacuum_scale_factor=0.02".to_owned(),
        "autovacuum_vacuum_threshold=10000".to_owned(),
        "autovacuum_analyze_scale_factor=0.01".to_owned(),
    ];
    let mut leaves = 0;
    for (table, opts) in &options {
        let is_leaf = table.starts_with("event_relay_p");
        if is_leaf {
            leaves += 1;
            let mut got = opts.clone().unwrap_or_default();
            got.sort();
            let mut want = eager.clone();
            want.sort();
            assert_eq!(got, want, "storage options of {table}");
        } else {
            assert_eq!(
                opts, &None,
                "{table} keeps the server's autovacuum settings"
            );
        }
    }
    assert_eq!(leaves, 16);

    let lz4_supported: bool = sqlx::query_scalar(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let compressed: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, a.attname::text FROM pg_attribute a
         JOIN pg_class c ON c.oid = a.attrelid
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
           AND a.attnum > 0 AND a.attcompression = 'l'
         ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut expected = Vec::new();
    if lz4_supported {
        let mut tables = vec!["event".to_owned(), "metadata".to_owned()];
        tables.extend((0..16).map(|i| format!("event_p{i}")));
        for table in tables {
            let cols: &[&str] = if table == "metadata" {
                &["data"]
            } else {
                &["content", "tags"]
            };
            expected.extend(cols.iter().map(|c| (table.clone(), c.to_string())));
        }
        expected.sort();
    }
    assert_eq!(
        compressed, expected,
        "lz4 exactly on event.tags/content (and leaves) and metadata.data"
    );
}

/// `pg_get_indexdef` of every index on the given relations except primary keys.
pub(crate) async fn index_definitions(db: &TestDb, relkinds: &str) -> Vec<String> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
         JOIN pg_class t ON t.oid = i.indrelid
         WHERE t.relnamespace = 'public'::regnamespace AND t.relkind IN ({relkinds})
           AND NOT t.relispartition AND NOT i.indisprimary AND t.relname <> '_sqlx_migrations'
         ORDER BY 1"
    )))
    .fetch_all(db.pool())
    .await
    .expect("index definitions")
}

#[tokio::test]
async fn the_eleven_table_indexes_exist_by_name_and_definition_on_every_leaf() {
    let db = TestDb::new().await;
    // Reference §1.7. Indexes on a partitioned parent render as "ON ONLY".
    let mut expected: Vec<String> = [
        (
            "idx_event_created_at_id",
            "ONLY public.event",
            "btree (created_at DESC, id DESC)",
        ),
        (
            "idx_event_kind_created_at",
            "ONLY public.event",
            "btree (kind, created_at DESC)",
        ),
        (
            "idx_event_pubkey_created_at",
            "ONLY public.event",
            "btree (pubkey, created_at DESC)",
        ),
        (
            "idx_event_pubkey_kind_created_at",
            "ONLY public.event",
            "btree (pubkey, kind, created_at DESC)",
        ),
        (
            "idx_event_tagvalues",
            "ONLY public.event",
            "gin (tagvalues)",
        ),
        (
            "idx_event_relay_seen_at",
            "ONLY public.event_relay",
            "btree (seen_at DESC)",
        ),
        (
            "idx_event_relay_relay_url_seen_at_event_id",
            "ONLY public.event_relay",
            "btree (relay_url, seen_at, event_id)",
        ),
        (
            "idx_relay_metadata_generated_at",
            "public.relay_metadata",
            "btree (generated_at DESC)",
        ),
        (
            "idx_relay_metadata_metadata_id_type",
            "public.relay_metadata",
            "btree (metadata_id, metadata_type)",
        ),
        (
            "idx_relay_metadata_relay_url_metadata_type_generated_at",
            "public.relay_metadata",
            "btree (relay_url, metadata_type, generated_at DESC)",
        ),
        (
            "idx_service_state_candidate_network",
            "public.service_state",
            "btree (((state_value ->> 'network'::text))) WHERE ((service_name = 'validator'::text) \
             AND (state_type = 'checkpoint'::text))",
        ),
    ]
    .iter()
    .map(|(name, on, def)| format!("CREATE INDEX {name} ON {on} USING {def}"))
    .collect();
    expected.sort();
    let base: Vec<String> = index_definitions(&db, "'r', 'p'")
        .await
        .into_iter()
        .filter(|def| {
            TABLES
                .iter()
                .any(|t| def.contains(&format!(" public.{t} ")))
        })
        .collect();
    assert_eq!(base, expected);

    // Each index (and the primary key) of a partitioned table has a child on all 16 leaves.
    let children: Vec<(String, i64)> = sqlx::query_as(
        "SELECT i.indexrelid::regclass::text,
                (SELECT count(*) FROM pg_inherits h WHERE h.inhparent = i.indexrelid)
         FROM pg_index i
         WHERE i.indrelid IN ('event'::regclass, 'event_relay'::regclass) ORDER BY 1",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(
        children.len(),
        9,
        "5 + 2 indexes and 2 primary keys: {children:?}"
    );
    for (index, leaves) in children {
        assert_eq!(leaves, 16, "{index} is attached on every partition");
    }
}
