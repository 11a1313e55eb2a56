//! AI customer service: followers, their conversation messages, callback deduplication
//! (the embedded default's stand-in for Redis), keyword rules and knowledge entries.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Followers {
    Table,
    Id,
    TenantId,
    AccountId,
    Openid,
    Subscribed,
    FirstSeenAt,
    LastSeenAt,
    LastMessageAt,
    BotPausedUntil,
    Tags,
    /// An answer that could not be sent (48001), delivered passively next time.
    PendingReply,
    /// The last customer-service send failure (45015, 45047), for operators.
    LastSendError,
}

#[derive(DeriveIden)]
enum ConversationMessages {
    Table,
    Id,
    TenantId,
    AccountId,
    Openid,
    Direction,
    Kind,
    Content,
    WechatMsgId,
    JobId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum CallbackDedup {
    Table,
    Id,
    AccountId,
    DedupKey,
    CreatedAt,
}

#[derive(DeriveIden)]
enum KeywordRules {
    Table,
    Id,
    TenantId,
    AccountId,
    Kind,
    Pattern,
    Reply,
    Priority,
    CreatedAt,
}

#[derive(DeriveIden)]
enum KnowledgeEntries {
    Table,
    Id,
    TenantId,
    AccountId,
    Kind,
    Question,
    Answer,
    Alternatives,
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
/// WeChat openids are 28 characters; leave room for other identity schemes.
const OPENID_LEN: u32 = 64;
/// `msg:<MsgId>` or `event:<openid>:<CreateTime>`.
const DEDUP_KEY_LEN: u32 = 128;

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
                    .table(Followers::Table)
                    .col(string_len(Followers::Id, ID_LEN).primary_key())
                    .col(string_len(Followers::TenantId, ID_LEN))
                    .col(string_len(Followers::AccountId, ID_LEN))
                    .col(string_len(Followers::Openid, OPENID_LEN))
                    .col(boolean(Followers::Subscribed))
                    .col(timestamp_with_time_zone(Followers::FirstSeenAt))
                    .col(timestamp_with_time_zone(Followers::LastSeenAt))
                    // The 48-hour customer-service window counts from here.
                    .col(timestamp_with_time_zone_null(Followers::LastMessageAt))
                    .col(timestamp_with_time_zone_null(Followers::BotPausedUntil))
                    // JSON array of tag names.
                    .col(json(Followers::Tags))
                    .col(text_null(Followers::PendingReply))
                    .col(string_len_null(Followers::LastSendError, 200))
                    .foreign_key(&mut fk(
                        "fk_followers_tenant",
                        Followers::Table,
                        Followers::TenantId,
                        Tenants::Table,
                        Tenants::Id,
                    ))
                    .foreign_key(&mut fk(
                        "fk_followers_account",
                        Followers::Table,
                        Followers::AccountId,
                        OfficialAccounts::Table,
                        OfficialAccounts::Id,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_followers_account_openid")
                    .table(Followers::Table)
                    .col(Followers::AccountId)
                    .col(Followers::Openid)
                    .unique()
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ConversationMessages::Table)
                    .col(string_len(ConversationMessages::Id, ID_LEN).primary_key())
                    .col(string_len(ConversationMessages::TenantId, ID_LEN))
                    .col(string_len(ConversationMessages::AccountId, ID_LEN))
                    .col(string_len(ConversationMessages::Openid, OPENID_LEN))
                    // `in` (from the follower) or `out` (to the follower).
                    .col(string_len(ConversationMessages::Direction, 8))
                    // `text`, `event`, `passive`, `custom`, … (lower-case).
                    .col(string_len(ConversationMessages::Kind, 32))
                    .col(text(ConversationMessages::Content))
                    .col(string_len_null(ConversationMessages::WechatMsgId, 64))
                    // The reply job that produced an outbound message: a retry finds it.
                    .col(string_len_null(ConversationMessages::JobId, ID_LEN))
                    .col(timestamp_with_time_zone(ConversationMessages::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_conversation_messages_tenant",
                        ConversationMessages::Table,
                        ConversationMessages::TenantId,
                        Tenants::Table,
                        Tenants::Id,
                    ))
                    .foreign_key(&mut fk(
                        "fk_conversation_messages_account",
                        ConversationMessages::Table,
                        ConversationMessages::AccountId,
                        OfficialAccounts::Table,
                        OfficialAccounts::Id,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_conversation_messages_account_openid")
                    .table(ConversationMessages::Table)
                    .col(ConversationMessages::AccountId)
                    .col(ConversationMessages::Openid)
                    .col(ConversationMessages::CreatedAt)
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CallbackDedup::Table)
                    .col(string_len(CallbackDedup::Id, ID_LEN).primary_key())
                    .col(string_len(CallbackDedup::AccountId, ID_LEN))
                    .col(string_len(CallbackDedup::DedupKey, DEDUP_KEY_LEN))
                    .col(timestamp_with_time_zone(CallbackDedup::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_callback_dedup_account",
                        CallbackDedup::Table,
                        CallbackDedup::AccountId,
                        OfficialAccounts::Table,
                        OfficialAccounts::Id,
                    ))
                    .take(),
            )
            .await?;
        // The unique violation is the "seen before" answer.
        manager
            .create_index(
                Index::create()
                    .name("ux_callback_dedup_account_key")
                    .table(CallbackDedup::Table)
                    .col(CallbackDedup::AccountId)
                    .col(CallbackDedup::DedupKey)
                    .unique()
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(KeywordRules::Table)
                    .col(string_len(KeywordRules::Id, ID_LEN).primary_key())
                    .col(string_len(KeywordRules::TenantId, ID_LEN))
                    .col(string_len(KeywordRules::AccountId, ID_LEN))
                    // `exact`, `contains` or `regex`.
                    .col(string_len(KeywordRules::Kind, 16))
                    .col(string_len(KeywordRules::Pattern, 500))
                    .col(text(KeywordRules::Reply))
                    .col(integer(KeywordRules::Priority))
                    .col(timestamp_with_time_zone(KeywordRules::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_keyword_rules_tenant",
                        KeywordRules::Table,
                        KeywordRules::TenantId,
                        Tenants::Table,
                        Tenants::Id,
                    ))
                    .foreign_key(&mut fk(
                        "fk_keyword_rules_account",
                        KeywordRules::Table,
                        KeywordRules::AccountId,
                        OfficialAccounts::Table,
                        OfficialAccounts::Id,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_keyword_rules_account")
                    .table(KeywordRules::Table)
                    .col(KeywordRules::AccountId)
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(KnowledgeEntries::Table)
                    .col(string_len(KnowledgeEntries::Id, ID_LEN).primary_key())
                    .col(string_len(KnowledgeEntries::TenantId, ID_LEN))
                    .col(string_len(KnowledgeEntries::AccountId, ID_LEN))
                    // `faq` or `document` (one chunk of a document).
                    .col(string_len(KnowledgeEntries::Kind, 16))
                    // The FAQ question, or the document title for a chunk.
                    .col(text(KnowledgeEntries::Question))
                    // The FAQ answer, or the chunk text.
                    .col(text(KnowledgeEntries::Answer))
                    // JSON array of alternative phrasings of the question.
                    .col(json(KnowledgeEntries::Alternatives))
                    .col(timestamp_with_time_zone(KnowledgeEntries::CreatedAt))
                    .col(timestamp_with_time_zone(KnowledgeEntries::UpdatedAt))
                    .foreign_key(&mut fk(
                        "fk_knowledge_entries_tenant",
                        KnowledgeEntries::Table,
                        KnowledgeEntries::TenantId,
                        Tenants::Table,
                        Tenants::Id,
                    ))
                    .foreign_key(&mut fk(
                        "fk_knowledge_entries_account",
                        KnowledgeEntries::Table,
                        KnowledgeEntries::AccountId,
                        OfficialAccounts::Table,
                        OfficialAccounts::Id,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_knowledge_entries_account")
                    .table(KnowledgeEntries::Table)
                    .col(KnowledgeEntries::AccountId)
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            KnowledgeEntries::Table.into_iden(),
            KeywordRules::Table.into_iden(),
            CallbackDedup::Table.into_iden(),
            ConversationMessages::Table.into_iden(),
            Followers::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).take())
                .await?;
        }
        Ok(())
    }
}
