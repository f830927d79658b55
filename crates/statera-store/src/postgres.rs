//! The PostgreSQL backend: several nodes, one database.
//!
//! Every node keeps the in-memory image and serves reads from it, as on
//! SQLite. What keeps the images coherent:
//!
//! - A write takes the row lock of `statera_head` first (`SELECT … FOR
//!   UPDATE`): writes are serialised across every node, as the writer mutex
//!   serialises them within one. Holding it, the node reads the change log
//!   past its image's revision and applies it, so the write's checks run on
//!   the latest state of the whole deployment; then its own rows, their log
//!   entries under revision `head + 1`, and the new head commit together,
//!   with a `NOTIFY` that reaches the other nodes when it does.
//! - A read path that must see every earlier commit (the API, before each
//!   request) calls [`sync`]: one query of the head's revision, and the log's
//!   tail when it moved. A listener task does the same on every `NOTIFY`,
//!   and a poll every second covers a notification lost with a connection.
//! - The log is pruned behind the head; a node that fell further behind
//!   than the log reaches reloads every table in one repeatable-read
//!   snapshot.
//!
//! A commit whose answer is lost (the connection dropped at `COMMIT`) is
//! looked up by the token its first log row carries: found, it is
//! published; absent, the write failed and changed nothing; unreadable, the
//! caller gets [`StoreError::Unavailable`] and the next catch-up settles the
//! image either way.

use crate::{
    Backend, Change, Inner, Record, State, StoreError, Txn, Unsettled, decode_into,
    settle_next_seq, with_records,
};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::OwnedMutexGuard;

/// The channel commits are announced on.
const CHANNEL: &str = "statera_changes";
/// Log entries kept behind the head (a node further behind reloads whole).
const LOG_KEEP: i64 = 20_000;
/// How often the log is pruned (every this many revisions).
const PRUNE_EVERY: i64 = 1_000;
/// The safety net under `NOTIFY`.
const POLL: Duration = Duration::from_secs(1);
/// Room for pending-work numbers within one commit (see `write`).
const SEQ_SHIFT: u32 = 20;

/// How a node connects to PostgreSQL.
#[derive(Debug, Clone, Copy)]
pub struct PgOptions {
    pub max_connections: u32,
    /// How long a request waits for a connection (or for the database to
    /// answer a connect) before it is answered "unavailable".
    pub acquire_timeout: Duration,
    /// Follow the other nodes' commits in the background (a `LISTEN`
    /// connection and a poll). Without it the image moves only at
    /// [`crate::Store::sync`] and at writes.
    pub follow: bool,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(3),
            follow: true,
        }
    }
}

/// How every connection of a node is made: no statement, lock wait or open
/// transaction of a stuck node can hold the others' writes (which queue on
/// `statera_head`'s lock) for longer than a few seconds; the server ends a
/// session idle inside a transaction (a node paused or cut off between its
/// `FOR UPDATE` and its `COMMIT`), which releases the lock.
fn connect_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    Ok(PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Location(format!("--store: {e}")))?
        .application_name("statera")
        .options([
            ("lock_timeout", "5s"),
            ("statement_timeout", "60s"),
            ("idle_in_transaction_session_timeout", "10s"),
        ]))
}

pub(crate) async fn connect(url: &str, opts: PgOptions) -> Result<PgPool, StoreError> {
    let connect = connect_options(url)?;
    PgPoolOptions::new()
        .max_connections(opts.max_connections)
        .acquire_timeout(opts.acquire_timeout)
        .connect_with(connect)
        .await
        .map_err(StoreError::unavailable)
}

pub(crate) async fn open(url: &str, opts: PgOptions) -> Result<crate::Store, StoreError> {
    let pool = connect(url, opts).await?;
    crate::schema::postgres_status(&pool)
        .await?
        .require_current()?;
    let state = {
        let mut tx = snapshot_tx(&pool).await?;
        let state = load(&mut tx).await?;
        tx.commit().await.map_err(StoreError::unavailable)?;
        state
    };
    let inner = Arc::new(Inner::new(Backend::Postgres(pool), state));
    if opts.follow {
        tokio::spawn(follow(Arc::downgrade(&inner), connect_options(url)?));
    }
    Ok(crate::Store { inner })
}

fn pool(inner: &Inner) -> &PgPool {
    match &inner.backend {
        Backend::Postgres(pool) => pool,
        Backend::Sqlite(_) => unreachable!("a PostgreSQL path on a SQLite store"),
    }
}

/// A read-only transaction that sees one consistent snapshot.
async fn snapshot_tx(pool: &PgPool) -> Result<Transaction<'static, Postgres>, StoreError> {
    let mut tx = pool.begin().await.map_err(StoreError::unavailable)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(StoreError::unavailable)?;
    Ok(tx)
}

/// Every table, and the head's revision, in `tx`'s snapshot.
async fn load(conn: &mut sqlx::PgConnection) -> Result<State, StoreError> {
    use crate::{Claim, ListenerStats, PendingWork};
    use statera_model::*;
    let mut s = State::default();
    let rev: i64 = sqlx::query_scalar("SELECT rev FROM statera_head")
        .fetch_one(&mut *conn)
        .await
        .map_err(StoreError::unavailable)?;
    macro_rules! load {
        ($($ty:ty),*) => {$(
            for row in sqlx::query(&format!("SELECT id, doc FROM {}", <$ty as Record>::TABLE))
                .fetch_all(&mut *conn)
                .await
                .map_err(StoreError::unavailable)?
            {
                let id: String = row.try_get("id")?;
                let doc: String = row.try_get("doc")?;
                decode_into::<$ty>(&mut s, &id, &doc)?;
            }
        )*};
    }
    with_records!(load);
    settle_next_seq(&mut s);
    s.rev = rev as u64;
    Ok(s)
}

/// Applies one logged change to `state`; says whether it concerns the
/// controllers (pending work or a claim).
fn apply_logged(
    state: &mut State,
    table: &str,
    id: &str,
    doc: Option<&str>,
) -> Result<bool, StoreError> {
    use crate::{Claim, ListenerStats, PendingWork};
    use statera_model::*;
    macro_rules! dispatch {
        ($($ty:ty),*) => {$(
            if table == <$ty as Record>::TABLE {
                match doc {
                    Some(doc) => decode_into::<$ty>(state, id, doc)?,
                    None => {
                        let key = <$ty as Record>::Key::from_str(id).map_err(|_| StoreError::Corrupt {
                            table: <$ty as Record>::TABLE,
                            id: id.to_string(),
                            reason: "a logged delete names no key".into(),
                        })?;
                        <$ty as Record>::table_mut(state).remove(&key);
                    }
                }
                return Ok(table == PendingWork::TABLE || table == Claim::TABLE);
            }
        )*};
    }
    with_records!(dispatch);
    Err(StoreError::Corrupt {
        table: "statera_log",
        id: id.to_string(),
        reason: format!("a change to an unknown table '{table}'"),
    })
}

/// What the change log says of an image.
enum CatchUp {
    /// The image is the database's latest.
    Current,
    /// The image brought up to date (and whether controllers' work changed).
    Ahead(Box<State>, bool),
    /// The log no longer reaches back to the image: every table must be
    /// read again.
    Behind,
}

/// `base` brought up to the database's latest commit, read through `conn`.
async fn catch_up(conn: &mut sqlx::PgConnection, base: &State) -> Result<CatchUp, StoreError> {
    let rows =
        sqlx::query("SELECT rev, tbl, id, doc FROM statera_log WHERE rev > $1 ORDER BY rev, n")
            .bind(base.rev as i64)
            .fetch_all(&mut *conn)
            .await
            .map_err(StoreError::unavailable)?;
    let Some(first) = rows.first() else {
        return Ok(CatchUp::Current);
    };
    let first_rev: i64 = first.try_get("rev")?;
    if first_rev != base.rev as i64 + 1 {
        tracing::info!(
            image = base.rev,
            log_starts = first_rev,
            "the change log no longer reaches this node's image: reloading every table"
        );
        return Ok(CatchUp::Behind);
    }
    let mut state = base.clone();
    let mut work = false;
    for row in &rows {
        let rev: i64 = row.try_get("rev")?;
        let table: String = row.try_get("tbl")?;
        let id: String = row.try_get("id")?;
        let doc: Option<String> = row.try_get("doc")?;
        work |= apply_logged(&mut state, &table, &id, doc.as_deref())?;
        if table == crate::PendingWork::TABLE && doc.is_some() {
            let seq: u64 = id.parse().unwrap_or(0);
            state.next_seq = state.next_seq.max(seq + 1);
        }
        state.rev = rev as u64;
    }
    Ok(CatchUp::Ahead(Box::new(state), work))
}

/// [`crate::Store::sync`] on PostgreSQL.
///
/// Concurrent callers share the work: one sync runs at a time, and a
/// caller returns as soon as a sync that *began after it arrived* has
/// finished (that one saw every commit made before the caller arrived). A
/// flood of requests costs the database one query at a time per node, not
/// one per request.
pub(crate) async fn sync(inner: &Inner) -> Result<(), StoreError> {
    use std::sync::atomic::Ordering;
    let arrived = inner.sync_begun.load(Ordering::SeqCst);
    let _one = inner.syncing.lock().await;
    if inner.sync_done.load(Ordering::SeqCst) > arrived {
        return Ok(());
    }
    let ticket = inner.sync_begun.fetch_add(1, Ordering::SeqCst) + 1;
    let pool = pool(inner);
    let head: i64 = sqlx::query_scalar("SELECT rev FROM statera_head")
        .fetch_one(pool)
        .await
        .map_err(StoreError::unavailable)?;
    let base = inner.current();
    if head as u64 > base.rev {
        let outcome = {
            let mut conn = pool.acquire().await.map_err(StoreError::unavailable)?;
            catch_up(&mut conn, &base).await?
        };
        match outcome {
            CatchUp::Current => {}
            CatchUp::Ahead(state, work) => inner.publish(*state, work),
            CatchUp::Behind => {
                let mut tx = snapshot_tx(pool).await?;
                let state = load(&mut tx).await?;
                tx.commit().await.map_err(StoreError::unavailable)?;
                inner.publish(state, true);
            }
        }
    }
    inner.sync_done.fetch_max(ticket, Ordering::SeqCst);
    Ok(())
}

/// Follows the other nodes' commits: on every `NOTIFY`, and every
/// [`POLL`] whatever comes, until the store is dropped.
async fn follow(inner: Weak<Inner>, connect: PgConnectOptions) {
    let mut listener: Option<PgListener> = None;
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if listener.is_none() {
            // A connection of its own, not one of the pool's (a listener
            // keeps it for good).
            let own = PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(3))
                .connect_lazy_with(connect.clone());
            match PgListener::connect_with(&own).await {
                Ok(mut l) => match l.listen(CHANNEL).await {
                    Ok(()) => listener = Some(l),
                    Err(e) => tracing::debug!(error = %e, "LISTEN failed; polling"),
                },
                Err(e) => tracing::debug!(error = %e, "no LISTEN connection; polling"),
            }
        }
        if let Err(e) = sync(&strong).await {
            tracing::debug!(error = %e, "catching up with the database failed; will retry");
        }
        drop(strong);
        match listener.as_mut() {
            Some(l) => match tokio::time::timeout(POLL, l.try_recv()).await {
                Ok(Ok(Some(_))) | Err(_) => {}
                // The connection was lost (and notifications with it).
                Ok(Ok(None)) | Ok(Err(_)) => listener = None,
            },
            None => tokio::time::sleep(POLL).await,
        }
    }
}

/// [`crate::Store::write`] on PostgreSQL.
pub(crate) async fn write<T, E>(
    inner: &Arc<Inner>,
    writer: OwnedMutexGuard<Option<Unsettled>>,
    f: impl FnOnce(&mut Txn) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<StoreError>,
{
    let pool = pool(inner);
    let mut tx = pool
        .begin()
        .await
        .map_err(|e| E::from(StoreError::unavailable(e)))?;
    let head: i64 = sqlx::query_scalar("SELECT rev FROM statera_head FOR UPDATE")
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| E::from(StoreError::unavailable(e)))?;
    // Holding the head: nobody else commits; bring the image to it, on
    // this very connection (its reads are stable while the lock is held).
    let mut base = inner.current();
    if head as u64 > base.rev {
        match catch_up(&mut tx, &base).await.map_err(E::from)? {
            CatchUp::Current => {}
            CatchUp::Ahead(state, work) => inner.publish(*state, work),
            CatchUp::Behind => {
                let state = load(&mut tx).await.map_err(E::from)?;
                inner.publish(state, true);
            }
        }
        base = inner.current();
    }
    if base.rev != head as u64 {
        return Err(E::from(StoreError::Unavailable {
            reason: format!(
                "this node's image is at revision {} but the database is at {head}",
                base.rev
            ),
        }));
    }
    let mut txn = Txn {
        state: (*base).clone(),
        changes: Vec::new(),
        enqueued: false,
    };
    // Pending-work numbers are unique across nodes and never reused (a
    // node that reloaded with no pending work would otherwise start again
    // at 1): they start at the commit's revision shifted left, above every
    // number an earlier commit gave.
    txn.state.next_seq = txn.state.next_seq.max((head as u64 + 1) << SEQ_SHIFT);
    // An error here drops `tx`: rolled back, the head's lock released.
    let out = f(&mut txn)?;
    if txn.changes.is_empty() {
        return Ok(out);
    }
    txn.state.rev = head as u64 + 1;
    let inner = inner.clone();
    let committed = tokio::spawn(async move {
        let _writer = writer;
        commit(&inner, tx, txn).await
    })
    .await
    .unwrap_or_else(|e| {
        Err(StoreError::Unavailable {
            reason: format!("the commit task ended abnormally: {e}"),
        })
    });
    committed.map_err(E::from)?;
    Ok(out)
}

/// Writes `txn`'s rows and log entries and the new head in `tx`, commits,
/// publishes. Runs in a task of its own, so a caller that stops waiting
/// cannot abandon it half-way.
async fn commit(
    inner: &Inner,
    mut tx: Transaction<'static, Postgres>,
    txn: Txn,
) -> Result<(), StoreError> {
    let rev = txn.state.rev as i64;
    let token = uuid::Uuid::new_v4().to_string();
    let written = async {
        write_rows(&mut tx, &txn.changes, rev, &token).await?;
        sqlx::query("UPDATE statera_head SET rev = $1")
            .bind(rev)
            .execute(&mut *tx)
            .await?;
        if rev % PRUNE_EVERY == 0 {
            sqlx::query("DELETE FROM statera_log WHERE rev <= $1")
                .bind(rev - LOG_KEEP)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(rev.to_string())
            .execute(&mut *tx)
            .await?;
        Ok::<_, sqlx::Error>(())
    }
    .await;
    if let Err(e) = written {
        // Not committed: the transaction rolls back as it is dropped.
        tracing::error!(error = %e, "PostgreSQL refused a write; nothing is published");
        return Err(StoreError::unavailable(e));
    }
    let Err(error) = tx.commit().await else {
        inner.publish(txn.state, txn.enqueued);
        return Ok(());
    };
    tracing::error!(%error, "the COMMIT failed; looking up whether it landed");
    let landed: Result<Option<Option<String>>, sqlx::Error> = async {
        let mut look = pool(inner).begin().await?;
        // Waits (up to lock_timeout) for the transaction that may still be
        // committing on the server to end either way: it holds the head.
        sqlx::query("SELECT rev FROM statera_head FOR SHARE")
            .execute(&mut *look)
            .await?;
        let token = sqlx::query_scalar("SELECT token FROM statera_log WHERE rev = $1 AND n = 0")
            .bind(rev)
            .fetch_optional(&mut *look)
            .await?;
        look.rollback().await?;
        Ok(token)
    }
    .await;
    match landed {
        Ok(Some(Some(t))) if t == token => {
            tracing::warn!("a commit that reported failure is in the database: publishing it");
            inner.publish(txn.state, txn.enqueued);
            Ok(())
        }
        Ok(_) => Err(StoreError::WriteFailed {
            reason: error.to_string(),
            disk_full: false,
        }),
        // The outcome is unknown: the image settles it at its next catch-up.
        Err(e) => Err(StoreError::Unavailable {
            reason: format!("{error}; and whether it landed cannot be read: {e}"),
        }),
    }
}

async fn write_rows(
    tx: &mut Transaction<'static, Postgres>,
    changes: &[Change],
    rev: i64,
    token: &str,
) -> Result<(), sqlx::Error> {
    for c in changes {
        match &c.doc {
            Some(doc) => {
                let sql = format!(
                    "INSERT INTO {} (id, doc) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc",
                    c.table
                );
                sqlx::query(&sql)
                    .bind(&c.id)
                    .bind(doc)
                    .execute(&mut **tx)
                    .await?;
            }
            None => {
                let sql = format!("DELETE FROM {} WHERE id = $1", c.table);
                sqlx::query(&sql).bind(&c.id).execute(&mut **tx).await?;
            }
        }
    }
    let n: Vec<i32> = (0..changes.len() as i32).collect();
    let tables: Vec<&str> = changes.iter().map(|c| c.table).collect();
    let ids: Vec<&str> = changes.iter().map(|c| c.id.as_str()).collect();
    let docs: Vec<Option<&str>> = changes.iter().map(|c| c.doc.as_deref()).collect();
    sqlx::query(
        "INSERT INTO statera_log (rev, n, tbl, id, doc, token) \
         SELECT $1, u.n, u.tbl, u.id, u.doc, CASE WHEN u.n = 0 THEN $6 END \
         FROM UNNEST($2::int4[], $3::text[], $4::text[], $5::text[]) AS u(n, tbl, id, doc)",
    )
    .bind(rev)
    .bind(&n)
    .bind(&tables)
    .bind(&ids)
    .bind(&docs)
    .bind(token)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn only_postgres(inner: &Inner) -> Result<&PgPool, StoreError> {
    match &inner.backend {
        Backend::Postgres(pool) => Ok(pool),
        Backend::Sqlite(_) => Err(StoreError::Location(
            "controllers heartbeat only in a shared (PostgreSQL) store".into(),
        )),
    }
}

pub(crate) async fn heartbeat(inner: &Inner, node: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO statera_controllers (id, seen_at) VALUES ($1, now()) \
         ON CONFLICT (id) DO UPDATE SET seen_at = now()",
    )
    .bind(node)
    .execute(only_postgres(inner)?)
    .await
    .map_err(StoreError::unavailable)?;
    Ok(())
}

pub(crate) async fn live_controllers(
    inner: &Inner,
    timeout: Duration,
) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar(
        "SELECT id FROM statera_controllers \
         WHERE seen_at > now() - make_interval(secs => $1) ORDER BY id",
    )
    .bind(timeout.as_secs_f64())
    .fetch_all(only_postgres(inner)?)
    .await
    .map_err(StoreError::unavailable)
}

/// Controllers found silent, their heartbeat rows locked until
/// [`DeadControllers::forget`] (or the value is dropped: then they stay,
/// unlocked, for the next look).
pub struct DeadControllers {
    tx: Option<Transaction<'static, Postgres>>,
    /// The silent controllers whose rows this caller holds.
    pub ids: Vec<String>,
    /// Every controller with a heartbeat row (silent or not, held by
    /// anyone): an owner missing from it has no row at all.
    pub known: Vec<String>,
}

impl DeadControllers {
    /// Removes the dead controllers' heartbeat rows (their load balancers
    /// adopted); a dead controller that comes back starts a new row, with
    /// nothing claimed.
    pub async fn forget(mut self) -> Result<(), StoreError> {
        let Some(mut tx) = self.tx.take() else {
            return Ok(());
        };
        sqlx::query("DELETE FROM statera_controllers WHERE id = ANY($1)")
            .bind(&self.ids)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::unavailable)?;
        tx.commit().await.map_err(StoreError::unavailable)
    }
}

pub(crate) async fn dead_controllers(
    inner: &Inner,
    me: &str,
    timeout: Duration,
) -> Result<DeadControllers, StoreError> {
    let pool = only_postgres(inner)?;
    let mut tx = pool.begin().await.map_err(StoreError::unavailable)?;
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM statera_controllers \
         WHERE seen_at <= now() - make_interval(secs => $1) AND id <> $2 \
         ORDER BY id FOR UPDATE SKIP LOCKED",
    )
    .bind(timeout.as_secs_f64())
    .bind(me)
    .fetch_all(&mut *tx)
    .await
    .map_err(StoreError::unavailable)?;
    let known: Vec<String> = sqlx::query_scalar("SELECT id FROM statera_controllers")
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::unavailable)?;
    Ok(DeadControllers {
        tx: Some(tx),
        ids,
        known,
    })
}
