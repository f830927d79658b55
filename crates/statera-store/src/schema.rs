//! The schema's versions: sqlx migrations, one directory per backend
//! (`migrations/sqlite`, `migrations/postgres`), and what `statera db
//! status` and `statera db upgrade` report.

use crate::{Location, StoreError};
use sqlx::Row;
use sqlx::migrate::Migrator;
use std::collections::BTreeSet;

static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

pub(crate) fn sqlite_migrator() -> &'static Migrator {
    &SQLITE
}

/// How a database's schema compares with what this binary knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaState {
    /// Every migration this binary knows is applied, and no other.
    Current,
    /// These migrations are not applied yet (`statera db upgrade`).
    UpgradeNeeded { pending: Vec<i64> },
    /// The database holds migrations this binary does not know (a newer
    /// Statera wrote it) or one that failed half-way: refused.
    Unknown { versions: Vec<i64> },
}

/// A database's schema: what is applied and how it compares.
#[derive(Debug, Clone)]
pub struct SchemaStatus {
    pub backend: &'static str,
    pub applied: Vec<i64>,
    pub known: Vec<i64>,
    pub state: SchemaState,
}

impl SchemaStatus {
    fn compare(backend: &'static str, migrator: &Migrator, applied: Vec<(i64, bool)>) -> Self {
        let known: Vec<i64> = migrator.iter().map(|m| m.version).collect();
        let known_set: BTreeSet<i64> = known.iter().copied().collect();
        let done: BTreeSet<i64> = applied.iter().filter(|a| a.1).map(|a| a.0).collect();
        let unknown: Vec<i64> = applied
            .iter()
            .filter(|(v, ok)| !ok || !known_set.contains(v))
            .map(|a| a.0)
            .collect();
        let pending: Vec<i64> = known
            .iter()
            .copied()
            .filter(|v| !done.contains(v))
            .collect();
        let state = if !unknown.is_empty() {
            SchemaState::Unknown { versions: unknown }
        } else if !pending.is_empty() {
            SchemaState::UpgradeNeeded { pending }
        } else {
            SchemaState::Current
        };
        SchemaStatus {
            backend,
            applied: applied.into_iter().map(|a| a.0).collect(),
            known,
            state,
        }
    }

    /// Refuses to serve on anything but the current schema.
    pub fn require_current(&self) -> Result<(), StoreError> {
        match &self.state {
            SchemaState::Current => Ok(()),
            SchemaState::UpgradeNeeded { pending } => Err(StoreError::Schema(format!(
                "the {} schema is behind this Statera ({} migration(s) pending: {pending:?}); run `statera db upgrade` first",
                self.backend,
                pending.len()
            ))),
            SchemaState::Unknown { versions } => Err(StoreError::Schema(format!(
                "the {} schema has migration(s) this Statera does not know or that failed half-way ({versions:?}): it was written by a newer Statera, or an upgrade broke; refusing to start",
                self.backend
            ))),
        }
    }
}

/// The applied migrations as `(version, success)`, read through `$exec`
/// (a pool of either backend); none when sqlx's table does not exist yet.
macro_rules! applied {
    ($exec:expr, $exists_sql:expr) => {
        async {
            let exists: bool = sqlx::query_scalar($exists_sql).fetch_one($exec).await?;
            if !exists {
                return Ok::<_, sqlx::Error>(Vec::new());
            }
            let rows =
                sqlx::query("SELECT version, success FROM _sqlx_migrations ORDER BY version")
                    .fetch_all($exec)
                    .await?;
            rows.iter()
                .map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get::<bool, _>(1)?)))
                .collect::<Result<Vec<(i64, bool)>, sqlx::Error>>()
        }
    };
}

pub(crate) async fn postgres_status(pool: &sqlx::PgPool) -> Result<SchemaStatus, StoreError> {
    let applied = applied!(pool, "SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .await
        .map_err(StoreError::unavailable)?;
    Ok(SchemaStatus::compare("PostgreSQL", &POSTGRES, applied))
}

async fn sqlite_status(pool: &sqlx::SqlitePool) -> Result<SchemaStatus, StoreError> {
    let applied = applied!(
        pool,
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')"
    )
    .await?;
    Ok(SchemaStatus::compare("SQLite", &SQLITE, applied))
}

async fn sqlite_pool(dir: &std::path::Path, create: bool) -> Result<sqlx::SqlitePool, StoreError> {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.join("statera.sqlite"))
        .create_if_missing(create);
    Ok(sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await?)
}

/// `statera db status`: the schema of the store at `location`.
pub async fn status(location: &Location) -> Result<SchemaStatus, StoreError> {
    match location {
        Location::Sqlite(dir) => {
            if !dir.join("statera.sqlite").exists() {
                return Ok(SchemaStatus::compare("SQLite", &SQLITE, Vec::new()));
            }
            let pool = sqlite_pool(dir, false).await?;
            let out = sqlite_status(&pool).await;
            pool.close().await;
            out
        }
        Location::Postgres(url) => {
            let pool = crate::postgres::connect(url, crate::PgOptions::default()).await?;
            let out = postgres_status(&pool).await;
            pool.close().await;
            out
        }
    }
}

/// `statera db upgrade`: applies the pending migrations (sqlx takes an
/// advisory lock on PostgreSQL, so two nodes upgrading at once apply each
/// once); refuses a schema with migrations this binary does not know.
pub async fn upgrade(location: &Location) -> Result<SchemaStatus, StoreError> {
    match location {
        Location::Sqlite(dir) => {
            // Made as `serve` makes it (0700 dir, 0600 files).
            let store = crate::Store::open(dir, crate::Durability::Full).await?;
            store.close().await;
            status(location).await
        }
        Location::Postgres(url) => {
            let pool = crate::postgres::connect(url, crate::PgOptions::default()).await?;
            let before = postgres_status(&pool).await?;
            if let SchemaState::Unknown { .. } = before.state {
                pool.close().await;
                return Err(before.require_current().unwrap_err());
            }
            let run = POSTGRES.run(&pool).await;
            let after = postgres_status(&pool).await;
            pool.close().await;
            run?;
            after
        }
    }
}
