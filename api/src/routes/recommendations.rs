//! Recommendation: `/v1/accounts/{id}/items` (the catalogue), `/interactions` (JSON lines),
//! `/recommendations` (the `recommend` job), `/followers/{openid}/recommendations`,
//! `/items/{item}/similar` and `/segments` (the `segment` job, which tags in WeChat).

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::de::DeserializeOwned;
use serde_json::Value;
use wxpilot_core::service::metrics::RowError;
use wxpilot_core::service::recommendations::{
    self as recs, FollowerRecommendations, IngestReport, InteractionInput, Item, ItemInput,
    NumberedRow, RecommendRequest, Segment, SegmentRequest, SimilarItems,
};
use wxpilot_core::service::{Access, Area, Page, PageRequest, accounts};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query, RawBody, nul_path};
use crate::routes::jobs::accept_job;
use crate::state::AppState;

/// Parses a JSON upload of one object, an array, or `{"<key>": [...]}` element by element,
/// so one malformed element does not sink the others.
pub fn parse_json_elements<T: DeserializeOwned>(
    body: &[u8],
    key: &str,
) -> Result<Vec<NumberedRow<T>>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let elements = match value {
        Value::Array(elements) => elements,
        Value::Object(mut object) => match object.remove(key) {
            Some(Value::Array(elements)) if object.is_empty() => elements,
            Some(Value::Array(_)) => {
                return Err(format!("{{\"{key}\": [...]}} takes no other fields"));
            }
            Some(_) => return Err(format!("{key} must be an array")),
            None => vec![Value::Object(object)],
        },
        _ => {
            return Err(format!(
                "expected an object, an array or {{\"{key}\": [...]}}"
            ));
        }
    };
    Ok(elements
        .into_iter()
        .enumerate()
        .map(|(i, element)| parse_element(element, i + 1))
        .collect())
}

fn parse_element<T: DeserializeOwned>(value: Value, row: usize) -> NumberedRow<T> {
    let error = |message: String| RowError { row, message };
    if let Some(path) = nul_path(&value, String::new()) {
        let field = if path.is_empty() {
            "value".into()
        } else {
            path
        };
        return Err(error(format!("{field} must not contain NUL characters")));
    }
    serde_json::from_value(value)
        .map(|v| (row, v))
        .map_err(|e| error(e.to_string()))
}

/// Parses JSON lines (one object per line; blank lines skipped, numbers kept as sent).
pub fn parse_json_lines<T: DeserializeOwned>(body: &[u8]) -> Result<Vec<NumberedRow<T>>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "JSON lines must be UTF-8".to_owned())?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str::<Value>(line)
                .map_err(|e| RowError {
                    row: i + 1,
                    message: format!("not JSON: {e}"),
                })
                .and_then(|value| parse_element(value, i + 1))
        })
        .collect())
}

fn is_json_lines(req: &HttpRequest) -> bool {
    crate::extract::is_json_lines(&crate::extract::media_type(req))
}

fn require_account_error() -> ApiError {
    wxpilot_core::ServiceError::NotFound("official account").into()
}

/// Add or update items (articles, products): one object, an array, or `{"items": [...]}`.
/// An item is known by your `id`; uploading it again updates it. Bad elements are reported
/// by position, good ones stored.
#[utoipa::path(
    tag = "recommendations",
    params(("id" = String, Path, description = "Official account id")),
    request_body(content = Vec<ItemInput>, description = "Items (or one item, or `{\"items\": [...]}`)"),
    responses((status = 200, description = "Items stored and elements rejected", body = IngestReport)),
    security(("bearer" = []))
)]
#[post("/accounts/{id}/items")]
pub async fn upload_items(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    body: RawBody,
) -> ApiResult<web::Json<IngestReport>> {
    let actor = auth.require(Area::Accounts, Access::Write)?;
    let rows = parse_json_elements::<ItemInput>(&body.0, "items")
        .map_err(|m| ApiError::field("body", m))?;
    Ok(web::Json(
        recs::upsert_items(&state.db, actor, &id, rows).await?,
    ))
}

/// List an account's items, in upload order.
#[utoipa::path(
    tag = "recommendations",
    params(("id" = String, Path, description = "Official account id"), PageRequest),
    responses((status = 200, description = "A page of items", body = Page<Item>)),
    security(("bearer" = []))
)]
#[get("/accounts/{id}/items")]
pub async fn list_items(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    page: Query<PageRequest>,
) -> ApiResult<web::Json<Page<Item>>> {
    let actor = auth.require(Area::Accounts, Access::Read)?;
    Ok(web::Json(
        recs::list_items(&state.db, actor, &id, &page.0).await?,
    ))
}

/// Get one item by your id.
#[utoipa::path(
    tag = "recommendations",
    params(
        ("id" = String, Path, description = "Official account id"),
        ("item" = String, Path, description = "Your id of the item")
    ),
    responses((status = 200, description = "The item", body = Item)),
    security(("bearer" = []))
)]
#[get("/accounts/{id}/items/{item}")]
pub async fn get_item(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<Item>> {
    let actor = auth.require(Area::Accounts, Access::Read)?;
    let (account, item) = path.into_inner();
    Ok(web::Json(
        recs::get_item(&state.db, actor, &account, &item).await?,
    ))
}

/// Items similar to one item (by who consumed them and by text), from the last
/// `recommend` job; 409 before one has run since the item was added.
#[utoipa::path(
    tag = "recommendations",
    params(
        ("id" = String, Path, description = "Official account id"),
        ("item" = String, Path, description = "Your id of the item")
    ),
    responses(
        (status = 200, description = "Similar items, best first", body = SimilarItems),
        (status = 409, description = "No recommend job has run since the item was added", body = crate::error::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
#[get("/accounts/{id}/items/{item}/similar")]
pub async fn similar(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<SimilarItems>> {
    let actor = auth.require(Area::Accounts, Access::Read)?;
    let (account, item) = path.into_inner();
    Ok(web::Json(
        recs::similar_items(&state.db, actor, &account, &item).await?,
    ))
}

/// Record followers' interactions with items: JSON lines (`Content-Type:
/// application/x-ndjson`, one `{openid, item, kind, weight?, time?, event_id?}` per line)
/// or a JSON array. Lines with an `event_id` (or a `time`) are stored once however often
/// the upload is repeated; bad lines are reported by line number.
#[utoipa::path(
    tag = "recommendations",
    params(("id" = String, Path, description = "Official account id")),
    request_body(content = Vec<InteractionInput>, description = "JSON lines (application/x-ndjson) or a JSON array of interactions"),
    responses((status = 200, description = "Lines stored, duplicates and lines rejected", body = IngestReport)),
    security(("bearer" = []))
)]
#[post("/accounts/{id}/interactions")]
pub async fn upload_interactions(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: Auth,
    id: web::Path<String>,
    body: RawBody,
) -> ApiResult<web::Json<IngestReport>> {
    let actor = auth.require(Area::Accounts, Access::Write)?;
    let rows = if is_json_lines(&req) {
        parse_json_lines::<InteractionInput>(&body.0)
    } else {
        parse_json_elements::<InteractionInput>(&body.0, "interactions")
    }
    .map_err(|m| ApiError::field("body", m))?;
    Ok(web::Json(
        recs::ingest_interactions(&state.db, actor, &id, rows).await?,
    ))
}

/// Queue a `recommend` job: trains on the account's interactions (with item texts for
/// cold items) and stores every follower's top `k` with reasons, the list new followers
/// get, and each item's similar items.
#[utoipa::path(
    tag = "recommendations",
    params(
        ("id" = String, Path, description = "Official account id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe creation: the same key and body give the same job")
    ),
    request_body = RecommendRequest,
    responses((status = 202, description = "Queued; `Location` names the job", body = wxpilot_core::service::jobs::Job)),
    security(("bearer" = []))
)]
#[post("/accounts/{id}/recommendations")]
pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: Auth,
    id: web::Path<String>,
    body: Json<RecommendRequest>,
) -> ApiResult<HttpResponse> {
    auth.require(Area::Accounts, Access::Read)?;
    let actor = auth.require(Area::Jobs, Access::Write)?;
    if !accounts::exists(&state.db, actor, &id).await? {
        return Err(require_account_error());
    }
    let job = body.0.into_job(&id)?;
    let payload = serde_json::to_value(&job).map_err(|e| ApiError::field("body", e.to_string()))?;
    accept_job(&state, &req, actor, recs::RECOMMEND_JOB_KIND, payload).await
}

/// A follower's recommendations from the last `recommend` job; a follower it did not know
/// gets the account's most consumed items (`fallback: true`). 404 before any job ran.
#[utoipa::path(
    tag = "recommendations",
    params(
        ("id" = String, Path, description = "Official account id"),
        ("openid" = String, Path, description = "The follower's openid")
    ),
    responses((status = 200, description = "Best first, each with a reason", body = FollowerRecommendations)),
    security(("bearer" = []))
)]
#[get("/accounts/{id}/followers/{openid}/recommendations")]
pub async fn for_follower(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<FollowerRecommendations>> {
    let actor = auth.require(Area::Accounts, Access::Read)?;
    let (account, openid) = path.into_inner();
    Ok(web::Json(
        recs::for_follower(&state.db, actor, &account, &openid).await?,
    ))
}

/// Queue a `segment` job: followers with the highest affinity to `items` or a `topic`
/// get the WeChat tag `tag` (default: the name), created when the account has none of
/// that name. The segment has the job's id.
#[utoipa::path(
    tag = "recommendations",
    params(
        ("id" = String, Path, description = "Official account id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe creation: the same key and body give the same job")
    ),
    request_body = SegmentRequest,
    responses((status = 202, description = "Queued; `Location` names the job, whose id is the segment's", body = wxpilot_core::service::jobs::Job)),
    security(("bearer" = []))
)]
#[post("/accounts/{id}/segments")]
pub async fn create_segment(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: Auth,
    id: web::Path<String>,
    body: Json<SegmentRequest>,
) -> ApiResult<HttpResponse> {
    auth.require(Area::Accounts, Access::Read)?;
    let actor = auth.require(Area::Jobs, Access::Write)?;
    if !accounts::exists(&state.db, actor, &id).await? {
        return Err(require_account_error());
    }
    let job = body.0.into_job(&id)?;
    recs::check_segment_items(&state.db, actor, &id, &job.request.items).await?;
    let payload = serde_json::to_value(&job).map_err(|e| ApiError::field("body", e.to_string()))?;
    accept_job(&state, &req, actor, recs::SEGMENT_JOB_KIND, payload).await
}

/// The account's segments, newest first (member lists in `GET …/segments/{sid}`).
#[utoipa::path(
    tag = "recommendations",
    params(("id" = String, Path, description = "Official account id")),
    responses((status = 200, description = "Segments", body = Vec<Segment>)),
    security(("bearer" = []))
)]
#[get("/accounts/{id}/segments")]
pub async fn list_segments(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
) -> ApiResult<web::Json<Vec<Segment>>> {
    let actor = auth.require(Area::Accounts, Access::Read)?;
    Ok(web::Json(recs::list_segments(&state.db, actor, &id).await?))
}

/// One segment with its members, or its job's status until it is built.
#[utoipa::path(
    tag = "recommendations",
    params(
        ("id" = String, Path, description = "Official account id"),
        ("sid" = String, Path, description = "Segment id")
    ),
    responses((status = 200, description = "The segment", body = Segment)),
    security(("bearer" = []))
)]
#[get("/accounts/{id}/segments/{sid}")]
pub async fn get_segment(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<Segment>> {
    let actor = auth.require(Area::Accounts, Access::Read)?;
    let (account, segment) = path.into_inner();
    Ok(web::Json(
        recs::get_segment(&state.db, actor, &account, &segment).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_report_bad_lines_by_number() {
        let body = b"{\"openid\":\"o1\",\"item\":\"a\",\"kind\":\"read\"}\n\n{oops\n{\"openid\":\"o2\",\"item\":\"a\",\"kind\":\"teleport\"}\n";
        let rows = parse_json_lines::<InteractionInput>(body).unwrap_or_default();
        assert_eq!(rows.len(), 3);
        assert!(rows[0].is_ok());
        assert!(matches!(&rows[1], Err(e) if e.row == 3));
        assert!(matches!(&rows[2], Err(e) if e.row == 4 && e.message.contains("teleport")));
    }

    #[test]
    fn json_uploads_take_one_object_an_array_or_a_keyed_array() {
        let one = br#"{"id": "a", "title": "A"}"#;
        assert_eq!(
            parse_json_elements::<ItemInput>(one, "items")
                .unwrap_or_default()
                .len(),
            1
        );
        let keyed = br#"{"items": [{"id": "a", "title": "A"}, {"id": "b"}]}"#;
        let rows = parse_json_elements::<ItemInput>(keyed, "items").unwrap_or_default();
        assert!(rows[0].is_ok());
        assert!(matches!(&rows[1], Err(e) if e.row == 2 && e.message.contains("title")));
        assert!(parse_json_elements::<ItemInput>(b"[1,", "items").is_err());
        assert!(parse_json_elements::<ItemInput>(br#"{"items": 3}"#, "items").is_err());
    }
}
