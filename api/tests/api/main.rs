//! Integration tests: the real application on port 0, driven over HTTP, on SQLite and on
//! Postgres. Each test gets a fresh database, so they run in parallel.

// Test support code panics on purpose: a failed set-up step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod accounts;
mod auth;
mod bad_input;
mod campaigns;
mod content_local_model;
mod contents;
mod customer_service;
mod forecasts;
mod hardening;
mod isolation;
mod jobs;
mod knowledge;
mod metrics_sync;
mod operations;
mod publishing;
mod recommendations;
mod secrets;
mod users_and_keys;
mod webhooks;
mod wechat_callback;
