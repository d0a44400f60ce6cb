//! The gRPC channel over this process's stdin/stdout, which is how BuildKit talks to a
//! frontend container: one HTTP/2 connection, opened once.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use hyper_util::rt::TokioIo;
use tokio::io::{Join, Stdin, Stdout};
use tonic::transport::{Channel, Endpoint, Uri};

type StdioStream = TokioIo<Join<Stdin, Stdout>>;

/// Connects a channel whose only connection is stdin/stdout.
pub async fn channel() -> Result<Channel> {
    let stream =
        Arc::new(Mutex::new(Some(TokioIo::new(tokio::io::join(tokio::io::stdin(), tokio::io::stdout())))));
    let connector = tower::service_fn(move |_: Uri| {
        let stream = stream.clone();
        async move {
            let taken: Option<StdioStream> = stream.lock().ok().and_then(|mut s| s.take());
            taken.ok_or_else(|| std::io::Error::other("the stdio connection to BuildKit was closed"))
        }
    });
    // The URI is never dialled; it only names the authority in HTTP/2 headers.
    Endpoint::from_static("http://buildkit.gateway")
        .connect_with_connector(connector)
        .await
        .context("connecting to BuildKit's gateway over stdin/stdout")
}
