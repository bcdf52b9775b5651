//! Waiting for a cluster to reach a state: the one loop every `wait_until_*` step uses.
//! It stops at its own limit or at the invocation's deadline, whichever comes first, so
//! a Lambda can still record its progress before it is cut off.

use std::{future::Future, time::Duration};

use tokio::time::Instant;

/// What a probe saw on one look.
pub enum Look<T> {
    /// The state is reached.
    Ready(T),
    /// Not yet; the text says what was seen (for the error if time runs out).
    NotYet(String),
}

/// The wait ran out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("gave up waiting for {what} after {waited:?} ({why}); last seen: {last}")]
pub struct WaitExpired {
    /// What was awaited.
    pub what: String,
    /// How long it waited.
    pub waited: Duration,
    /// `its limit` or `the invocation deadline`.
    pub why: &'static str,
    /// The last thing the probe saw.
    pub last: String,
}

/// Calls `probe` every `interval` until it answers [`Look::Ready`], `limit` has passed,
/// or `deadline` is near (one interval before it). A probe error is not retried here:
/// it is the caller's to classify, so it ends the wait at once.
pub async fn poll_until<T, E, F, Fut>(
    what: &str,
    limit: Duration,
    deadline: Instant,
    interval: Duration,
    mut probe: F,
) -> Result<Result<T, WaitExpired>, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Look<T>, E>>,
{
    let start = Instant::now();
    let own_limit = start + limit;
    let (stop, why) = if deadline
        .checked_sub(interval)
        .is_some_and(|d| d < own_limit)
    {
        (
            deadline.checked_sub(interval).unwrap_or(start),
            "the invocation deadline",
        )
    } else {
        (own_limit, "its limit")
    };
    loop {
        let last = match probe().await? {
            Look::Ready(value) => return Ok(Ok(value)),
            Look::NotYet(seen) => seen,
        };
        if Instant::now() + interval > stop {
            return Ok(Err(WaitExpired {
                what: what.to_owned(),
                waited: start.elapsed(),
                why,
                last,
            }));
        }
        tokio::time::sleep(interval).await;
    }
}

impl crate::errors::Classify for WaitExpired {
    fn retry_helps(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "WaitExpired"
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn returns_as_soon_as_the_state_is_reached() {
        let looks = AtomicU32::new(0);
        let far = Instant::now() + Duration::from_secs(900);
        let got: Result<Result<u32, WaitExpired>, ()> =
            poll_until("a voter", Duration::from_secs(60), far, SECOND, || async {
                let n = looks.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(if n == 3 {
                    Look::Ready(n)
                } else {
                    Look::NotYet(format!("non-voter after {n} looks"))
                })
            })
            .await;
        assert_eq!(got, Ok(Ok(3)));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_its_limit_naming_what_it_saw() {
        let far = Instant::now() + Duration::from_secs(900);
        let got: Result<Result<(), WaitExpired>, ()> =
            poll_until("a voter", Duration::from_secs(10), far, SECOND, || async {
                Ok(Look::NotYet("non-voter".into()))
            })
            .await;
        let expired = got.expect("no probe error").expect_err("never ready");
        assert_eq!(expired.why, "its limit");
        assert!(expired.waited <= Duration::from_secs(10), "{expired}");
        assert_eq!(
            expired.to_string().split("; ").last(),
            Some("last seen: non-voter")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stops_before_the_invocation_deadline() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let got: Result<Result<(), WaitExpired>, ()> = poll_until(
            "a voter",
            Duration::from_secs(60),
            deadline,
            SECOND,
            || async { Ok(Look::NotYet("non-voter".into())) },
        )
        .await;
        let expired = got.expect("no probe error").expect_err("never ready");
        assert_eq!(expired.why, "the invocation deadline");
        assert!(
            Instant::now() < deadline,
            "it returned with time left to record progress"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_error_ends_the_wait_at_once() {
        let looks = AtomicU32::new(0);
        let far = Instant::now() + Duration::from_secs(900);
        let got: Result<Result<(), WaitExpired>, &str> =
            poll_until("a voter", Duration::from_secs(60), far, SECOND, || async {
                looks.fetch_add(1, Ordering::SeqCst);
                Err("permission denied")
            })
            .await;
        assert_eq!(got, Err("permission denied"));
        assert_eq!(looks.load(Ordering::SeqCst), 1);
    }
}
