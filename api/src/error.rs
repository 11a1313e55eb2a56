//! One error type for every handler, rendered as RFC 9457 `application/problem+json` in
//! one place. Extractor failures (bad JSON, bad query, oversized bodies) go through here
//! too, so a client never sees an HTML or plain-text error.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;
use wxpilot_core::{FieldError, ServiceError};

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem; resolves to the docs.
    #[schema(example = "https://wxpilot.dev/problems/validation")]
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind.
    #[schema(example = "Validation failed")]
    pub title: String,
    /// The HTTP status.
    #[schema(example = 422)]
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// One entry per invalid field (422 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemField>,
}

/// One invalid field.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProblemField {
    /// Field name or path, as sent (`goals[2]`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request could not be read.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no valid credential.
    #[error("{0}")]
    Unauthorized(String),
    /// 402: the tenant's budget is used up.
    #[error("{0}")]
    PaymentRequired(String),
    /// 403: valid credential, not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 405.
    #[error("this path does not take that method; the Allow header lists the ones it does")]
    MethodNotAllowed,
    /// 408.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 429.
    #[error("{0}")]
    TooManyRequests(String),
    /// 413.
    #[error("request body is larger than the {0}-byte limit")]
    PayloadTooLarge(usize),
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422 with field errors.
    #[error("{detail}")]
    Validation {
        /// Summary.
        detail: String,
        /// Per field.
        fields: Vec<FieldError>,
    },
    /// 503: a dependency is down.
    #[error("{0}")]
    Unavailable(String),
    /// 500: our fault; the cause is logged, not shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::BadRequest(_) => ("bad-request", "Bad request"),
            ApiError::Unauthorized(_) => ("unauthorized", "Unauthorized"),
            ApiError::PaymentRequired(_) => ("budget-exceeded", "Budget exceeded"),
            ApiError::Forbidden(_) => ("forbidden", "Forbidden"),
            ApiError::NotFound(_) => ("not-found", "Not found"),
            ApiError::MethodNotAllowed => ("method-not-allowed", "Method not allowed"),
            ApiError::RequestTimeout => ("request-timeout", "Request timeout"),
            ApiError::Conflict(_) => ("conflict", "Conflict"),
            ApiError::TooManyRequests(_) => ("too-many-requests", "Too many requests"),
            ApiError::PayloadTooLarge(_) => ("payload-too-large", "Payload too large"),
            ApiError::UnsupportedMediaType(_) => {
                ("unsupported-media-type", "Unsupported media type")
            }
            ApiError::Validation { .. } => ("validation", "Validation failed"),
            ApiError::Unavailable(_) => ("unavailable", "Service unavailable"),
            ApiError::Internal(_) => ("internal", "Internal server error"),
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let (slug, title) = self.kind();
        let errors = match self {
            ApiError::Validation { fields, .. } => fields
                .iter()
                .map(|f| ProblemField {
                    field: f.field.clone(),
                    message: f.message.clone(),
                })
                .collect(),
            _ => Vec::new(),
        };
        Problem {
            kind: format!("https://wxpilot.dev/problems/{slug}"),
            title: title.into(),
            status: self.status_code().as_u16(),
            detail: self.to_string(),
            errors,
        }
    }

    /// A 422 about one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::Validation {
            detail: format!("{field}: {message}"),
            fields: vec![FieldError::new(field, message)],
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::PaymentRequired(_) => StatusCode::PAYMENT_REQUIRED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(cause) = self {
            tracing::error!(error = %format!("{cause:#}"), "request failed");
        }
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        if let ApiError::Unauthorized(_) = self {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        response.json(self.problem())
    }
}

impl From<ServiceError> for ApiError {
    #[track_caller]
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            ServiceError::Validation(fields) => ApiError::Validation {
                detail: err_summary(&fields),
                fields,
            },
            ServiceError::Conflict(m) => ApiError::Conflict(m),
            ServiceError::Forbidden(m) => ApiError::Forbidden(m),
            ServiceError::BudgetExceeded(m) => ApiError::PaymentRequired(m),
            ServiceError::Unauthorized(m) => ApiError::Unauthorized(m),
            ServiceError::Database(e) => {
                let location = std::panic::Location::caller();
                ApiError::Internal(
                    anyhow::Error::new(e).context(format!("database error at {location}")),
                )
            }
            ServiceError::Internal(e) => ApiError::Internal(e),
        }
    }
}

fn err_summary(fields: &[FieldError]) -> String {
    match fields {
        [one] => format!("{}: {}", one.field, one.message),
        many => format!("{} fields are invalid", many.len()),
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
