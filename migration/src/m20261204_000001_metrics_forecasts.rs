//! Daily metrics of official accounts (one value per account, metric and day) and the
//! forecasts made from them.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DailyMetrics {
    Table,
    Id,
    TenantId,
    AccountId,
    Metric,
    Date,
    Value,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Forecasts {
    Table,
    Id,
    TenantId,
    AccountId,
    Metric,
    Horizon,
    JobId,
    Status,
    Result,
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
                    .table(DailyMetrics::Table)
                    .col(string_len(DailyMetrics::Id, ID_LEN).primary_key())
                    .col(string_len(DailyMetrics::TenantId, ID_LEN))
                    .col(string_len(DailyMetrics::AccountId, ID_LEN))
                    .col(string_len(DailyMetrics::Metric, 64))
                    .col(date(DailyMetrics::Date))
                    .col(double(DailyMetrics::Value))
                    .col(timestamp_with_time_zone(DailyMetrics::CreatedAt))
                    .col(timestamp_with_time_zone(DailyMetrics::UpdatedAt))
                    .foreign_key(&mut fk(
                        "fk_daily_metrics_tenant",
                        DailyMetrics::Table,
                        DailyMetrics::TenantId,
                        Tenants::Table,
                        Tenants::Id,
                    ))
                    .foreign_key(&mut fk(
                        "fk_daily_metrics_account",
                        DailyMetrics::Table,
                        DailyMetrics::AccountId,
                        OfficialAccounts::Table,
                        OfficialAccounts::Id,
                    ))
                    .take(),
            )
            .await?;
        // One value per account, metric and day: uploads upsert on it.
        manager
            .create_index(
                Index::create()
                    .name("ux_daily_metrics_account_metric_date")
                    .table(DailyMetrics::Table)
                    .col(DailyMetrics::AccountId)
                    .col(DailyMetrics::Metric)
                    .col(DailyMetrics::Date)
                    .unique()
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Forecasts::Table)
                    .col(string_len(Forecasts::Id, ID_LEN).primary_key())
                    .col(string_len(Forecasts::TenantId, ID_LEN))
                    .col(string_len(Forecasts::AccountId, ID_LEN))
                    .col(string_len(Forecasts::Metric, 64))
                    .col(integer(Forecasts::Horizon))
                    .col(string_len_null(Forecasts::JobId, ID_LEN))
                    .col(string_len(Forecasts::Status, 16))
                    .col(json_null(Forecasts::Result))
                    .col(text_null(Forecasts::Error))
                    .col(timestamp_with_time_zone(Forecasts::CreatedAt))
                    .col(timestamp_with_time_zone(Forecasts::UpdatedAt))
                    .foreign_key(&mut fk(
                        "fk_forecasts_tenant",
                        Forecasts::Table,
                        Forecasts::TenantId,
                        Tenants::Table,
                        Tenants::Id,
                    ))
                    .foreign_key(&mut fk(
                        "fk_forecasts_account",
                        Forecasts::Table,
                        Forecasts::AccountId,
                        OfficialAccounts::Table,
                        OfficialAccounts::Id,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_forecasts_tenant_account")
                    .table(Forecasts::Table)
                    .col(Forecasts::TenantId)
                    .col(Forecasts::AccountId)
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Forecasts::Table).take())
            .await?;
        manager
            .drop_table(Table::drop().table(DailyMetrics::Table).take())
            .await
    }
}
