//! `POST /v1/campaigns/{id}/generations`: queue a `generate` job that writes drafts from the
//! campaign's brief; the drafts appear under `/v1/contents` when it succeeds.

use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use wxpilot_core::service::jobs::Job;
use wxpilot_core::service::{Access, Area, campaigns, usage};
use wxpilot_worker::jobs::generate::{self, GeneratePayload};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::routes::jobs::accept_job;
use crate::state::AppState;

/// What to generate from a campaign's brief.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerationRequest {
    /// `article`, `moments` or `menu_reply`.
    #[schema(example = "article")]
    pub kind: String,
    /// Versions to write for A/B tests, 1..=4; each becomes a content. Default 1.
    #[serde(default)]
    pub variants: Option<u8>,
    /// Tone, e.g. `warm`, `professional`.
    #[serde(default)]
    pub tone: Option<String>,
    /// `short`, `medium` (default) or `long`.
    #[serde(default)]
    pub length: Option<String>,
    /// Keywords the text should contain.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Call to action to end with.
    #[serde(default)]
    pub call_to_action: Option<String>,
    /// Output language as a BCP-47 tag; `zh` by default.
    #[serde(default)]
    pub language: Option<String>,
    /// Sampling seed: the same request with the same seed writes the same draft with the
    /// same model. Random when absent.
    #[serde(default)]
    pub seed: Option<u64>,
}

impl GenerationRequest {
    /// The job payload for `campaign_id`, or a field error.
    fn into_payload(self, campaign_id: &str) -> ApiResult<GeneratePayload> {
        let mut body = json!({
            "campaign_id": campaign_id,
            "kind": self.kind,
            "variants": self.variants.unwrap_or(1),
            "tone": self.tone,
            "keywords": self.keywords,
            "call_to_action": self.call_to_action,
            "seed": self.seed,
        });
        if let Some(length) = self.length {
            body["length"] = json!(length);
        }
        if let Some(language) = self.language {
            body["language"] = json!(language);
        }
        let payload: GeneratePayload = serde_json::from_value(body).map_err(|e| {
            ApiError::field(
                "body",
                format!(
                    "{e}; kind is article, moments or menu_reply; length is short, medium or long"
                ),
            )
        })?;
        payload
            .validate()
            .map_err(|m| ApiError::field("variants", m))?;
        Ok(payload)
    }
}

/// Generate drafts from a campaign's brief in the account's brand voice: 202 with the job.
/// Progress (tokens streamed) is on the job's event stream; the result names the contents.
#[utoipa::path(
    tag = "contents",
    params(
        ("id" = String, Path, description = "Campaign id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe creation: the same key and body give the same job")
    ),
    request_body = GenerationRequest,
    responses(
        (status = 202, description = "Queued; `Location` names the job", body = Job),
        (status = 402, description = "The tenant's monthly token budget is used up", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign in this tenant", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid options", body = crate::error::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
#[post("/campaigns/{id}/generations")]
pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: Auth,
    id: web::Path<String>,
    body: Json<GenerationRequest>,
) -> ApiResult<HttpResponse> {
    let actor = auth.require(Area::Campaigns, Access::Write)?;
    let campaign = campaigns::get(&state.db, actor, &id).await?;
    let payload = body.0.into_payload(&campaign.id)?;
    usage::ensure_token_budget(&state.db, actor).await?;
    let payload = serde_json::to_value(payload).map_err(|e| {
        ApiError::Internal(anyhow::Error::new(e).context("encoding the job payload"))
    })?;
    accept_job(&state, &req, actor, generate::KIND, payload).await
}
