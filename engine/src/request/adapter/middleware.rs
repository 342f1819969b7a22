//! The two types of an adapter's middleware, declared once.

/// Declares an adapter's middleware and the wrapper it puts around the
/// inner endpoint or service, with the docs the adapter writes: the
/// middleware holds the engine and is made with `new(engine)`;
/// `wrap(inner)` gives the wrapper `{ inner, engine }`, for which the
/// adapter implements its framework's traits (the request path).
/// [`tower_layer!`](crate::tower_layer) builds on it.
///
/// ```
/// faultline_engine::middleware_types! {
///     /// A middleware.
///     pub struct Middleware;
///     /// What it wraps around an endpoint.
///     pub struct Wrapped;
/// }
///
/// # fn engine() -> faultline_engine::Engine { unimplemented!() }
/// # fn _f() {
/// let wrapped: Wrapped<&str> = Middleware::new(engine()).wrap("endpoint");
/// # }
/// ```
// Hidden: adapter plumbing like the rest of this module.
#[doc(hidden)]
#[macro_export]
macro_rules! middleware_types {
    (
        $(#[$middleware_attr:meta])* pub struct $middleware:ident;
        $(#[$wrapper_attr:meta])* pub struct $wrapper:ident;
    ) => {
        $(#[$middleware_attr])*
        #[derive(Debug, Clone)]
        pub struct $middleware {
            engine: $crate::Engine,
        }

        impl $middleware {
            /// Traces requests with `engine`.
            pub fn new(engine: $crate::Engine) -> Self {
                $middleware { engine }
            }

            /// `inner` wrapped, tracing with the engine.
            #[allow(dead_code)]
            fn wrap<I>(&self, inner: I) -> $wrapper<I> {
                $wrapper {
                    inner,
                    engine: self.engine.clone(),
                }
            }
        }

        $(#[$wrapper_attr])*
        #[derive(Debug, Clone)]
        pub struct $wrapper<I> {
            inner: I,
            engine: $crate::Engine,
        }
    };
}
