//! One conformance suite, run against the reference service on each
//! framework: the same requests must give the same responses and spans.

use std::collections::HashSet;

use serde_json::Value;

use crate::service::Service;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    fn traceresponse(&self) -> (String, String) {
        let tr = self.headers["traceresponse"].to_str().unwrap().to_owned();
        let parts: Vec<&str> = tr.split('-').collect();
        assert_eq!(parts.len(), 4, "{tr}");
        assert_eq!(parts[0], "00");
        (parts[1].to_owned(), parts[2].to_owned())
    }
    fn assert_problem(&self, status: u16, code: u64) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(
            self.headers["content-type"], "application/problem+json",
            "{}",
            self.body
        );
        let p = self.json();
        for member in ["type", "title", "status", "detail", "code", "trace_id"] {
            assert!(p.get(member).is_some(), "problem without {member}: {p}");
        }
        assert_eq!(p["status"], status);
        assert_eq!(p["code"], code, "{p}");
        let trace_id = p["trace_id"].as_str().unwrap().to_owned();
        assert_eq!(trace_id.len(), 32);
        assert!(
            trace_id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(
            self.traceresponse().0,
            trace_id,
            "trace_id in the body and traceresponse agree"
        );
        trace_id
    }
}

async fn send(client: &reqwest::Client, req: reqwest::RequestBuilder) -> Reply {
    let _ = client;
    let response = req.send().await.expect("request");
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

fn server_span<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["kind"] == "SERVER" && s["name"] == name)
        .unwrap_or_else(|| panic!("no SERVER span {name:?} in {spans:#?}"))
}

fn exception(span: &Value) -> &Value {
    span["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "exception")
        .unwrap_or_else(|| panic!("no exception event: {span}"))
}

/// The suite: each step checks a response and the span it produced.
fn conformance(framework: &str) {
    let svc = Service::start(framework, &[]);
    let rt = runtime();
    let client = reqwest::Client::new();
    rt.block_on(async {
        // 200, span named by route, HTTP attributes, traceresponse.
        let r = send(
            &client,
            client
                .get(svc.url("/hello"))
                .header("user-agent", "conformance/1"),
        )
        .await;
        assert_eq!((r.status, r.body.as_str()), (200, "hello"));
        let (trace, span_id) = r.traceresponse();
        let spans = svc.trace(&trace, 1);
        let s = server_span(&spans, "GET /hello");
        assert_eq!(s["span_id"], span_id.as_str());
        let a = &s["attributes"];
        assert_eq!(a["http.request.method"], "GET");
        assert_eq!(a["http.route"], "/hello");
        assert_eq!(a["url.path"], "/hello");
        assert_eq!(a["url.scheme"], "http");
        assert_eq!(a["http.response.status_code"], 200);
        assert_eq!(a["server.address"], "127.0.0.1");
        assert_eq!(a["server.port"], svc.port);
        assert_eq!(a["network.protocol.version"], "1.1");
        assert_eq!(a["user_agent.original"], "conformance/1");
        assert_eq!(a["client.address"], "127.0.0.1");
        assert_eq!(s["status"], "unset");
        assert!(s["parent_span_id"].is_null());

        // The incoming traceparent is the parent; {param} route form.
        let r = send(
            &client,
            client
                .get(svc.url("/users/42?page=2"))
                .header("traceparent", format!("00-{TRACE}-{PARENT}-01"))
                .header("tracestate", "vendor=1"),
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json(), serde_json::json!({"id": 42}));
        let (trace, span_id) = r.traceresponse();
        assert_eq!(trace, TRACE);
        let spans = svc.trace(TRACE, 1);
        let s = server_span(&spans, "GET /users/{id}");
        assert_eq!(s["parent_span_id"], PARENT);
        assert_eq!(s["span_id"], span_id.as_str());
        assert_eq!(s["attributes"]["http.route"], "/users/{id}");
        assert_eq!(s["attributes"]["url.path"], "/users/42");
        assert_eq!(s["attributes"]["url.query"], "page=2");

        // A malformed or repeated traceparent starts a new trace.
        for bad in [
            format!("00-{}-{PARENT}-01", TRACE.to_uppercase()),
            format!("ff-{TRACE}-{PARENT}-01"),
            format!("00-{TRACE}-0000000000000000-01"),
            "garbage".to_owned(),
        ] {
            let r = send(
                &client,
                client.get(svc.url("/hello")).header("traceparent", &bad),
            )
            .await;
            let (trace, _) = r.traceresponse();
            assert_ne!(trace, TRACE, "{bad}");
            let spans = svc.trace(&trace, 1);
            assert!(
                server_span(&spans, "GET /hello")["parent_span_id"].is_null(),
                "{bad}"
            );
        }
        let r = send(
            &client,
            client
                .get(svc.url("/hello"))
                .header("traceparent", format!("00-{TRACE}-{PARENT}-01"))
                .header("traceparent", format!("00-{TRACE}-{PARENT}-01")),
        )
        .await;
        assert_ne!(
            r.traceresponse().0,
            TRACE,
            "a repeated traceparent is refused"
        );

        // An application error: problem+json with its code and the exported trace id.
        let r = send(&client, client.get(svc.url("/users/9999"))).await;
        let trace = r.assert_problem(404, 1001);
        assert_eq!(r.json()["title"], "User not found");
        let spans = svc.trace(&trace, 1);
        let s = server_span(&spans, "GET /users/{id}");
        assert_eq!(s["attributes"]["http.response.status_code"], 404);
        assert_eq!(s["attributes"]["error.type"], "USER_NOT_FOUND");
        assert_eq!(
            s["status"], "unset",
            "4xx leaves a server span's status unset"
        );
        let e = exception(s);
        assert_eq!(e["attributes"]["exception.type"], "USER_NOT_FOUND");
        assert_eq!(e["attributes"]["faultline.error.code"], 1001);

        // Checkout: an error whose message names personal data.
        let r = send(
            &client,
            client.post(svc.url("/checkout")).json(&serde_json::json!({
                "email": "bob@example.com", "phone": "555-123-4567", "card": "4111111111111111"
            })),
        )
        .await;
        let trace = r.assert_problem(402, 2001);
        assert_eq!(
            r.json()["detail"],
            "payment declined for b***@example.com with card ****-****-****-1111",
            "the error body is masked"
        );
        let spans = svc.trace(&trace, 1);
        let s = server_span(&spans, "POST /checkout");
        let a = &s["attributes"];
        assert_eq!(a["error.type"], "PAYMENT_DECLINED");
        assert_eq!(a["app.customer.email"], "b***@example.com");
        assert_eq!(a["app.customer.phone"], "***-***-4567");
        assert_eq!(a["app.payment.card"], "****-****-****-1111");
        assert_eq!(
            exception(s)["attributes"]["exception.message"],
            "payment declined for b***@example.com with card ****-****-****-1111"
        );
        let everything = serde_json::to_string(&spans).unwrap();
        for raw in ["bob@example.com", "555-123-4567", "4111111111111111"] {
            assert!(!everything.contains(raw), "{raw} left the process");
        }

        // A panic: 500, code 5000, nothing of the panic text, still serving.
        let r = send(&client, client.get(svc.url("/panic"))).await;
        let trace = r.assert_problem(500, 5000);
        assert!(
            !r.body.contains("alice") && !r.body.contains("crashed"),
            "{}",
            r.body
        );
        let spans = svc.trace(&trace, 1);
        let s = server_span(&spans, "GET /panic");
        assert_eq!(s["status"], "error");
        assert_eq!(
            exception(s)["attributes"]["exception.message"],
            "payment worker crashed for a***@example.com"
        );
        assert!(
            !serde_json::to_string(&spans).unwrap().contains("alice@"),
            "the panic payload is masked"
        );
        assert_eq!(s["attributes"]["error.type"], "panic");
        assert_eq!(exception(s)["attributes"]["exception.type"], "panic");
        let r = send(&client, client.get(svc.url("/hello"))).await;
        assert_eq!(r.status, 200, "the service keeps serving after a panic");

        // Framework rejections are problem+json too.
        let r = send(&client, client.get(svc.url("/no/such/route"))).await;
        let trace = r.assert_problem(404, 4040);
        let spans = svc.trace(&trace, 1);
        let s = server_span(&spans, "GET");
        assert!(s["attributes"]["http.route"].is_null());
        let r = send(&client, client.post(svc.url("/hello"))).await;
        r.assert_problem(405, 4050);
        let r = send(
            &client,
            client
                .post(svc.url("/checkout"))
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
        assert!(r.status == 400 || r.status == 422, "{}", r.status);
        r.assert_problem(r.status, if r.status == 400 { 4000 } else { 4220 });

        // Downstream: SERVER -> CLIENT -> SERVER in one trace.
        let r = send(&client, client.get(svc.url("/downstream"))).await;
        assert_eq!(r.status, 200);
        let body = r.json();
        assert_eq!(body["downstream_status"], 200);
        let trace = body["trace_id"].as_str().unwrap().to_owned();
        assert_eq!(r.traceresponse().0, trace);
        let spans = svc.trace(&trace, 3);
        assert_eq!(spans.len(), 3, "{spans:#?}");
        let outer = server_span(&spans, "GET /downstream");
        let client_span = spans
            .iter()
            .find(|s| s["kind"] == "CLIENT")
            .expect("a CLIENT span");
        let inner = server_span(&spans, "GET /hello");
        assert_eq!(client_span["parent_span_id"], outer["span_id"]);
        assert_eq!(inner["parent_span_id"], client_span["span_id"]);
        assert_eq!(client_span["name"], "GET");
        assert_eq!(client_span["attributes"]["http.response.status_code"], 200);

        // GET /metrics on every framework, untraced: the error's trace id
        // as a label in Prometheus text, as an exemplar in OpenMetrics.
        let r = send(&client, client.get(svc.url("/users/0"))).await;
        let trace = r.assert_problem(404, 1001);
        let r = send(&client, client.get(svc.url("/metrics"))).await;
        assert_eq!(r.status, 200);
        assert!(
            r.headers.get("traceresponse").is_none(),
            "a scrape is not traced"
        );
        let ct = r.headers["content-type"].to_str().unwrap();
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        let series = r
            .body
            .lines()
            .find(|l| l.starts_with("faultline_trace_errors_total{") && l.contains(&trace))
            .unwrap_or_else(|| panic!("no per-trace error series for {trace}:\n{}", r.body));
        assert!(series.contains(r#"error_code="1001""#), "{series}");
        assert!(series.contains(r#"http_route="/users/{id}""#), "{series}");
        assert!(
            r.body.lines().any(
                |l| l.starts_with("http_server_request_duration_seconds_count{")
                    && l.contains(r#"http_route="/users/{id}""#)
                    && l.contains(r#"http_response_status_code="404""#)
            ),
            "{}",
            r.body
        );
        assert!(!r.body.contains("# EOF"));
        let r = send(
            &client,
            client.get(svc.url("/metrics")).header(
                "accept",
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
            ),
        )
        .await;
        let ct = r.headers["content-type"].to_str().unwrap();
        assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
        assert!(r.body.ends_with("# EOF\n"));
        let exemplar = format!(r#"trace_id="{trace}""#);
        assert!(
            r.body
                .lines()
                .any(|l| l.starts_with("faultline_errors_total{")
                    && l.contains(r#"error_code="1001""#)
                    && l.contains(" # {")
                    && l.contains(&exemplar)),
            "no exemplar with {trace}:\n{}",
            r.body
        );
    });
    let printed = svc.output().join("\n");
    for raw in ["bob@example.com", "4111111111111111", "alice@example.com"] {
        assert!(!printed.contains(raw), "{raw} printed by the service");
    }
    let (ok, took) = svc.stop();
    assert!(ok, "clean exit on SIGTERM");
    assert!(took.as_secs() < 10, "exited in {took:?}");
}

#[test]
fn axum_conforms() {
    conformance("axum");
}

#[test]
fn poem_conforms() {
    conformance("poem");
}

#[test]
fn warp_conforms() {
    conformance("warp");
}

#[test]
fn actix_conforms() {
    conformance("actix");
}

/// Thousands of concurrent requests, each with its own incoming trace: every
/// response's trace id and every exported span belong to their own request.
#[test]
fn concurrent_requests_never_share_context() {
    let svc = Service::start("axum", &[("OTEL_BSP_MAX_QUEUE_SIZE", "8192")]);
    let rt = runtime();
    let n = 2000usize;
    let results = rt.block_on(async {
        let client = reqwest::Client::new();
        let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(200));
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n {
            let client = client.clone();
            let url = svc.url(&format!("/users/{}", i % 1000 + 1));
            let sem = sem.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = sem.acquire().await.unwrap();
                let trace = format!("{:032x}", 0xabc0_0000_u128 + i as u128);
                let r = client
                    .get(url)
                    .header("traceparent", format!("00-{trace}-{:016x}-01", i + 1))
                    .send()
                    .await
                    .unwrap();
                let tr = r.headers()["traceresponse"].to_str().unwrap().to_owned();
                (trace, i + 1, tr)
            }));
        }
        let mut out = Vec::with_capacity(n);
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let mut span_ids = HashSet::new();
    for (trace, _, tr) in &results {
        assert!(
            tr.starts_with(&format!("00-{trace}-")),
            "{tr} answers {trace}"
        );
        assert!(span_ids.insert(tr.clone()));
    }
    // Server spans only: `load_user` is a child span of each.
    let server_spans = || -> Vec<Value> {
        svc.spans()
            .into_iter()
            .filter(|s| s["kind"] == "SERVER")
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while server_spans().len() < n && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let spans = server_spans();
    assert_eq!(spans.len(), n, "every request exported one server span");
    for s in &spans {
        let trace = s["trace_id"].as_str().unwrap();
        let i = u128::from_str_radix(trace, 16).unwrap() - 0xabc0_0000;
        assert_eq!(
            s["parent_span_id"],
            format!("{:016x}", i + 1),
            "span of {trace} has its own parent"
        );
    }
}

/// Two services on loopback, A calling B through the reqwest integration:
/// one trace, B's server span a child of A's client span.
#[test]
fn two_services_make_one_trace() {
    let b = Service::start("axum", &[("OTEL_SERVICE_NAME", "service-b")]);
    let a = Service::start(
        "axum",
        &[
            ("OTEL_SERVICE_NAME", "service-a"),
            ("DOWNSTREAM_URL", &b.url("/users/7")),
        ],
    );
    let rt = runtime();
    let body: Value = rt.block_on(async {
        reqwest::get(a.url("/downstream"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(body["downstream_status"], 200);
    let trace = body["trace_id"].as_str().unwrap();
    let a_spans = a.trace(trace, 2);
    let b_spans = b.trace(trace, 1);
    let client_span = a_spans
        .iter()
        .find(|s| s["kind"] == "CLIENT")
        .expect("A's CLIENT span");
    let b_server = server_span(&b_spans, "GET /users/{id}");
    assert_eq!(client_span["service"], "service-a");
    assert_eq!(b_server["service"], "service-b");
    assert_eq!(b_server["parent_span_id"], client_span["span_id"]);
    assert_eq!(
        client_span["parent_span_id"],
        server_span(&a_spans, "GET /downstream")["span_id"]
    );
}

/// One test per framework: the reference service started on it with `env`,
/// `check` run against it, then a clean stop.
macro_rules! on_each_framework {
    ($check:ident, $env:expr; $($test:ident => $framework:literal),+) => {
        $(
            #[test]
            fn $test() {
                let svc = Service::start($framework, $env);
                $check(&svc);
                let (ok, _) = svc.stop();
                assert!(ok, "clean exit on SIGTERM");
            }
        )+
    };
}

/// `GET /stream`: the span ends with the body, not with its
/// headers; a client that goes away mid-body ends it as such.
fn streamed_body_ends_the_span(svc: &Service) {
    let rt = runtime();
    let client = reqwest::Client::new();
    // `GET /stream` in the trace `trace`, its body not read yet.
    let stream = |trace: &'static str| {
        client
            .get(svc.url("/stream"))
            .header("traceparent", format!("00-{trace}-{PARENT}-01"))
            .send()
    };
    rt.block_on(async {
        let trace = "5ea0000000000000000000000000000a";
        let mut response = stream(trace).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        assert!(response.headers().contains_key("traceresponse"));
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.unwrap() {
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(body).unwrap();
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(
            events,
            ["data: 1", "data: 2", "data: 3", "data: 4", "data: 5"]
        );
        let spans = svc.trace(trace, 1);
        let s = server_span(&spans, "GET /stream");
        let a = &s["attributes"];
        assert_eq!(a["http.response.body.size"], text.len());
        assert_eq!(a["http.response.status_code"], 200);
        assert!(a["error.type"].is_null(), "{s}");
        // The body waits 4 x 200 ms between its five events: a span that
        // ends with the body lasts at least that (one that ended with the
        // headers would last a few milliseconds).
        assert!(s["duration_us"].as_u64().unwrap() >= 800_000, "{s}");
        // So does the request-duration metric.
        let metrics = send(&client, client.get(svc.url("/metrics"))).await.body;
        let sum: f64 = metrics
            .lines()
            .find(|l| {
                l.starts_with("http_server_request_duration_seconds_sum{")
                    && l.contains(r#"http_route="/stream""#)
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no duration of /stream:\n{metrics}"));
        assert!(sum >= 0.8, "{sum}");

        // A client that reads the first event and goes away.
        let cut = "5ea0000000000000000000000000000b";
        let mut response = stream(cut).await.unwrap();
        let first = response.chunk().await.unwrap().unwrap();
        assert_eq!(&first[..], b"data: 1\n\n");
        drop(response);
        let spans = svc.trace(cut, 1);
        let s = server_span(&spans, "GET /stream");
        assert_eq!(s["attributes"]["error.type"], "client_disconnected", "{s}");
        assert_eq!(s["status"], "error");
        let sent = s["attributes"]["http.response.body.size"].as_u64().unwrap();
        assert!((9..45).contains(&sent), "{sent} bytes sent");
    });
}

on_each_framework!(streamed_body_ends_the_span, &[];
    axum_ends_a_streamed_span_with_its_body => "axum",
    poem_ends_a_streamed_span_with_its_body => "poem",
    warp_ends_a_streamed_span_with_its_body => "warp",
    actix_ends_a_streamed_span_with_its_body => "actix");

/// `FAULTLINE_EXCLUDED_ROUTES=/users/{id},/down*`: no span, no `traceresponse`,
/// no metric series; the incoming context still reaches outgoing calls.
fn excluded_routes_are_not_traced(svc: &Service) {
    let rt = runtime();
    let client = reqwest::Client::new();
    rt.block_on(async {
        let r = send(
            &client,
            client
                .get(svc.url("/users/7"))
                .header("traceparent", format!("00-{TRACE}-{PARENT}-01")),
        )
        .await;
        assert_eq!((r.status, r.json()), (200, serde_json::json!({"id": 7})));
        assert!(r.headers.get("traceresponse").is_none());
        // Errors are still answered as problem details, without a trace id
        // (no trace is exported for them).
        let r = send(&client, client.get(svc.url("/users/0"))).await;
        assert_eq!(r.status, 404);
        assert_eq!(r.headers["content-type"], "application/problem+json");
        assert_eq!(r.json()["code"], 1001);
        assert!(r.json().get("trace_id").is_none(), "{}", r.body);
        assert!(r.headers.get("traceresponse").is_none());

        // An excluded route calling out: the caller's trace goes on, with
        // no span of ours in between.
        let trace = "e0c1000000000000000000000000000d";
        let r = send(
            &client,
            client
                .get(svc.url("/downstream"))
                .header("traceparent", format!("00-{trace}-{PARENT}-01")),
        )
        .await;
        assert_eq!(r.status, 200);
        assert!(r.headers.get("traceresponse").is_none());
        assert_eq!(r.json()["trace_id"], trace);
        let spans = svc.trace(trace, 2);
        assert_eq!(spans.len(), 2, "{spans:#?}");
        let client_span = spans
            .iter()
            .find(|s| s["kind"] == "CLIENT")
            .expect("a CLIENT span");
        assert_eq!(client_span["parent_span_id"], PARENT);
        let hello = server_span(&spans, "GET /hello");
        assert_eq!(hello["parent_span_id"], client_span["span_id"]);

        // A traced request after them: once its span is out, the earlier
        // requests' would be too, had they any.
        let r = send(&client, client.get(svc.url("/hello"))).await;
        let (last, _) = r.traceresponse();
        svc.trace(&last, 1);
        let spans = svc.spans();
        assert!(
            spans.iter().all(|s| s["kind"] != "SERVER"
                || !matches!(
                    s["attributes"]["url.path"].as_str(),
                    Some("/users/7" | "/users/0" | "/downstream")
                )),
            "{spans:#?}"
        );
        let metrics = send(&client, client.get(svc.url("/metrics"))).await.body;
        assert!(metrics.contains(r#"http_route="/hello""#), "{metrics}");
        for route in ["/users/{id}", "/downstream"] {
            assert!(
                !metrics.contains(&format!(r#"http_route="{route}""#)),
                "{route}: {metrics}"
            );
        }
    });
}

on_each_framework!(excluded_routes_are_not_traced, &[("FAULTLINE_EXCLUDED_ROUTES", "/users/{id}, /down*")];
    axum_leaves_excluded_routes_untraced => "axum",
    poem_leaves_excluded_routes_untraced => "poem",
    warp_leaves_excluded_routes_untraced => "warp",
    actix_leaves_excluded_routes_untraced => "actix");
