//! The stand-ins' HTTP/1.1 server: hyper, through axum, which keeps connections alive as a
//! provider's server does. Each request is handed whole (head and body) to the stand-in's
//! blocking handlers, which answer it with a `Response`.
//!
//! tiny_http 0.12, which the stand-in ran on before, runs each connection on a thread of its
//! task pool for the connection's whole life, and its spawn loses a wake-up when connections
//! arrive together: a new connection then waits behind kept-alive idle ones, and its request
//! gets no answer until the client's time-out (issue 25).
#![allow(dead_code)]

use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::mpsc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderName, HeaderValue, StatusCode};

/// One request, read whole.
pub struct Request {
    method: String,
    url: String,
    /// Names in lower case.
    headers: Vec<(String, String)>,
    body: Cursor<Vec<u8>>,
    reply: Option<tokio::sync::oneshot::Sender<Response>>,
}

impl Request {
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The path and query, as sent.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every header, its name in lower case.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The value of a header, by name in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn as_reader(&mut self) -> &mut Cursor<Vec<u8>> {
        &mut self.body
    }

    pub fn respond(mut self, response: Response) -> std::io::Result<()> {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(response);
        }
        Ok(())
    }
}

/// An answer: status, headers and body; or a body cut short (declared longer than it is, and
/// the connection dropped halfway), as a broken upstream sends.
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    declared: Option<usize>,
}

impl Response {
    pub fn from_string(body: impl Into<String>) -> Response {
        Response {
            status: 200,
            headers: Vec::new(),
            body: body.into().into_bytes(),
            declared: None,
        }
    }

    /// `body`, its length declared as `declared`, the connection dropped after it.
    pub fn cut_short(body: impl Into<String>, declared: usize) -> Response {
        Response {
            declared: Some(declared),
            ..Response::from_string(body)
        }
        .with_header("Content-Type", "application/json")
    }

    pub fn with_status_code(mut self, status: u16) -> Response {
        self.status = status;
        self
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.add_header(name, value);
        self
    }

    pub fn add_header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.push((name.to_string(), value.into()));
    }

    fn into_axum(self) -> axum::response::Response {
        let body = match self.declared {
            None => Body::from(self.body),
            // A stream that fails after its first part: hyper drops the connection there.
            Some(_) => Body::from_stream(futures_util::stream::iter([
                Ok::<Bytes, std::io::Error>(Bytes::from(self.body)),
                Err(std::io::Error::other("cut short")),
            ])),
        };
        let mut response = axum::response::Response::new(body);
        *response.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let headers = response.headers_mut();
        for (name, value) in self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                headers.append(name, value);
            }
        }
        if let Some(declared) = self.declared {
            headers.insert(
                axum::http::header::CONTENT_LENGTH,
                HeaderValue::from(declared),
            );
        }
        response
    }
}

/// A server on a loopback port; its requests come out of `incoming_requests`, each to be
/// answered once (an unanswered one gets a 500). Stops when dropped.
pub struct Server {
    addr: SocketAddr,
    requests: std::sync::Mutex<Option<mpsc::Receiver<Request>>>,
    stop: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl Server {
    pub fn http(port: u16) -> std::io::Result<Server> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (send, requests) = mpsc::channel::<Request>();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime for the stand-in");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
                let app = axum::Router::new().fallback(move |request| take(send.clone(), request));
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await;
            });
            // Connections still open (kept alive) end with the runtime.
            runtime.shutdown_background();
        });
        Ok(Server {
            addr,
            requests: std::sync::Mutex::new(Some(requests)),
            stop: std::sync::Mutex::new(Some(stop)),
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request, until the server stops (once: the first caller takes them).
    pub fn incoming_requests(&self) -> mpsc::IntoIter<Request> {
        self.requests
            .lock()
            .unwrap()
            .take()
            .expect("one reader of the requests")
            .into_iter()
    }

    /// Stops the server; `incoming_requests` ends.
    pub fn unblock(&self) {
        if let Some(stop) = self.stop.lock().unwrap().take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.unblock();
    }
}

async fn take(
    send: mpsc::Sender<Request>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_string("unreadable body")
            .with_status_code(400)
            .into_axum();
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    let request = Request {
        method: parts.method.to_string(),
        url: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string()),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: Cursor::new(body.to_vec()),
        reply: Some(reply),
    };
    if send.send(request).is_err() {
        return Response::from_string("stopped")
            .with_status_code(503)
            .into_axum();
    }
    match answer.await {
        Ok(response) => response.into_axum(),
        Err(_) => Response::from_string("").with_status_code(500).into_axum(),
    }
}
