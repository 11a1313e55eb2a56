//! The real client and token manager against the simulator: token control across
//! managers and stores, errcode handling, datacube windows, callback delivery, and the
//! other endpoints. All traffic stays on 127.0.0.1.

// Test helpers outside #[test] fns are not covered by clippy.toml's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod callbacks;
mod content;
mod datacube;
mod errors;
mod helpers;
mod tokens;
