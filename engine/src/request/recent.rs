//! The texts of a server span that repeat from request to request on a
//! thread — the host a client asked for, its user agent, its address (a
//! keep-alive connection sends many requests; a proxy in front sends them
//! all), the path of a request whose route is not known when its span
//! starts (a router that tells it only afterwards) — kept per thread as shared strings: an attribute value is then a
//! reference count's increment, not an allocation on the request thread
//! and a free on the export side.
//!
//! Each thread keeps the last [`SLOTS`] texts of each kind (replaced in
//! turn), each of at most [`MAX_LEN`] bytes; a longer text is made per
//! request, as before. Nothing is shared between threads, nothing grows.
//! A kept text stays in memory until a newer one replaces it (as it is
//! before masking, like the span that carries it until export); it never
//! leaves the process from here.

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::Arc;

use opentelemetry::Value;

/// Texts kept per kind and thread.
pub(crate) const SLOTS: usize = 4;
/// Longest text kept, in bytes.
pub(crate) const MAX_LEN: usize = 256;

/// The last texts of one kind, with what each was made from.
struct Ring<K> {
    slots: [Option<(K, Arc<str>)>; SLOTS],
    next: usize,
}

impl<K> Ring<K> {
    const fn new() -> Self {
        Ring {
            slots: [None, None, None, None],
            next: 0,
        }
    }

    /// The text kept for a key (and text) `is` recognizes, or the one
    /// `make` makes, kept in place of the oldest.
    fn get(
        &mut self,
        is: impl Fn(&K, &str) -> bool,
        make: impl FnOnce() -> (K, Arc<str>),
    ) -> Arc<str> {
        for (key, text) in self.slots.iter().flatten() {
            if is(key, text) {
                return text.clone();
            }
        }
        let (key, text) = make();
        self.slots[self.next] = Some((key, text.clone()));
        self.next = (self.next + 1) % SLOTS;
        text
    }
}

struct Recent {
    /// Keyed by the whole `Host` header (or authority), with its port:
    /// the header is split once, not on every request.
    authorities: Ring<(Box<str>, Option<u16>)>,
    hosts: Ring<()>,
    agents: Ring<()>,
    paths: Ring<()>,
    clients: Ring<IpAddr>,
}

thread_local! {
    static RECENT: RefCell<Recent> = const {
        RefCell::new(Recent {
            authorities: Ring::new(),
            hosts: Ring::new(),
            agents: Ring::new(),
            paths: Ring::new(),
            clients: Ring::new(),
        })
    };
}

/// Which ring a text goes to.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// `server.address`.
    Host,
    /// `user_agent.original`.
    UserAgent,
    /// `url.path`.
    Path,
}

/// `text` as an attribute value, shared with the last requests on this
/// thread that had the same one.
pub(crate) fn text(kind: Kind, text: &str) -> Value {
    if text.len() > MAX_LEN {
        return Value::from(text.to_owned());
    }
    RECENT
        .try_with(|recent| {
            let mut recent = recent.borrow_mut();
            let ring = match kind {
                Kind::Host => &mut recent.hosts,
                Kind::UserAgent => &mut recent.agents,
                Kind::Path => &mut recent.paths,
            };
            // The ring's keys are the texts themselves.
            Value::from(ring.get(|(), kept| kept == text, || ((), Arc::from(text))))
        })
        .unwrap_or_else(|_| Value::from(text.to_owned()))
}

/// `server.address` and `server.port` of a `Host` header (or a request
/// URI's authority) `authority`, split by `split` (`host[:port]`) the first
/// time on this thread, then shared.
pub(crate) fn authority(
    authority: &str,
    split: fn(&str) -> (&str, Option<u16>),
) -> (Value, Option<u16>) {
    let made = || {
        let (address, port) = split(authority);
        (address.to_owned(), port)
    };
    if authority.len() > MAX_LEN {
        let (address, port) = made();
        return (Value::from(address), port);
    }
    RECENT
        .try_with(|recent| {
            let ring = &mut recent.borrow_mut().authorities;
            for ((kept, port), text) in ring.slots.iter().flatten() {
                if **kept == *authority {
                    return (Value::from(text.clone()), *port);
                }
            }
            let (address, port) = made();
            let text = ring.get(
                |_, _| false,
                || ((authority.into(), port), Arc::from(address)),
            );
            (Value::from(text), port)
        })
        .unwrap_or_else(|_| {
            let (address, port) = made();
            (Value::from(address), port)
        })
}

/// A client address as an attribute value (`make` writes it), shared with
/// the last requests on this thread from the same address.
pub(crate) fn client(ip: IpAddr, make: fn(IpAddr) -> String) -> Value {
    RECENT
        .try_with(|recent| {
            recent
                .borrow_mut()
                .clients
                .get(|kept, _| *kept == ip, || (ip, Arc::from(make(ip))))
        })
        .map_or_else(|_| Value::from(make(ip)), Value::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(value: &Value) -> *const u8 {
        match value {
            Value::String(s) => s.as_str().as_ptr(),
            other => panic!("not a string: {other:?}"),
        }
    }

    #[test]
    fn a_repeated_text_is_shared_and_a_new_one_replaces_the_oldest() {
        let first = text(Kind::Host, "api.example.com");
        let again = text(Kind::Host, "api.example.com");
        assert_eq!(first.as_str(), "api.example.com");
        assert_eq!(shared(&first), shared(&again), "the same text, shared");
        // Another kind keeps its own texts.
        let agent = text(Kind::UserAgent, "api.example.com");
        assert_ne!(shared(&agent), shared(&first));
        let path = text(Kind::Path, "api.example.com");
        assert_ne!(shared(&path), shared(&first));
        assert_ne!(shared(&path), shared(&agent));
        // SLOTS other hosts push the first one out.
        for i in 0..SLOTS {
            let host = format!("host-{i}.example.com");
            assert_eq!(text(Kind::Host, &host).as_str(), host);
        }
        let later = text(Kind::Host, "api.example.com");
        assert_eq!(later.as_str(), "api.example.com");
        assert_ne!(shared(&later), shared(&first), "made again after eviction");
    }

    #[test]
    fn long_texts_are_not_kept() {
        let long = "a".repeat(MAX_LEN + 1);
        let a = text(Kind::UserAgent, &long);
        let b = text(Kind::UserAgent, &long);
        assert_eq!(a.as_str(), long);
        assert_ne!(shared(&a), shared(&b));
    }

    #[test]
    fn an_authority_is_split_once_and_its_port_kept_with_it() {
        let split = crate::request::split_host;
        let (a, port) = authority("api.example.com:8080", split);
        assert_eq!((a.as_str().as_ref(), port), ("api.example.com", Some(8080)));
        let (b, port) = authority("api.example.com:8080", |_| unreachable!("kept"));
        assert_eq!(port, Some(8080));
        assert_eq!(shared(&a), shared(&b), "the same text, shared");
        // Another port of the same host is another authority.
        let (c, port) = authority("api.example.com:9090", split);
        assert_eq!((c.as_str().as_ref(), port), ("api.example.com", Some(9090)));
        let (v6, port) = authority("[::1]", split);
        assert_eq!((v6.as_str().as_ref(), port), ("::1", None));
        let long = format!("{}:1", "h".repeat(MAX_LEN));
        let (l, port) = authority(&long, split);
        assert_eq!((l.as_str().len(), port), (MAX_LEN, Some(1)));
    }

    #[test]
    fn client_addresses_are_kept_by_address() {
        let v4: IpAddr = [10, 1, 2, 3].into();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let a = client(v4, |ip| ip.to_string());
        let b = client(v4, |_| unreachable!("kept"));
        assert_eq!(a.as_str(), "10.1.2.3");
        assert_eq!(shared(&a), shared(&b));
        assert_eq!(client(v6, |ip| ip.to_string()).as_str(), "2001:db8::1");
        assert_eq!(client(v4, |_| unreachable!("kept")).as_str(), "10.1.2.3");
    }
}
