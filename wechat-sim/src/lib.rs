//! WeChat simulator.
