//! wazo-auth-plugin-api 1.1.0 as released (ABI types only), for compatibility tests. The ABI file
//! is shared with the host's frozen history, which a unit test pins.

#[path = "../../../plugin-api/src/abi_history/v1_1.rs"]
pub mod ffi;

pub use abi_stable;
