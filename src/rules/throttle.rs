//! The shared failure budget, as pure functions.

use crate::account::{Account, TwoFactor};
use crate::events::{EventKind, FailureClass};
use crate::mail::Message;
use crate::plumbing::clock::Timestamp;
use crate::policy::ThrottlePolicy;
use crate::rules::{Effects, recipient};

/// Whether attempts are refused unevaluated right now, and if so until when (`None`
/// inside means: until an administrator reset).
pub(crate) fn blocked(account: &Account, now: Timestamp) -> Option<Option<Timestamp>> {
    if account.throttle.second_factor_locked && matches!(account.two_factor, TwoFactor::Enabled(_)) {
        return Some(None);
    }
    match account.throttle.until {
        Some(until) if until > now => Some(Some(until)),
        _ => None,
    }
}

/// The failure class of an attempt refused because the account is blocked.
pub(crate) fn refusal(account: &Account) -> FailureClass {
    if account.throttle.second_factor_locked { FailureClass::Locked } else { FailureClass::Throttled }
}

/// Which step an evaluated attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failed {
    /// A wrong password: it throttles (doubling delays) but never locks for good, so
    /// password guesses alone cannot lock the owner out.
    Password,
    /// A wrong TOTP or backup code after a right password: it throttles, and counts
    /// towards the permanent second-factor lock.
    SecondFactor,
}

/// Counts one failure against the account's budget, throttling or locking as the
/// policy says and queueing the notice mail when throttling starts.
pub(crate) fn record_failure(
    account: &mut Account,
    policy: &ThrottlePolicy,
    now: Timestamp,
    failed: Failed,
    effects: &mut Effects,
) {
    let t = &mut account.throttle;
    t.failures = t.failures.saturating_add(1);
    if failed == Failed::SecondFactor {
        t.second_factor_failures = t.second_factor_failures.saturating_add(1);
    }
    let failures = t.failures;
    let second_factor_failures = t.second_factor_failures;
    if let Some(delay) = policy.delay_after(failures) {
        let until = now.plus(delay);
        t.until = Some(until);
        if failures == policy.free_failures {
            effects.mail(Message::Throttled { to: recipient(account), until });
        }
        effects.event(now, account, EventKind::Throttled { until });
    }
    let enabled = matches!(account.two_factor, TwoFactor::Enabled(_));
    if enabled && second_factor_failures >= policy.disable_after && !account.throttle.second_factor_locked {
        account.throttle.second_factor_locked = true;
        effects.mail(Message::SecondFactorLocked { to: recipient(account), at: now });
        effects.event(now, account, EventKind::SecondFactorLocked);
    }
}

/// Clears the budget after a complete login. Returns whether anything changed.
pub(crate) fn record_success(account: &mut Account) -> bool {
    let t = &mut account.throttle;
    let changed = t.failures != 0 || t.until.is_some() || t.second_factor_failures != 0;
    t.failures = 0;
    t.until = None;
    t.second_factor_failures = 0;
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::login::tests::account;
    use std::time::Duration;

    #[test]
    fn a_success_reports_a_change_only_when_the_budget_held_something() {
        let mut a = account();
        assert!(!record_success(&mut a), "a clean budget: nothing to write");
        for dirty in 0..3 {
            let mut b = account();
            match dirty {
                0 => b.throttle.failures = 1,
                1 => b.throttle.until = Some(Timestamp(5)),
                _ => b.throttle.second_factor_failures = 1,
            }
            assert!(record_success(&mut b), "case {dirty}");
            assert_eq!(b.throttle, account().throttle, "cleared");
        }
    }

    #[test]
    fn a_throttle_holds_until_its_time_and_not_at_it() {
        let mut a = account();
        let now = Timestamp(1000);
        assert_eq!(blocked(&a, now), None);
        a.throttle.until = Some(Timestamp(1001));
        assert_eq!(blocked(&a, now), Some(Some(Timestamp(1001))));
        a.throttle.until = Some(now);
        assert_eq!(blocked(&a, now), None, "over at its time");
        a.throttle.until = Some(Timestamp(999));
        assert_eq!(blocked(&a, now), None);
    }

    #[test]
    fn first_failures_are_free_then_delays_double_to_the_cap() {
        let p = ThrottlePolicy::default();
        let mut a = account();
        let mut effects = Effects::default();
        for _ in 0..4 {
            record_failure(&mut a, &p, Timestamp(0), Failed::Password, &mut effects);
        }
        assert_eq!(a.throttle.until, None);
        assert!(effects.mails.is_empty());
        record_failure(&mut a, &p, Timestamp(0), Failed::Password, &mut effects);
        assert_eq!(a.throttle.until, Some(Timestamp(60)));
        assert_eq!(effects.mails.len(), 1, "throttle notice when throttling starts");
        record_failure(&mut a, &p, Timestamp(0), Failed::SecondFactor, &mut effects);
        assert_eq!(a.throttle.until, Some(Timestamp(120)));
        assert_eq!(p.delay_after(30), Some(Duration::from_secs(3600)));
        assert_eq!(effects.mails.len(), 1, "only one notice");
        assert!(record_success(&mut a));
        assert_eq!(a.throttle.failures, 0);
        assert_eq!(a.throttle.second_factor_failures, 0);
        assert_eq!(blocked(&a, Timestamp(1)), None);
    }

    #[test]
    fn only_second_factor_failures_lock_the_second_factor() {
        let p = ThrottlePolicy::default();
        let mut a = crate::rules::login::tests::enabled();
        let mut effects = Effects::default();
        for _ in 0..10 * p.disable_after {
            record_failure(&mut a, &p, Timestamp(0), Failed::Password, &mut effects);
        }
        assert!(!a.throttle.second_factor_locked, "wrong passwords alone never lock");
        assert_eq!(a.throttle.second_factor_failures, 0);
        for _ in 1..p.disable_after {
            record_failure(&mut a, &p, Timestamp(0), Failed::SecondFactor, &mut effects);
        }
        assert!(!a.throttle.second_factor_locked);
        record_failure(&mut a, &p, Timestamp(0), Failed::SecondFactor, &mut effects);
        assert!(a.throttle.second_factor_locked, "the hundredth wrong second factor locks");
    }
}
