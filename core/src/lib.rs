//! What the api, the workers and the CLI share: settings, storage, secrets, telemetry
//! and the domain services (tenants, users, API keys, official accounts, campaigns).

pub mod db;
pub mod error;
pub mod ids;
pub mod jobs;
pub mod keys;
pub mod passwords;
pub mod secrets;
pub mod service;
pub mod settings;
pub mod telemetry;
pub mod validate;

pub use error::{FieldError, ServiceError};
pub use secrets::{MasterKey, SecretBox};
pub use settings::Settings;
