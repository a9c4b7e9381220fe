//! Leases (`lease.service_lease`, migration 0005): replicas claiming the same keys at once each get a
//! disjoint share, an expired lease is taken over and its former holder can neither renew it nor
//! write its checkpoint, finished keys are skipped until the next cycle, and only `writer` may
//! touch them.

use std::collections::HashSet;
use std::time::Duration;

use bigbrotr_db::Brotr;
use bigbrotr_db::lease::{LeaseHolder, ServerTime};
use bigbrotr_models::service_state::{ServiceName, ServiceState, ServiceStateType};
use bigbrotr_testkit::TestDb;
use serde_json::json;

const TTL: Duration = Duration::from_secs(30);

fn keys(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("wss://r{i:03}.example.com"))
        .collect()
}

fn holder(id: &str) -> LeaseHolder {
    LeaseHolder::new(ServiceName::Synchronizer, id).unwrap()
}

async fn cycle(brotr: &Brotr) -> ServerTime {
    brotr.lease_clock().await.unwrap()
}

#[tokio::test]
async fn replicas_claiming_at_once_get_disjoint_shares_of_every_key() {
    let db = TestDb::new().await;
    let all = keys(60);
    let mut config = db.config();
    config.pool.limits.max_size = 8;
    let brotr = Brotr::connect(config, None).await.unwrap();
    let start = cycle(&brotr).await;
    // Four replicas, each asking for the keys in its own order, five at a time, until none is
    // left: every key is claimed once, by one replica.
    let mut tasks = tokio::task::JoinSet::new();
    for r in 0..4_usize {
        let brotr = brotr.clone();
        let mut order = all.clone();
        order.rotate_left(r * 15);
        if r % 2 == 1 {
            order.reverse();
        }
        tasks.spawn(async move {
            let me = holder(&format!("replica-{r}"));
            let mut mine = Vec::new();
            loop {
                let got = brotr
                    .lease_acquire(&me, &order, TTL, 5, start)
                    .await
                    .unwrap();
                if got.is_empty() {
                    break;
                }
                assert!(got.len() <= 5, "{got:?}");
                // Its own keys stay claimable by it (a claim is idempotent): ask for the rest.
                order.retain(|k| !got.contains(k));
                mine.extend(got);
                tokio::task::yield_now().await;
            }
            mine
        });
    }
    let mut seen = HashSet::new();
    let mut shares = Vec::new();
    while let Some(share) = tasks.join_next().await {
        let share = share.unwrap();
        shares.push(share.len());
        for key in share {
            assert!(seen.insert(key.clone()), "{key} claimed twice");
        }
    }
    assert_eq!(seen, all.iter().cloned().collect::<HashSet<_>>());
    assert_eq!(shares.iter().sum::<usize>(), 60);
    // Every row names one holder; nothing else was written.
    let rows: i64 = sqlx::query_scalar("SELECT count(DISTINCT lease_key) FROM lease.service_lease")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(rows, 60);
}

#[tokio::test]
async fn a_claim_is_ordered_bounded_idempotent_and_counts_a_repeated_key_once() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let a = holder("a");
    let start = cycle(&brotr).await;
    let wanted = vec![
        "wss://c.example.com".to_owned(),
        "wss://a.example.com".to_owned(),
        "wss://c.example.com".to_owned(),
        "wss://b.example.com".to_owned(),
    ];
    let mut got = brotr
        .lease_acquire(&a, &wanted, TTL, 2, start)
        .await
        .unwrap();
    got.sort();
    assert_eq!(got, ["wss://a.example.com", "wss://c.example.com"]);
    // Claiming again what it holds gives it back; the limit still applies.
    let mut again = brotr
        .lease_acquire(&a, &wanted, TTL, 3, start)
        .await
        .unwrap();
    again.sort();
    assert_eq!(
        again,
        [
            "wss://a.example.com",
            "wss://b.example.com",
            "wss://c.example.com"
        ]
    );
    assert!(
        brotr
            .lease_acquire(&holder("b"), &wanted, TTL, 10, start)
            .await
            .unwrap()
            .is_empty(),
        "held by a"
    );
    assert!(
        LeaseHolder::new(ServiceName::Synchronizer, "").is_err(),
        "an empty replica id"
    );
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_its_former_holder_is_fenced_out() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let (a, b) = (holder("a"), holder("b"));
    let key = vec!["wss://r.example.com".to_owned()];
    let start = cycle(&brotr).await;
    let short = Duration::from_millis(400);
    assert_eq!(
        brotr
            .lease_acquire(&a, &key, short, 1, start)
            .await
            .unwrap(),
        key
    );
    assert!(
        brotr
            .lease_acquire(&b, &key, TTL, 1, start)
            .await
            .unwrap()
            .is_empty()
    );
    // a renews in time: still its own.
    assert_eq!(brotr.lease_renew(&a, &key, short).await.unwrap(), key);
    assert!(
        brotr
            .lease_acquire(&b, &key, TTL, 1, start)
            .await
            .unwrap()
            .is_empty()
    );
    // a stops renewing (killed, or cut off from the database): b takes over after the ttl.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        brotr.lease_acquire(&b, &key, TTL, 1, start).await.unwrap(),
        key
    );
    assert!(
        brotr.lease_renew(&a, &key, TTL).await.unwrap().is_empty(),
        "a learns it lost the key"
    );
    // a's late checkpoint is not written; b's is.
    let record = |timestamp: i64| {
        ServiceState::new(
            ServiceName::Synchronizer,
            ServiceStateType::Cursor,
            key[0].clone(),
            json!({"timestamp": timestamp, "id": "f".repeat(64)}),
        )
        .unwrap()
    };
    let (written, lost) = brotr
        .upsert_service_state_leased(&a, &[record(999)])
        .await
        .unwrap();
    assert_eq!((written, lost.as_slice()), (0, key.as_slice()));
    let (written, lost) = brotr
        .upsert_service_state_leased(&b, &[record(5)])
        .await
        .unwrap();
    assert_eq!((written, lost.len()), (1, 0));
    let stored = brotr
        .get_service_state(
            ServiceName::Synchronizer,
            ServiceStateType::Cursor,
            Some(&key[0]),
        )
        .await
        .unwrap();
    assert_eq!(stored[0].1["timestamp"], 5);
    // Nor can a finish or release what it no longer holds.
    assert_eq!(brotr.lease_finish(&a, &key).await.unwrap(), 0);
    assert_eq!(brotr.lease_release(&a, &key).await.unwrap(), 0);
}

#[tokio::test]
async fn a_finished_key_waits_for_the_next_cycle_and_a_released_one_does_not() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let (a, b) = (holder("a"), holder("b"));
    let done = vec!["wss://done.example.com".to_owned()];
    let given_back = vec!["wss://back.example.com".to_owned()];
    let first = cycle(&brotr).await;
    brotr.lease_acquire(&a, &done, TTL, 1, first).await.unwrap();
    brotr
        .lease_acquire(&a, &given_back, TTL, 1, first)
        .await
        .unwrap();
    assert_eq!(brotr.lease_finish(&a, &done).await.unwrap(), 1);
    assert_eq!(brotr.lease_release(&a, &given_back).await.unwrap(), 1);
    // In the cycle that started before it was finished, nobody does it again, a included.
    for who in [&a, &b] {
        assert!(
            brotr
                .lease_acquire(who, &done, TTL, 1, first)
                .await
                .unwrap()
                .is_empty(),
            "{}",
            who.holder
        );
    }
    // The released key is free at once.
    assert_eq!(
        brotr
            .lease_acquire(&b, &given_back, TTL, 1, first)
            .await
            .unwrap(),
        given_back
    );
    // A cycle that starts after the finish does it again.
    let next = cycle(&brotr).await;
    assert_eq!(
        brotr.lease_acquire(&b, &done, TTL, 1, next).await.unwrap(),
        done
    );
}

#[tokio::test]
async fn only_writer_may_touch_leases() {
    let db = TestDb::new().await;
    for role in ["reader", "refresher"] {
        for sql in [
            "SELECT count(*) FROM lease.service_lease",
            "SELECT lease.release('synchronizer', 'x', ARRAY['k'])",
        ] {
            let mut tx = db.pool().begin().await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("SET LOCAL ROLE {role}")))
                .execute(&mut *tx)
                .await
                .unwrap();
            let err = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&mut *tx)
                .await
                .unwrap_err();
            let code = err
                .as_database_error()
                .and_then(|e| e.code())
                .map(|c| c.into_owned());
            assert_eq!(code.as_deref(), Some("42501"), "{role}: {sql}: {err}");
        }
    }
    let mut tx = db.pool().begin().await.unwrap();
    sqlx::query("SET LOCAL ROLE writer")
        .execute(&mut *tx)
        .await
        .unwrap();
    let claimed: Vec<String> = sqlx::query_scalar(
        "SELECT lease.acquire('synchronizer', 'w', ARRAY['k'], 30, 1, clock_timestamp())",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    assert_eq!(claimed, ["k"]);
}

/// `WorkLeases`, the daemons' side: the heartbeat keeps a claim past its time to live, a claim
/// taken over is reported through its token, and `end` gives back what is unfinished.
#[tokio::test]
async fn the_heartbeat_keeps_a_claim_and_reports_one_lost() {
    use bigbrotr_core::replica::{ReplicaConfig, WorkLeases};
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let config = |id: &str| ReplicaConfig {
        id: Some(id.to_owned()),
        lease_ttl: 1.0,
    };
    let a = WorkLeases::begin(&brotr, ServiceName::Monitor, &config("a"))
        .await
        .unwrap();
    let wanted = keys(3);
    let claimed = a.claim(&wanted, 10).await.unwrap();
    assert_eq!(claimed.len(), 3);
    // Three times the ttl later, still a's: renewed every third of it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let b = WorkLeases::begin(&brotr, ServiceName::Monitor, &config("b"))
        .await
        .unwrap();
    assert!(b.claim(&wanted, 10).await.unwrap().is_empty());
    // Someone else takes wanted[0] over (as after a partition longer than the ttl): a's next
    // beat cancels its token and forgets it.
    sqlx::query("UPDATE lease.service_lease SET holder = 'c' WHERE lease_key = $1")
        .bind(&wanted[0])
        .execute(db.pool())
        .await
        .unwrap();
    let lost = claimed[0].1.clone();
    tokio::time::timeout(Duration::from_secs(3), lost.cancelled())
        .await
        .expect("the lost lease is reported");
    assert!(!claimed[1].1.is_cancelled() && !claimed[2].1.is_cancelled());
    assert_eq!(a.held(), 2);
    // a finishes one and stops: the unfinished one is free at once, the finished one is not.
    a.finish(&wanted[1]).await.unwrap();
    a.end().await.unwrap();
    let got = b.claim(&wanted, 10).await.unwrap();
    let got: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(got, [wanted[2].as_str()]);
    b.end().await.unwrap();
}

/// `lease.purge` deletes only the rows no cycle can need: finished or expired longer ago than
/// asked, of the service asked.
#[tokio::test]
async fn purge_deletes_old_finished_and_expired_rows_only() {
    let db = TestDb::new().await;
    let brotr = db.brotr();
    let a = holder("a");
    let all = keys(4);
    let start = cycle(&brotr).await;
    brotr.lease_acquire(&a, &all, TTL, 4, start).await.unwrap();
    brotr.lease_finish(&a, &all[..2]).await.unwrap();
    // Age the first finished row and the first unfinished one by two days.
    sqlx::query(
        "UPDATE lease.service_lease SET finished_at = finished_at - interval '2 days',
                expires_at = expires_at - interval '2 days'
         WHERE lease_key = ANY($1)",
    )
    .bind(vec![all[0].clone(), all[2].clone()])
    .execute(db.pool())
    .await
    .unwrap();
    // Another service's old row stays.
    let other = LeaseHolder::new(ServiceName::Monitor, "a").unwrap();
    brotr
        .lease_acquire(&other, &all[..1], TTL, 1, start)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE lease.service_lease SET expires_at = expires_at - interval '2 days'
         WHERE service_name = 'monitor'",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let purged = brotr
        .lease_purge(ServiceName::Synchronizer, Duration::from_secs(86_400))
        .await
        .unwrap();
    assert_eq!(purged, 2);
    let left: Vec<(String, String)> =
        sqlx::query_as("SELECT service_name, lease_key FROM lease.service_lease ORDER BY 1, 2")
            .fetch_all(db.pool())
            .await
            .unwrap();
    let expected = vec![
        ("monitor".to_owned(), all[0].clone()),
        ("synchronizer".to_owned(), all[1].clone()),
        ("synchronizer".to_owned(), all[3].clone()),
    ];
    assert_eq!(left, expected);
}
