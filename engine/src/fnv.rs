//! FNV-1a, for the engine's small internal caches that are looked up on
//! every span or request with short keys (attribute keys, route templates,
//! texts found clean), where SipHash costs more than the work the cache
//! saves. Each such cache is bounded, so keys made to collide cost at most
//! a full cache's worth of probing before it is cleared.

/// The FNV-1a hasher.
#[derive(Default)]
pub(crate) struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// `BuildHasher` for maps keyed with [`Fnv`].
pub(crate) type FnvBuildHasher = std::hash::BuildHasherDefault<Fnv>;
