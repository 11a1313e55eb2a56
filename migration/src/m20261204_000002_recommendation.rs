//! Personalised recommendation: the items an account recommends (articles, products), the
//! followers' interactions with them, and the latest recommendations per follower.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RecommendationItems {
    Table,
    Id,
    TenantId,
    AccountId,
    ExternalId,
    Title,
    Body,
    Embedding,
    Similar,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Interactions {
    Table,
    Id,
    TenantId,
    AccountId,
    FollowerOpenid,
    ItemId,
    Kind,
    Strength,
    EventId,
    OccurredAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Recommendations {
    Table,
    Id,
    TenantId,
    AccountId,
    FollowerOpenid,
    JobId,
    Items,
    CreatedAt,
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
/// WeChat openids are 28 characters; leave room for other identity schemes.
const OPENID_LEN: u32 = 64;
const EXTERNAL_ID_LEN: u32 = 128;

fn fk(
    name: &str,
    from: impl IntoIden + 'static,
    col: impl IntoIden + 'static,
    to: impl IntoIden + 'static,
    to_col: impl IntoIden + 'static,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from_tbl(from)
        .from_col(col)
        .to_tbl(to)
        .to_col(to_col)
        .on_delete(ForeignKeyAction::Cascade)
        .take()
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RecommendationItems::Table)
                    .col(string_len(RecommendationItems::Id, ID_LEN).primary_key())
                    .col(string_len(RecommendationItems::TenantId, ID_LEN))
                    .col(string_len(RecommendationItems::AccountId, ID_LEN))
                    .col(string_len(RecommendationItems::ExternalId, EXTERNAL_ID_LEN))
                    .col(string_len(RecommendationItems::Title, 500))
                    .col(text(RecommendationItems::Body))
                    // JSON array of floats from the inference crate, when computed.
                    .col(json_null(RecommendationItems::Embedding))
                    // JSON array of {item, score, basis} written by the recommend job.
                    .col(json_null(RecommendationItems::Similar))
                    .col(timestamp_with_time_zone(RecommendationItems::CreatedAt))
                    .col(timestamp_with_time_zone(RecommendationItems::UpdatedAt))
                    .foreign_key(&mut fk(
                        "fk_recommendation_items_tenant",
                        RecommendationItems::Table,
                        RecommendationItems::TenantId,
                        Tenants::Table,
                        Tenants::Id,
                    ))
                    .foreign_key(&mut fk(
                        "fk_recommendation_items_account",
                        RecommendationItems::Table,
                        RecommendationItems::AccountId,
                        OfficialAccounts::Table,
                        OfficialAccounts::Id,
                    ))
                    .take(),
            )
            .await?;
        // The caller's item id is unique per account: item uploads upsert on it.
        manager
            .create_index(
                Index::create()
                    .name("ux_recommendation_items_account_external")
                    .table(RecommendationItems::Table)
                    .col(RecommendationItems::AccountId)
                    .col(RecommendationItems::ExternalId)
                    .unique()
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Interactions::Table)
                    .col(string_len(Interactions::Id, ID_LEN).primary_key())
                    .col(string_len(Interactions::TenantId, ID_LEN))
                    .col(string_len(Interactions::AccountId, ID_LEN))
                    .col(string_len(Interactions::FollowerOpenid, OPENID_LEN))
                    .col(string_len(Interactions::ItemId, ID_LEN))
                    .col(string_len(Interactions::Kind, 32))
                    .col(double(Interactions::Strength))
                    .col(string_len_null(Interactions::EventId, EXTERNAL_ID_LEN))
                    .col(timestamp_with_time_zone(Interactions::OccurredAt))
                    .col(timestamp_with_time_zone(Interactions::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_interactions_tenant",
                        Interactions::Table,
                        Interactions::TenantId,
                        Tenants::Table,
                        Tenants::Id,
                    ))
                    .foreign_key(&mut fk(
                        "fk_interactions_account",
                        Interactions::Table,
                        Interactions::AccountId,
                        OfficialAccounts::Table,
                        OfficialAccounts::Id,
                    ))
                    .foreign_key(&mut fk(
                        "fk_interactions_item",
                        Interactions::Table,
                        Interactions::ItemId,
                        RecommendationItems::Table,
                        RecommendationItems::Id,
                    ))
                    .take(),
            )
            .await?;
        // Idempotent uploads: an event id is stored once per account. Rows without one are
        // not deduplicated (NULLs never collide in a unique index, on SQLite and Postgres).
        manager
            .create_index(
                Index::create()
                    .name("ux_interactions_account_event")
                    .table(Interactions::Table)
                    .col(Interactions::AccountId)
                    .col(Interactions::EventId)
                    .unique()
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_interactions_account_follower")
                    .table(Interactions::Table)
                    .col(Interactions::AccountId)
                    .col(Interactions::FollowerOpenid)
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Recommendations::Table)
                    .col(string_len(Recommendations::Id, ID_LEN).primary_key())
                    .col(string_len(Recommendations::TenantId, ID_LEN))
                    .col(string_len(Recommendations::AccountId, ID_LEN))
                    .col(string_len(Recommendations::FollowerOpenid, OPENID_LEN))
                    .col(string_len_null(Recommendations::JobId, ID_LEN))
                    // JSON array of {item, score, reason}, best first.
                    .col(json(Recommendations::Items))
                    .col(timestamp_with_time_zone(Recommendations::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_recommendations_tenant",
                        Recommendations::Table,
                        Recommendations::TenantId,
                        Tenants::Table,
                        Tenants::Id,
                    ))
                    .foreign_key(&mut fk(
                        "fk_recommendations_account",
                        Recommendations::Table,
                        Recommendations::AccountId,
                        OfficialAccounts::Table,
                        OfficialAccounts::Id,
                    ))
                    .take(),
            )
            .await?;
        // One current list per follower: each recommend run replaces it.
        manager
            .create_index(
                Index::create()
                    .name("ux_recommendations_account_follower")
                    .table(Recommendations::Table)
                    .col(Recommendations::AccountId)
                    .col(Recommendations::FollowerOpenid)
                    .unique()
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Recommendations::Table).take())
            .await?;
        manager
            .drop_table(Table::drop().table(Interactions::Table).take())
            .await?;
        manager
            .drop_table(Table::drop().table(RecommendationItems::Table).take())
            .await
    }
}
