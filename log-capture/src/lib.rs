//! Captures every log line at TRACE, in the JSON format the functions use, so that tests
//! can prove no share, token, password or secret ID is ever logged.
//!
//! A crate of its own so that it is compiled optimised once, even in test builds: the
//! subscriber's formatting code is generic and is instantiated where the subscriber is
//! built, here. The integration tests log tens of megabytes per test at TRACE (the AWS
//! SDK and the HTTP/2 stack describe every request); formatting and searching them
//! unoptimised was a third of the test run's CPU.

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use tracing::subscriber::DefaultGuard;

/// Everything logged at any level on this thread while it lives, as JSON lines.
pub struct LogCapture {
    buffer: Arc<Mutex<Vec<u8>>>,
    _guard: DefaultGuard,
}

impl LogCapture {
    /// What was logged so far.
    pub fn contents(&self) -> String {
        let bytes = self
            .buffer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures logs at TRACE on the current thread (a `#[tokio::test]` runs on one thread)
/// with the same JSON format the functions use.
pub fn capture_logs() -> LogCapture {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || Sink(writer.clone()))
        .finish();
    LogCapture {
        buffer,
        _guard: tracing::subscriber::set_default(subscriber),
    }
}

/// The first of `needles` found in `text`, if any (the search behind the tests' "no
/// secret leaked" checks, optimised here with the rest).
pub fn first_found<'a>(text: &str, needles: &'a [String]) -> Option<&'a str> {
    needles
        .iter()
        .map(String::as_str)
        .find(|needle| text.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_is_captured_as_json_and_searched() {
        let logs = capture_logs();
        tracing::trace!(value = "deep", "a trace line");
        tracing::info!("an info line");
        let text = logs.contents();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.lines().all(|l| l.starts_with('{') && l.ends_with('}')));
        let needles = ["absent".to_owned(), "deep".to_owned()];
        assert_eq!(first_found(&text, &needles), Some("deep"));
        assert_eq!(first_found(&text, &needles[..1]), None);
    }
}
