//! Tenants, users, API keys, official accounts, campaigns and the audit log.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Name,
    Slug,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    TenantId,
    Email,
    Name,
    PasswordHash,
    Role,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    TenantId,
    Name,
    Prefix,
    KeyHash,
    Role,
    Scopes,
    CreatedBy,
    LastUsedAt,
    ExpiresAt,
    RevokedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum OfficialAccounts {
    Table,
    Id,
    TenantId,
    Name,
    OriginalId,
    AppId,
    AppSecretEnc,
    CallbackToken,
    EncodingAesKeyEnc,
    EncryptionMode,
    Verified,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Campaigns {
    Table,
    Id,
    TenantId,
    AccountId,
    Name,
    Brief,
    Audience,
    Goals,
    StartDate,
    EndDate,
    Status,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    TenantId,
    Actor,
    Action,
    ResourceType,
    ResourceId,
    Changes,
    RequestId,
    CreatedAt,
}

/// ULIDs are 26 characters.
const ID_LEN: u32 = 26;

fn id_pk<T: IntoIden>(col: T) -> ColumnDef {
    string_len(col, ID_LEN).primary_key().take()
}

fn tenant_fk<T: IntoIden + 'static>(table: T, name: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from_tbl(table)
        .from_col(Alias::new("tenant_id"))
        .to_tbl(Tenants::Table)
        .to_col(Tenants::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .take()
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tenants::Table)
                    .col(id_pk(Tenants::Id))
                    .col(string_len(Tenants::Name, 200))
                    .col(string_len_uniq(Tenants::Slug, 64))
                    .col(timestamp_with_time_zone(Tenants::CreatedAt))
                    .col(timestamp_with_time_zone(Tenants::UpdatedAt))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(id_pk(Users::Id))
                    .col(string_len(Users::TenantId, ID_LEN))
                    .col(string_len(Users::Email, 254))
                    .col(string_len(Users::Name, 200))
                    .col(string_len(Users::PasswordHash, 200))
                    .col(string_len(Users::Role, 16))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::UpdatedAt))
                    .foreign_key(&mut tenant_fk(Users::Table, "fk_users_tenant"))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_users_tenant_email")
                    .table(Users::Table)
                    .col(Users::TenantId)
                    .col(Users::Email)
                    .unique()
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(id_pk(ApiKeys::Id))
                    .col(string_len(ApiKeys::TenantId, ID_LEN))
                    .col(string_len(ApiKeys::Name, 200))
                    .col(string_len(ApiKeys::Prefix, 32))
                    .col(string_len_uniq(ApiKeys::KeyHash, 64))
                    .col(string_len(ApiKeys::Role, 16))
                    .col(json(ApiKeys::Scopes))
                    .col(string_len(ApiKeys::CreatedBy, 64))
                    .col(timestamp_with_time_zone_null(ApiKeys::LastUsedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::ExpiresAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
                    .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                    .foreign_key(&mut tenant_fk(ApiKeys::Table, "fk_api_keys_tenant"))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_api_keys_tenant")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::TenantId)
                    .col(ApiKeys::Id)
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(OfficialAccounts::Table)
                    .col(id_pk(OfficialAccounts::Id))
                    .col(string_len(OfficialAccounts::TenantId, ID_LEN))
                    .col(string_len(OfficialAccounts::Name, 200))
                    .col(string_len(OfficialAccounts::OriginalId, 64))
                    .col(string_len(OfficialAccounts::AppId, 18))
                    .col(text(OfficialAccounts::AppSecretEnc))
                    .col(string_len(OfficialAccounts::CallbackToken, 32))
                    .col(text(OfficialAccounts::EncodingAesKeyEnc))
                    .col(string_len(OfficialAccounts::EncryptionMode, 16))
                    .col(boolean(OfficialAccounts::Verified))
                    .col(timestamp_with_time_zone(OfficialAccounts::CreatedAt))
                    .col(timestamp_with_time_zone(OfficialAccounts::UpdatedAt))
                    .foreign_key(&mut tenant_fk(
                        OfficialAccounts::Table,
                        "fk_official_accounts_tenant",
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_official_accounts_tenant_app_id")
                    .table(OfficialAccounts::Table)
                    .col(OfficialAccounts::TenantId)
                    .col(OfficialAccounts::AppId)
                    .unique()
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Campaigns::Table)
                    .col(id_pk(Campaigns::Id))
                    .col(string_len(Campaigns::TenantId, ID_LEN))
                    .col(string_len(Campaigns::AccountId, ID_LEN))
                    .col(string_len(Campaigns::Name, 200))
                    .col(text(Campaigns::Brief))
                    .col(text(Campaigns::Audience))
                    .col(json(Campaigns::Goals))
                    .col(date_null(Campaigns::StartDate))
                    .col(date_null(Campaigns::EndDate))
                    .col(string_len(Campaigns::Status, 16))
                    .col(timestamp_with_time_zone(Campaigns::CreatedAt))
                    .col(timestamp_with_time_zone(Campaigns::UpdatedAt))
                    .foreign_key(&mut tenant_fk(Campaigns::Table, "fk_campaigns_tenant"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_campaigns_account")
                            .from_tbl(Campaigns::Table)
                            .from_col(Campaigns::AccountId)
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
                    .name("ix_campaigns_tenant")
                    .table(Campaigns::Table)
                    .col(Campaigns::TenantId)
                    .col(Campaigns::Id)
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(id_pk(AuditEvents::Id))
                    .col(string_len(AuditEvents::TenantId, ID_LEN))
                    .col(string_len(AuditEvents::Actor, 64))
                    .col(string_len(AuditEvents::Action, 16))
                    .col(string_len(AuditEvents::ResourceType, 32))
                    .col(string_len(AuditEvents::ResourceId, ID_LEN))
                    .col(json(AuditEvents::Changes))
                    .col(string_len_null(AuditEvents::RequestId, 64))
                    .col(timestamp_with_time_zone(AuditEvents::CreatedAt))
                    .foreign_key(&mut tenant_fk(AuditEvents::Table, "fk_audit_events_tenant"))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_audit_events_tenant")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::TenantId)
                    .col(AuditEvents::Id)
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditEvents::Table.into_iden(),
            Campaigns::Table.into_iden(),
            OfficialAccounts::Table.into_iden(),
            ApiKeys::Table.into_iden(),
            Users::Table.into_iden(),
            Tenants::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().take())
                .await?;
        }
        Ok(())
    }
}
