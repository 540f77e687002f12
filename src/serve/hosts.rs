//! The page's neighbours. A web page the user visits can point a name of its own at
//! 127.0.0.1 (DNS rebinding) and then read whatever `serve` answers, as its own origin; the
//! browser still sends that name as `Host`. So only the names this server is known by are
//! answered: IP literals (a rebinding page is never on one), `localhost` and names under it,
//! and those given with `--allow-host`. A request another site's page sends (its `Origin`
//! names another host) is refused as well. The raw headers are read, never a forwarded host,
//! which a page's script can set.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::App;

/// The host names `serve` answers besides IP literals and localhost, lower case.
#[derive(Clone, Debug, Default)]
pub struct Hosts {
    allowed: Vec<String>,
}

impl Hosts {
    pub fn new(allowed: &[String]) -> Hosts {
        Hosts {
            allowed: allowed
                .iter()
                .map(|h| name_of(h).trim_end_matches('.').to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
        }
    }

    /// Whether a `Host` header (a name or address, maybe with a port) names this server.
    pub fn allows(&self, host: &str) -> bool {
        let name = name_of(host).to_ascii_lowercase();
        let name = name.trim_end_matches('.');
        name.parse::<IpAddr>().is_ok()
            || name == "localhost"
            || name.ends_with(".localhost")
            || self.allowed.iter().any(|a| a == name)
    }

    /// Whether an `Origin` header is a page of this server: the one the request is sent to.
    fn allows_origin(&self, origin: &str, host: &str) -> bool {
        let Some((scheme, authority)) = origin.split_once("://") else {
            return false;
        };
        matches!(scheme, "http" | "https")
            && authority.eq_ignore_ascii_case(host.trim())
            && self.allows(authority)
    }
}

/// The host of `name:port`, `[v6]:port` or a bare name or address.
fn name_of(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match host.rsplit_once(':') {
        // More than one colon without brackets is a bare IPv6 address.
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// Refuses requests for another host name, or sent by another site's page: 403.
pub async fn require(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    match check(&app.hosts, &request) {
        Ok(()) => next.run(request).await,
        Err(why) => (StatusCode::FORBIDDEN, format!("403: {why}\n")).into_response(),
    }
}

fn check(hosts: &Hosts, request: &Request) -> Result<(), &'static str> {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .filter(|h| hosts.allows(h))
        .ok_or("this server answers only to its own address, localhost, or a name given with --allow-host")?;
    match headers.get(header::ORIGIN).map(|o| o.to_str()) {
        Some(Ok(origin)) if hosts.allows_origin(origin, host) => Ok(()),
        Some(_) => Err("requests from another site's pages are refused"),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_addresses_localhost_and_names_given_are_this_server() {
        let hosts = Hosts::new(&["Media.Lan:8731".to_string(), String::new()]);
        for yes in [
            "127.0.0.1:8731",
            "127.0.0.1",
            "[::1]:8731",
            "::1",
            "192.168.1.20:80",
            "localhost:8731",
            "LOCALHOST",
            "app.localhost:1",
            "media.lan:8731",
            "media.lan.",
        ] {
            assert!(hosts.allows(yes), "{yes}");
        }
        for no in [
            "evil.example:8731",
            "evil.example",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "media.lan.evil.example",
            "",
        ] {
            assert!(!hosts.allows(no), "{no}");
        }
        assert!(hosts.allows_origin("http://127.0.0.1:8731", "127.0.0.1:8731"));
        assert!(!hosts.allows_origin("http://localhost:3000", "127.0.0.1:8731"));
        assert!(!hosts.allows_origin("http://evil.example", "evil.example"));
        assert!(!hosts.allows_origin("null", "127.0.0.1:8731"));
    }
}
