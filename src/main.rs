//! placeholder
use axum as _;
use axum_server as _;
use rcgen as _;
use reqwest as _;
use rustls as _;
fn main() {}
