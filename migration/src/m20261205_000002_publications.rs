//! Publications: one per content, the state of publishing it to WeChat step by step (cover
//! and body images uploaded, the draft added, the publish submitted, the outcome), so a
//! retried job resumes after the last step it finished and never repeats one.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Publications {
    Table,
    Id,
    TenantId,
    AccountId,
    ContentId,
    Version,
    JobId,
    Status,
    ThumbMediaId,
    Images,
    DraftMediaId,
    PublishId,
    ArticleId,
    ArticleUrl,
    Error,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Contents {
    Table,
    Id,
}

const ID_LEN: u32 = 26;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Publications::Table)
                    .col(string_len(Publications::Id, ID_LEN).primary_key())
                    .col(string_len(Publications::TenantId, ID_LEN))
                    .col(string_len(Publications::AccountId, ID_LEN))
                    .col(string_len(Publications::ContentId, ID_LEN))
                    // The content version published.
                    .col(integer(Publications::Version))
                    .col(string_len(Publications::JobId, ID_LEN))
                    // uploading, drafted, submitting, submitted, published, failed.
                    .col(string_len(Publications::Status, 16))
                    .col(string_len_null(Publications::ThumbMediaId, 128))
                    // JSON object: original image URL → WeChat image URL.
                    .col(json(Publications::Images))
                    .col(string_len_null(Publications::DraftMediaId, 128))
                    .col(string_len_null(Publications::PublishId, 64))
                    .col(string_len_null(Publications::ArticleId, 128))
                    .col(string_len_null(Publications::ArticleUrl, 2048))
                    .col(text_null(Publications::Error))
                    .col(timestamp_with_time_zone(Publications::CreatedAt))
                    .col(timestamp_with_time_zone(Publications::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_publications_tenant")
                            .from_tbl(Publications::Table)
                            .from_col(Publications::TenantId)
                            .to_tbl(Tenants::Table)
                            .to_col(Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_publications_content")
                            .from_tbl(Publications::Table)
                            .from_col(Publications::ContentId)
                            .to_tbl(Contents::Table)
                            .to_col(Contents::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .take(),
            )
            .await?;
        // A content is published once: a second publish request finds this row.
        manager
            .create_index(
                Index::create()
                    .name("ux_publications_content")
                    .table(Publications::Table)
                    .col(Publications::ContentId)
                    .unique()
                    .take(),
            )
            .await?;
        // PUBLISHJOBFINISH names the publish job only.
        manager
            .create_index(
                Index::create()
                    .name("ix_publications_account_publish")
                    .table(Publications::Table)
                    .col(Publications::AccountId)
                    .col(Publications::PublishId)
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Publications::Table).take())
            .await
    }
}
