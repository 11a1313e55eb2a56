//! Daily metrics of official accounts: uploads (one value per account, metric and day,
//! repeat-safe) and reading a metric's series for forecasting.

use chrono::{NaiveDate, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wxpilot_entity::daily_metric;

use super::{Actor, accounts};
use crate::error::{ServiceError, ServiceResult};
use crate::ids::new_id;

/// Most rows one upload may carry.
pub const MAX_ROWS: usize = 20_000;
/// Longest metric name.
pub const MAX_METRIC_LEN: usize = 64;

/// One uploaded value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricRow {
    /// The day (`YYYY-MM-DD`).
    pub date: NaiveDate,
    /// Metric name: lower-case letters, digits and `_` (`new_followers`, `reads`).
    #[schema(example = "new_followers")]
    pub metric: String,
    /// The day's value.
    pub value: f64,
}

/// A row that was not stored, and why.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RowError {
    /// Row number as sent, from 1 (CSV: the data rows after the header).
    pub row: usize,
    /// What is wrong with it.
    pub message: String,
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UploadReport {
    /// Rows stored (new or replacing the earlier value of the same day and metric).
    pub stored: usize,
    /// Rows rejected, each with its reason; the others were stored.
    pub rejected: Vec<RowError>,
}

/// Whether `metric` is a valid metric name.
pub fn valid_metric(metric: &str) -> bool {
    !metric.is_empty()
        && metric.len() <= MAX_METRIC_LEN
        && metric
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Checks one row; the reason when it is not acceptable.
pub fn check_row(row: &MetricRow) -> Result<(), String> {
    if !valid_metric(&row.metric) {
        return Err(format!(
            "metric must be 1 to {MAX_METRIC_LEN} lower-case letters, digits or _"
        ));
    }
    if !row.value.is_finite() {
        return Err("value must be a finite number".to_owned());
    }
    let year = chrono::Datelike::year(&row.date);
    if !(2000..=2100).contains(&year) {
        return Err("date must be between 2000 and 2100".to_owned());
    }
    Ok(())
}

/// Stores the good rows of an upload for one of the tenant's accounts; rows that failed to
/// parse (`Err`) or to validate are reported by row number and skipped. Uploading the same
/// day and metric again replaces the value, so an upload can be repeated safely.
pub async fn upload(
    db: &DatabaseConnection,
    actor: &Actor,
    account_id: &str,
    rows: Vec<Result<MetricRow, RowError>>,
) -> ServiceResult<UploadReport> {
    if rows.len() > MAX_ROWS {
        return Err(ServiceError::field(
            "rows",
            format!("at most {MAX_ROWS} rows per upload"),
        ));
    }
    let txn = crate::db::begin_write(db).await?;
    if !accounts::exists(&txn, actor, account_id).await? {
        return Err(ServiceError::NotFound("official account"));
    }
    let mut rejected = Vec::new();
    let mut good = Vec::new();
    for (index, row) in rows.into_iter().enumerate() {
        match row {
            Err(e) => rejected.push(e),
            Ok(row) => match check_row(&row) {
                Ok(()) => good.push(row),
                Err(message) => rejected.push(RowError {
                    row: index + 1,
                    message,
                }),
            },
        }
    }
    let stored = good.len();
    upsert(&txn, &actor.tenant_id, account_id, &good).await?;
    txn.commit().await?;
    Ok(UploadReport { stored, rejected })
}

/// Stores checked rows of one account: a day and metric stored again replaces its value.
/// The caller has checked the account belongs to `tenant_id`.
pub async fn upsert<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    account_id: &str,
    rows: &[MetricRow],
) -> ServiceResult<()> {
    let now = Utc::now();
    // Bounded batches keep each statement under SQLite's bound-parameter limit.
    for chunk in rows.chunks(500) {
        let models = chunk.iter().map(|row| daily_metric::ActiveModel {
            id: Set(new_id()),
            tenant_id: Set(tenant_id.to_owned()),
            account_id: Set(account_id.to_owned()),
            metric: Set(row.metric.clone()),
            date: Set(row.date),
            value: Set(row.value),
            created_at: Set(now),
            updated_at: Set(now),
        });
        daily_metric::Entity::insert_many(models)
            .on_conflict(
                OnConflict::columns([
                    daily_metric::Column::AccountId,
                    daily_metric::Column::Metric,
                    daily_metric::Column::Date,
                ])
                .update_columns([daily_metric::Column::Value, daily_metric::Column::UpdatedAt])
                .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// How many of `metrics` are stored for each day in `begin..=end`, by day. Scoped by tenant.
pub async fn stored_days<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    account_id: &str,
    metrics: &[&str],
    begin: NaiveDate,
    end: NaiveDate,
) -> ServiceResult<std::collections::BTreeMap<NaiveDate, usize>> {
    let rows = daily_metric::Entity::find()
        .filter(daily_metric::Column::TenantId.eq(tenant_id))
        .filter(daily_metric::Column::AccountId.eq(account_id))
        .filter(daily_metric::Column::Metric.is_in(metrics.iter().copied()))
        .filter(daily_metric::Column::Date.gte(begin))
        .filter(daily_metric::Column::Date.lte(end))
        .all(conn)
        .await?;
    let mut days = std::collections::BTreeMap::new();
    for row in rows {
        *days.entry(row.date).or_insert(0) += 1;
    }
    Ok(days)
}

/// The stored values of one metric of one account, oldest first. Scoped by tenant.
pub async fn series<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    account_id: &str,
    metric: &str,
) -> ServiceResult<Vec<(NaiveDate, f64)>> {
    let rows = daily_metric::Entity::find()
        .filter(daily_metric::Column::TenantId.eq(tenant_id))
        .filter(daily_metric::Column::AccountId.eq(account_id))
        .filter(daily_metric::Column::Metric.eq(metric))
        .order_by_asc(daily_metric::Column::Date)
        .all(conn)
        .await?;
    Ok(rows.into_iter().map(|m| (m.date, m.value)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_checked() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 11).unwrap_or_default();
        let ok = MetricRow {
            date,
            metric: "new_followers".into(),
            value: 12.0,
        };
        assert_eq!(check_row(&ok), Ok(()));
        let bad_name = MetricRow {
            metric: "New Followers".into(),
            ..ok.clone()
        };
        assert!(check_row(&bad_name).is_err());
        let nan = MetricRow {
            value: f64::NAN,
            ..ok.clone()
        };
        assert!(check_row(&nan).is_err());
        assert!(!valid_metric(""));
        assert!(valid_metric("reads_7d"));
    }
}

/// The job kind that pulls an account's follower metrics from WeChat.
pub const SYNC_JOB_KIND: &str = "sync_metrics";

/// Most days one sync may ask for.
pub const MAX_SYNC_DAYS: i64 = 366;

/// `POST /v1/accounts/{id}/metrics/sync`: the days to pull from WeChat's analytics.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// First day (`YYYY-MM-DD`).
    pub begin: NaiveDate,
    /// Last day, inclusive; at most yesterday (WeChat publishes a day's figures the next day).
    pub end: NaiveDate,
}

/// What the `sync_metrics` job is asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncJob {
    /// The account.
    pub account_id: String,
    /// First day.
    pub begin: NaiveDate,
    /// Last day, inclusive.
    pub end: NaiveDate,
}

impl SyncRequest {
    /// Checks the range against `today` (China time) and makes the job payload.
    pub fn into_job(self, account_id: &str, today: NaiveDate) -> ServiceResult<SyncJob> {
        if self.end < self.begin {
            return Err(ServiceError::field("end", "must not be before begin"));
        }
        if self.end >= today {
            return Err(ServiceError::field(
                "end",
                "must be before today: WeChat publishes a day's figures the next day",
            ));
        }
        if (self.end - self.begin).num_days() + 1 > MAX_SYNC_DAYS {
            return Err(ServiceError::field(
                "end",
                format!("at most {MAX_SYNC_DAYS} days per sync"),
            ));
        }
        Ok(SyncJob {
            account_id: account_id.to_owned(),
            begin: self.begin,
            end: self.end,
        })
    }
}

#[cfg(test)]
mod sync_tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    #[test]
    fn sync_ranges_are_checked() {
        let today = day("2026-12-04");
        let ok = SyncRequest {
            begin: day("2026-10-01"),
            end: day("2026-11-09"),
        };
        assert_eq!(
            ok.into_job("a", today).expect("valid").end,
            day("2026-11-09")
        );
        let backwards = SyncRequest {
            begin: day("2026-11-09"),
            end: day("2026-10-01"),
        };
        assert!(backwards.into_job("a", today).is_err());
        let today_too = SyncRequest {
            begin: day("2026-12-01"),
            end: today,
        };
        assert!(today_too.into_job("a", today).is_err());
        let too_long = SyncRequest {
            begin: day("2025-01-01"),
            end: day("2026-12-01"),
        };
        assert!(too_long.into_job("a", today).is_err());
    }
}
