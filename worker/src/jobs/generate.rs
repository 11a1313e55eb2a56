//! `generate`: writes article drafts, Moments copy or menu replies from a campaign brief in
//! the account's brand voice, and stores each version as a content under review.
//!
//! The model's answer is parsed robustly; a parse failure or a broken WeChat limit asks the
//! model again with the error named (at most [`MAX_REGENERATIONS`] times), and prohibited
//! Advertising-Law terms ask it to rewrite the flagged spans (at most [`MAX_REWRITES`] times)
//! before the content is stored as `needs_review`. When nothing usable comes back the job
//! fails permanently with the reason, and nothing is stored.

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wxpilot_content::compliance::{
    ComplianceReport, ComplianceScanner, RewriteDecision, Verdict, banned_word_terms,
    decide_rewrite, rewrite_instruction,
};
use wxpilot_content::html;
use wxpilot_content::limits::{self, ContentField, Draft};
use wxpilot_content::parse::{Generated, ParseOptions, parse_output};
use wxpilot_content::prompt::{
    self, BrandVoice, ContentKind, GenerationOptions, Length, OutputFormat, PromptMessage,
    build_prompt, follow_up_prompt,
};
use wxpilot_core::jobs::KindPolicy;
use wxpilot_entity::{brand_voice, campaign, content, content_version};
use wxpilot_inference::{Backend, ChatMessage, GenerateEvent, GenerateParams, GenerateRequest};

use crate::runtime::{JobContext, JobError, JobHandler, JobOutput};

/// The job kind's name.
pub const KIND: &str = "generate";
/// Most regenerations after an unusable answer (a parse error or a broken limit).
pub const MAX_REGENERATIONS: u32 = 2;
/// Most rewrites asked for after prohibited terms.
pub const MAX_REWRITES: u32 = 2;
/// Most variants one request may ask for.
pub const MAX_REQUEST_VARIANTS: u8 = 4;
/// Progress is reported after this many streamed tokens.
const PROGRESS_EVERY_TOKENS: usize = 32;

/// What a generation job is asked to do; the API builds it from the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratePayload {
    /// The campaign whose brief is used.
    pub campaign_id: String,
    /// What to write.
    pub kind: ContentKind,
    /// How many versions (1..=4).
    #[serde(default = "one")]
    pub variants: u8,
    /// Tone, e.g. "warm".
    #[serde(default)]
    pub tone: Option<String>,
    /// Rough length.
    #[serde(default)]
    pub length: Length,
    /// Keywords to include.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Call to action to end with.
    #[serde(default)]
    pub call_to_action: Option<String>,
    /// Output language (BCP-47); Chinese by default.
    #[serde(default = "default_language")]
    pub language: String,
    /// Sampling seed for reproducible drafts: the n-th answer of the job (regenerations and
    /// rewrites count) samples with `seed + n`. Random when absent.
    #[serde(default)]
    pub seed: Option<u64>,
}

fn one() -> u8 {
    1
}

fn default_language() -> String {
    "zh".to_owned()
}

impl GeneratePayload {
    /// Checks the bounds; the API calls this before queueing.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_REQUEST_VARIANTS).contains(&self.variants) {
            return Err(format!(
                "variants must be between 1 and {MAX_REQUEST_VARIANTS}"
            ));
        }
        if self.keywords.len() > 20 {
            return Err("at most 20 keywords".into());
        }
        Ok(())
    }

    /// The prompt options of the request.
    pub fn options(&self) -> GenerationOptions {
        GenerationOptions {
            variants: self.variants,
            tone: self.tone.clone(),
            length: self.length,
            keywords: self.keywords.clone(),
            call_to_action: self.call_to_action.clone(),
            language: self.language.clone(),
        }
    }
}

/// The `generate` kind.
pub struct Generate;

impl JobHandler for Generate {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn default_policy(&self) -> KindPolicy {
        KindPolicy {
            max_attempts: 3,
            timeout_secs: 15 * 60,
            concurrency: 8,
            backoff_base_ms: 2_000,
            backoff_max_ms: 60_000,
        }
    }

    fn uses_llm(&self) -> bool {
        true
    }

    fn run(
        &self,
        ctx: JobContext,
        payload: Value,
    ) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        Box::pin(async move {
            let request: GeneratePayload = super::parse_payload("generate", payload)?;
            request.validate().map_err(JobError::Permanent)?;
            run_generation(&ctx, &request).await
        })
    }
}

/// One version ready to store.
#[derive(Debug, Clone)]
struct Checked {
    body: Value,
    report: ComplianceReport,
}

/// Token counts over every model call of the job.
#[derive(Debug, Default, Clone, Copy)]
struct Tokens {
    prompt: i64,
    completion: i64,
}

async fn run_generation(
    ctx: &JobContext,
    request: &GeneratePayload,
) -> Result<JobOutput, JobError> {
    let existing = stored_for_job(ctx.db(), &ctx.job_id).await?;
    if !existing.is_empty() {
        // An earlier attempt stored its contents and then lost the result: do not write twice.
        return Ok(JobOutput::new(
            json!({"content_ids": existing, "replayed": true}),
        ));
    }
    let campaign = campaign::Entity::find_by_id(request.campaign_id.clone())
        .filter(campaign::Column::TenantId.eq(ctx.tenant_id.clone()))
        .one(ctx.db())
        .await
        .map_err(db_error)?
        .ok_or_else(|| JobError::Permanent("the campaign no longer exists".into()))?;
    let voice = load_voice(ctx.db(), &ctx.tenant_id, &campaign.account_id).await?;
    let scanner = ComplianceScanner::new(&banned_word_terms(&voice.banned_words))
        .map_err(|e| JobError::Permanent(format!("the compliance word list is invalid: {e}")))?;
    let options = request.options();
    let original = build_prompt(
        request.kind,
        &campaign.brief,
        &voice,
        &options,
        OutputFormat::Lines,
    );
    let parse_options = ParseOptions {
        truncate_overlong: true,
        // Only the small local model drops its labels; a remote model's prose is not a draft.
        plain_text_fallback: ctx.services().inference.remote().is_none(),
    };
    let backend = ctx.services().inference.for_kind(KIND);
    let max_tokens = prompt::max_tokens(request.kind, &options);

    let mut tokens = Tokens::default();
    let mut messages = original.clone();
    let mut regenerations = 0;
    let mut rewrites = 0;
    let (checked, attempts) = loop {
        let seed = request
            .seed
            .map(|s| s.wrapping_add(u64::from(regenerations + rewrites)));
        let answer = call_model(
            ctx,
            backend.as_ref(),
            &messages,
            max_tokens,
            seed,
            &mut tokens,
        )
        .await?;
        let versions = parse_output(request.kind, &answer, parse_options)
            .map_err(|e| (e.to_string(), e.feedback()))
            .and_then(|parsed| check_versions(&parsed.items, &voice, &scanner));
        let versions = match versions {
            Ok(v) => v,
            Err((reason, feedback)) => {
                if regenerations >= MAX_REGENERATIONS {
                    return Err(JobError::Permanent(format!(
                        "the model gave no usable {} after {} answers; last problem: {reason}",
                        kind_name(request.kind),
                        regenerations + 1
                    )));
                }
                regenerations += 1;
                ctx.progress(0, &format!("regenerating ({regenerations}): {reason}"))
                    .await;
                messages = follow_up_prompt(&original, &answer, &feedback);
                continue;
            }
        };
        let combined = combined_report(&versions);
        match decide_rewrite(&combined, rewrites, MAX_REWRITES) {
            RewriteDecision::Rewrite { attempt } => {
                rewrites = attempt;
                ctx.progress(
                    0,
                    &format!("asking for rewrite {attempt}: prohibited wording"),
                )
                .await;
                messages = follow_up_prompt(&original, &answer, &rewrite_instruction(&combined));
            }
            RewriteDecision::Accept | RewriteDecision::NeedsReview => {
                break (versions, regenerations + rewrites + 1);
            }
        }
    };

    let ids = store(ctx, request, &campaign, &checked).await?;
    ctx.progress(100, "stored").await;
    let states: Vec<&str> = checked.iter().map(|c| state_for(&c.report)).collect();
    let mut output = JobOutput::new(json!({
        "content_ids": ids,
        "states": states,
        "model_answers": attempts,
        "regenerations": regenerations,
        "rewrites": rewrites,
    }));
    output.usage = vec![
        ("llm.prompt_tokens".to_owned(), tokens.prompt),
        ("llm.completion_tokens".to_owned(), tokens.completion),
    ];
    Ok(output)
}

/// The review state a new content starts in.
fn state_for(report: &ComplianceReport) -> &'static str {
    if report.verdict == Verdict::Violation {
        "needs_review"
    } else {
        "draft"
    }
}

fn kind_name(kind: ContentKind) -> &'static str {
    match kind {
        ContentKind::Article => "article",
        ContentKind::Moments => "Moments copy",
        ContentKind::MenuReply => "menu reply",
    }
}

/// The stored name of a kind.
pub fn kind_str(kind: ContentKind) -> &'static str {
    match kind {
        ContentKind::Article => "article",
        ContentKind::Moments => "moments",
        ContentKind::MenuReply => "menu_reply",
    }
}

/// Every version's hits in one report, numbered by version, for the rewrite instruction.
fn combined_report(versions: &[Checked]) -> ComplianceReport {
    let hits = versions
        .iter()
        .enumerate()
        .flat_map(|(n, v)| {
            v.report.hits.iter().cloned().map(move |mut hit| {
                hit.article = n;
                hit
            })
        })
        .collect();
    ComplianceReport::from_hits(hits)
}

/// Checks every parsed version against WeChat's limits and the compliance lists. A broken
/// limit fails the whole answer with `(reason, feedback for the model)`.
fn check_versions(
    items: &[Generated],
    voice: &BrandVoice,
    scanner: &ComplianceScanner,
) -> Result<Vec<Checked>, (String, String)> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        out.push(check_version(item, voice, scanner)?);
    }
    if out.is_empty() {
        let reason = "the answer holds no version".to_owned();
        return Err((reason.clone(), reason));
    }
    Ok(out)
}

fn check_version(
    item: &Generated,
    voice: &BrandVoice,
    scanner: &ComplianceScanner,
) -> Result<Checked, (String, String)> {
    let limit_error = |e: String| {
        (
            e.clone(),
            format!("Your answer breaks a WeChat limit: {e}. Answer again within the limits."),
        )
    };
    match item {
        Generated::Article(article) => {
            let mut draft_article = article.clone().into_article_draft("", &voice.signature);
            draft_article.content_html = html::sanitize(&draft_article.content_html);
            limits::fit_article_to_limits(&mut draft_article);
            let draft = Draft {
                articles: vec![draft_article],
            };
            limits::validate_draft(&draft).map_err(|e| limit_error(e.to_string()))?;
            let report = scanner.check_draft(&draft);
            let a = &draft.articles[0];
            Ok(Checked {
                body: json!({
                    "title": a.title,
                    "author": a.author,
                    "digest": a.digest,
                    "html": a.content_html,
                }),
                report,
            })
        }
        Generated::Moments { text } => {
            limits::validate_moments(text).map_err(|e| limit_error(e.to_string()))?;
            Ok(Checked {
                body: json!({"text": text}),
                report: scanner.check_text(text, ContentField::Text),
            })
        }
        Generated::MenuReply { text } => {
            limits::validate_passive_reply(text).map_err(|e| limit_error(e.to_string()))?;
            Ok(Checked {
                body: json!({"text": text}),
                report: scanner.check_text(text, ContentField::Text),
            })
        }
    }
}

fn to_chat(messages: &[PromptMessage]) -> Vec<ChatMessage> {
    messages
        .iter()
        .map(|m| match m.role {
            prompt::Role::System => ChatMessage::system(m.content.clone()),
            prompt::Role::User => ChatMessage::user(m.content.clone()),
            prompt::Role::Assistant => ChatMessage::assistant(m.content.clone()),
        })
        .collect()
}

/// One streamed model call; reports progress every [`PROGRESS_EVERY_TOKENS`] tokens and adds
/// the call's usage to `tokens`.
async fn call_model(
    ctx: &JobContext,
    backend: &dyn Backend,
    messages: &[PromptMessage],
    max_tokens: u32,
    seed: Option<u64>,
    tokens: &mut Tokens,
) -> Result<String, JobError> {
    let request = GenerateRequest {
        messages: to_chat(messages),
        params: GenerateParams {
            max_tokens,
            seed,
            ..GenerateParams::default()
        },
        model: None,
    };
    let mut stream = backend
        .generate_stream(request)
        .await
        .map_err(inference_error)?;
    let mut text = String::new();
    let mut streamed = 0usize;
    while let Some(event) = stream.next().await {
        match event.map_err(inference_error)? {
            GenerateEvent::Token(piece) => {
                text.push_str(&piece);
                streamed += 1;
                if streamed.is_multiple_of(PROGRESS_EVERY_TOKENS) {
                    let percent =
                        u8::try_from((streamed * 90 / max_tokens.max(1) as usize).min(90))
                            .unwrap_or(90);
                    ctx.progress(percent, &format!("{streamed} tokens")).await;
                }
            }
            GenerateEvent::Done(generation) => {
                tokens.prompt += i64::from(generation.usage.prompt_tokens);
                tokens.completion += i64::from(generation.usage.completion_tokens);
                return Ok(generation.text);
            }
        }
    }
    Err(JobError::Retryable(
        "the model's stream ended without a result".into(),
    ))
}

fn inference_error(e: wxpilot_inference::InferenceError) -> JobError {
    if e.is_transient() {
        JobError::Retryable(e.to_string())
    } else {
        JobError::Permanent(e.to_string())
    }
}

fn db_error(e: sea_orm::DbErr) -> JobError {
    JobError::Retryable(format!("database: {e}"))
}

/// Reads a JSON array of strings, skipping anything else.
fn string_list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn load_voice<C: ConnectionTrait>(
    conn: &C,
    tenant_id: &str,
    account_id: &str,
) -> Result<BrandVoice, JobError> {
    let row = brand_voice::Entity::find()
        .filter(brand_voice::Column::TenantId.eq(tenant_id))
        .filter(brand_voice::Column::AccountId.eq(account_id))
        .one(conn)
        .await
        .map_err(db_error)?;
    Ok(row.map_or_else(BrandVoice::default, |v| BrandVoice {
        brand_name: String::new(),
        style_guide: v.style_guide,
        preferred_words: string_list(&v.preferred_words),
        banned_words: string_list(&v.banned_words),
        signature: v.signature,
    }))
}

async fn stored_for_job<C: ConnectionTrait>(
    conn: &C,
    job_id: &str,
) -> Result<Vec<String>, JobError> {
    let rows = content::Entity::find()
        .filter(content::Column::GenerationJobId.eq(job_id))
        .all(conn)
        .await
        .map_err(db_error)?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

async fn store(
    ctx: &JobContext,
    request: &GeneratePayload,
    campaign: &campaign::Model,
    versions: &[Checked],
) -> Result<Vec<String>, JobError> {
    let txn = ctx.db().begin().await.map_err(db_error)?;
    let now = chrono::Utc::now();
    let mut ids = Vec::with_capacity(versions.len());
    for version in versions {
        let id = wxpilot_core::ids::new_id();
        let report = serde_json::to_value(&version.report)
            .map_err(|e| JobError::Permanent(format!("the compliance report: {e}")))?;
        content::ActiveModel {
            id: Set(id.clone()),
            tenant_id: Set(ctx.tenant_id.clone()),
            account_id: Set(Some(campaign.account_id.clone())),
            campaign_id: Set(campaign.id.clone()),
            kind: Set(kind_str(request.kind).to_owned()),
            state: Set(state_for(&version.report).to_owned()),
            current_version: Set(1),
            compliance_report: Set(report),
            generation_job_id: Set(Some(ctx.job_id.clone())),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(db_error)?;
        content_version::ActiveModel {
            id: Set(wxpilot_core::ids::new_id()),
            tenant_id: Set(ctx.tenant_id.clone()),
            content_id: Set(id.clone()),
            version: Set(1),
            body: Set(version.body.clone()),
            created_by: Set(format!("job:{}", ctx.job_id)),
            created_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(db_error)?;
        ids.push(id);
    }
    txn.commit().await.map_err(db_error)?;
    Ok(ids)
}

/// How many contents a job stored (for tests and the API).
pub async fn count_for_job<C: ConnectionTrait>(
    conn: &C,
    job_id: &str,
) -> Result<u64, sea_orm::DbErr> {
    content::Entity::find()
        .filter(content::Column::GenerationJobId.eq(job_id))
        .count(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanner() -> ComplianceScanner {
        ComplianceScanner::new(&[]).unwrap()
    }

    #[test]
    fn payload_bounds_variants() {
        let mut p: GeneratePayload =
            serde_json::from_value(json!({"campaign_id": "c", "kind": "article"})).unwrap();
        assert_eq!(p.variants, 1);
        assert_eq!(p.language, "zh");
        assert!(p.validate().is_ok());
        p.variants = 5;
        assert!(p.validate().is_err());
        p.variants = 0;
        assert!(p.validate().is_err());
    }

    #[test]
    fn banned_term_makes_a_violation_and_needs_review_state() {
        let item = Generated::Moments {
            text: "这是最好的咖啡".to_owned(),
        };
        let checked = check_version(&item, &BrandVoice::default(), &scanner()).unwrap();
        assert_eq!(checked.report.verdict, Verdict::Violation);
        assert_eq!(state_for(&checked.report), "needs_review");
        let clean = Generated::Moments {
            text: "新豆到店，欢迎试饮".to_owned(),
        };
        let checked = check_version(&clean, &BrandVoice::default(), &scanner()).unwrap();
        assert_eq!(state_for(&checked.report), "draft");
    }

    #[test]
    fn overlong_moments_is_refused_with_feedback() {
        let item = Generated::Moments {
            text: "好".repeat(limits::MOMENTS_MAX_CHARS + 1),
        };
        let (reason, feedback) =
            check_version(&item, &BrandVoice::default(), &scanner()).unwrap_err();
        assert!(reason.contains("2000"), "{reason}");
        assert!(feedback.contains("limit"));
    }
}
