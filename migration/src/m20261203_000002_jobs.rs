//! Durable jobs, the usage ledger, webhook endpoints and their deliveries.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    TenantId,
    Kind,
    Payload,
    Status,
    Attempts,
    MaxAttempts,
    ProgressPercent,
    ProgressMessage,
    Result,
    Error,
    IdempotencyKey,
    RequestHash,
    RunAt,
    LeaseOwner,
    LeaseExpiresAt,
    CancelRequested,
    DispatchedAt,
    CreatedAt,
    StartedAt,
    FinishedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum UsageRecords {
    Table,
    Id,
    TenantId,
    JobId,
    Metric,
    Quantity,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    TenantId,
    Url,
    Events,
    SecretEnc,
    Active,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    TenantId,
    EndpointId,
    Event,
    JobId,
    Payload,
    Status,
    Attempts,
    NextAttemptAt,
    LastStatusCode,
    LastError,
    CreatedAt,
    DeliveredAt,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    MonthlyTokenBudget,
}

const ID_LEN: u32 = 26;

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
                    .table(Jobs::Table)
                    .col(string_len(Jobs::Id, ID_LEN).primary_key())
                    .col(string_len(Jobs::TenantId, ID_LEN))
                    .col(string_len(Jobs::Kind, 32))
                    .col(json(Jobs::Payload))
                    .col(string_len(Jobs::Status, 16))
                    .col(integer(Jobs::Attempts))
                    .col(integer(Jobs::MaxAttempts))
                    .col(integer(Jobs::ProgressPercent))
                    .col(text_null(Jobs::ProgressMessage))
                    .col(json_null(Jobs::Result))
                    .col(text_null(Jobs::Error))
                    .col(string_len_null(Jobs::IdempotencyKey, 255))
                    .col(string_len_null(Jobs::RequestHash, 64))
                    .col(timestamp_with_time_zone(Jobs::RunAt))
                    .col(string_len_null(Jobs::LeaseOwner, 128))
                    .col(timestamp_with_time_zone_null(Jobs::LeaseExpiresAt))
                    .col(boolean(Jobs::CancelRequested))
                    .col(timestamp_with_time_zone_null(Jobs::DispatchedAt))
                    .col(timestamp_with_time_zone(Jobs::CreatedAt))
                    .col(timestamp_with_time_zone_null(Jobs::StartedAt))
                    .col(timestamp_with_time_zone_null(Jobs::FinishedAt))
                    .col(timestamp_with_time_zone(Jobs::UpdatedAt))
                    .foreign_key(&mut fk(
                        "fk_jobs_tenant",
                        Jobs::Table,
                        Jobs::TenantId,
                        Tenants::Table,
                        Tenants::Id,
                    ))
                    .take(),
            )
            .await?;
        for (name, cols, unique) in [
            ("ix_jobs_tenant", vec![Jobs::TenantId, Jobs::Id], false),
            (
                "ix_jobs_status_run_at",
                vec![Jobs::Status, Jobs::RunAt],
                false,
            ),
            (
                "ix_jobs_tenant_status",
                vec![Jobs::TenantId, Jobs::Status],
                false,
            ),
            (
                "ux_jobs_tenant_idempotency",
                vec![Jobs::TenantId, Jobs::IdempotencyKey],
                true,
            ),
        ] {
            let mut index = Index::create().name(name).table(Jobs::Table).take();
            for col in cols {
                index.col(col);
            }
            if unique {
                index.unique();
            }
            manager.create_index(index).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(UsageRecords::Table)
                    .col(string_len(UsageRecords::Id, ID_LEN).primary_key())
                    .col(string_len(UsageRecords::TenantId, ID_LEN))
                    .col(string_len_null(UsageRecords::JobId, ID_LEN))
                    .col(string_len(UsageRecords::Metric, 64))
                    .col(big_integer(UsageRecords::Quantity))
                    .col(timestamp_with_time_zone(UsageRecords::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_usage_tenant",
                        UsageRecords::Table,
                        UsageRecords::TenantId,
                        Tenants::Table,
                        Tenants::Id,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_usage_tenant_time")
                    .table(UsageRecords::Table)
                    .col(UsageRecords::TenantId)
                    .col(UsageRecords::CreatedAt)
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_usage_job_metric")
                    .table(UsageRecords::Table)
                    .col(UsageRecords::JobId)
                    .col(UsageRecords::Metric)
                    .unique()
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WebhookEndpoints::Table)
                    .col(string_len(WebhookEndpoints::Id, ID_LEN).primary_key())
                    .col(string_len(WebhookEndpoints::TenantId, ID_LEN))
                    .col(string_len(WebhookEndpoints::Url, 2048))
                    .col(json(WebhookEndpoints::Events))
                    .col(text(WebhookEndpoints::SecretEnc))
                    .col(boolean(WebhookEndpoints::Active))
                    .col(timestamp_with_time_zone(WebhookEndpoints::CreatedAt))
                    .col(timestamp_with_time_zone(WebhookEndpoints::UpdatedAt))
                    .foreign_key(&mut fk(
                        "fk_webhooks_tenant",
                        WebhookEndpoints::Table,
                        WebhookEndpoints::TenantId,
                        Tenants::Table,
                        Tenants::Id,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(string_len(WebhookDeliveries::Id, ID_LEN).primary_key())
                    .col(string_len(WebhookDeliveries::TenantId, ID_LEN))
                    .col(string_len(WebhookDeliveries::EndpointId, ID_LEN))
                    .col(string_len(WebhookDeliveries::Event, 32))
                    .col(string_len_null(WebhookDeliveries::JobId, ID_LEN))
                    .col(text(WebhookDeliveries::Payload))
                    .col(string_len(WebhookDeliveries::Status, 16))
                    .col(integer(WebhookDeliveries::Attempts))
                    .col(timestamp_with_time_zone(WebhookDeliveries::NextAttemptAt))
                    .col(integer_null(WebhookDeliveries::LastStatusCode))
                    .col(text_null(WebhookDeliveries::LastError))
                    .col(timestamp_with_time_zone(WebhookDeliveries::CreatedAt))
                    .col(timestamp_with_time_zone_null(
                        WebhookDeliveries::DeliveredAt,
                    ))
                    .foreign_key(&mut fk(
                        "fk_deliveries_endpoint",
                        WebhookDeliveries::Table,
                        WebhookDeliveries::EndpointId,
                        WebhookEndpoints::Table,
                        WebhookEndpoints::Id,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_deliveries_due")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::Status)
                    .col(WebhookDeliveries::NextAttemptAt)
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_deliveries_endpoint")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::EndpointId)
                    .col(WebhookDeliveries::Id)
                    .take(),
            )
            .await?;

        manager
            .alter_table(
                Table::alter()
                    .table(Tenants::Table)
                    .add_column(big_integer_null(Tenants::MonthlyTokenBudget))
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Tenants::Table)
                    .drop_column(Tenants::MonthlyTokenBudget)
                    .take(),
            )
            .await?;
        for table in [
            WebhookDeliveries::Table.into_iden(),
            WebhookEndpoints::Table.into_iden(),
            UsageRecords::Table.into_iden(),
            Jobs::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().take())
                .await?;
        }
        Ok(())
    }
}
