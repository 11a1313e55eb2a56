//! Campaigns: a brief, an audience and goals, run on one of the tenant's accounts.

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use wxpilot_entity::{CampaignStatus, campaign};

use super::audit::{self, Action};
use super::{Actor, Page, PageRequest, accounts, double_option, fetch_page};
use crate::error::ServiceResult;
use crate::ids::new_id;
use crate::validate::{Checks, date_in_range, date_order};

const RESOURCE: &str = "campaign";
const MAX_BRIEF: usize = 20_000;
const MAX_AUDIENCE: usize = 2_000;
const MAX_GOALS: usize = 20;
const MAX_GOAL: usize = 500;

/// A new campaign.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    /// The official account it runs on (same tenant).
    pub account_id: String,
    /// Name, 1–200 characters.
    #[schema(example = "双十一 新品推广")]
    pub name: String,
    /// What the campaign is about, up to 20,000 characters.
    #[serde(default)]
    pub brief: String,
    /// Who it speaks to, up to 2,000 characters.
    #[serde(default)]
    pub audience: String,
    /// Up to 20 goals of up to 500 characters each.
    #[serde(default)]
    pub goals: Vec<String>,
    /// First day.
    pub start_date: Option<NaiveDate>,
    /// Last day; not before `start_date`.
    pub end_date: Option<NaiveDate>,
    /// Default `draft`.
    #[serde(default = "default_status")]
    pub status: CampaignStatus,
}

fn default_status() -> CampaignStatus {
    CampaignStatus::Draft
}

/// Changes to a campaign; absent fields stay, `null` clears a date.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignPatch {
    /// Name.
    pub name: Option<String>,
    /// Brief.
    pub brief: Option<String>,
    /// Audience.
    pub audience: Option<String>,
    /// Goals (replaces the list).
    pub goals: Option<Vec<String>>,
    /// First day, or `null` to clear.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<NaiveDate>)]
    pub start_date: Option<Option<NaiveDate>>,
    /// Last day, or `null` to clear.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<NaiveDate>)]
    pub end_date: Option<Option<NaiveDate>>,
    /// Status.
    pub status: Option<CampaignStatus>,
}

/// A campaign.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Campaign {
    /// Campaign id.
    pub id: String,
    /// Its official account.
    pub account_id: String,
    /// Name.
    pub name: String,
    /// Brief.
    pub brief: String,
    /// Audience.
    pub audience: String,
    /// Goals.
    pub goals: Vec<String>,
    /// First day.
    pub start_date: Option<NaiveDate>,
    /// Last day.
    pub end_date: Option<NaiveDate>,
    /// Status.
    pub status: CampaignStatus,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<campaign::Model> for Campaign {
    fn from(m: campaign::Model) -> Self {
        Self {
            goals: serde_json::from_value(m.goals).unwrap_or_default(),
            id: m.id,
            account_id: m.account_id,
            name: m.name,
            brief: m.brief,
            audience: m.audience,
            start_date: m.start_date,
            end_date: m.end_date,
            status: m.status,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// `GET /v1/campaigns` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CampaignFilter {
    /// Only this account's campaigns.
    pub account_id: Option<String>,
    /// Only campaigns in this status.
    pub status: Option<CampaignStatus>,
}

fn check_goals(checks: &mut Checks, goals: &[String]) {
    checks.check(
        goals.len() <= MAX_GOALS,
        "goals",
        format!("at most {MAX_GOALS} goals"),
    );
    for (i, goal) in goals.iter().enumerate().take(MAX_GOALS) {
        checks.name(&format!("goals[{i}]"), goal, MAX_GOAL);
    }
}

/// Creates a campaign on one of the tenant's accounts.
pub async fn create(
    db: &DatabaseConnection,
    actor: &Actor,
    input: NewCampaign,
) -> ServiceResult<Campaign> {
    let mut checks = Checks::new();
    checks.name("name", &input.name, 200);
    checks.text("brief", &input.brief, 0, MAX_BRIEF);
    checks.text("audience", &input.audience, 0, MAX_AUDIENCE);
    check_goals(&mut checks, &input.goals);
    date_in_range(&mut checks, "start_date", input.start_date);
    date_in_range(&mut checks, "end_date", input.end_date);
    date_order(&mut checks, input.start_date, input.end_date, "end_date");
    let txn = crate::db::begin_write(db).await?;
    // Another tenant's account is reported exactly like a missing one.
    checks.check(
        accounts::exists(&txn, actor, &input.account_id).await?,
        "account_id",
        "no such official account",
    );
    checks.finish()?;

    let id = new_id();
    let now = Utc::now();
    let saved = campaign::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(actor.tenant_id.clone()),
        account_id: Set(input.account_id.clone()),
        name: Set(input.name.clone()),
        brief: Set(input.brief.clone()),
        audience: Set(input.audience.clone()),
        goals: Set(json!(input.goals)),
        start_date: Set(input.start_date),
        end_date: Set(input.end_date),
        status: Set(input.status),
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
        json!({
            "account_id": input.account_id,
            "name": input.name,
            "brief": input.brief,
            "audience": input.audience,
            "goals": input.goals,
            "start_date": input.start_date,
            "end_date": input.end_date,
            "status": input.status,
        }),
    )
    .await?;
    txn.commit().await?;
    Ok(saved.into())
}

async fn find_model<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    id: &str,
) -> ServiceResult<campaign::Model> {
    super::find_owned::<campaign::Entity, _>(conn, actor, id).await
}

/// One campaign.
pub async fn get<C: ConnectionTrait>(conn: &C, actor: &Actor, id: &str) -> ServiceResult<Campaign> {
    find_model(conn, actor, id).await.map(Into::into)
}

/// The tenant's campaigns, oldest first, optionally filtered.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    filter: &CampaignFilter,
    page: &PageRequest,
) -> ServiceResult<Page<Campaign>> {
    let mut query =
        campaign::Entity::find().filter(campaign::Column::TenantId.eq(&actor.tenant_id));
    if let Some(account_id) = &filter.account_id {
        query = query.filter(campaign::Column::AccountId.eq(account_id));
    }
    if let Some(status) = filter.status {
        query = query.filter(campaign::Column::Status.eq(status));
    }
    let (rows, limit) = fetch_page(conn, query, campaign::Column::Id, page).await?;
    Ok(Page::from_rows(rows, limit, |m| &m.id, Campaign::from))
}

/// Applies `patch` to a campaign.
pub async fn update(
    db: &DatabaseConnection,
    actor: &Actor,
    id: &str,
    patch: CampaignPatch,
) -> ServiceResult<Campaign> {
    let txn = crate::db::begin_write(db).await?;
    let current = find_model(&txn, actor, id).await?;
    let mut checks = Checks::new();
    if let Some(v) = &patch.name {
        checks.name("name", v, 200);
    }
    if let Some(v) = &patch.brief {
        checks.text("brief", v, 0, MAX_BRIEF);
    }
    if let Some(v) = &patch.audience {
        checks.text("audience", v, 0, MAX_AUDIENCE);
    }
    if let Some(v) = &patch.goals {
        check_goals(&mut checks, v);
    }
    let start = patch.start_date.unwrap_or(current.start_date);
    let end = patch.end_date.unwrap_or(current.end_date);
    date_in_range(&mut checks, "start_date", start);
    date_in_range(&mut checks, "end_date", end);
    date_order(&mut checks, start, end, "end_date");
    checks.finish()?;

    let mut changes = serde_json::Map::new();
    let mut model: campaign::ActiveModel = current.clone().into();
    if let Some(v) = patch.name {
        changes.insert("name".into(), json!(v));
        model.name = Set(v);
    }
    if let Some(v) = patch.brief {
        changes.insert("brief".into(), json!(v));
        model.brief = Set(v);
    }
    if let Some(v) = patch.audience {
        changes.insert("audience".into(), json!(v));
        model.audience = Set(v);
    }
    if let Some(v) = patch.goals {
        changes.insert("goals".into(), json!(v));
        model.goals = Set(json!(v));
    }
    if let Some(v) = patch.start_date {
        changes.insert("start_date".into(), json!(v));
        model.start_date = Set(v);
    }
    if let Some(v) = patch.end_date {
        changes.insert("end_date".into(), json!(v));
        model.end_date = Set(v);
    }
    if let Some(v) = patch.status {
        changes.insert("status".into(), json!(v));
        model.status = Set(v);
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

/// Deletes a campaign.
pub async fn delete(db: &DatabaseConnection, actor: &Actor, id: &str) -> ServiceResult<()> {
    super::delete_audited::<campaign::Entity>(db, actor, id, RESOURCE, |m| json!({"name": m.name}))
        .await
}
