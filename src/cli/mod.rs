//! Command-line interface: `check`, `plan`, `simulator serve`.
