//! Publishing approved articles to WeChat. One publication per content records each step
//! the `publish` job finished — cover and body images uploaded, the draft added, the
//! publish submitted, the outcome — so a retry resumes after the last finished step and
//! repeats none: no second draft, no second publish.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, QueryFilter, Set, SqlErr,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use wxpilot_entity::{content, publication};

use super::{Actor, contents};
use crate::error::{ServiceError, ServiceResult};

/// The job kind that publishes a content.
pub const PUBLISH_JOB_KIND: &str = "publish";

/// Publication states.
pub mod status {
    /// Images are being uploaded.
    pub const UPLOADING: &str = "uploading";
    /// `draft/add` answered; its media id is stored.
    pub const DRAFTED: &str = "drafted";
    /// `freepublish/submit` was sent; its answer is not stored yet.
    pub const SUBMITTING: &str = "submitting";
    /// Submitted; WeChat is publishing.
    pub const SUBMITTED: &str = "submitted";
    /// Published; the article URL is stored.
    pub const PUBLISHED: &str = "published";
    /// WeChat refused it (originality, review, …); `error` says why.
    pub const FAILED: &str = "failed";
}

/// `POST /v1/contents/{id}/publish`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// The cover image (JPEG or PNG, at most 64 KB, as WeChat's thumbs allow); the body's
    /// first image when absent.
    pub cover_url: Option<String>,
}

/// What the `publish` job is asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishJob {
    /// The content.
    pub content_id: String,
    /// Its account.
    pub account_id: String,
    /// The cover image.
    pub cover_url: Option<String>,
}

/// A publication.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Publication {
    /// The content.
    pub content_id: String,
    /// The content version published.
    pub version: i32,
    /// The job doing it.
    pub job_id: String,
    /// `uploading`, `drafted`, `submitting`, `submitted`, `published` or `failed`.
    pub status: String,
    /// WeChat's draft media id.
    pub draft_media_id: Option<String>,
    /// WeChat's publish job id.
    pub publish_id: Option<String>,
    /// The public URL of the published article.
    pub article_url: Option<String>,
    /// Why WeChat refused it.
    pub error: Option<String>,
    /// Body images uploaded: original URL → WeChat URL.
    #[schema(value_type = Object)]
    pub images: Value,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<publication::Model> for Publication {
    fn from(m: publication::Model) -> Self {
        Self {
            content_id: m.content_id,
            version: m.version,
            job_id: m.job_id,
            status: m.status,
            draft_media_id: m.draft_media_id,
            publish_id: m.publish_id,
            article_url: m.article_url,
            error: m.error,
            images: m.images,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// Checks that content `id` may be published now and makes the job payload and the
/// idempotency key that makes repeated requests answer the same job: an approved article
/// of a campaign with an account, not published (or being published) already.
pub async fn prepare<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    id: &str,
    request: PublishRequest,
) -> ServiceResult<(PublishJob, String)> {
    let detail = contents::get(conn, actor, id).await?;
    let content = detail.content;
    if content.kind != "article" {
        return Err(ServiceError::Conflict(format!(
            "only articles are published; this content is {}",
            content.kind
        )));
    }
    let existing = find(conn, &actor.tenant_id, id).await?;
    // Being published: the same request again answers the job doing it (its key), however
    // far that job has got; published: refused.
    let in_progress_key = match &existing {
        Some(e) if e.status == status::PUBLISHED => {
            return Err(ServiceError::Conflict(format!(
                "this content is published already (job {})",
                e.job_id
            )));
        }
        Some(e) if e.status != status::FAILED => Some(
            job_key(conn, &actor.tenant_id, &e.job_id)
                .await?
                .ok_or_else(|| {
                    ServiceError::Conflict(format!(
                        "this content is {} already (job {})",
                        e.status, e.job_id
                    ))
                })?,
        ),
        _ => None,
    };
    if content.state != contents::state::APPROVED {
        return Err(ServiceError::Conflict(format!(
            "a content in state {} cannot be published: approve it first",
            content.state
        )));
    }
    let Some(account_id) = content.account_id else {
        return Err(ServiceError::Conflict(
            "the content's campaign has no official account to publish to".into(),
        ));
    };
    if let Some(url) = &request.cover_url
        && !wxpilot_content::limits::is_http_url(url)
    {
        return Err(ServiceError::field("cover_url", "must be an http(s) URL"));
    }
    // One job per content version; after a failed publication, one more per failure.
    let key = match (in_progress_key, &existing) {
        (Some(key), _) => key,
        (None, Some(failed)) => format!(
            "publish:{}:{}:after:{}",
            content.id, content.current_version, failed.job_id
        ),
        (None, None) => format!("publish:{}:{}", content.id, content.current_version),
    };
    Ok((
        PublishJob {
            content_id: content.id,
            account_id,
            cover_url: request.cover_url,
        },
        key,
    ))
}

/// The idempotency key job `job_id` was created with.
async fn job_key<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    job_id: &str,
) -> ServiceResult<Option<String>> {
    Ok(wxpilot_entity::job::Entity::find_by_id(job_id.to_owned())
        .filter(wxpilot_entity::job::Column::TenantId.eq(tenant_id))
        .one(conn)
        .await?
        .and_then(|j| j.idempotency_key))
}

async fn find<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    content_id: &str,
) -> ServiceResult<Option<publication::Model>> {
    Ok(publication::Entity::find()
        .filter(publication::Column::TenantId.eq(tenant_id))
        .filter(publication::Column::ContentId.eq(content_id))
        .one(conn)
        .await?)
}

/// The publication of one of the tenant's contents.
pub async fn get<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    content_id: &str,
) -> ServiceResult<Publication> {
    contents::get(conn, actor, content_id).await?;
    find(conn, &actor.tenant_id, content_id)
        .await?
        .map(Publication::from)
        .ok_or(ServiceError::NotFound("publication"))
}

/// The publication job `job_id` works on: the stored one (a retry resumes it), a failed
/// one taken over, or a new one for `version`.
pub async fn start(
    db: &DatabaseConnection,
    tenant_id: &str,
    job_id: &str,
    job: &PublishJob,
    version: i32,
) -> ServiceResult<publication::Model> {
    if let Some(existing) = find(db, tenant_id, &job.content_id).await? {
        if existing.job_id == job_id || existing.status != status::FAILED {
            return Ok(existing);
        }
        // A failed publication is started over by the new job.
        let mut active = existing.into_active_model();
        active.job_id = Set(job_id.to_owned());
        active.version = Set(version);
        active.status = Set(status::UPLOADING.to_owned());
        active.draft_media_id = Set(None);
        active.publish_id = Set(None);
        active.error = Set(None);
        active.updated_at = Set(Utc::now());
        return Ok(active.update(db).await?);
    }
    let now = Utc::now();
    let model = publication::ActiveModel {
        id: Set(crate::ids::new_id()),
        tenant_id: Set(tenant_id.to_owned()),
        account_id: Set(job.account_id.clone()),
        content_id: Set(job.content_id.clone()),
        version: Set(version),
        job_id: Set(job_id.to_owned()),
        status: Set(status::UPLOADING.to_owned()),
        thumb_media_id: Set(None),
        images: Set(json!({})),
        draft_media_id: Set(None),
        publish_id: Set(None),
        article_id: Set(None),
        article_url: Set(None),
        error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    match model.insert(db).await {
        Ok(m) => Ok(m),
        // Another job of the same content won the race.
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Err(
            ServiceError::Conflict("another job is publishing this content".into()),
        ),
        Err(e) => Err(e.into()),
    }
}

/// Stores a step's outcome on the publication.
pub async fn save(
    db: &DatabaseConnection,
    model: publication::Model,
) -> ServiceResult<publication::Model> {
    let mut active = model.into_active_model().reset_all();
    active.updated_at = Set(Utc::now());
    Ok(active.update(db).await?)
}

/// Records WeChat's outcome of publish job `publish_id` (from `freepublish/get` or the
/// `PUBLISHJOBFINISH` event): published with its URL, or failed with the reason. The
/// content becomes `published` on success. Unknown publish ids are ignored (`false`).
pub async fn finish<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    account_id: &str,
    publish_id: &str,
    outcome: Result<(Option<String>, Option<String>), String>,
) -> ServiceResult<bool> {
    let Some(row) = publication::Entity::find()
        .filter(publication::Column::TenantId.eq(tenant_id))
        .filter(publication::Column::AccountId.eq(account_id))
        .filter(publication::Column::PublishId.eq(publish_id))
        .one(conn)
        .await?
    else {
        return Ok(false);
    };
    if row.status == status::PUBLISHED {
        return Ok(true);
    }
    let content_id = row.content_id.clone();
    let mut active = row.into_active_model();
    let published = outcome.is_ok();
    match outcome {
        Ok((article_id, article_url)) => {
            active.status = Set(status::PUBLISHED.to_owned());
            active.article_id = Set(article_id);
            active.article_url = Set(article_url);
            active.error = Set(None);
        }
        Err(reason) => {
            active.status = Set(status::FAILED.to_owned());
            active.error = Set(Some(reason));
        }
    }
    active.updated_at = Set(Utc::now());
    active.update(conn).await?;
    if published {
        content::Entity::update_many()
            .col_expr(
                content::Column::State,
                sea_orm::sea_query::Expr::value(contents::state::PUBLISHED),
            )
            .col_expr(
                content::Column::UpdatedAt,
                sea_orm::sea_query::Expr::value(Utc::now()),
            )
            .filter(content::Column::TenantId.eq(tenant_id))
            .filter(content::Column::Id.eq(content_id))
            .exec(conn)
            .await?;
    }
    Ok(true)
}
