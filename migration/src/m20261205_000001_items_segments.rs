//! What the recommendation API needs beyond the first schema: items carry their kind, tags,
//! URL and publication time (the callback maps menu clicks and article views to items by
//! id and URL), and segments record the followers selected for a WeChat tag.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RecommendationItems {
    Table,
    AccountId,
    ItemKind,
    Tags,
    Url,
    PublishedAt,
    EmbeddingModel,
}

#[derive(DeriveIden)]
enum Segments {
    Table,
    Id,
    TenantId,
    AccountId,
    Name,
    TagName,
    Definition,
    Status,
    WechatTagId,
    MemberCount,
    Members,
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
enum OfficialAccounts {
    Table,
    Id,
}

const ID_LEN: u32 = 26;

/// One column per statement: SQLite's ALTER TABLE adds one at a time.
async fn add_item_column(manager: &SchemaManager<'_>, column: ColumnDef) -> Result<(), DbErr> {
    manager
        .alter_table(
            Table::alter()
                .table(RecommendationItems::Table)
                .add_column(column)
                .take(),
        )
        .await
}

async fn drop_item_column(
    manager: &SchemaManager<'_>,
    column: RecommendationItems,
) -> Result<(), DbErr> {
    manager
        .alter_table(
            Table::alter()
                .table(RecommendationItems::Table)
                .drop_column(column)
                .take(),
        )
        .await
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // `article` or `product`.
        add_item_column(
            manager,
            string_len(RecommendationItems::ItemKind, 16)
                .default("article")
                .take(),
        )
        .await?;
        // JSON array of strings.
        add_item_column(manager, json_null(RecommendationItems::Tags)).await?;
        add_item_column(manager, string_len_null(RecommendationItems::Url, 2048)).await?;
        add_item_column(
            manager,
            timestamp_with_time_zone_null(RecommendationItems::PublishedAt),
        )
        .await?;
        // Which model made `embedding` (a change of model recomputes them).
        add_item_column(
            manager,
            string_len_null(RecommendationItems::EmbeddingModel, 128),
        )
        .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_recommendation_items_account_url")
                    .table(RecommendationItems::Table)
                    .col(RecommendationItems::AccountId)
                    .col(RecommendationItems::Url)
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Segments::Table)
                    // The id of the job that builds it.
                    .col(string_len(Segments::Id, ID_LEN).primary_key())
                    .col(string_len(Segments::TenantId, ID_LEN))
                    .col(string_len(Segments::AccountId, ID_LEN))
                    .col(string_len(Segments::Name, 64))
                    .col(string_len(Segments::TagName, 64))
                    // The request: items or topic, and the cutoff.
                    .col(json(Segments::Definition))
                    .col(string_len(Segments::Status, 16))
                    .col(big_integer_null(Segments::WechatTagId))
                    .col(integer(Segments::MemberCount))
                    // JSON array of {openid, affinity}, highest first.
                    .col(json_null(Segments::Members))
                    .col(text_null(Segments::Error))
                    .col(timestamp_with_time_zone(Segments::CreatedAt))
                    .col(timestamp_with_time_zone(Segments::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_segments_tenant")
                            .from_tbl(Segments::Table)
                            .from_col(Segments::TenantId)
                            .to_tbl(Tenants::Table)
                            .to_col(Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_segments_account")
                            .from_tbl(Segments::Table)
                            .from_col(Segments::AccountId)
                            .to_tbl(OfficialAccounts::Table)
                            .to_col(OfficialAccounts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_segments_account_created")
                    .table(Segments::Table)
                    .col(Segments::AccountId)
                    .col(Segments::CreatedAt)
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Segments::Table).take())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ix_recommendation_items_account_url")
                    .table(RecommendationItems::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            RecommendationItems::EmbeddingModel,
            RecommendationItems::PublishedAt,
            RecommendationItems::Url,
            RecommendationItems::Tags,
            RecommendationItems::ItemKind,
        ] {
            drop_item_column(manager, column).await?;
        }
        Ok(())
    }
}
