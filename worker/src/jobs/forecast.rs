//! `forecast`: forecasts one uploaded metric of an account (daily, with holiday effects, or
//! monthly) with a backtest-chosen model, and stores the result as the forecast with the job's id.

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use wxpilot_core::jobs::KindPolicy;
use wxpilot_core::service::{forecasts, metrics};
use wxpilot_forecast::{
    DailyValue, ForecastOptions, HolidayCalendar, forecast_daily, forecast_monthly,
};

use crate::runtime::{JobContext, JobError, JobHandler, JobOutput};

/// The `forecast` kind.
pub struct Forecast;

impl JobHandler for Forecast {
    fn kind(&self) -> &'static str {
        forecasts::JOB_KIND
    }

    fn default_policy(&self) -> KindPolicy {
        KindPolicy {
            max_attempts: 3,
            timeout_secs: 5 * 60,
            // CPU-bound: a few at a time leave the cores to the API.
            concurrency: 2,
            backoff_base_ms: 2_000,
            backoff_max_ms: 60_000,
        }
    }

    fn run(
        &self,
        ctx: JobContext,
        payload: Value,
    ) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        Box::pin(async move {
            let job: forecasts::ForecastJob = super::parse_payload("forecast", payload)?;
            let series = metrics::series(ctx.db(), &ctx.tenant_id, &job.account_id, &job.metric)
                .await
                .map_err(|e| JobError::Retryable(format!("reading the metric: {e}")))?;
            if series.is_empty() {
                return Err(JobError::Permanent(format!(
                    "no values of metric {:?} were uploaded for this account",
                    job.metric
                )));
            }
            ctx.progress(10, "fitting and backtesting models").await;
            let horizon = job.horizon as usize;
            let frequency = job.frequency;
            // Fitting is CPU work: keep it off the async threads.
            let result = tokio::task::spawn_blocking(move || {
                let history: Vec<DailyValue> = series
                    .into_iter()
                    .map(|(date, value)| DailyValue { date, value })
                    .collect();
                let options = ForecastOptions {
                    horizon,
                    ..ForecastOptions::default()
                };
                match frequency {
                    forecasts::Frequency::Daily => {
                        let calendar = HolidayCalendar::china().map_err(|e| e.to_string())?;
                        forecast_daily(&history, &calendar, &options)
                    }
                    forecasts::Frequency::Monthly => forecast_monthly(&history, &options),
                }
                .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| JobError::Retryable(format!("forecast task stopped: {e}")))?
            .map_err(JobError::Permanent)?;
            let summary = json!({
                "forecast_id": ctx.job_id,
                "model": result.model,
                "cold_start": result.cold_start,
                "points": result.points.len(),
            });
            let value = serde_json::to_value(&result)
                .map_err(|e| JobError::Permanent(format!("encoding the forecast: {e}")))?;
            forecasts::save(ctx.db(), &ctx.tenant_id, &ctx.job_id, &job, value)
                .await
                .map_err(|e| JobError::Retryable(format!("storing the forecast: {e}")))?;
            Ok(JobOutput::new(summary))
        })
    }
}
