//! Implicit-feedback recommendation: ALS, item-kNN, popularity, explanations, offline evaluation.
