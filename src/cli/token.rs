//! `scanhook token create`: makes a token directly in the database and prints only it.

use crate::config::DatabaseArgs;
use crate::store::tokens::Scope;
use crate::store::Store;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints the token alone on stdout.
    Create {
        /// `ci` for `semgrep ci`, `admin` for everything.
        #[arg(long, value_enum)]
        scope: Scope,
        /// Deployment slug (default: the first deployment).
        #[arg(long)]
        deployment: Option<String>,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

pub async fn run(cmd: TokenCommand) -> anyhow::Result<()> {
    let TokenCommand::Create {
        scope,
        deployment,
        db,
    } = cmd;
    let store = Store::connect(&db.resolve()?).await?;
    store.migrate().await?;
    let dep = match &deployment {
        Some(slug) => store
            .deployment_by_slug(slug)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no deployment with slug {slug:?}"))?,
        None => store.first_deployment().await?.ok_or_else(|| {
            anyhow::anyhow!("the database has no deployment yet: start `scanhook serve` once")
        })?,
    };
    let token = store.create_token(dep.id, scope).await?;
    println!("{token}");
    store.close().await;
    Ok(())
}
