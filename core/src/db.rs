//! Database connections and migrations, for SQLite (embedded) and Postgres alike.

use std::time::Duration;

use anyhow::Context;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use secrecy::{ExposeSecret, SecretString};
use wxpilot_migration::{Migrator, MigratorTrait};

use crate::settings::{DatabaseSettings, redact_url};

/// Opens a pool on `url`. For SQLite the file's folder is created, and the pragmas are
/// set for a server: WAL, `synchronous = NORMAL`, foreign keys on, a busy timeout.
pub async fn connect(
    url: &SecretString,
    pool: &DatabaseSettings,
) -> anyhow::Result<DatabaseConnection> {
    let raw = url.expose_secret();
    let mut options = ConnectOptions::new(raw.to_owned());
    options
        .max_connections(pool.max_connections.max(1))
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(pool.acquire_timeout_secs.max(1)))
        .sqlx_logging(false);
    if raw.starts_with("sqlite:") {
        ensure_sqlite_folder(raw)?;
        options.map_sqlx_sqlite_opts(|o| {
            use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
        });
    }
    Database::connect(options)
        .await
        .with_context(|| format!("connecting to the database at {}", redact_url(raw)))
}

fn ensure_sqlite_folder(url: &str) -> anyhow::Result<()> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        crate::secrets::create_private_dir(dir)
            .with_context(|| format!("creating the database folder {}", dir.display()))?;
    }
    Ok(())
}

/// Starts a transaction that will write. On SQLite it takes the write lock at `BEGIN`
/// (`BEGIN IMMEDIATE`), so concurrent writers wait for each other (up to the busy timeout)
/// instead of failing with "database is locked" when a read lock cannot be upgraded.
pub async fn begin_write<C: TransactionTrait>(conn: &C) -> Result<C::Transaction, DbErr> {
    conn.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}

/// Rows of one multi-row insert in [`insert_chunked`]: with at most 16 columns, under
/// SQLite's 32,766 bound values (Postgres allows 65,535).
const ROWS_PER_INSERT: usize = 1_000;

/// Inserts `rows` with as few statements as the databases' limits on bound values allow
/// (a batch of jobs may carry many ledger entries or webhook deliveries).
pub async fn insert_chunked<A, C>(conn: &C, rows: Vec<A>) -> Result<(), DbErr>
where
    A: sea_orm::ActiveModelTrait + Send,
    C: sea_orm::ConnectionTrait,
{
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        <A::Entity as sea_orm::EntityTrait>::insert_many(rows.by_ref().take(ROWS_PER_INSERT))
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// Serialises writers of one tenant's rows on Postgres (`SELECT … FOR UPDATE` on the
/// tenant); on SQLite `begin_write` already serialises every writer.
pub async fn lock_tenant(txn: &DatabaseTransaction, tenant_id: &str) -> Result<(), DbErr> {
    use sea_orm::{EntityTrait, QuerySelect};
    if txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        wxpilot_entity::tenant::Entity::find_by_id(tenant_id)
            .lock_exclusive()
            .one(txn)
            .await?;
    }
    Ok(())
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None)
        .await
        .context("running database migrations")
}

/// Names of migrations not yet applied.
pub async fn pending_migrations(db: &DatabaseConnection) -> anyhow::Result<Vec<String>> {
    Ok(Migrator::get_pending_migrations(db)
        .await?
        .iter()
        .map(|m| m.name().to_owned())
        .collect())
}

/// A cheap round trip, for readiness checks.
pub async fn ping(db: &DatabaseConnection) -> anyhow::Result<()> {
    db.execute_unprepared("SELECT 1")
        .await
        .map(|_| ())
        .context("database ping")
}
