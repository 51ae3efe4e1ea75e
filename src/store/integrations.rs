//! Webhook integrations and which rule modes notify them.

use super::{col, Backend, Store};
use crate::clock;
use crate::domain::channels::template::Template;
use crate::domain::channels::ChannelKind;
use crate::domain::event_kind::EventKind;
use crate::domain::filters::{FilterSpec, Filters};
use crate::domain::integration::{Integration, SigningSecret, ROTATION_OVERLAP_MICROS};
use crate::domain::mode::RuleMode;
use crate::domain::webhook::WebhookUrl;
use crate::ids::{self, DeploymentId, IntegrationId};
use crate::secrets::SecretKey;
use sqlx::any::AnyRow;
use std::sync::Arc;

const COLUMNS: &str =
    "i.id, i.deployment_id, i.public_id, i.name, i.url, i.enabled, i.disabled_reason, i.secret, \
    i.old_secret, i.old_secret_until, i.failing_since, i.created_at, i.updated_at, i.events, \
    i.filters, i.kind, i.sealed_url, i.template, i.content_type";

/// An integration as stored, its secrets opened with `key`.
fn from_row(r: &AnyRow, key: &SecretKey) -> anyhow::Result<Integration> {
    let kind: ChannelKind = col::<String>(r, "kind")?
        .parse()
        .map_err(anyhow::Error::msg)?;
    // A chat kind's URL is its credential: sealed, with only its masked form in `url`.
    let url = match col::<Option<String>>(r, "sealed_url")? {
        Some(sealed) => key.open(&sealed)?,
        None => col::<String>(r, "url")?,
    };
    Ok(Integration {
        kind,
        template: template_from(
            col::<Option<String>>(r, "template")?,
            col::<Option<String>>(r, "content_type")?,
        ),
        id: col(r, "id")?,
        deployment_id: col(r, "deployment_id")?,
        public_id: col(r, "public_id")?,
        name: col(r, "name")?,
        // Stored as WebhookUrl wrote it, so it parses again.
        url: WebhookUrl::parse(&url).map_err(anyhow::Error::msg)?,
        enabled: col::<i64>(r, "enabled")? != 0,
        disabled_reason: col(r, "disabled_reason")?,
        secret: SigningSecret::new(key.open(&col::<String>(r, "secret")?)?),
        old_secret: col::<Option<String>>(r, "old_secret")?
            .map(|s| key.open(&s).map(SigningSecret::new))
            .transpose()?,
        old_secret_until: col(r, "old_secret_until")?,
        failing_since: col(r, "failing_since")?,
        modes: vec![],
        events: events_from(col(r, "events")?)?,
        filters: filters_from(col(r, "filters")?),
        created_at: col(r, "created_at")?,
        updated_at: col(r, "updated_at")?,
    })
}

/// The stored template, compiled. One that no longer compiles renders nothing (each
/// message it would have rendered counts as a failure) instead of failing every scan.
fn template_from(source: Option<String>, content_type: Option<String>) -> Option<Arc<Template>> {
    let source = source?;
    let content_type = content_type.unwrap_or_else(|| "application/json".into());
    match Template::compile(&source, &content_type) {
        Ok(t) => Some(Arc::new(t)),
        Err(e) => {
            tracing::error!(error = %e, "a stored template no longer compiles; it sends nothing until fixed");
            None
        }
    }
}

/// The `url` and `sealed_url` columns of `url` for an integration of `kind`.
fn url_columns(
    kind: ChannelKind,
    url: &str,
    key: &SecretKey,
) -> anyhow::Result<(String, Option<String>)> {
    if !kind.is_chat() {
        return Ok((url.to_string(), None));
    }
    let parsed = WebhookUrl::parse(url).map_err(anyhow::Error::msg)?;
    Ok((parsed.masked(), Some(key.seal(parsed.as_str()))))
}

/// The stored subscription list; none stored is the seed's two.
fn events_from(stored: Option<String>) -> anyhow::Result<Vec<EventKind>> {
    match stored {
        None => Ok(EventKind::DEFAULT.to_vec()),
        Some(text) => {
            let names: Vec<String> = serde_json::from_str(&text)?;
            EventKind::parse_subscriptions(&names).map_err(anyhow::Error::msg)
        }
    }
}

/// The stored filters, compiled. Filters that no longer compile admit nothing (and say
/// why) instead of failing every scan that routes through them.
fn filters_from(stored: Option<String>) -> Filters {
    let Some(text) = stored else {
        return Filters::default();
    };
    let spec: FilterSpec = match serde_json::from_str(&text) {
        Ok(spec) => spec,
        Err(e) => return Filters::broken(FilterSpec::default(), format!("stored filters: {e}")),
    };
    match spec.compile() {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "stored filters no longer compile; they admit nothing until fixed");
            Filters::broken(spec, e.to_string())
        }
    }
}

/// The stored form of a subscription list: none for the default.
fn events_column(events: &[EventKind]) -> Option<String> {
    (events != EventKind::DEFAULT).then(|| {
        let names: Vec<&str> = events.iter().map(|e| e.as_str()).collect();
        serde_json::to_string(&names).expect("names serialise")
    })
}

/// The stored form of filters: none for no filter.
fn filters_column(spec: &FilterSpec) -> Option<String> {
    (!spec.is_empty()).then(|| serde_json::to_string(spec).expect("filters serialise"))
}

/// An integration to make; its fields checked.
#[derive(Debug, Clone)]
pub struct NewIntegration<'a> {
    pub kind: ChannelKind,
    pub name: &'a str,
    pub url: &'a str,
    /// For `template` (compiled).
    pub template: Option<&'a Template>,
    /// The signing secret (a fresh one when `None`).
    pub secret: Option<&'a str>,
    pub events: &'a [EventKind],
    pub filters: &'a FilterSpec,
}

/// What an update changes; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct IntegrationChange<'a> {
    pub name: Option<&'a str>,
    pub url: Option<&'a str>,
    pub enabled: Option<bool>,
    pub events: Option<&'a [EventKind]>,
    /// Checked (they compile).
    pub filters: Option<&'a FilterSpec>,
    /// For `template` integrations: a new template (compiled).
    pub template: Option<&'a Template>,
}

impl Store {
    /// Creates an enabled integration signing with `secret` (a fresh one when `None`).
    pub async fn create_integration(
        &self,
        deployment_id: DeploymentId,
        new: &NewIntegration<'_>,
    ) -> anyhow::Result<Integration> {
        let _changing = self.integrations_changing();
        let now = clock::now();
        let public_id = IntegrationId::generate();
        let (url, sealed_url) = url_columns(new.kind, new.url, self.key()?)?;
        sqlx::query(
            "INSERT INTO integrations (public_id, deployment_id, name, url, enabled, secret, \
             created_at, updated_at, events, filters, kind, sealed_url, template, content_type) \
             VALUES ($1, $2, $3, $4, 1, $5, $6, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&public_id)
        .bind(deployment_id)
        .bind(new.name)
        .bind(url)
        .bind(
            self.key()?.seal(
                &new.secret
                    .map_or_else(ids::new_signing_secret, str::to_string),
            ),
        )
        .bind(now)
        .bind(events_column(new.events))
        .bind(filters_column(new.filters))
        .bind(new.kind.as_str())
        .bind(sealed_url)
        .bind(new.template.map(|t| t.source()))
        .bind(new.template.map(|t| t.content_type()))
        .execute(self.writer())
        .await?;
        self.integration(deployment_id, &public_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("integration vanished after insert"))
    }

    /// Every integration of the deployment with the modes that notify it, oldest first.
    pub async fn list_integrations(
        &self,
        deployment_id: DeploymentId,
    ) -> anyhow::Result<Vec<Integration>> {
        let sql = format!(
            "SELECT {COLUMNS}, mi.mode FROM integrations i \
             LEFT JOIN mode_integrations mi ON mi.integration_id = i.id \
             WHERE i.deployment_id = $1 ORDER BY i.id"
        );
        let rows = sqlx::query(&sql)
            .bind(deployment_id)
            .fetch_all(self.pool())
            .await?;
        let mut out: Vec<Integration> = Vec::new();
        for row in &rows {
            let id: i64 = col(row, "id")?;
            if out.last().map(|i| i.id) != Some(id) {
                out.push(from_row(row, self.key()?)?);
            }
            if let Some(mode) = col::<Option<String>>(row, "mode")? {
                let last = out.last_mut().expect("pushed above");
                last.modes.push(mode.parse().map_err(anyhow::Error::msg)?);
                last.modes.sort();
            }
        }
        Ok(out)
    }

    /// [`Store::list_integrations`], each shareable: what routing and queueing take.
    pub(crate) async fn shared_integrations(
        &self,
        deployment_id: DeploymentId,
    ) -> anyhow::Result<Vec<std::sync::Arc<Integration>>> {
        let list = self.list_integrations(deployment_id).await?;
        Ok(list.into_iter().map(std::sync::Arc::new).collect())
    }

    /// Integrations by row id, without their modes (what delivery needs).
    pub async fn integrations_by_ids(&self, ids: &[i64]) -> anyhow::Result<Vec<Integration>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let list: Vec<String> = ids.iter().map(i64::to_string).collect();
        let sql = format!(
            "SELECT {COLUMNS} FROM integrations i WHERE i.id IN ({})",
            list.join(",")
        );
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        let key = self.key()?;
        rows.iter().map(|r| from_row(r, key)).collect()
    }

    pub async fn integration(
        &self,
        deployment_id: DeploymentId,
        public_id: &IntegrationId,
    ) -> anyhow::Result<Option<Integration>> {
        Ok(self
            .list_integrations(deployment_id)
            .await?
            .into_iter()
            .find(|i| &i.public_id == public_id))
    }

    /// Applies a change; enabling clears the failure streak and the reason it was disabled.
    pub async fn update_integration(
        &self,
        deployment_id: DeploymentId,
        public_id: &IntegrationId,
        change: &IntegrationChange<'_>,
    ) -> anyhow::Result<Option<Integration>> {
        let _changing = self.integrations_changing();
        let enabled = change.enabled.map(i64::from).unwrap_or(-1);
        // The kind is fixed at creation; it says how a new URL is stored.
        let (url, sealed_url) = match change.url {
            Some(u) => {
                let Some(now) = self.integration(deployment_id, public_id).await? else {
                    return Ok(None);
                };
                let (url, sealed) = url_columns(now.kind, u, self.key()?)?;
                (Some(url), sealed)
            }
            None => (None, None),
        };
        sqlx::query(
            "UPDATE integrations SET name = COALESCE($1, name), url = COALESCE($2, url), \
             sealed_url = COALESCE($11, sealed_url), \
             template = COALESCE($12, template), content_type = COALESCE($13, content_type), \
             enabled = CASE WHEN $3 < 0 THEN enabled ELSE $3 END, \
             disabled_reason = CASE WHEN $3 = 1 THEN NULL ELSE disabled_reason END, \
             failing_since = CASE WHEN $3 = 1 THEN NULL ELSE failing_since END, \
             events = CASE WHEN $7 = 1 THEN $8 ELSE events END, \
             filters = CASE WHEN $9 = 1 THEN $10 ELSE filters END, \
             updated_at = $4 WHERE deployment_id = $5 AND public_id = $6",
        )
        .bind(change.name)
        .bind(url)
        .bind(enabled)
        .bind(clock::now())
        .bind(deployment_id)
        .bind(public_id)
        .bind(i64::from(change.events.is_some()))
        .bind(change.events.and_then(events_column))
        .bind(i64::from(change.filters.is_some()))
        .bind(change.filters.and_then(filters_column))
        .bind(sealed_url)
        .bind(change.template.map(|t| t.source()))
        .bind(change.template.map(|t| t.content_type()))
        .execute(self.writer())
        .await?;
        self.integration(deployment_id, public_id).await
    }

    /// Deletes an integration and its mode links, and fails what it still had to send
    /// (nothing would ever claim it again); its delivery log stays. An attempt in flight
    /// is logged when it ends, without moving its message on.
    pub async fn delete_integration(
        &self,
        deployment_id: DeploymentId,
        public_id: &IntegrationId,
    ) -> anyhow::Result<bool> {
        let _changing = self.integrations_changing();
        let mut tx = self.begin_write().await?;
        let lock = self.for_update();
        let Some(row) = sqlx::query(&format!(
            "SELECT id FROM integrations WHERE deployment_id = $1 AND public_id = $2 {lock}"
        ))
        .bind(deployment_id)
        .bind(public_id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            tx.rollback().await?;
            return Ok(false);
        };
        let id: i64 = col(&row, "id")?;
        // On SQLite (one writer) one statement per status, so that each reads its partial
        // index rather than the integration's whole log (`+ 0`: the lease index, see
        // `claim_messages`). On PostgreSQL one statement for both: an attempt recorded
        // meanwhile may move a message from delivering to pending, and only a statement
        // that matches both states re-checks the row it waited for and still fails it.
        let failing: &[&str] = match self.backend() {
            Backend::Sqlite => &[
                "status = 'pending' AND integration_id = $2",
                "status = 'delivering' AND integration_id + 0 = $2",
            ],
            Backend::Postgres => &["status IN ('pending', 'delivering') AND integration_id = $2"],
        };
        for which in failing {
            sqlx::query(&format!(
                "UPDATE messages SET status = 'failed', lease_until = NULL, next_attempt_at = $1 \
                 WHERE {which}"
            ))
            .bind(clock::now())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM mode_integrations WHERE integration_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM integrations WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// A new secret; the old one keeps signing beside it for 24 hours.
    pub async fn rotate_secret(
        &self,
        deployment_id: DeploymentId,
        public_id: &IntegrationId,
    ) -> anyhow::Result<Option<Integration>> {
        let _changing = self.integrations_changing();
        let now = clock::now();
        sqlx::query(
            "UPDATE integrations SET old_secret = secret, old_secret_until = $1, secret = $2, \
             updated_at = $3 WHERE deployment_id = $4 AND public_id = $5",
        )
        .bind(now + ROTATION_OVERLAP_MICROS)
        .bind(self.key()?.seal(&ids::new_signing_secret()))
        .bind(now)
        .bind(deployment_id)
        .bind(public_id)
        .execute(self.writer())
        .await?;
        self.integration(deployment_id, public_id).await
    }

    /// Makes a rule mode notify (or stop notifying) integrations. Unknown ids are returned.
    pub async fn set_mode_notifies(
        &self,
        deployment_id: DeploymentId,
        mode: RuleMode,
        public_ids: &[IntegrationId],
        notify: bool,
    ) -> anyhow::Result<Vec<IntegrationId>> {
        let _changing = self.integrations_changing();
        let all = self.list_integrations(deployment_id).await?;
        let mut unknown = Vec::new();
        let mut tx = self.begin_write().await?;
        for pid in public_ids {
            let Some(i) = all.iter().find(|i| &i.public_id == pid) else {
                unknown.push(pid.clone());
                continue;
            };
            let sql = if notify {
                "INSERT INTO mode_integrations (deployment_id, mode, integration_id) \
                 VALUES ($1, $2, $3) ON CONFLICT (deployment_id, mode, integration_id) DO NOTHING"
            } else {
                "DELETE FROM mode_integrations WHERE deployment_id = $1 AND mode = $2 \
                 AND integration_id = $3"
            };
            sqlx::query(sql)
                .bind(deployment_id)
                .bind(mode.as_str())
                .bind(i.id)
                .execute(&mut *tx)
                .await?;
        }
        if unknown.is_empty() {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(unknown)
    }
}
