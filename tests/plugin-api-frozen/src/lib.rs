//! Frozen ABI of wazo-auth-plugin-api 1.0.0 (types only). See Cargo.toml.
pub mod ffi;
pub use abi_stable;
