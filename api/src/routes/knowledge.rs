//! `/v1/accounts/{id}/knowledge`: the FAQ pairs and documents an account's customer service
//! answers from. Account editors write; everyone in the tenant reads.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use wxpilot_core::service::jobs::Job;
use wxpilot_core::service::knowledge::{
    self, Document, EMBED_JOB_KIND, EmbedJob, EmbedRequest, KnowledgeEntry, KnowledgeUpdate,
    NewDocument, NewKnowledgeEntry,
};
use wxpilot_core::service::metrics::UploadReport;
use wxpilot_core::service::{Access, Actor, Area, Page, PageRequest};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query, RawBody, is_json_lines, media_type};
use crate::routes::created;
use crate::routes::jobs::{accept_job, create_job};
use crate::state::AppState;

/// Add an FAQ pair to an account's knowledge base.
#[utoipa::path(
    tag = "knowledge",
    params(("id" = String, Path, description = "Account id")),
    request_body = NewKnowledgeEntry,
    responses((status = 201, description = "Created", body = KnowledgeEntry)),
    security(("bearer" = []))
)]
#[post("/accounts/{id}/knowledge")]
pub async fn create(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    body: Json<NewKnowledgeEntry>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Accounts, Access::Write)?;
    let entry = knowledge::create(&state.db, actor, &id, body.0).await?;
    queue_embedding(&state, actor, &id).await;
    Ok(created(
        format!("/v1/accounts/{}/knowledge/{}", entry.account_id, entry.id),
        &entry,
    ))
}

/// List an account's knowledge entries, oldest first.
#[utoipa::path(
    tag = "knowledge",
    params(("id" = String, Path, description = "Account id"), PageRequest),
    responses((status = 200, description = "A page of entries", body = Page<KnowledgeEntry>)),
    security(("bearer" = []))
)]
#[get("/accounts/{id}/knowledge")]
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    page: Query<PageRequest>,
) -> ApiResult<web::Json<Page<KnowledgeEntry>>> {
    let actor = auth.require(Area::Accounts, Access::Read)?;
    Ok(web::Json(
        knowledge::list(&state.db, actor, &id, &page.0).await?,
    ))
}

/// Get one knowledge entry.
#[utoipa::path(
    tag = "knowledge",
    params(
        ("id" = String, Path, description = "Account id"),
        ("entry_id" = String, Path, description = "Entry id")
    ),
    responses((status = 200, description = "The entry", body = KnowledgeEntry)),
    security(("bearer" = []))
)]
#[get("/accounts/{id}/knowledge/{entry_id}")]
pub async fn get(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<KnowledgeEntry>> {
    let actor = auth.require(Area::Accounts, Access::Read)?;
    let (id, entry_id) = path.into_inner();
    Ok(web::Json(
        knowledge::get(&state.db, actor, &id, &entry_id).await?,
    ))
}

/// Delete a knowledge entry.
#[utoipa::path(
    tag = "knowledge",
    params(
        ("id" = String, Path, description = "Account id"),
        ("entry_id" = String, Path, description = "Entry id")
    ),
    responses((status = 204, description = "Deleted")),
    security(("bearer" = []))
)]
#[delete("/accounts/{id}/knowledge/{entry_id}")]
pub async fn delete(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Accounts, Access::Write)?;
    let (id, entry_id) = path.into_inner();
    knowledge::delete(&state.db, actor, &id, &entry_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Change an entry's question, answer or alternatives (a document chunk's title and text).
#[utoipa::path(
    tag = "knowledge",
    params(
        ("id" = String, Path, description = "Account id"),
        ("entry_id" = String, Path, description = "Entry id")
    ),
    request_body = KnowledgeUpdate,
    responses((status = 200, description = "The entry as changed", body = KnowledgeEntry)),
    security(("bearer" = []))
)]
#[patch("/accounts/{id}/knowledge/{entry_id}")]
pub async fn update(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(String, String)>,
    body: Json<KnowledgeUpdate>,
) -> ApiResult<web::Json<KnowledgeEntry>> {
    let actor = auth.require(Area::Accounts, Access::Write)?;
    let (id, entry_id) = path.into_inner();
    let entry = knowledge::update(&state.db, actor, &id, &entry_id, body.0).await?;
    queue_embedding(&state, actor, &id).await;
    Ok(web::Json(entry))
}

/// Add a document (plain text or Markdown): it is split into chunks of about 400
/// characters along its sections, paragraphs and sentences, each stored as an entry of kind
/// `document` that grounds model answers.
#[utoipa::path(
    tag = "knowledge",
    params(("id" = String, Path, description = "Account id")),
    request_body = NewDocument,
    responses((status = 201, description = "The document and its chunks", body = Document)),
    security(("bearer" = []))
)]
#[post("/accounts/{id}/knowledge/documents")]
pub async fn create_document(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<String>,
    body: Json<NewDocument>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Accounts, Access::Write)?;
    let document = knowledge::create_document(&state.db, actor, &id, body.0).await?;
    queue_embedding(&state, actor, &id).await;
    Ok(HttpResponse::Created().json(document))
}

/// Delete a document: all its chunks.
#[utoipa::path(
    tag = "knowledge",
    params(
        ("id" = String, Path, description = "Account id"),
        ("document_id" = String, Path, description = "Document id")
    ),
    responses((status = 204, description = "Deleted")),
    security(("bearer" = []))
)]
#[delete("/accounts/{id}/knowledge/documents/{document_id}")]
pub async fn delete_document(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Accounts, Access::Write)?;
    let (id, document_id) = path.into_inner();
    knowledge::delete_document(&state.db, actor, &id, &document_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// How an import is titled when it is a Markdown document.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct ImportQuery {
    /// The document's title (Markdown imports; default: its first heading).
    pub title: Option<String>,
}

/// Import many entries at once, by `Content-Type`: JSON lines (`application/x-ndjson`, one
/// `{question, answer, alternatives?}` per line) or CSV (`text/csv`, header
/// `question,answer[,alternatives]`, alternatives separated by `|`) of FAQ pairs, reported
/// row by row; or Markdown (`text/markdown`), stored as one document chunked along its
/// sections.
#[utoipa::path(
    tag = "knowledge",
    params(("id" = String, Path, description = "Account id"), ImportQuery),
    request_body(content = String, description = "JSON lines, CSV or Markdown"),
    responses(
        (status = 200, description = "FAQ pairs stored and rows rejected", body = UploadReport),
        (status = 201, description = "The Markdown document and its chunks", body = Document)
    ),
    security(("bearer" = []))
)]
#[post("/accounts/{id}/knowledge/import")]
pub async fn import(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: Auth,
    id: web::Path<String>,
    query: Query<ImportQuery>,
    body: RawBody,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Accounts, Access::Write)?;
    // Another tenant's account is a 404 whatever the body holds.
    knowledge::require_account(&state.db, actor, &id).await?;
    let kind = media_type(&req);
    let text =
        std::str::from_utf8(&body.0).map_err(|_| ApiError::field("body", "must be UTF-8 text"))?;
    let rows = if is_json_lines(&kind) {
        knowledge::parse_faq_lines(text)
    } else if kind == "text/csv" {
        knowledge::parse_faq_csv(text).map_err(|m| ApiError::field("body", m))?
    } else if kind == "text/markdown" || kind == "text/x-markdown" {
        let title = query
            .0
            .title
            .or_else(|| first_heading(text))
            .unwrap_or_else(|| "Imported document".to_owned());
        let document = knowledge::create_document(
            &state.db,
            actor,
            &id,
            NewDocument {
                title,
                text: text.to_owned(),
            },
        )
        .await?;
        queue_embedding(&state, actor, &id).await;
        return Ok(HttpResponse::Created().json(document));
    } else {
        return Err(ApiError::UnsupportedMediaType(format!(
            "import takes application/x-ndjson, text/csv or text/markdown, not {:?}",
            kind
        )));
    };
    let report = knowledge::import(&state.db, actor, &id, rows).await?;
    if report.stored > 0 {
        queue_embedding(&state, actor, &id).await;
    }
    Ok(HttpResponse::Ok().json(report))
}

/// Queues an `embed_knowledge` job for the account's new or changed entries, when hybrid
/// retrieval is on. The entries are stored already: if the job cannot be queued now, the
/// next write or `POST …/knowledge/embed` embeds them.
async fn queue_embedding(state: &AppState, actor: &Actor, account_id: &str) {
    if state.embedding_model().is_none() {
        return;
    }
    let payload = serde_json::json!(EmbedJob {
        account_id: account_id.to_owned(),
        force: false,
    });
    if let Err(e) = create_job(state, actor, EMBED_JOB_KIND, payload, None, None).await {
        tracing::warn!(error = %e, account = account_id, "embedding job not queued");
    }
}

/// Embed the account's knowledge entries with the configured embedding model (a job):
/// those without a vector of that model, or all of them with `force` (after a change of
/// model). Writes queue this by themselves; call it after changing
/// `customer_service.embedding_model`.
#[utoipa::path(
    tag = "knowledge",
    params(("id" = String, Path, description = "Account id")),
    request_body = EmbedRequest,
    responses(
        (status = 202, description = "Queued; `Location` names the job", body = Job),
        (status = 409, description = "No embedding model is configured and served", body = crate::error::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
#[post("/accounts/{id}/knowledge/embed")]
pub async fn embed(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: Auth,
    id: web::Path<String>,
    body: Json<EmbedRequest>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Accounts, Access::Write)?;
    knowledge::require_account(&state.db, actor, &id).await?;
    if state.embedding_model().is_none() {
        return Err(ApiError::Conflict(format!(
            "no embedding model: customer_service.embedding_model is {:?} and the inference backends do not serve it",
            state.settings.customer_service.embedding_model
        )));
    }
    let payload = serde_json::json!(EmbedJob {
        account_id: id.into_inner(),
        force: body.0.force,
    });
    accept_job(&state, &req, actor, EMBED_JOB_KIND, payload).await
}

/// The text of a Markdown document's first ATX heading (`#` to `######` and a space),
/// outside code fences, as its title.
fn first_heading(text: &str) -> Option<String> {
    let mut fenced = false;
    for line in text.lines().map(str::trim_start) {
        if line.starts_with("```") || line.starts_with("~~~") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let level = line.chars().take_while(|c| *c == '#').count();
        let rest = &line[level..];
        if (1..=6).contains(&level) && rest.starts_with([' ', '\t']) && !rest.trim().is_empty() {
            return Some(
                rest.trim()
                    .trim_end_matches('#')
                    .trim()
                    .chars()
                    .take(200)
                    .collect(),
            );
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::first_heading;

    #[test]
    fn the_title_is_the_first_real_heading() {
        assert_eq!(
            first_heading("```sh\n# a comment\n```\n#tag\n####### seven\n## 售后政策 ##\n"),
            Some("售后政策".to_owned())
        );
        assert_eq!(first_heading("no heading\n#\n"), None);
    }
}
