//! Pending logins: the claims a password step issues, the checks a second step makes
//! of them, and the marks an account keeps of the ones that failed a code or were used.

use crate::account::{Account, LoginMark, TwoFactor};
use crate::crypto::token::LoginClaims;
use crate::outcome::SecondFactorOutcome;
use crate::plumbing::clock::Timestamp;
use crate::policy::Policy;
use crate::rules::throttle;
use subtle::ConstantTimeEq;

/// Builds the claims of a new pending login, bound to the account's stamp (the engine
/// seals them into the token).
pub(crate) fn issue_pending(account: &Account, id: [u8; 16], now: Timestamp, policy: &Policy) -> LoginClaims {
    LoginClaims {
        account: account.id,
        id,
        issued_at: now,
        expires_at: now.plus(policy.pending_lifetime),
        stamp: account.security_stamp,
    }
}

/// Why a pending login cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClaimsProblem {
    /// Expired, forged, used, or ended by a stamp rotation.
    Expired,
    /// Its attempts are used up, or the account is throttled or locked.
    Locked(Option<Timestamp>),
}

impl From<ClaimsProblem> for SecondFactorOutcome {
    fn from(problem: ClaimsProblem) -> Self {
        match problem {
            ClaimsProblem::Expired => SecondFactorOutcome::Expired,
            ClaimsProblem::Locked(until) => SecondFactorOutcome::Locked { until },
        }
    }
}

/// Checks a pending login (opened, so authentic) against the account as it is now: a
/// stamp rotation since it was issued ends it (constant-time compare).
pub(crate) fn check_pending(
    account: &Account,
    claims: &LoginClaims,
    policy: &Policy,
    now: Timestamp,
) -> Result<(), ClaimsProblem> {
    let current: bool = claims.stamp.to_be_bytes().ct_eq(&account.security_stamp.to_be_bytes()).into();
    if !current || claims.account != account.id || claims.expires_at <= now || claims.issued_at > now {
        return Err(ClaimsProblem::Expired);
    }
    if !matches!(account.two_factor, TwoFactor::Enabled(_)) {
        return Err(ClaimsProblem::Expired);
    }
    if let Some(mark) = account.pending.iter().find(|m| m.id == claims.id) {
        if mark.consumed {
            return Err(ClaimsProblem::Expired);
        }
        if mark.failures >= policy.max_code_attempts {
            return Err(ClaimsProblem::Locked(account.throttle.until.filter(|u| *u > now)));
        }
    }
    if let Some(until) = throttle::blocked(account, now) {
        return Err(ClaimsProblem::Locked(until));
    }
    Ok(())
}

/// Code attempts a pending login has left (for an answer that counts nothing).
pub(crate) fn attempts_left(account: &Account, claims: &LoginClaims, policy: &Policy) -> u32 {
    let failures = account.pending.iter().find(|m| m.id == claims.id).map_or(0, |m| m.failures);
    policy.max_code_attempts.saturating_sub(failures)
}

/// Marks an account keeps before an open (unconsumed) mark is dropped to make room,
/// the one expiring first. Dropping an open mark loses only its per-login attempt
/// count; the account-wide failure budget still holds. A consumed mark is never
/// dropped before it expires (that would make its pending login usable again); there
/// are few of them, since each is a completed second factor within one pending-login
/// lifetime (one TOTP step per 30 s, or a freshly mailed backup code).
pub(super) const MAX_PENDING_MARKS: usize = 64;

pub(super) fn prune_pending(account: &mut Account, now: Timestamp) {
    account.pending.retain(|m| m.expires_at > now);
}

/// Updates (or creates) the mark of a pending login; returns its failure count.
pub(super) fn mark_pending(account: &mut Account, claims: &LoginClaims, update: impl FnOnce(&mut LoginMark)) -> u32 {
    if !account.pending.iter().any(|m| m.id == claims.id) {
        if account.pending.len() >= MAX_PENDING_MARKS {
            let open = account.pending.iter().enumerate().filter(|(_, m)| !m.consumed);
            if let Some((victim, _)) = open.min_by_key(|(_, m)| m.expires_at) {
                account.pending.remove(victim);
            }
        }
        account.pending.push(LoginMark { id: claims.id, expires_at: claims.expires_at, failures: 0, consumed: false });
    }
    let mark = account.pending.iter_mut().find(|m| m.id == claims.id);
    mark.map_or(0, |mark| {
        update(mark);
        mark.failures
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::login::tests::enabled;

    const NOW: Timestamp = Timestamp(1000);

    fn mark(id: u8, expires_at: u64, failures: u32) -> LoginMark {
        LoginMark { id: [id; 16], expires_at: Timestamp(expires_at), failures, consumed: false }
    }

    fn claims_for(account: &Account, id: u8) -> LoginClaims {
        issue_pending(account, [id; 16], NOW, &Policy::default())
    }

    #[test]
    fn a_login_out_of_attempts_is_locked_until_a_future_throttle_only() {
        let p = Policy::default();
        let mut a = enabled();
        let claims = claims_for(&a, 1);
        a.pending = vec![mark(2, 2000, 0), mark(1, 2000, p.max_code_attempts)];
        assert_eq!(check_pending(&a, &claims, &p, NOW), Err(ClaimsProblem::Locked(None)));
        a.throttle.until = Some(NOW);
        assert_eq!(check_pending(&a, &claims, &p, NOW), Err(ClaimsProblem::Locked(None)), "a throttle that is over");
        a.throttle.until = Some(Timestamp(NOW.0 + 60));
        assert_eq!(check_pending(&a, &claims, &p, NOW), Err(ClaimsProblem::Locked(Some(Timestamp(NOW.0 + 60)))));
    }

    #[test]
    fn a_login_is_usable_from_its_issue_to_its_expiry() {
        let p = Policy::default();
        let a = enabled();
        let claims = claims_for(&a, 1); // issued at NOW
        assert_eq!(check_pending(&a, &claims, &p, Timestamp(NOW.0 + 10)), Ok(()));
        assert_eq!(
            check_pending(&a, &claims, &p, Timestamp(NOW.0 - 1)),
            Err(ClaimsProblem::Expired),
            "from the future"
        );
        assert_eq!(check_pending(&a, &claims, &p, claims.expires_at), Err(ClaimsProblem::Expired));
    }

    #[test]
    fn attempts_left_are_those_of_the_login_named() {
        let p = Policy::default();
        let mut a = enabled();
        a.pending = vec![mark(2, 2000, 4), mark(1, 2000, 2)];
        assert_eq!(attempts_left(&a, &claims_for(&a, 1), &p), p.max_code_attempts - 2);
        assert_eq!(attempts_left(&a, &claims_for(&a, 3), &p), p.max_code_attempts, "no mark yet");
    }

    #[test]
    fn marks_are_pruned_at_their_expiry() {
        let mut a = enabled();
        a.pending = vec![mark(1, NOW.0 - 1, 0), mark(2, NOW.0, 0), mark(3, NOW.0 + 1, 0)];
        prune_pending(&mut a, NOW);
        assert_eq!(a.pending.iter().map(|m| m.id[0]).collect::<Vec<_>>(), [3]);
    }

    #[test]
    fn a_mark_is_updated_in_place_and_others_stay() {
        let mut a = enabled();
        a.pending = vec![mark(1, 2000, 1)];
        let claims = claims_for(&a, 1);
        assert_eq!(mark_pending(&mut a, &claims, |m| m.failures += 1), 2);
        assert_eq!(a.pending.len(), 1, "the same login's mark");
        let other = claims_for(&a, 2);
        assert_eq!(mark_pending(&mut a, &other, |m| m.failures += 1), 1);
        assert_eq!(a.pending.iter().map(|m| (m.id[0], m.failures)).collect::<Vec<_>>(), [(1, 2), (2, 1)]);
    }
}
