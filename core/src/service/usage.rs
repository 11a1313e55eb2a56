//! The usage ledger, summed per month, and the tenant's optional token budget.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use wxpilot_entity::{tenant, usage_record};

use super::Actor;
use super::audit::{self, Action};
use crate::error::{ServiceError, ServiceResult};

/// `GET /v1/usage` query.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// `YYYY-MM`; default the current month (UTC).
    pub month: Option<String>,
}

/// What the tenant consumed in a month.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Usage {
    /// `YYYY-MM`.
    #[schema(example = "2026-12")]
    pub month: String,
    /// Totals by metric: `jobs.<kind>` (jobs that succeeded), `llm.prompt_tokens`, `llm.completion_tokens`.
    pub totals: BTreeMap<String, i64>,
    /// LLM tokens (prompt + completion) this month.
    pub llm_tokens: i64,
    /// The monthly token budget, if one is set.
    pub monthly_token_budget: Option<i64>,
}

fn month_bounds(
    month: Option<&str>,
) -> ServiceResult<(String, chrono::DateTime<Utc>, chrono::DateTime<Utc>)> {
    let first = match month {
        None => {
            let now = Utc::now().date_naive();
            NaiveDate::from_ymd_opt(now.year(), now.month(), 1)
        }
        Some(text) => NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").ok(),
    }
    .ok_or_else(|| ServiceError::field("month", "must be YYYY-MM"))?;
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .ok_or_else(|| ServiceError::field("month", "is out of range"))?;
    let start = Utc.from_utc_datetime(&first.and_time(chrono::NaiveTime::MIN));
    let end = Utc.from_utc_datetime(&next.and_time(chrono::NaiveTime::MIN));
    Ok((first.format("%Y-%m").to_string(), start, end))
}

/// The tenant's usage in `month`.
pub async fn monthly<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    query: &UsageQuery,
) -> ServiceResult<Usage> {
    let (month, start, end) = month_bounds(query.month.as_deref())?;
    let rows = usage_record::Entity::find()
        .filter(usage_record::Column::TenantId.eq(&actor.tenant_id))
        .filter(usage_record::Column::CreatedAt.gte(start))
        .filter(usage_record::Column::CreatedAt.lt(end))
        .all(conn)
        .await?;
    let mut totals = BTreeMap::new();
    for row in rows {
        *totals.entry(row.metric).or_insert(0) += row.quantity;
    }
    let llm_tokens = totals.get("llm.prompt_tokens").copied().unwrap_or(0)
        + totals.get("llm.completion_tokens").copied().unwrap_or(0);
    let budget = tenant::Entity::find_by_id(&actor.tenant_id)
        .one(conn)
        .await?
        .and_then(|t| t.monthly_token_budget);
    Ok(Usage {
        month,
        totals,
        llm_tokens,
        monthly_token_budget: budget,
    })
}

/// `PUT /v1/usage/budget`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetUpdate {
    /// LLM tokens (prompt + completion) a month; `null` removes the limit.
    pub monthly_token_budget: Option<i64>,
}

/// Sets or clears the tenant's monthly token budget.
pub async fn set_budget(
    db: &DatabaseConnection,
    actor: &Actor,
    update: BudgetUpdate,
) -> ServiceResult<Usage> {
    if update.monthly_token_budget.is_some_and(|b| b < 0) {
        return Err(ServiceError::field(
            "monthly_token_budget",
            "must not be negative",
        ));
    }
    let txn = crate::db::begin_write(db).await?;
    let current = tenant::Entity::find_by_id(&actor.tenant_id)
        .one(&txn)
        .await?
        .ok_or(ServiceError::NotFound("tenant"))?;
    let mut model: tenant::ActiveModel = current.into();
    model.monthly_token_budget = Set(update.monthly_token_budget);
    model.updated_at = Set(Utc::now());
    model.update(&txn).await?;
    audit::record(
        &txn,
        actor,
        Action::Update,
        "tenant",
        &actor.tenant_id,
        json!({"monthly_token_budget": update.monthly_token_budget}),
    )
    .await?;
    txn.commit().await?;
    monthly(db, actor, &UsageQuery::default()).await
}

/// Fails with [`ServiceError::BudgetExceeded`] when the tenant has a monthly token budget
/// and this month's LLM tokens have reached it. Called before queueing LLM jobs, so they
/// fail fast instead of running up a bill.
pub async fn ensure_token_budget<C: ConnectionTrait>(conn: &C, actor: &Actor) -> ServiceResult<()> {
    let usage = monthly(conn, actor, &UsageQuery::default()).await?;
    match usage.monthly_token_budget {
        Some(budget) if usage.llm_tokens >= budget => Err(ServiceError::BudgetExceeded(format!(
            "this month's LLM token budget of {budget} is used up ({} used); raise it with PUT /v1/usage/budget",
            usage.llm_tokens
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months() {
        let (m, start, end) = month_bounds(Some("2026-12")).unwrap();
        assert_eq!(m, "2026-12");
        assert_eq!(start.to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(end.to_rfc3339(), "2027-01-01T00:00:00+00:00");
        assert!(month_bounds(Some("2026-13")).is_err());
        assert!(month_bounds(Some("december")).is_err());
        assert!(month_bounds(None).is_ok());
    }
}
