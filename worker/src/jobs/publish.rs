//! `publish`: publishes an approved article to WeChat. Steps, each recorded on the
//! content's publication before the next starts, so a retry resumes and repeats none:
//!
//! 1. the cover (the request's `cover_url`, else the body's first image) becomes a
//!    permanent thumb (`material/add_material?type=thumb`);
//! 2. every body image not on WeChat's own hosts is fetched and uploaded
//!    (`media/uploadimg`), and the body's URLs rewritten;
//! 3. `draft/add` — its media id is stored at once, so a crash before the submit never
//!    leads to a second draft;
//! 4. `freepublish/submit` — marked `submitting` first: an attempt that finds that mark
//!    without an answer stops rather than risk publishing twice;
//! 5. the outcome, from `freepublish/get` here or the `PUBLISHJOBFINISH` event in the
//!    callback, whichever comes first: the article URL stored, the content `published`.
//!
//! Images are fetched only from public addresses unless `publishing.allow_private_image_hosts`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use wxpilot_core::jobs::KindPolicy;
use wxpilot_core::service::publications::{self, PUBLISH_JOB_KIND, PublishJob, status};
use wxpilot_core::service::{Actor, contents};
use wxpilot_core::settings::PublishingSettings;
use wxpilot_entity::publication;
use wxpilot_wechat::TokenManager;
use wxpilot_wechat::client::{ApiError, DraftArticle};

use super::classify_wechat;
use crate::runtime::{JobContext, JobError, JobHandler, JobOutput};

/// WeChat's limit for permanent thumbs.
const MAX_THUMB_BYTES: usize = 64 * 1024;
/// WeChat's limit for article body images.
const MAX_IMAGE_BYTES: usize = 1024 * 1024;

/// The `publish` kind.
pub struct Publish;

impl JobHandler for Publish {
    fn kind(&self) -> &'static str {
        PUBLISH_JOB_KIND
    }

    fn default_policy(&self) -> KindPolicy {
        KindPolicy {
            max_attempts: 6,
            timeout_secs: 10 * 60,
            concurrency: 2,
            backoff_base_ms: 5_000,
            backoff_max_ms: 10 * 60_000,
        }
    }

    fn run(
        &self,
        ctx: JobContext,
        payload: Value,
    ) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        Box::pin(async move {
            let job: PublishJob = super::parse_payload("publish", payload)?;
            publish(&ctx, &job).await
        })
    }
}

/// The article as stored in the content's current version.
struct Article {
    title: String,
    author: Option<String>,
    digest: Option<String>,
    html: String,
}

fn article(body: &Value) -> Result<Article, JobError> {
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let title = text("title").filter(|t| !t.trim().is_empty());
    let html = text("html").filter(|t| !t.trim().is_empty());
    match (title, html) {
        (Some(title), Some(html)) => Ok(Article {
            title,
            author: text("author").filter(|a| !a.is_empty()),
            digest: text("digest").filter(|d| !d.is_empty()),
            html,
        }),
        _ => Err(JobError::Permanent(
            "the article has no title or no body to publish".into(),
        )),
    }
}

async fn publish(ctx: &JobContext, job: &PublishJob) -> Result<JobOutput, JobError> {
    let db = ctx.db();
    let actor = Actor::system(&ctx.tenant_id);
    let detail = contents::get(db, &actor, &job.content_id)
        .await
        .map_err(|e| JobError::Permanent(format!("content {}: {e}", job.content_id)))?;
    let article = article(&detail.content.body)?;
    let mut row = publications::start(
        db,
        &ctx.tenant_id,
        &ctx.job_id,
        job,
        detail.content.current_version,
    )
    .await
    .map_err(|e| JobError::Permanent(e.to_string()))?;
    if row.job_id != ctx.job_id {
        return Err(JobError::Permanent(format!(
            "job {} is publishing this content",
            row.job_id
        )));
    }
    match row.status.as_str() {
        status::PUBLISHED => return Ok(output(&row.status, &row.article_url, &row.publish_id)),
        status::FAILED => {
            return Err(JobError::Permanent(
                row.error.unwrap_or_else(|| "publishing failed".into()),
            ));
        }
        _ => {}
    }
    let services = ctx.services();
    let manager = services
        .wechat
        .manager(db, &services.secrets, &ctx.tenant_id, &job.account_id)
        .await
        .map_err(|e| JobError::Permanent(format!("{e:#}")))?;
    let settings = &services.publishing;
    if row.draft_media_id.is_none() {
        ctx.progress(10, "uploading the cover and body images")
            .await;
        row = upload_images(ctx, &manager, settings, job, &article, row).await?;
        let images: HashMap<String, String> =
            serde_json::from_value(row.images.clone()).unwrap_or_default();
        let draft = DraftArticle {
            title: article.title.clone(),
            author: article.author.clone(),
            digest: article.digest.clone(),
            content: wxpilot_content::html::rewrite_image_urls(&article.html, &images),
            thumb_media_id: row.thumb_media_id.clone().unwrap_or_default(),
            ..DraftArticle::default()
        };
        ctx.progress(50, "adding the draft").await;
        let media_id = manager
            .call(|c, t| {
                let articles = vec![draft.clone()];
                async move { c.add_draft(&t, &articles).await }
            })
            .await
            .map_err(classify_wechat)?;
        row.draft_media_id = Some(media_id);
        row.status = status::DRAFTED.to_owned();
        row = save(ctx, row).await?;
    }
    if row.publish_id.is_none() {
        row = submit(ctx, &manager, row).await?;
    }
    ctx.progress(80, "waiting for WeChat to publish").await;
    settle(ctx, &manager, settings, job, row).await
}

/// Uploads the cover and the body images not uploaded yet, saving after each.
async fn upload_images(
    ctx: &JobContext,
    manager: &TokenManager,
    settings: &PublishingSettings,
    job: &PublishJob,
    article: &Article,
    mut row: publication::Model,
) -> Result<publication::Model, JobError> {
    let body_images = wxpilot_content::html::image_urls(&article.html);
    if row.thumb_media_id.is_none() {
        let cover = job
            .cover_url
            .clone()
            .or_else(|| body_images.first().cloned())
            .ok_or_else(|| {
                JobError::Permanent(
                    "a cover image is needed: pass cover_url or put an image in the body".into(),
                )
            })?;
        let image = fetch_image(settings, &cover, MAX_THUMB_BYTES).await?;
        let material = manager
            .call(|c, t| {
                let image = image.clone();
                async move {
                    c.add_thumb_material(&t, &image.file_name, &image.content_type, image.bytes)
                        .await
                }
            })
            .await
            .map_err(classify_wechat)?;
        row.thumb_media_id = Some(material.media_id);
        row = save(ctx, row).await?;
    }
    let mut images: HashMap<String, String> =
        serde_json::from_value(row.images.clone()).unwrap_or_default();
    for url in body_images {
        if images.contains_key(&url) || on_wechat(&url) {
            continue;
        }
        let image = fetch_image(settings, &url, MAX_IMAGE_BYTES).await?;
        let uploaded = manager
            .call(|c, t| {
                let image = image.clone();
                async move {
                    c.upload_article_image(&t, &image.file_name, &image.content_type, image.bytes)
                        .await
                }
            })
            .await
            .map_err(classify_wechat)?;
        images.insert(url, uploaded);
        row.images = json!(images);
        row = save(ctx, row).await?;
    }
    Ok(row)
}

/// Submits the draft, at most once.
async fn submit(
    ctx: &JobContext,
    manager: &TokenManager,
    mut row: publication::Model,
) -> Result<publication::Model, JobError> {
    if row.status == status::SUBMITTING {
        return Err(JobError::Permanent(
            "an earlier attempt submitted this draft and its answer was lost; check the \
             account's publish records in WeChat before publishing again"
                .into(),
        ));
    }
    let media_id = row.draft_media_id.clone().unwrap_or_default();
    row.status = status::SUBMITTING.to_owned();
    row = save(ctx, row).await?;
    ctx.progress(65, "submitting the publish").await;
    let submitted = manager
        .call(|c, t| {
            let media_id = media_id.clone();
            async move { c.submit_publish(&t, &media_id).await }
        })
        .await;
    match submitted {
        Ok(submission) => {
            row.publish_id = Some(submission.publish_id);
            row.status = status::SUBMITTED.to_owned();
            save(ctx, row).await
        }
        // No answer: WeChat may have published it. Stay `submitting` (never resubmitted).
        Err(error @ ApiError::Transport { .. }) => Err(JobError::Permanent(format!(
            "the publish submit got no answer ({error}); check the account's publish records"
        ))),
        // WeChat refused it: nothing was published, so a later attempt may submit.
        Err(error) => {
            row.status = status::DRAFTED.to_owned();
            save(ctx, row).await?;
            Err(classify_wechat(error))
        }
    }
}

/// Polls `freepublish/get` until WeChat settles the publish (or the event did).
async fn settle(
    ctx: &JobContext,
    manager: &TokenManager,
    settings: &PublishingSettings,
    job: &PublishJob,
    row: publication::Model,
) -> Result<JobOutput, JobError> {
    let publish_id = row.publish_id.clone().unwrap_or_default();
    for poll in 0..settings.status_polls.max(1) {
        if poll > 0 {
            tokio::time::sleep(Duration::from_secs(settings.status_poll_secs)).await;
        }
        let current = reload(ctx, job).await?;
        if current.status == status::PUBLISHED {
            return Ok(output(
                &current.status,
                &current.article_url,
                &current.publish_id,
            ));
        }
        let info = manager
            .call(|c, t| {
                let publish_id = publish_id.clone();
                async move { c.get_publish(&t, &publish_id).await }
            })
            .await
            .map_err(classify_wechat)?;
        let outcome = match info.publish_status {
            1 => continue,
            0 => Ok((
                info.article_id.clone(),
                info.article_detail
                    .as_ref()
                    .and_then(|d| d.item.first())
                    .map(|i| i.article_url.clone()),
            )),
            code => Err(publish_failure(code, &info.fail_idx)),
        };
        let failed = outcome.as_ref().err().cloned();
        publications::finish(
            ctx.db(),
            &ctx.tenant_id,
            &job.account_id,
            &publish_id,
            outcome,
        )
        .await
        .map_err(|e| JobError::Retryable(e.to_string()))?;
        if let Some(reason) = failed {
            return Err(JobError::Permanent(reason));
        }
        let done = reload(ctx, job).await?;
        return Ok(output(&done.status, &done.article_url, &done.publish_id));
    }
    Err(JobError::Retryable(
        "WeChat is still publishing; checking again later".into(),
    ))
}

fn publish_failure(code: i64, fail_idx: &[u32]) -> String {
    let what = match code {
        2 => "failed WeChat's originality check",
        3 => "failed",
        4 => "was rejected by WeChat's review",
        5 => "was deleted after publishing",
        6 => "was banned after publishing",
        _ => "ended in an unknown state",
    };
    format!("the publish {what} (publish_status {code}, failed articles {fail_idx:?})")
}

/// The publication as stored now (the callback may have settled it meanwhile).
async fn reload(ctx: &JobContext, job: &PublishJob) -> Result<publications::Publication, JobError> {
    publications::get(ctx.db(), &Actor::system(&ctx.tenant_id), &job.content_id)
        .await
        .map_err(|e| JobError::Retryable(e.to_string()))
}

/// The job's result: where the publication ended.
fn output(status: &str, article_url: &Option<String>, publish_id: &Option<String>) -> JobOutput {
    JobOutput::new(json!({
        "status": status,
        "article_url": article_url,
        "publish_id": publish_id,
    }))
}

async fn save(ctx: &JobContext, row: publication::Model) -> Result<publication::Model, JobError> {
    publications::save(ctx.db(), row)
        .await
        .map_err(|e| JobError::Retryable(format!("recording the publish step: {e}")))
}

/// Images already on WeChat's servers need no upload.
fn on_wechat(url: &str) -> bool {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .is_some_and(|h| h == "mmbiz.qpic.cn" || h.ends_with(".qpic.cn"))
}

/// A fetched image.
#[derive(Clone)]
struct Image {
    file_name: String,
    content_type: String,
    bytes: Vec<u8>,
}

/// Whether `ip` is an address the worker must not fetch from by default.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// Refuses URLs that are not http(s) or (unless allowed) resolve to private addresses.
async fn check_host(settings: &PublishingSettings, url: &url::Url) -> Result<(), JobError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(JobError::Permanent(format!(
            "image {url}: not an http(s) URL"
        )));
    }
    if settings.allow_private_image_hosts {
        return Ok(());
    }
    let host = url
        .host_str()
        .ok_or_else(|| JobError::Permanent(format!("image {url}: no host")))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| JobError::Retryable(format!("image {url}: resolving {host}: {e}")))?;
    for addr in addrs {
        if is_private(addr.ip()) {
            return Err(JobError::Permanent(format!(
                "image {url}: {host} is a private address; images are fetched from public hosts only"
            )));
        }
    }
    Ok(())
}

/// Fetches an image of at most `max` bytes.
async fn fetch_image(
    settings: &PublishingSettings,
    url: &str,
    max: usize,
) -> Result<Image, JobError> {
    let parsed = url::Url::parse(url)
        .map_err(|e| JobError::Permanent(format!("image {url}: not a URL: {e}")))?;
    check_host(settings, &parsed).await?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(
            settings.image_fetch_timeout_secs.max(1),
        ))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| JobError::Retryable(format!("HTTP client: {e}")))?;
    let mut response = client
        .get(parsed.clone())
        .send()
        .await
        .map_err(|e| JobError::Retryable(format!("image {url}: {e}")))?;
    let status = response.status();
    if status.is_server_error() {
        return Err(JobError::Retryable(format!("image {url}: HTTP {status}")));
    }
    if !status.is_success() {
        return Err(JobError::Permanent(format!("image {url}: HTTP {status}")));
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let extension = match content_type.as_str() {
        "image/jpeg" | "image/jpg" => "jpg",
        "image/png" => "png",
        "image/gif" if max > MAX_THUMB_BYTES => "gif",
        other => {
            return Err(JobError::Permanent(format!(
                "image {url}: type {other:?} is not one WeChat takes here (JPEG or PNG)"
            )));
        }
    };
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| JobError::Retryable(format!("image {url}: {e}")))?
    {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > max {
            return Err(JobError::Permanent(format!(
                "image {url}: larger than the {} KB WeChat allows",
                max / 1024
            )));
        }
    }
    if bytes.is_empty() {
        return Err(JobError::Permanent(format!("image {url}: empty")));
    }
    Ok(Image {
        file_name: format!("image.{extension}"),
        content_type,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.9",
            "172.16.5.4",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(
                is_private(ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))),
                "{ip}"
            );
        }
        for ip in ["8.8.8.8", "203.0.113.7", "2001:4860:4860::8888"] {
            assert!(
                !is_private(ip.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]))),
                "{ip}"
            );
        }
    }

    #[test]
    fn wechat_hosted_images_are_not_uploaded_again() {
        assert!(on_wechat("http://mmbiz.qpic.cn/sim/IMG_1"));
        assert!(on_wechat("https://mmbiz.qpic.cn/mmbiz_png/abc/0"));
        assert!(!on_wechat("https://example.com/a.png"));
    }

    #[tokio::test]
    async fn private_hosts_are_refused_unless_allowed() {
        let settings = PublishingSettings::default();
        let url = url::Url::parse("http://127.0.0.1:9/a.png").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            check_host(&settings, &url).await,
            Err(JobError::Permanent(_))
        ));
        let allowed = PublishingSettings {
            allow_private_image_hosts: true,
            ..settings
        };
        assert!(check_host(&allowed, &url).await.is_ok());
    }
}
