//! Roles and grants (reference §1.8): writer, reader and refresher, their table and function
//! privileges in the catalog, and what each role can actually do under `SET ROLE`.

use bigbrotr_testkit::TestDb;
use sqlx::PgPool;

use crate::dbkit::{VIEWS_IN_ORDER, as_role, exec, sqlstate};

const ROLES: [&str; 3] = ["writer", "reader", "refresher"];
const PRIVILEGES: [&str; 4] = ["SELECT", "INSERT", "UPDATE", "DELETE"];

fn denied(result: Result<(), sqlx::Error>, what: &str) {
    match result {
        Err(e) => assert_eq!(sqlstate(&e).as_deref(), Some("42501"), "{what}: {e}"),
        Ok(()) => panic!("{what} should be refused"),
    }
}

async fn check(pool: &PgPool, sql: &str, bind: &str) -> bool {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(bind)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql} ({bind}): {e}"))
}

#[tokio::test]
async fn the_three_login_roles_exist_and_reader_is_in_pg_monitor() {
    let db = TestDb::new().await;
    for role in ROLES {
        let login = check(
            db.pool(),
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1",
            role,
        )
        .await;
        assert!(login, "{role} can log in");
        let superuser = check(
            db.pool(),
            "SELECT rolsuper FROM pg_roles WHERE rolname = $1",
            role,
        )
        .await;
        assert!(!superuser, "{role} is not a superuser");
        let monitor = check(
            db.pool(),
            "SELECT pg_has_role($1, 'pg_monitor', 'MEMBER')",
            role,
        )
        .await;
        assert_eq!(monitor, role == "reader", "{role} membership of pg_monitor");
    }
}

#[tokio::test]
async fn table_privileges_follow_the_grant_matrix_on_parents_and_partitions() {
    let db = TestDb::new().await;
    let mut relations: Vec<String> = [
        "relay",
        "event",
        "event_relay",
        "metadata",
        "relay_metadata",
        "service_state",
    ]
    .iter()
    .map(|t| t.to_string())
    .collect();
    relations.extend((0..16).map(|i| format!("event_p{i}")));
    relations.extend((0..16).map(|i| format!("event_relay_p{i}")));
    for role in ROLES {
        for relation in &relations {
            for privilege in PRIVILEGES {
                let has: bool =
                    sqlx::query_scalar("SELECT has_table_privilege($1, $2::regclass, $3)")
                        .bind(role)
                        .bind(relation)
                        .bind(privilege)
                        .fetch_one(db.pool())
                        .await
                        .unwrap();
                let expected = role == "writer" || privilege == "SELECT";
                assert_eq!(has, expected, "{role} {privilege} on {relation}");
            }
        }
        for view in VIEWS_IN_ORDER {
            let select: bool =
                sqlx::query_scalar("SELECT has_table_privilege($1, $2::regclass, 'SELECT')")
                    .bind(role)
                    .bind(view)
                    .fetch_one(db.pool())
                    .await
                    .unwrap();
            assert!(select, "{role} can read {view}");
        }
    }
}

#[tokio::test]
async fn every_role_is_granted_schema_usage_and_execute_on_all_29_functions() {
    let db = TestDb::new().await;
    // Explicit ACL entries (PUBLIC's defaults would make has_*_privilege true regardless).
    let usage: Vec<String> = sqlx::query_scalar(
        "SELECT r.rolname::text FROM pg_namespace n, aclexplode(n.nspacl) a
         JOIN pg_roles r ON r.oid = a.grantee
         WHERE n.nspname = 'public' AND a.privilege_type = 'USAGE' AND r.rolname = ANY($1)
         ORDER BY 1",
    )
    .bind(ROLES.to_vec())
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(usage, ["reader", "refresher", "writer"]);
    let grants: Vec<(String, i64)> = sqlx::query_as(
        "SELECT r.rolname::text, count(DISTINCT p.oid)
         FROM pg_proc p, aclexplode(p.proacl) a
         JOIN pg_roles r ON r.oid = a.grantee
         WHERE p.pronamespace = 'public'::regnamespace AND a.privilege_type = 'EXECUTE'
           AND r.rolname = ANY($1)
           AND NOT EXISTS (SELECT 1 FROM pg_depend d
                           WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                             AND d.deptype = 'e')
         GROUP BY 1 ORDER BY 1",
    )
    .bind(ROLES.to_vec())
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(
        grants,
        [
            ("reader".to_owned(), 29),
            ("refresher".to_owned(), 29),
            ("writer".to_owned(), 29)
        ]
    );
}

#[tokio::test]
async fn refresher_owns_every_view_and_future_objects_get_default_grants() {
    let db = TestDb::new().await;
    // Tables since migration 0004, owned by refresher as the views were.
    let owners: Vec<(String, String)> = sqlx::query_as(
        "SELECT tablename::text, tableowner::text FROM pg_tables
         WHERE schemaname = 'public' AND tableowner = 'refresher' ORDER BY 1",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let mut expected: Vec<(String, String)> = bigbrotr_db::migrate::STATISTICS_OBJECTS
        .iter()
        .map(|v| (v.to_string(), "refresher".to_owned()))
        .collect();
    expected.sort();
    assert_eq!(owners, expected);
    // Default privileges of the migrating role: a table created later is usable at once.
    exec(db.pool(), "CREATE TABLE later_table (x int); CREATE FUNCTION later_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'").await;
    for role in ROLES {
        for privilege in PRIVILEGES {
            let has: bool = sqlx::query_scalar("SELECT has_table_privilege($1, 'later_table', $2)")
                .bind(role)
                .bind(privilege)
                .fetch_one(db.pool())
                .await
                .unwrap();
            assert_eq!(
                has,
                role == "writer" || privilege == "SELECT",
                "{role} {privilege} on a new table"
            );
        }
    }
    let explicit: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_proc p, aclexplode(p.proacl) a JOIN pg_roles r ON r.oid = a.grantee
         WHERE p.proname = 'later_fn' AND a.privilege_type = 'EXECUTE' AND r.rolname = ANY($1)",
    )
    .bind(ROLES.to_vec())
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(explicit, 3, "EXECUTE on new functions for the three roles");
}

const INSERT_RELAY: &str = "INSERT INTO relay VALUES ('wss://direct.example.com', 'clearnet', 1)";
const CALL_RELAY_INSERT: &str =
    "SELECT relay_insert(ARRAY['wss://fn.example.com'], ARRAY['clearnet'], ARRAY[1::bigint])";

#[tokio::test]
async fn reader_can_read_but_neither_write_nor_call_write_functions_nor_refresh() {
    let db = TestDb::new().await;
    let pool = db.pool();
    as_role(pool, "reader", "SELECT * FROM relay, event_stats")
        .await
        .unwrap();
    as_role(
        pool,
        "reader",
        "SELECT * FROM service_state_get('validator', 'checkpoint')",
    )
    .await
    .unwrap();
    denied(as_role(pool, "reader", INSERT_RELAY).await, "reader INSERT");
    // EXECUTE is granted, but the function is SECURITY INVOKER: the INSERT inside is refused.
    denied(
        as_role(pool, "reader", CALL_RELAY_INSERT).await,
        "reader relay_insert()",
    );
    denied(
        as_role(pool, "reader", "DELETE FROM service_state").await,
        "reader DELETE",
    );
    denied(
        as_role(pool, "reader", "SELECT event_stats_refresh()").await,
        "reader refresh",
    );
    // pg_monitor grants what monitoring needs, e.g. listing the WAL directory; writer lacks it.
    as_role(pool, "reader", "SELECT count(*) FROM pg_ls_waldir()")
        .await
        .unwrap();
    denied(
        as_role(pool, "writer", "SELECT count(*) FROM pg_ls_waldir()").await,
        "writer pg_ls_waldir",
    );
}

#[tokio::test]
async fn writer_can_write_through_tables_and_functions_but_not_refresh() {
    let db = TestDb::new().await;
    let pool = db.pool();
    as_role(pool, "writer", INSERT_RELAY).await.unwrap();
    as_role(pool, "writer", CALL_RELAY_INSERT).await.unwrap();
    as_role(
        pool,
        "writer",
        &format!("{INSERT_RELAY}; UPDATE relay SET discovered_at = 2; DELETE FROM relay"),
    )
    .await
    .unwrap();
    as_role(
        pool,
        "writer",
        "SELECT service_state_upsert(ARRAY['finder'], ARRAY['cursor'], ARRAY['k'], ARRAY['{}'::jsonb])",
    )
    .await
    .unwrap();
    // Only refresher (the owner of the statistics) may refresh them.
    denied(
        as_role(pool, "writer", "SELECT kind_counts_refresh()").await,
        "writer refresh",
    );
    // The role checks above ran in rolled-back transactions.
    assert_eq!(crate::dbkit::count(pool, "relay").await, 0);
}

#[tokio::test]
async fn refresher_can_run_every_refresh_function_but_not_write() {
    let db = TestDb::new().await;
    let pool = db.pool();
    for view in VIEWS_IN_ORDER {
        as_role(pool, "refresher", &format!("SELECT {view}_refresh()"))
            .await
            .unwrap_or_else(|e| panic!("refresher {view}_refresh(): {e}"));
    }
    as_role(pool, "refresher", "SELECT all_statistics_refresh()")
        .await
        .unwrap();
    denied(
        as_role(pool, "refresher", INSERT_RELAY).await,
        "refresher INSERT",
    );
    denied(
        as_role(pool, "refresher", CALL_RELAY_INSERT).await,
        "refresher relay_insert()",
    );
}
