//! The `wazo-auth` server as a library: the binary (`src/main.rs`) is a thin shell over it, and
//! the fuzz targets (`fuzz/`) and benchmarks reach its parsers through it. Not a stable API:
//! third parties depend on `wazo-auth-plugin-api` only.

pub mod bus;
pub mod config;
pub mod http;
pub mod import;
pub mod login;
pub mod login_plugins;
pub mod mail;
pub mod plugins;
pub mod server;
pub mod services;
pub mod startup;
pub mod sub_routes;
pub mod telemetry;
pub mod tls;
