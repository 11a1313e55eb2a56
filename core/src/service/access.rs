//! Who may do what. Viewers read; editors also write content and campaigns; admins also
//! manage accounts, users and keys; owners also manage other owners.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wxpilot_entity::Role;

use crate::error::{ServiceError, ServiceResult};

/// A part of the API a credential can be limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    /// Official accounts.
    Accounts,
    /// Campaigns.
    Campaigns,
    /// Users of the tenant.
    Users,
    /// API keys.
    ApiKeys,
    /// The audit log.
    Audit,
    /// Jobs.
    Jobs,
    /// Webhook endpoints and deliveries.
    Webhooks,
    /// The usage ledger.
    Usage,
}

impl Area {
    /// Every area, in a stable order.
    pub const ALL: [Area; 8] = [
        Area::Accounts,
        Area::Campaigns,
        Area::Users,
        Area::ApiKeys,
        Area::Audit,
        Area::Jobs,
        Area::Webhooks,
        Area::Usage,
    ];

    /// The area's scope name.
    pub fn as_str(self) -> &'static str {
        match self {
            Area::Accounts => "accounts",
            Area::Campaigns => "campaigns",
            Area::Users => "users",
            Area::ApiKeys => "api_keys",
            Area::Audit => "audit",
            Area::Jobs => "jobs",
            Area::Webhooks => "webhooks",
            Area::Usage => "usage",
        }
    }

    /// Parses a scope name.
    pub fn parse(value: &str) -> Option<Area> {
        Area::ALL.into_iter().find(|a| a.as_str() == value)
    }
}

/// Reading or changing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// GET.
    Read,
    /// Everything else.
    Write,
}

/// The lowest role that may perform `access` on `area`.
pub fn min_role(area: Area, access: Access) -> Role {
    match (area, access) {
        (Area::Accounts | Area::Campaigns | Area::Jobs | Area::Usage, Access::Read) => Role::Viewer,
        (Area::Campaigns | Area::Jobs, Access::Write) => Role::Editor,
        (Area::Accounts, Access::Write) => Role::Admin,
        (Area::Users | Area::ApiKeys | Area::Audit | Area::Webhooks | Area::Usage, _) => {
            Role::Admin
        }
    }
}

/// The areas a credential covers: all of them, or a listed subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scopes {
    /// `["*"]`.
    All,
    /// Only these.
    Only(Vec<Area>),
}

impl Scopes {
    /// Every area.
    pub fn all() -> Self {
        Scopes::All
    }

    /// Whether `area` is covered.
    pub fn covers(&self, area: Area) -> bool {
        match self {
            Scopes::All => true,
            Scopes::Only(areas) => areas.contains(&area),
        }
    }

    /// Parses scope names (`*` or area names). Unknown names are returned as the error.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        if names.iter().any(|n| n.as_ref() == "*") {
            return Ok(Scopes::All);
        }
        let mut areas = Vec::new();
        for name in names {
            let area = Area::parse(name.as_ref()).ok_or_else(|| name.as_ref().to_owned())?;
            if !areas.contains(&area) {
                areas.push(area);
            }
        }
        Ok(Scopes::Only(areas))
    }

    /// Whether every area `other` covers is covered here too.
    pub fn contains(&self, other: &Scopes) -> bool {
        match (self, other) {
            (Scopes::All, _) => true,
            (Scopes::Only(_), Scopes::All) => false,
            (Scopes::Only(mine), Scopes::Only(theirs)) => theirs.iter().all(|a| mine.contains(a)),
        }
    }

    /// The scope names, as stored and shown.
    pub fn names(&self) -> Vec<String> {
        match self {
            Scopes::All => vec!["*".into()],
            Scopes::Only(areas) => areas.iter().map(|a| a.as_str().to_owned()).collect(),
        }
    }
}

/// Fails with 403 unless `role` and `scopes` allow `access` to `area`.
pub fn check(role: Role, scopes: &Scopes, area: Area, access: Access) -> ServiceResult<()> {
    if !scopes.covers(area) {
        return Err(ServiceError::Forbidden(format!(
            "this credential's scopes do not include {}",
            area.as_str()
        )));
    }
    let needed = min_role(area, access);
    if role < needed {
        let verb = match access {
            Access::Read => "read",
            Access::Write => "change",
        };
        return Err(ServiceError::Forbidden(format!(
            "the {} role cannot {verb} {}; {} or above is needed",
            role.as_str(),
            area.as_str(),
            needed.as_str()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_matrix() {
        let all = Scopes::all();
        assert!(check(Role::Viewer, &all, Area::Campaigns, Access::Read).is_ok());
        assert!(check(Role::Viewer, &all, Area::Campaigns, Access::Write).is_err());
        assert!(check(Role::Editor, &all, Area::Campaigns, Access::Write).is_ok());
        assert!(check(Role::Editor, &all, Area::Accounts, Access::Write).is_err());
        assert!(check(Role::Admin, &all, Area::Accounts, Access::Write).is_ok());
        assert!(check(Role::Editor, &all, Area::Users, Access::Read).is_err());
        assert!(check(Role::Admin, &all, Area::ApiKeys, Access::Write).is_ok());
    }

    #[test]
    fn scopes_limit_areas() {
        let only = Scopes::parse(&["campaigns"]).unwrap();
        assert!(check(Role::Owner, &only, Area::Campaigns, Access::Write).is_ok());
        assert!(check(Role::Owner, &only, Area::Accounts, Access::Read).is_err());
        assert_eq!(Scopes::parse(&["*", "users"]), Ok(Scopes::All));
        assert_eq!(Scopes::parse(&["nope"]), Err("nope".to_owned()));
        assert_eq!(only.names(), vec!["campaigns".to_owned()]);
    }
}
