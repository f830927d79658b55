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
//!
//! The same store runs on PostgreSQL (`postgres.rs`), where several nodes
//! share one database: every commit takes the one-row `statera_head` lock,
//! brings the node's image up to the database's revision from the change
//! log (`statera_log`) first, and appends its own changes to the log under
//! the next revision, so the test-and-set of a write holds across nodes.
//! Reads catch up the same way ([`Store::sync`]), woken by `NOTIFY` and a
//! poll.

mod postgres;
mod schema;
mod state;

pub use postgres::{DeadControllers, PgOptions};
pub use schema::{SchemaState, SchemaStatus, status as db_status, upgrade as db_upgrade};
use state::with_records;
pub use state::{Claim, PendingWork, Record, State, Table};

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
    /// The database cannot be reached (PostgreSQL down, restarting, or the
    /// network to it lost): nothing was changed, and the request may be
    /// retried once it is back.
    #[error("the database is unavailable ({reason}); nothing was changed")]
    Unavailable { reason: String },
    /// The database's schema is not the one this binary knows: migrations
    /// are pending (`statera db upgrade`) or the database holds migrations
    /// of a newer Statera.
    #[error("{0}")]
    Schema(String),
    /// `--store` names no backend this binary speaks.
    #[error("{0}")]
    Location(String),
}

impl StoreError {
    /// The database cannot take writes for now (disk full, I/O failing):
    /// nothing was changed and the caller may retry later. Callers answer
    /// "service unavailable", not "internal error".
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::WriteFailed { .. }
                | StoreError::Unsettled { .. }
                | StoreError::Unavailable { .. }
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

    pub(crate) fn unavailable(e: impl std::fmt::Display) -> StoreError {
        StoreError::Unavailable {
            reason: e.to_string(),
        }
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
    /// The data planes' own cumulative counters these totals have taken in
    /// so far, by epoch, the latest first (the last few epochs: reports of
    /// an older one may still come after a newer one's, as when a handover
    /// is called off and the old process serves on): a report's counters
    /// add what they have beyond its epoch's (all of them under an epoch
    /// not here). Kept with the totals, so a restarted controller neither
    /// adds them twice nor loses what was served meanwhile.
    #[serde(default)]
    pub seen: [SeenCounters; SEEN_EPOCHS],
}

/// How many counter epochs a listener's totals remember.
pub const SEEN_EPOCHS: usize = 4;

/// A data plane's cumulative counters of one listener, as last taken in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenCounters {
    pub epoch: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub total_connections: u64,
    pub request_errors: u64,
}

/// One change to one row, recorded by a [`Txn`].
pub(crate) struct Change {
    pub(crate) table: &'static str,
    pub(crate) id: String,
    pub(crate) doc: Option<String>,
}

/// A write in progress: a private copy of the state plus the changes made to it.
pub struct Txn {
    pub(crate) state: State,
    pub(crate) changes: Vec<Change>,
    pub(crate) enqueued: bool,
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
        self.enqueue_work(lb_id, subjects, false)
    }

    /// Record that the controller owes load balancer `lb_id` a failover:
    /// the work of [`Txn::enqueue`], moving it off what serves it.
    pub fn enqueue_failover(&mut self, lb_id: Uuid) -> Result<(), StoreError> {
        self.enqueue_work(lb_id, &[lb_id], true)
    }

    fn enqueue_work(
        &mut self,
        lb_id: Uuid,
        subjects: &[Uuid],
        failover: bool,
    ) -> Result<(), StoreError> {
        let seq = self.state.next_seq;
        self.state.next_seq += 1;
        self.enqueued = true;
        self.put(PendingWork {
            seq,
            lb_id,
            subjects: subjects.to_vec(),
            failover,
        })
    }

    /// Whether this transaction changed anything.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// A handle on the store; clones share it.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

/// Where the store keeps its rows.
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(sqlx::PgPool),
}

/// What `--store` names: SQLite in the data directory (the default) or a
/// PostgreSQL database several nodes may share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Location {
    /// `store` as `--store` gives it (`postgres://…`, `postgresql://…`,
    /// `sqlite:DIR`), or SQLite in `data_dir` when absent.
    pub fn parse(store: Option<&str>, data_dir: &Path) -> Result<Location, StoreError> {
        match store.map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(Location::Sqlite(data_dir.to_path_buf())),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Location::Postgres(url.to_string()))
            }
            Some(url) if url.starts_with("sqlite:") => Ok(Location::Sqlite(
                url.trim_start_matches("sqlite:")
                    .trim_start_matches("//")
                    .into(),
            )),
            Some(other) => Err(StoreError::Location(format!(
                "--store '{}' names no backend: use postgres://USER@HOST:PORT/DATABASE, or leave it out for SQLite in the data directory",
                redact(other)
            ))),
        }
    }

    /// The location as a log line may show it (a password hidden).
    pub fn display(&self) -> String {
        match self {
            Location::Sqlite(dir) => format!("sqlite in {}", dir.display()),
            Location::Postgres(url) => redact(url),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Location::Postgres(_))
    }
}

/// `url` with its password (in the user part or a `password=` parameter)
/// replaced.
fn redact(url: &str) -> String {
    let url = redact_user(url);
    match url.find("password=") {
        Some(i) => {
            let rest = &url[i + "password=".len()..];
            let end = rest
                .find('&')
                .map_or(url.len(), |j| i + "password=".len() + j);
            format!("{}password=***{}", &url[..i], &url[end..])
        }
        None => url,
    }
}

fn redact_user(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((auth, host)) => (auth, host),
        None => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// What a write's commit task needs, shared with it.
pub(crate) struct Inner {
    pub(crate) backend: Backend,
    state: ArcSwap<State>,
    /// Orders publications: an older image never replaces a newer one.
    publishing: std::sync::Mutex<()>,
    /// One catch-up from the database at a time (PostgreSQL).
    pub(crate) syncing: Mutex<()>,
    /// Syncs begun and the latest one finished (PostgreSQL): callers that
    /// arrive during a sync wait for the next, not for their own.
    pub(crate) sync_begun: std::sync::atomic::AtomicU64,
    pub(crate) sync_done: std::sync::atomic::AtomicU64,
    /// Serialises writers; holds the write whose commit failed with an
    /// unknown outcome, until the database is read back.
    writer: Arc<Mutex<Option<Unsettled>>>,
    work: Notify,
    /// Bumped after every committed change: followers of the whole state
    /// (the network reconciler) wait on it.
    changes: tokio::sync::watch::Sender<u64>,
}

impl Inner {
    fn new(backend: Backend, state: State) -> Inner {
        Inner {
            backend,
            state: ArcSwap::from_pointee(state),
            publishing: std::sync::Mutex::new(()),
            syncing: Mutex::new(()),
            sync_begun: Default::default(),
            sync_done: Default::default(),
            writer: Arc::new(Mutex::new(None)),
            work: Notify::new(),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }

    fn sqlite(&self) -> &SqlitePool {
        match &self.backend {
            Backend::Sqlite(pool) => pool,
            Backend::Postgres(_) => unreachable!("a SQLite path on a PostgreSQL store"),
        }
    }

    pub(crate) fn current(&self) -> Arc<State> {
        self.state.load_full()
    }
}

/// A transaction whose commit failed and whose effect on the database has
/// not been read back yet.
pub(crate) struct Unsettled {
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
        // The embedded default upgrades its own schema; a database written
        // by a newer Statera is refused (sqlx: a migration it does not know).
        schema::sqlite_migrator().run(&pool).await?;
        // The -wal/-shm files SQLite made now, should it not copy the mode.
        for suffix in ["-wal", "-shm"] {
            private(suffix)?;
        }
        let state = load_sqlite(&pool).await?;
        Ok(Store {
            inner: Arc::new(Inner::new(Backend::Sqlite(pool), state)),
        })
    }

    /// Opens the store `location` names: SQLite in a directory (made and
    /// upgraded as [`Store::open`] does), or a PostgreSQL database whose
    /// schema must be current (`statera db upgrade`), shared with the other
    /// nodes that name it.
    pub async fn open_at(
        location: &Location,
        durability: Durability,
        pg: PgOptions,
    ) -> Result<Store, StoreError> {
        match location {
            Location::Sqlite(dir) => Store::open(dir, durability).await,
            Location::Postgres(url) => postgres::open(url, pg).await,
        }
    }

    /// Whether several nodes may share this store (PostgreSQL): then
    /// controllers claim load balancers ([`Claim`]) and heartbeat.
    pub fn is_shared(&self) -> bool {
        matches!(self.inner.backend, Backend::Postgres(_))
    }

    /// Brings the image up to the database's latest commit (PostgreSQL; a
    /// no-op on SQLite, whose only writer is this process). After it, a
    /// snapshot holds every change committed through any node before the
    /// call. Fails with [`StoreError::Unavailable`] while the database
    /// cannot be reached.
    pub async fn sync(&self) -> Result<(), StoreError> {
        match &self.inner.backend {
            Backend::Sqlite(_) => Ok(()),
            Backend::Postgres(_) => postgres::sync(&self.inner).await,
        }
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
        if let Backend::Postgres(_) = self.inner.backend {
            return postgres::write(&self.inner, writer, f).await;
        }
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
        txn.state.rev += 1;
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
        match &self.inner.backend {
            Backend::Sqlite(pool) => pool.close().await,
            Backend::Postgres(pool) => pool.close().await,
        }
    }

    /// Records that controller `node` is alive (PostgreSQL; the database's
    /// clock, so nodes' clocks need not agree).
    pub async fn heartbeat(&self, node: &str) -> Result<(), StoreError> {
        postgres::heartbeat(&self.inner, node).await
    }

    /// The controllers heard from within `timeout`, by node id.
    pub async fn live_controllers(
        &self,
        timeout: std::time::Duration,
    ) -> Result<Vec<String>, StoreError> {
        postgres::live_controllers(&self.inner, timeout).await
    }

    /// Locks the heartbeat rows of the controllers silent for longer than
    /// `timeout` (other than `me`) with `FOR UPDATE SKIP LOCKED`, so that
    /// two live controllers never adopt the same dead one's load balancers
    /// at once; [`DeadControllers::forget`] removes them once adopted.
    pub async fn dead_controllers(
        &self,
        me: &str,
        timeout: std::time::Duration,
    ) -> Result<DeadControllers, StoreError> {
        postgres::dead_controllers(&self.inner, me, timeout).await
    }
}

impl Inner {
    /// Makes `state` the image, unless the image is already as new.
    pub(crate) fn publish(&self, state: State, enqueued: bool) {
        {
            let _order = self.publishing.lock().unwrap_or_else(|p| p.into_inner());
            if state.rev <= self.state.load().rev {
                return;
            }
            self.state.store(Arc::new(state));
        }
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
        let mut conn = self.sqlite().acquire().await?;
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
            .sqlite()
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

/// Decodes one row of `R`'s table into `state`: the id must be the
/// document's key.
pub(crate) fn decode_into<R: Record>(
    state: &mut State,
    id: &str,
    doc: &str,
) -> Result<(), StoreError> {
    let value: R = serde_json::from_str(doc).map_err(|e| StoreError::Corrupt {
        table: R::TABLE,
        id: id.to_string(),
        reason: e.to_string(),
    })?;
    if R::Key::from_str(id).ok().as_ref() != Some(&value.key()) {
        return Err(StoreError::Corrupt {
            table: R::TABLE,
            id: id.to_string(),
            reason: "id does not match the document".into(),
        });
    }
    R::table_mut(state).insert(value);
    Ok(())
}

/// The next pending-work sequence number after a load.
pub(crate) fn settle_next_seq(state: &mut State) {
    state.next_seq = state
        .pending_work
        .iter()
        .map(|w| w.seq + 1)
        .max()
        .unwrap_or(1);
}

async fn load_sqlite(pool: &SqlitePool) -> Result<State, StoreError> {
    use statera_model::*;
    let mut s = State::default();
    macro_rules! load {
        ($($ty:ty),*) => {$(
            for row in sqlx::query(&format!("SELECT id, doc FROM {}", <$ty as Record>::TABLE))
                .fetch_all(pool)
                .await?
            {
                let id: String = row.try_get("id")?;
                let doc: String = row.try_get("doc")?;
                decode_into::<$ty>(&mut s, &id, &doc)?;
            }
        )*};
    }
    with_records!(load);
    settle_next_seq(&mut s);
    Ok(s)
}
