//! `scenedex serve`: the web page. Prints its address and serves until Ctrl-C.

use std::io::Write;

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
    match serve::serve(app, args.bind, ready, crate::stop::requested) {
        Ok(()) => Err(Error::Interrupted),
        Err(e @ ServeError::Bind { .. }) => Err(Error::Config(e.to_string())),
        Err(e) => Err(Error::Service(e.to_string())),
    }
}
