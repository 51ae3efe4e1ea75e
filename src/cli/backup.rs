//! `scanhook backup FILE` and `scanhook restore FILE`: a consistent copy of a live SQLite
//! database, and that copy made the database of a data directory. PostgreSQL has its own
//! tools (`pg_dump`, `pg_restore`; see the README).

use crate::config::DatabaseArgs;
use crate::store::Store;
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// Where the copy goes (a new file).
    pub file: PathBuf,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// A file `scanhook backup` wrote.
    pub file: PathBuf,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

const POSTGRES: &str = "this is a PostgreSQL database: back it up with `pg_dump -Fc`, restore \
    with `pg_restore` into an empty database (see the README, \"Backup and restore\")";

pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let file = args.db.file()?;
    anyhow::ensure!(args.db.sqlite_target(&file)?.is_some(), POSTGRES);
    anyhow::ensure!(
        !args.file.exists(),
        "{} exists: a backup is written to a new file",
        args.file.display()
    );
    let url = args.db.resolve_with_file(&file)?;
    // Made private and empty first: VACUUM INTO fills an empty file with the owner's mode.
    crate::files::private_file(&args.file)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", args.file.display()))?;
    let store = Store::connect(&url).await?;
    let done = store.backup_into(&args.file).await;
    store.close().await;
    if let Err(e) = done {
        let _ = std::fs::remove_file(&args.file);
        return Err(e);
    }
    let key = args.db.secret_key_path(&file)?;
    eprintln!(
        "backed up to {} ({} bytes). Keep it with the secret key file {}: the integration \
         secrets in it are sealed with that key.",
        args.file.display(),
        std::fs::metadata(&args.file)?.len(),
        key.display()
    );
    Ok(())
}

/// Whether a file starts as a SQLite database does.
fn is_sqlite(path: &Path) -> anyhow::Result<bool> {
    use std::io::Read;
    let mut head = [0u8; 16];
    let mut f = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    Ok(f.read_exact(&mut head).is_ok() && &head == b"SQLite format 3\0")
}

pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let file = args.db.file()?;
    let target = args
        .db
        .sqlite_target(&file)?
        .ok_or_else(|| anyhow::anyhow!(POSTGRES))?;
    anyhow::ensure!(
        is_sqlite(&args.file)?,
        "{} is not a SQLite database (a file `scanhook backup` wrote)",
        args.file.display()
    );
    for existing in [
        target.clone(),
        PathBuf::from(format!("{}-wal", target.display())),
    ] {
        let used = std::fs::metadata(&existing).is_ok_and(|m| m.len() > 0);
        anyhow::ensure!(
            !used,
            "{} exists: restore never overwrites a database. Stop scanhook and move it away, \
             or restore into another --data-dir",
            existing.display()
        );
    }
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::files::private_dir(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    // Copied beside the target, then renamed: a restore cut short leaves no half database.
    let partial = target.with_extension("db.restoring");
    std::fs::copy(&args.file, &partial)
        .map_err(|e| anyhow::anyhow!("cannot copy into {}: {e}", partial.display()))?;
    crate::files::private_file(&partial)?;
    std::fs::rename(&partial, &target)?;
    // Brought to this version's schema now, so the first start finds it ready.
    let store = Store::connect(&args.db.resolve_with_file(&file)?).await?;
    store.migrate().await?;
    store.close().await;
    eprintln!(
        "restored {} into {}. Start scanhook with the secret key file the backup was made with \
         (--secret-key-file, default {}).",
        args.file.display(),
        target.display(),
        args.db.secret_key_path(&file)?.display()
    );
    Ok(())
}
