//! `embed_knowledge`: embeds an account's knowledge entries with the configured embedding
//! model for hybrid retrieval: entries without a vector of that model, or every entry when
//! forced (after a change of model). An entry edited while the job runs keeps no vector of
//! its old text; the next run embeds it.

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use wxpilot_core::jobs::KindPolicy;
use wxpilot_core::service::conversations::REPLY_JOB_KIND;
use wxpilot_core::service::knowledge::{self, EMBED_JOB_KIND, EmbedJob};
use wxpilot_inference::{EmbedKind, EmbedRequest};

use crate::runtime::{JobContext, JobError, JobHandler, JobOutput};

/// Texts per embedding request.
const BATCH: usize = 32;

/// The `embed_knowledge` kind.
pub struct EmbedKnowledge;

impl JobHandler for EmbedKnowledge {
    fn kind(&self) -> &'static str {
        EMBED_JOB_KIND
    }

    fn default_policy(&self) -> KindPolicy {
        KindPolicy {
            max_attempts: 5,
            timeout_secs: 30 * 60,
            concurrency: 1,
            backoff_base_ms: 2_000,
            backoff_max_ms: 120_000,
        }
    }

    fn run(
        &self,
        ctx: JobContext,
        payload: Value,
    ) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        Box::pin(async move {
            let job: EmbedJob = super::parse_payload("embed_knowledge", payload)?;
            embed(&ctx, &job).await
        })
    }
}

async fn embed(ctx: &JobContext, job: &EmbedJob) -> Result<JobOutput, JobError> {
    let model = ctx.services().customer_service.embedding_model.clone();
    if model.is_empty() {
        return Ok(JobOutput::new(json!({
            "embedded": 0,
            "note": "customer_service.embedding_model is empty: retrieval is BM25 alone",
        })));
    }
    let entries =
        knowledge::entries_to_embed(ctx.db(), &ctx.tenant_id, &job.account_id, &model, job.force)
            .await
            .map_err(|e| JobError::Retryable(format!("reading the knowledge base: {e}")))?;
    let total = entries.len();
    // Entries and questions must be embedded by the same backend: the questions are
    // embedded on the `reply` route (callback and reply job), so the entries are too.
    let backend = ctx.services().inference.for_kind(REPLY_JOB_KIND);
    let (mut embedded, mut changed) = (0usize, 0usize);
    // FAQ questions are embedded as queries (matched question to question), chunks as
    // passages: one request per kind and batch.
    let (questions, passages): (Vec<_>, Vec<_>) =
        entries.iter().partition(|e| knowledge::embedding_text(e).1);
    for (group, kind) in [
        (questions, EmbedKind::Query),
        (passages, EmbedKind::Passage),
    ] {
        for batch in group.chunks(BATCH) {
            let texts: Vec<String> = batch
                .iter()
                .map(|e| knowledge::embedding_text(e).0)
                .collect();
            let answer = backend
                .embed(EmbedRequest {
                    texts,
                    kind,
                    model: Some(model.clone()),
                })
                .await
                .map_err(|e| {
                    let message = format!("embedding with {model}: {e}");
                    if e.is_transient() {
                        JobError::Retryable(message)
                    } else {
                        JobError::Permanent(message)
                    }
                })?;
            if answer.vectors.len() != batch.len() {
                return Err(JobError::Permanent(format!(
                    "{model} answered {} vectors for {} texts",
                    answer.vectors.len(),
                    batch.len()
                )));
            }
            let pairs: Vec<(&_, &[f32])> = batch
                .iter()
                .copied()
                .zip(answer.vectors.iter().map(Vec::as_slice))
                .collect();
            let saved = knowledge::save_embeddings(
                ctx.db(),
                &ctx.tenant_id,
                &job.account_id,
                &model,
                &pairs,
            )
            .await
            .map_err(|e| JobError::Retryable(format!("storing vectors: {e}")))?;
            embedded += saved;
            changed += batch.len() - saved;
            let done = embedded + changed;
            let percent = u8::try_from(done * 100 / total.max(1)).unwrap_or(100);
            ctx.progress(percent, &format!("{done} of {total} entries"))
                .await;
        }
    }
    Ok(JobOutput::new(json!({
        "model": model,
        "embedded": embedded,
        "changed_meanwhile": changed,
    })))
}
