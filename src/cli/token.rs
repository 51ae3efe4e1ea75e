//! `scanhook token create|list|revoke`: on the database directly (what a fresh install
//! needs: there is no token yet to call the API with), or through a running server's API
//! with an admin token when `--server` / `SCANHOOK_URL` is given.

use super::client::{print, Client, ClientArgs, Secret, NO_BODY};
use crate::api::admin::{CreateTokenIn, TokenCreated, TokenList, TokenOut, TokenRevoked};
use crate::clock;
use crate::config::DatabaseArgs;
use crate::domain::tokens::{NewToken, Scope};
use crate::ids::TokenId;
use crate::store::deployments::Deployment;
use crate::store::tokens::Revoked;
use crate::store::Store;
use clap::{Args, Subcommand};
use reqwest::Method;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints the token alone on stdout (`--json`: with its id).
    Create {
        /// `ci` for `semgrep ci`, `admin` for everything.
        #[arg(long)]
        scope: Scope,
        /// What it is for, shown in `token list`.
        #[arg(long)]
        name: Option<String>,
        /// How long it lasts, e.g. 90d (default: until revoked).
        #[arg(long)]
        expires_in: Option<String>,
        /// For a CI token: the repositories it may scan, comma-separated globs (acme/*).
        #[arg(long, value_delimiter = ',')]
        repos: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    /// List the tokens (never their secrets).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Revoke a token by its id (tok_…): its next request gets 401, its UI sessions end.
    Revoke {
        id: TokenId,
        #[command(flatten)]
        target: Target,
    },
}

/// The database (default) or, with `--server`, a running server.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Deployment slug (default: the first deployment). Database only.
    #[arg(long)]
    deployment: Option<String>,
    /// Print machine-readable JSON.
    #[arg(long)]
    json: bool,
    /// Work through this server's API instead of the database.
    #[arg(long, env = "SCANHOOK_URL")]
    server: Option<String>,
    /// Admin token for `--server`.
    #[arg(long, env = "SCANHOOK_TOKEN", hide_env_values = true)]
    token: Option<Secret>,
    #[command(flatten)]
    db: DatabaseArgs,
}

impl Target {
    fn client(&self) -> Option<ClientArgs> {
        self.server.as_ref().map(|server| ClientArgs {
            server: server.clone(),
            token: self.token.clone(),
            json: self.json,
        })
    }

    async fn open(&self) -> anyhow::Result<(Store, Deployment)> {
        let store = Store::connect(&self.db.resolve()?).await?;
        store.migrate().await?;
        let dep = match &self.deployment {
            Some(slug) => store
                .deployment_by_slug(slug)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no deployment with slug {slug:?}"))?,
            None => store.first_deployment().await?.ok_or_else(|| {
                anyhow::anyhow!("the database has no deployment yet: start `scanhook serve` once")
            })?,
        };
        Ok((store, dep))
    }
}

fn line(t: &TokenOut) -> String {
    let repos = t
        .repos
        .as_ref()
        .map(|r| r.join(","))
        .unwrap_or_else(|| "*".into());
    format!(
        "{}  {:<5} {:<7}  {}  repos={}  created {}  last used {}  expires {}",
        t.id,
        t.scope,
        t.state,
        t.name,
        repos,
        t.created_at,
        t.last_used_at.as_deref().unwrap_or("never"),
        t.expires_at.as_deref().unwrap_or("never"),
    )
}

pub async fn run(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            scope,
            name,
            expires_in,
            repos,
            target,
        } => {
            let repos = (!repos.is_empty()).then_some(repos);
            let created = match target.client() {
                Some(client) => {
                    let body = CreateTokenIn {
                        scope,
                        name,
                        expires_in,
                        repos,
                    };
                    Client::new(&client)?
                        .call::<TokenCreated>(Method::POST, "/api/v1/tokens", Some(&body))
                        .await?
                }
                None => {
                    let new = NewToken::new(
                        scope,
                        name.as_deref(),
                        expires_in.as_deref(),
                        repos.as_deref(),
                        clock::now(),
                    )
                    .map_err(anyhow::Error::msg)?;
                    let (store, dep) = target.open().await?;
                    let (token, row) = store.issue_token(dep.id, &new).await?;
                    store.close().await;
                    TokenCreated {
                        token,
                        id: row.public_id,
                        scope: row.scope,
                        deployment: dep.slug,
                        name: row.name,
                        expires_at: row.expires_at.map(clock::iso),
                        repos: row.repos,
                    }
                }
            };
            if target.json {
                println!("{}", serde_json::to_string(&created)?);
            } else {
                println!("{}", created.token);
            }
        }
        TokenCommand::List { target } => {
            let list = match target.client() {
                Some(client) => {
                    Client::new(&client)?
                        .call::<TokenList>(Method::GET, "/api/v1/tokens", NO_BODY)
                        .await?
                }
                None => {
                    let (store, dep) = target.open().await?;
                    let now = clock::now();
                    let tokens = store.list_tokens(dep.id).await?;
                    store.close().await;
                    TokenList {
                        tokens: tokens.iter().map(|t| TokenOut::new(t, now)).collect(),
                    }
                }
            };
            let args = ClientArgs {
                server: String::new(),
                token: None,
                json: target.json,
            };
            print(&args, &list, |l| {
                l.tokens.iter().map(line).collect::<Vec<_>>().join("\n")
            });
        }
        TokenCommand::Revoke { id, target } => {
            let revoked = match target.client() {
                Some(client) => {
                    Client::new(&client)?
                        .call::<TokenRevoked>(
                            Method::DELETE,
                            &format!("/api/v1/tokens/{id}"),
                            NO_BODY,
                        )
                        .await?
                }
                None => {
                    let (store, dep) = target.open().await?;
                    let done = store.revoke_token(dep.id, &id).await?;
                    store.close().await;
                    match done {
                        Revoked::NoSuchToken => anyhow::bail!("no token {id} in {}", dep.slug),
                        r => TokenRevoked {
                            revoked: id,
                            already: r == Revoked::Already,
                        },
                    }
                }
            };
            let args = ClientArgs {
                server: String::new(),
                token: None,
                json: target.json,
            };
            print(&args, &revoked, |r| {
                if r.already {
                    format!("{} was already revoked", r.revoked)
                } else {
                    format!("revoked {}", r.revoked)
                }
            });
        }
    }
    Ok(())
}
