//! `scanhook integrations|modes|deliveries …`: webhook targets, which rule modes notify
//! them, and the delivery log, through the server's API.

use super::client::{print, Client, ClientArgs, NO_BODY};
use crate::api::integrations::{
    BackfillIn, BackfillOut, Deleted, DeliveryDetail, DeliveryList, IntegrationIn, IntegrationList,
    IntegrationOut, IntegrationPatch, ModeList, ModeNotifies, NotifyIn, RecoverIn, Requeued,
    Resent, TestOut,
};
use crate::domain::channels::ChannelKind;
use crate::domain::filters::FilterSpec;
use crate::domain::findings::Severity;
use crate::domain::mode::RuleMode;
use crate::domain::outbox::MessageStatus;
use crate::ids::{IntegrationId, MessageId};
use clap::Subcommand;
use reqwest::Method;

#[derive(Debug, Subcommand)]
pub enum IntegrationsCommand {
    /// Add a webhook integration; prints it with its id and `whsec_…` secret.
    Add {
        /// webhook (the seed's signed JSON), slack, teams, discord or template.
        #[arg(long, default_value = "webhook")]
        kind: ChannelKind,
        #[arg(long)]
        name: String,
        #[arg(long)]
        url: String,
        #[command(flatten)]
        template: TemplateArgs,
        #[command(flatten)]
        routing: RoutingArgs,
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
        id: IntegrationId,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        url: Option<String>,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
        #[command(flatten)]
        template: TemplateArgs,
        #[command(flatten)]
        routing: RoutingArgs,
        /// Remove every filter (before applying the filter flags given with it).
        #[arg(long)]
        clear_filters: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Queue the open findings that match the integration's rule modes and filters, as
    /// semgrep_finding messages; prints how many. A second backfill sends only what the
    /// first did not, unless --force.
    Backfill {
        id: IntegrationId,
        /// Count, queue nothing.
        #[arg(long)]
        dry_run: bool,
        /// Send again what an earlier backfill sent.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete an integration (its delivery log stays).
    Delete {
        id: IntegrationId,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// New signing secret; the old one keeps signing beside it for 24 h.
    RotateSecret {
        id: IntegrationId,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Post the test notification now and show what happened.
    Test {
        id: IntegrationId,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// A template integration's body.
#[derive(Debug, Clone, clap::Args)]
pub struct TemplateArgs {
    /// For --kind template: a minijinja template file over `event`, `body` (the webhook
    /// body) and `scanhook_url`.
    #[arg(long)]
    pub template: Option<std::path::PathBuf>,
    /// For --kind template: the content type of what it renders (default application/json).
    #[arg(long)]
    pub content_type: Option<String>,
}

impl TemplateArgs {
    fn source(&self) -> anyhow::Result<Option<String>> {
        self.template
            .as_ref()
            .map(|p| {
                std::fs::read_to_string(p)
                    .map_err(|e| anyhow::anyhow!("cannot read the template {}: {e}", p.display()))
            })
            .transpose()
    }
}

/// What an integration receives: its event types and filters.
#[derive(Debug, Clone, clap::Args)]
pub struct RoutingArgs {
    /// Event types, comma-separated: semgrep_scan, semgrep_finding, finding_fixed,
    /// finding_reopened, finding_triaged (default: semgrep_scan,semgrep_finding).
    #[arg(long, value_delimiter = ',')]
    pub events: Option<Vec<String>>,
    /// Only findings at least this severe: info (= low), low, medium, high, critical.
    #[arg(long)]
    pub min_severity: Option<String>,
    /// Repository globs, comma-separated (acme/*).
    #[arg(long, value_delimiter = ',')]
    pub repos: Option<Vec<String>>,
    /// Ref globs, comma-separated (main,refs/heads/release-*).
    #[arg(long, value_delimiter = ',')]
    pub refs: Option<Vec<String>>,
    /// Rule id globs, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub rules: Option<Vec<String>>,
    /// Path globs, comma-separated (app/**).
    #[arg(long, value_delimiter = ',')]
    pub paths: Option<Vec<String>>,
    /// A CEL expression over `finding`, e.g. '"CWE-89" in finding.cwe'.
    #[arg(long)]
    pub filter: Option<String>,
}

impl RoutingArgs {
    fn any_filter(&self) -> bool {
        self.min_severity.is_some()
            || self.repos.is_some()
            || self.refs.is_some()
            || self.rules.is_some()
            || self.paths.is_some()
            || self.filter.is_some()
    }

    /// `base` with the filters these flags give.
    fn filters_over(&self, mut base: FilterSpec) -> anyhow::Result<FilterSpec> {
        if let Some(s) = &self.min_severity {
            base.min_severity = Some(Severity::parse_loose(s).map_err(anyhow::Error::msg)?);
        }
        for (given, field) in [
            (&self.repos, &mut base.repos),
            (&self.refs, &mut base.refs),
            (&self.rules, &mut base.rules),
            (&self.paths, &mut base.paths),
        ] {
            if let Some(g) = given {
                *field = g
                    .iter()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
            }
        }
        if let Some(e) = &self.filter {
            base.expression = Some(e.clone()).filter(|e| !e.trim().is_empty());
        }
        Ok(base)
    }
}

#[derive(Debug, Subcommand)]
pub enum ModesCommand {
    /// Make a rule mode (monitor, comment, block) notify integrations.
    Notify {
        mode: RuleMode,
        #[arg(required = true)]
        integration_ids: Vec<IntegrationId>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Stop a rule mode notifying integrations.
    Unnotify {
        mode: RuleMode,
        #[arg(required = true)]
        integration_ids: Vec<IntegrationId>,
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
        integration: Option<IntegrationId>,
        #[arg(long)]
        status: Option<MessageStatus>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// One message with every attempt.
    Show {
        msg_id: MessageId,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Send a message again (same webhook-id).
    Resend {
        msg_id: MessageId,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Queue again an integration's failed messages since a time (epoch seconds or RFC 3339).
    Recover {
        integration_id: IntegrationId,
        #[arg(long)]
        since: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

fn integration_line(i: &IntegrationOut) -> String {
    let modes: Vec<&str> = i.modes.iter().map(|m| m.as_str()).collect();
    let events: Vec<&str> = i.events.iter().map(|e| e.as_str()).collect();
    let mut line = format!(
        "{}  {}  {}  {}  {}  modes=[{}]  events=[{}]",
        i.id,
        if i.enabled { "enabled " } else { "disabled" },
        i.kind,
        i.name,
        i.url,
        modes.join(","),
        events.join(",")
    );
    if !i.filters.is_empty() {
        line.push_str(&format!(
            "  filters={}",
            serde_json::to_string(&i.filters).unwrap_or_default()
        ));
    }
    line
}

pub async fn run_integrations(cmd: IntegrationsCommand) -> anyhow::Result<()> {
    match cmd {
        IntegrationsCommand::Add {
            kind,
            name,
            url,
            template,
            routing,
            client,
        } => {
            let filters = routing.filters_over(FilterSpec::default())?;
            let body = IntegrationIn {
                kind: Some(kind),
                name,
                url,
                template: template.source()?,
                content_type: template.content_type.clone(),
                events: routing.events.clone(),
                filters: (!filters.is_empty()).then_some(filters),
            };
            let out: IntegrationOut = Client::new(&client)?
                .call(Method::POST, "/api/v1/integrations", Some(&body))
                .await?;
            print(&client, &out, |i| {
                format!("{}\nsecret: {}", integration_line(i), i.secret)
            });
        }
        IntegrationsCommand::List { client } => {
            let out: IntegrationList = Client::new(&client)?
                .call(Method::GET, "/api/v1/integrations", NO_BODY)
                .await?;
            print(&client, &out, |v| {
                if v.integrations.is_empty() {
                    "no integrations yet: add one with `scanhook integrations add --name NAME --url URL`".into()
                } else {
                    let lines: Vec<String> = v.integrations.iter().map(integration_line).collect();
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
            template,
            routing,
            clear_filters,
            client,
        } => {
            let enabled = match (enable, disable) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            let api = Client::new(&client)?;
            // Filter flags change those filters only: the others stay as they are.
            let filters = if routing.any_filter() || clear_filters {
                let base = if clear_filters {
                    FilterSpec::default()
                } else {
                    api.call::<IntegrationOut>(
                        Method::GET,
                        &format!("/api/v1/integrations/{id}"),
                        NO_BODY,
                    )
                    .await?
                    .filters
                };
                Some(routing.filters_over(base)?)
            } else {
                None
            };
            let body = IntegrationPatch {
                template: template.source()?,
                content_type: template.content_type.clone(),
                name,
                url,
                enabled,
                events: routing.events.clone(),
                filters,
            };
            let out: IntegrationOut = api
                .call(
                    Method::PATCH,
                    &format!("/api/v1/integrations/{id}"),
                    Some(&body),
                )
                .await?;
            print(&client, &out, integration_line);
        }
        IntegrationsCommand::Backfill {
            id,
            dry_run,
            force,
            client,
        } => {
            let out: BackfillOut = Client::new(&client)?
                .call(
                    Method::POST,
                    &format!("/api/v1/integrations/{id}/backfill"),
                    Some(&BackfillIn { dry_run, force }),
                )
                .await?;
            print(&client, &out, |b| {
                let skipped = if b.already_sent > 0 {
                    format!(
                        " ({} sent by an earlier backfill left out; --force sends them again)",
                        b.already_sent
                    )
                } else {
                    String::new()
                };
                if b.dry_run {
                    format!(
                        "would queue {} open findings in {} messages{skipped}",
                        b.findings, b.messages
                    )
                } else {
                    format!(
                        "queued {} open findings in {} messages{skipped}",
                        b.findings, b.messages
                    )
                }
            });
        }
        IntegrationsCommand::Delete { id, client } => {
            let out: Deleted = Client::new(&client)?
                .call(
                    Method::DELETE,
                    &format!("/api/v1/integrations/{id}"),
                    NO_BODY,
                )
                .await?;
            print(&client, &out, |d| format!("deleted {}", d.deleted));
        }
        IntegrationsCommand::RotateSecret { id, client } => {
            let out: IntegrationOut = Client::new(&client)?
                .call(
                    Method::POST,
                    &format!("/api/v1/integrations/{id}/rotate-secret"),
                    NO_BODY,
                )
                .await?;
            print(&client, &out, |i| {
                format!(
                    "new secret: {}\nthe previous secret keeps signing until {}",
                    i.secret,
                    i.previous_secret_valid_until.as_deref().unwrap_or_default()
                )
            });
        }
        IntegrationsCommand::Test { id, client } => {
            let out: TestOut = Client::new(&client)?
                .call(
                    Method::POST,
                    &format!("/api/v1/integrations/{id}/test"),
                    NO_BODY,
                )
                .await?;
            print(&client, &out, |t| match t.status {
                Some(status) => format!(
                    "HTTP {status} in {:.1} ms{}\n{}",
                    t.latency_ms,
                    if t.delivered {
                        ""
                    } else {
                        " (not a 2xx: failed)"
                    },
                    t.response.as_deref().unwrap_or_default()
                ),
                None => format!("failed: {}", t.error.as_deref().unwrap_or_default()),
            });
            if !out.delivered {
                anyhow::bail!("the test notification was not delivered");
            }
        }
    }
    Ok(())
}

pub async fn run_modes(cmd: ModesCommand) -> anyhow::Result<()> {
    let (mode, integration_ids, on, client) = match cmd {
        ModesCommand::Notify {
            mode,
            integration_ids,
            client,
        } => (mode, integration_ids, true, client),
        ModesCommand::Unnotify {
            mode,
            integration_ids,
            client,
        } => (mode, integration_ids, false, client),
        ModesCommand::List { client } => {
            let out: ModeList = Client::new(&client)?
                .call(Method::GET, "/api/v1/modes", NO_BODY)
                .await?;
            print(&client, &out, |v| {
                v.modes
                    .iter()
                    .map(|m| {
                        let ids: Vec<&str> =
                            m.integrations.iter().map(IntegrationId::as_str).collect();
                        format!("{:<8} [{}]", m.mode.as_str(), ids.join(","))
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            return Ok(());
        }
    };
    let path = format!(
        "/api/v1/modes/{mode}/{}",
        if on { "notify" } else { "unnotify" }
    );
    let out: ModeNotifies = Client::new(&client)?
        .call(Method::POST, &path, Some(&NotifyIn { integration_ids }))
        .await?;
    print(&client, &out, |v| {
        let ids: Vec<&str> = v
            .integration_ids
            .iter()
            .map(IntegrationId::as_str)
            .collect();
        format!("{} notify={}: {}", v.mode, v.notify, ids.join(", "))
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
            let out: DeliveryList = Client::new(&client)?
                .call(
                    Method::GET,
                    &format!("/api/v1/deliveries?{}", q.join("&")),
                    NO_BODY,
                )
                .await?;
            print(&client, &out, |v| {
                v.deliveries
                    .iter()
                    .map(|m| {
                        format!(
                            "{}  {:<10} {:<15} attempts={} {}",
                            m.id, m.status, m.kind, m.attempts, m.created_at
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        DeliveriesCommand::Show { msg_id, client } => {
            let out: DeliveryDetail = Client::new(&client)?
                .call(
                    Method::GET,
                    &format!("/api/v1/deliveries/{msg_id}"),
                    NO_BODY,
                )
                .await?;
            print(&client, &out, |m| {
                serde_json::to_string_pretty(m).unwrap_or_default()
            });
        }
        DeliveriesCommand::Resend { msg_id, client } => {
            let out: Resent = Client::new(&client)?
                .call(
                    Method::POST,
                    &format!("/api/v1/deliveries/{msg_id}/resend"),
                    NO_BODY,
                )
                .await?;
            print(&client, &out, |r| format!("{} queued again", r.resent));
        }
        DeliveriesCommand::Recover {
            integration_id,
            since,
            client,
        } => {
            let out: Requeued = Client::new(&client)?
                .call(
                    Method::POST,
                    &format!("/api/v1/integrations/{integration_id}/recover"),
                    Some(&RecoverIn { since }),
                )
                .await?;
            print(&client, &out, |v| {
                format!("{} failed message(s) queued again", v.requeued)
            });
        }
    }
    Ok(())
}
