//! Telling the operators what a failover did: one message to one topic.

use async_trait::async_trait;

use crate::errors::{Classify, ServiceFailure};

/// The longest subject sent, in characters. AWS documents "less than 100 characters";
/// moto, and by its maintainers' account AWS too, takes 100. One character is a cheap
/// margin against the documented reading.
pub const MAX_SUBJECT_CHARS: usize = 99;

/// The longest message sent, in bytes: SNS takes 256 KiB (262,144 bytes) for the whole
/// message; the rest is left for the subject and the request's own fields.
const MAX_MESSAGE_BYTES: usize = 256 * 1024 - 4 * 1024;

/// `subject` as a topic takes it: one line (each control character, line breaks
/// included, becomes a space), trimmed, and cut to [`MAX_SUBJECT_CHARS`] characters on
/// a character boundary, ending with `…` when it was cut.
pub fn fit_subject(subject: &str) -> String {
    let line: String = subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let line = line.trim();
    if line.chars().count() <= MAX_SUBJECT_CHARS {
        return line.to_owned();
    }
    let mut cut: String = line.chars().take(MAX_SUBJECT_CHARS - 1).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

/// `message` cut to the topic's size limit on a character boundary, saying so at its end.
fn fit_message(message: &str) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message.to_owned();
    }
    let note = format!("\n[cut: the message had {} bytes]", message.len());
    let mut end = MAX_MESSAGE_BYTES - note.len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{note}", &message[..end])
}

/// One notification as a topic receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The subject, fitted by [`fit_subject`]; email subscribers see it as the subject.
    pub subject: String,
    /// The message, cut only past the topic's size limit.
    pub message: String,
}

impl Notification {
    /// The notification a [`Notifier`] sends for `subject` and `message`: what the fake
    /// records and what the topic receives.
    pub fn fitted(subject: &str, message: &str) -> Self {
        Self {
            subject: fit_subject(subject),
            message: fit_message(message),
        }
    }
}

/// Why a notification was not sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The topic does not exist: a configuration error.
    #[error("notification topic {topic} does not exist; check its ARN")]
    NoSuchTopic {
        /// The topic's ARN.
        topic: String,
    },
    /// The topic refused the message (an invalid parameter).
    #[error("notification topic {topic} refused the message: {reason}")]
    Refused {
        /// The topic's ARN.
        topic: String,
        /// The service's answer.
        #[source]
        reason: ServiceFailure,
    },
    /// The notification service failed or denied the call (the SDK already retried).
    #[error("cannot publish to notification topic {topic}: {reason}")]
    Unavailable {
        /// The topic's ARN.
        topic: String,
        /// The service's error, with its context.
        #[source]
        reason: ServiceFailure,
    },
}

impl Classify for NotifyError {
    fn retry_helps(&self) -> bool {
        matches!(self, Self::Unavailable { reason, .. } if reason.retry_helps())
    }
    fn name(&self) -> &'static str {
        match self {
            Self::NoSuchTopic { .. } => "NoSuchTopic",
            Self::Refused { .. } => "NotificationRefused",
            Self::Unavailable { reason, .. } => reason.name("NotificationNotSent"),
        }
    }
}

/// The operators' notification topic (fixed when built).
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Sends [`Notification::fitted`]`(subject, message)` to every subscriber; returns once
    /// the topic accepted it. A subject too long or on several lines is fitted, never
    /// refused: a failover's report must not fail on its own wording.
    async fn notify(&self, subject: &str, message: &str) -> Result<(), NotifyError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_is_one_line_of_at_most_99_characters_cut_on_a_char_boundary() {
        assert_eq!(fit_subject("  failover\r\ndone\t "), "failover  done");
        let exact = "é".repeat(MAX_SUBJECT_CHARS);
        assert_eq!(fit_subject(&exact), exact, "a subject that fits is kept");
        let long = format!("dr-failover {}", "é".repeat(150));
        let fitted = fit_subject(&long);
        assert_eq!(fitted.chars().count(), MAX_SUBJECT_CHARS);
        assert!(fitted.ends_with("é…"), "{fitted}");
        assert!(long.starts_with(fitted.trim_end_matches('…')));
    }

    #[test]
    fn a_message_past_the_limit_is_cut_on_a_char_boundary_and_says_so() {
        let short = "restored snapshot 42\nDNS switched";
        assert_eq!(fit_message(short), short);
        let long = "ü".repeat(MAX_MESSAGE_BYTES);
        let fitted = fit_message(&long);
        assert!(fitted.len() <= MAX_MESSAGE_BYTES, "{}", fitted.len());
        assert!(fitted.ends_with(&format!("[cut: the message had {} bytes]", long.len())));
    }
}
