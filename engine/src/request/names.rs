//! Server span names (`"GET /users/{id}"`) and route templates, made once
//! per route and method and then shared as `&'static str`: naming the span
//! and recording `http.route` cost no allocation on the request path, and
//! the export side frees nothing for them.
//!
//! Route templates come from the application's router, so there are few of
//! them; still, the set is bounded: at most [`MAX_ROUTES`] routes of at most
//! [`MAX_ROUTE_LEN`] bytes are kept (at most about 1.5 MiB in the worst
//! case, for the life of the process). Past that, callers make their
//! strings per request, as they would without this module.
//!
//! Each thread keeps its own map of what it has looked up (no lock, no
//! shared cache line on the request path); a thread's miss takes the global
//! lock once per route and method.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// Most routes kept.
pub(crate) const MAX_ROUTES: usize = 1024;
/// Longest route kept, in bytes.
pub(crate) const MAX_ROUTE_LEN: usize = 128;

/// Name slots: the nine standard methods, then one for any other
/// (named `HTTP`, as the conventions ask).
const SLOTS: usize = 10;

/// A route and its span names, one per method slot.
#[derive(Clone, Copy)]
struct Names {
    route: &'static str,
    names: [Option<&'static str>; SLOTS],
}

/// Route templates are short and come from the application (`crate::fasthash`).
type Map = HashMap<&'static str, Names, crate::fasthash::FastBuildHasher>;

static SHARED: Mutex<Option<Map>> = Mutex::new(None);

thread_local! {
    static LOCAL: RefCell<Map> = RefCell::new(Map::default());
}

/// The slot of a method's semantic-convention name (see
/// [`method_name`](super::method_name)); anything else takes the `HTTP` slot.
fn slot(method: &str) -> usize {
    match method {
        "GET" => 0,
        "POST" => 1,
        "PUT" => 2,
        "DELETE" => 3,
        "HEAD" => 4,
        "OPTIONS" => 5,
        "PATCH" => 6,
        "CONNECT" => 7,
        "TRACE" => 8,
        _ => 9,
    }
}

/// The span name `"{method} {route}"` and the route, both shared, or `None`
/// when the route is too long or the set is full. `method` is the name the
/// span takes (`GET`, ..., or `HTTP` for a non-standard method).
pub(crate) fn span_name(method: &'static str, route: &str) -> Option<(&'static str, &'static str)> {
    if route.len() > MAX_ROUTE_LEN {
        return None;
    }
    let slot = slot(method);
    let local = LOCAL.try_with(|local| {
        let local = local.try_borrow().ok()?;
        let names = local.get(route)?;
        Some((names.names[slot]?, names.route))
    });
    if let Ok(Some(found)) = local {
        return Some(found);
    }
    let names = intern(&SHARED, MAX_ROUTES, method, slot, route)?;
    remember(names);
    Some((names.names[slot]?, names.route))
}

/// `route` shared, or `None` when it is too long or the set is full.
pub(crate) fn shared_route(route: &str) -> Option<&'static str> {
    if route.len() > MAX_ROUTE_LEN {
        return None;
    }
    let local = LOCAL.try_with(|local| Some(local.try_borrow().ok()?.get(route)?.route));
    if let Ok(Some(found)) = local {
        return Some(found);
    }
    let names = intern(&SHARED, MAX_ROUTES, "", SLOTS, route)?;
    remember(names);
    Some(names.route)
}

/// Keeps `names` in this thread's map (bounded as the shared one).
fn remember(names: Names) {
    let _ = LOCAL.try_with(|local| {
        if let Ok(mut local) = local.try_borrow_mut()
            && (local.len() < MAX_ROUTES || local.contains_key(names.route))
        {
            local.insert(names.route, names);
        }
    });
}

/// Finds or makes `route`'s entry in `shared` (at most `max_routes`
/// entries) with the name for `slot` (none when `slot` is `SLOTS`).
fn intern(
    shared: &Mutex<Option<Map>>,
    max_routes: usize,
    method: &'static str,
    slot: usize,
    route: &str,
) -> Option<Names> {
    let mut shared = shared.lock().unwrap_or_else(PoisonError::into_inner);
    let shared = shared.get_or_insert_with(Map::default);
    if !shared.contains_key(route) {
        if shared.len() >= max_routes {
            return None;
        }
        let route: &'static str = Box::leak(route.into());
        shared.insert(
            route,
            Names {
                route,
                names: [None; SLOTS],
            },
        );
    }
    let names = shared.get_mut(route)?;
    if slot < SLOTS && names.names[slot].is_none() {
        let name = super::join(method, names.route);
        names.names[slot] = Some(Box::leak(name.into_boxed_str()));
    }
    Some(*names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_once_and_shared() {
        let (name, route) = span_name("GET", "/names-test/{id}").unwrap();
        assert_eq!(name, "GET /names-test/{id}");
        assert_eq!(route, "/names-test/{id}");
        let (again, route_again) = span_name("GET", &String::from("/names-test/{id}")).unwrap();
        assert!(std::ptr::eq(name, again));
        assert!(std::ptr::eq(route, route_again));
        let (post, post_route) = span_name("POST", "/names-test/{id}").unwrap();
        assert_eq!(post, "POST /names-test/{id}");
        assert!(std::ptr::eq(route, post_route));
        assert!(std::ptr::eq(
            shared_route("/names-test/{id}").unwrap(),
            route
        ));
        let only_route = shared_route("/names-test/only-route").unwrap();
        assert_eq!(only_route, "/names-test/only-route");
        assert!(std::ptr::eq(
            span_name("GET", "/names-test/only-route").unwrap().1,
            only_route
        ));
        let (other, _) = span_name("HTTP", "/names-test/{id}").unwrap();
        assert_eq!(other, "HTTP /names-test/{id}");
        // Another thread finds the same strings through the shared map.
        let from_thread = std::thread::spawn(|| span_name("GET", "/names-test/{id}").unwrap())
            .join()
            .unwrap();
        assert!(std::ptr::eq(name, from_thread.0));
    }

    #[test]
    fn long_routes_and_a_full_set_are_left_to_the_caller() {
        let long = format!("/{}", "x".repeat(MAX_ROUTE_LEN));
        assert!(span_name("GET", &long).is_none());
        let shared = Mutex::new(None);
        for i in 0..8 {
            assert!(intern(&shared, 8, "GET", 0, &format!("/fill/{i}")).is_some());
        }
        assert!(intern(&shared, 8, "GET", 0, "/fill/8").is_none());
        // Routes kept before the set filled up still answer, for any method.
        let kept = intern(&shared, 8, "PUT", 2, "/fill/0").unwrap();
        assert_eq!(kept.names[2], Some("PUT /fill/0"));
        assert_eq!(kept.names[0], Some("GET /fill/0"));
        assert_eq!(shared.lock().unwrap().as_ref().unwrap().len(), 8);
    }
}
