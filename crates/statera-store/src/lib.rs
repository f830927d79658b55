//! The store: the only crate that speaks SQL.
//!
//! Every object lives in a table of `(id, doc)` rows (the doc is the object's
//! JSON as `statera-model` serialises it). The store keeps an in-memory image
//! of all tables ([`State`], persistent maps so a snapshot is O(1) to take)
//! and serves every read from it; SQL is the durable record it is rebuilt
//! from at start.
//!
//! Writes are serialised: [`Store::write`] runs a closure against a private
//! copy of the current state, the closure validates and records its changes
//! in a [`Txn`], the changes are committed to SQL in one transaction, and only
//! then is the new state published. A failed closure or a failed commit
//! changes nothing; a crash after the commit loses nothing (SQLite WAL with
//! `synchronous=FULL` by default).
//!
//! The ordered record of pending work ([`PendingWork`]) is written in the
//! same transaction as the change that creates it, so the controller can
//! never miss work after a crash.

mod state;

pub use state::{PendingWork, Record, State, Table};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use tokio::sync::{Mutex, Notify};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row {table}/{id}: {reason}")]
    Corrupt {
        table: &'static str,
        id: String,
        reason: String,
    },
    #[error("cannot encode {table}/{id}: {reason}")]
    Encode {
        table: &'static str,
        id: String,
        reason: String,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// fsync on every commit: survives power loss.
    #[default]
    Full,
    /// fsync at checkpoints only: survives a process crash, may lose the last
    /// commits on power loss.
    Normal,
}

/// Cumulative traffic counters of one listener, as the controller last
/// recorded them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerStats {
    pub listener_id: Uuid,
    pub loadbalancer_id: Uuid,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub active_connections: u64,
    pub total_connections: u64,
    pub request_errors: u64,
}

/// One change to one row, recorded by a [`Txn`].
struct Change {
    table: &'static str,
    id: String,
    doc: Option<String>,
}

/// A write in progress: a private copy of the state plus the changes made to it.
pub struct Txn {
    state: State,
    changes: Vec<Change>,
    enqueued: bool,
}

impl Txn {
    /// The state as this transaction sees it (its own changes included).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Insert or replace a row.
    pub fn put<R: Record>(&mut self, row: R) -> Result<(), StoreError> {
        let id = row.key().to_string();
        let doc = serde_json::to_string(&row).map_err(|e| StoreError::Encode {
            table: R::TABLE,
            id: id.clone(),
            reason: e.to_string(),
        })?;
        R::table_mut(&mut self.state).insert(row);
        self.changes.push(Change {
            table: R::TABLE,
            id,
            doc: Some(doc),
        });
        Ok(())
    }

    /// Remove a row (a no-op if it is absent).
    pub fn delete<R: Record>(&mut self, key: &R::Key) {
        if R::table_mut(&mut self.state).remove(key).is_some() {
            self.changes.push(Change {
                table: R::TABLE,
                id: key.to_string(),
                doc: None,
            });
        }
    }

    /// Record that the controller owes load balancer `lb_id` work about `subjects`.
    pub fn enqueue(&mut self, lb_id: Uuid, subjects: &[Uuid]) -> Result<(), StoreError> {
        let seq = self.state.next_seq;
        self.state.next_seq += 1;
        self.enqueued = true;
        self.put(PendingWork {
            seq,
            lb_id,
            subjects: subjects.to_vec(),
        })
    }

    /// Whether this transaction changed anything.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

pub struct Store {
    pool: SqlitePool,
    state: ArcSwap<State>,
    writer: Mutex<()>,
    work: Notify,
    /// Bumped after every committed change: followers of the whole state
    /// (the network reconciler) wait on it.
    changes: tokio::sync::watch::Sender<u64>,
}

impl Store {
    /// Open (creating if needed) the store in `dir` and load its image.
    pub async fn open(dir: &Path, durability: Durability) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)?;
        let opts = SqliteConnectOptions::new()
            .filename(dir.join("statera.sqlite"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match durability {
                Durability::Full => SqliteSynchronous::Full,
                Durability::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(std::time::Duration::from_secs(10));
        // One connection: the store is the database's only writer, and reads
        // are served from memory.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let state = load(&pool).await?;
        Ok(Store {
            pool,
            state: ArcSwap::from_pointee(state),
            writer: Mutex::new(()),
            work: Notify::new(),
            changes: tokio::sync::watch::Sender::new(0),
        })
    }

    /// An immutable snapshot of everything, O(1) to take.
    pub fn snapshot(&self) -> Arc<State> {
        self.state.load_full()
    }

    /// Run `f` as one transaction: its changes are all committed or none.
    ///
    /// Writers are serialised, so what `f` checks against [`Txn::state`] still
    /// holds when its changes land (test-and-set without SQL locks).
    pub async fn write<T, E>(&self, f: impl FnOnce(&mut Txn) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let _writer = self.writer.lock().await;
        let mut txn = Txn {
            state: (**self.state.load()).clone(),
            changes: Vec::new(),
            enqueued: false,
        };
        let out = f(&mut txn)?;
        if txn.changes.is_empty() {
            return Ok(out);
        }
        self.commit(&txn.changes).await.map_err(E::from)?;
        self.state.store(Arc::new(txn.state));
        if txn.enqueued {
            self.work.notify_one();
        }
        self.changes.send_modify(|n| *n += 1);
        Ok(out)
    }

    /// A receiver that sees a new value after every committed change.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Resolves when work may have been enqueued since the last call.
    pub async fn work_enqueued(&self) {
        self.work.notified().await
    }

    async fn commit(&self, changes: &[Change]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for c in changes {
            match &c.doc {
                Some(doc) => {
                    let sql = format!(
                        "INSERT INTO {} (id, doc) VALUES (?1, ?2) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
                        c.table
                    );
                    sqlx::query(&sql)
                        .bind(&c.id)
                        .bind(doc)
                        .execute(&mut *tx)
                        .await?;
                }
                None => {
                    let sql = format!("DELETE FROM {} WHERE id = ?1", c.table);
                    sqlx::query(&sql).bind(&c.id).execute(&mut *tx).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await
    }
}

async fn load_table<R: Record>(pool: &SqlitePool, state: &mut State) -> Result<(), StoreError> {
    let rows = sqlx::query(&format!("SELECT id, doc FROM {}", R::TABLE))
        .fetch_all(pool)
        .await?;
    for row in rows {
        let id: String = row.try_get("id")?;
        let doc: String = row.try_get("doc")?;
        let value: R = serde_json::from_str(&doc).map_err(|e| StoreError::Corrupt {
            table: R::TABLE,
            id: id.clone(),
            reason: e.to_string(),
        })?;
        if R::Key::from_str(&id).ok().as_ref() != Some(&value.key()) {
            return Err(StoreError::Corrupt {
                table: R::TABLE,
                id,
                reason: "id does not match the document".into(),
            });
        }
        R::table_mut(state).insert(value);
    }
    Ok(())
}

async fn load(pool: &SqlitePool) -> Result<State, StoreError> {
    use statera_model::*;
    let mut s = State::default();
    load_table::<LoadBalancer>(pool, &mut s).await?;
    load_table::<Listener>(pool, &mut s).await?;
    load_table::<Pool>(pool, &mut s).await?;
    load_table::<Member>(pool, &mut s).await?;
    load_table::<HealthMonitor>(pool, &mut s).await?;
    load_table::<L7Policy>(pool, &mut s).await?;
    load_table::<L7Rule>(pool, &mut s).await?;
    load_table::<Quota>(pool, &mut s).await?;
    load_table::<Flavor>(pool, &mut s).await?;
    load_table::<FlavorProfile>(pool, &mut s).await?;
    load_table::<AvailabilityZone>(pool, &mut s).await?;
    load_table::<AvailabilityZoneProfile>(pool, &mut s).await?;
    load_table::<Amphora>(pool, &mut s).await?;
    load_table::<Network>(pool, &mut s).await?;
    load_table::<Subnet>(pool, &mut s).await?;
    load_table::<Port>(pool, &mut s).await?;
    load_table::<Router>(pool, &mut s).await?;
    load_table::<FloatingIp>(pool, &mut s).await?;
    load_table::<SecurityGroup>(pool, &mut s).await?;
    load_table::<SecurityGroupRule>(pool, &mut s).await?;
    load_table::<ListenerStats>(pool, &mut s).await?;
    load_table::<PendingWork>(pool, &mut s).await?;
    s.next_seq = s.pending_work.iter().map(|w| w.seq + 1).max().unwrap_or(1);
    Ok(s)
}
