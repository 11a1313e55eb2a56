//! Job kinds, one file each.

pub mod generate;
pub mod forecast;
pub mod ping;
