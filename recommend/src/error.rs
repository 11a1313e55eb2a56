//! The one error type of the crate.

/// What can go wrong when building data or fitting a model.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RecommendError {
    /// An interaction names a follower or item outside the matrix shape.
    #[error("interaction ({row}, {col}) outside a {rows}x{cols} matrix")]
    OutOfBounds {
        /// Row (follower) index given.
        row: usize,
        /// Column (item) index given.
        col: usize,
        /// Number of rows.
        rows: usize,
        /// Number of columns.
        cols: usize,
    },
    /// A strength is negative, NaN or infinite.
    #[error("interaction strength {0} is not a finite non-negative number")]
    BadStrength(f32),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Embeddings do not line up with the items.
    #[error("embeddings: {0}")]
    Embeddings(String),
    /// A data file could not be parsed.
    #[error("line {line}: {message}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        message: String,
    },
}
