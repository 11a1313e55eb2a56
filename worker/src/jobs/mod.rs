//! Job kinds, one file each.

pub mod forecast;
pub mod ping;
