//! How results are shown: times as HH:MM:SS.mmm, tables for people, JSON lines for scripts.

use std::io::Write;

use serde::Serialize;

use super::Error;

pub use crate::decode::clock;

/// A file name that sorts by time and is valid on every file system.
pub fn time_file_name(seconds: f64, extension: &str) -> String {
    format!("{}.{extension}", clock(seconds).replace(':', "-"))
}

/// Times in JSON are rounded to the microsecond, so output does not carry float noise.
pub fn round_us(seconds: f64) -> f64 {
    (seconds * 1e6).round() / 1e6
}

/// "1 frame", "2 frames".
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Writes lines to standard output, turning failures into the command's error.
pub struct Out {
    stdout: std::io::Stdout,
}

impl Out {
    pub fn new() -> Self {
        Out {
            stdout: std::io::stdout(),
        }
    }

    pub fn line(&mut self, text: &str) -> Result<(), Error> {
        writeln!(self.stdout.lock(), "{text}").map_err(Error::Stdout)
    }

    pub fn raw(&mut self, text: &str) -> Result<(), Error> {
        write!(self.stdout.lock(), "{text}").map_err(Error::Stdout)
    }

    pub fn json<T: Serialize>(&mut self, value: &T) -> Result<(), Error> {
        let text = serde_json::to_string(value).expect("output types serialize");
        self.line(&text)
    }

    pub fn flush(&mut self) -> Result<(), Error> {
        self.stdout.flush().map_err(Error::Stdout)
    }
}

/// A progress bar on standard error over the video's duration; silent when stderr is not a
/// terminal, so scripts and logs see only results.
pub fn progress(duration: Option<f64>) -> indicatif::ProgressBar {
    let length = duration.map_or(0, |d| (d * 1000.0) as u64);
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(length),
        indicatif::ProgressDrawTarget::stderr(),
    );
    let style = indicatif::ProgressStyle::with_template("{spinner} {wide_bar} {percent:>3}% {msg}")
        .expect("template is valid");
    bar.set_style(style);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_rounds_to_milliseconds_and_carries_over() {
        assert_eq!(clock(0.0), "00:00:00.000");
        assert_eq!(clock(2.0004), "00:00:02.000");
        assert_eq!(clock(59.9996), "00:01:00.000");
        assert_eq!(clock(3723.25), "01:02:03.250");
    }

    /// Frames shown before a file's start were clamped to 0, so two could share a time.
    #[test]
    fn issue10_a_time_before_the_start_keeps_its_sign() {
        assert_eq!(clock(-0.04), "-00:00:00.040");
        assert_eq!(clock(-0.0001), "00:00:00.000");
    }

    #[test]
    fn time_file_names_sort_by_time() {
        let mut names = vec![
            time_file_name(61.0, "jpg"),
            time_file_name(9.5, "jpg"),
            time_file_name(600.0, "jpg"),
        ];
        names.sort();
        assert_eq!(
            names,
            ["00-00-09.500.jpg", "00-01-01.000.jpg", "00-10-00.000.jpg"]
        );
    }
}
