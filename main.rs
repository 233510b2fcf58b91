//! The `snapwarden` binary: hands the command line to `snapwarden::cli`.
fn main() {}
