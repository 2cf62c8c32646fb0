//! How a component says that a host may answer its fresh hits natively
//! ([`Node::fresh_hit`](crate::Node::fresh_hit) run by the host, outside
//! the component): a custom section, [`SECTION`], holding [`MARK`], which
//! names the core's sources (`build.rs`). A host that links the core
//! answers natively only for a component whose mark is its own: the same
//! key derivation, the same stored formats, the same decisions.

/// The custom section's name (the literal `native_hits_mark!` emits).
pub const SECTION: &str = "edge-cache-native-hits";

/// What the section holds: this build of the core, by its sources.
pub const MARK: &str = concat!("edge-cache core ", env!("EDGE_CACHE_BUILD_ID"));

/// [`MARK`] as bytes of its exact length, for the section's static.
#[doc(hidden)]
pub const fn mark_bytes<const N: usize>() -> [u8; N] {
    let mark = MARK.as_bytes();
    let mut bytes = [0u8; N];
    let mut i = 0;
    while i < N {
        bytes[i] = mark[i];
        i += 1;
    }
    bytes
}

/// Puts [`MARK`] in the component's [`SECTION`]: invoked once by each
/// adapter crate (the component's root, so the linker keeps it).
#[macro_export]
macro_rules! native_hits_mark {
    () => {
        #[cfg(target_arch = "wasm32")]
        #[unsafe(link_section = "edge-cache-native-hits")]
        #[used]
        static NATIVE_HITS_MARK: [u8; $crate::native_hits::MARK.len()] =
            $crate::native_hits::mark_bytes::<{ $crate::native_hits::MARK.len() }>();
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_mark_names_a_build_of_the_core() {
        assert!(super::MARK.starts_with("edge-cache core "));
        assert_eq!(super::MARK.len(), "edge-cache core ".len() + 16);
        let bytes = super::mark_bytes::<{ super::MARK.len() }>();
        assert_eq!(&bytes[..], super::MARK.as_bytes());
    }
}
