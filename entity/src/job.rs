//! A durable job: the record the API reads. The queue only carries its id.

use sea_orm::entity::prelude::*;

use crate::JobStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    /// Job kind (`ping`, `generate`, …); also its queue.
    pub kind: String,
    pub payload: Json,
    pub status: JobStatus,
    /// Attempts started so far.
    pub attempts: i32,
    pub max_attempts: i32,
    pub progress_percent: i32,
    pub progress_message: Option<String>,
    pub result: Option<Json>,
    /// The last error, kept on dead and failed jobs.
    pub error: Option<String>,
    pub idempotency_key: Option<String>,
    /// SHA-256 of the request that created the job, to tell a replay from a clash.
    pub request_hash: Option<String>,
    /// Not to run before this time (retries wait here).
    pub run_at: DateTimeUtc,
    /// The worker holding the job while it runs.
    pub lease_owner: Option<String>,
    /// The holder must renew before this, or the job is taken back.
    pub lease_expires_at: Option<DateTimeUtc>,
    pub cancel_requested: bool,
    /// When the job id was last put on the queue.
    pub dispatched_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
    /// The W3C `traceparent` of the request that created the job.
    pub traceparent: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
