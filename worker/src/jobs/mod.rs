//! Job kinds, one file each.

pub mod forecast;
pub mod generate;
pub mod ping;
pub mod sync_metrics;
