//! WeChat Official Account protocol.
