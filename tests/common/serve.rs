//! `scenedex serve` run for a test: started on a free port, stopped with Ctrl-C when dropped,
//! and plain HTTP/1.1 requests written by hand, so that a URL reaches the server exactly as
//! written (`..` included), as a hostile client would send it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Served {
    pub child: Child,
    /// `http://127.0.0.1:PORT`, without a final slash.
    pub base: String,
    /// What the server wrote to standard error, once it stopped (see `stop`).
    pub stderr: String,
}

impl Served {
    /// Starts `command` (a `scenedex serve …` with `--bind 127.0.0.1:0`) and waits for the
    /// address it prints.
    pub fn start(mut command: Command) -> Served {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if line.is_empty() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!("serve did not start: {stderr}");
        }
        let base = line.trim().trim_end_matches('/').to_string();
        Served {
            child,
            base,
            stderr: String::new(),
        }
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        get(&self.base, path, headers)
    }

    /// Ctrl-C, then what it printed on standard error and its exit status.
    pub fn stop(&mut self) -> Option<i32> {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let status = self.child.wait().ok()?;
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut self.stderr);
        }
        status.code()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// GET `path` from `base` with the request line written as given.
pub fn get(base: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        request.push_str(&format!("Host: {address}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP reply");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    Reply {
        status,
        head,
        body: raw[split + 4..].to_vec(),
    }
}
