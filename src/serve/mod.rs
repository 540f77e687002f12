//! serve: one web page over the index. Search as you type (the same `search` as the command
//! line), hits with thumbnails, and the scene played in the page at its time.
//!
//! Everything a request can reach is named by a fingerprint the index holds and a time, never
//! by a path from the URL. Beyond loopback every request must carry the token.

mod auth;
pub mod hosts;
mod media;
mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::embed::Embedder;
use crate::index::thumbs::Thumbs;
use crate::store::VectorStore;

pub use auth::Token;

/// What a server needs, opened by the front end.
pub struct App {
    pub store: Box<dyn VectorStore>,
    pub embedder: Arc<dyn Embedder>,
    pub thumbs: Thumbs,
    /// Playable stretches of other containers and codecs.
    pub streams: media::Streams,
    /// This machine, whose paths can be played.
    pub host: String,
    pub token: Option<Token>,
    /// The names requests may be addressed to besides IP literals and localhost.
    pub hosts: hosts::Hosts,
    probed: routes::Probed,
}

impl App {
    pub fn new(
        store: Box<dyn VectorStore>,
        embedder: Arc<dyn Embedder>,
        thumbs: Thumbs,
        streams: PathBuf,
        host: String,
        token: Option<Token>,
    ) -> App {
        App {
            store,
            embedder,
            thumbs,
            streams: media::Streams::new(streams, media::STREAMS_LIMIT),
            host,
            token,
            hosts: hosts::Hosts::default(),
            probed: Default::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "--bind {0} lets other machines see your footage; give a token with --token or \
         SCENEDEX_TOKEN (every request must then carry it), or bind 127.0.0.1"
    )]
    WideWithoutToken(SocketAddr),
    #[error("cannot listen on {addr}: {source}; pick another --bind")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Opens what a server reads, from the same settings as every command: the index (exit 7 if
/// another process holds an embedded one), its embedding model and thumbnails.
pub fn open(
    settings: &crate::backends::StoreSettings,
    token: Option<Token>,
) -> Result<App, crate::backends::SetupError> {
    settings.check_exists()?;
    let embedder = crate::backends::embedder(settings)?;
    let store = settings.open(embedder.as_ref(), false)?;
    let streams = dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("scenedex")
        .join("streams");
    Ok(App::new(
        store,
        embedder,
        settings.thumbs()?,
        streams,
        crate::index::lease::host_name(),
        token,
    ))
}

/// The address `--bind` names: `ADDR:PORT`, `[V6]:PORT`, or a host name and port
/// (`localhost:8731`), whose first IPv4 address is taken, as browsers try it first.
pub fn bind_address(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let bad =
        || format!("'{text}' is not ADDR:PORT or HOST:PORT (as 127.0.0.1:8731 or localhost:8731)");
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    let found: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|e| format!("'{host}' does not resolve to an address here ({e})"))?
        .collect();
    found
        .iter()
        .find(|a| a.is_ipv4())
        .or(found.first())
        .copied()
        .ok_or_else(|| format!("'{host}' does not resolve to an address here"))
}

/// Refuses a bind that reaches beyond this machine without a token.
pub fn check_bind(addr: SocketAddr, token: Option<&Token>) -> Result<(), ServeError> {
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(ServeError::WideWithoutToken(addr));
    }
    Ok(())
}

/// Listens on `addr`, tells `ready` the address it got (port 0 picks one), and serves until
/// `stop` says so. Open connections get a moment to finish, not forever.
pub fn serve(
    app: App,
    addr: SocketAddr,
    ready: impl FnOnce(SocketAddr),
    stop: impl Fn() -> bool + Send + Sync + 'static,
) -> Result<(), ServeError> {
    check_bind(addr, app.token.as_ref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        ready(listener.local_addr()?);
        let router = routes::router(Arc::new(app));
        let stop = Arc::new(stop);
        let asked = stop.clone();
        let stopping = async move {
            while !asked() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        let server = axum::serve(listener, router).with_graceful_shutdown(stopping);
        // A paused video keeps its connection open; stopping must not wait on it for long.
        let deadline = async move {
            while !stop() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        };
        tokio::select! {
            result = server => result.map_err(ServeError::Io),
            () = deadline => Ok(()),
        }
    })
}
