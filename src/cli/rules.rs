//! `scanhook rules add|mode|list`: rule files and modes, through the server's API.

use super::client::{Client, ClientArgs};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};
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
        mode: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change a rule's mode.
    Mode {
        rule_id: String,
        /// monitor, comment or block.
        mode: String,
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
                uploads.push(json!({"name": f.display().to_string(), "content": content}));
            }
            let body = json!({"files": uploads, "policy": policy, "mode": mode});
            let out = Client::new(&client)?
                .call(Method::POST, "/api/v1/rules", Some(&body))
                .await?;
            if client.json {
                println!("{out}");
            } else {
                let n = out["rules"].as_array().map_or(0, Vec::len);
                println!(
                    "{n} rule(s) stored in policy {} as {}",
                    out["policy"]["name"], out["mode"]
                );
            }
        }
        RulesCommand::Mode {
            rule_id,
            mode,
            policy,
            client,
        } => {
            let body = json!({"mode": mode, "policy": policy});
            let path = format!("/api/v1/rules/{}/mode", urlencode(&rule_id));
            let out = Client::new(&client)?
                .call(Method::PUT, &path, Some(&body))
                .await?;
            if client.json {
                println!("{out}");
            } else {
                println!(
                    "{rule_id}: {} in policy {}",
                    out["mode"], out["policy"]["name"]
                );
            }
        }
        RulesCommand::List { client } => {
            let out = Client::new(&client)?
                .call(Method::GET, "/api/v1/rules", None)
                .await?;
            if client.json {
                println!("{out}");
            } else {
                print_table(&out);
            }
        }
    }
    Ok(())
}

fn print_table(out: &Value) {
    let rules = out["rules"].as_array().cloned().unwrap_or_default();
    if rules.is_empty() {
        println!("no rules yet: add some with `scanhook rules add FILE.yml`");
        return;
    }
    println!("{:<48} {:<8} POLICY", "RULE", "MODE");
    for r in rules {
        println!(
            "{:<48} {:<8} {}",
            r["rule_id"].as_str().unwrap_or_default(),
            r["mode"].as_str().unwrap_or("-"),
            r["policy"]["name"].as_str().unwrap_or("-")
        );
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
