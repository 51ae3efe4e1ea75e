//! `scanhook rotate-secret-key --new-key-file PATH`: re-seals every secret of the database
//! under a new key (made in PATH if the file does not exist) in one transaction. Stop the
//! scanhook processes first; start them again with the new key file.

use crate::config::DatabaseArgs;
use crate::secrets::SecretKey;
use crate::store::Store;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Clone, Args)]
pub struct RotateArgs {
    /// Where the new key is, or is to be made.
    #[arg(long)]
    pub new_key_file: PathBuf,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

pub async fn run(args: RotateArgs) -> anyhow::Result<()> {
    let file = args.db.file()?;
    let old_path = args.db.secret_key_path(&file)?;
    anyhow::ensure!(
        old_path != args.new_key_file,
        "the new key file must not be the current one ({})",
        old_path.display()
    );
    let old = SecretKey::read(&old_path)?;
    let (new, created) = SecretKey::read_or_create(&args.new_key_file)?;
    let store = Store::connect(&args.db.resolve_with_file(&file)?).await?;
    store.migrate().await?;
    let store = store.with_key(old);
    // The current key must be the database's before anything is re-sealed.
    store.adopt_key().await?;
    let n = store.rotate_key(&new).await?;
    store.close().await;
    eprintln!(
        "{n} integration secret(s) re-sealed under the key {} in {}{}.\n\
         Start every scanhook process of this database with --secret-key-file {} \
         (or SCANHOOK_SECRET_KEY_FILE); keep the old key file until a backup made after this \
         point exists.",
        new.fingerprint(),
        args.new_key_file.display(),
        if created { " (made now)" } else { "" },
        args.new_key_file.display()
    );
    Ok(())
}
