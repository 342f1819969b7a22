//! The latency histogram of each (correlator, method, route, status), kept
//! per thread: a request finds its series with one hash of its own labels,
//! without the family's lock, its SipHash of the label set or the route
//! interning that a first lookup goes through.
//!
//! Bounded: at most [`MAX_HANDLES`] entries per thread, all forgotten when
//! full (the series stay in the family; the next lookups find them again).
//! A handle shares its series with the family (`Arc` inside), and faultline
//! never removes latency series from the family, so a kept handle never
//! records into a series that is no longer exposed.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::metrics::exemplar::HistogramWithExemplars;

use crate::labels::TraceExemplar;

/// Most handles kept per thread.
pub(crate) const MAX_HANDLES: usize = 1024;

type Histogram = HistogramWithExemplars<TraceExemplar>;

static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

/// A number no other correlator of this process has (keys the handles, so
/// that two correlators never share a series through this memo).
pub(crate) fn new_owner() -> u64 {
    NEXT_OWNER.fetch_add(1, Ordering::Relaxed)
}

struct Entry {
    owner: u64,
    method: &'static str,
    status: u16,
    route: Box<str>,
    handle: Histogram,
}

/// The map's keys are already hashes.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Map = HashMap<u64, Entry, BuildHasherDefault<Prehashed>>;

thread_local! {
    static HANDLES: RefCell<Map> = RefCell::new(Map::default());
}

/// The labels and the owner hashed eight bytes a step (the engine's
/// hasher for its own per-request caches).
fn key(owner: u64, method: &str, status: u16, route: &str) -> u64 {
    let mut h = faultline_engine::fasthash::Fast::default();
    h.write_u64(owner ^ (u64::from(status) << 48));
    h.write(method.as_bytes());
    h.write(route.as_bytes());
    h.finish()
}

/// Calls `f` with the histogram of (`owner`, `method`, `route`, `status`),
/// made by `make` (the family's lookup) the first time on this thread.
pub(crate) fn with_duration(
    owner: u64,
    method: &'static str,
    status: u16,
    route: &str,
    make: impl FnOnce() -> Histogram,
    f: impl FnOnce(&Histogram),
) {
    let k = key(owner, method, status, route);
    let mut make = Some(make);
    let mut f = Some(f);
    let done = HANDLES
        .try_with(|handles| {
            let Ok(mut handles) = handles.try_borrow_mut() else {
                return false;
            };
            let hit = handles.get(&k).is_some_and(|e| {
                e.owner == owner && e.status == status && e.method == method && &*e.route == route
            });
            if !hit {
                if handles.len() >= MAX_HANDLES {
                    handles.clear();
                }
                let Some(make) = make.take() else {
                    return false;
                };
                handles.insert(
                    k,
                    Entry {
                        owner,
                        method,
                        status,
                        route: route.into(),
                        handle: make(),
                    },
                );
            }
            if let (Some(entry), Some(f)) = (handles.get(&k), f.take()) {
                f(&entry.handle);
            }
            true
        })
        .unwrap_or(false);
    if !done && let (Some(make), Some(f)) = (make, f) {
        // The thread is ending (or re-entered): no memo, the plain lookup.
        f(&make());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many times each lookup had to make its series.
    fn made(owner: u64, method: &'static str, status: u16, route: &str, times: usize) -> usize {
        let mut made = 0;
        let mut seen = 0;
        for _ in 0..times {
            with_duration(
                owner,
                method,
                status,
                route,
                || {
                    made += 1;
                    Histogram::new([0.1, 1.0].into_iter())
                },
                |h| {
                    h.observe(0.05, None, None);
                    seen += 1;
                },
            );
        }
        assert_eq!(seen, times);
        made
    }

    #[test]
    fn a_series_is_looked_up_once_per_thread_and_labels_keep_series_apart() {
        let owner = new_owner();
        assert_eq!(made(owner, "GET", 200, "/a", 3), 1);
        assert_eq!(made(owner, "GET", 200, "/a", 2), 0);
        // Another status, route, method or owner is another series.
        assert_eq!(made(owner, "GET", 500, "/a", 2), 1);
        assert_eq!(made(owner, "GET", 200, "/b", 2), 1);
        assert_eq!(made(owner, "POST", 200, "/a", 2), 1);
        assert_eq!(made(new_owner(), "GET", 200, "/a", 2), 1);
        // Another thread looks its series up again.
        let again = std::thread::spawn(move || made(owner, "GET", 200, "/a", 2))
            .join()
            .unwrap();
        assert_eq!(again, 1);
    }

    #[test]
    fn the_memo_is_bounded() {
        let owner = new_owner();
        for i in 0..(MAX_HANDLES + 10) {
            let route = format!("/bounded/{i}");
            with_duration(
                owner,
                "GET",
                200,
                &route,
                || Histogram::new([1.0].into_iter()),
                |_| {},
            );
        }
        HANDLES.with(|h| assert!(h.borrow().len() <= MAX_HANDLES));
    }
}
