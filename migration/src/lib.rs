//! Schema migrations. Each migration is frozen once released: later changes add a new one.
//! They run on SQLite (the embedded default) and on Postgres alike, so they use only
//! portable column types: ids are ULID strings, enums are short strings, lists are JSON.

pub use sea_orm_migration::prelude::*;

mod m20261203_000001_foundation;
mod m20261203_000002_jobs;
mod m20261203_000003_job_trace;
mod m20261204_000001_metrics_forecasts;
mod m20261204_000002_recommendation;
mod m20261204_000010_customer_service;
mod m20261204_000020_contents;
mod m20261205_000001_items_segments;
mod m20261205_000002_publications;
mod m20261205_000003_welcome_source;
mod m20261206_000001_knowledge_documents;
mod m20261206_000002_knowledge_embeddings;

/// All migrations in order.
pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261203_000001_foundation::Migration),
            Box::new(m20261203_000002_jobs::Migration),
            Box::new(m20261203_000003_job_trace::Migration),
            Box::new(m20261204_000001_metrics_forecasts::Migration),
            Box::new(m20261204_000002_recommendation::Migration),
            Box::new(m20261204_000010_customer_service::Migration),
            Box::new(m20261204_000020_contents::Migration),
            Box::new(m20261205_000001_items_segments::Migration),
            Box::new(m20261205_000002_publications::Migration),
            Box::new(m20261205_000003_welcome_source::Migration),
            Box::new(m20261206_000001_knowledge_documents::Migration),
            Box::new(m20261206_000002_knowledge_embeddings::Migration),
        ]
    }
}
