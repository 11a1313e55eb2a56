//! The durable job machinery every job kind shares. The `jobs` table is the truth: a queue
//! message only says "look at job X", so a duplicate or a lost message cannot run a job
//! twice or lose it. A worker owns a job through a lease it keeps renewing; a sweeper puts
//! back on the queue whatever should be running and is not (a lost message, a dead worker).

pub mod policy;
pub mod store;
pub mod webhooks;

pub use policy::{KindPolicy, backoff};
