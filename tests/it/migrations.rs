//! Upgrades keep what was stored: a database written by an earlier version is migrated in
//! place, on both backends (with migration 11's message totals counted from its rows, and
//! migration 15's rebuilt findings table keeping its ids).

use crate::harness::{pg_admin, pg_server, with_database, Db};
use crate::on_both;
use scanhook::domain::outbox::MessageStatus;
use scanhook::store::Store;
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor, Row};
use std::borrow::Cow;
use std::path::Path;

/// A database of this backend migrated up to, not including, migration `n` (1-based), with
/// its URL and the PostgreSQL database's name (to drop it after).
async fn database_before(db: Db, dir: &Path, n: usize) -> (AnyPool, String, Option<String>) {
    let (url, pg_name) = match db {
        Db::Sqlite => (
            format!("sqlite://{}?mode=rwc", dir.join("old.db").display()),
            None,
        ),
        Db::Postgres => {
            let name = format!(
                "scanhook_test_{}",
                scanhook::ids::public_scan_id().to_lowercase()
            );
            pg_admin(&pg_server(), &format!("CREATE DATABASE {name}")).await;
            (with_database(&pg_server(), &name), Some(name))
        }
    };
    sqlx::any::install_default_drivers();
    let backend = if db == Db::Sqlite {
        "sqlite"
    } else {
        "postgres"
    };
    let dir_of = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut before = Migrator::new(dir_of).await.unwrap();
    before.migrations = Cow::Owned(before.migrations[..n - 1].to_vec());
    let pool = AnyPool::connect(&url).await.unwrap();
    before.run(&pool).await.unwrap();
    (pool, url, pg_name)
}

async fn drop_database(pg_name: Option<String>) {
    if let Some(name) = pg_name {
        pg_admin(
            &pg_server(),
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )
        .await;
    }
}

/// Queued messages keep their bodies when bodies move to the shared `payloads` table
/// (migration 5), and new payloads get ids of their own.
async fn message_bodies_survive_the_move_to_payloads(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let (pool, url, pg_name) = database_before(db, dir.path(), 5).await;
    let body = r#"{"semgrep_scan":{"id":"before the upgrade"}}"#;
    for (n, status) in [(1, "pending"), (2, "delivered")] {
        pool.execute(
            sqlx::query(
                "INSERT INTO messages (public_id, deployment_id, integration_id, kind, body, \
                 status, next_attempt_at, created_at) VALUES ($1, 1, 1, 'semgrep_scan', $2, $3, 0, 0)",
            )
            .bind(format!("msg_{n}"))
            .bind(body)
            .bind(status),
        )
        .await
        .unwrap();
    }
    pool.close().await;

    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    // Migration 11 counts the delivered and failed messages already there.
    let depth = store.queue_depth().await.unwrap();
    for (status, n) in [
        (MessageStatus::Pending, 1),
        (MessageStatus::Delivering, 0),
        (MessageStatus::Delivered, 1),
        (MessageStatus::Failed, 0),
    ] {
        assert!(depth.contains(&(status, n)), "{status:?}: {depth:?}");
    }
    for n in [1, 2] {
        let (m, _) = store
            .message(
                scanhook::ids::DeploymentId(1),
                &format!("msg_{n}").parse().unwrap(),
            )
            .await
            .unwrap()
            .expect("the message is still there");
        assert_eq!(m.body, body);
    }
    store.close().await;
    let pool = AnyPool::connect(&url).await.unwrap();
    let row = sqlx::query("INSERT INTO payloads (body) VALUES ('{}') RETURNING id")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        row.get::<i64, _>("id") > 2,
        "a new payload does not reuse a moved id"
    );
    pool.close().await;
    drop_database(pg_name).await;
}
on_both!(message_bodies_survive_the_move_to_payloads);

/// Stores a finding of project 1 on `git_ref` with `identity`; its id.
async fn insert_finding(pool: &AnyPool, git_ref: &str, identity: &str) -> sqlx::Result<i64> {
    let row = sqlx::query(
        "INSERT INTO findings (deployment_id, project_id, git_ref, identity, syntactic_id, \
         rule_id, path, line, col, end_line, end_col, message, severity, idx, metadata_id, mode, \
         state, digest, created_at, relevant_since, state_updated_at, last_scan_id) VALUES \
         (1, 1, $1, $2, $2, 'r', 'p.py', 1, 1, 1, 1, 'm', 1, 0, 1, 'monitor', 'open', 'd', \
         0, 0, 0, 1) RETURNING id",
    )
    .bind(git_ref)
    .bind(identity)
    .fetch_one(pool)
    .await?;
    Ok(row.get("id"))
}

/// Findings keep their rows and ids when their unique key is rebuilt to lead with the
/// identity (migration 15); the key still holds, and no id of a deleted finding is given
/// again.
async fn findings_keep_their_ids_when_the_key_leads_with_the_identity(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let (pool, url, pg_name) = database_before(db, dir.path(), 15).await;
    let mut ids = vec![];
    for (git_ref, identity) in [("main", "a"), ("dev", "a"), ("main", "b")] {
        ids.push(insert_finding(&pool, git_ref, identity).await.unwrap());
    }
    assert_eq!(ids, [1, 2, 3]);
    pool.execute("DELETE FROM findings WHERE id = 3")
        .await
        .unwrap();
    pool.close().await;

    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    store.close().await;
    let pool = AnyPool::connect(&url).await.unwrap();
    let rows: Vec<(i64, String, String)> =
        sqlx::query("SELECT id, git_ref, identity FROM findings ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get("id"), r.get("git_ref"), r.get("identity")))
            .collect();
    assert_eq!(
        rows,
        [
            (1, "main".into(), "a".into()),
            (2, "dev".into(), "a".into())
        ]
    );
    let again = insert_finding(&pool, "dev", "a").await;
    assert!(again.is_err(), "one identity once per ref: {again:?}");
    let id = insert_finding(&pool, "main", "c").await.unwrap();
    assert!(
        id > 3,
        "a new finding does not take a deleted one's id: {id}"
    );
    pool.close().await;
    drop_database(pg_name).await;
}
on_both!(findings_keep_their_ids_when_the_key_leads_with_the_identity);
