//! A full disk: writes the database refuses fail with a typed error and
//! change nothing, memory stays what the database holds, and once space
//! returns the same store takes writes again, durably.
//!
//! Needs root (it mounts a small tmpfs as the data directory): skipped with
//! the reason on a developer's machine, a failure when `CI=true`.

#[path = "support/objects.rs"]
mod objects;
#[path = "support/tmpfs.rs"]
mod tmpfs;

use statera_model::*;
use statera_store::{Durability, Store, StoreError};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tmpfs::{Tmpfs, skip_or_fail};

fn network(name: String) -> Network {
    Network {
        // Rows of ~1 KiB fill the disk in a bounded number of writes.
        description: "x".repeat(900),
        ..objects::network(&name)
    }
}

fn names(store: &Store) -> BTreeSet<String> {
    store
        .snapshot()
        .networks
        .iter()
        .map(|n| n.name.clone())
        .collect()
}

async fn create(store: &Store, name: String) -> Result<(), StoreError> {
    store.write(|txn| txn.put(network(name))).await
}

#[tokio::test]
async fn a_full_disk_refuses_writes_then_takes_them_again_and_nothing_acknowledged_is_lost() {
    let tmpfs = match Tmpfs::mount("4m") {
        Ok(t) => t,
        Err(e) => return skip_or_fail(&e),
    };
    let started = Instant::now();
    let store = Store::open(&tmpfs.dir, Durability::Full).await.unwrap();
    let mut acked = BTreeSet::new();
    for i in 0..20 {
        let name = format!("before-{i}");
        create(&store, name.clone()).await.unwrap();
        acked.insert(name);
    }

    // The disk fills; a burst of writes meets it.
    let filler = tmpfs.fill();
    let mut failures = 0;
    for i in 0..5000 {
        let name = format!("full-{i}");
        match create(&store, name.clone()).await {
            Ok(()) => {
                acked.insert(name);
            }
            Err(e) => {
                assert!(
                    e.is_unavailable() && e.is_disk_full(),
                    "a refused commit is a typed disk-full error, got {e:?}"
                );
                failures += 1;
                if failures == 20 {
                    break;
                }
            }
        }
    }
    assert_eq!(failures, 20, "the burst met the full disk");
    assert_eq!(
        names(&store),
        acked,
        "memory holds exactly the acknowledged writes"
    );

    // Space returns: the same store takes writes again.
    std::fs::remove_file(&filler).unwrap();
    for i in 0..50 {
        let name = format!("after-{i}");
        create(&store, name.clone())
            .await
            .unwrap_or_else(|e| panic!("write {i} after space returned: {e}"));
        acked.insert(name);
    }
    let in_memory = names(&store);
    assert_eq!(in_memory, acked);
    store.close().await;
    drop(store);

    // What memory held is what the database holds.
    let reopened = Store::open(&tmpfs.dir, Durability::Full).await.unwrap();
    assert_eq!(
        names(&reopened),
        in_memory,
        "after a reopen the database holds every acknowledged write, and only those"
    );
    reopened.close().await;
    assert!(started.elapsed() < Duration::from_secs(60));
}
