//! `sync_metrics`: pulls an account's figures from WeChat's analytics (datacube) into its
//! daily metrics — `new_followers` and `unfollows` (`getusersummary`, summed over follower
//! sources), `cumulative_followers` (`getusercumulate`), `article_reads` (`getuserread`)
//! and `shares` (`getusershare`, summed over scenes) — in the windows the endpoints allow
//! (7 days a call for the user endpoints, 1 for the article ones). A window whose days are all stored already is skipped,
//! so a retried job resumes where the failed attempt stopped; a day and metric is one row,
//! replaced on a repeat, so nothing is ever stored twice.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use wxpilot_core::jobs::KindPolicy;
use wxpilot_core::service::metrics::{self, MetricRow, SYNC_JOB_KIND, SyncJob};
use wxpilot_wechat::client::{
    DatacubeEndpoint, DateWindow, UserCumulateRow, UserReadRow, UserShareRow, UserSummaryRow,
    split_date_range,
};

use super::classify_wechat;
use crate::runtime::{JobContext, JobError, JobHandler, JobOutput};

/// Metrics written for every day of a window (a window is complete when all are there).
const SUMMARY_METRICS: [&str; 4] = ["new_followers", "unfollows", "article_reads", "shares"];
/// `getuserread`'s `user_source` of the all-sources row.
const ALL_SOURCES: i64 = 99_999_999;
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
            let job: SyncJob = super::parse_payload("sync_metrics", payload)?;
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
            .map_err(classify_wechat)?;
        let cumulate: Vec<UserCumulateRow> = manager
            .datacube_range(DatacubeEndpoint::UserCumulate, window.begin, window.end)
            .await
            .map_err(classify_wechat)?;
        let reads: Vec<UserReadRow> = manager
            .datacube_range(DatacubeEndpoint::UserRead, window.begin, window.end)
            .await
            .map_err(classify_wechat)?;
        let shares: Vec<UserShareRow> = manager
            .datacube_range(DatacubeEndpoint::UserShare, window.begin, window.end)
            .await
            .map_err(classify_wechat)?;
        let answers = Answers {
            summary: &summary,
            cumulate: &cumulate,
            reads: &reads,
            shares: &shares,
        };
        let rows = window_rows(window, &answers).map_err(JobError::Permanent)?;
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

/// What the four endpoints answered for one window.
struct Answers<'a> {
    summary: &'a [UserSummaryRow],
    cumulate: &'a [UserCumulateRow],
    reads: &'a [UserReadRow],
    shares: &'a [UserShareRow],
}

/// One day's totals.
#[derive(Default)]
struct DayTotals {
    new: i64,
    cancelled: i64,
    reads_by_source: i64,
    reads_all: Option<i64>,
    shares: i64,
}

/// The rows one window stores: new followers, unfollows, article reads and shares for every
/// day (0 where WeChat lists nothing for the day), cumulative followers where WeChat gives
/// it. Reads use the all-sources row when WeChat sends one, else the sum of the sources.
/// Rows outside the window or with a malformed date are an error: WeChat answered
/// something else.
fn window_rows(window: &DateWindow, answers: &Answers<'_>) -> Result<Vec<MetricRow>, String> {
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
    let mut totals: BTreeMap<NaiveDate, DayTotals> = window
        .begin
        .iter_days()
        .take_while(|d| *d <= window.end)
        .map(|d| (d, DayTotals::default()))
        .collect();
    for row in answers.summary {
        let entry = totals.entry(day(&row.ref_date)?).or_default();
        entry.new += row.new_user;
        entry.cancelled += row.cancel_user;
    }
    for row in answers.reads {
        let entry = totals.entry(day(&row.ref_date)?).or_default();
        match row.user_source {
            None | Some(ALL_SOURCES) => entry.reads_all = Some(row.int_page_read_count),
            Some(_) => entry.reads_by_source += row.int_page_read_count,
        }
    }
    for row in answers.shares {
        totals.entry(day(&row.ref_date)?).or_default().shares += row.share_count;
    }
    let mut rows = Vec::with_capacity(totals.len() * 5);
    for (date, d) in totals {
        let reads = d.reads_all.unwrap_or(d.reads_by_source);
        rows.push(metric_row(date, SUMMARY_METRICS[0], d.new));
        rows.push(metric_row(date, SUMMARY_METRICS[1], d.cancelled));
        rows.push(metric_row(date, SUMMARY_METRICS[2], reads));
        rows.push(metric_row(date, SUMMARY_METRICS[3], d.shares));
    }
    for row in answers.cumulate {
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
#[cfg(test)]
mod tests {
    use super::*;
    use wxpilot_wechat::client::ApiError;

    fn day(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    fn window(a: &str, b: &str) -> DateWindow {
        DateWindow {
            begin: day(a),
            end: day(b),
        }
    }

    fn summary(date: &str, source: i64, new: i64, cancelled: i64) -> UserSummaryRow {
        UserSummaryRow {
            ref_date: date.into(),
            user_source: source,
            new_user: new,
            cancel_user: cancelled,
        }
    }

    fn read(date: &str, source: Option<i64>, count: i64) -> UserReadRow {
        UserReadRow {
            ref_date: date.into(),
            user_source: source,
            int_page_read_user: 0,
            int_page_read_count: count,
            ori_page_read_user: 0,
            ori_page_read_count: 0,
            share_user: 0,
            share_count: 0,
            add_to_fav_user: 0,
            add_to_fav_count: 0,
        }
    }

    #[test]
    fn sources_are_summed_and_silent_days_are_zero() {
        let w = window("2026-11-01", "2026-11-03");
        let summary = vec![
            summary("2026-11-01", 0, 3, 1),
            summary("2026-11-01", 30, 4, 0),
            summary("2026-11-03", 1, 2, 5),
        ];
        let cumulate = vec![UserCumulateRow {
            ref_date: "2026-11-02".into(),
            cumulate_user: 1200,
        }];
        // Day 1: sources only (summed); day 2: a total row beside a source (the total wins).
        let reads = vec![
            read("2026-11-01", Some(0), 40),
            read("2026-11-01", Some(2), 60),
            read("2026-11-02", Some(ALL_SOURCES), 90),
            read("2026-11-02", Some(0), 50),
        ];
        let shares = vec![
            UserShareRow {
                ref_date: "2026-11-01".into(),
                share_scene: 1,
                share_count: 3,
                share_user: 2,
            },
            UserShareRow {
                ref_date: "2026-11-01".into(),
                share_scene: 2,
                share_count: 4,
                share_user: 4,
            },
        ];
        let answers = Answers {
            summary: &summary,
            cumulate: &cumulate,
            reads: &reads,
            shares: &shares,
        };
        let rows = window_rows(&w, &answers).expect("rows");
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
        assert_eq!(value("2026-11-01", "article_reads"), Some(100.0));
        assert_eq!(value("2026-11-02", "article_reads"), Some(90.0));
        assert_eq!(value("2026-11-03", "article_reads"), Some(0.0));
        assert_eq!(value("2026-11-01", "shares"), Some(7.0));
        assert_eq!(rows.len(), 3 * 4 + 1);
    }

    #[test]
    fn answers_outside_the_window_are_refused() {
        let w = window("2026-11-01", "2026-11-03");
        let stray = vec![summary("2026-11-09", 0, 1, 0)];
        let none = Answers {
            summary: &stray,
            cumulate: &[],
            reads: &[],
            shares: &[],
        };
        assert!(window_rows(&w, &none).is_err());
        let garbage = vec![UserCumulateRow {
            ref_date: "yesterday".into(),
            cumulate_user: 1,
        }];
        let bad = Answers {
            summary: &[],
            cumulate: &garbage,
            reads: &[],
            shares: &[],
        };
        assert!(window_rows(&w, &bad).is_err());
    }

    #[test]
    fn a_window_is_complete_when_every_day_has_every_daily_metric() {
        let w = window("2026-11-01", "2026-11-02");
        let mut stored = BTreeMap::new();
        stored.insert(day("2026-11-01"), 4);
        assert!(!window_complete(&stored, &w));
        stored.insert(day("2026-11-02"), 3);
        assert!(!window_complete(&stored, &w));
        stored.insert(day("2026-11-02"), 4);
        assert!(window_complete(&stored, &w));
    }

    #[test]
    fn quota_and_authorisation_end_the_job_busy_retries() {
        let api = "/datacube/getusersummary";
        let quota =
            ApiError::from_errcode(45009, "reach max api daily quota limit", api).expect("error");
        assert!(matches!(classify_wechat(quota), JobError::Permanent(_)));
        let frequent =
            ApiError::from_errcode(45011, "api minute-quota reach limit", api).expect("error");
        assert!(matches!(classify_wechat(frequent), JobError::Retryable(_)));
    }
}
