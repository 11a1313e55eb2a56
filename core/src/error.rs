//! The one error type of the service layer. The api maps each kind to a status and a
//! problem+json body in one place (`wxpilot_api::error`).

use serde::Serialize;

/// One invalid field of a request, reported back to the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field's name as the caller sent it (`app_id`, `goals[2]`).
    pub field: String,
    /// What is wrong with it, in words.
    pub message: String,
}

impl FieldError {
    /// A field error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why a service call did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The object does not exist in the caller's tenant (it may exist in another).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The input broke one or more rules; nothing was changed.
    #[error("validation failed: {}", summary(.0))]
    Validation(Vec<FieldError>),
    /// The change clashes with existing state (a duplicate, the last owner).
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The tenant's monthly budget is used up.
    #[error("{0}")]
    BudgetExceeded(String),
    /// Credentials were wrong or are no longer valid.
    #[error("{0}")]
    Unauthorized(String),
    /// The database failed.
    #[error("database error")]
    Database(#[from] sea_orm::DbErr),
    /// Anything else that is our fault, with its context.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

fn summary(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ServiceError {
    /// A validation error about a single field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ServiceError::Validation(vec![FieldError::new(field, message)])
    }
}

/// Result of a service call.
pub type ServiceResult<T> = Result<T, ServiceError>;
