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
//! `synchronous=FULL` by default). A commit the database refuses (disk full)
//! is [`StoreError::WriteFailed`]: the connection it ran on is closed (so no
//! transaction is left open on it) and the next write runs on a fresh one,
//! so the store takes writes again as soon as the disk does.
//!
//! The ordered record of pending work ([`PendingWork`]) is written in the
//! same transaction as the change that creates it, so the controller can
//! never miss work after a crash.

mod state;

pub use state::{PendingWork, Record, State, Table};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Row, Sqlite, SqliteConnection, SqlitePool};
use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use tokio::sync::{Mutex, Notify, OwnedMutexGuard};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    /// The database did not take a write: nothing changed, in memory or on
    /// disk, and the same write may be retried once the database accepts
    /// writes again (for instance when disk space returns).
    #[error("the database did not take the write ({reason}); nothing was changed")]
    WriteFailed {
        reason: String,
        /// The disk (or the file system under the data directory) is full.
        disk_full: bool,
    },
    /// An earlier commit failed in a way that left its outcome unknown, and
    /// the database cannot be read back yet to settle it: no write is
    /// accepted until it can (the next write tries again).
    #[error(
        "the database cannot be read back to settle an earlier failed commit ({reason}); no write is accepted until it can"
    )]
    Unsettled { reason: String },
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

impl StoreError {
    /// The database cannot take writes for now (disk full, I/O failing):
    /// nothing was changed and the caller may retry later. Callers answer
    /// "service unavailable", not "internal error".
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::WriteFailed { .. } | StoreError::Unsettled { .. }
        )
    }

    /// The write failed because the disk is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(
            self,
            StoreError::WriteFailed {
                disk_full: true,
                ..
            }
        )
    }

    fn write_failed(e: sqlx::Error) -> StoreError {
        StoreError::WriteFailed {
            disk_full: is_disk_full(&e),
            reason: e.to_string(),
        }
    }
}

/// SQLITE_FULL (13, whatever its extended bits), or ENOSPC from the file system.
fn is_disk_full(e: &sqlx::Error) -> bool {
    const SQLITE_FULL: i64 = 13;
    match e {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|c| c.parse::<i64>().ok())
            .is_some_and(|c| c & 0xff == SQLITE_FULL),
        sqlx::Error::Io(io) => io.kind() == std::io::ErrorKind::StorageFull,
        _ => false,
    }
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
    inner: Arc<Inner>,
}

/// What a write's commit task needs, shared with it.
struct Inner {
    pool: SqlitePool,
    state: ArcSwap<State>,
    /// Serialises writers; holds the write whose commit failed with an
    /// unknown outcome, until the database is read back.
    writer: Arc<Mutex<Option<Unsettled>>>,
    work: Notify,
    /// Bumped after every committed change: followers of the whole state
    /// (the network reconciler) wait on it.
    changes: tokio::sync::watch::Sender<u64>,
}

/// A transaction whose commit failed and whose effect on the database has
/// not been read back yet.
struct Unsettled {
    changes: Vec<Change>,
    state: State,
    enqueued: bool,
}

impl Store {
    /// Open (creating if needed) the store in `dir` and load its image.
    ///
    /// The database holds password hashes: a data directory made here is
    /// 0700, and the database files (`statera.sqlite`, `-wal`, `-shm`) are
    /// made, or set at every open, 0600.
    pub async fn open(dir: &Path, durability: Durability) -> Result<Store, StoreError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let db = dir.join("statera.sqlite");
        // Made 0600 before SQLite opens it: SQLite gives the -wal and -shm
        // files the database file's mode.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&db)?;
        let private = |suffix: &str| -> std::io::Result<()> {
            let path = dir.join(format!("statera.sqlite{suffix}"));
            match std::fs::metadata(&path) {
                Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                }
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        };
        for suffix in ["", "-wal", "-shm"] {
            private(suffix)?;
        }
        let opts = SqliteConnectOptions::new()
            .filename(&db)
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
        // The -wal/-shm files SQLite made now, should it not copy the mode.
        for suffix in ["-wal", "-shm"] {
            private(suffix)?;
        }
        let state = load(&pool).await?;
        Ok(Store {
            inner: Arc::new(Inner {
                pool,
                state: ArcSwap::from_pointee(state),
                writer: Arc::new(Mutex::new(None)),
                work: Notify::new(),
                changes: tokio::sync::watch::Sender::new(0),
            }),
        })
    }

    /// An immutable snapshot of everything, O(1) to take.
    pub fn snapshot(&self) -> Arc<State> {
        self.inner.state.load_full()
    }

    /// Run `f` as one transaction: its changes are all committed or none.
    ///
    /// Writers are serialised, so what `f` checks against [`Txn::state`] still
    /// holds when its changes land (test-and-set without SQL locks).
    ///
    /// The new state is published only after the commit succeeded, and the
    /// commit runs to its end even if the caller stops waiting (a client that
    /// hangs up), so memory and database never differ. When the database
    /// refuses the commit (disk full, I/O error) the answer is
    /// [`StoreError::WriteFailed`] and nothing changed; the store takes
    /// writes again as soon as the database does.
    pub async fn write<T, E>(&self, f: impl FnOnce(&mut Txn) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut writer = self.inner.writer.clone().lock_owned().await;
        if writer.is_some() {
            // In a task of its own too: an earlier failed commit is settled
            // whole, or stays unsettled, whatever the caller does.
            let inner = self.inner.clone();
            let (guard, settled) = tokio::spawn(async move {
                let unsettled = writer.take().expect("checked above");
                let settled = inner.settle(&mut writer, unsettled).await;
                (writer, settled)
            })
            .await
            .map_err(|e| {
                E::from(StoreError::Unsettled {
                    reason: format!("the settling task ended abnormally: {e}"),
                })
            })?;
            writer = guard;
            settled.map_err(E::from)?;
        }
        let mut txn = Txn {
            state: (**self.inner.state.load()).clone(),
            changes: Vec::new(),
            enqueued: false,
        };
        let out = f(&mut txn)?;
        if txn.changes.is_empty() {
            return Ok(out);
        }
        let inner = self.inner.clone();
        let committed = tokio::spawn(async move { inner.commit_and_publish(writer, txn).await })
            .await
            .unwrap_or_else(|e| {
                Err(StoreError::Unsettled {
                    reason: format!("the commit task ended abnormally: {e}"),
                })
            });
        committed.map_err(E::from)?;
        Ok(out)
    }

    /// A receiver that sees a new value after every committed change.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Resolves when work may have been enqueued since the last call.
    pub async fn work_enqueued(&self) {
        self.inner.work.notified().await
    }

    pub async fn close(&self) {
        self.inner.pool.close().await
    }
}

impl Inner {
    fn publish(&self, state: State, enqueued: bool) {
        self.state.store(Arc::new(state));
        if enqueued {
            self.work.notify_one();
        }
        self.changes.send_modify(|n| *n += 1);
    }

    /// Commits `txn` and publishes its state; runs in its own task, holding
    /// the writer lock, so it is never abandoned half-way.
    async fn commit_and_publish(
        &self,
        mut writer: OwnedMutexGuard<Option<Unsettled>>,
        txn: Txn,
    ) -> Result<(), StoreError> {
        let Err(error) = self.commit(&txn.changes).await else {
            self.publish(txn.state, txn.enqueued);
            return Ok(());
        };
        tracing::error!(%error, "the database refused a commit; nothing is published");
        let unsettled = Unsettled {
            changes: txn.changes,
            state: txn.state,
            enqueued: txn.enqueued,
        };
        // SQLite rolls back a transaction whose COMMIT failed, but a failed
        // commit is not always a transaction that did not happen (an fsync
        // error after the log was written): the database, read back, says.
        match self.settle(&mut writer, unsettled).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(error),
            Err(e) => Err(e),
        }
    }

    /// Decides whether `unsettled` is in the database: publishes it if it
    /// is (`Ok(true)`), forgets it if not (`Ok(false)`). When the database
    /// cannot be read it stays in `writer` and the answer is
    /// [`StoreError::Unsettled`].
    async fn settle(
        &self,
        writer: &mut Option<Unsettled>,
        unsettled: Unsettled,
    ) -> Result<bool, StoreError> {
        match self.is_committed(&unsettled.changes).await {
            Ok(true) => {
                tracing::warn!("a commit that reported failure is in the database: publishing it");
                self.publish(unsettled.state, unsettled.enqueued);
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => {
                *writer = Some(unsettled);
                Err(StoreError::Unsettled {
                    reason: e.to_string(),
                })
            }
        }
    }

    /// Whether every row `changes` touched reads as they left it.
    async fn is_committed(&self, changes: &[Change]) -> Result<bool, sqlx::Error> {
        let mut last: BTreeMap<(&str, &str), Option<&str>> = BTreeMap::new();
        for c in changes {
            last.insert((c.table, &c.id), c.doc.as_deref());
        }
        let mut conn = self.pool.acquire().await?;
        let result = async {
            for ((table, id), doc) in last {
                let sql = format!("SELECT doc FROM {table} WHERE id = ?1");
                let found: Option<String> = sqlx::query_scalar(&sql)
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?;
                if found.as_deref() != doc {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        .await;
        if result.is_err() {
            discard(conn).await;
        }
        result
    }

    /// One SQL transaction with every change. On any failure the connection
    /// is closed, whatever state the failure left it (and sqlx's record of
    /// it) in; the pool opens a fresh one for the next write.
    async fn commit(&self, changes: &[Change]) -> Result<(), StoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(StoreError::write_failed)?;
        let result = commit_on(&mut conn, changes).await;
        if result.is_err() {
            discard(conn).await;
        }
        result.map_err(StoreError::write_failed)
    }
}

async fn commit_on(conn: &mut SqliteConnection, changes: &[Change]) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
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
    tx.commit().await
}

/// Closes a connection a failure may have left inside a transaction. Left
/// in the pool, the next `BEGIN` would fail, or (sqlx counting a transaction
/// SQLite already rolled back) become a `SAVEPOINT` inside a transaction
/// that never commits: writes answered as committed that never reach the
/// disk.
async fn discard(conn: PoolConnection<Sqlite>) {
    if let Err(e) = conn.close().await {
        tracing::warn!(error = %e, "closing a failed database connection");
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
    load_table::<identity::Domain>(pool, &mut s).await?;
    load_table::<identity::Project>(pool, &mut s).await?;
    load_table::<identity::User>(pool, &mut s).await?;
    load_table::<identity::Group>(pool, &mut s).await?;
    load_table::<identity::Role>(pool, &mut s).await?;
    load_table::<identity::RoleAssignment>(pool, &mut s).await?;
    load_table::<identity::ApplicationCredential>(pool, &mut s).await?;
    load_table::<identity::CatalogService>(pool, &mut s).await?;
    load_table::<identity::CatalogEndpoint>(pool, &mut s).await?;
    load_table::<identity::Region>(pool, &mut s).await?;
    load_table::<identity::Revocation>(pool, &mut s).await?;
    load_table::<PendingWork>(pool, &mut s).await?;
    s.next_seq = s.pending_work.iter().map(|w| w.seq + 1).max().unwrap_or(1);
    Ok(s)
}
