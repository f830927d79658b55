//! A database of its own for a test, in the throwaway PostgreSQL cluster
//! `scripts/test` starts (initdb/pg_ctl under the `postgres` user) and names
//! in `STATERA_TEST_POSTGRES`. Shared with crates/statera/tests (by path).

#![allow(dead_code)]

use sqlx::Connection;

/// The variable that names the cluster (a URL whose user may create databases).
pub const CLUSTER_VAR: &str = "STATERA_TEST_POSTGRES";

/// A new, empty database for this test and the URL that names it; `None`
/// (after saying why, or failing under CI=true) when no cluster is named.
pub async fn fresh_database(tag: &str) -> Option<String> {
    let Ok(cluster) = std::env::var(CLUSTER_VAR) else {
        let reason = format!(
            "{CLUSTER_VAR} is not set: no PostgreSQL cluster to test against (scripts/test starts one)"
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true and this test cannot run: {reason}");
        }
        eprintln!("SKIPPED: {reason}");
        return None;
    };
    let name = format!(
        "statera_{}_{}",
        tag,
        uuid::Uuid::new_v4().simple().to_string().get(..12).unwrap()
    );
    let mut admin = sqlx::PgConnection::connect(&cluster)
        .await
        .unwrap_or_else(|e| panic!("connecting to {CLUSTER_VAR}: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.ok();
    Some(with_database(&cluster, &name))
}

/// `url` naming database `db` instead of its own.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{}", &base[..path_start], db);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Which backend the suites that take it as a parameter run on:
/// `STATERA_TEST_STORE=postgres` (with [`CLUSTER_VAR`] naming the cluster)
/// or SQLite, the default. `scripts/test` runs those suites both ways.
pub const BACKEND_VAR: &str = "STATERA_TEST_STORE";

/// The store a test runs on: SQLite in `dir`, or, under
/// `STATERA_TEST_STORE=postgres`, a fresh database of its own in the
/// cluster (upgraded), the whole suite then running on PostgreSQL.
pub async fn test_store(dir: &std::path::Path) -> statera_store::Store {
    use statera_store::{Durability, Location, PgOptions, Store};
    match std::env::var(BACKEND_VAR).as_deref() {
        Ok("postgres") => {
            let url = fresh_database("suite").await.unwrap_or_else(|| {
                panic!("{BACKEND_VAR}=postgres needs {CLUSTER_VAR} to name a cluster")
            });
            let at = Location::Postgres(url);
            statera_store::db_upgrade(&at).await.unwrap();
            Store::open_at(
                &at,
                Durability::Normal,
                PgOptions {
                    max_connections: 4,
                    ..PgOptions::default()
                },
            )
            .await
            .unwrap()
        }
        Ok("sqlite") | Err(_) => Store::open(dir, Durability::Normal).await.unwrap(),
        Ok(other) => panic!("{BACKEND_VAR}={other}: use sqlite or postgres"),
    }
}
