//! `/v1/accounts/{id}/metrics` (daily metric uploads, JSON or CSV) and
//! `/v1/accounts/{id}/forecasts` (forecast jobs and their results, as JSON or SVG).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;
use wxpilot_core::service::forecasts::{self, Forecast, ForecastRequest};
use wxpilot_core::service::metrics::{self, MetricRow, RowError, UploadReport};
use wxpilot_core::service::{Access, Area, accounts};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query, RawBody};
use crate::routes::jobs::accept_job;
use crate::state::AppState;

/// Parses a JSON upload `{"rows": [{"date", "metric", "value"}, …]}` (or a bare array) row by
/// row, so one malformed row does not sink the others.
pub fn parse_json_rows(body: &[u8]) -> Result<Vec<Result<MetricRow, RowError>>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let rows = match value {
        Value::Array(rows) => rows,
        Value::Object(mut object) => match object.remove("rows") {
            Some(Value::Array(rows)) => rows,
            _ => return Err("expected {\"rows\": [...]}".to_owned()),
        },
        _ => return Err("expected {\"rows\": [...]}".to_owned()),
    };
    Ok(rows
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            serde_json::from_value::<MetricRow>(row).map_err(|e| RowError {
                row: i + 1,
                message: e.to_string(),
            })
        })
        .collect())
}

/// Parses a CSV upload with the header `date,metric,value` (any column order).
pub fn parse_csv_rows(body: &[u8]) -> Result<Vec<Result<MetricRow, RowError>>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "CSV must be UTF-8".to_owned())?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .ok_or("empty CSV")?
        .split(',')
        .map(|h| h.trim().trim_matches('"').to_ascii_lowercase())
        .collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or(format!("CSV header needs a {name} column"))
    };
    let (date, metric, value) = (column("date")?, column("metric")?, column("value")?);
    Ok(lines
        .enumerate()
        .map(|(i, line)| {
            let fields: Vec<&str> = line
                .split(',')
                .map(|f| f.trim().trim_matches('"'))
                .collect();
            let error = |message: String| RowError {
                row: i + 1,
                message,
            };
            let field = |index: usize| {
                fields
                    .get(index)
                    .copied()
                    .ok_or_else(|| error(format!("expected {} fields", header.len())))
            };
            let parsed_date = chrono::NaiveDate::parse_from_str(field(date)?, "%Y-%m-%d")
                .map_err(|e| error(format!("date: {e}")))?;
            let parsed_value: f64 = field(value)?
                .parse()
                .map_err(|e| error(format!("value: {e}")))?;
            Ok(MetricRow {
                date: parsed_date,
                metric: field(metric)?.to_owned(),
                value: parsed_value,
            })
        })
        .collect())
}

/// Upload daily metric values (JSON `{"rows": [...]}` or `text/csv` with `date,metric,value`).
/// Uploading a day and metric again replaces its value; bad rows are reported, good rows stored.
#[utoipa::path(
    tag = "forecasts",
    params(("id" = String, Path, description = "Official account id")),
    request_body(content = Object, description = "`{\"rows\": [{\"date\": \"2026-11-11\", \"metric\": \"new_followers\", \"value\": 120}]}`, or CSV (`Content-Type: text/csv`) with the header `date,metric,value`"),
    responses((status = 200, description = "Rows stored and rows rejected", body = UploadReport)),
    security(("bearer" = []))
)]
#[post("/accounts/{id}/metrics")]
pub async fn upload_metrics(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: Auth,
    id: web::Path<String>,
    body: RawBody,
) -> ApiResult<web::Json<UploadReport>> {
    let actor = auth.require(Area::Accounts, Access::Write)?;
    let is_csv = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv"));
    let rows = if is_csv {
        parse_csv_rows(&body.0)
    } else {
        parse_json_rows(&body.0)
    }
    .map_err(|m| ApiError::field("body", m))?;
    Ok(web::Json(
        metrics::upload(&state.db, actor, &id, rows).await?,
    ))
}

/// Queue a pull of the account's follower figures from WeChat's analytics for a range of
/// days: `202` with the `sync_metrics` job. It stores `new_followers`, `unfollows`,
/// `cumulative_followers`, `article_reads` and `shares` per day, in the windows WeChat
/// allows (7 days a call for followers, 1 for articles), resuming where a failed attempt
/// stopped; repeating a sync replaces values and stores no day twice.
#[utoipa::path(
    tag = "forecasts",
    params(
        ("id" = String, Path, description = "Official account id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe creation: the same key and body give the same job")
    ),
    request_body = metrics::SyncRequest,
    responses((status = 202, description = "Queued; `Location` names the job", body = wxpilot_core::service::jobs::Job)),
    security(("bearer" = []))
)]
#[post("/accounts/{id}/metrics/sync")]
pub async fn sync_metrics(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: Auth,
    id: web::Path<String>,
    body: Json<metrics::SyncRequest>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Jobs, Access::Write)?;
    if !accounts::exists(&state.db, actor, &id).await? {
        return Err(wxpilot_core::ServiceError::NotFound("official account").into());
    }
    // WeChat's analytics days are China days (UTC+8).
    let today = (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive();
    let job = body.0.into_job(&id, today)?;
    let payload = serde_json::to_value(&job).map_err(|e| ApiError::field("body", e.to_string()))?;
    accept_job(&state, &req, actor, metrics::SYNC_JOB_KIND, payload).await
}

/// Queue a forecast of one uploaded metric: `202` with the job; the forecast has the job's id.
#[utoipa::path(
    tag = "forecasts",
    params(
        ("id" = String, Path, description = "Official account id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe creation: the same key and body give the same job")
    ),
    request_body = ForecastRequest,
    responses((status = 202, description = "Queued; `Location` names the job, whose id is the forecast's", body = wxpilot_core::service::jobs::Job)),
    security(("bearer" = []))
)]
#[post("/accounts/{id}/forecasts")]
pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: Auth,
    id: web::Path<String>,
    body: Json<ForecastRequest>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Jobs, Access::Write)?;
    if !accounts::exists(&state.db, actor, &id).await? {
        return Err(wxpilot_core::ServiceError::NotFound("official account").into());
    }
    let job = body.0.into_job(&id)?;
    let payload = serde_json::to_value(&job).map_err(|e| ApiError::field("body", e.to_string()))?;
    accept_job(&state, &req, actor, forecasts::JOB_KIND, payload).await
}

/// `?format=` of a forecast.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ForecastFormat {
    /// `json` (default) or `svg` (a chart: history, forecast, 80/95% bands, holidays).
    pub format: Option<String>,
}

/// Get a forecast: its status until the job has made it, then the result; `?format=svg`
/// answers the chart as `image/svg+xml`.
#[utoipa::path(
    tag = "forecasts",
    params(
        ("id" = String, Path, description = "Official account id"),
        ("fid" = String, Path, description = "Forecast id"),
        ForecastFormat
    ),
    responses(
        (status = 200, description = "The forecast (JSON), or its chart with `?format=svg`", body = Forecast),
        (status = 409, description = "`?format=svg` before the forecast is made", body = crate::error::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
#[get("/accounts/{id}/forecasts/{fid}")]
pub async fn get(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(String, String)>,
    format: Query<ForecastFormat>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Accounts, Access::Read)?;
    let (account_id, forecast_id) = path.into_inner();
    let forecast = forecasts::get(&state.db, actor, &account_id, &forecast_id).await?;
    match format.0.format.as_deref() {
        None | Some("json") => Ok(HttpResponse::Ok().json(forecast)),
        Some("svg") => {
            let Some(result) = forecast.result.clone() else {
                return Err(wxpilot_core::ServiceError::Conflict(format!(
                    "the forecast is {}; its chart exists once it has succeeded",
                    forecast.status
                ))
                .into());
            };
            let result: wxpilot_forecast::ForecastResult = serde_json::from_value(result)
                .map_err(|e| wxpilot_core::ServiceError::Internal(e.into()))?;
            let title = format!("{} · {} days", forecast.metric, forecast.horizon);
            let svg = wxpilot_forecast::render_svg(&result, &title, 960, 420)
                .map_err(|e| wxpilot_core::ServiceError::Internal(e.into()))?;
            Ok(HttpResponse::Ok().content_type("image/svg+xml").body(svg))
        }
        Some(_) => Err(ApiError::field("format", "must be json or svg")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_rows_report_bad_rows_by_number() {
        let body = br#"{"rows": [{"date": "2026-11-11", "metric": "reads", "value": 5},
                                 {"date": "2026-13-01", "metric": "reads", "value": 5},
                                 {"date": "2026-11-12", "metric": "reads"}]}"#;
        let rows = parse_json_rows(body).unwrap_or_default();
        assert_eq!(rows.len(), 3);
        assert!(rows[0].is_ok());
        assert!(matches!(&rows[1], Err(e) if e.row == 2));
        assert!(matches!(&rows[2], Err(e) if e.row == 3));
        assert!(parse_json_rows(b"{\"x\": 1}").is_err());
    }

    #[test]
    fn csv_rows_follow_the_header() {
        let body = b"metric,date,value\nreads,2026-11-11,5\nreads,2026-11-12,x\nreads,2026-11-13\n";
        let rows = parse_csv_rows(body).unwrap_or_default();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].as_ref().map(|r| r.value).ok(), Some(5.0));
        assert!(matches!(&rows[1], Err(e) if e.row == 2 && e.message.starts_with("value")));
        assert!(matches!(&rows[2], Err(e) if e.row == 3));
        assert!(parse_csv_rows(b"day,value\n").is_err());
    }
}
