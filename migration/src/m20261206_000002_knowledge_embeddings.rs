//! Embeddings of knowledge entries for hybrid retrieval: the vector (a JSON array) and the
//! model that made it, so that a change of model re-embeds what the old one made.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum KnowledgeEntries {
    Table,
    Embedding,
    EmbeddingModel,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        for mut column in [
            json_null(KnowledgeEntries::Embedding),
            string_len_null(KnowledgeEntries::EmbeddingModel, 128),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(KnowledgeEntries::Table)
                        .add_column(&mut column)
                        .take(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            KnowledgeEntries::EmbeddingModel,
            KnowledgeEntries::Embedding,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(KnowledgeEntries::Table)
                        .drop_column(column)
                        .take(),
                )
                .await?;
        }
        Ok(())
    }
}
