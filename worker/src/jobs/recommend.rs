//! `recommend`: trains an account's recommender (confidence-weighted ALS blended with item
//! text embeddings for cold items) on its interactions and stores every follower's top-k
//! with reasons, the popularity list for new followers and each item's similar items.
//!
//! `segment`: selects followers by affinity to items or a topic with the same model, finds
//! or creates the WeChat tag and batch-tags them (50 a call, the API's limit).
//!
//! Both are repeat-safe: a retried attempt recomputes from the same data and overwrites its
//! own rows; tagging a follower who has the tag already changes nothing in WeChat.

use std::collections::HashMap;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use wxpilot_core::jobs::KindPolicy;
use wxpilot_core::service::recommendations::{
    self as recs, FollowerList, POPULAR_KEY, RecommendJob, SegmentJob, TrainingData, TrainingItem,
};
use wxpilot_inference::{EmbedKind, EmbedRequest};
use wxpilot_recommend::segments::{self, Cutoff, Member};
use wxpilot_recommend::{
    CsrMatrix, Engine, EngineConfig, IdMap, ItemEmbeddings, Reason, Recommendation, SimilarItem,
    engine::SimilarityBasis,
};
use wxpilot_wechat::client::{ApiError, MAX_BATCH_TAGGING};

use super::classify_wechat;
use crate::runtime::{JobContext, JobError, JobHandler, JobOutput};

/// Texts per embedding request.
const EMBED_BATCH: usize = 32;
/// Similar items stored per item.
const SIMILAR_K: usize = 10;
/// Followers kept when a segment names no cutoff.
const DEFAULT_SEGMENT_TOP: usize = 1_000;
/// WeChat: "tag name already used".
const TAG_NAME_TAKEN: i64 = 45157;
/// WeChat: "invalid openid" (not a follower, or unfollowed).
const INVALID_OPENID: i64 = 40003;

fn policy() -> KindPolicy {
    KindPolicy {
        max_attempts: 3,
        timeout_secs: 15 * 60,
        // Training uses every core; one at a time per worker.
        concurrency: 1,
        backoff_base_ms: 5_000,
        backoff_max_ms: 5 * 60_000,
    }
}

/// The `recommend` kind.
pub struct Recommend;

impl JobHandler for Recommend {
    fn kind(&self) -> &'static str {
        recs::RECOMMEND_JOB_KIND
    }

    fn default_policy(&self) -> KindPolicy {
        policy()
    }

    fn run(
        &self,
        ctx: JobContext,
        payload: Value,
    ) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        Box::pin(async move {
            let job: RecommendJob = super::parse_payload("recommend", payload)?;
            recommend(&ctx, &job).await
        })
    }
}

/// The `segment` kind.
pub struct Segment;

impl JobHandler for Segment {
    fn kind(&self) -> &'static str {
        recs::SEGMENT_JOB_KIND
    }

    fn default_policy(&self) -> KindPolicy {
        policy()
    }

    fn run(
        &self,
        ctx: JobContext,
        payload: Value,
    ) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        Box::pin(async move {
            let job: SegmentJob = super::parse_payload("segment", payload)?;
            segment(&ctx, &job).await
        })
    }
}

/// An account's trained model and the ids behind its indices.
struct Trained {
    engine: Engine,
    followers: IdMap<String>,
    items: Vec<TrainingItem>,
    text: TextStatus,
}

/// How the item texts took part.
#[derive(Debug, Clone, Default)]
struct TextStatus {
    /// The embedding model used, when any.
    model: Option<String>,
    /// Embeddings computed by this attempt.
    computed: usize,
    /// Items with an embedding of that model.
    embedded: usize,
    /// Why texts were left out, when they were.
    note: Option<String>,
}

async fn recommend(ctx: &JobContext, job: &RecommendJob) -> Result<JobOutput, JobError> {
    let trained = train_account(ctx, &job.account_id).await?;
    ctx.progress(70, "scoring every follower").await;
    let k = job.k as usize;
    let (lists, similar, followers) = tokio::task::spawn_blocking(move || {
        let all = trained.engine.recommend_all(k);
        let mut lists: Vec<FollowerList> = all
            .iter()
            .enumerate()
            .filter_map(|(f, recs)| {
                let openid = trained.followers.id(f as u32)?.clone();
                Some(FollowerList {
                    openid,
                    items: recommendations_json(recs, &trained.items),
                })
            })
            .collect();
        lists.push(FollowerList {
            openid: POPULAR_KEY.to_owned(),
            items: recommendations_json(&trained.engine.popular(k), &trained.items),
        });
        let similar: Vec<(String, Value)> = trained
            .engine
            .similar_all(SIMILAR_K)
            .iter()
            .zip(&trained.items)
            .map(|(list, item)| (item.id.clone(), similar_json(list, &trained.items)))
            .collect();
        (lists, similar, (trained.followers.len(), trained.text))
    })
    .await
    .map_err(|e| JobError::Retryable(format!("scoring stopped: {e}")))?;
    let (n_followers, text) = followers;
    ctx.progress(85, "storing recommendations").await;
    recs::save_recommendations(
        ctx.db(),
        &ctx.tenant_id,
        &job.account_id,
        &ctx.job_id,
        lists,
    )
    .await
    .map_err(|e| JobError::Retryable(format!("storing recommendations: {e}")))?;
    let n_items = similar.len();
    recs::save_similar(ctx.db(), &ctx.tenant_id, &job.account_id, similar)
        .await
        .map_err(|e| JobError::Retryable(format!("storing similar items: {e}")))?;
    Ok(JobOutput::new(json!({
        "followers": n_followers,
        "items": n_items,
        "k": job.k,
        "text_embeddings": text_json(&text),
    })))
}

async fn segment(ctx: &JobContext, job: &SegmentJob) -> Result<JobOutput, JobError> {
    let trained = train_account(ctx, &job.account_id).await?;
    let request = &job.request;
    let cutoff = match (request.top, request.min_affinity) {
        (_, Some(min)) => Cutoff::MinAffinity(min),
        (Some(top), None) => Cutoff::Top(top as usize),
        (None, None) => Cutoff::Top(DEFAULT_SEGMENT_TOP),
    };
    let members = if request.items.is_empty() {
        let topic = request.topic.clone().unwrap_or_default();
        let vector = embed_topic(ctx, &topic, &trained.text).await?;
        segments::by_topic(&trained.engine, &vector, cutoff)
            .map_err(|e| JobError::Permanent(format!("topic segment: {e}")))?
    } else {
        let index: HashMap<&str, u32> = trained
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| (item.external_id.as_str(), i as u32))
            .collect();
        let mut items = Vec::with_capacity(request.items.len());
        for id in &request.items {
            let Some(&i) = index.get(id.as_str()) else {
                return Err(JobError::Permanent(format!(
                    "unknown item {id:?}: upload it to /items first"
                )));
            };
            items.push(i);
        }
        segments::by_items(&trained.engine, &items, cutoff)
    };
    let openids: Vec<(String, f32)> = members
        .iter()
        .filter_map(|m: &Member| Some((trained.followers.id(m.follower)?.clone(), m.affinity)))
        .collect();
    ctx.progress(
        75,
        &format!("tagging {} followers in WeChat", openids.len()),
    )
    .await;
    let (tag_id, tagged) = tag_in_wechat(ctx, job, &openids).await?;
    let members_json: Vec<Value> = openids
        .iter()
        .zip(&tagged)
        .map(|((openid, affinity), ok)| {
            json!({ "openid": openid, "affinity": round(*affinity), "tagged": ok })
        })
        .collect();
    let n_tagged = tagged.iter().filter(|t| **t).count();
    recs::save_segment(
        ctx.db(),
        &ctx.tenant_id,
        &ctx.job_id,
        job,
        Some(tag_id),
        Value::from(members_json),
        openids.len(),
    )
    .await
    .map_err(|e| JobError::Retryable(format!("storing the segment: {e}")))?;
    Ok(JobOutput::new(json!({
        "segment_id": ctx.job_id,
        "members": openids.len(),
        "tagged": n_tagged,
        "not_followers": openids.len() - n_tagged,
        "wechat_tag_id": tag_id,
        "text_embeddings": text_json(&trained.text),
    })))
}

/// Reads the account's data, brings item embeddings up to date, and trains.
async fn train_account(ctx: &JobContext, account_id: &str) -> Result<Trained, JobError> {
    ctx.progress(5, "reading items and interactions").await;
    let mut data = recs::training_data(ctx.db(), &ctx.tenant_id, account_id)
        .await
        .map_err(|e| JobError::Retryable(format!("reading interactions: {e}")))?;
    if data.interactions.is_empty() {
        return Err(JobError::Permanent(
            "this account has no interactions yet: POST /v1/accounts/{id}/interactions first"
                .into(),
        ));
    }
    ctx.progress(15, "computing item text embeddings").await;
    let text = ensure_embeddings(ctx, account_id, &mut data.items).await?;
    ctx.progress(
        35,
        &format!(
            "training on {} interactions of {} items",
            data.interactions.len(),
            data.items.len()
        ),
    )
    .await;
    let model = text.model.clone();
    tokio::task::spawn_blocking(move || train(data, model.as_deref(), text))
        .await
        .map_err(|e| JobError::Retryable(format!("training stopped: {e}")))?
}

/// Trains the engine on `data`, with the embeddings of `model` as item texts.
fn train(data: TrainingData, model: Option<&str>, text: TextStatus) -> Result<Trained, JobError> {
    let index: HashMap<&str, u32> = data
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| (item.id.as_str(), i as u32))
        .collect();
    let mut followers = IdMap::new();
    let mut triplets = Vec::with_capacity(data.interactions.len());
    for (openid, item, strength) in &data.interactions {
        // Interactions of deleted items are gone by cascade; a missing one is skipped.
        let Some(&i) = index.get(item.as_str()) else {
            continue;
        };
        let f = followers.intern(openid.clone());
        triplets.push((f, i, *strength as f32));
    }
    let matrix = CsrMatrix::from_triplets(followers.len(), data.items.len(), &triplets)
        .map_err(|e| JobError::Permanent(format!("interaction matrix: {e}")))?;
    let embeddings = model.and_then(|model| item_embeddings(&data.items, model));
    let engine = Engine::train(matrix, embeddings, EngineConfig::default())
        .map_err(|e| JobError::Permanent(format!("training: {e}")))?;
    Ok(Trained {
        engine,
        followers,
        items: data.items,
        text,
    })
}

/// The items' embeddings of `model` (`None` when no item has one).
fn item_embeddings(items: &[TrainingItem], model: &str) -> Option<ItemEmbeddings> {
    let dim = items
        .iter()
        .find_map(|i| i.embedding.as_ref().filter(|(_, m)| m == model))?
        .0
        .len();
    let mut embeddings = ItemEmbeddings::new(items.len(), dim);
    for (i, item) in items.iter().enumerate() {
        if let Some((vector, m)) = &item.embedding
            && m == model
        {
            // A vector of another size (a model renamed) is left out rather than failing.
            let _ = embeddings.set(i, vector);
        }
    }
    Some(embeddings)
}

/// Embeds the items that have no embedding of the model that answers, stores them, and
/// says how it went. Without a working embedding model the texts are left out: cold items
/// then get no text similarity, which the job's result says.
async fn ensure_embeddings(
    ctx: &JobContext,
    account_id: &str,
    items: &mut [TrainingItem],
) -> Result<TextStatus, JobError> {
    let backend = ctx.services().inference.for_kind(recs::RECOMMEND_JOB_KIND);
    let mut status = TextStatus {
        model: most_common_model(items),
        ..TextStatus::default()
    };
    loop {
        let pending: Vec<usize> = items
            .iter()
            .enumerate()
            .filter(|(_, item)| match (&item.embedding, &status.model) {
                (Some((_, m)), Some(model)) => m != model,
                _ => item.embedding.is_none(),
            })
            .map(|(i, _)| i)
            .take(EMBED_BATCH)
            .collect();
        if pending.is_empty() {
            break;
        }
        let request = EmbedRequest {
            texts: pending.iter().map(|&i| items[i].text.clone()).collect(),
            kind: EmbedKind::Passage,
            model: None,
        };
        let answer = match backend.embed(request).await {
            Ok(answer) if answer.vectors.len() == pending.len() => answer,
            Ok(answer) => {
                status.note = Some(format!(
                    "the embedding model answered {} vectors for {} texts",
                    answer.vectors.len(),
                    pending.len()
                ));
                break;
            }
            Err(error) => {
                tracing::warn!(%error, "item embeddings unavailable; training without texts");
                status.note = Some(format!("item texts left out: {error}"));
                break;
            }
        };
        if status.model.as_deref() != Some(answer.model.as_str()) {
            // The answering model differs from the stored majority: recompute the others too.
            status.model = Some(answer.model.clone());
        }
        let mut stored = Vec::with_capacity(pending.len());
        for (&i, vector) in pending.iter().zip(answer.vectors) {
            items[i].embedding = Some((vector.clone(), answer.model.clone()));
            stored.push((items[i].id.clone(), vector));
        }
        recs::save_embeddings(ctx.db(), &ctx.tenant_id, account_id, &answer.model, &stored)
            .await
            .map_err(|e| JobError::Retryable(format!("storing embeddings: {e}")))?;
        status.computed += stored.len();
    }
    status.embedded = match &status.model {
        Some(model) => items
            .iter()
            .filter(|i| i.embedding.as_ref().is_some_and(|(_, m)| m == model))
            .count(),
        None => 0,
    };
    if status.embedded == 0 {
        status.model = None;
    }
    Ok(status)
}

fn most_common_model(items: &[TrainingItem]) -> Option<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for item in items {
        if let Some((_, model)) = &item.embedding {
            *counts.entry(model.as_str()).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|(m, _)| m.to_owned())
}

/// The topic's embedding from the model the items were embedded with.
async fn embed_topic(
    ctx: &JobContext,
    topic: &str,
    text: &TextStatus,
) -> Result<Vec<f32>, JobError> {
    let Some(model) = &text.model else {
        return Err(JobError::Permanent(format!(
            "a topic segment compares texts, but no item has a text embedding ({})",
            text.note
                .as_deref()
                .unwrap_or("no embedding model answered")
        )));
    };
    let backend = ctx.services().inference.for_kind(recs::RECOMMEND_JOB_KIND);
    let answer = backend
        .embed(EmbedRequest {
            texts: vec![topic.to_owned()],
            kind: EmbedKind::Query,
            model: Some(model.clone()),
        })
        .await
        .map_err(|e| JobError::Retryable(format!("embedding the topic: {e}")))?;
    answer
        .vectors
        .into_iter()
        .next()
        .ok_or_else(|| JobError::Retryable("the embedding model answered no vector".into()))
}

/// Finds or creates the segment's tag and tags `members`; the tag id and, per member,
/// whether WeChat took them (openids that are not followers are refused one by one).
async fn tag_in_wechat(
    ctx: &JobContext,
    job: &SegmentJob,
    members: &[(String, f32)],
) -> Result<(i64, Vec<bool>), JobError> {
    let services = ctx.services();
    let manager = services
        .wechat
        .manager(ctx.db(), &services.secrets, &ctx.tenant_id, &job.account_id)
        .await
        .map_err(|e| JobError::Permanent(format!("{e:#}")))?;
    let name = job.request.tag_name().to_owned();
    let tag_id = match find_tag(&manager, &name).await? {
        Some(id) => id,
        None => {
            let created = {
                let name = name.clone();
                manager
                    .call(move |c, t| {
                        let name = name.clone();
                        async move { c.create_tag(&t, &name).await }
                    })
                    .await
            };
            match created {
                Ok(tag) => tag.id,
                // Created meanwhile (another attempt or a person in the console).
                Err(ApiError::Other { code, .. }) if code == TAG_NAME_TAKEN => {
                    find_tag(&manager, &name).await?.ok_or_else(|| {
                        JobError::Permanent(format!("WeChat refused the tag name {name:?}"))
                    })?
                }
                Err(e) => return Err(classify_wechat(e)),
            }
        }
    };
    let openids: Vec<String> = members.iter().map(|(o, _)| o.clone()).collect();
    let mut tagged = vec![false; openids.len()];
    for (n, chunk) in openids.chunks(MAX_BATCH_TAGGING).enumerate() {
        let offset = n * MAX_BATCH_TAGGING;
        match batch_tag(&manager, tag_id, chunk).await {
            Ok(()) => tagged[offset..offset + chunk.len()].fill(true),
            Err(ApiError::Other { code, .. }) if code == INVALID_OPENID => {
                // One openid that is not a follower sinks the batch: tag one by one.
                for (j, openid) in chunk.iter().enumerate() {
                    match batch_tag(&manager, tag_id, std::slice::from_ref(openid)).await {
                        Ok(()) => tagged[offset + j] = true,
                        Err(ApiError::Other { code, .. }) if code == INVALID_OPENID => {}
                        Err(e) => return Err(classify_wechat(e)),
                    }
                }
            }
            Err(e) => return Err(classify_wechat(e)),
        }
    }
    Ok((tag_id, tagged))
}

async fn find_tag(
    manager: &wxpilot_wechat::TokenManager,
    name: &str,
) -> Result<Option<i64>, JobError> {
    let tags = manager
        .call(|c, t| async move { c.tags(&t).await })
        .await
        .map_err(classify_wechat)?;
    Ok(tags.into_iter().find(|t| t.name == name).map(|t| t.id))
}

async fn batch_tag(
    manager: &wxpilot_wechat::TokenManager,
    tag_id: i64,
    openids: &[String],
) -> Result<(), ApiError> {
    manager
        .call(|c, t| {
            let openids = openids.to_vec();
            async move { c.batch_tag(&t, tag_id, &openids).await }
        })
        .await
}

fn round(x: f32) -> f64 {
    (f64::from(x) * 10_000.0).round() / 10_000.0
}

fn title(items: &[TrainingItem], i: u32) -> (&str, &str) {
    items
        .get(i as usize)
        .map_or(("", ""), |it| (it.external_id.as_str(), it.title.as_str()))
}

/// A follower's list as stored: item, title, score, a structured reason and a sentence.
/// Items without positive evidence (a score of zero or less) are left out: a shorter list
/// beats a recommendation nothing supports.
fn recommendations_json(list: &[Recommendation], items: &[TrainingItem]) -> Value {
    Value::from(
        list.iter()
            .filter(|r| r.score > 0.0)
            .map(|r| {
                let (id, name) = title(items, r.item);
                let (reason, explanation) = reason_json(&r.reason, items);
                json!({
                    "item": id,
                    "title": name,
                    "score": round(r.score),
                    "reason": reason,
                    "explanation": explanation,
                })
            })
            .collect::<Vec<_>>(),
    )
}

fn reason_json(reason: &Reason, items: &[TrainingItem]) -> (Value, String) {
    match reason {
        Reason::History(parts) => {
            let named: Vec<Value> = parts
                .iter()
                .map(|(i, share)| {
                    let (id, name) = title(items, *i);
                    json!({ "item": id, "title": name, "share": round(*share) })
                })
                .collect();
            let titles: Vec<String> = parts
                .iter()
                .map(|(i, _)| format!("《{}》", title(items, *i).1))
                .collect();
            (
                json!({ "kind": "history", "items": named }),
                format!(
                    "Recommended because this follower engaged with {}",
                    titles.join(", ")
                ),
            )
        }
        Reason::SimilarTo { item, similarity } => {
            let (id, name) = title(items, *item);
            (
                json!({ "kind": "similar_to", "item": id, "title": name, "similarity": round(*similarity) }),
                format!("Similar to 《{name}》, which this follower engaged with"),
            )
        }
        Reason::Popular => (
            json!({ "kind": "popular" }),
            "Popular with this account's followers".to_owned(),
        ),
    }
}

fn similar_json(list: &[SimilarItem], items: &[TrainingItem]) -> Value {
    Value::from(
        list.iter()
            .map(|s| {
                let (id, name) = title(items, s.item);
                json!({
                    "item": id,
                    "title": name,
                    "score": round(s.score),
                    "basis": match s.basis {
                        SimilarityBasis::Interactions => "interactions",
                        SimilarityBasis::Text => "text",
                    },
                })
            })
            .collect::<Vec<_>>(),
    )
}

fn text_json(text: &TextStatus) -> Value {
    json!({
        "model": text.model,
        "embedded_items": text.embedded,
        "computed_now": text.computed,
        "note": text.note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, embedding: Option<(&[f32], &str)>) -> TrainingItem {
        TrainingItem {
            id: format!("row-{id}"),
            external_id: id.into(),
            title: format!("Title {id}"),
            text: String::new(),
            embedding: embedding.map(|(v, m)| (v.to_vec(), m.to_owned())),
        }
    }

    #[test]
    fn the_majority_embedding_model_is_kept() {
        let items = [
            item("a", Some((&[1.0, 0.0], "m1"))),
            item("b", Some((&[0.0, 1.0], "m1"))),
            item("c", Some((&[1.0, 0.0, 0.0], "m2"))),
            item("d", None),
        ];
        assert_eq!(most_common_model(&items).as_deref(), Some("m1"));
        let e = item_embeddings(&items, "m1").unwrap_or_else(|| panic!("embeddings"));
        assert!(e.get(0).is_some() && e.get(1).is_some());
        assert!(e.get(2).is_none() && e.get(3).is_none());
    }

    #[test]
    fn reasons_name_history_items_by_title() {
        let items = [item("a", None), item("b", None)];
        let (reason, text) = reason_json(&Reason::History(vec![(1, 0.75), (0, 0.25)]), &items);
        assert_eq!(reason["kind"], "history");
        assert_eq!(reason["items"][0]["item"], "b");
        assert!(text.contains("《Title b》, 《Title a》"), "{text}");
        let (reason, text) = reason_json(
            &Reason::SimilarTo {
                item: 0,
                similarity: 0.9,
            },
            &items,
        );
        assert_eq!(reason["item"], "a");
        assert!(text.contains("Title a"));
    }
}
