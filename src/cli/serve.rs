//! `scenedex serve`: the web page. Prints its address and serves until Ctrl-C.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::{Error, ServeArgs};
use crate::serve::{self, ServeError, Token};

pub fn run(args: &ServeArgs) -> Result<(), Error> {
    let token = args.token.as_deref().and_then(Token::new);
    serve::check_bind(args.bind, token.as_ref()).map_err(|e| Error::Config(e.to_string()))?;
    let settings = args.store.settings();
    super::warn_about_key(&settings);
    let with_token = token.is_some();
    let mut app = serve::open(&settings, token)?;
    app.hosts = serve::hosts::Hosts::new(&args.allow_host);
    let ready = |addr: std::net::SocketAddr| {
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "http://{addr}/");
        let _ = stdout.flush();
        if with_token {
            eprintln!("every request needs the token: open http://{addr}/?token=… once, and the browser keeps it");
        }
        eprintln!("serving the index; Ctrl-C stops");
    };
    // Started once the page listens, so that a port in use costs no indexing.
    let watcher: Arc<OnceLock<Watcher>> = Arc::default();
    let started = watcher.clone();
    let ready = move |addr: std::net::SocketAddr| {
        ready(addr);
        if !args.watch.is_empty() {
            match Watcher::start(args) {
                Ok(w) => {
                    let _ = started.set(w);
                }
                Err(e) => eprintln!("warning: not watching: {e}"),
            }
        }
    };
    // The indexer writes through this process: the page stops once it has stopped.
    let stop = move || match (crate::stop::requested(), watcher.get()) {
        (false, _) => false,
        (true, None) => true,
        (true, Some(watcher)) => watcher.stopped(),
    };
    match serve::serve(app, args.bind, ready, stop) {
        Ok(()) => Err(Error::Interrupted),
        Err(e @ ServeError::Bind { .. }) => Err(Error::Config(e.to_string())),
        Err(e) => Err(Error::Service(e.to_string())),
    }
}

/// `scenedex index --watch PATH...` on the same index, run beside the page: it reaches the
/// index through this process, which holds it.
struct Watcher {
    child: Mutex<Child>,
    /// When it was asked to stop: once, as a second Ctrl-C quits mid-file.
    asked: Mutex<Option<std::time::Instant>>,
}

impl Watcher {
    fn start(args: &ServeArgs) -> Result<Watcher, Error> {
        let exe = std::env::current_exe()
            .map_err(|e| Error::Config(format!("cannot find this program to index with: {e}")))?;
        let mut command = Command::new(exe);
        command.args(["index", "--watch"]);
        let (place, store) = (&args.store.place, &args.store);
        if let Some(dir) = &place.index {
            command.arg("--index").arg(dir);
        }
        if let Some(urls) = &place.qdrant_url {
            command.arg("--qdrant-url").arg(urls.0.join(","));
        }
        command.args(["--collection", &place.collection]);
        if let Some(choice) = store.embedder {
            let name = match choice {
                crate::backends::EmbedderChoice::Local => "local",
                crate::backends::EmbedderChoice::Openai => "openai",
            };
            command.args(["--embedder", name]);
        }
        if let Some(model) = &store.embedding_model {
            command.args(["--embedding-model", model]);
        }
        if let Some(url) = &store.embedding_url {
            command.args(["--embedding-url", url]);
        }
        command.arg("--").args(&args.watch);
        // Its summaries join the page's notes; standard output is the page's address alone.
        let stderr = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::Config(e.to_string()))?;
        // Its own process group: a terminal's Ctrl-C reaches it only through the page, once
        // (a second would end it mid-file).
        let child = command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stderr))
            .spawn()
            .map_err(|e| Error::Config(format!("cannot start indexing: {e}")))?;
        Ok(Watcher {
            child: Mutex::new(child),
            asked: Mutex::new(None),
        })
    }

    /// Asks the indexer, once, to stop at a clean point, as Ctrl-C would; whether it has
    /// stopped. One that takes longer than `STOPPING` is ended.
    fn stopped(&self) -> bool {
        const STOPPING: Duration = Duration::from_secs(60);
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let mut asked = self.asked.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
            return true;
        }
        match *asked {
            None => {
                *asked = Some(std::time::Instant::now());
                if let Ok(pid) = i32::try_from(child.id()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGINT,
                    );
                }
                false
            }
            Some(at) if at.elapsed() > STOPPING => {
                let _ = child.kill();
                let _ = child.wait();
                true
            }
            Some(_) => false,
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}
