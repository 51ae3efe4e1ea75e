//! `scanhook integrations|modes|deliveries …`: webhook targets, which rule modes notify
//! them, and the delivery log, through the server's API.

use super::client::{Client, ClientArgs};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

#[derive(Debug, Subcommand)]
pub enum IntegrationsCommand {
    /// Add a webhook integration; prints it with its id and `whsec_…` secret.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        url: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List integrations.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change an integration.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        url: Option<String>,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete an integration (its delivery log stays).
    Delete {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// New signing secret; the old one keeps signing beside it for 24 h.
    RotateSecret {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Post the test notification now and show what happened.
    Test {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModesCommand {
    /// Make a rule mode (monitor, comment, block) notify integrations.
    Notify {
        mode: String,
        #[arg(required = true)]
        integration_ids: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Stop a rule mode notifying integrations.
    Unnotify {
        mode: String,
        #[arg(required = true)]
        integration_ids: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Which integrations each rule mode notifies.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// The delivery log, newest first.
    List {
        #[arg(long)]
        integration: Option<String>,
        #[arg(long, value_parser = crate::store::messages::STATES)]
        status: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// One message with every attempt.
    Show {
        msg_id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Send a message again (same webhook-id).
    Resend {
        msg_id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Queue again an integration's failed messages since a time (epoch seconds or RFC 3339).
    Recover {
        integration_id: String,
        #[arg(long)]
        since: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

fn print(client: &ClientArgs, out: &Value, human: impl FnOnce(&Value) -> String) {
    if client.json {
        println!("{out}");
    } else {
        println!("{}", human(out));
    }
}

fn integration_line(i: &Value) -> String {
    format!(
        "{}  {}  {}  {}  modes={}",
        i["id"].as_str().unwrap_or_default(),
        if i["enabled"] == true {
            "enabled "
        } else {
            "disabled"
        },
        i["name"].as_str().unwrap_or_default(),
        i["url"].as_str().unwrap_or_default(),
        i["modes"]
    )
}

pub async fn run_integrations(cmd: IntegrationsCommand) -> anyhow::Result<()> {
    match cmd {
        IntegrationsCommand::Add { name, url, client } => {
            let out = Client::new(&client)?
                .call(
                    Method::POST,
                    "/api/v1/integrations",
                    Some(&json!({"name": name, "url": url})),
                )
                .await?;
            print(&client, &out, |i| {
                format!(
                    "{}\nsecret: {}",
                    integration_line(i),
                    i["secret"].as_str().unwrap_or_default()
                )
            });
        }
        IntegrationsCommand::List { client } => {
            let out = Client::new(&client)?
                .call(Method::GET, "/api/v1/integrations", None)
                .await?;
            print(&client, &out, |v| {
                let lines: Vec<String> = v["integrations"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(integration_line)
                    .collect();
                if lines.is_empty() {
                    "no integrations yet: add one with `scanhook integrations add --name NAME --url URL`".into()
                } else {
                    lines.join("\n")
                }
            });
        }
        IntegrationsCommand::Update {
            id,
            name,
            url,
            enable,
            disable,
            client,
        } => {
            let enabled = match (enable, disable) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            let body = json!({"name": name, "url": url, "enabled": enabled});
            let out = Client::new(&client)?
                .call(
                    Method::PATCH,
                    &format!("/api/v1/integrations/{id}"),
                    Some(&body),
                )
                .await?;
            print(&client, &out, integration_line);
        }
        IntegrationsCommand::Delete { id, client } => {
            let out = Client::new(&client)?
                .call(Method::DELETE, &format!("/api/v1/integrations/{id}"), None)
                .await?;
            print(&client, &out, |_| format!("deleted {id}"));
        }
        IntegrationsCommand::RotateSecret { id, client } => {
            let out = Client::new(&client)?
                .call(
                    Method::POST,
                    &format!("/api/v1/integrations/{id}/rotate-secret"),
                    Some(&json!({})),
                )
                .await?;
            print(&client, &out, |i| {
                format!(
                    "new secret: {}\nthe previous secret keeps signing until {}",
                    i["secret"].as_str().unwrap_or_default(),
                    i["previous_secret_valid_until"]
                        .as_str()
                        .unwrap_or_default()
                )
            });
        }
        IntegrationsCommand::Test { id, client } => {
            let out = Client::new(&client)?
                .call(
                    Method::POST,
                    &format!("/api/v1/integrations/{id}/test"),
                    Some(&json!({})),
                )
                .await?;
            print(&client, &out, |t| match t["status"].as_i64() {
                Some(status) => format!(
                    "HTTP {status} in {:.1} ms{}\n{}",
                    t["latency_ms"].as_f64().unwrap_or_default(),
                    if t["delivered"] == true {
                        ""
                    } else {
                        " (not a 2xx: failed)"
                    },
                    t["response"].as_str().unwrap_or_default()
                ),
                None => format!("failed: {}", t["error"].as_str().unwrap_or_default()),
            });
            if out["delivered"] != true {
                anyhow::bail!("the test notification was not delivered");
            }
        }
    }
    Ok(())
}

pub async fn run_modes(cmd: ModesCommand) -> anyhow::Result<()> {
    let (path, body, client) = match cmd {
        ModesCommand::Notify {
            mode,
            integration_ids,
            client,
        } => (
            format!("/api/v1/modes/{mode}/notify"),
            json!({"integration_ids": integration_ids}),
            client,
        ),
        ModesCommand::Unnotify {
            mode,
            integration_ids,
            client,
        } => (
            format!("/api/v1/modes/{mode}/unnotify"),
            json!({"integration_ids": integration_ids}),
            client,
        ),
        ModesCommand::List { client } => {
            let out = Client::new(&client)?
                .call(Method::GET, "/api/v1/modes", None)
                .await?;
            print(&client, &out, |v| {
                v["modes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| {
                        format!(
                            "{:<8} {}",
                            m["mode"].as_str().unwrap_or_default(),
                            m["integrations"]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            return Ok(());
        }
    };
    let out = Client::new(&client)?
        .call(Method::POST, &path, Some(&body))
        .await?;
    print(&client, &out, |v| {
        format!(
            "{} notify={}: {}",
            v["mode"], v["notify"], v["integration_ids"]
        )
    });
    Ok(())
}

pub async fn run_deliveries(cmd: DeliveriesCommand) -> anyhow::Result<()> {
    match cmd {
        DeliveriesCommand::List {
            integration,
            status,
            client,
        } => {
            let mut q = vec![];
            if let Some(i) = integration {
                q.push(format!("integration={i}"));
            }
            if let Some(s) = status {
                q.push(format!("status={s}"));
            }
            let out = Client::new(&client)?
                .call(
                    Method::GET,
                    &format!("/api/v1/deliveries?{}", q.join("&")),
                    None,
                )
                .await?;
            print(&client, &out, |v| {
                v["deliveries"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| {
                        format!(
                            "{}  {:<10} {:<15} attempts={} {}",
                            m["id"].as_str().unwrap_or_default(),
                            m["status"].as_str().unwrap_or_default(),
                            m["kind"].as_str().unwrap_or_default(),
                            m["attempts"],
                            m["created_at"].as_str().unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        DeliveriesCommand::Show { msg_id, client } => {
            let out = Client::new(&client)?
                .call(Method::GET, &format!("/api/v1/deliveries/{msg_id}"), None)
                .await?;
            print(&client, &out, |m| {
                serde_json::to_string_pretty(m).unwrap_or_default()
            });
        }
        DeliveriesCommand::Resend { msg_id, client } => {
            let out = Client::new(&client)?
                .call(
                    Method::POST,
                    &format!("/api/v1/deliveries/{msg_id}/resend"),
                    Some(&json!({})),
                )
                .await?;
            print(&client, &out, |_| format!("{msg_id} queued again"));
        }
        DeliveriesCommand::Recover {
            integration_id,
            since,
            client,
        } => {
            let out = Client::new(&client)?
                .call(
                    Method::POST,
                    &format!("/api/v1/integrations/{integration_id}/recover"),
                    Some(&json!({"since": since})),
                )
                .await?;
            print(&client, &out, |v| {
                format!("{} failed message(s) queued again", v["requeued"])
            });
        }
    }
    Ok(())
}
