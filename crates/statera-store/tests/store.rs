//! The store's promises: one transaction per write, nothing visible or
//! durable from a failed write, everything back after reopening, and the
//! parent index kept right.

#[path = "support/objects.rs"]
mod objects;
use objects::network;
use statera_model::*;
use statera_store::{Durability, PendingWork, Store, StoreError};
use uuid::Uuid;

fn subnet(network_id: Uuid, cidr: &str) -> Subnet {
    Subnet {
        id: Uuid::new_v4(),
        project_id: "p".into(),
        network_id,
        name: cidr.into(),
        description: String::new(),
        cidr: cidr.parse().unwrap(),
        gateway_ip: None,
        allocation_pools: vec![],
        enable_dhcp: false,
        dns_nameservers: vec![],
        host_routes: vec![],
        tags: vec![],
        created_at: now(),
        updated_at: None,
    }
}

#[derive(Debug)]
struct Refused;
impl From<StoreError> for Refused {
    fn from(_: StoreError) -> Self {
        Refused
    }
}

#[tokio::test]
async fn committed_writes_survive_reopen_and_failed_ones_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let n = network("kept");
    let sub = subnet(n.id, "10.0.0.0/24");
    {
        let store = Store::open(dir.path(), Durability::Full).await.unwrap();
        let (n2, s2) = (n.clone(), sub.clone());
        store
            .write(|txn| {
                txn.put(n2)?;
                txn.put(s2)?;
                txn.enqueue(Uuid::nil(), &[n.id])
            })
            .await
            .unwrap();
        // A write whose closure fails after putting rows changes nothing.
        let lost = network("lost");
        let r: Result<(), Refused> = store
            .write(|txn| {
                txn.put(lost)?;
                Err(Refused)
            })
            .await;
        assert!(r.is_err());
        let s = store.snapshot();
        assert_eq!(s.networks.len(), 1, "a failed write must not be visible");
        store.close().await;
    }
    let store = Store::open(dir.path(), Durability::Full).await.unwrap();
    let s = store.snapshot();
    assert_eq!(s.networks.len(), 1);
    assert_eq!(s.networks.get(&n.id).unwrap().name, "kept");
    assert_eq!(
        s.subnets.children(n.id).count(),
        1,
        "parent index rebuilt on load"
    );
    let work: Vec<&PendingWork> = s.pending_work.iter().map(|w| &**w).collect();
    assert_eq!(work.len(), 1);
    assert_eq!(work[0].subjects, vec![n.id]);
    // Sequence numbers continue after a reopen.
    store
        .write(|txn| txn.enqueue(Uuid::nil(), &[]))
        .await
        .unwrap();
    let seqs: Vec<u64> = store
        .snapshot()
        .pending_work
        .iter()
        .map(|w| w.seq)
        .collect();
    assert_eq!(seqs.len(), 2);
    assert!(seqs[1] > seqs[0]);
}

#[tokio::test]
async fn snapshots_are_isolated_from_later_writes_and_index_follows_moves() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Durability::Normal).await.unwrap();
    let a = network("a");
    let b = network("b");
    let mut sub = subnet(a.id, "10.1.0.0/24");
    let (a2, b2, s2) = (a.clone(), b.clone(), sub.clone());
    store
        .write(|txn| {
            txn.put(a2)?;
            txn.put(b2)?;
            txn.put(s2)
        })
        .await
        .unwrap();
    let before = store.snapshot();
    sub.network_id = b.id;
    let moved = sub.clone();
    store.write(|txn| txn.put(moved)).await.unwrap();
    let after = store.snapshot();
    assert_eq!(
        before.subnets.children(a.id).count(),
        1,
        "an old snapshot never changes"
    );
    assert_eq!(after.subnets.children(a.id).count(), 0);
    assert_eq!(after.subnets.children(b.id).count(), 1);
    store
        .write(|txn| {
            txn.delete::<Subnet>(&sub.id);
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    assert_eq!(store.snapshot().subnets.children(b.id).count(), 0);
    assert!(store.snapshot().subnets.is_empty());
}

#[tokio::test]
async fn a_write_whose_caller_gives_up_is_in_memory_exactly_when_it_is_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Durability::Full).await.unwrap();
    let rows: Vec<Network> = (0..200).map(|i| network(&format!("n{i}"))).collect();
    // The caller stops waiting as soon as the write has to wait (for its commit).
    let abandoned = tokio::time::timeout(
        std::time::Duration::ZERO,
        store.write(|txn| {
            for n in rows {
                txn.put(n)?;
            }
            Ok::<_, StoreError>(())
        }),
    )
    .await;
    assert!(
        abandoned.is_err(),
        "the caller gave up before the commit ended"
    );
    // The next writer waits for whatever the abandoned one left to finish.
    store.write(|_| Ok::<_, StoreError>(())).await.unwrap();
    let in_memory = store.snapshot().networks.len();
    store.close().await;
    let reopened = Store::open(dir.path(), Durability::Full).await.unwrap();
    assert_eq!(reopened.snapshot().networks.len(), in_memory);
    assert_eq!(in_memory, 200, "the commit ran to its end");
}

#[tokio::test]
async fn the_data_dir_is_0700_and_the_database_files_0600() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // A fresh data dir (and its missing parent).
    let dir = tmp.path().join("parent/data");
    let store = Store::open(&dir, Durability::Normal).await.unwrap();
    store.write(|txn| txn.put(network("n"))).await.unwrap();
    assert_eq!(mode(&dir), 0o700);
    for f in ["statera.sqlite", "statera.sqlite-wal", "statera.sqlite-shm"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    drop(store);
    // Files an older version left world-readable are tightened at open.
    for f in ["statera.sqlite", "statera.sqlite-wal", "statera.sqlite-shm"] {
        let p = dir.join(f);
        if p.exists() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let store = Store::open(&dir, Durability::Normal).await.unwrap();
    assert_eq!(store.snapshot().networks.len(), 1);
    for f in ["statera.sqlite", "statera.sqlite-wal", "statera.sqlite-shm"] {
        let p = dir.join(f);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{f}");
        }
    }
}
