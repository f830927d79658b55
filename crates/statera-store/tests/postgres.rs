//! The store on a real PostgreSQL, several nodes sharing one database: the
//! schema's versions, coherent images, writes serialised across nodes (no
//! lost update), the change log's catch-up and reload, and the dead
//! controllers' `SKIP LOCKED` lock.

#[path = "support/objects.rs"]
mod objects;
#[path = "support/pg.rs"]
mod pg;

use objects::network;
use statera_model::*;
use statera_store::{
    Durability, Location, PgOptions, SchemaState, Store, StoreError, db_status, db_upgrade,
};
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug)]
enum Refused {
    Taken,
    Store(StoreError),
}
impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        Refused::Store(e)
    }
}

async fn node(url: &str) -> Store {
    Store::open_at(
        &Location::Postgres(url.into()),
        Durability::Full,
        PgOptions::default(),
    )
    .await
    .unwrap()
}

/// A fresh database, upgraded; `None` when there is no cluster (skipped).
async fn upgraded(tag: &str) -> Option<String> {
    let url = pg::fresh_database(tag).await?;
    db_upgrade(&Location::Postgres(url.clone())).await.unwrap();
    Some(url)
}

/// Creates network `name` unless one by that name exists (a test-and-set).
async fn create_unique(store: &Store, name: &str) -> Result<Uuid, Refused> {
    let n = network(name);
    let id = n.id;
    store
        .write(|txn| {
            if txn.state().networks.iter().any(|x| x.name == n.name) {
                return Err(Refused::Taken);
            }
            txn.put(n)?;
            Ok(id)
        })
        .await
}

#[tokio::test]
async fn the_schema_is_upgraded_by_db_upgrade_and_an_unknown_one_is_refused() {
    let Some(url) = pg::fresh_database("schema").await else {
        return;
    };
    let at = Location::Postgres(url.clone());
    let fresh = db_status(&at).await.unwrap();
    assert!(
        matches!(fresh.state, SchemaState::UpgradeNeeded { .. }),
        "{fresh:?}"
    );
    let refused = Store::open_at(&at, Durability::Full, PgOptions::default())
        .await
        .err()
        .expect("serving on a database that was never upgraded");
    assert!(
        refused.to_string().contains("statera db upgrade"),
        "{refused}"
    );

    let upgraded = db_upgrade(&at).await.unwrap();
    assert_eq!(upgraded.state, SchemaState::Current);
    // Idempotent.
    assert_eq!(db_upgrade(&at).await.unwrap().state, SchemaState::Current);
    node(&url).await.close().await;

    // A migration from a newer Statera: status says so, serving and
    // upgrading are refused.
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from the future', true, '\\x00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let status = db_status(&at).await.unwrap();
    assert_eq!(
        status.state,
        SchemaState::Unknown {
            versions: vec![99990101000000]
        }
    );
    let refused = Store::open_at(&at, Durability::Full, PgOptions::default())
        .await
        .err()
        .expect("serving on a schema from the future");
    assert!(refused.to_string().contains("does not know"), "{refused}");
    assert!(db_upgrade(&at).await.is_err());
}

#[tokio::test]
async fn a_write_through_one_node_is_read_through_another_after_sync() {
    let Some(url) = upgraded("coherent").await else {
        return;
    };
    let (a, b) = (node(&url).await, node(&url).await);
    let id = create_unique(&a, "seen-everywhere").await.unwrap();
    b.sync().await.unwrap();
    assert_eq!(
        b.snapshot().networks.get(&id).unwrap().name,
        "seen-everywhere"
    );
    assert_eq!(a.snapshot().revision(), b.snapshot().revision());

    // Deletes travel too.
    b.write(|txn| {
        txn.delete::<Network>(&id);
        Ok::<_, StoreError>(())
    })
    .await
    .unwrap();
    a.sync().await.unwrap();
    assert!(a.snapshot().networks.get(&id).is_none());

    // Without an explicit sync, the follower (NOTIFY, or the poll) brings
    // it within a couple of seconds.
    let id2 = create_unique(&a, "followed").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while b.snapshot().networks.get(&id2).is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "node b never saw node a's write"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_test_and_set_holds_across_nodes_and_no_update_is_lost() {
    let Some(url) = upgraded("serial").await else {
        return;
    };
    let (a, b, c) = (node(&url).await, node(&url).await, node(&url).await);
    // Three nodes race for one name, many times: exactly one wins each.
    for round in 0..10 {
        let name = format!("race-{round}");
        let (ra, rb, rc) = tokio::join!(
            create_unique(&a, &name),
            create_unique(&b, &name),
            create_unique(&c, &name)
        );
        let won = [&ra, &rb, &rc].iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "round {round}: {ra:?} {rb:?} {rc:?}");
        for r in [ra, rb, rc] {
            assert!(matches!(r, Ok(_) | Err(Refused::Taken)), "{r:?}");
        }
    }
    // Read-modify-write of one row from three nodes at once: every
    // increment lands.
    let counter = network("counter");
    let id = counter.id;
    a.write(|txn| txn.put(counter)).await.unwrap();
    let bump = |store: &Store| {
        let store = store.clone();
        async move {
            for _ in 0..30 {
                store
                    .write(|txn| {
                        let mut n = (**txn.state().networks.get(&id).unwrap()).clone();
                        n.mtu += 1;
                        txn.put(n)
                    })
                    .await
                    .unwrap();
            }
        }
    };
    tokio::join!(bump(&a), bump(&b), bump(&c));
    for s in [&a, &b, &c] {
        s.sync().await.unwrap();
        assert_eq!(s.snapshot().networks.get(&id).unwrap().mtu, 1500 + 90);
    }
    // A node opened now loads the same image.
    let d = node(&url).await;
    assert_eq!(d.snapshot().networks.len(), 11);
    assert_eq!(d.snapshot().revision(), a.snapshot().revision());
}

#[tokio::test]
async fn pending_work_on_one_node_wakes_the_controller_of_another() {
    let Some(url) = upgraded("work").await else {
        return;
    };
    let (api, controller) = (node(&url).await, node(&url).await);
    let lb = Uuid::new_v4();
    let woken = tokio::spawn({
        let controller = controller.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(5), controller.work_enqueued())
                .await
                .is_ok()
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    api.write(|txn| txn.enqueue(lb, &[lb])).await.unwrap();
    assert!(
        woken.await.unwrap(),
        "the other node's controller was not woken"
    );
    assert_eq!(controller.snapshot().pending_lbs(), vec![lb]);
    // Sequence numbers stay increasing across nodes.
    controller.write(|txn| txn.enqueue(lb, &[])).await.unwrap();
    api.sync().await.unwrap();
    let seqs: Vec<u64> = api.snapshot().pending_work.iter().map(|w| w.seq).collect();
    assert_eq!(seqs.len(), 2);
    assert!(seqs[0] < seqs[1], "{seqs:?}");
}

#[tokio::test]
async fn a_node_behind_a_pruned_log_reloads_every_table() {
    let Some(url) = upgraded("reload").await else {
        return;
    };
    let a = node(&url).await;
    // b follows only when asked (no NOTIFY listener, no poll), so that it
    // is behind when the log is cut.
    let b = Store::open_at(
        &Location::Postgres(url.clone()),
        Durability::Full,
        PgOptions {
            follow: false,
            ..PgOptions::default()
        },
    )
    .await
    .unwrap();
    let kept = create_unique(&a, "kept").await.unwrap();
    let gone = create_unique(&a, "gone").await.unwrap();
    a.write(|txn| {
        txn.delete::<Network>(&gone);
        Ok::<_, StoreError>(())
    })
    .await
    .unwrap();
    // The log entries b would need are gone (as pruning leaves them).
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let head: i64 = sqlx::query_scalar("SELECT rev FROM statera_head")
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM statera_log WHERE rev < $1")
        .bind(head)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    b.sync().await.unwrap();
    let s = b.snapshot();
    assert!(s.networks.get(&kept).is_some());
    assert!(s.networks.get(&gone).is_none());
    assert_eq!(s.revision(), head as u64);
    // And it goes on from there with the log.
    let later = create_unique(&a, "later").await.unwrap();
    b.sync().await.unwrap();
    assert!(b.snapshot().networks.get(&later).is_some());
}

#[tokio::test]
async fn two_controllers_never_adopt_the_same_dead_one() {
    let Some(url) = upgraded("dead").await else {
        return;
    };
    let (a, b) = (node(&url).await, node(&url).await);
    a.heartbeat("gone").await.unwrap();
    a.heartbeat("a").await.unwrap();
    b.heartbeat("b").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    a.heartbeat("a").await.unwrap();
    b.heartbeat("b").await.unwrap();
    let timeout = Duration::from_secs(1);
    let live = a.live_controllers(timeout).await.unwrap();
    assert_eq!(live, vec!["a".to_string(), "b".to_string()]);
    // a locks the dead row; b, at the same time, skips it.
    let held = a.dead_controllers("a", timeout).await.unwrap();
    assert_eq!(held.ids, vec!["gone".to_string()]);
    let skipped = b.dead_controllers("b", timeout).await.unwrap();
    assert!(skipped.ids.is_empty(), "{:?}", skipped.ids);
    drop(skipped);
    held.forget().await.unwrap();
    let again = b.dead_controllers("b", timeout).await.unwrap();
    assert!(again.ids.is_empty(), "forgotten, yet {:?}", again.ids);
}

#[tokio::test]
async fn a_database_that_went_away_is_unavailable_not_an_error() {
    let Some(url) = upgraded("away").await else {
        return;
    };
    let a = node(&url).await;
    create_unique(&a, "before").await.unwrap();
    // Every connection of the database ended by the server (as a restart
    // does), and new ones refused while it is "away".
    let pool = sqlx::PgPool::connect(&pg::with_database(&url, "postgres"))
        .await
        .unwrap();
    let db = url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    sqlx::query(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&db)
        .execute(&pool)
        .await
        .unwrap();
    let refused = create_unique(&a, "during").await;
    match refused {
        Err(Refused::Store(e)) => assert!(e.is_unavailable(), "{e}"),
        other => panic!("a write while the database is away: {other:?}"),
    }
    assert!(a.sync().await.unwrap_err().is_unavailable());
    sqlx::query(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    // Back: writes go through, and nothing of the refused one is there.
    create_unique(&a, "after").await.unwrap();
    let names: Vec<String> = a
        .snapshot()
        .networks
        .iter()
        .map(|n| n.name.clone())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(!names.contains(&"during".to_string()));
}
