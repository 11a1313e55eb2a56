//! Webhook endpoints a tenant registers for job events, and their delivery log.

use chrono::{DateTime, Utc};
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use wxpilot_entity::{webhook_delivery, webhook_endpoint};

use super::audit::{self, Action, REDACTED};
use super::{Actor, Page, PageRequest, fetch_page};
use crate::error::ServiceResult;
use crate::ids::new_id;
use crate::jobs::webhooks::EVENTS;
use crate::secrets::SecretBox;
use crate::validate::Checks;

const RESOURCE: &str = "webhook";

/// The sealing context of an endpoint's signing secret.
pub fn secret_context(endpoint_id: &str) -> String {
    format!("webhook_endpoints/{endpoint_id}/secret")
}

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where to POST events: an `http://` or `https://` URL.
    #[schema(example = "https://hooks.agency.cn/wxpilot")]
    pub url: String,
    /// Events to send: any of `job.succeeded`, `job.failed`, `job.dead`.
    pub events: Vec<String>,
    /// Signing secret (16–128 characters); one is generated when absent. Write-only.
    #[schema(value_type = Option<String>, write_only)]
    pub secret: Option<SecretString>,
}

/// Changes to an endpoint.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    /// New URL.
    pub url: Option<String>,
    /// New event list.
    pub events: Option<Vec<String>>,
    /// Pause (`false`) or resume (`true`) deliveries.
    pub active: Option<bool>,
}

/// An endpoint as the API shows it: never its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Webhook {
    /// Endpoint id.
    pub id: String,
    /// URL.
    pub url: String,
    /// Events sent.
    pub events: Vec<String>,
    /// Whether deliveries are sent.
    pub active: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<webhook_endpoint::Model> for Webhook {
    fn from(m: webhook_endpoint::Model) -> Self {
        Self {
            events: serde_json::from_value(m.events).unwrap_or_default(),
            id: m.id,
            url: m.url,
            active: m.active,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// A new endpoint and, this once, its signing secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedWebhook {
    /// The endpoint.
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The signing secret; shown only now.
    pub secret: String,
}

/// One delivery and how it went.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookDelivery {
    /// Delivery id (also the event's `id` and the `Wxpilot-Delivery` header).
    pub id: String,
    /// Event.
    pub event: String,
    /// The job it reports.
    pub job_id: Option<String>,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// The receiver's last HTTP status.
    pub last_status_code: Option<i32>,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: DateTime<Utc>,
    /// Queued.
    pub created_at: DateTime<Utc>,
    /// Delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// The exact body sent.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

impl From<webhook_delivery::Model> for WebhookDelivery {
    fn from(m: webhook_delivery::Model) -> Self {
        Self {
            payload: serde_json::from_str(&m.payload).unwrap_or(serde_json::Value::Null),
            id: m.id,
            event: m.event,
            job_id: m.job_id,
            status: m.status,
            attempts: m.attempts,
            last_status_code: m.last_status_code,
            last_error: m.last_error,
            next_attempt_at: m.next_attempt_at,
            created_at: m.created_at,
            delivered_at: m.delivered_at,
        }
    }
}

fn check_url(checks: &mut Checks, url: &str) {
    let ok = url::Url::parse(url).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.password().is_none()
    });
    checks.check(
        ok && url.len() <= 2048,
        "url",
        "must be an http(s) URL of at most 2048 characters",
    );
}

fn check_events(checks: &mut Checks, events: &[String]) {
    checks.check(!events.is_empty(), "events", "must list at least one event");
    for (i, e) in events.iter().enumerate() {
        checks.check(
            EVENTS.contains(&e.as_str()),
            &format!("events[{i}]"),
            format!("must be one of {}", EVENTS.join(", ")),
        );
    }
}

fn generate_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("whsec_{}", hex::encode(bytes))
}

/// Registers an endpoint.
pub async fn create(
    db: &DatabaseConnection,
    secrets: &SecretBox,
    actor: &Actor,
    input: NewWebhook,
) -> ServiceResult<CreatedWebhook> {
    let mut checks = Checks::new();
    check_url(&mut checks, &input.url);
    check_events(&mut checks, &input.events);
    if let Some(s) = &input.secret {
        checks.check(
            (16..=128).contains(&s.expose_secret().len()),
            "secret",
            "must be 16 to 128 characters",
        );
    }
    checks.finish()?;
    let secret = input
        .secret
        .map(|s| s.expose_secret().to_owned())
        .unwrap_or_else(generate_secret);
    let id = new_id();
    let now = Utc::now();
    let mut events = input.events.clone();
    events.dedup();
    let txn = crate::db::begin_write(db).await?;
    let saved = webhook_endpoint::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(actor.tenant_id.clone()),
        url: Set(input.url.clone()),
        events: Set(json!(events)),
        secret_enc: Set(secrets.seal(&secret, &secret_context(&id))?),
        active: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        actor,
        Action::Create,
        RESOURCE,
        &id,
        json!({"url": input.url, "events": events, "secret": REDACTED}),
    )
    .await?;
    txn.commit().await?;
    Ok(CreatedWebhook {
        webhook: saved.into(),
        secret,
    })
}

async fn find_model<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    id: &str,
) -> ServiceResult<webhook_endpoint::Model> {
    super::find_owned::<webhook_endpoint::Entity, _>(conn, actor, id).await
}

/// One endpoint.
pub async fn get<C: ConnectionTrait>(conn: &C, actor: &Actor, id: &str) -> ServiceResult<Webhook> {
    find_model(conn, actor, id).await.map(Into::into)
}

/// The tenant's endpoints.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    page: &PageRequest,
) -> ServiceResult<Page<Webhook>> {
    let query = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::TenantId.eq(&actor.tenant_id));
    let (rows, limit) = fetch_page(conn, query, webhook_endpoint::Column::Id, page).await?;
    Ok(Page::from_rows(rows, limit, |m| &m.id, Webhook::from))
}

/// Changes an endpoint.
pub async fn update(
    db: &DatabaseConnection,
    actor: &Actor,
    id: &str,
    patch: WebhookPatch,
) -> ServiceResult<Webhook> {
    let mut checks = Checks::new();
    if let Some(url) = &patch.url {
        check_url(&mut checks, url);
    }
    if let Some(events) = &patch.events {
        check_events(&mut checks, events);
    }
    checks.finish()?;
    let txn = crate::db::begin_write(db).await?;
    let current = find_model(&txn, actor, id).await?;
    let mut model: webhook_endpoint::ActiveModel = current.clone().into();
    let mut changes = serde_json::Map::new();
    if let Some(v) = patch.url {
        changes.insert("url".into(), json!(v));
        model.url = Set(v);
    }
    if let Some(v) = patch.events {
        changes.insert("events".into(), json!(v));
        model.events = Set(json!(v));
    }
    if let Some(v) = patch.active {
        changes.insert("active".into(), json!(v));
        model.active = Set(v);
    }
    if changes.is_empty() {
        txn.commit().await?;
        return Ok(current.into());
    }
    model.updated_at = Set(Utc::now());
    let saved = model.update(&txn).await?;
    audit::record(
        &txn,
        actor,
        Action::Update,
        RESOURCE,
        &current.id,
        changes.into(),
    )
    .await?;
    txn.commit().await?;
    Ok(saved.into())
}

/// Deletes an endpoint and its delivery log.
pub async fn delete(db: &DatabaseConnection, actor: &Actor, id: &str) -> ServiceResult<()> {
    super::delete_audited::<webhook_endpoint::Entity>(
        db,
        actor,
        id,
        RESOURCE,
        |m| json!({"url": m.url}),
    )
    .await
}

/// An endpoint's deliveries, oldest first.
pub async fn deliveries<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    id: &str,
    page: &PageRequest,
) -> ServiceResult<Page<WebhookDelivery>> {
    let endpoint = find_model(conn, actor, id).await?;
    let query = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::TenantId.eq(&actor.tenant_id))
        .filter(webhook_delivery::Column::EndpointId.eq(&endpoint.id));
    let (rows, limit) = fetch_page(conn, query, webhook_delivery::Column::Id, page).await?;
    Ok(Page::from_rows(
        rows,
        limit,
        |m| &m.id,
        WebhookDelivery::from,
    ))
}
