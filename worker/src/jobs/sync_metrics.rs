//! `sync_metrics`: pulls an account's follower figures from WeChat's analytics (datacube)
//! into its daily metrics — `new_followers` and `unfollows` (`getusersummary`, summed over
//! follower sources) and `cumulative_followers` (`getusercumulate`) — in the windows the
//! endpoints allow (7 days a call). A window whose days are all stored already is skipped,
//! so a retried job resumes where the failed attempt stopped; a day and metric is one row,
//! replaced on a repeat, so nothing is ever stored twice.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use wxpilot_core::jobs::KindPolicy;
use wxpilot_core::service::metrics::{self, MetricRow, SYNC_JOB_KIND, SyncJob};
use wxpilot_wechat::client::{
    ApiError, DatacubeEndpoint, DateWindow, UserCumulateRow, UserSummaryRow, split_date_range,
};

use crate::runtime::{JobContext, JobError, JobHandler, JobOutput};

/// Metrics written for every day of a window (a window is complete when both are there).
const SUMMARY_METRICS: [&str; 2] = ["new_followers", "unfollows"];
/// Written for the days `getusercumulate` answers.
const CUMULATIVE_METRIC: &str = "cumulative_followers";

/// The `sync_metrics` kind.
pub struct SyncMetrics;

impl JobHandler for SyncMetrics {
    fn kind(&self) -> &'static str {
        SYNC_JOB_KIND
    }

    fn default_policy(&self) -> KindPolicy {
        KindPolicy {
            max_attempts: 5,
            timeout_secs: 10 * 60,
            concurrency: 2,
            backoff_base_ms: 1_000,
            backoff_max_ms: 5 * 60_000,
        }
    }

    fn run(
        &self,
        ctx: JobContext,
        payload: Value,
    ) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        Box::pin(async move {
            let job: SyncJob = serde_json::from_value(payload)
                .map_err(|e| JobError::Permanent(format!("bad sync_metrics payload: {e}")))?;
            sync(&ctx, &job).await
        })
    }
}

async fn sync(ctx: &JobContext, job: &SyncJob) -> Result<JobOutput, JobError> {
    let services = ctx.services();
    let manager = services
        .wechat
        .manager(ctx.db(), &services.secrets, &ctx.tenant_id, &job.account_id)
        .await
        .map_err(|e| JobError::Permanent(format!("{e:#}")))?;
    let windows = split_date_range(job.begin, job.end, DatacubeEndpoint::UserSummary.max_days())
        .map_err(|e| JobError::Permanent(e.to_string()))?;
    let stored = metrics::stored_days(
        ctx.db(),
        &ctx.tenant_id,
        &job.account_id,
        &SUMMARY_METRICS,
        job.begin,
        job.end,
    )
    .await
    .map_err(|e| JobError::Retryable(e.to_string()))?;
    let (mut fetched, mut skipped) = (0usize, 0usize);
    for (done, window) in windows.iter().enumerate() {
        if window_complete(&stored, window) {
            skipped += 1;
            continue;
        }
        let summary: Vec<UserSummaryRow> = manager
            .datacube_range(DatacubeEndpoint::UserSummary, window.begin, window.end)
            .await
            .map_err(classify)?;
        let cumulate: Vec<UserCumulateRow> = manager
            .datacube_range(DatacubeEndpoint::UserCumulate, window.begin, window.end)
            .await
            .map_err(classify)?;
        let rows = window_rows(window, &summary, &cumulate).map_err(JobError::Permanent)?;
        metrics::upsert(ctx.db(), &ctx.tenant_id, &job.account_id, &rows)
            .await
            .map_err(|e| JobError::Retryable(e.to_string()))?;
        fetched += 1;
        let percent = ((done + 1) * 100 / windows.len().max(1)).min(100) as u8;
        ctx.progress(
            percent,
            &format!("synced {} to {}", window.begin, window.end),
        )
        .await;
    }
    Ok(JobOutput::new(json!({
        "account_id": job.account_id,
        "begin": job.begin,
        "end": job.end,
        "windows": windows.len(),
        "fetched": fetched,
        "skipped": skipped,
    })))
}

/// Whether every day of `window` already has every summary metric.
fn window_complete(stored: &BTreeMap<NaiveDate, usize>, window: &DateWindow) -> bool {
    window
        .begin
        .iter_days()
        .take_while(|d| *d <= window.end)
        .all(|d| stored.get(&d).copied().unwrap_or(0) >= SUMMARY_METRICS.len())
}

/// The rows one window stores: new followers and unfollows for every day (0 where WeChat
/// lists no source for the day), cumulative followers where WeChat gives it. Rows outside
/// the window or with a malformed date are an error: WeChat answered something else.
fn window_rows(
    window: &DateWindow,
    summary: &[UserSummaryRow],
    cumulate: &[UserCumulateRow],
) -> Result<Vec<MetricRow>, String> {
    let day = |text: &str| -> Result<NaiveDate, String> {
        let date: NaiveDate = text
            .parse()
            .map_err(|_| format!("WeChat answered a malformed ref_date {text:?}"))?;
        if date < window.begin || date > window.end {
            return Err(format!(
                "WeChat answered {date}, outside the window {} to {}",
                window.begin, window.end
            ));
        }
        Ok(date)
    };
    let mut totals: BTreeMap<NaiveDate, (i64, i64)> = window
        .begin
        .iter_days()
        .take_while(|d| *d <= window.end)
        .map(|d| (d, (0, 0)))
        .collect();
    for row in summary {
        let entry = totals.entry(day(&row.ref_date)?).or_default();
        entry.0 += row.new_user;
        entry.1 += row.cancel_user;
    }
    let mut rows = Vec::with_capacity(totals.len() * 3);
    for (date, (new, cancelled)) in totals {
        rows.push(metric_row(date, SUMMARY_METRICS[0], new));
        rows.push(metric_row(date, SUMMARY_METRICS[1], cancelled));
    }
    for row in cumulate {
        rows.push(metric_row(
            day(&row.ref_date)?,
            CUMULATIVE_METRIC,
            row.cumulate_user,
        ));
    }
    Ok(rows)
}

fn metric_row(date: NaiveDate, metric: &str, value: i64) -> MetricRow {
    MetricRow {
        date,
        metric: metric.to_owned(),
        value: value as f64,
    }
}

/// What a WeChat failure means for the job: quota, authorisation and whitelist problems
/// need a person (or tomorrow), so they end the job; the rest may pass on a retry.
fn classify(error: ApiError) -> JobError {
    match error {
        ApiError::QuotaExceeded { .. }
        | ApiError::NotAuthorised { .. }
        | ApiError::IpNotWhitelisted { .. }
        | ApiError::InvalidRequest(_)
        | ApiError::Decode { .. } => JobError::Permanent(error.to_string()),
        other => JobError::Retryable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    fn window(a: &str, b: &str) -> DateWindow {
        DateWindow {
            begin: day(a),
            end: day(b),
        }
    }

    #[test]
    fn sources_are_summed_and_silent_days_are_zero() {
        let w = window("2026-11-01", "2026-11-03");
        let summary = vec![
            UserSummaryRow {
                ref_date: "2026-11-01".into(),
                user_source: 0,
                new_user: 3,
                cancel_user: 1,
            },
            UserSummaryRow {
                ref_date: "2026-11-01".into(),
                user_source: 30,
                new_user: 4,
                cancel_user: 0,
            },
            UserSummaryRow {
                ref_date: "2026-11-03".into(),
                user_source: 1,
                new_user: 2,
                cancel_user: 5,
            },
        ];
        let cumulate = vec![UserCumulateRow {
            ref_date: "2026-11-02".into(),
            cumulate_user: 1200,
        }];
        let rows = window_rows(&w, &summary, &cumulate).expect("rows");
        let value = |d: &str, m: &str| {
            rows.iter()
                .find(|r| r.date == day(d) && r.metric == m)
                .map(|r| r.value)
        };
        assert_eq!(value("2026-11-01", "new_followers"), Some(7.0));
        assert_eq!(value("2026-11-01", "unfollows"), Some(1.0));
        assert_eq!(value("2026-11-02", "new_followers"), Some(0.0));
        assert_eq!(value("2026-11-03", "unfollows"), Some(5.0));
        assert_eq!(value("2026-11-02", "cumulative_followers"), Some(1200.0));
        assert_eq!(value("2026-11-01", "cumulative_followers"), None);
        assert_eq!(rows.len(), 7);
    }

    #[test]
    fn answers_outside_the_window_are_refused() {
        let w = window("2026-11-01", "2026-11-03");
        let stray = vec![UserSummaryRow {
            ref_date: "2026-11-09".into(),
            user_source: 0,
            new_user: 1,
            cancel_user: 0,
        }];
        assert!(window_rows(&w, &stray, &[]).is_err());
        let garbage = vec![UserCumulateRow {
            ref_date: "yesterday".into(),
            cumulate_user: 1,
        }];
        assert!(window_rows(&w, &[], &garbage).is_err());
    }

    #[test]
    fn a_window_is_complete_when_every_day_has_both_summary_metrics() {
        let w = window("2026-11-01", "2026-11-02");
        let mut stored = BTreeMap::new();
        stored.insert(day("2026-11-01"), 2);
        assert!(!window_complete(&stored, &w));
        stored.insert(day("2026-11-02"), 1);
        assert!(!window_complete(&stored, &w));
        stored.insert(day("2026-11-02"), 2);
        assert!(window_complete(&stored, &w));
    }

    #[test]
    fn quota_and_authorisation_end_the_job_busy_retries() {
        let quota = ApiError::from_errcode(
            45009,
            "reach max api daily quota limit",
            "/datacube/getusersummary",
        )
        .expect("error");
        assert!(matches!(classify(quota), JobError::Permanent(_)));
        let frequent = ApiError::from_errcode(
            45011,
            "api minute-quota reach limit",
            "/datacube/getusersummary",
        )
        .expect("error");
        assert!(matches!(classify(frequent), JobError::Retryable(_)));
    }
}
