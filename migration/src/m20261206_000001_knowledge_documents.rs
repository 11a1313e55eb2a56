//! Documents in the knowledge base: a document is stored as its chunks, each a knowledge
//! entry of kind `document` that knows its document, its Markdown heading path and its place.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum KnowledgeEntries {
    Table,
    AccountId,
    DocumentId,
    Heading,
    Ordinal,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        for column in [
            string_len_null(KnowledgeEntries::DocumentId, 26),
            text_null(KnowledgeEntries::Heading),
            integer_null(KnowledgeEntries::Ordinal),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(KnowledgeEntries::Table)
                        .add_column(&mut column)
                        .take(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_knowledge_entries_document")
                    .table(KnowledgeEntries::Table)
                    .col(KnowledgeEntries::AccountId)
                    .col(KnowledgeEntries::DocumentId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_knowledge_entries_document")
                    .table(KnowledgeEntries::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            KnowledgeEntries::Ordinal,
            KnowledgeEntries::Heading,
            KnowledgeEntries::DocumentId,
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
