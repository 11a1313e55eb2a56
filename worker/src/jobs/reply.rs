//! `reply`: answers a follower. A `bot` reply asks the model, grounded in the account's
//! knowledge base and the last turns of the conversation; an `agent` reply is an agent's
//! text. The answer goes out as customer-service messages (split past 2048 bytes), or, for
//! accounts without that API (unverified, or WeChat answers 48001), is kept as the passive
//! reply to the follower's next message.
//!
//! Never twice: each part is recorded before it is sent, so a retried attempt skips parts
//! already handled; a part whose sending failed is un-recorded before the retry. A crash
//! between recording and sending loses that part rather than sending it twice.
//! WeChat's refusals that waiting cannot fix (45015: no follower message in 48 h; 45047: too
//! many messages) are recorded on the conversation and end the job without retrying.

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use wxpilot_core::jobs::KindPolicy;
use wxpilot_core::service::answers::{self, FastAnswer};
use wxpilot_core::service::conversations::{
    self as convs, KIND_PENDING, KIND_SEND_FAILED, KIND_SENT, REPLY_JOB_KIND, ReplyJob, ReplySource,
};
use wxpilot_core::service::{Actor, accounts};
use wxpilot_inference::{ChatMessage, GenerateParams, GenerateRequest};
use wxpilot_kb::prompt::{
    PromptConfig, PromptMessage, Role, build_grounded_prompt, is_cjk_text, scaffolding,
};
use wxpilot_kb::reply::{drop_prompt_echo, shape_reply};
use wxpilot_wechat::client::{ApiError, CustomMessage};

use super::classify_wechat;
use crate::runtime::{JobContext, JobError, JobHandler, JobOutput};

/// The `reply` kind.
pub struct Reply;

impl JobHandler for Reply {
    fn kind(&self) -> &'static str {
        REPLY_JOB_KIND
    }

    fn default_policy(&self) -> KindPolicy {
        KindPolicy {
            max_attempts: 4,
            timeout_secs: 120,
            // Followers wait: answers run beside long jobs, not behind them.
            concurrency: 8,
            backoff_base_ms: 1_000,
            backoff_max_ms: 30_000,
        }
    }

    fn run(
        &self,
        ctx: JobContext,
        payload: Value,
    ) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        Box::pin(async move {
            let job: ReplyJob = super::parse_payload("reply", payload)?;
            reply(&ctx, &job).await
        })
    }
}

/// Model usage of an answer.
#[derive(Debug, Default, Clone, Copy)]
struct Tokens {
    prompt: i64,
    completion: i64,
}

async fn reply(ctx: &JobContext, job: &ReplyJob) -> Result<JobOutput, JobError> {
    let db = ctx.db();
    let actor = Actor::system(&ctx.tenant_id);
    let account = accounts::get(db, &actor, &job.account_id)
        .await
        .map_err(|e| JobError::Permanent(format!("account {}: {e}", job.account_id)))?;
    let done = convs::parts_recorded(db, &ctx.tenant_id, &ctx.job_id)
        .await
        .map_err(retry)?;
    let (parts, tokens) = match &job.source {
        ReplySource::Agent { text } => (shape_reply(text), Tokens::default()),
        ReplySource::Bot { .. } if done > 0 => {
            // An earlier attempt answered already; the parts it recorded are the answer.
            return Ok(JobOutput::new(
                json!({ "resumed": true, "parts_done": done }),
            ));
        }
        ReplySource::Bot {
            question,
            message_id,
        } => model_answer(ctx, job, &account.name, question, message_id).await?,
    };
    if parts.is_empty() {
        return Err(JobError::Permanent("the answer is empty".into()));
    }
    let delivery = if account.verified {
        send_parts(ctx, job, &parts, done as usize).await?
    } else {
        keep_for_next_message(ctx, job, &parts).await?
    };
    let mut output = JobOutput::new(json!({
        "parts": parts.len(),
        "delivery": delivery.as_str(),
        "answer": parts.join(""),
    }));
    if tokens.prompt + tokens.completion > 0 {
        output.usage = vec![
            ("llm.prompt_tokens".to_owned(), tokens.prompt),
            ("llm.completion_tokens".to_owned(), tokens.completion),
        ];
    }
    Ok(output)
}

/// How an answer reached the follower.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Delivery {
    /// Sent by the customer-service API.
    Sent,
    /// Kept for the passive reply to the follower's next message.
    Pending,
}

impl Delivery {
    fn as_str(&self) -> &str {
        match self {
            Self::Sent => "sent",
            Self::Pending => "pending_passive",
        }
    }
}

/// The model's answer to `question`, shaped into WeChat-sized parts.
async fn model_answer(
    ctx: &JobContext,
    job: &ReplyJob,
    account_name: &str,
    question: &str,
    message_id: &str,
) -> Result<(Vec<String>, Tokens), JobError> {
    let db = ctx.db();
    let settings = std::sync::Arc::clone(&ctx.services().customer_service);
    let embedder = ctx.services().inference.for_kind(REPLY_JOB_KIND);
    let grounding = match answers::fast_answer(db, &job.account_id, question, || {
        crate::inference::embed_question(embedder.as_ref(), &settings.embedding_model, question)
    })
    .await
    .map_err(retry)?
    {
        FastAnswer::Llm(grounding) => grounding,
        // The knowledge changed since the callback: a stored answer is the answer.
        FastAnswer::Rule(text) | FastAnswer::Faq(text) => {
            return Ok((shape_reply(&text), Tokens::default()));
        }
    };
    let history = convs::history(
        db,
        &ctx.tenant_id,
        &job.account_id,
        &job.openid,
        message_id,
        settings.history_messages as u64,
    )
    .await
    .map_err(retry)?
    .into_iter()
    .map(|(inbound, text)| {
        PromptMessage::new(if inbound { Role::User } else { Role::Assistant }, text)
    })
    .collect::<Vec<_>>();
    let config = PromptConfig {
        account_name: Some(account_name.to_owned()),
        max_history_messages: settings.history_messages,
        handoff_phrase: settings.handoff_phrases.first().cloned(),
        ..PromptConfig::default()
    };
    let instructions = scaffolding(question, &config);
    let messages = build_grounded_prompt(question, &grounding, &history, &config)
        .into_iter()
        .map(|m| match m.role {
            Role::System => ChatMessage::system(m.text),
            Role::User => ChatMessage::user(m.text),
            Role::Assistant => ChatMessage::assistant(m.text),
        })
        .collect();
    let backend = ctx.services().inference.for_kind(REPLY_JOB_KIND);
    let generation = backend
        .generate(GenerateRequest {
            messages,
            params: GenerateParams {
                max_tokens: settings.reply_max_tokens,
                temperature: 0.3,
                ..GenerateParams::default()
            },
            model: None,
        })
        .await
        .map_err(|e| {
            if e.is_transient() {
                JobError::Retryable(e.to_string())
            } else {
                JobError::Permanent(e.to_string())
            }
        })?;
    let tokens = Tokens {
        prompt: i64::from(generation.usage.prompt_tokens),
        completion: i64::from(generation.usage.completion_tokens),
    };
    let answer = drop_prompt_echo(&generation.text, &instructions);
    if answer.is_empty() {
        tracing::warn!(
            account = %job.account_id,
            "the model's answer was empty or repeated its prompt; sending the fallback reply"
        );
        let fallback = if is_cjk_text(question) {
            &settings.fallback_reply
        } else {
            &settings.fallback_reply_en
        };
        return Ok((shape_reply(fallback), tokens));
    }
    Ok((shape_reply(&answer), tokens))
}

/// Sends the parts from `done` on by the customer-service API.
async fn send_parts(
    ctx: &JobContext,
    job: &ReplyJob,
    parts: &[String],
    done: usize,
) -> Result<Delivery, JobError> {
    let db = ctx.db();
    let services = ctx.services();
    let manager = services
        .wechat
        .manager(db, &services.secrets, &ctx.tenant_id, &job.account_id)
        .await
        .map_err(|e| JobError::Permanent(format!("{e:#}")))?;
    for (index, part) in parts.iter().enumerate().skip(done) {
        let recorded = convs::record_outbound(
            db,
            &ctx.tenant_id,
            &job.account_id,
            &job.openid,
            KIND_SENT,
            part,
            &ctx.job_id,
        )
        .await
        .map_err(retry)?;
        let message = CustomMessage::text(job.openid.clone(), part.clone());
        let sent = manager
            .call(|client, token| {
                let message = message.clone();
                async move { client.send_custom_message(&token, &message).await }
            })
            .await;
        match sent {
            Ok(()) => {}
            Err(ApiError::NotAuthorised { .. }) => {
                // No customer-service API (48001): the rest waits for the next message.
                convs::delete_message(db, &ctx.tenant_id, &recorded)
                    .await
                    .map_err(retry)?;
                return keep_for_next_message(ctx, job, &parts[index..]).await;
            }
            Err(
                error @ (ApiError::ReplyWindowExpired { .. } | ApiError::TooManyMessages { .. }),
            ) => {
                // Recorded on the conversation; the job ends without another attempt, and
                // as failed, so whoever watches it (an agent, a webhook) knows.
                let reason = error.to_string();
                mark_refused(ctx, job, &recorded, part, &reason).await?;
                return Err(JobError::Permanent(format!(
                    "not delivered, recorded on the conversation: {reason}"
                )));
            }
            Err(error) => {
                // Not sent: un-record it so the retry sends it.
                convs::delete_message(db, &ctx.tenant_id, &recorded)
                    .await
                    .map_err(retry)?;
                return Err(classify_wechat(error));
            }
        }
    }
    convs::set_send_error(db, &ctx.tenant_id, &job.account_id, &job.openid, None)
        .await
        .map_err(retry)?;
    Ok(Delivery::Sent)
}

/// Records WeChat's refusal on the conversation: the part stays as `send_failed`.
async fn mark_refused(
    ctx: &JobContext,
    job: &ReplyJob,
    recorded: &str,
    part: &str,
    reason: &str,
) -> Result<(), JobError> {
    let db = ctx.db();
    convs::delete_message(db, &ctx.tenant_id, recorded)
        .await
        .map_err(retry)?;
    convs::record_outbound(
        db,
        &ctx.tenant_id,
        &job.account_id,
        &job.openid,
        KIND_SEND_FAILED,
        part,
        &ctx.job_id,
    )
    .await
    .map_err(retry)?;
    convs::set_send_error(
        db,
        &ctx.tenant_id,
        &job.account_id,
        &job.openid,
        Some(reason),
    )
    .await
    .map_err(retry)?;
    tracing::warn!(job_id = %ctx.job_id, %reason, "customer-service message refused; recorded");
    Ok(())
}

/// Keeps the answer (its first part: one passive reply carries one) for the follower's
/// next message.
async fn keep_for_next_message(
    ctx: &JobContext,
    job: &ReplyJob,
    parts: &[String],
) -> Result<Delivery, JobError> {
    let db = ctx.db();
    let Some(first) = parts.first() else {
        return Ok(Delivery::Pending);
    };
    convs::record_outbound(
        db,
        &ctx.tenant_id,
        &job.account_id,
        &job.openid,
        KIND_PENDING,
        first,
        &ctx.job_id,
    )
    .await
    .map_err(retry)?;
    convs::set_pending(
        db,
        &ctx.tenant_id,
        &job.account_id,
        &job.openid,
        Some(first),
    )
    .await
    .map_err(retry)?;
    Ok(Delivery::Pending)
}

fn retry(e: wxpilot_core::ServiceError) -> JobError {
    JobError::Retryable(e.to_string())
}
