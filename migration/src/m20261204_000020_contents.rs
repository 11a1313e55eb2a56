//! Content generation: each account's brand voice, generated contents (articles, Moments
//! copy, menu replies) with their review state and compliance report, and every version of
//! a content's text.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum BrandVoices {
    Table,
    Id,
    TenantId,
    AccountId,
    StyleGuide,
    PreferredWords,
    BannedWords,
    Signature,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Contents {
    Table,
    Id,
    TenantId,
    AccountId,
    CampaignId,
    Kind,
    State,
    CurrentVersion,
    ComplianceReport,
    GenerationJobId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ContentVersions {
    Table,
    Id,
    TenantId,
    ContentId,
    Version,
    Body,
    CreatedBy,
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

#[derive(DeriveIden)]
enum Campaigns {
    Table,
    Id,
}

const ID_LEN: u32 = 26;
/// Kinds and states are short snake_case words.
const WORD_LEN: u32 = 32;

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
                    .table(BrandVoices::Table)
                    .col(string_len(BrandVoices::Id, ID_LEN).primary_key())
                    .col(string_len(BrandVoices::TenantId, ID_LEN))
                    .col(string_len(BrandVoices::AccountId, ID_LEN))
                    .col(text(BrandVoices::StyleGuide))
                    // JSON arrays of strings.
                    .col(json(BrandVoices::PreferredWords))
                    .col(json(BrandVoices::BannedWords))
                    .col(text(BrandVoices::Signature))
                    .col(timestamp_with_time_zone(BrandVoices::CreatedAt))
                    .col(timestamp_with_time_zone(BrandVoices::UpdatedAt))
                    .foreign_key(&mut fk(
                        "fk_brand_voices_tenant",
                        BrandVoices::Table,
                        BrandVoices::TenantId,
                        Tenants::Table,
                        Tenants::Id,
                    ))
                    .foreign_key(&mut fk(
                        "fk_brand_voices_account",
                        BrandVoices::Table,
                        BrandVoices::AccountId,
                        OfficialAccounts::Table,
                        OfficialAccounts::Id,
                    ))
                    .take(),
            )
            .await?;
        // One voice per account: PUT upserts on it.
        manager
            .create_index(
                Index::create()
                    .name("ux_brand_voices_account")
                    .table(BrandVoices::Table)
                    .col(BrandVoices::AccountId)
                    .unique()
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Contents::Table)
                    .col(string_len(Contents::Id, ID_LEN).primary_key())
                    .col(string_len(Contents::TenantId, ID_LEN))
                    .col(string_len_null(Contents::AccountId, ID_LEN))
                    .col(string_len(Contents::CampaignId, ID_LEN))
                    // article | moments | menu_reply
                    .col(string_len(Contents::Kind, WORD_LEN))
                    // draft | approved | published | rejected | needs_review
                    .col(string_len(Contents::State, WORD_LEN))
                    .col(integer(Contents::CurrentVersion))
                    .col(json(Contents::ComplianceReport))
                    .col(string_len_null(Contents::GenerationJobId, ID_LEN))
                    .col(timestamp_with_time_zone(Contents::CreatedAt))
                    .col(timestamp_with_time_zone(Contents::UpdatedAt))
                    .foreign_key(&mut fk(
                        "fk_contents_tenant",
                        Contents::Table,
                        Contents::TenantId,
                        Tenants::Table,
                        Tenants::Id,
                    ))
                    .foreign_key(&mut fk(
                        "fk_contents_campaign",
                        Contents::Table,
                        Contents::CampaignId,
                        Campaigns::Table,
                        Campaigns::Id,
                    ))
                    .take(),
            )
            .await?;
        // Lists filter by tenant and campaign or state, newest first.
        manager
            .create_index(
                Index::create()
                    .name("ix_contents_tenant_campaign")
                    .table(Contents::Table)
                    .col(Contents::TenantId)
                    .col(Contents::CampaignId)
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_contents_tenant_state")
                    .table(Contents::Table)
                    .col(Contents::TenantId)
                    .col(Contents::State)
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ContentVersions::Table)
                    .col(string_len(ContentVersions::Id, ID_LEN).primary_key())
                    .col(string_len(ContentVersions::TenantId, ID_LEN))
                    .col(string_len(ContentVersions::ContentId, ID_LEN))
                    .col(integer(ContentVersions::Version))
                    // {title, author, digest, html} for articles, {text} otherwise.
                    .col(json(ContentVersions::Body))
                    // A user id, an API key id, or `job:<id>` for generated versions.
                    .col(string_len(ContentVersions::CreatedBy, 64))
                    .col(timestamp_with_time_zone(ContentVersions::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_content_versions_content",
                        ContentVersions::Table,
                        ContentVersions::ContentId,
                        Contents::Table,
                        Contents::Id,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_content_versions_content_version")
                    .table(ContentVersions::Table)
                    .col(ContentVersions::ContentId)
                    .col(ContentVersions::Version)
                    .unique()
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ContentVersions::Table).take())
            .await?;
        manager
            .drop_table(Table::drop().table(Contents::Table).take())
            .await?;
        manager
            .drop_table(Table::drop().table(BrandVoices::Table).take())
            .await
    }
}
