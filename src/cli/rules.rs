//! `scanhook rules add|mode|list`: rule files and modes, through the server's API.

use super::client::{print, Client, ClientArgs, NO_BODY};
use crate::api::admin::{AddRulesIn, ModeSet, RuleFileIn, RuleList, RulesAdded, SetModeIn};
use crate::domain::mode::RuleMode;
use clap::Subcommand;
use reqwest::Method;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Load Semgrep rule files (YAML as written) into a policy.
    Add {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Policy name, created if missing (default: the Rule Board).
        #[arg(long)]
        policy: Option<String>,
        /// monitor, comment or block.
        #[arg(long, default_value = "monitor")]
        mode: RuleMode,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change a rule's mode.
    Mode {
        rule_id: String,
        /// monitor, comment or block.
        mode: RuleMode,
        /// The policy to change it in (needed when the rule is in several).
        #[arg(long)]
        policy: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List rules with their effective mode and policy.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
}

pub async fn run(cmd: RulesCommand) -> anyhow::Result<()> {
    match cmd {
        RulesCommand::Add {
            files,
            policy,
            mode,
            client,
        } => {
            let mut uploads = Vec::new();
            for f in &files {
                let content = std::fs::read_to_string(f)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))?;
                uploads.push(RuleFileIn {
                    name: f.display().to_string(),
                    content,
                });
            }
            let body = AddRulesIn {
                files: uploads,
                policy,
                mode: Some(mode.as_str().to_string()),
            };
            let out: RulesAdded = Client::new(&client)?
                .call(Method::POST, "/api/v1/rules", Some(&body))
                .await?;
            print(&client, &out, |o| {
                format!(
                    "{} rule(s) stored in policy {:?} as {}",
                    o.rules.len(),
                    o.policy.name,
                    o.mode
                )
            });
        }
        RulesCommand::Mode {
            rule_id,
            mode,
            policy,
            client,
        } => {
            let body = SetModeIn {
                mode: mode.as_str().to_string(),
                policy,
            };
            let path = format!("/api/v1/rules/{}/mode", urlencode(&rule_id));
            let out: ModeSet = Client::new(&client)?
                .call(Method::PUT, &path, Some(&body))
                .await?;
            print(&client, &out, |o| {
                format!("{}: {} in policy {:?}", o.rule_id, o.mode, o.policy.name)
            });
        }
        RulesCommand::List { client } => {
            let out: RuleList = Client::new(&client)?
                .call(Method::GET, "/api/v1/rules", NO_BODY)
                .await?;
            print(&client, &out, table);
        }
    }
    Ok(())
}

fn table(out: &RuleList) -> String {
    if out.rules.is_empty() {
        return "no rules yet: add some with `scanhook rules add FILE.yml`".into();
    }
    let mut lines = vec![format!("{:<48} {:<8} POLICY", "RULE", "MODE")];
    for r in &out.rules {
        lines.push(format!(
            "{:<48} {:<8} {}",
            r.rule_id,
            r.mode.map_or("-", RuleMode::as_str),
            r.policy.as_ref().map_or("-", |p| p.name.as_str())
        ));
    }
    lines.join("\n")
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
