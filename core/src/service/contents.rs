//! Generated contents under review: list, read with every version, edit (a new version,
//! re-checked against WeChat's limits and the compliance lists), approve and reject; and each
//! account's brand voice, which generation prompts and compliance checks use.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use wxpilot_content::compliance::{
    ComplianceReport, ComplianceScanner, Verdict, banned_word_terms,
};
use wxpilot_content::html;
use wxpilot_content::limits::{self, ArticleDraft, ContentField, Draft};
use wxpilot_entity::{brand_voice, content, content_version};

use super::audit::{self, Action};
use super::{Actor, Page, PageRequest, accounts, fetch_page};
use crate::error::{ServiceError, ServiceResult};
use crate::ids::{is_id, new_id};
use crate::validate::Checks;

const RESOURCE: &str = "content";
const MAX_WORDS: usize = 500;
const MAX_WORD: usize = 50;
const MAX_STYLE_GUIDE: usize = 5_000;
const MAX_SIGNATURE: usize = 500;

/// The review states a content can be in.
pub mod state {
    /// Generated or edited, waiting for review.
    pub const DRAFT: &str = "draft";
    /// Prohibited wording remains after the model's rewrites: a person must edit it.
    pub const NEEDS_REVIEW: &str = "needs_review";
    /// An editor approved it; it may be published.
    pub const APPROVED: &str = "approved";
    /// An editor rejected it.
    pub const REJECTED: &str = "rejected";
    /// Published to WeChat.
    pub const PUBLISHED: &str = "published";
}

/// A content: its current text, review state and compliance report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Content {
    /// Content id.
    pub id: String,
    /// The campaign it was written for.
    pub campaign_id: String,
    /// The campaign's official account.
    pub account_id: Option<String>,
    /// `article`, `moments` or `menu_reply`.
    pub kind: String,
    /// `draft`, `needs_review`, `approved`, `rejected` or `published`.
    pub state: String,
    /// The current version's number (from 1).
    pub current_version: i32,
    /// The current version: `{title, author, digest, html}` for articles, `{text}` otherwise.
    #[schema(value_type = Object)]
    pub body: Value,
    /// Compliance hits of the current version and the verdict (`clean`, `needs_check`, `violation`).
    #[schema(value_type = Object)]
    pub compliance_report: Value,
    /// The generation job that wrote it.
    pub generation_job_id: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// One stored version of a content's text.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ContentVersion {
    /// Version number, from 1.
    pub version: i32,
    /// The text, shaped as [`Content::body`].
    #[schema(value_type = Object)]
    pub body: Value,
    /// Who wrote it: `user:<id>`, `api_key:<id>`, or `job:<id>` for generated text.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A content with all its versions, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ContentDetail {
    /// The content.
    #[serde(flatten)]
    pub content: Content,
    /// Every version.
    pub versions: Vec<ContentVersion>,
}

/// List filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContentFilter {
    /// Only this campaign's contents.
    pub campaign_id: Option<String>,
    /// Only contents in this state.
    pub state: Option<String>,
}

/// An edit: the fields given replace the current version's; the result is a new version.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContentPatch {
    /// Article title (≤ 64 characters).
    pub title: Option<String>,
    /// Article author (≤ 8 characters).
    pub author: Option<String>,
    /// Article digest (≤ 120 characters).
    pub digest: Option<String>,
    /// Article body HTML; sanitised to what WeChat's editor keeps.
    pub html: Option<String>,
    /// Moments copy or menu reply text.
    pub text: Option<String>,
}

/// An account's brand voice.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BrandVoiceBody {
    /// Free-text style guide (≤ 5,000 characters).
    #[serde(default)]
    pub style_guide: String,
    /// Words the brand likes to use.
    #[serde(default)]
    pub preferred_words: Vec<String>,
    /// Words the brand never uses; also flagged by the compliance check.
    #[serde(default)]
    pub banned_words: Vec<String>,
    /// Appended to every generated article (≤ 500 characters).
    #[serde(default)]
    pub signature: String,
}

impl From<content::Model> for Content {
    fn from(m: content::Model) -> Self {
        Self {
            id: m.id,
            campaign_id: m.campaign_id,
            account_id: m.account_id,
            kind: m.kind,
            state: m.state,
            current_version: m.current_version,
            body: Value::Null,
            compliance_report: m.compliance_report,
            generation_job_id: m.generation_job_id,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

impl From<content_version::Model> for ContentVersion {
    fn from(m: content_version::Model) -> Self {
        Self {
            version: m.version,
            body: m.body,
            created_by: m.created_by,
            created_at: m.created_at,
        }
    }
}

async fn find_model<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    id: &str,
) -> ServiceResult<content::Model> {
    if !is_id(id) {
        return Err(ServiceError::NotFound("content"));
    }
    content::Entity::find_by_id(id.to_owned())
        .filter(content::Column::TenantId.eq(&actor.tenant_id))
        .one(conn)
        .await?
        .ok_or(ServiceError::NotFound("content"))
}

async fn versions_of<C: ConnectionTrait>(
    conn: &C,
    content_id: &str,
) -> ServiceResult<Vec<content_version::Model>> {
    Ok(content_version::Entity::find()
        .filter(content_version::Column::ContentId.eq(content_id))
        .order_by_asc(content_version::Column::Version)
        .all(conn)
        .await?)
}

async fn with_body<C: ConnectionTrait>(conn: &C, m: content::Model) -> ServiceResult<Content> {
    let current = content_version::Entity::find()
        .filter(content_version::Column::ContentId.eq(&m.id))
        .filter(content_version::Column::Version.eq(m.current_version))
        .one(conn)
        .await?;
    let mut out = Content::from(m);
    out.body = current.map_or(Value::Null, |v| v.body);
    Ok(out)
}

/// The tenant's contents, oldest first, optionally of one campaign or in one state.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    filter: &ContentFilter,
    page: &PageRequest,
) -> ServiceResult<Page<Content>> {
    let mut query = content::Entity::find().filter(content::Column::TenantId.eq(&actor.tenant_id));
    if let Some(campaign_id) = &filter.campaign_id {
        query = query.filter(content::Column::CampaignId.eq(campaign_id));
    }
    if let Some(state) = &filter.state {
        query = query.filter(content::Column::State.eq(state));
    }
    let (rows, limit) = fetch_page(conn, query, content::Column::Id, page).await?;
    let page = Page::from_rows(rows, limit, |m| &m.id, |m| m);
    let mut items = Vec::with_capacity(page.items.len());
    for m in page.items {
        items.push(with_body(conn, m).await?);
    }
    Ok(Page {
        items,
        next_cursor: page.next_cursor,
    })
}

/// One content with every version.
pub async fn get<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    id: &str,
) -> ServiceResult<ContentDetail> {
    let model = find_model(conn, actor, id).await?;
    let versions = versions_of(conn, &model.id).await?;
    Ok(ContentDetail {
        content: with_body(conn, model).await?,
        versions: versions.into_iter().map(Into::into).collect(),
    })
}

/// The brand voice's banned words for an account (none when no voice is set).
async fn banned_words<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    account_id: Option<&str>,
) -> ServiceResult<Vec<String>> {
    let Some(account_id) = account_id else {
        return Ok(Vec::new());
    };
    let voice = brand_voice::Entity::find()
        .filter(brand_voice::Column::TenantId.eq(tenant_id))
        .filter(brand_voice::Column::AccountId.eq(account_id))
        .one(conn)
        .await?;
    Ok(voice.map_or_else(Vec::new, |v| string_list(&v.banned_words)))
}

fn string_list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn text_of(body: &Value, key: &str) -> String {
    body.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Applies `patch` to the current body of a content of `kind`, checks WeChat's limits (422
/// naming each broken rule) and runs the compliance scan. Returns the new body and report.
fn revise(
    kind: &str,
    current: &Value,
    patch: ContentPatch,
    scanner: &ComplianceScanner,
) -> ServiceResult<(Value, ComplianceReport)> {
    if kind == "article" {
        if patch.text.is_some() {
            return Err(ServiceError::field(
                "text",
                "articles have title, digest and html, not text",
            ));
        }
        let article = ArticleDraft {
            title: patch.title.unwrap_or_else(|| text_of(current, "title")),
            author: patch.author.unwrap_or_else(|| text_of(current, "author")),
            digest: patch.digest.unwrap_or_else(|| text_of(current, "digest")),
            content_html: html::sanitize(&patch.html.unwrap_or_else(|| text_of(current, "html"))),
            ..ArticleDraft::default()
        };
        let draft = Draft {
            articles: vec![article],
        };
        if let Err(invalid) = limits::validate_draft(&draft) {
            let mut checks = Checks::new();
            for v in &invalid.violations {
                checks.fail(violation_field(v), v.to_string());
            }
            checks.finish()?;
        }
        let report = scanner.check_draft(&draft);
        let a = &draft.articles[0];
        let body = json!({"title": a.title, "author": a.author, "digest": a.digest, "html": a.content_html});
        return Ok((body, report));
    }
    if patch.title.is_some()
        || patch.author.is_some()
        || patch.digest.is_some()
        || patch.html.is_some()
    {
        return Err(ServiceError::field(
            "text",
            "only text can be changed on this kind",
        ));
    }
    let text = patch.text.unwrap_or_else(|| text_of(current, "text"));
    let checked = if kind == "menu_reply" {
        limits::validate_passive_reply(&text)
    } else {
        limits::validate_moments(&text)
    };
    checked.map_err(|v| ServiceError::field("text", v.to_string()))?;
    let report = scanner.check_text(&text, ContentField::Text);
    Ok((json!({"text": text}), report))
}

fn violation_field(v: &limits::LimitViolation) -> &'static str {
    use limits::LimitViolation as V;
    match v {
        V::NoArticles | V::TooManyArticles { .. } => "articles",
        V::Empty { field, .. } | V::TooLong { field, .. } | V::NotHttpUrl { field, .. } => {
            match field {
                ContentField::Body => "html",
                other => other.as_str(),
            }
        }
    }
}

/// The review state after an edit: prohibited wording keeps it in `needs_review`; an edit of
/// approved or rejected text sends it back to `draft` for another review.
fn state_after_edit(report: &ComplianceReport) -> &'static str {
    if report.verdict == Verdict::Violation {
        state::NEEDS_REVIEW
    } else {
        state::DRAFT
    }
}

/// Edits a content: stores a new version, re-checked, and puts it back under review.
pub async fn update(
    db: &DatabaseConnection,
    actor: &Actor,
    id: &str,
    patch: ContentPatch,
) -> ServiceResult<ContentDetail> {
    let txn = crate::db::begin_write(db).await?;
    let current = find_model(&txn, actor, id).await?;
    if current.state == state::PUBLISHED {
        return Err(ServiceError::Conflict(
            "a published content cannot be edited".into(),
        ));
    }
    let body = content_version::Entity::find()
        .filter(content_version::Column::ContentId.eq(&current.id))
        .filter(content_version::Column::Version.eq(current.current_version))
        .one(&txn)
        .await?
        .map_or(Value::Null, |v| v.body);
    let words = banned_words(&txn, &actor.tenant_id, current.account_id.as_deref()).await?;
    let scanner = ComplianceScanner::new(&banned_word_terms(&words))
        .map_err(|e| ServiceError::field("banned_words", e.to_string()))?;
    let (new_body, report) = revise(&current.kind, &body, patch, &scanner)?;
    let version = current.current_version + 1;
    let now = Utc::now();
    content_version::ActiveModel {
        id: Set(new_id()),
        tenant_id: Set(actor.tenant_id.clone()),
        content_id: Set(current.id.clone()),
        version: Set(version),
        body: Set(new_body),
        created_by: Set(actor.subject.clone()),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let mut model: content::ActiveModel = current.clone().into();
    model.current_version = Set(version);
    model.state = Set(state_after_edit(&report).to_owned());
    model.compliance_report = Set(json!(report));
    model.updated_at = Set(now);
    model.update(&txn).await?;
    audit::record(
        &txn,
        actor,
        Action::Update,
        RESOURCE,
        &current.id,
        json!({"version": version}),
    )
    .await?;
    txn.commit().await?;
    get(db, actor, id).await
}

/// Whether a content in state `from` may move to `to` by review.
pub fn review_allowed(from: &str, to: &str) -> bool {
    match to {
        // Prohibited wording must be edited away first.
        state::APPROVED => from == state::DRAFT || from == state::REJECTED,
        state::REJECTED => {
            from == state::DRAFT || from == state::NEEDS_REVIEW || from == state::APPROVED
        }
        _ => false,
    }
}

/// Approves (`approved`) or rejects (`rejected`) a content; 409 when its state does not allow it.
pub async fn review(
    db: &DatabaseConnection,
    actor: &Actor,
    id: &str,
    to: &'static str,
) -> ServiceResult<ContentDetail> {
    let txn = crate::db::begin_write(db).await?;
    let current = find_model(&txn, actor, id).await?;
    if !review_allowed(&current.state, to) {
        return Err(ServiceError::Conflict(format!(
            "a content in state {} cannot become {to}",
            current.state
        )));
    }
    let mut model: content::ActiveModel = current.clone().into();
    model.state = Set(to.to_owned());
    model.updated_at = Set(Utc::now());
    model.update(&txn).await?;
    audit::record(
        &txn,
        actor,
        Action::Update,
        RESOURCE,
        &current.id,
        json!({"state": to}),
    )
    .await?;
    txn.commit().await?;
    get(db, actor, id).await
}

fn check_words(checks: &mut Checks, field: &str, words: &[String]) {
    checks.check(
        words.len() <= MAX_WORDS,
        field,
        format!("at most {MAX_WORDS} words"),
    );
    for (i, w) in words.iter().enumerate() {
        checks.text(&format!("{field}[{i}]"), w, 1, MAX_WORD);
    }
}

/// Sets an account's brand voice (creating or replacing it).
pub async fn put_brand_voice(
    db: &DatabaseConnection,
    actor: &Actor,
    account_id: &str,
    body: BrandVoiceBody,
) -> ServiceResult<BrandVoiceBody> {
    let mut checks = Checks::new();
    checks.text("style_guide", &body.style_guide, 0, MAX_STYLE_GUIDE);
    checks.text("signature", &body.signature, 0, MAX_SIGNATURE);
    check_words(&mut checks, "preferred_words", &body.preferred_words);
    check_words(&mut checks, "banned_words", &body.banned_words);
    checks.finish()?;
    let txn = crate::db::begin_write(db).await?;
    // 404 for another tenant's account.
    accounts::get(&txn, actor, account_id).await?;
    let existing = brand_voice::Entity::find()
        .filter(brand_voice::Column::TenantId.eq(&actor.tenant_id))
        .filter(brand_voice::Column::AccountId.eq(account_id))
        .one(&txn)
        .await?;
    let now = Utc::now();
    match existing {
        Some(row) => {
            let mut model: brand_voice::ActiveModel = row.into();
            model.style_guide = Set(body.style_guide.clone());
            model.preferred_words = Set(json!(body.preferred_words));
            model.banned_words = Set(json!(body.banned_words));
            model.signature = Set(body.signature.clone());
            model.updated_at = Set(now);
            model.update(&txn).await?;
        }
        None => {
            brand_voice::ActiveModel {
                id: Set(new_id()),
                tenant_id: Set(actor.tenant_id.clone()),
                account_id: Set(account_id.to_owned()),
                style_guide: Set(body.style_guide.clone()),
                preferred_words: Set(json!(body.preferred_words)),
                banned_words: Set(json!(body.banned_words)),
                signature: Set(body.signature.clone()),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(&txn)
            .await?;
        }
    }
    audit::record(
        &txn,
        actor,
        Action::Update,
        "brand_voice",
        account_id,
        json!({"banned_words": body.banned_words.len()}),
    )
    .await?;
    txn.commit().await?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_transitions() {
        assert!(review_allowed(state::DRAFT, state::APPROVED));
        assert!(!review_allowed(state::NEEDS_REVIEW, state::APPROVED));
        assert!(review_allowed(state::NEEDS_REVIEW, state::REJECTED));
        assert!(!review_allowed(state::PUBLISHED, state::REJECTED));
        assert!(!review_allowed(state::DRAFT, state::PUBLISHED));
    }

    #[test]
    fn editing_an_article_rechecks_limits_and_compliance() {
        let scanner = ComplianceScanner::new(&[]).unwrap();
        let current =
            json!({"title": "秋季新豆", "author": "", "digest": "", "html": "<p>新豆到店</p>"});
        let too_long = ContentPatch {
            title: Some("长".repeat(65)),
            ..ContentPatch::default()
        };
        match revise("article", &current, too_long, &scanner) {
            Err(ServiceError::Validation(fields)) => assert_eq!(fields[0].field, "title"),
            other => panic!("expected a title error, got {other:?}"),
        }
        let banned = ContentPatch {
            html: Some("<p>全城最好的咖啡</p><script>x()</script>".into()),
            ..ContentPatch::default()
        };
        let (body, report) = revise("article", &current, banned, &scanner).unwrap();
        assert_eq!(report.verdict, Verdict::Violation);
        assert_eq!(state_after_edit(&report), state::NEEDS_REVIEW);
        assert!(!body["html"].as_str().unwrap().contains("script"));
        assert_eq!(body["title"], "秋季新豆");
    }
}
