//! The wxpilot REST API: routes, auth (API keys and JWTs), tenancy, problem+json errors,
//! metrics and the OpenAPI document.

pub mod auth;
pub mod cache;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod probe;
pub mod ratelimit;
pub mod routes;
pub mod routes_table;
pub mod startup;
pub mod state;

pub use startup::{Application, Deps};
