//! `scanhook vacuum`: the one-time `VACUUM` that puts an existing SQLite database in
//! incremental auto-vacuum mode, after which the pruner (`crate::retention`) gives the space
//! of what it prunes back to the file system. Databases made by this version start in that
//! mode and never need it. PostgreSQL relies on its autovacuum.

use crate::config::DatabaseArgs;
use crate::store::prune::AutoVacuum;
use crate::store::Store;

pub async fn run(args: DatabaseArgs) -> anyhow::Result<()> {
    let file = args.file()?;
    anyhow::ensure!(
        args.sqlite_target(&file)?.is_some(),
        "this is a PostgreSQL database: autovacuum makes the space of pruned rows reusable, \
         nothing to do (see docs/CONFIG.md, Retention)"
    );
    let url = args.resolve_with_file(&file)?;
    let store = Store::connect(&url).await?;
    store.migrate().await?;
    let before = store.storage_facts().await?.0;
    let mode = store.auto_vacuum().await?;
    store.close().await;
    eprintln!("rewriting the database ({before} bytes); writers wait until this is done…");
    crate::store::prune::vacuum_incremental(&url).await?;
    let store = Store::connect(&url).await?;
    let after = store.storage_facts().await?.0;
    let now = store.auto_vacuum().await?;
    store.close().await;
    anyhow::ensure!(
        now == Some(AutoVacuum::Incremental),
        "the database is still not in incremental auto-vacuum mode after VACUUM"
    );
    let was = match mode {
        Some(AutoVacuum::Incremental) => "already incremental",
        Some(AutoVacuum::Full) => "was full",
        _ => "was none",
    };
    eprintln!("vacuumed: {before} → {after} bytes; auto_vacuum is incremental ({was})");
    Ok(())
}
