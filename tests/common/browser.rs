//! A real Chromium driven through chromedriver (WebDriver, with fantoccini), one per test, each
//! with a profile of its own. `scripts/setup.sh` installs Debian's `chromium` and
//! `chromium-driver`; without them the browser tests say they were skipped, unless
//! SCENEDEX_REQUIRE_BROWSER is set (as scripts/test.sh does), when they fail.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

pub struct Browser {
    pub client: Client,
    pub runtime: tokio::runtime::Runtime,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn program(names: &[&str]) -> Option<PathBuf> {
    names
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path)
                .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
                .find(|p| p.is_file())
        })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// A headless Chromium, or None (with a note) when this machine has none.
    pub fn start() -> Option<Browser> {
        let driver = program(&["chromedriver", "/usr/bin/chromedriver"]);
        let chromium = std::env::var_os("CHROME")
            .map(PathBuf::from)
            .or_else(|| program(&["/usr/lib/chromium/chromium", "chromium", "google-chrome"]));
        let (Some(driver), Some(chromium)) = (driver, chromium) else {
            if std::env::var_os("SCENEDEX_REQUIRE_BROWSER").is_some() {
                panic!("chromium and chromedriver are needed: run scripts/setup.sh");
            }
            eprintln!(
                "skipped: no chromium and chromedriver here (scripts/setup.sh installs them)"
            );
            return None;
        };
        let port = free_port();
        let driver = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--autoplay-policy=no-user-gesture-required", "--mute-audio",
                    "--window-size=1280,800", format!("--user-data-dir={}", profile.path().display()),
                ],
            }
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = runtime.block_on(async {
            loop {
                let connector = hyper_util::client::legacy::connect::HttpConnector::new();
                match ClientBuilder::new(connector)
                    .capabilities(capabilities.clone())
                    .connect(&url)
                    .await
                {
                    Ok(client) => return client,
                    Err(e) if started.elapsed() > Duration::from_secs(30) => {
                        panic!("chromedriver did not start Chromium: {e}")
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        Some(Browser {
            client,
            runtime,
            driver,
            _profile: profile,
        })
    }

    /// Runs `script` (a function body) until it returns something other than null or false,
    /// and returns that; fails after `seconds`.
    pub fn until(&self, script: &str, seconds: u64) -> Value {
        let started = Instant::now();
        loop {
            let value = self.js(script);
            if !value.is_null() && value != Value::Bool(false) {
                return value;
            }
            if started.elapsed() > Duration::from_secs(seconds) {
                panic!("gave up after {seconds} s waiting for: {script}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn js(&self, script: &str) -> Value {
        self.runtime
            .block_on(self.client.execute(script, vec![]))
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.runtime.block_on(self.client.clone().close());
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
