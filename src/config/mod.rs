//! The policy file: raw serde types, validation into `model::Policy`, and located diagnostics.
//!
//! Entry points: [`load`] (a file and its includes) and [`parse_str`] (text, for tests). Both run
//! the same single validation pass, which reports every problem at once as [`Diagnostics`].
//! `config/reference.toml` at the repository root is the contract for the file's shape.

pub mod diag;
mod driver;
pub mod duration;
mod load;
pub mod model;
pub mod raw;
mod validate;

pub use diag::{Diagnostic, Diagnostics, Position};
pub use driver::{
    Driver, VeeamJobRef, VeeamServer, DEFAULT_VEEAM_API_VERSION, VEEAM_SIMULATOR_URL,
};
pub use duration::{format_iso8601_duration, parse_duration, parse_iso8601_duration};
pub use load::{read_policy_file, ReadRefused, MAX_FILE_BYTES, MAX_TOTAL_BYTES};
pub use model::*;
pub use validate::{load, parse_str};
