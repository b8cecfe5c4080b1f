//! The outbox's rules, pure like the rest of [`crate::rules`]: which messages a worker
//! claims, and what a try's result does to the queue. The engine applies each inside
//! its compare-and-swap loop, so two workers never claim one message at once and a
//! result lands on the freshest document.

use crate::account::Account;
use crate::events::EventKind;
use crate::mail::MessageKind;
use crate::outbox::{DeliveryPolicy, MailId, MailStatus, Payload, SETTLED_KEPT, SettledMail};
use crate::plumbing::clock::Timestamp;
use crate::rules::{Effects, Transition};

/// A message a worker claimed: its try number and what to send.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub(crate) id: MailId,
    pub(crate) attempts: u32,
    pub(crate) payload: Payload,
}

/// The result of one try of a claimed message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tried {
    pub(crate) id: MailId,
    pub(crate) kind: MessageKind,
    /// The try number of the claim.
    pub(crate) attempts: u32,
    pub(crate) sent: bool,
}

/// What a try's result did to its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settlement {
    Delivered,
    Retrying,
    GaveUp,
    /// The message had moved on meanwhile (another worker's claim after this one's
    /// lease ran out): this result changes nothing.
    Superseded,
}

/// Claims every message of `account` due at `now`: each counts a try and is not due
/// again until the claim's lease ends. A message due again after its last try (the
/// worker that claimed it never recorded a result: it crashed, every time) is given up
/// instead. No write when nothing is due.
pub(crate) fn claim(account: &Account, policy: &DeliveryPolicy, now: Timestamp) -> Transition<Vec<Claimed>> {
    if !account.outbox.iter().any(|m| m.due <= now) {
        return Transition::unchanged(Vec::new(), Effects::default());
    }
    let mut next = account.clone();
    let mut effects = Effects::default();
    let (exhausted, waiting): (Vec<_>, Vec<_>) =
        next.outbox.drain(..).partition(|m| m.due <= now && m.attempts >= policy.max_attempts);
    next.outbox = waiting;
    for mail in exhausted {
        give_up(account, &mut next, mail.id, mail.payload.kind(), mail.attempts, now, &mut effects);
    }
    let mut claimed = Vec::new();
    for mail in next.outbox.iter_mut().filter(|m| m.due <= now) {
        mail.attempts = mail.attempts.saturating_add(1);
        mail.due = now.plus(policy.lease);
        claimed.push(Claimed { id: mail.id, attempts: mail.attempts, payload: mail.payload.clone() });
    }
    Transition { next: Some(next), outcome: claimed, effects }
}

/// Records message `id` (already out of the queue) as given up, with its events.
fn give_up(
    account: &Account,
    next: &mut Account,
    id: MailId,
    kind: MessageKind,
    attempts: u32,
    now: Timestamp,
    effects: &mut Effects,
) {
    remember(next, SettledMail { id, kind, delivered: false, at: now, attempts });
    if kind.carries_code() {
        effects.event(now, account, EventKind::BackupCodeDeliveryFailed);
    }
    effects.event(now, account, EventKind::MailGaveUp { kind, attempts });
}

/// Applies the results of a round of tries: a sent message leaves the queue (its code
/// erased) and is remembered as delivered; a failed one waits for its retry, or is
/// given up after its last try.
pub(crate) fn settle(
    account: &Account,
    tried: &[Tried],
    policy: &DeliveryPolicy,
    now: Timestamp,
) -> Transition<Vec<Settlement>> {
    let mut next = account.clone();
    let mut effects = Effects::default();
    let mut outcome = Vec::with_capacity(tried.len());
    for t in tried {
        let position = next.outbox.iter().position(|m| m.id == t.id && (t.sent || m.attempts == t.attempts));
        let Some(i) = position else {
            outcome.push(if t.sent { Settlement::Delivered } else { Settlement::Superseded });
            continue;
        };
        let kind = t.kind;
        if t.sent {
            let mail = next.outbox.remove(i);
            remember(&mut next, SettledMail { id: t.id, kind, delivered: true, at: now, attempts: mail.attempts });
            effects.event(now, account, EventKind::MailDelivered { kind });
            outcome.push(Settlement::Delivered);
            continue;
        }
        effects.event(now, account, EventKind::MailFailed { kind });
        if t.attempts >= policy.max_attempts {
            next.outbox.remove(i);
            give_up(account, &mut next, t.id, kind, t.attempts, now, &mut effects);
            outcome.push(Settlement::GaveUp);
        } else if let Some(mail) = next.outbox.get_mut(i) {
            mail.due = now.plus(policy.retry_after(t.attempts));
            outcome.push(Settlement::Retrying);
        }
    }
    let changed = next != *account;
    Transition { next: changed.then_some(next), outcome, effects }
}

fn remember(account: &mut Account, settled: SettledMail) {
    account.settled_mail.push(settled);
    let excess = account.settled_mail.len().saturating_sub(SETTLED_KEPT);
    account.settled_mail.drain(..excess);
}

/// Where message `id` stands in `account`'s document.
pub(crate) fn status(account: &Account, id: MailId) -> MailStatus {
    if let Some(m) = account.outbox.iter().find(|m| m.id == id) {
        return MailStatus::Queued { attempts: m.attempts, next_attempt_at: m.due };
    }
    match account.settled_mail.iter().rev().find(|m| m.id == id) {
        Some(m) if m.delivered => MailStatus::Delivered { at: m.at },
        Some(m) => MailStatus::GaveUp { at: m.at, attempts: m.attempts },
        None => MailStatus::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::account::Role;
    use crate::outbox::QueuedMail;

    const NOW: Timestamp = Timestamp(1_800_000_000);

    fn account_with(due: &[u64]) -> Account {
        let mut a = Account::new(7u64.into(), "alice".into(), "a@example.test".into(), Role::User, 1, NOW);
        for (n, d) in due.iter().enumerate() {
            a.outbox.push(QueuedMail {
                id: MailId([u8::try_from(n).unwrap_or(0); 16]),
                payload: Payload::Throttled { until: NOW },
                attempts: 0,
                due: Timestamp(*d),
            });
        }
        a
    }

    fn tried(c: &Claimed, sent: bool) -> Tried {
        Tried { id: c.id, kind: c.payload.kind(), attempts: c.attempts, sent }
    }

    #[test]
    fn the_status_of_a_queued_message_is_its_own() {
        let a = account_with(&[NOW.0 + 5, NOW.0 + 9]);
        let second = MailId([1; 16]);
        assert_eq!(status(&a, second), MailStatus::Queued { attempts: 0, next_attempt_at: Timestamp(NOW.0 + 9) });
        assert_eq!(status(&a, MailId([9; 16])), MailStatus::Unknown);
    }

    #[test]
    fn a_claim_takes_only_what_is_due_and_hides_it_for_the_lease() {
        let a = account_with(&[NOW.0 - 1, NOW.0, NOW.0 + 1]);
        let policy = DeliveryPolicy::default();
        let t = claim(&a, &policy, NOW);
        assert_eq!(t.outcome.len(), 2);
        let next = t.next.expect("claimed");
        assert!(next.outbox[..2].iter().all(|m| m.attempts == 1 && m.due == NOW.plus(policy.lease)));
        assert_eq!(next.outbox[2].attempts, 0);
        // A second worker at the same moment finds nothing to claim.
        assert!(claim(&next, &policy, NOW).outcome.is_empty());
        assert!(claim(&next, &policy, NOW).next.is_none());
    }

    #[test]
    fn a_failure_backs_off_then_gives_up_after_the_last_try() {
        let policy = DeliveryPolicy::default().max_attempts(2).retry(Duration::from_secs(30), Duration::from_secs(60));
        let mut a = account_with(&[NOW.0]);
        let c = claim(&a, &policy, NOW);
        a = c.next.expect("claimed");
        let s = settle(&a, &[tried(&c.outcome[0], false)], &policy, NOW);
        assert_eq!(s.outcome, vec![Settlement::Retrying]);
        a = s.next.expect("retry recorded");
        assert_eq!(a.outbox[0].due, Timestamp(NOW.0 + 30));
        assert!(claim(&a, &policy, Timestamp(NOW.0 + 29)).outcome.is_empty());
        let later = Timestamp(NOW.0 + 30);
        let c = claim(&a, &policy, later);
        a = c.next.expect("claimed again");
        let s = settle(&a, &[tried(&c.outcome[0], false)], &policy, later);
        assert_eq!(s.outcome, vec![Settlement::GaveUp]);
        let names: Vec<_> = s.effects.events.iter().map(|e| e.kind.name()).collect();
        assert_eq!(names, ["mail.failed", "mail.gave_up"]);
        a = s.next.expect("given up");
        assert!(a.outbox.is_empty());
        assert_eq!(status(&a, c.outcome[0].id), MailStatus::GaveUp { at: later, attempts: 2 });
    }

    #[test]
    fn a_sent_message_leaves_the_queue_and_is_remembered_as_delivered() {
        let policy = DeliveryPolicy::default();
        let c = claim(&account_with(&[NOW.0]), &policy, NOW);
        let a = c.next.expect("claimed");
        let s = settle(&a, &[tried(&c.outcome[0], true)], &policy, NOW);
        let a = s.next.expect("delivered");
        assert!(a.outbox.is_empty());
        assert_eq!(status(&a, c.outcome[0].id), MailStatus::Delivered { at: NOW });
    }

    #[test]
    fn a_message_whose_every_try_crashed_its_worker_is_given_up_not_claimed_again() {
        let policy = DeliveryPolicy::default().max_attempts(2);
        let mut a = account_with(&[NOW.0]);
        let mut at = NOW;
        for _ in 0..2 {
            // Claimed, then the worker dies: no result is ever recorded.
            let c = claim(&a, &policy, at);
            assert_eq!(c.outcome.len(), 1);
            a = c.next.expect("claimed");
            at = at.plus(policy.lease);
        }
        let c = claim(&a, &policy, at);
        assert!(c.outcome.is_empty(), "not claimed a third time");
        let names: Vec<_> = c.effects.events.iter().map(|e| e.kind.name()).collect();
        assert_eq!(names, ["mail.gave_up"]);
        let a = c.next.expect("given up");
        assert!(a.outbox.is_empty());
        assert!(matches!(status(&a, MailId([0; 16])), MailStatus::GaveUp { attempts: 2, .. }));
    }

    #[test]
    fn a_stale_failure_after_another_claim_changes_nothing() {
        let policy = DeliveryPolicy::default();
        let first = claim(&account_with(&[NOW.0]), &policy, NOW);
        let a = first.next.expect("claimed");
        let after_lease = NOW.plus(policy.lease);
        let second = claim(&a, &policy, after_lease);
        let a = second.next.expect("claimed again after the lease");
        let s = settle(&a, &[tried(&first.outcome[0], false)], &policy, after_lease);
        assert_eq!(s.outcome, vec![Settlement::Superseded]);
        assert!(s.next.is_none());
    }

    #[test]
    fn only_the_newest_settled_messages_are_remembered() {
        let mut a = account_with(&[]);
        for n in 0..(SETTLED_KEPT as u8 + 4) {
            remember(
                &mut a,
                SettledMail {
                    id: MailId([n; 16]),
                    kind: MessageKind::Throttled,
                    delivered: true,
                    at: NOW,
                    attempts: 1,
                },
            );
        }
        assert_eq!(a.settled_mail.len(), SETTLED_KEPT);
        assert_eq!(status(&a, MailId([0; 16])), MailStatus::Unknown);
        assert_eq!(status(&a, MailId([SETTLED_KEPT as u8 + 3; 16])), MailStatus::Delivered { at: NOW });
    }
}
