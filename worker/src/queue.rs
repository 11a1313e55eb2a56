//! The queue: one apalis storage per job kind, on Redis when `REDIS_URL` is set and on the
//! embedded SQLite database otherwise. It carries only job ids; see `wxpilot_core::jobs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use apalis::prelude::*;
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
pub fn queue_name(kind: &str) -> String {
    format!("wxpilot:{kind}")
}

type RedisQueue = RedisStorage<JobMessage, ConnectionManager>;
type SqliteQueue = SqliteStorage<JobMessage>;

enum Backend {
    Redis {
        conn: ConnectionManager,
        storages: Mutex<HashMap<String, RedisQueue>>,
    },
    Sqlite {
        pool: apalis_sqlite::SqlitePool,
        storages: Mutex<HashMap<String, SqliteQueue>>,
        poll: Duration,
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
            })));
        }
        anyhow::ensure!(
            settings.uses_sqlite(),
            "with a Postgres database the job queue needs Redis: set REDIS_URL"
        );
        let pool = db.get_sqlite_connection_pool().clone();
        // Only the storage's tables: its `setup` would also switch our pragmas (synchronous = OFF).
        SqliteStorage::<()>::migrations()
            .run(&pool)
            .await
            .context("creating the embedded queue's tables")?;
        Ok(Self(Arc::new(Backend::Sqlite {
            pool,
            storages: Mutex::new(HashMap::new()),
            poll: Duration::from_millis(settings.jobs.poll_interval_ms.max(10)),
        })))
    }

    /// `redis` or `sqlite`.
    pub fn backend_name(&self) -> &'static str {
        match &*self.0 {
            Backend::Redis { .. } => "redis",
            Backend::Sqlite { .. } => "sqlite",
        }
    }

    fn redis_storage(conn: &ConnectionManager, kind: &str) -> RedisQueue {
        let config = apalis_redis::Config::default()
            .queue(queue_name(kind))
            .persist_results(false)
            .emit_events(false)
            .heartbeat_interval(Duration::from_secs(5));
        RedisStorage::new(conn.clone()).with_config(config)
    }

    fn sqlite_storage(pool: &apalis_sqlite::SqlitePool, kind: &str) -> SqliteQueue {
        let config = apalis_sqlite::Config::default()
            .queue(queue_name(kind))
            .persist_results(false)
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
        match &*self.0 {
            Backend::Redis { conn, storages } => {
                let mut storages = storages.lock().await;
                let storage = storages
                    .entry(kind.to_owned())
                    .or_insert_with(|| Self::redis_storage(conn, kind));
                storage
                    .push_task(task)
                    .await
                    .map_err(|e| anyhow::anyhow!("pushing to Redis: {e}"))
            }
            Backend::Sqlite { pool, storages, .. } => {
                let mut storages = storages.lock().await;
                let storage = storages
                    .entry(kind.to_owned())
                    .or_insert_with(|| Self::sqlite_storage(pool, kind));
                storage
                    .push_task(task)
                    .await
                    .map_err(|e| anyhow::anyhow!("pushing to the embedded queue: {e}"))
            }
        }
    }

    /// Consumes every kind the runtime runs until `shutdown`.
    pub async fn consume(
        &self,
        runtime: Runtime,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut workers = tokio::task::JoinSet::new();
        for kind in runtime.kinds() {
            let name = format!("{}:{kind}", runtime.worker());
            let stop = shutdown.clone();
            let signal = async move {
                stop.cancelled().await;
                Ok::<(), std::io::Error>(())
            };
            let rt = runtime.clone();
            match &*self.0 {
                Backend::Redis { conn, .. } => {
                    let worker = WorkerBuilder::new(name)
                        .backend(Self::redis_storage(conn, kind))
                        .data(rt)
                        .data(Kind(kind))
                        .build(handle);
                    workers.spawn(async move {
                        worker
                            .run_until(signal)
                            .await
                            .map_err(|e| anyhow::anyhow!("{e}"))
                    });
                }
                Backend::Sqlite { pool, poll, .. } => {
                    let worker = WorkerBuilder::new(name)
                        .backend(Self::sqlite_storage(pool, kind).poll_with_interval(*poll))
                        .data(rt)
                        .data(Kind(kind))
                        .build(handle);
                    workers.spawn(async move {
                        worker
                            .run_until(signal)
                            .await
                            .map_err(|e| anyhow::anyhow!("{e}"))
                    });
                }
            }
        }
        let mut first_error = None;
        while let Some(done) = workers.join_next().await {
            let result = done.map_err(anyhow::Error::from).and_then(|r| r);
            if let Err(e) = result {
                tracing::error!(error = %format!("{e:#}"), "queue consumer stopped with an error");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
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
