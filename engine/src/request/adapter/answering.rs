//! A request's whole future through an adapter, as one value of a type an
//! adapter can return without boxing it: [`Answering`].

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use bytes::Bytes;
use http::{Method, StatusCode, Uri};
use http_body::Body;

use super::{Exchange, Excluded, Noted, Notes, TracedBody};
use crate::Engine;
use crate::panic::CatchPanic;

/// How an adapter reads its framework's responses, for [`Answering`]: what
/// its handler's future gives, what its request's future gives, and how a
/// response goes from one to the other: as it is (nothing to answer for),
/// or through the `http` responses of the [`Exchange`].
pub trait Rules<B> {
    /// What the handler's future gives.
    type Handled;
    /// A response that goes back as it is ([`pass`](Self::pass)).
    type Passed;
    /// What the request's future gives: the framework's response.
    type Output;

    /// The handler's outcome as a response that goes back as it is (its
    /// status below 400, no [`HandlerError`](crate::request::HandlerError)
    /// or [`FrameworkRejection`](super::FrameworkRejection) to answer for:
    /// [`Excluded::passes`]), else as the `http` response the exchange
    /// answers.
    fn pass(handled: Self::Handled) -> Result<Self::Passed, http::Response<B>>;

    /// A response that passes, on an excluded route.
    fn passed(response: Self::Passed) -> Self::Output;

    /// A response that passes, on a traced route: finished by `exchange`
    /// ([`Exchange::finish`], or [`Exchange::finish_head`] on the
    /// framework's own head), its route named when the framework's router
    /// tells it on the response.
    fn finish(exchange: Exchange, response: Self::Passed) -> Self::Output;

    /// An answered response as the framework's.
    fn from_http(response: http::Response<TracedBody<B>>) -> Self::Output;

    /// The route the framework's router matched, when it tells it on an
    /// error response (it names the span, before a route noted while the
    /// handler ran).
    fn route(_response: &http::Response<B>) -> Option<Cow<'static, str>> {
        None
    }

    /// Whether the user's code made `response` (a handler's reply), rather
    /// than the framework rejecting the request: on an excluded route, a
    /// 404 is then the handler's "no such thing".
    fn replied(response: &http::Response<B>) -> bool;

    /// Whether the text of a framework error response with `status`
    /// becomes the problem's detail (`replied`: [`replied`](Self::replied)
    /// of it; the framework's own text can say nothing the code does not,
    /// or name internals).
    fn read_text(status: StatusCode, replied: bool) -> bool;
}

/// [`Rules`] for a framework whose handlers give `http` responses (and
/// whose requests' futures, `Result`s that cannot fail): only what the
/// framework's responses mean is left to say.
pub trait HttpRules<B> {
    /// See [`Rules::replied`].
    fn replied(response: &http::Response<B>) -> bool;

    /// See [`Rules::read_text`].
    fn read_text(status: StatusCode, replied: bool) -> bool;
}

impl<B: Body, R: HttpRules<B>> Rules<B> for R {
    type Handled = Result<http::Response<B>, Infallible>;
    type Passed = http::Response<B>;
    type Output = Result<http::Response<TracedBody<B>>, Infallible>;

    fn pass(Ok(response): Self::Handled) -> Result<Self::Passed, http::Response<B>> {
        if Excluded::passes(&response) {
            Ok(response)
        } else {
            Err(response)
        }
    }

    fn passed(response: Self::Passed) -> Self::Output {
        Ok(response.map(TracedBody::new))
    }

    fn finish(exchange: Exchange, response: Self::Passed) -> Self::Output {
        Ok(exchange.finish(response.map(TracedBody::new)))
    }

    fn from_http(response: http::Response<TracedBody<B>>) -> Self::Output {
        Ok(response)
    }

    fn replied(response: &http::Response<B>) -> bool {
        <R as HttpRules<B>>::replied(response)
    }

    fn read_text(status: StatusCode, replied: bool) -> bool {
        <R as HttpRules<B>>::read_text(status, replied)
    }
}

/// What [`Answering`] leaves behind when it is done.
const POLLED: &str = "a request's future polled after it was done";

pin_project_lite::pin_project! {
    /// A request's future from its handler to the answered response, for an
    /// adapter whose server takes any future, or whose framework moves its
    /// handlers' futures (so that nothing is boxed on the usual path, and
    /// the future is small and built where it is kept): on a traced route,
    /// the handler runs inside the [`Exchange`] (its [`Notes`] lent to the
    /// polling thread; a noted route names the span), a response that
    /// [`passes`](Rules::pass) is finished ([`Rules::finish`]) and any other
    /// outcome answered with [`Exchange::answer`] and [`Exchange::finish`];
    /// on an excluded route, inside the [`Excluded`] context, and a
    /// response that passes goes back as it is. Only a framework's own
    /// error response ([`Exchange::rewrites`]) is boxed to be rewritten.
    /// `R` reads the framework's responses ([`Rules`]).
    pub struct Answering<C: Call, B, R: Rules<B>> {
        #[pin]
        state: State<C, B, R::Output>,
        rules: PhantomData<fn() -> R>,
    }
}

/// What an excluded request keeps to answer an error.
type ExcludedRest = (Excluded, Engine, Method, Uri);

/// The rewrite of a framework's own error response.
type Rewrite<B> = Pin<Box<dyn Future<Output = http::Response<TracedBody<B>>> + Send>>;

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<C: Call, B, O> {
        Traced { #[pin] handler: Noted<CatchPanic<Deferred<C>>>, exchange: Option<Exchange> },
        Excluded { #[pin] handler: CatchPanic<Deferred<C>>, rest: Option<ExcludedRest> },
        Rewriting { rewrite: Rewrite<B> },
        Ready { response: Option<O> },
    }
}

impl<C: Call, B, R: Rules<B>> Answering<C, B, R> {
    /// A traced request: the handler's future, made by `call`, runs inside
    /// `exchange`.
    // Inlined, and the future built in one expression from the small
    // `call`: the handler's future is large, and each move of it a copy.
    #[inline(always)]
    pub fn traced(exchange: Exchange, call: C) -> Self {
        crate::panic::install_hook();
        let cx = exchange.span.cx.clone();
        Self::with(State::Traced {
            handler: Noted {
                inner: CatchPanic::for_request(Deferred::new(call), cx),
                notes: Some(Notes::default()),
            },
            exchange: Some(exchange),
        })
    }

    /// A request on an excluded route (`method` and `uri` the request's):
    /// the handler's future, made by `call`, runs inside `excluded`'s
    /// context.
    #[inline(always)]
    pub fn excluded(
        excluded: Excluded,
        engine: &Engine,
        method: Method,
        uri: Uri,
        call: C,
    ) -> Self {
        crate::panic::install_hook();
        let cx = excluded.cx.clone();
        Self::with(State::Excluded {
            handler: CatchPanic::for_request(Deferred::new(call), cx),
            rest: Some((excluded, engine.clone(), method, uri)),
        })
    }

    /// A response known before any handler runs (a metrics scrape).
    #[inline(always)]
    pub fn ready(response: R::Output) -> Self {
        Self::with(State::Ready {
            response: Some(response),
        })
    }

    #[inline(always)]
    fn with(state: State<C, B, R::Output>) -> Self {
        Answering {
            state,
            rules: PhantomData,
        }
    }
}

impl<C: Call, B, R: Rules<B>> std::fmt::Debug for Answering<C, B, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answering").finish_non_exhaustive()
    }
}

impl<C, B, R> Future for Answering<C, B, R>
where
    C: Call<Future: Future<Output = R::Handled>>,
    B: Body<Data = Bytes> + Send + 'static,
    R: Rules<B>,
{
    type Output = R::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        let (mut exchange, handled) = match state.as_mut().project() {
            StateProj::Traced { handler, exchange } => {
                let (handled, notes) = ready!(handler.poll(cx));
                let mut exchange = exchange.take().expect(POLLED);
                if let Some(route) = &notes.route {
                    exchange.set_route(route);
                }
                let handled = match handled.map(R::pass) {
                    Ok(Ok(passed)) => return Poll::Ready(R::finish(exchange, passed)),
                    Ok(Err(response)) => Ok(response),
                    Err(panic) => Err(panic),
                };
                if let Some(route) = handled.as_ref().ok().and_then(R::route) {
                    exchange.set_route(&route);
                }
                (exchange, handled)
            }
            StateProj::Excluded { handler, rest } => {
                let handled = match ready!(handler.poll(cx)).map(R::pass) {
                    Ok(Ok(passed)) => return Poll::Ready(R::passed(passed)),
                    Ok(Err(response)) => Ok(response),
                    Err(panic) => Err(panic),
                };
                let (excluded, engine, method, uri) = rest.take().expect(POLLED);
                let replied = handled.as_ref().is_ok_and(R::replied);
                let exchange = excluded.into_exchange(&engine, &method, uri, replied);
                (exchange, handled)
            }
            StateProj::Rewriting { rewrite } => {
                return rewrite.as_mut().poll(cx).map(R::from_http);
            }
            StateProj::Ready { response } => {
                return Poll::Ready(response.take().expect(POLLED));
            }
        };
        let status = handled
            .as_ref()
            .map_or(StatusCode::OK, http::Response::status);
        let read_text = R::read_text(status, handled.as_ref().is_ok_and(R::replied));
        let response = exchange.answer(handled);
        if !Exchange::rewrites(&response) {
            return Poll::Ready(R::from_http(exchange.finish(response)));
        }
        let mut rewrite: Rewrite<B> = Box::pin(async move {
            let response = exchange.rewrite(response, read_text).await;
            exchange.finish(response)
        });
        let polled = rewrite.as_mut().poll(cx);
        state.set(State::Rewriting { rewrite });
        polled.map(R::from_http)
    }
}

/// What makes a request's handler future when [`Deferred`] is first polled:
/// any `FnOnce() -> impl Future`.
pub trait Call {
    /// The future made.
    type Future: Future;

    /// Makes the future.
    fn call(self) -> Self::Future;
}

impl<C: FnOnce() -> F, F: Future> Call for C {
    type Future = F;

    #[inline(always)]
    fn call(self) -> F {
        self()
    }
}

pin_project_lite::pin_project! {
    /// The future a [`Call`] makes, made when first polled, then polled:
    /// what the call runs while it builds its future (warp runs some filters
    /// then) runs inside the future around it ([`Answering`]'s context, a
    /// panic caught).
    pub struct Deferred<C: Call> {
        #[pin]
        state: Deferral<C>,
    }
}

pin_project_lite::pin_project! {
    #[project = DeferralProj]
    enum Deferral<C: Call> {
        Waiting { call: Option<C> },
        Running { #[pin] future: C::Future },
    }
}

impl<C: Call> Deferred<C> {
    /// The future `call` makes, made when first polled.
    #[inline(always)]
    pub fn new(call: C) -> Self {
        Deferred {
            state: Deferral::Waiting { call: Some(call) },
        }
    }
}

impl<C: Call> std::fmt::Debug for Deferred<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deferred").finish_non_exhaustive()
    }
}

impl<C: Call> Future for Deferred<C> {
    type Output = <C::Future as Future>::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        if let DeferralProj::Waiting { call } = state.as_mut().project() {
            let future = call.take().expect(POLLED).call();
            state.set(Deferral::Running { future });
        }
        match state.project() {
            DeferralProj::Running { future } => future.poll(cx),
            DeferralProj::Waiting { .. } => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use http::HeaderMap;
    use opentelemetry::trace::TraceContextExt as _;

    use super::*;
    use crate::export::InMemoryExporter;
    use crate::request::adapter::note_route;
    use crate::request::{RequestContext, RequestInfo, TRACERESPONSE};

    /// Rules that read every framework text, or none.
    struct Reads<const TEXT: bool>;

    impl<B, const TEXT: bool> HttpRules<B> for Reads<TEXT> {
        fn replied(_: &http::Response<B>) -> bool {
            false
        }

        fn read_text(_: StatusCode, _: bool) -> bool {
            TEXT
        }
    }

    type Handled = Result<http::Response<String>, Infallible>;

    fn engine(excluded: &[&str]) -> (Engine, InMemoryExporter) {
        crate::export::test_engine(|builder| {
            builder
                .service_name("answering")
                .excluded_routes(excluded.iter().copied())
        })
    }

    fn plain(status: StatusCode, text: &str) -> http::Response<String> {
        let mut response = http::Response::new(text.to_owned());
        *response.status_mut() = status;
        response
    }

    async fn text(response: http::Response<TracedBody<String>>) -> String {
        let mut body = std::pin::pin!(response.into_body());
        let mut text = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            if let Ok(data) = frame.unwrap().into_data() {
                text.extend_from_slice(&data);
            }
        }
        String::from_utf8(text).unwrap()
    }

    #[tokio::test]
    async fn a_traced_request_makes_its_handler_inside_its_span_and_names_its_route() {
        let (engine, spans) = engine(&[]);
        let uri: Uri = "/users/7".parse().unwrap();
        let headers = HeaderMap::new();
        let info = RequestInfo::new(&Method::GET, &uri, http::Version::HTTP_11, &headers);
        let exchange = Exchange::start(&engine, &info, uri.clone());
        let span_id = exchange.span().cx.span().span_context().span_id();
        let made_in = std::sync::Arc::new(std::sync::Mutex::new(None));
        let seen = made_in.clone();
        let call = move || {
            // Made when first polled: inside the request's context.
            *seen.lock().unwrap() = RequestContext::current().and_then(|c| c.span_id());
            async {
                note_route(&Cow::Borrowed("/users/{id}"));
                Handled::Ok(plain(StatusCode::OK, "user 7"))
            }
        };
        let answering = Answering::<_, String, Reads<true>>::traced(exchange, call);
        assert!(
            made_in.lock().unwrap().is_none(),
            "made before it was polled"
        );
        let response = answering.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().contains_key(TRACERESPONSE));
        assert_eq!(text(response).await, "user 7");
        assert_eq!(made_in.lock().unwrap().clone(), Some(span_id.to_string()));
        engine.force_flush();
        let exported = spans.spans();
        assert_eq!(exported.len(), 1);
        assert_eq!(exported[0].name, "GET /users/{id}");
    }

    #[tokio::test]
    async fn an_excluded_request_passes_a_success_and_answers_an_error_by_its_rules() {
        let (engine, spans) = engine(&["/internal/*"]);
        let uri: Uri = "/internal/ready".parse().unwrap();
        let start = || Excluded::start(&engine, &HeaderMap::new(), None);
        let ok = || async { Handled::Ok(plain(StatusCode::OK, "ready")) };
        let answering = Answering::<_, String, Reads<true>>::excluded(
            start(),
            &engine,
            Method::GET,
            uri.clone(),
            ok,
        );
        let response = answering.await.unwrap();
        assert!(!response.headers().contains_key(TRACERESPONSE));
        assert_eq!(text(response).await, "ready");

        // A framework's plain-text error: problem details, its text read
        // only when the rules say so.
        let down = || async { Handled::Ok(plain(StatusCode::SERVICE_UNAVAILABLE, "db down")) };
        let read = Answering::<_, String, Reads<true>>::excluded(
            start(),
            &engine,
            Method::GET,
            uri.clone(),
            down,
        );
        let read = read.await.unwrap();
        assert_eq!(read.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            read.headers()[http::header::CONTENT_TYPE],
            crate::error::PROBLEM_JSON
        );
        let problem: serde_json::Value = serde_json::from_str(&text(read).await).unwrap();
        assert_eq!(problem["detail"], "db down");
        assert!(problem.get("trace_id").is_none(), "{problem}");
        let unread = Answering::<_, String, Reads<false>>::excluded(
            start(),
            &engine,
            Method::GET,
            uri,
            down,
        );
        let unread: serde_json::Value =
            serde_json::from_str(&text(unread.await.unwrap()).await).unwrap();
        assert_ne!(unread["detail"], "db down");

        // A panic while the handler is made: a 500, nothing of its text.
        let uri: Uri = "/internal/panic".parse().unwrap();
        let panics = || -> std::future::Ready<Handled> { panic!("secret internals") };
        let panicked = Answering::<_, String, Reads<true>>::excluded(
            start(),
            &engine,
            Method::GET,
            uri,
            panics,
        );
        let panicked = panicked.await.unwrap();
        assert_eq!(panicked.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!text(panicked).await.contains("secret"));
        engine.force_flush();
        assert!(spans.spans().is_empty());
    }
}
