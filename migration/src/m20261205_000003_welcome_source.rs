//! An account's own welcome message (sent on subscribe instead of the default), and where a
//! follower came from (the scene of the parametric QR code they scanned to follow).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OfficialAccounts {
    Table,
    WelcomeMessage,
}

#[derive(DeriveIden)]
enum Followers {
    Table,
    Source,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(OfficialAccounts::Table)
                    .add_column(text_null(OfficialAccounts::WelcomeMessage))
                    .take(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Followers::Table)
                    .add_column(string_len_null(Followers::Source, 128))
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Followers::Table)
                    .drop_column(Followers::Source)
                    .take(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(OfficialAccounts::Table)
                    .drop_column(OfficialAccounts::WelcomeMessage)
                    .take(),
            )
            .await
    }
}
