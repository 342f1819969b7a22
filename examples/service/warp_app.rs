//! The reference service on warp.
//!
//! warp has no route templates: each route declares its own with
//! `faultline::warp::route`, after its path filters, so that spans are named
//! `GET /users/{id}` as on the other frameworks.

use std::sync::Arc;

use faultline::warp::{Error, route};
use warp::{Filter, Rejection, Reply};

use crate::{App, Checkout, HarnessCall};

/// GET, and HEAD answered as GET (as on the other frameworks).
fn get() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::get().or(warp::head()).unify()
}

async fn user(id: String, app: Arc<App>) -> Result<impl Reply, Rejection> {
    let user = app.user(&id).map_err(Error::from)?;
    Ok(warp::reply::json(&user))
}

fn checkout(app: Arc<App>, body: Checkout) -> Error {
    app.checkout(&body).into()
}

fn panic(app: Arc<App>) -> &'static str {
    app.panic()
}

async fn downstream(app: Arc<App>) -> impl Reply {
    warp::reply::json(&app.downstream().await)
}

async fn harness(app: Arc<App>, calls: Vec<HarnessCall>) -> &'static str {
    app.harness(calls).await;
    ""
}

/// Serves the routes until SIGINT or SIGTERM.
pub async fn serve(app: App, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let engine = app.engine.clone();
    // In an `Arc`: warp runs this filter for every route it tries, and `App`
    // holds an HTTP client whose clone copies its middleware list.
    let app = Arc::new(app);
    let app = warp::any().map(move || app.clone());
    let hello = warp::path!("hello")
        .and(route("/hello"))
        .and(get())
        .map(|| "hello");
    let users = warp::path!("users" / String)
        .and(route("/users/{id}"))
        .and(get())
        .and(app.clone())
        .and_then(user);
    let checkout = warp::path!("checkout")
        .and(route("/checkout"))
        .and(warp::post())
        .and(app.clone())
        .and(warp::body::json())
        .map(checkout);
    let panic = warp::path!("panic")
        .and(route("/panic"))
        .and(get())
        .and(app.clone())
        .map(panic);
    let downstream = warp::path!("downstream")
        .and(route("/downstream"))
        .and(get())
        .and(app.clone())
        .then(downstream);
    let harness = warp::path!("test")
        .and(route("/test"))
        .and(warp::post())
        .and(app)
        .and(warp::body::json())
        .then(harness);
    let routes = hello
        .or(users)
        .or(checkout)
        .or(panic)
        .or(downstream)
        .or(harness);
    match engine {
        Some(engine) => {
            faultline::warp::traced(engine, routes)
                .serve(listener)
                .graceful(crate::shutdown_signal())
                .run()
                .await
        }
        None => {
            warp::serve(routes.recover(faultline::warp::recover))
                .incoming(listener)
                .graceful(crate::shutdown_signal())
                .run()
                .await
        }
    }
    Ok(())
}
