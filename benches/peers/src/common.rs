//! What both peers share with the reference service (examples/service):
//! the command line, the listening line, the user lookup and the signals.

use std::net::SocketAddr;

/// `--port N` (0 picks a free port); without it, `PORT` or 8080. The
/// flags in `extra` are accepted and returned when present.
pub fn args(extra: &[&'static str]) -> Result<(u16, Vec<&'static str>), String> {
    let mut port = None;
    let mut flags = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            flag if extra.contains(&flag) => {
                flags.extend(extra.iter().filter(|f| **f == flag));
            }
            "--port" => {
                let p = args.next().ok_or("--port needs a value")?;
                port = Some(p.parse().map_err(|_| format!("--port: invalid value {p:?}"))?);
            }
            "-h" | "--help" => return Err(format!("usage: [--port 8080] {}", extra.join(" "))),
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    let port = match port {
        Some(p) => p,
        None => match std::env::var("PORT") {
            Ok(p) if !p.trim().is_empty() => {
                p.trim().parse().map_err(|_| format!("PORT: invalid value {p:?}"))?
            }
            _ => 8080,
        },
    };
    Ok((port, flags))
}

/// The runtime the reference service uses (a multi-threaded one: as many
/// workers as the process may use cores, one when pinned to one).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Binds the port on loopback and prints the line the scripts wait for.
pub async fn listen(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!("listening on http://127.0.0.1:{}", listener.local_addr()?.port());
    Ok(listener)
}

/// `GET /users/{id}`: `{"id": N}` for 1..=1000, `None` otherwise (404).
pub fn user(id: &str) -> Option<serde_json::Value> {
    match id.parse::<u32>() {
        Ok(n) if (1..=1000).contains(&n) => Some(serde_json::json!({ "id": n })),
        _ => None,
    }
}

/// The 404 body for an unknown user.
pub fn not_found(id: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "about:blank",
        "title": "User not found",
        "status": 404,
        "detail": format!("no user with id {id}"),
    })
}

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
