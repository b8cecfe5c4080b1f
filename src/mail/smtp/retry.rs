//! When to try again: the retry policy and the classification of a failed attempt.
//! Pure, so it is tested without a server.

use std::time::Duration;

use crate::error::MailError;

/// How [`SmtpMailer`](super::SmtpMailer) retries a send after a transient (4xx) answer.
///
/// The whole send — every attempt and every pause — is bounded by `deadline`: an
/// attempt gets at most what is left of it, and no pause is taken that would leave
/// nothing for the next attempt. Pauses double from `initial_backoff` up to
/// `max_backoff`. Only 4xx answers are retried: a 5xx is final, and a server that
/// cannot be reached or does not answer in time is reported at once (the caller, often
/// a login request, is waiting; the account change already stands and the user can
/// ask for a fresh code).
///
/// ```
/// use std::time::Duration;
/// use twofactor::mail::RetryPolicy;
/// let p = RetryPolicy::default();
/// assert_eq!(p.backoff(1), p.initial_backoff);
/// assert_eq!(p.backoff(2), p.initial_backoff * 2);
/// assert_eq!(p.backoff(30), p.max_backoff);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// The pause after the first failed attempt.
    pub initial_backoff: Duration,
    /// The longest pause.
    pub max_backoff: Duration,
    /// The bound on the whole send, all attempts and pauses included.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, pauses of 0.5 s, 1 s, 2 s (at most 5 s), everything within 20 s.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(5),
            deadline: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retry, within `deadline`.
    pub fn no_retry(deadline: Duration) -> Self {
        RetryPolicy { max_attempts: 1, deadline, ..RetryPolicy::default() }
    }

    /// The pause after the `failed`-th failed attempt (1-based): `initial_backoff`
    /// doubled `failed - 1` times, at most `max_backoff`.
    pub fn backoff(&self, failed: u32) -> Duration {
        let doublings = failed.saturating_sub(1).min(31);
        self.initial_backoff.saturating_mul(1u32 << doublings).min(self.max_backoff)
    }

    /// What to do after the `failed`-th failed attempt, `elapsed` after the send began:
    /// pause for the returned time and try again, or (`None`) give up.
    pub fn next_delay(&self, failure: FailureKind, failed: u32, elapsed: Duration) -> Option<Duration> {
        if failure != FailureKind::Transient || failed >= self.max_attempts {
            return None;
        }
        let delay = self.backoff(failed);
        (elapsed.saturating_add(delay) < self.deadline).then_some(delay)
    }

    /// The time an attempt may take when `elapsed` has passed since the send began:
    /// `per_attempt`, but never beyond the deadline.
    pub fn attempt_budget(&self, per_attempt: Duration, elapsed: Duration) -> Duration {
        per_attempt.min(self.deadline.saturating_sub(elapsed))
    }
}

/// What kind of failure an attempt ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// A 4xx answer: worth another attempt.
    Transient,
    /// A 5xx answer: final.
    Permanent,
    /// No connection, a network or TLS error, or no answer in time.
    Unreachable,
}

impl FailureKind {
    /// The kind for an SMTP reply code (`None`: the failure was not an answer).
    pub fn of_reply(code: Option<u16>) -> FailureKind {
        match code {
            Some(400..=499) => FailureKind::Transient,
            Some(500..=599) => FailureKind::Permanent,
            _ => FailureKind::Unreachable,
        }
    }
}

/// A failed attempt: its kind and a description that is safe to show (credentials
/// already removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub kind: FailureKind,
    pub detail: String,
}

impl Failure {
    /// The error reported once the mailer gives up after `attempts` attempts:
    /// 5xx → [`MailError::Rejected`], anything else → [`MailError::Unavailable`].
    pub fn into_error(self, attempts: u32) -> MailError {
        let tries = if attempts == 1 { "1 attempt".to_owned() } else { format!("{attempts} attempts") };
        match self.kind {
            FailureKind::Permanent => MailError::Rejected(format!("{} (after {tries})", self.detail)),
            FailureKind::Transient | FailureKind::Unreachable => {
                MailError::Unavailable(format!("{} (after {tries})", self.detail))
            }
        }
    }
}

setters!(RetryPolicy { max_attempts: u32, initial_backoff: Duration, max_backoff: Duration, deadline: Duration });

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn policy() -> RetryPolicy {
        RetryPolicy { max_attempts: 5, initial_backoff: ms(100), max_backoff: ms(300), deadline: ms(1_000) }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = policy();
        assert_eq!([1, 2, 3, 4].map(|n| p.backoff(n)), [ms(100), ms(200), ms(300), ms(300)]);
        assert_eq!(p.backoff(u32::MAX), ms(300));
        assert_eq!(p.backoff(0), ms(100));
    }

    #[test]
    fn only_transient_failures_are_retried() {
        let p = policy();
        assert_eq!(p.next_delay(FailureKind::Transient, 1, ms(0)), Some(ms(100)));
        assert_eq!(p.next_delay(FailureKind::Permanent, 1, ms(0)), None);
        assert_eq!(p.next_delay(FailureKind::Unreachable, 1, ms(0)), None);
    }

    #[test]
    fn retries_stop_at_max_attempts() {
        let p = policy();
        assert_eq!(p.next_delay(FailureKind::Transient, 4, ms(0)), Some(ms(300)));
        assert_eq!(p.next_delay(FailureKind::Transient, 5, ms(0)), None);
        assert_eq!(RetryPolicy::no_retry(ms(1_000)).next_delay(FailureKind::Transient, 1, ms(0)), None);
    }

    #[test]
    fn no_pause_runs_into_the_deadline() {
        let p = policy();
        assert_eq!(p.next_delay(FailureKind::Transient, 2, ms(799)), Some(ms(200)));
        assert_eq!(p.next_delay(FailureKind::Transient, 2, ms(800)), None);
        assert_eq!(p.next_delay(FailureKind::Transient, 1, ms(5_000)), None);
    }

    #[test]
    fn a_whole_transient_run_stays_within_the_deadline() {
        // Simulate attempts that each take 150 ms and always answer 4xx.
        let p = RetryPolicy { max_attempts: 100, ..policy() };
        let attempt = ms(150);
        let (mut elapsed, mut failed) = (Duration::ZERO, 0);
        loop {
            elapsed += p.attempt_budget(attempt, elapsed);
            failed += 1;
            match p.next_delay(FailureKind::Transient, failed, elapsed) {
                Some(d) => elapsed += d,
                None => break,
            }
        }
        assert!(elapsed <= p.deadline, "{elapsed:?}");
        // 150, +100, 150, +200, 150 = 750; another 300 pause would end at 1050.
        assert_eq!(failed, 3);
    }

    #[test]
    fn an_attempt_never_outlives_the_deadline() {
        let p = policy();
        assert_eq!(p.attempt_budget(ms(400), ms(0)), ms(400));
        assert_eq!(p.attempt_budget(ms(400), ms(900)), ms(100));
        assert_eq!(p.attempt_budget(ms(400), ms(2_000)), Duration::ZERO);
    }

    #[test]
    fn reply_codes_are_classified_by_their_first_digit() {
        assert_eq!(FailureKind::of_reply(Some(451)), FailureKind::Transient);
        assert_eq!(FailureKind::of_reply(Some(421)), FailureKind::Transient);
        assert_eq!(FailureKind::of_reply(Some(550)), FailureKind::Permanent);
        assert_eq!(FailureKind::of_reply(Some(554)), FailureKind::Permanent);
        assert_eq!(FailureKind::of_reply(None), FailureKind::Unreachable);
    }

    #[test]
    fn failures_map_to_mail_errors() {
        let f = |kind| Failure { kind, detail: "x".to_owned() };
        assert!(
            matches!(f(FailureKind::Permanent).into_error(1), MailError::Rejected(m) if m == "x (after 1 attempt)")
        );
        assert!(
            matches!(f(FailureKind::Transient).into_error(3), MailError::Unavailable(m) if m == "x (after 3 attempts)")
        );
        assert!(matches!(f(FailureKind::Unreachable).into_error(1), MailError::Unavailable(_)));
    }
}
