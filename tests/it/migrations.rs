//! Upgrades keep what was stored: a database written by an earlier version is migrated in
//! place, on both backends (with migration 11's message totals counted from its rows).

use crate::harness::{pg_admin, pg_server, with_database, Db};
use crate::on_both;
use scanhook::domain::outbox::MessageStatus;
use scanhook::store::Store;
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor, Row};
use std::borrow::Cow;
use std::path::Path;

/// Queued messages keep their bodies when bodies move to the shared `payloads` table
/// (migration 5), and new payloads get ids of their own.
async fn message_bodies_survive_the_move_to_payloads(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let (url, pg_name) = match db {
        Db::Sqlite => (
            format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display()),
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
    before.migrations = Cow::Owned(before.migrations[..4].to_vec());
    let pool = AnyPool::connect(&url).await.unwrap();
    before.run(&pool).await.unwrap();
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
    if let Some(name) = pg_name {
        pg_admin(
            &pg_server(),
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )
        .await;
    }
}
on_both!(message_bodies_survive_the_move_to_payloads);
