//! The ABI of every released 1.x minor version, frozen.
//!
//! `abi_stable`'s layout check accepts a library whose prefix types have *at least* the fields the
//! loader expects, so a host checking a 1.0 plugin against the 1.1 layout would refuse it. The
//! host therefore checks each plugin against the layout of the minor version the plugin declares
//! (from this module; the current layout for the current or a newer minor), then uses it through
//! the current types: fields and methods the plugin lacks read as missing and the trait defaults
//! apply. A unit test proves that the current ABI is a compatible extension of every frozen one.

use abi_stable::abi_stability::abi_checking::{
    check_layout_compatibility_with_globals, AbiInstabilityErrors, CheckingGlobals,
};
use abi_stable::type_layout::TypeLayout;
use abi_stable::StableAbi;

pub mod v1_0;
pub mod v1_1;
pub mod v1_2;

/// The major version of this ABI.
pub const MAJOR: u64 = 1;

/// The root-module layout a plugin declaring `1.minor.x` must match, or `None` for an unknown
/// minor version older than the current one.
pub fn root_layout_for_minor(minor: u64) -> Option<&'static TypeLayout> {
    let current_minor: u64 = env!("CARGO_PKG_VERSION_MINOR").parse().unwrap_or(0);
    if minor >= current_minor {
        return Some(<crate::ffi::PluginModuleRef as StableAbi>::LAYOUT);
    }
    match minor {
        0 => Some(<v1_0::PluginModuleRef as StableAbi>::LAYOUT),
        1 => Some(<v1_1::PluginModuleRef as StableAbi>::LAYOUT),
        2 => Some(<v1_2::PluginModuleRef as StableAbi>::LAYOUT),
        _ => None,
    }
}

/// Checks `actual` against `expected` with a fresh set of checking globals.
///
/// `abi_stable`'s `check_layout_compatibility` merges every prefix type it sees into one
/// process-wide view (the variant with the most fields), which is what it needs when libraries
/// exchange objects with each other. Here each plugin talks only to the host and is checked
/// against the layout of its own minor version, so the views must not be merged: a 1.0 plugin
/// checked after a 1.1 one would otherwise be compared with the merged 1.1 view and refused.
pub fn check_layout(
    expected: &'static TypeLayout,
    actual: &'static TypeLayout,
) -> Result<(), AbiInstabilityErrors> {
    check_layout_compatibility_with_globals(expected, actual, &CheckingGlobals::new())
}

#[cfg(test)]
mod tests {
    use super::check_layout as check_layout_compatibility;
    use super::*;

    #[test]
    fn current_abi_extends_every_frozen_one() {
        let current = <crate::ffi::PluginModuleRef as StableAbi>::LAYOUT;
        check_layout_compatibility(<v1_0::PluginModuleRef as StableAbi>::LAYOUT, current)
            .unwrap_or_else(|e| panic!("1.0 is not a prefix of the current ABI: {e}"));
        check_layout_compatibility(<v1_1::PluginModuleRef as StableAbi>::LAYOUT, current)
            .unwrap_or_else(|e| panic!("1.1 is not a prefix of the current ABI: {e}"));
        check_layout_compatibility(<v1_2::PluginModuleRef as StableAbi>::LAYOUT, current)
            .unwrap_or_else(|e| panic!("1.2 is not a prefix of the current ABI: {e}"));
        check_layout_compatibility(
            <v1_0::PluginModuleRef as StableAbi>::LAYOUT,
            <v1_1::PluginModuleRef as StableAbi>::LAYOUT,
        )
        .unwrap_or_else(|e| panic!("1.0 is not a prefix of 1.1: {e}"));
        for (name, older) in [
            ("1.0", <v1_0::PluginModuleRef as StableAbi>::LAYOUT),
            ("1.1", <v1_1::PluginModuleRef as StableAbi>::LAYOUT),
        ] {
            check_layout_compatibility(older, <v1_2::PluginModuleRef as StableAbi>::LAYOUT)
                .unwrap_or_else(|e| panic!("{name} is not a prefix of 1.2: {e}"));
        }
    }

    #[test]
    fn frozen_abi_is_not_a_superset_of_the_current_one() {
        // Sanity check of the checker's direction: the current ABI has more methods than 1.0.
        let current = <crate::ffi::PluginModuleRef as StableAbi>::LAYOUT;
        assert!(
            check_layout_compatibility(current, <v1_0::PluginModuleRef as StableAbi>::LAYOUT)
                .is_err()
        );
    }

    #[test]
    fn frozen_files_are_unchanged() {
        // The 1.0 ABI is what released plugins were built with: it must never change.
        for (name, text, expected) in [
            ("v1_0.rs", include_str!("v1_0.rs"), FROZEN_V1_0_DIGEST),
            ("v1_1.rs", include_str!("v1_1.rs"), FROZEN_V1_1_DIGEST),
            ("v1_2.rs", include_str!("v1_2.rs"), FROZEN_V1_2_DIGEST),
        ] {
            let digest = fnv1a(text.as_bytes());
            assert_eq!(
                digest, expected,
                "abi_history/{name} changed (digest {digest:#018x}); frozen files must never be edited"
            );
        }
    }

    const FROZEN_V1_0_DIGEST: u64 = 0xbafca759423c5b26;
    const FROZEN_V1_1_DIGEST: u64 = 0x4090d1cf5b7f7641;
    const FROZEN_V1_2_DIGEST: u64 = 0xaba626d049606deb;

    fn fnv1a(bytes: &[u8]) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }

    #[test]
    fn minor_versions_map_to_layouts() {
        assert!(root_layout_for_minor(0).is_some());
        assert!(root_layout_for_minor(1).is_some());
        assert!(root_layout_for_minor(2).is_some());
        assert!(root_layout_for_minor(7).is_some());
    }
}
