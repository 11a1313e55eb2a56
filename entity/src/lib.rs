//! Database entities and the domain enums stored in them.
//!
//! Every tenant-owned table carries `tenant_id`; the service layer in `wxpilot-core`
//! scopes every query by it. Ids are ULID strings: sortable by creation time, which
//! cursor pagination relies on.

pub mod api_key;
pub mod audit_event;
pub mod brand_voice;
pub mod callback_dedup;
pub mod campaign;
pub mod content;
pub mod content_version;
pub mod conversation_message;
pub mod daily_metric;
pub mod enums;
pub mod follower;
pub mod forecast;
pub mod interaction;
pub mod job;
pub mod keyword_rule;
pub mod knowledge_entry;
pub mod official_account;
pub mod publication;
pub mod recommendation;
pub mod recommendation_item;
pub mod segment;
pub mod tenant;
pub mod usage_record;
pub mod user;
pub mod webhook_delivery;
pub mod webhook_endpoint;

pub use enums::{CampaignStatus, EncryptionMode, JobStatus, Role};
