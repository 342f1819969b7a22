//! The reference service on poem (being written: the poem adapter lands next).

use crate::App;

/// Serves the routes until SIGINT or SIGTERM.
pub async fn serve(_app: App, _listener: tokio::net::TcpListener) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "the poem adapter is not available yet",
    ))
}
