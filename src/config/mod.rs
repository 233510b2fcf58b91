//! The policy file: raw serde types, validation into `model::Policy`, and located diagnostics.

pub mod model;

pub use model::*;
