//! The tests' stand-in VLM as a program, for benchmarks: it serves OpenAI's chat completions on
//! loopback, checks every request as the real service would, answers after a set latency (as a
//! real model takes its time), and keeps the number of requests it answered in a file.
//!
//!     stand_in_vlm [--port N] [--latency-ms N] [--count-file PATH]
//!
//! It prints its base URL (for OPENAI_BASE_URL) on the first line, then runs until killed. The
//! key it expects is the tests' `sk-test-0123456789abcdef`.

#[path = "../tests/common/http.rs"]
mod http;
#[path = "../tests/common/vlm.rs"]
mod vlm;

use std::io::Write;
use std::time::Duration;

fn main() {
    let mut port = 0u16;
    let mut latency = 0u64;
    let mut count_file = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--port" => port = value.parse().expect("--port takes a number"),
            "--latency-ms" => latency = value.parse().expect("--latency-ms takes a number"),
            "--count-file" => count_file = Some(std::path::PathBuf::from(value)),
            other => {
                eprintln!("stand_in_vlm: unknown option {other}");
                std::process::exit(2);
            }
        }
    }
    let mock = vlm::MockVlm::start_on(vlm::Wire::OpenAi, port);
    mock.set_latency(Duration::from_millis(latency));
    println!("{}", mock.url);
    std::io::stdout().flush().expect("stdout");
    let mut written = usize::MAX;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let count = mock.seen().len();
        if let (Some(path), true) = (&count_file, count != written) {
            let partial = path.with_extension("partial");
            std::fs::write(&partial, format!("{count}\n")).expect("count file");
            std::fs::rename(&partial, path).expect("count file");
            written = count;
        }
    }
}
