//! Jobs as the API sees them: create (with idempotency keys), read, list, cancel, retry.

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use wxpilot_entity::{JobStatus, job};

use super::{Actor, Page, PageRequest, fetch_page};
use crate::error::{ServiceError, ServiceResult};
use crate::ids::new_id;

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Job {
    /// Job id (a ULID).
    pub id: String,
    /// Job kind.
    #[schema(example = "ping")]
    pub kind: String,
    /// Where it stands.
    pub status: JobStatus,
    /// What it was asked to do.
    #[schema(value_type = Object)]
    pub payload: Value,
    /// Attempts started so far.
    pub attempts: i32,
    /// Attempts allowed before it goes dead.
    pub max_attempts: i32,
    /// Progress of the running attempt, 0–100.
    pub progress_percent: i32,
    /// What the running attempt is doing.
    pub progress_message: Option<String>,
    /// The outcome, once succeeded.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// The last error (failed and dead jobs keep it).
    pub error: Option<String>,
    /// The `Idempotency-Key` it was created with.
    pub idempotency_key: Option<String>,
    /// Cancellation was asked for and the running attempt is stopping.
    pub cancel_requested: bool,
    /// Not to run before (the next retry's time for failed jobs).
    pub run_at: DateTime<Utc>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// First attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// Reached a final state.
    pub finished_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The W3C `traceparent` the job was created under; its worker logs carry the trace id.
    pub traceparent: Option<String>,
}

impl From<job::Model> for Job {
    fn from(m: job::Model) -> Self {
        Self {
            id: m.id,
            kind: m.kind,
            status: m.status,
            payload: m.payload,
            attempts: m.attempts,
            max_attempts: m.max_attempts,
            progress_percent: m.progress_percent,
            progress_message: m.progress_message,
            result: m.result,
            error: m.error,
            idempotency_key: m.idempotency_key,
            cancel_requested: m.cancel_requested,
            run_at: m.run_at,
            created_at: m.created_at,
            started_at: m.started_at,
            finished_at: m.finished_at,
            updated_at: m.updated_at,
            traceparent: m.traceparent,
        }
    }
}

/// A job to create.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Kind (its queue).
    pub kind: String,
    /// What to do.
    pub payload: Value,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// The client's `Idempotency-Key`, if any.
    pub idempotency_key: Option<String>,
    /// The caller's W3C `traceparent`, already checked with [`parse_traceparent`].
    pub traceparent: Option<String>,
}

/// A valid W3C `traceparent` (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`,
/// ids not all zero), lower-cased; `None` for anything else, which is then ignored.
pub fn parse_traceparent(value: &str) -> Option<String> {
    let value = value.trim().to_ascii_lowercase();
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    match parts.as_slice() {
        [version, trace, parent, flags]
            if hex(version, 2)
                && *version != "ff"
                && hex(trace, 32)
                && nonzero(trace)
                && hex(parent, 16)
                && nonzero(parent)
                && hex(flags, 2) =>
        {
            Some(value)
        }
        _ => None,
    }
}

/// The trace id inside a `traceparent`.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    traceparent.split('-').nth(1)
}

/// Longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

fn request_hash(kind: &str, payload: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(kind.as_bytes());
    hasher.update(b"\0");
    hasher.update(payload.to_string().as_bytes());
    hex::encode(hasher.finalize())
}

/// The answer to an `Idempotency-Key` sent again with another request.
fn key_reused() -> ServiceError {
    ServiceError::Conflict("this Idempotency-Key was already used with a different request".into())
}

async fn by_idempotency_key<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    key: &str,
    hash: &str,
) -> ServiceResult<Option<job::Model>> {
    let existing = job::Entity::find()
        .filter(job::Column::TenantId.eq(&actor.tenant_id))
        .filter(job::Column::IdempotencyKey.eq(key))
        .one(conn)
        .await?;
    match existing {
        Some(j) if j.request_hash.as_deref() == Some(hash) => Ok(Some(j)),
        Some(_) => Err(key_reused()),
        None => Ok(None),
    }
}

/// Refuses an `Idempotency-Key` that is empty, too long or not printable ASCII.
fn check_idempotency_key(key: &str) -> ServiceResult<()> {
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(ServiceError::field(
            "Idempotency-Key",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters"),
        ));
    }
    Ok(())
}

/// The row of a new queued job.
fn queued_row(actor: &Actor, input: NewJob, hash: String, now: DateTime<Utc>) -> job::Model {
    job::Model {
        id: new_id(),
        tenant_id: actor.tenant_id.clone(),
        kind: input.kind,
        payload: input.payload,
        status: JobStatus::Queued,
        attempts: 0,
        max_attempts: i32::try_from(input.max_attempts.max(1)).unwrap_or(i32::MAX),
        progress_percent: 0,
        progress_message: None,
        result: None,
        error: None,
        idempotency_key: input.idempotency_key,
        request_hash: Some(hash),
        run_at: now,
        lease_owner: None,
        lease_expires_at: None,
        cancel_requested: false,
        // The caller dispatches right after; should that fail, the sweeper dispatches the
        // job again once `redispatch_after_secs` have passed. Saves a write per job.
        dispatched_at: Some(now),
        created_at: now,
        started_at: None,
        finished_at: None,
        updated_at: now,
        traceparent: input.traceparent,
    }
}

/// Creates a queued job, or returns the job an earlier identical request created.
/// The flag says whether it is new (and so still has to be put on the queue).
pub async fn create(
    db: &DatabaseConnection,
    actor: &Actor,
    input: NewJob,
) -> ServiceResult<(Job, bool)> {
    let hash = request_hash(&input.kind, &input.payload);
    if let Some(key) = &input.idempotency_key {
        check_idempotency_key(key)?;
        if let Some(existing) = by_idempotency_key(db, actor, key, &hash).await? {
            return Ok((existing.into(), false));
        }
    }
    let key = input.idempotency_key.clone();
    let row = queued_row(actor, input, hash.clone(), stored_now());
    let inserted = job::Entity::insert(row.clone().into_active_model())
        .exec_without_returning(db)
        .await;
    match inserted {
        Ok(_) => Ok((row.into(), true)),
        // Two identical requests raced: the loser answers with the winner's job.
        Err(e)
            if matches!(
                e.sql_err(),
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
            ) =>
        {
            by_idempotency_key(db, actor, key.as_deref().unwrap_or_default(), &hash)
                .await?
                .map(|j| (j.into(), false))
                .ok_or(ServiceError::Database(e))
        }
        Err(e) => Err(e.into()),
    }
}

/// The current time as the database keeps it (microseconds), so that a job answered from
/// memory reads the same as the stored row.
fn stored_now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Why [`create_many`] has no outcomes to give.
#[derive(Debug)]
pub enum BatchError {
    /// Refused before its commit (two batches raced for one key, say): nothing was
    /// written, and each job may be created on its own with [`create`].
    Refused(ServiceError),
    /// The commit itself failed, so whether the jobs exist is unknown: creating them
    /// again could make a job twice.
    Unconfirmed(ServiceError),
}

/// [`create`] for many requests in one transaction and one insert (group commit of
/// concurrent API requests). Each request gets its own outcome, in order; a request that
/// repeats an earlier one of the same batch (same tenant and key) answers that job.
pub async fn create_many(
    db: &DatabaseConnection,
    batch: &[(Actor, NewJob)],
) -> Result<Vec<ServiceResult<(Job, bool)>>, BatchError> {
    let refused = |e: sea_orm::DbErr| BatchError::Refused(ServiceError::Database(e));
    // A write transaction from the start: on SQLite a read that later writes could not
    // take the write lock once another connection has committed.
    let txn = crate::db::begin_write(db).await.map_err(refused)?;
    let now = stored_now();
    let mut outcomes: Vec<ServiceResult<(Job, bool)>> = Vec::with_capacity(batch.len());
    let mut rows = Vec::new();
    // (tenant, key) → (request hash, the job this batch creates for it).
    let mut keyed: std::collections::HashMap<(String, String), (String, Job)> =
        std::collections::HashMap::new();
    for (actor, input) in batch {
        let hash = request_hash(&input.kind, &input.payload);
        if let Some(key) = &input.idempotency_key {
            if let Err(e) = check_idempotency_key(key) {
                outcomes.push(Err(e));
                continue;
            }
            if let Some((first_hash, job)) = keyed.get(&(actor.tenant_id.clone(), key.clone())) {
                outcomes.push(match *first_hash == hash {
                    true => Ok((job.clone(), false)),
                    false => Err(key_reused()),
                });
                continue;
            }
            match by_idempotency_key(&txn, actor, key, &hash).await {
                Ok(Some(existing)) => {
                    outcomes.push(Ok((existing.into(), false)));
                    continue;
                }
                Ok(None) => {}
                Err(ServiceError::Database(e)) => return Err(refused(e)),
                Err(other) => {
                    outcomes.push(Err(other));
                    continue;
                }
            }
        }
        let row = queued_row(actor, input.clone(), hash.clone(), now);
        let job = Job::from(row.clone());
        if let Some(key) = &input.idempotency_key {
            keyed.insert((actor.tenant_id.clone(), key.clone()), (hash, job.clone()));
        }
        rows.push(row);
        outcomes.push(Ok((job, true)));
    }
    if !rows.is_empty() {
        // In key order, so two batches inserting the same keys cannot deadlock.
        rows.sort_by(|a, b| {
            (&a.tenant_id, &a.idempotency_key).cmp(&(&b.tenant_id, &b.idempotency_key))
        });
        job::Entity::insert_many(rows.into_iter().map(IntoActiveModel::into_active_model))
            .exec_without_returning(&txn)
            .await
            .map_err(refused)?;
    }
    txn.commit()
        .await
        .map_err(|e| BatchError::Unconfirmed(ServiceError::Database(e)))?;
    Ok(outcomes)
}

async fn find_model<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    id: &str,
) -> ServiceResult<job::Model> {
    super::find_owned::<job::Entity, _>(conn, actor, id).await
}

/// One job.
pub async fn get<C: ConnectionTrait>(conn: &C, actor: &Actor, id: &str) -> ServiceResult<Job> {
    find_model(conn, actor, id).await.map(Into::into)
}

/// `GET /v1/jobs` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobFilter {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this status.
    pub status: Option<JobStatus>,
    /// Created at or after (RFC 3339).
    pub created_after: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    pub created_before: Option<DateTime<Utc>>,
}

/// The tenant's jobs, oldest first.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    filter: &JobFilter,
    page: &PageRequest,
) -> ServiceResult<Page<Job>> {
    let mut query = job::Entity::find().filter(job::Column::TenantId.eq(&actor.tenant_id));
    if let Some(kind) = &filter.kind {
        query = query.filter(job::Column::Kind.eq(kind));
    }
    if let Some(status) = filter.status {
        query = query.filter(job::Column::Status.eq(status));
    }
    if let Some(after) = filter.created_after {
        query = query.filter(job::Column::CreatedAt.gte(after));
    }
    if let Some(before) = filter.created_before {
        query = query.filter(job::Column::CreatedAt.lt(before));
    }
    let (rows, limit) = fetch_page(conn, query, job::Column::Id, page).await?;
    Ok(Page::from_rows(rows, limit, |m| &m.id, Job::from))
}

/// Cancels a job: at once when it is waiting, by request when it runs (the worker stops it
/// within a lease renewal). Final jobs answer 409.
pub async fn cancel(db: &DatabaseConnection, actor: &Actor, id: &str) -> ServiceResult<Job> {
    let current = find_model(db, actor, id).await?;
    let now = Utc::now();
    let waiting = [JobStatus::Queued, JobStatus::Failed];
    let filter = job::Entity::update_many()
        .filter(job::Column::TenantId.eq(&actor.tenant_id))
        .filter(job::Column::Id.eq(&current.id));
    let updated = match current.status {
        status if waiting.contains(&status) => {
            filter
                .col_expr(job::Column::Status, Expr::value(JobStatus::Cancelled))
                .col_expr(job::Column::FinishedAt, Expr::value(now))
                .col_expr(job::Column::UpdatedAt, Expr::value(now))
                .filter(job::Column::Status.is_in(waiting))
                .exec(db)
                .await?
        }
        JobStatus::Running => {
            filter
                .col_expr(job::Column::CancelRequested, Expr::value(true))
                .col_expr(job::Column::UpdatedAt, Expr::value(now))
                .filter(job::Column::Status.eq(JobStatus::Running))
                .exec(db)
                .await?
        }
        done => {
            return Err(ServiceError::Conflict(format!(
                "the job is already {}",
                done.as_str()
            )));
        }
    };
    if updated.rows_affected != 1 {
        return Err(ServiceError::Conflict(
            "the job changed state meanwhile; read it again".into(),
        ));
    }
    get(db, actor, &current.id).await
}

/// Queues a dead job again with a fresh set of attempts. The flag-free answer is the job.
pub async fn retry(db: &DatabaseConnection, actor: &Actor, id: &str) -> ServiceResult<Job> {
    let current = find_model(db, actor, id).await?;
    if current.status != JobStatus::Dead {
        return Err(ServiceError::Conflict(format!(
            "only dead jobs can be retried; this one is {}",
            current.status.as_str()
        )));
    }
    let now = Utc::now();
    let updated = job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::value(JobStatus::Queued))
        .col_expr(job::Column::Attempts, Expr::value(0))
        .col_expr(job::Column::RunAt, Expr::value(now))
        .col_expr(
            job::Column::FinishedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            job::Column::DispatchedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(job::Column::ProgressPercent, Expr::value(0))
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
        .filter(job::Column::TenantId.eq(&actor.tenant_id))
        .filter(job::Column::Id.eq(&current.id))
        .filter(job::Column::Status.eq(JobStatus::Dead))
        .exec(db)
        .await?;
    if updated.rows_affected != 1 {
        return Err(ServiceError::Conflict(
            "the job changed state meanwhile; read it again".into(),
        ));
    }
    get(db, actor, &current.id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents() {
        let good = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01";
        assert_eq!(
            parse_traceparent(good).as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        assert_eq!(
            trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-xyz92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }

    #[test]
    fn request_hash_tells_bodies_apart() {
        let a = request_hash("ping", &serde_json::json!({"sleep_ms": 1}));
        assert_eq!(a, request_hash("ping", &serde_json::json!({"sleep_ms": 1})));
        assert_ne!(a, request_hash("ping", &serde_json::json!({"sleep_ms": 2})));
        assert_ne!(a, request_hash("pong", &serde_json::json!({"sleep_ms": 1})));
    }
}
