//! Sends queued webhook deliveries, signed, and retries failures with backoff. Each
//! delivery is claimed by pushing its next attempt time forward first, so two workers
//! never send the same attempt.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;
use wxpilot_core::SecretBox;
use wxpilot_core::jobs::backoff;
use wxpilot_core::jobs::webhooks::{SIGNATURE_HEADER, signature_header};
use wxpilot_core::service::webhooks::secret_context;
use wxpilot_core::settings::WebhookSettings;
use wxpilot_entity::{webhook_delivery, webhook_endpoint};

/// Sends due deliveries until `shutdown`.
pub async fn run(
    db: DatabaseConnection,
    secrets: Arc<SecretBox>,
    settings: WebhookSettings,
    shutdown: CancellationToken,
) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(settings.timeout_secs.max(1)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("wxpilot-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook sender cannot start");
            return;
        }
    };
    let every = Duration::from_millis(settings.poll_interval_ms.max(50));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        if let Err(e) = send_due(&db, &secrets, &settings, &client).await {
            tracing::warn!(error = %format!("{e:#}"), "webhook sending failed");
        }
    }
}

/// Sends every delivery due now; returns how many were attempted.
pub async fn send_due(
    db: &DatabaseConnection,
    secrets: &SecretBox,
    settings: &WebhookSettings,
    client: &reqwest::Client,
) -> anyhow::Result<usize> {
    let now = Utc::now();
    let due = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::Status.eq("pending"))
        .filter(webhook_delivery::Column::NextAttemptAt.lte(now))
        .order_by_asc(webhook_delivery::Column::NextAttemptAt)
        .limit(50)
        .all(db)
        .await?;
    let mut attempted = 0;
    for delivery in due {
        // Claim this attempt: only the worker that moves next_attempt_at sends it.
        let hold = now
            + chrono::Duration::seconds(i64::try_from(settings.timeout_secs).unwrap_or(10) + 30);
        let claimed = webhook_delivery::Entity::update_many()
            .col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(hold))
            .filter(webhook_delivery::Column::Id.eq(&delivery.id))
            .filter(webhook_delivery::Column::NextAttemptAt.eq(delivery.next_attempt_at))
            .exec(db)
            .await?;
        if claimed.rows_affected != 1 {
            continue;
        }
        attempted += 1;
        let outcome = attempt(db, secrets, client, &delivery).await;
        record(db, settings, &delivery, outcome).await?;
    }
    Ok(attempted)
}

/// `Ok(status)` for a 2xx answer, `Err((status, error))` otherwise.
type Outcome = Result<u16, (Option<u16>, String)>;

async fn attempt(
    db: &DatabaseConnection,
    secrets: &SecretBox,
    client: &reqwest::Client,
    delivery: &webhook_delivery::Model,
) -> Outcome {
    let endpoint = match webhook_endpoint::Entity::find_by_id(&delivery.endpoint_id)
        .one(db)
        .await
    {
        Ok(Some(e)) if e.active => e,
        Ok(_) => return Err((None, "the endpoint was deleted or disabled".into())),
        Err(e) => return Err((None, format!("database: {e}"))),
    };
    let secret = secrets
        .open(&endpoint.secret_enc, &secret_context(&endpoint.id))
        .map_err(|e| (None, format!("signing secret: {e}")))?;
    let timestamp = Utc::now().timestamp();
    let signature = signature_header(
        secret.expose_secret().as_bytes(),
        timestamp,
        delivery.payload.as_bytes(),
    );
    let response = client
        .post(&endpoint.url)
        .header("content-type", "application/json")
        .header(SIGNATURE_HEADER, signature)
        .header("Wxpilot-Delivery", &delivery.id)
        .header("Wxpilot-Event", &delivery.event)
        .body(delivery.payload.clone())
        .send()
        .await
        .map_err(|e| (None, format!("request failed: {e}")))?;
    let status = response.status().as_u16();
    if response.status().is_success() {
        Ok(status)
    } else {
        Err((Some(status), format!("receiver answered {status}")))
    }
}

async fn record(
    db: &DatabaseConnection,
    settings: &WebhookSettings,
    delivery: &webhook_delivery::Model,
    outcome: Outcome,
) -> anyhow::Result<()> {
    let now = Utc::now();
    let attempts = delivery.attempts + 1;
    let update = webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::Attempts, Expr::value(attempts))
        .filter(webhook_delivery::Column::Id.eq(&delivery.id));
    match outcome {
        Ok(status) => {
            update
                .col_expr(webhook_delivery::Column::Status, Expr::value("delivered"))
                .col_expr(
                    webhook_delivery::Column::LastStatusCode,
                    Expr::value(i32::from(status)),
                )
                .col_expr(
                    webhook_delivery::Column::LastError,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(webhook_delivery::Column::DeliveredAt, Expr::value(now))
                .exec(db)
                .await?;
        }
        Err((status, error)) => {
            let exhausted = u32::try_from(attempts).unwrap_or(u32::MAX) >= settings.max_attempts;
            let delay = backoff(
                u32::try_from(attempts).unwrap_or(1),
                Duration::from_millis(settings.backoff_base_ms),
                Duration::from_millis(settings.backoff_max_ms),
                rand::thread_rng().r#gen::<f64>(),
            );
            let next =
                now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(60));
            tracing::info!(delivery = %delivery.id, attempts, error = %error, "webhook delivery attempt failed");
            update
                .col_expr(
                    webhook_delivery::Column::Status,
                    Expr::value(if exhausted { "failed" } else { "pending" }),
                )
                .col_expr(
                    webhook_delivery::Column::LastStatusCode,
                    Expr::value(status.map(i32::from)),
                )
                .col_expr(webhook_delivery::Column::LastError, Expr::value(error))
                .col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(next))
                .exec(db)
                .await?;
        }
    }
    Ok(())
}
