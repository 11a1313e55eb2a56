//! The queue: one apalis storage per job kind, on Redis when `REDIS_URL` is set and on the
//! embedded SQLite database otherwise. It carries only job ids; see `wxpilot_core::jobs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use apalis::prelude::*;
use apalis_core::backend::Vacuum;
use apalis_redis::{ConnectionManager, RedisStorage};
use apalis_sqlite::SqliteStorage;
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use wxpilot_core::Settings;

use crate::runtime::Runtime;

/// What travels on the queue: which job to look at.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobMessage {
    /// The job's id.
    pub job_id: String,
}

/// The queue name of a job kind.
pub fn queue_name(prefix: &str, kind: &str) -> String {
    format!("{prefix}:{kind}")
}

/// Longest wait for the queue to accept a message.
const DISPATCH_TIMEOUT: Duration = Duration::from_secs(1);

type RedisQueue = RedisStorage<JobMessage, ConnectionManager>;
type SqliteQueue = SqliteStorage<JobMessage>;

enum Backend {
    Redis {
        conn: ConnectionManager,
        storages: Mutex<HashMap<String, RedisQueue>>,
        prefix: String,
        poll: Duration,
    },
    Sqlite {
        pool: apalis_sqlite::SqlitePool,
        storages: Mutex<HashMap<String, SqliteQueue>>,
        poll: Duration,
        prefix: String,
    },
}

/// Producer and consumer side of the queue. Cheap to clone.
#[derive(Clone)]
pub struct JobQueue(Arc<Backend>);

impl JobQueue {
    /// Redis when the settings name one, else the embedded database (which must be SQLite).
    pub async fn connect(settings: &Settings, db: &DatabaseConnection) -> anyhow::Result<Self> {
        use secrecy::ExposeSecret;
        if let Some(url) = &settings.redis_url {
            let conn = apalis_redis::connect(url.expose_secret())
                .await
                .context("connecting to Redis for the job queue")?;
            return Ok(Self(Arc::new(Backend::Redis {
                conn,
                storages: Mutex::new(HashMap::new()),
                prefix: settings.jobs.queue_prefix.clone(),
                poll: Duration::from_millis(settings.jobs.poll_interval_ms.max(5)),
            })));
        }
        anyhow::ensure!(
            settings.uses_sqlite(),
            "with a Postgres database the job queue needs Redis: set REDIS_URL"
        );
        let _ = db;
        let pool = open_queue_file(&settings.database_url()).await?;
        // Only the storage's tables: its `setup` would also switch our pragmas (synchronous = OFF).
        SqliteStorage::<()>::migrations()
            .run(&pool)
            .await
            .context("creating the embedded queue's tables")?;
        Ok(Self(Arc::new(Backend::Sqlite {
            pool,
            storages: Mutex::new(HashMap::new()),
            poll: Duration::from_millis(settings.jobs.poll_interval_ms.max(10)),
            prefix: settings.jobs.queue_prefix.clone(),
        })))
    }

    /// `redis` or `sqlite`.
    pub fn backend_name(&self) -> &'static str {
        match &*self.0 {
            Backend::Redis { .. } => "redis",
            Backend::Sqlite { .. } => "sqlite",
        }
    }

    fn redis_storage(conn: &ConnectionManager, prefix: &str, kind: &str) -> RedisQueue {
        let config = apalis_redis::Config::default()
            .queue(queue_name(prefix, kind))
            // Results are not needed (the jobs table has them), but apalis only acknowledges
            // a task when it persists its result; unacknowledged tasks would stay "Running"
            // and be re-enqueued as orphans. `vacuum` removes finished ones.
            .persist_results(true)
            .emit_events(false)
            .batch_size(64)
            .heartbeat_interval(Duration::from_secs(5));
        RedisStorage::new(conn.clone()).with_config(config)
    }

    fn sqlite_storage(pool: &apalis_sqlite::SqlitePool, prefix: &str, kind: &str) -> SqliteQueue {
        let config = apalis_sqlite::Config::default()
            .queue(queue_name(prefix, kind))
            .batch_size(64)
            .persist_results(true)
            .heartbeat_interval(Duration::from_secs(5));
        SqliteStorage::new(pool).with_config(config)
    }

    /// Puts "look at job `job_id`" on the kind's queue, optionally not before `delay`.
    pub async fn dispatch(
        &self,
        kind: &str,
        job_id: &str,
        delay: Option<Duration>,
    ) -> anyhow::Result<()> {
        let mut builder = TaskBuilder::new(JobMessage {
            job_id: job_id.to_owned(),
        });
        if let Some(delay) = delay.filter(|d| !d.is_zero()) {
            builder = builder.run_after(delay);
        }
        let task = builder.build();
        // Storages are cloned out of the map so a slow push never holds the lock, and a push
        // is bounded in time: the job record is durable, and the sweeper re-dispatches.
        let pushed = match &*self.0 {
            Backend::Redis {
                conn,
                storages,
                prefix,
                ..
            } => {
                let mut storage = storages
                    .lock()
                    .await
                    .entry(kind.to_owned())
                    .or_insert_with(|| Self::redis_storage(conn, prefix, kind))
                    .clone();
                tokio::time::timeout(DISPATCH_TIMEOUT, async move {
                    storage
                        .push_task(task)
                        .await
                        .map_err(|e| anyhow::anyhow!("pushing to Redis: {e}"))
                })
                .await
            }
            Backend::Sqlite {
                pool,
                storages,
                prefix,
                ..
            } => {
                let mut storage = storages
                    .lock()
                    .await
                    .entry(kind.to_owned())
                    .or_insert_with(|| Self::sqlite_storage(pool, prefix, kind))
                    .clone();
                tokio::time::timeout(DISPATCH_TIMEOUT, async move {
                    storage
                        .push_task(task)
                        .await
                        .map_err(|e| anyhow::anyhow!("pushing to the embedded queue: {e}"))
                })
                .await
            }
        };
        pushed.map_err(|_| {
            anyhow::anyhow!("the queue did not accept the job within {DISPATCH_TIMEOUT:?}")
        })?
    }

    /// Removes acknowledged (finished) messages of `kinds` from the queue; they carry nothing
    /// the `jobs` table does not. Returns how many were removed.
    pub async fn vacuum(&self, kinds: &[&str]) -> anyhow::Result<usize> {
        let mut removed = 0;
        for kind in kinds {
            removed += match &*self.0 {
                Backend::Redis { conn, prefix, .. } => Self::redis_storage(conn, prefix, kind)
                    .vacuum()
                    .await
                    .map_err(|e| anyhow::anyhow!("vacuuming the Redis queue: {e}"))?,
                Backend::Sqlite { pool, prefix, .. } => Self::sqlite_storage(pool, prefix, kind)
                    .vacuum()
                    .await
                    .map_err(|e| anyhow::anyhow!("vacuuming the embedded queue: {e}"))?,
            };
        }
        Ok(removed)
    }

    /// Consumes every kind the runtime runs until `shutdown`. A consumer that stops on
    /// an error (Redis restarted, say) is started again after a short pause.
    pub async fn consume(
        &self,
        runtime: Runtime,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut consumers = tokio::task::JoinSet::new();
        for kind in runtime.kinds() {
            let queue = self.clone();
            let runtime = runtime.clone();
            let shutdown = shutdown.clone();
            consumers.spawn(async move {
                let mut pause = Duration::from_millis(200);
                loop {
                    let result = queue.consume_kind(&runtime, kind, shutdown.clone()).await;
                    if shutdown.is_cancelled() {
                        return;
                    }
                    match result {
                        Ok(()) => tracing::warn!(kind, "queue consumer ended; starting it again"),
                        Err(e) => tracing::warn!(kind, error = %format!("{e:#}"), "queue consumer failed; starting it again"),
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            });
        }
        while consumers.join_next().await.is_some() {}
        Ok(())
    }

    async fn consume_kind(
        &self,
        runtime: &Runtime,
        kind: &'static str,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let name = format!("{}:{kind}", runtime.worker());
        let signal = async move {
            shutdown.cancelled().await;
            Ok::<(), std::io::Error>(())
        };
        match &*self.0 {
            // An idle storage otherwise parks until its next heartbeat (seconds): poll instead.
            Backend::Redis {
                conn, prefix, poll, ..
            } => WorkerBuilder::new(name)
                .backend(Self::redis_storage(conn, prefix, kind).poll_with_interval(*poll))
                .data(runtime.clone())
                .data(Kind(kind))
                .build(handle)
                .run_until(signal)
                .await
                .map_err(|e| anyhow::anyhow!("{e}")),
            Backend::Sqlite {
                pool, poll, prefix, ..
            } => WorkerBuilder::new(name)
                .backend(Self::sqlite_storage(pool, prefix, kind).poll_with_interval(*poll))
                .data(runtime.clone())
                .data(Kind(kind))
                .build(handle)
                .run_until(signal)
                .await
                .map_err(|e| anyhow::anyhow!("{e}")),
        }
    }
}

/// The embedded queue lives in a SQLite file beside the database (`wxpilot.db` →
/// `wxpilot-queue.db`): apalis names its table `Jobs`, which SQLite would confuse with ours.
pub fn queue_file_url(database_url: &str) -> String {
    let (path, query) = database_url.split_once('?').unwrap_or((database_url, ""));
    let queue_path = match path.strip_suffix(".db") {
        Some(stem) => format!("{stem}-queue.db"),
        None => format!("{path}-queue"),
    };
    if query.is_empty() {
        queue_path
    } else {
        format!("{queue_path}?{query}")
    }
}

async fn open_queue_file(
    database_url: &secrecy::SecretString,
) -> anyhow::Result<apalis_sqlite::SqlitePool> {
    use sea_orm::sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    use secrecy::ExposeSecret;
    use std::str::FromStr;
    let url = queue_file_url(database_url.expose_secret());
    let options = SqliteConnectOptions::from_str(&url)
        .with_context(|| format!("the embedded queue's database URL {url:?}"))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10));
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .with_context(|| format!("opening the embedded queue at {url}"))
}

#[derive(Clone, Copy)]
struct Kind(&'static str);

async fn handle(
    message: JobMessage,
    runtime: Data<Runtime>,
    kind: Data<Kind>,
) -> Result<(), BoxDynError> {
    runtime.accept(kind.0.0, message.job_id).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_file_sits_beside_the_database() {
        assert_eq!(
            queue_file_url("sqlite://./data/wxpilot.db?mode=rwc"),
            "sqlite://./data/wxpilot-queue.db?mode=rwc"
        );
        assert_eq!(queue_file_url("sqlite:/tmp/x"), "sqlite:/tmp/x-queue");
        assert_eq!(queue_name("wxpilot", "ping"), "wxpilot:ping");
    }
}
