//! Forecasts of account metrics. A forecast is made by a `forecast` job and shares its id,
//! so `Idempotency-Key` on the job covers the forecast too; until the job has stored it,
//! the forecast reads as the job's status.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use wxpilot_entity::forecast;

use super::{Actor, jobs, metrics};
use crate::error::{ServiceError, ServiceResult};

/// The job kind that makes forecasts.
pub const JOB_KIND: &str = "forecast";
/// Default days forecast.
pub const DEFAULT_HORIZON: u32 = 14;
/// Longest horizon.
pub const MAX_HORIZON: u32 = 366;

fn default_horizon() -> u32 {
    DEFAULT_HORIZON
}

/// Longest monthly horizon (five years).
pub const MAX_MONTHLY_HORIZON: u32 = 60;

/// How often the metric has a value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Frequency {
    /// One value per day; holiday effects apply (the default).
    #[default]
    Daily,
    /// One value per calendar month (dated any day of it, usually the 1st); the horizon
    /// counts months.
    Monthly,
}

impl Frequency {
    /// The longest horizon, in steps of this frequency.
    pub fn max_horizon(self) -> u32 {
        match self {
            Self::Daily => MAX_HORIZON,
            Self::Monthly => MAX_MONTHLY_HORIZON,
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Self::Daily => "days",
            Self::Monthly => "months",
        }
    }
}

/// `POST /v1/accounts/{id}/forecasts`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForecastRequest {
    /// Which uploaded metric to forecast.
    #[schema(example = "new_followers")]
    pub metric: String,
    /// Steps to forecast (default 14): days, 1–366, or months, 1–60.
    #[serde(default = "default_horizon")]
    pub horizon: u32,
    /// `daily` (default) or `monthly`.
    #[serde(default)]
    pub frequency: Frequency,
}

/// What the `forecast` job is asked to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForecastJob {
    /// The account.
    pub account_id: String,
    /// The metric.
    pub metric: String,
    /// Steps to forecast.
    pub horizon: u32,
    /// Days or months (jobs queued before monthly forecasts existed are daily).
    #[serde(default)]
    pub frequency: Frequency,
}

impl ForecastRequest {
    /// Checks the request and makes the job payload for `account_id`.
    pub fn into_job(self, account_id: &str) -> ServiceResult<ForecastJob> {
        if !metrics::valid_metric(&self.metric) {
            return Err(ServiceError::field(
                "metric",
                "must be 1 to 64 lower-case letters, digits or _",
            ));
        }
        let max = self.frequency.max_horizon();
        if !(1..=max).contains(&self.horizon) {
            return Err(ServiceError::field(
                "horizon",
                format!("must be between 1 and {max} {}", self.frequency.unit()),
            ));
        }
        Ok(ForecastJob {
            account_id: account_id.to_owned(),
            metric: self.metric,
            horizon: self.horizon,
            frequency: self.frequency,
        })
    }
}

/// A forecast, or where its job stands.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Forecast {
    /// Forecast id (the id of the job that makes it).
    pub id: String,
    /// The account.
    pub account_id: String,
    /// The metric.
    pub metric: String,
    /// Days forecast.
    pub horizon: i32,
    /// `queued`, `running`, `failed`, `dead`, `cancelled` (the job's) or `succeeded`.
    pub status: String,
    /// The forecast once made: history, points with 80/95% intervals, the model chosen,
    /// backtest metrics per model, `cold_start`, the holidays in the horizon.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// Why it could not be made.
    pub error: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<forecast::Model> for Forecast {
    fn from(m: forecast::Model) -> Self {
        Self {
            id: m.id,
            account_id: m.account_id,
            metric: m.metric,
            horizon: m.horizon,
            status: m.status,
            result: m.result,
            error: m.error,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// The forecast `id` of one of the tenant's accounts: the stored forecast, else the status of
/// the job still making it. Another tenant's or another account's id is a 404.
pub async fn get<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    account_id: &str,
    id: &str,
) -> ServiceResult<Forecast> {
    if !crate::ids::is_id(id) {
        return Err(ServiceError::NotFound("forecast"));
    }
    let stored = forecast::Entity::find()
        .filter(forecast::Column::TenantId.eq(actor.tenant_id.as_str()))
        .filter(forecast::Column::AccountId.eq(account_id))
        .filter(forecast::Column::Id.eq(id))
        .one(conn)
        .await?;
    if let Some(model) = stored {
        return Ok(model.into());
    }
    let job = match jobs::get(conn, actor, id).await {
        Ok(job) => job,
        Err(ServiceError::NotFound(_)) => return Err(ServiceError::NotFound("forecast")),
        Err(e) => return Err(e),
    };
    let payload: Option<ForecastJob> = serde_json::from_value(job.payload.clone()).ok();
    match payload {
        Some(p) if job.kind == JOB_KIND && p.account_id == account_id => Ok(Forecast {
            id: job.id,
            account_id: p.account_id,
            metric: p.metric,
            horizon: i32::try_from(p.horizon).unwrap_or(i32::MAX),
            status: serde_json::to_value(job.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            result: None,
            error: job.error,
            created_at: job.created_at,
            updated_at: job.updated_at,
        }),
        _ => Err(ServiceError::NotFound("forecast")),
    }
}

/// Stores the forecast a job made (repeat-safe: a retried job overwrites its own row).
pub async fn save<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    job_id: &str,
    job: &ForecastJob,
    result: Value,
) -> ServiceResult<()> {
    let now = Utc::now();
    let model = forecast::ActiveModel {
        id: Set(job_id.to_owned()),
        tenant_id: Set(tenant_id.to_owned()),
        account_id: Set(job.account_id.clone()),
        metric: Set(job.metric.clone()),
        horizon: Set(i32::try_from(job.horizon).unwrap_or(i32::MAX)),
        job_id: Set(Some(job_id.to_owned())),
        status: Set("succeeded".to_owned()),
        result: Set(Some(result)),
        error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    forecast::Entity::insert(model)
        .on_conflict(
            OnConflict::column(forecast::Column::Id)
                .update_columns([
                    forecast::Column::Result,
                    forecast::Column::Status,
                    forecast::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}
