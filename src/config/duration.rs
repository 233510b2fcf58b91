//! Policy durations: kept at this path for callers; the parser lives in [`crate::domain::duration`].

pub use crate::domain::duration::*;
