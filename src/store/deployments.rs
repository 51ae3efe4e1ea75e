//! Deployments: the tenants. Everything else belongs to one.

use super::{col, Store};
use crate::clock;
use crate::ids::DeploymentId;
use serde::Serialize;
use sqlx::any::AnyRow;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Deployment {
    pub id: DeploymentId,
    pub slug: String,
    pub name: String,
}

/// A deployment from a row with its `id`, `slug` and `name` columns.
pub(crate) fn from_row(r: &AnyRow) -> anyhow::Result<Deployment> {
    Ok(Deployment {
        id: col(r, "id")?,
        slug: col(r, "slug")?,
        name: col(r, "name")?,
    })
}

impl Store {
    pub async fn count_deployments(&self) -> anyhow::Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM deployments")
            .fetch_one(self.pool())
            .await?;
        col(&row, "n")
    }

    pub async fn create_deployment(&self, slug: &str, name: &str) -> anyhow::Result<Deployment> {
        let row = sqlx::query(
            "INSERT INTO deployments (slug, name, created_at) VALUES ($1, $2, $3) \
             RETURNING id, slug, name",
        )
        .bind(slug)
        .bind(name)
        .bind(clock::now())
        .fetch_one(self.writer())
        .await?;
        from_row(&row)
    }

    pub async fn deployment_by_slug(&self, slug: &str) -> anyhow::Result<Option<Deployment>> {
        let row = sqlx::query("SELECT id, slug, name FROM deployments WHERE slug = $1")
            .bind(slug)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn first_deployment(&self) -> anyhow::Result<Option<Deployment>> {
        let row = sqlx::query("SELECT id, slug, name FROM deployments ORDER BY id LIMIT 1")
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }
}
