//! The value an adapter made for the key it saw last (the route of a
//! path, or of a router's pattern), kept for that key.

use std::cell::Cell;

/// The value made for the key seen last, kept so that the same key again
/// (a probe, a busy endpoint) does not make it anew: an adapter's route of
/// the path (or the router's pattern) it saw last. Not `Sync`: one per
/// service, or per thread in a `thread_local!`.
pub struct LastSeen<K, V>(Cell<Option<(K, V)>>);

impl<K, V> LastSeen<K, V> {
    /// Nothing seen yet.
    pub const fn new() -> Self {
        LastSeen(Cell::new(None))
    }
}

impl<K, V: Clone> LastSeen<K, V> {
    /// The value kept for the last key, when `same` says the key asked for
    /// is that one; otherwise `make` makes the key and its value (given the
    /// last key, whose storage it may reuse), kept from then on.
    #[inline]
    pub fn get(&self, same: impl FnOnce(&K) -> bool, make: impl FnOnce(Option<K>) -> (K, V)) -> V {
        let (key, value) = match self.0.take() {
            Some((key, value)) if same(&key) => (key, value),
            last => make(last.map(|(key, _)| key)),
        };
        self.0.set(Some((key, value.clone())));
        value
    }
}

impl<V: Clone> LastSeen<String, V> {
    /// [`get`](Self::get) for a key of text (a request's path): compared
    /// by its text; a new one is copied into the last key's storage (not
    /// made anew), and `make` makes its value.
    #[inline]
    pub fn get_text(&self, key: &str, make: impl FnOnce() -> V) -> V {
        self.get(
            |seen| seen == key,
            |last| {
                let mut seen = last.unwrap_or_default();
                seen.clear();
                seen.push_str(key);
                (seen, make())
            },
        )
    }
}

impl<K, V> Default for LastSeen<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> std::fmt::Debug for LastSeen<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LastSeen").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_key_keeps_its_value_and_a_new_one_reuses_its_storage() {
        let last: LastSeen<String, usize> = LastSeen::new();
        let made = Cell::new(0);
        let get = |key: &str| {
            last.get(
                |seen| seen == key,
                |old| {
                    made.set(made.get() + 1);
                    let mut seen = old.unwrap_or_default();
                    seen.clear();
                    seen.push_str(key);
                    (seen, key.len())
                },
            )
        };
        assert_eq!(get("/a"), 2);
        assert_eq!(get("/a"), 2);
        assert_eq!(get("/bcd"), 4);
        assert_eq!(get("/a"), 2);
        assert_eq!(made.get(), 3);
        let text: LastSeen<String, usize> = LastSeen::default();
        let mut made = 0;
        for key in ["/a", "/a", "/bcd", "/bcd", "/a"] {
            let len = text.get_text(key, || {
                made += 1;
                key.len()
            });
            assert_eq!(len, key.len());
        }
        assert_eq!(made, 3);
    }
}
