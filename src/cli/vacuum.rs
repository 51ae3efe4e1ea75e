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
    eprintln!("rewriting the database; writers wait until this is done…");
    let done = crate::store::prune::vacuum_incremental(&url).await?;
    anyhow::ensure!(
        done.mode_after == AutoVacuum::Incremental,
        "the database is still not in incremental auto-vacuum mode after VACUUM"
    );
    // The schema brought up to date, as every command that opens the database does.
    let store = Store::connect(&url).await?;
    store.migrate().await?;
    store.close().await;
    let was = match done.mode_before {
        AutoVacuum::Incremental => "already incremental",
        AutoVacuum::Full => "was full",
        AutoVacuum::None => "was none",
    };
    eprintln!(
        "vacuumed: {} → {} bytes; auto_vacuum is incremental ({was})",
        done.bytes_before, done.bytes_after
    );
    Ok(())
}
