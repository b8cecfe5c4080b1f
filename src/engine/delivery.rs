//! The engine's side of the outbox ([`crate::outbox`]): queuing the messages a change
//! causes inside its write, and delivering them afterwards.

use crate::UserId;
use crate::account::Account;
use crate::crypto::secret::SecretString;
use crate::engine::Engine;
use crate::error::{Error, Result, StoreError};
use crate::events::EventKind;
use crate::mail::{CodeReason, Delivery, Mailer, Message, MessageKind};
use crate::outbox::rules::{self, Claimed, Settlement, Tried};
use crate::outbox::{DeliveryReport, MailId, MailStatus, Payload, QueuedMail};
use crate::plumbing::clock::Clock;
use crate::rules::{Outgoing, recipient};
use crate::store::UserStore;

/// The most unreadable documents one delivery round steps over.
const MAX_SKIPPED: usize = 1000;

/// The most messages one document queues; beyond it the oldest notices go first
/// (a mail outage must not grow a document without bound).
const MAX_QUEUED: usize = 32;

/// Whether `err` from one user's delivery stops the whole round: the store failing
/// (or a document that kept changing) does; a document that cannot be read
/// (`StoreError::Corrupt`) is that user's problem, and is skipped so that the mail of
/// everyone due after it still goes.
fn stops_a_round(err: &Error) -> bool {
    matches!(err, Error::Contention) || matches!(err, Error::Store(e) if !matches!(e, StoreError::Corrupt(_)))
}

impl<S: UserStore, M: Mailer, C: Clock> Engine<S, M, C> {
    /// Moves `mails` into `next`'s outbox, due at once: a backup code sealed under the
    /// key ring, bound to the user and the message. A message that makes queued
    /// backup codes void (new codes for all, or a reset) drops the queued code mail.
    pub(super) fn enqueue(&self, next: &mut Account, mails: &[Outgoing]) -> Result<Vec<(MailId, MessageKind)>> {
        let now = self.clock.now();
        let mut queued = Vec::with_capacity(mails.len());
        for Outgoing { id, message } in mails {
            let id = match id {
                Some(named) => *named,
                None => MailId::random()?,
            };
            let payload = self.payload(next.id, id, message)?;
            let voids_codes = match &payload {
                Payload::BackupCode { reason: CodeReason::Rotated, .. } => self.policy.backup.count == 1,
                Payload::BackupCode { .. } | Payload::TwoFactorReset { .. } | Payload::TwoFactorDisabled { .. } => true,
                _ => false,
            };
            if voids_codes {
                next.outbox.retain(|m| !matches!(m.payload, Payload::BackupCode { .. }));
            }
            queued.push((id, payload.kind()));
            next.outbox.push(QueuedMail { id, payload, attempts: 0, due: now });
        }
        while next.outbox.len() > MAX_QUEUED {
            let oldest_notice = next.outbox.iter().position(|m| !matches!(m.payload, Payload::BackupCode { .. }));
            next.outbox.remove(oldest_notice.unwrap_or(0));
        }
        Ok(queued)
    }

    /// What `message` keeps while it waits: everything but the recipient (read again at
    /// delivery), its codes sealed.
    fn payload(&self, user: UserId, id: MailId, message: &Message) -> Result<Payload> {
        Ok(match message {
            Message::BackupCode { reason, codes, expires_at, .. } => Payload::BackupCode {
                reason: *reason,
                codes: codes
                    .iter()
                    .map(|c| self.keys.seal_mail_code(user, id, c.expose().as_bytes()))
                    .collect::<Result<_>>()?,
                expires_at: *expires_at,
            },
            Message::TwoFactorReset { by, by_role, at, .. } => {
                Payload::TwoFactorReset { by: by.clone(), by_role: *by_role, at: *at }
            }
            Message::Throttled { until, .. } => Payload::Throttled { until: *until },
            Message::SecondFactorLocked { at, .. } => Payload::SecondFactorLocked { at: *at },
            Message::NewLocation { location, at, .. } => Payload::NewLocation { location: location.clone(), at: *at },
            Message::AuthenticatorAdded { name, at, .. } => Payload::AuthenticatorAdded { name: name.clone(), at: *at },
            Message::AuthenticatorRemoved { name, at, .. } => {
                Payload::AuthenticatorRemoved { name: name.clone(), at: *at }
            }
            Message::TwoFactorDisabled { at, .. } => Payload::TwoFactorDisabled { at: *at },
            Message::Unlocked { by, by_role, at, .. } => {
                Payload::Unlocked { by: by.clone(), by_role: *by_role, at: *at }
            }
        })
    }

    /// The message a claimed payload says, to the user as the application knows them
    /// now, its codes opened.
    fn message(&self, account: &Account, claimed: &Claimed) -> Result<Message> {
        let to = recipient(account);
        Ok(match &claimed.payload {
            Payload::BackupCode { reason, codes, expires_at } => {
                let mut shown = Vec::with_capacity(codes.len());
                for sealed in codes {
                    let (plain, _) = self.keys.unseal_mail_code(account.id, claimed.id, sealed)?;
                    let text = std::str::from_utf8(&plain).map_err(|_| Error::Corrupt("queued backup code"))?;
                    shown.push(SecretString::from(text));
                }
                Message::BackupCode { to, reason: *reason, codes: shown, expires_at: *expires_at }
            }
            Payload::TwoFactorReset { by, by_role, at } => {
                Message::TwoFactorReset { to, by: by.clone(), by_role: *by_role, at: *at }
            }
            Payload::Throttled { until } => Message::Throttled { to, until: *until },
            Payload::SecondFactorLocked { at } => Message::SecondFactorLocked { to, at: *at },
            Payload::NewLocation { location, at } => Message::NewLocation { to, location: location.clone(), at: *at },
            Payload::AuthenticatorAdded { name, at } => Message::AuthenticatorAdded { to, name: name.clone(), at: *at },
            Payload::AuthenticatorRemoved { name, at } => {
                Message::AuthenticatorRemoved { to, name: name.clone(), at: *at }
            }
            Payload::TwoFactorDisabled { at } => Message::TwoFactorDisabled { to, at: *at },
            Payload::Unlocked { by, by_role, at } => {
                Message::Unlocked { to, by: by.clone(), by_role: *by_role, at: *at }
            }
        })
    }

    /// Delivers the mail that is due, for at most `max_users` users (those waiting
    /// longest first): what a delivery worker calls, every few seconds or when woken
    /// ([`DeliveryWorker`](crate::DeliveryWorker) does, with the `tokio` feature).
    /// For each user it claims the due messages by compare-and-swap (so several
    /// servers may run it against one database: each message is sent by one of them at
    /// a time), sends them through the [`Mailer`], and records each as delivered (its
    /// backup code erased) or failed (retried with backoff, given up after
    /// [`DeliveryPolicy::max_attempts`](crate::DeliveryPolicy::max_attempts) with a
    /// [`MailGaveUp`](crate::events::EventKind::MailGaveUp) event).
    ///
    /// A user whose document cannot be read is skipped (counted in
    /// [`DeliveryReport::skipped`]) and the round looks further, so bad documents do
    /// not keep the others waiting; a round that has skipped more than 1,000 stops.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// use twofactor::{Engine, KeyRing, NewAccount, Policy, Role};
    /// use twofactor::mail::MemoryMailer;
    /// use twofactor::store::MemoryStore;
    /// let mailer = MemoryMailer::new();
    /// let engine = Engine::builder(MemoryStore::new(), mailer.clone(), KeyRing::ephemeral()? /* tests only */)
    ///     .policy(Policy::builder().danger_fast_hashing().build()?)
    ///     .build()?;
    /// let alice = engine.create_account(NewAccount::new("alice", "alice@example.test", Role::User, "correct horse battery")).await?;
    /// let admin = engine.create_account(NewAccount::new("root", "root@example.test", Role::Admin, "correct horse battery")).await?;
    /// engine.reset(admin, alice, "called her back on her known number").await?;
    /// assert!(mailer.outbox().is_empty(), "queued, not sent, by the reset");
    /// let report = engine.deliver_due(100).await?;
    /// assert_eq!((report.sent, mailer.outbox().len()), (1, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(()) })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// `max_users` of 0 counts as 1.
    ///
    /// # Errors
    /// Store faults other than an unreadable document (the round stops; what it
    /// delivered stays recorded).
    pub async fn deliver_due(&self, max_users: usize) -> Result<DeliveryReport> {
        let max_users = max_users.max(1);
        let mut report = DeliveryReport::default();
        let mut seen = std::collections::HashSet::new();
        // A skipped document stays due (it cannot be written), so ask again past the
        // skipped ones: they must not keep the users behind them waiting.
        while (report.users as usize) < max_users {
            let wanted = max_users + report.skipped as usize;
            let users = self.store.mail_due(self.clock.now(), wanted).await?;
            let fetched = users.len();
            let fresh: Vec<UserId> = users.into_iter().filter(|u| seen.insert(*u)).collect();
            if fresh.is_empty() {
                break;
            }
            for user in fresh.into_iter().take(max_users - report.users as usize) {
                match self.deliver_queued(user).await {
                    Ok(one) => report.absorb(one),
                    Err(Error::NoSuchAccount) => {}
                    Err(err) if stops_a_round(&err) => return Err(err),
                    Err(_) => report.skipped += 1,
                }
            }
            if fetched < wanted || report.skipped as usize > MAX_SKIPPED {
                break;
            }
        }
        Ok(report)
    }

    /// Delivers user `id`'s due mail now, as [`deliver_due`](Self::deliver_due) does
    /// for every user. Call it right after an operation when the user should hear at
    /// once whether the mail went out (the web example does after a backup-code login:
    /// "we emailed you a new code", or "the mail is delayed"); the request then waits
    /// for the mail transport. Never call it after a *failed* attempt (a wrong password
    /// or code): waiting on mail there would make the answer time tell which usernames
    /// exist, which is why the engine itself never sends mail inside a request.
    ///
    /// # Errors
    /// [`Error::NoSuchAccount`]; store faults; a corrupt document.
    pub async fn deliver_queued(&self, id: UserId) -> Result<DeliveryReport> {
        let policy = self.policy.delivery;
        let snapshot = self.load(id).await?;
        let now = self.clock.now();
        let claim = self.transact(snapshot, |fresh| Ok(rules::claim(fresh, &policy, now))).await?;
        // Messages whose every try crashed its worker are given up by the claim.
        self.dispatch(&claim.effects);
        let mut report = DeliveryReport { users: 1, ..DeliveryReport::default() };
        report.gave_up +=
            claim.effects.events.iter().filter(|e| matches!(e.kind, EventKind::MailGaveUp { .. })).count() as u32;
        let Some(account) = claim.next.filter(|_| !claim.outcome.is_empty()) else {
            return Ok(report);
        };
        let mut tried = Vec::with_capacity(claim.outcome.len());
        let mut reasons = Vec::with_capacity(claim.outcome.len());
        for claimed in &claim.outcome {
            let sent = match self.message(&account, claimed) {
                Ok(message) => self.mailer.send(claimed.id, &message).await.map_err(|e| e.to_string()),
                Err(e) => Err(format!("the queued message cannot be opened: {e}")),
            };
            let kind = claimed.payload.kind();
            tried.push(Tried { id: claimed.id, kind, attempts: claimed.attempts, sent: sent.is_ok() });
            reasons.push(sent.err());
        }
        let now = self.clock.now();
        let settle =
            self.transact(self.load(id).await?, |fresh| Ok(rules::settle(fresh, &tried, &policy, now))).await?;
        self.dispatch(&settle.effects);
        for ((t, why), settlement) in tried.iter().zip(reasons).zip(settle.outcome) {
            let delivery = match (settlement, why) {
                (Settlement::Delivered, _) => {
                    report.sent += 1;
                    Delivery::Sent
                }
                (Settlement::GaveUp, why) => {
                    report.gave_up += 1;
                    Delivery::GaveUp(why.unwrap_or_default())
                }
                (Settlement::Retrying, why) => {
                    report.retrying += 1;
                    Delivery::Failed(why.unwrap_or_default())
                }
                // Another worker's later claim owns the message now: this try counts
                // for nothing.
                (Settlement::Superseded, why) => Delivery::Failed(why.unwrap_or_default()),
            };
            report.messages.push((t.id, t.kind, delivery));
        }
        Ok(report)
    }

    /// Where message `mail` of user `id` stands: queued (with its tries so far),
    /// delivered, given up, or unknown. Ask it later, e.g. on the page after a
    /// backup-code login or an administrator's reset, with the id their
    /// [`Delivery::Queued`] named.
    ///
    /// # Errors
    /// [`Error::NoSuchAccount`]; store faults; a corrupt document.
    pub async fn mail_status(&self, id: UserId, mail: MailId) -> Result<MailStatus> {
        Ok(rules::status(&self.load(id).await?.record, mail))
    }
}
