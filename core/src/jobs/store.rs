//! Job state transitions, each a guarded update so that two workers, a duplicate message
//! or a late worker whose lease was taken over can never both win.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::Value;
use wxpilot_entity::{JobStatus, job, tenant, usage_record};

use super::webhooks;
use crate::ids::new_id;

/// What happened when a worker tried to take a job.
#[derive(Debug)]
pub enum Claim {
    /// The worker now holds the job.
    Claimed(Box<job::Model>),
    /// Not due yet: look again at this time.
    NotYet(DateTime<Utc>),
    /// The tenant already runs its maximum; try again shortly.
    TenantBusy,
    /// Another live worker holds it.
    Held,
    /// Nothing to do: finished, cancelled, or unknown.
    Gone,
}

fn lease_until(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(30))
}

/// Whether a worker may take the job now: queued or failed and due, or running under a
/// lease that has run out (its worker died).
fn claimable(job: &job::Model, now: DateTime<Utc>) -> Result<(), Claim> {
    match job.status {
        JobStatus::Queued | JobStatus::Failed if job.run_at > now => Err(Claim::NotYet(job.run_at)),
        JobStatus::Queued | JobStatus::Failed => Ok(()),
        JobStatus::Running if job.lease_expires_at.is_some_and(|at| at <= now) => Ok(()),
        JobStatus::Running => Err(Claim::Held),
        JobStatus::Succeeded | JobStatus::Cancelled | JobStatus::Dead => Err(Claim::Gone),
    }
}

/// Takes job `id` for `worker` unless someone else may have it, the tenant is at its cap
/// of running jobs, or it is not due. A lease that ran out counts as a spent attempt.
pub async fn claim(
    db: &DatabaseConnection,
    id: &str,
    worker: &str,
    lease: Duration,
    tenant_cap: u64,
) -> anyhow::Result<Claim> {
    let mut claims = claim_many(db, &[id.to_owned()], worker, lease, tenant_cap).await?;
    Ok(claims.pop().unwrap_or(Claim::Gone))
}

/// [`claim`] for several jobs in one write transaction (one commit instead of one per
/// job), in the order given. The tenant cap counts jobs claimed earlier in the batch.
pub async fn claim_many(
    db: &DatabaseConnection,
    ids: &[String],
    worker: &str,
    lease: Duration,
    tenant_cap: u64,
) -> anyhow::Result<Vec<Claim>> {
    let txn = crate::db::begin_write(db).await?;
    let mut found: std::collections::HashMap<String, job::Model> = job::Entity::find()
        .filter(job::Column::Id.is_in(ids.iter().map(String::as_str)))
        .all(&txn)
        .await?
        .into_iter()
        .map(|j| (j.id.clone(), j))
        .collect();
    if db.get_database_backend() == DatabaseBackend::Postgres && !found.is_empty() {
        // Serialise claims per tenant so the cap holds exactly under concurrency. Locks
        // are taken in id order, so two batches cannot deadlock on each other.
        let tenants: std::collections::BTreeSet<&str> =
            found.values().map(|j| j.tenant_id.as_str()).collect();
        tenant::Entity::find()
            .filter(tenant::Column::Id.is_in(tenants))
            .order_by_asc(tenant::Column::Id)
            .lock_exclusive()
            .all(&txn)
            .await?;
    }
    let mut running = running_by_tenant(&txn, found.values(), Utc::now()).await?;
    let mut claims = Vec::with_capacity(ids.len());
    for id in ids {
        let claim = match found.remove(id) {
            Some(current) => {
                let running = running.entry(current.tenant_id.clone()).or_insert(0);
                claim_found(&txn, current, worker, lease, tenant_cap, running).await?
            }
            None => Claim::Gone,
        };
        claims.push(claim);
    }
    txn.commit().await?;
    Ok(claims)
}

/// Jobs running under a live lease, per tenant of `jobs`, counted once per batch (the
/// tenants are locked, so only this transaction changes the counts until it commits).
async fn running_by_tenant<'a, C: ConnectionTrait>(
    txn: &C,
    jobs: impl Iterator<Item = &'a job::Model>,
    now: DateTime<Utc>,
) -> anyhow::Result<std::collections::HashMap<String, u64>> {
    let tenants: std::collections::BTreeSet<&str> = jobs.map(|j| j.tenant_id.as_str()).collect();
    if tenants.is_empty() {
        return Ok(Default::default());
    }
    let counts: Vec<(String, i64)> = job::Entity::find()
        .select_only()
        .column(job::Column::TenantId)
        .column_as(job::Column::Id.count(), "running")
        .filter(job::Column::TenantId.is_in(tenants))
        .filter(job::Column::Status.eq(JobStatus::Running))
        .filter(job::Column::LeaseExpiresAt.gt(now))
        .group_by(job::Column::TenantId)
        .into_tuple()
        .all(txn)
        .await?;
    Ok(counts
        .into_iter()
        .map(|(tenant, n)| (tenant, u64::try_from(n).unwrap_or(0)))
        .collect())
}

/// Decides and records one claim inside the caller's transaction, the tenant already
/// locked; `running` is the tenant's count of live jobs, which a claim increments.
/// Writes nothing unless the job changes hands or is finished off.
async fn claim_found<C: ConnectionTrait>(
    txn: &C,
    current: job::Model,
    worker: &str,
    lease: Duration,
    tenant_cap: u64,
    running: &mut u64,
) -> anyhow::Result<Claim> {
    let now = Utc::now();
    if let Err(outcome) = claimable(&current, now) {
        return Ok(outcome);
    }
    if current.cancel_requested {
        finish(
            txn,
            &current,
            JobStatus::Cancelled,
            None,
            Some("cancelled before it ran"),
        )
        .await?;
        return Ok(Claim::Gone);
    }
    if current.status == JobStatus::Running && current.attempts >= current.max_attempts {
        let error = format!(
            "the worker running attempt {} stopped responding, and no attempts are left",
            current.attempts
        );
        finish(txn, &current, JobStatus::Dead, None, Some(&error)).await?;
        webhooks::enqueue_for_job(txn, &current, "job.dead", &error).await?;
        return Ok(Claim::Gone);
    }
    if *running >= tenant_cap.max(1) {
        return Ok(Claim::TenantBusy);
    }
    let updated = job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::value(JobStatus::Running))
        .col_expr(job::Column::Attempts, Expr::value(current.attempts + 1))
        .col_expr(job::Column::LeaseOwner, Expr::value(worker))
        .col_expr(
            job::Column::LeaseExpiresAt,
            Expr::value(lease_until(now, lease)),
        )
        .col_expr(
            job::Column::StartedAt,
            Expr::value(current.started_at.unwrap_or(now)),
        )
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
        .filter(job::Column::Id.eq(&current.id))
        .filter(job::Column::UpdatedAt.eq(current.updated_at))
        .exec(txn)
        .await?;
    if updated.rows_affected != 1 {
        return Ok(Claim::Held);
    }
    *running += 1;
    let mut claimed = current;
    claimed.status = JobStatus::Running;
    claimed.attempts += 1;
    claimed.lease_owner = Some(worker.to_owned());
    claimed.lease_expires_at = Some(lease_until(now, lease));
    claimed.started_at = Some(claimed.started_at.unwrap_or(now));
    claimed.updated_at = now;
    Ok(Claim::Claimed(Box::new(claimed)))
}

/// The lease holder's view after renewing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// Still ours; `cancel` says whether cancellation was requested.
    Held {
        /// Cancellation was requested.
        cancel: bool,
    },
    /// Someone else has it now (our lease ran out), or it is gone: stop working on it.
    Lost,
}

fn owned_by(id: &str, worker: &str) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(job::Column::Id.eq(id))
        .add(job::Column::Status.eq(JobStatus::Running))
        .add(job::Column::LeaseOwner.eq(worker))
}

/// Extends the lease and reports whether cancellation was asked for.
pub async fn renew(
    db: &DatabaseConnection,
    id: &str,
    worker: &str,
    lease: Duration,
) -> anyhow::Result<Lease> {
    let now = Utc::now();
    let updated = job::Entity::update_many()
        .col_expr(
            job::Column::LeaseExpiresAt,
            Expr::value(lease_until(now, lease)),
        )
        .filter(owned_by(id, worker))
        .exec(db)
        .await?;
    if updated.rows_affected != 1 {
        return Ok(Lease::Lost);
    }
    let cancel = job::Entity::find_by_id(id)
        .one(db)
        .await?
        .is_some_and(|j| j.cancel_requested);
    Ok(Lease::Held { cancel })
}

/// Records progress (0–100 and a message) of a job the worker holds.
pub async fn progress(
    db: &DatabaseConnection,
    id: &str,
    worker: &str,
    percent: u8,
    message: &str,
) -> anyhow::Result<()> {
    job::Entity::update_many()
        .col_expr(
            job::Column::ProgressPercent,
            Expr::value(i32::from(percent.min(100))),
        )
        .col_expr(job::Column::ProgressMessage, Expr::value(message))
        .col_expr(job::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(owned_by(id, worker))
        .exec(db)
        .await?;
    Ok(())
}

async fn finish<C: ConnectionTrait>(
    conn: &C,
    current: &job::Model,
    status: JobStatus,
    result: Option<Value>,
    error: Option<&str>,
) -> anyhow::Result<()> {
    let now = Utc::now();
    let mut model: job::ActiveModel = current.clone().into();
    model.status = Set(status);
    if result.is_some() {
        model.result = Set(result);
    }
    if let Some(error) = error {
        model.error = Set(Some(error.to_owned()));
    }
    if status == JobStatus::Succeeded {
        model.progress_percent = Set(100);
    }
    model.lease_owner = Set(None);
    model.lease_expires_at = Set(None);
    model.finished_at = Set(Some(now));
    model.updated_at = Set(now);
    model.update(conn).await?;
    Ok(())
}

async fn held<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    worker: &str,
) -> anyhow::Result<Option<job::Model>> {
    Ok(job::Entity::find()
        .filter(owned_by(id, worker))
        .one(conn)
        .await?)
}

/// A finished attempt's outcome, for [`succeed_many`].
#[derive(Debug, Clone)]
pub struct Success {
    /// The job.
    pub id: String,
    /// Stored as its result.
    pub result: Value,
    /// Usage to record beyond the job itself, as `(metric, quantity)`.
    pub usage: Vec<(String, i64)>,
}

/// Marks a held job succeeded with `result`, and records its usage, in one transaction.
/// Returns false when the worker no longer held it (its effect is then not recorded).
pub async fn succeed(
    db: &DatabaseConnection,
    id: &str,
    worker: &str,
    result: Value,
    usage: &[(String, i64)],
) -> anyhow::Result<bool> {
    let success = Success {
        id: id.to_owned(),
        result,
        usage: usage.to_vec(),
    };
    let mut done = succeed_many(db, worker, vec![success]).await?;
    Ok(done.pop().unwrap_or(false))
}

/// [`succeed`] for several jobs in one write transaction (one commit instead of one per
/// job). Returns, in order, whether each was still held.
pub async fn succeed_many(
    db: &DatabaseConnection,
    worker: &str,
    successes: Vec<Success>,
) -> anyhow::Result<Vec<bool>> {
    let txn = crate::db::begin_write(db).await?;
    // One read of every job the batch finishes, one of each tenant's endpoints, and one
    // insert of all ledger entries and deliveries: per job only its own update remains.
    let mut held: std::collections::HashMap<String, job::Model> = job::Entity::find()
        .filter(job::Column::Id.is_in(successes.iter().map(|s| s.id.as_str())))
        .filter(job::Column::Status.eq(JobStatus::Running))
        .filter(job::Column::LeaseOwner.eq(worker))
        .all(&txn)
        .await?
        .into_iter()
        .map(|j| (j.id.clone(), j))
        .collect();
    let mut endpoints = std::collections::HashMap::new();
    let mut ledger = Vec::new();
    let mut deliveries = Vec::new();
    let mut done = Vec::with_capacity(successes.len());
    for success in successes {
        let Some(current) = held.remove(&success.id) else {
            done.push(false);
            continue;
        };
        finish(
            &txn,
            &current,
            JobStatus::Succeeded,
            Some(success.result),
            None,
        )
        .await?;
        ledger.extend(usage_rows(&current, success.usage));
        if !endpoints.contains_key(&current.tenant_id) {
            let found = webhooks::active_endpoints(&txn, &current.tenant_id).await?;
            endpoints.insert(current.tenant_id.clone(), found);
        }
        if let Some(found) = endpoints.get(&current.tenant_id) {
            deliveries.extend(webhooks::deliveries(&current, "job.succeeded", "", found));
        }
        done.push(true);
    }
    crate::db::insert_chunked(&txn, ledger).await?;
    crate::db::insert_chunked(&txn, deliveries).await?;
    txn.commit().await?;
    Ok(done)
}

/// The usage-ledger entries of a succeeded job: the job itself and what it reported.
fn usage_rows(job: &job::Model, usage: Vec<(String, i64)>) -> Vec<usage_record::ActiveModel> {
    let now = Utc::now();
    std::iter::once((format!("jobs.{}", job.kind), 1))
        .chain(usage)
        .map(|(metric, quantity)| usage_record::ActiveModel {
            id: Set(new_id()),
            tenant_id: Set(job.tenant_id.clone()),
            job_id: Set(Some(job.id.clone())),
            metric: Set(metric),
            quantity: Set(quantity),
            created_at: Set(now),
        })
        .collect()
}

/// What became of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Another attempt is due at this time.
    RetryAt(DateTime<Utc>),
    /// No more attempts.
    Dead,
    /// The worker no longer held the job.
    NotHeld,
}

/// Records a failed attempt: dead when `permanent` or out of attempts, else failed with a
/// retry at `now + retry_delay`.
pub async fn fail(
    db: &DatabaseConnection,
    id: &str,
    worker: &str,
    error: &str,
    permanent: bool,
    retry_delay: Duration,
) -> anyhow::Result<AfterFailure> {
    let txn = crate::db::begin_write(db).await?;
    let Some(current) = held(&txn, id, worker).await? else {
        return Ok(AfterFailure::NotHeld);
    };
    let outcome = if permanent || current.attempts >= current.max_attempts {
        finish(&txn, &current, JobStatus::Dead, None, Some(error)).await?;
        webhooks::enqueue_for_job(&txn, &current, "job.dead", error).await?;
        AfterFailure::Dead
    } else {
        let now = Utc::now();
        let run_at = lease_until(now, retry_delay);
        let mut model: job::ActiveModel = current.clone().into();
        model.status = Set(JobStatus::Failed);
        model.error = Set(Some(error.to_owned()));
        model.run_at = Set(run_at);
        model.lease_owner = Set(None);
        model.lease_expires_at = Set(None);
        model.dispatched_at = Set(Some(now));
        model.updated_at = Set(now);
        model.update(&txn).await?;
        webhooks::enqueue_for_job(&txn, &current, "job.failed", error).await?;
        AfterFailure::RetryAt(run_at)
    };
    txn.commit().await?;
    Ok(outcome)
}

/// Marks a held job cancelled (the worker stopped it on request).
pub async fn cancelled(db: &DatabaseConnection, id: &str, worker: &str) -> anyhow::Result<()> {
    if let Some(current) = held(db, id, worker).await? {
        finish(
            db,
            &current,
            JobStatus::Cancelled,
            None,
            Some("cancelled while running"),
        )
        .await?;
    }
    Ok(())
}

/// Hands a held job back unfinished (graceful shutdown): queued again, attempt not counted.
pub async fn release(db: &DatabaseConnection, id: &str, worker: &str) -> anyhow::Result<()> {
    if let Some(current) = held(db, id, worker).await? {
        let now = Utc::now();
        let mut model: job::ActiveModel = current.clone().into();
        model.status = Set(JobStatus::Queued);
        model.attempts = Set((current.attempts - 1).max(0));
        model.lease_owner = Set(None);
        model.lease_expires_at = Set(None);
        model.run_at = Set(now);
        model.dispatched_at = Set(None);
        model.updated_at = Set(now);
        model.update(db).await?;
    }
    Ok(())
}

/// Notes that job `id` was put on the queue now.
pub async fn mark_dispatched(db: &DatabaseConnection, id: &str) -> anyhow::Result<()> {
    job::Entity::update_many()
        .col_expr(job::Column::DispatchedAt, Expr::value(Utc::now()))
        .filter(job::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Jobs that should be on the queue and may not be: due but not dispatched within
/// `redispatch_after`, or running under an expired lease. Returns `(id, kind)` pairs.
pub async fn needing_dispatch(
    db: &DatabaseConnection,
    redispatch_after: Duration,
    limit: u64,
) -> anyhow::Result<Vec<(String, String)>> {
    let now = Utc::now();
    let stale =
        now - chrono::Duration::from_std(redispatch_after).unwrap_or(chrono::Duration::seconds(30));
    let not_recent = sea_orm::Condition::any()
        .add(job::Column::DispatchedAt.is_null())
        .add(job::Column::DispatchedAt.lt(stale));
    let due = sea_orm::Condition::all()
        .add(job::Column::Status.is_in([JobStatus::Queued, JobStatus::Failed]))
        .add(job::Column::RunAt.lte(now));
    let orphaned = sea_orm::Condition::all()
        .add(job::Column::Status.eq(JobStatus::Running))
        .add(job::Column::LeaseExpiresAt.lt(now));
    let rows = job::Entity::find()
        .filter(
            sea_orm::Condition::all()
                .add(not_recent)
                .add(sea_orm::Condition::any().add(due).add(orphaned)),
        )
        .limit(limit)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|j| (j.id, j.kind)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(status: JobStatus, run_in: i64, lease_in: Option<i64>) -> job::Model {
        let now = Utc::now();
        job::Model {
            id: "01JJOB00000000000000000000".into(),
            tenant_id: "t".into(),
            kind: "ping".into(),
            payload: Value::Null,
            status,
            attempts: 1,
            max_attempts: 3,
            progress_percent: 0,
            progress_message: None,
            result: None,
            error: None,
            idempotency_key: None,
            request_hash: None,
            run_at: now + chrono::Duration::seconds(run_in),
            lease_owner: lease_in.map(|_| "w".into()),
            lease_expires_at: lease_in.map(|s| now + chrono::Duration::seconds(s)),
            cancel_requested: false,
            dispatched_at: None,
            created_at: now,
            started_at: None,
            finished_at: None,
            updated_at: now,
            traceparent: None,
        }
    }

    #[test]
    fn who_may_claim() {
        let now = Utc::now();
        assert!(claimable(&job(JobStatus::Queued, -1, None), now).is_ok());
        assert!(matches!(
            claimable(&job(JobStatus::Failed, 60, None), now),
            Err(Claim::NotYet(_))
        ));
        assert!(claimable(&job(JobStatus::Failed, -1, None), now).is_ok());
        assert!(matches!(
            claimable(&job(JobStatus::Running, -1, Some(30)), now),
            Err(Claim::Held)
        ));
        assert!(
            claimable(&job(JobStatus::Running, -1, Some(-1)), now).is_ok(),
            "expired lease"
        );
        for done in [JobStatus::Succeeded, JobStatus::Cancelled, JobStatus::Dead] {
            assert!(matches!(
                claimable(&job(done, -1, None), now),
                Err(Claim::Gone)
            ));
        }
    }
}

/// Jobs by kind and status, across all tenants, for monitoring (`wxpilot_jobs`), with the
/// age in seconds of the oldest waiting job per kind (`wxpilot_jobs_oldest_waiting_seconds`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct JobCounts {
    /// `(kind, status, count)` for the unfinished and dead states.
    pub by_state: Vec<(String, JobStatus, u64)>,
    /// `(kind, seconds)`.
    pub oldest_waiting: Vec<(String, f64)>,
}

/// Counts unfinished and dead jobs for the metrics endpoint.
pub async fn counts(db: &DatabaseConnection) -> anyhow::Result<JobCounts> {
    use sea_orm::FromQueryResult;
    #[derive(FromQueryResult)]
    struct Row {
        kind: String,
        status: JobStatus,
        n: i64,
    }
    let states = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Failed,
        JobStatus::Dead,
    ];
    let rows = job::Entity::find()
        .select_only()
        .column(job::Column::Kind)
        .column(job::Column::Status)
        .column_as(job::Column::Id.count(), "n")
        .filter(job::Column::Status.is_in(states))
        .group_by(job::Column::Kind)
        .group_by(job::Column::Status)
        .into_model::<Row>()
        .all(db)
        .await?;
    let now = Utc::now();
    let mut oldest = Vec::new();
    let kinds: std::collections::BTreeSet<String> = rows.iter().map(|r| r.kind.clone()).collect();
    for kind in kinds {
        let first = job::Entity::find()
            .filter(job::Column::Kind.eq(&kind))
            .filter(job::Column::Status.eq(JobStatus::Queued))
            .order_by_asc(job::Column::RunAt)
            .one(db)
            .await?;
        if let Some(first) = first {
            let age = (now - first.run_at).num_milliseconds().max(0) as f64 / 1000.0;
            oldest.push((kind, age));
        }
    }
    Ok(JobCounts {
        by_state: rows
            .into_iter()
            .map(|r| (r.kind, r.status, u64::try_from(r.n).unwrap_or(0)))
            .collect(),
        oldest_waiting: oldest,
    })
}
