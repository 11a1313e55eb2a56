//! Content rules for wxpilot: WeChat's limits on drafts, HTML sanitising, Advertising-Law
//! compliance checks, prompts and structured-output parsing. Pure functions, no I/O; the
//! generate and publish jobs call them.
//!
//! - [`limits`]: [`limits::ArticleDraft`], [`limits::Draft`], [`limits::validate_draft`]
//!   (every violation, typed), safe truncation, Moments and passive-reply limits. How each
//!   figure is counted is documented there (the body's 20,000 characters are counted on its
//!   visible text; its 1 MB on the HTML's bytes).
//! - [`html`]: [`html::sanitize`] to what WeChat's editor keeps, [`html::image_urls`] and
//!   [`html::rewrite_image_urls`] for the publish step, visible text with source positions.
//! - [`compliance`]: the Advertising-Law term list (`data/compliance/absolute-terms.toml`) and
//!   a tenant's own words, scanned with Aho-Corasick over normalised text;
//!   [`compliance::ComplianceReport`], [`compliance::rewrite_instruction`] and
//!   [`compliance::decide_rewrite`] for the bounded rewrite loop.
//! - [`prompt`]: [`prompt::build_prompt`] for `article`, `moments` and `menu_reply`, in JSON or
//!   the labelled-line format.
//! - [`parse`]: [`parse::parse_output`], which reads either format (see its module docs for
//!   the repairs it makes and the line format), with typed [`parse::OutputError`]s.
//!
//! The line format exists because the default local model has 135M parameters and rarely
//! writes valid JSON. It does not keep to labels reliably either: of twenty sampled answers
//! to the line-format article prompt (temperature 0.7, kept in
//! `tests/fixtures/smollm2-135m/`) only 7 gave a usable labelled answer. The parser therefore
//! fills in what such a model leaves out: a missing digest is taken from the body's start, as
//! WeChat itself does; with [`parse::ParseOptions::truncate_overlong`] an overlong title is
//! cut rather than rejected; and with [`parse::ParseOptions::plain_text_fallback`] unlabelled
//! prose becomes title and body. With both options 18 of those 20 answers give a draft that
//! passes [`limits::validate_draft`], 9 of 10 among the ten generated after the parser was
//! finished (the two failures have labels but an empty body). Turn the fallback on for small
//! local models only: it accepts almost any text, and judging its quality is then left to
//! the reviewer.

pub mod compliance;
pub mod html;
pub mod limits;
pub mod parse;
pub mod prompt;
