//! Keyword rules of an account: a follower message that matches gets the rule's reply,
//! before the knowledge base is consulted.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, ModelTrait,
    QueryFilter, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use wxpilot_entity::keyword_rule;
use wxpilot_kb::rules::{MatchKind, RuleDefinition, validate_rule};

use super::audit::{self, Action};
use super::{Actor, Page, PageRequest, accounts, fetch_page};
use crate::error::{ServiceError, ServiceResult};
use crate::ids::{is_id, new_id};
use crate::validate::Checks;

const RESOURCE: &str = "keyword_rule";
const MAX_PATTERN: usize = 500;
const MAX_REPLY: usize = 2_000;

/// How a rule's pattern is compared with a message (after normalisation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// The whole message equals the pattern.
    Exact,
    /// The message contains the pattern.
    Contains,
    /// The regular expression matches somewhere in the message.
    Regex,
}

impl RuleKind {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Contains => "contains",
            Self::Regex => "regex",
        }
    }

    fn matcher(self) -> MatchKind {
        match self {
            Self::Exact => MatchKind::Exact,
            Self::Contains => MatchKind::Contains,
            Self::Regex => MatchKind::Regex,
        }
    }
}

/// A new keyword rule.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeywordRule {
    /// How `pattern` is matched.
    pub kind: RuleKind,
    /// The keyword or regular expression, 1–500 characters.
    #[schema(example = "营业时间")]
    pub pattern: String,
    /// The reply, 1–2,000 characters.
    #[schema(example = "每天 10:00–22:00。")]
    pub reply: String,
    /// Higher wins when several rules match (default 0).
    #[serde(default)]
    pub priority: i32,
}

/// A stored keyword rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeywordRule {
    /// Id.
    pub id: String,
    /// The account it belongs to.
    pub account_id: String,
    /// `exact`, `contains` or `regex`.
    pub kind: String,
    /// The keyword or regular expression.
    pub pattern: String,
    /// The reply.
    pub reply: String,
    /// Priority.
    pub priority: i32,
    /// Created.
    pub created_at: DateTime<Utc>,
}

impl From<keyword_rule::Model> for KeywordRule {
    fn from(m: keyword_rule::Model) -> Self {
        Self {
            id: m.id,
            account_id: m.account_id,
            kind: m.kind,
            pattern: m.pattern,
            reply: m.reply,
            priority: m.priority,
            created_at: m.created_at,
        }
    }
}

async fn require_account<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    account_id: &str,
) -> ServiceResult<()> {
    // Another tenant's account answers exactly like a missing one.
    if accounts::exists(conn, actor, account_id).await? {
        Ok(())
    } else {
        Err(ServiceError::NotFound("official account"))
    }
}

/// Adds a rule to one of the tenant's accounts; an invalid pattern is refused here so
/// that it never silently fails to fire.
pub async fn create(
    db: &DatabaseConnection,
    actor: &Actor,
    account_id: &str,
    input: NewKeywordRule,
) -> ServiceResult<KeywordRule> {
    let id = new_id();
    let mut checks = Checks::new();
    checks.text("pattern", &input.pattern, 1, MAX_PATTERN);
    checks.text("reply", &input.reply, 1, MAX_REPLY);
    if let Err(e) = validate_rule(&RuleDefinition {
        id: id.clone(),
        kind: input.kind.matcher(),
        pattern: input.pattern.clone(),
        reply: input.reply.clone(),
        priority: input.priority,
    }) {
        checks.check(false, "pattern", e.to_string());
    }
    let txn = crate::db::begin_write(db).await?;
    require_account(&txn, actor, account_id).await?;
    checks.finish()?;
    let saved = keyword_rule::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(actor.tenant_id.clone()),
        account_id: Set(account_id.to_owned()),
        kind: Set(input.kind.as_str().to_owned()),
        pattern: Set(input.pattern.clone()),
        reply: Set(input.reply),
        priority: Set(input.priority),
        created_at: Set(Utc::now()),
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        actor,
        Action::Create,
        RESOURCE,
        &id,
        json!({"account_id": account_id, "kind": input.kind.as_str(), "pattern": input.pattern}),
    )
    .await?;
    txn.commit().await?;
    Ok(saved.into())
}

/// The account's rules, oldest first.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    account_id: &str,
    page: &PageRequest,
) -> ServiceResult<Page<KeywordRule>> {
    require_account(conn, actor, account_id).await?;
    let query = keyword_rule::Entity::find()
        .filter(keyword_rule::Column::TenantId.eq(&actor.tenant_id))
        .filter(keyword_rule::Column::AccountId.eq(account_id));
    let (rows, limit) = fetch_page(conn, query, keyword_rule::Column::Id, page).await?;
    Ok(Page::from_rows(rows, limit, |m| &m.id, KeywordRule::from))
}

/// Deletes a rule.
pub async fn delete(
    db: &DatabaseConnection,
    actor: &Actor,
    account_id: &str,
    id: &str,
) -> ServiceResult<()> {
    let txn = crate::db::begin_write(db).await?;
    require_account(&txn, actor, account_id).await?;
    if !is_id(id) {
        return Err(ServiceError::NotFound(RESOURCE));
    }
    let current = keyword_rule::Entity::find()
        .filter(keyword_rule::Column::TenantId.eq(&actor.tenant_id))
        .filter(keyword_rule::Column::AccountId.eq(account_id))
        .filter(keyword_rule::Column::Id.eq(id))
        .one(&txn)
        .await?
        .ok_or(ServiceError::NotFound(RESOURCE))?;
    let pattern = current.pattern.clone();
    current.delete(&txn).await?;
    audit::record(
        &txn,
        actor,
        Action::Delete,
        RESOURCE,
        id,
        json!({"account_id": account_id, "pattern": pattern}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
