//! The recommendation schema migrates up and down on SQLite, and its unique indexes do what
//! the ingestion relies on: an event id is stored once per account, rows without one are not
//! deduplicated, and an account has one recommendation list per follower.

use sea_orm_migration::MigratorTrait;
use sea_orm_migration::sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbErr};
use wxpilot_migration::Migrator;

const NOW: &str = "'2026-12-04T00:00:00+00:00'";

async fn migrated() -> Result<DatabaseConnection, DbErr> {
    let db = Database::connect("sqlite::memory:").await?;
    Migrator::up(&db, None).await?;
    Ok(db)
}

fn interaction(id: &str, event: Option<&str>) -> String {
    let event = event
        .map(|e| format!("'{e}'"))
        .unwrap_or_else(|| "NULL".into());
    format!(
        "INSERT INTO interactions (id, tenant_id, account_id, follower_openid, item_id, kind, strength, event_id, occurred_at, created_at) \
         VALUES ('{id}', 'T', 'A', 'o1', 'I', 'read', 1.0, {event}, {NOW}, {NOW})"
    )
}

#[tokio::test]
async fn event_ids_are_unique_per_account_and_nulls_are_not() {
    let db = migrated().await.unwrap();
    // Foreign keys would need a tenant, account and item; the index behaviour is what is
    // tested here, so they stay off (SQLite's default).
    db.execute_unprepared("PRAGMA foreign_keys = OFF")
        .await
        .unwrap();
    db.execute_unprepared(&interaction("1", Some("e1")))
        .await
        .unwrap();
    assert!(
        db.execute_unprepared(&interaction("2", Some("e1")))
            .await
            .is_err()
    );
    db.execute_unprepared(&interaction("3", None))
        .await
        .unwrap();
    db.execute_unprepared(&interaction("4", None))
        .await
        .unwrap();
    db.execute_unprepared(&interaction("5", Some("e2")))
        .await
        .unwrap();

    let rec = |id: &str| {
        format!(
            "INSERT INTO recommendations (id, tenant_id, account_id, follower_openid, job_id, items, created_at) \
             VALUES ('{id}', 'T', 'A', 'o1', NULL, '[]', {NOW})"
        )
    };
    db.execute_unprepared(&rec("r1")).await.unwrap();
    assert!(db.execute_unprepared(&rec("r2")).await.is_err());

    let item = |id: &str| {
        format!(
            "INSERT INTO recommendation_items (id, tenant_id, account_id, external_id, title, body, embedding, similar, created_at, updated_at) \
             VALUES ('{id}', 'T', 'A', 'article-1', 'title', '', NULL, NULL, {NOW}, {NOW})"
        )
    };
    db.execute_unprepared(&item("i1")).await.unwrap();
    assert!(db.execute_unprepared(&item("i2")).await.is_err());
}

#[tokio::test]
async fn migrates_down_and_up_again() {
    let db = migrated().await.unwrap();
    Migrator::down(&db, None).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    db.execute_unprepared("SELECT id, similar, embedding FROM recommendation_items")
        .await
        .unwrap();
}
