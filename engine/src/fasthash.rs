//! A folded-multiply hasher that takes eight bytes a step, for the engine's
//! small internal caches that are looked up on every span or request with
//! short keys (attribute keys, route templates, texts found clean), where
//! SipHash costs more than the work the cache saves. (FNV-1a, used before,
//! takes one byte a step: about four instructions a byte, a quarter of the
//! cost of masking a span went to hashing its attribute keys and texts.)
//! Each such cache is bounded, so keys made to collide cost at most a full
//! cache's worth of probing before it is cleared.

/// The multiplier (odd, its bits spread).
const K: u64 = 0xf135_7aea_2e62_a9c5;

/// The hasher: `h = fold(h ^ word, K)` per 8-byte word, where `fold` is
/// the full 128-bit product with its two halves xor-ed (so that every input
/// bit reaches every output bit: a plain 64-bit product carries a change
/// in a word's top byte only upwards), the length and the tail (read as up
/// to two overlapping 4-byte words) folded in last.
#[derive(Default)]
pub struct Fast(u64);

impl Fast {
    #[inline]
    fn add(&mut self, word: u64) {
        let product = u128::from(self.0 ^ word) * u128::from(K);
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl std::hash::Hasher for Fast {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let tail = chunks.remainder();
        let n = tail.len();
        let last = if n >= 4 {
            let lo = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
            let hi = u32::from_le_bytes([tail[n - 4], tail[n - 3], tail[n - 2], tail[n - 1]]);
            u64::from(lo) | (u64::from(hi) << 32)
        } else if n > 0 {
            u64::from(tail[0]) | (u64::from(tail[n / 2]) << 8) | (u64::from(tail[n - 1]) << 16)
        } else {
            0
        };
        self.add(last ^ ((bytes.len() as u64) << 56));
    }

    #[inline]
    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    #[inline]
    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    #[inline]
    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }
}

/// `BuildHasher` for maps keyed with [`Fast`].
pub type FastBuildHasher = std::hash::BuildHasherDefault<Fast>;

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher as _;

    use super::*;

    fn hash(text: &str) -> u64 {
        FastBuildHasher::default().hash_one(text)
    }

    #[test]
    fn texts_that_differ_anywhere_hash_apart() {
        let texts = [
            "",
            "a",
            "b",
            "ab",
            "ba",
            "a\0",
            "abc",
            "abcd",
            "abcde",
            "abcdefg",
            "abcdefgh",
            "abcdefghi",
            "http.route",
            "http.routf",
            "url.path",
            "url.query",
            "server.address",
            "client.address",
            "GET /hello",
            "GET /hellp",
        ];
        let mut seen = std::collections::HashSet::new();
        for t in texts {
            assert!(seen.insert(hash(t)), "{t:?} collides");
        }
    }

    #[test]
    fn buckets_spread_over_sequential_keys() {
        // 4,096 keys of one shape into 1,024 buckets (the low bits, as
        // hashbrown takes them): none holds more than a few dozen.
        let mut buckets = vec![0u32; 1024];
        for i in 0..4096 {
            let key = format!("/users/{i}/orders");
            buckets[(hash(&key) & 1023) as usize] += 1;
        }
        let fullest = *buckets.iter().max().unwrap();
        assert!(fullest < 24, "a bucket holds {fullest} of 4,096 keys");
    }
}
