//! Job kinds, one file each.

pub mod ping;
