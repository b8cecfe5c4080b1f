//! What a signed-in user does to their own second factor, and an administrator's
//! unlock: the async half of [`crate::rules::self_service`].
//!
//! The application signs the user in first; each call here then asks for what the
//! action needs: a code from the new authenticator to add it, a fresh factor from
//! another one (or the backup code) to remove one, a fresh factor to turn 2FA off or to
//! step up before a sensitive action. Fresh factors follow the login's rules: one
//! shared failure budget, single use, replay-safe.

use crate::UserId;
use crate::account::{Account, Enrolling, TwoFactor};
use crate::crypto::random;
use crate::engine::manage::AdminNote;
use crate::engine::{Engine, EnrollmentStarted, SecondFactor};
use crate::error::{Error, InputError, Refusal, Result, check_len};
use crate::events::EventKind;
use crate::mail::Mailer;
use crate::outbox::MailId;
use crate::outcome::{AddAuthenticatorOutcome, AuthenticatorInfo, StepUpOutcome, UnlockOutcome};
use crate::plumbing::clock::Clock;
use crate::rules::self_service::{
    self as rules, Action, authenticator_id_text, check_removable, parse_authenticator_id,
};
use crate::store::UserStore;

/// The longest authenticator name, in bytes.
const MAX_AUTHENTICATOR_NAME: usize = 64;

impl<S: UserStore, M: Mailer, C: Clock> Engine<S, M, C> {
    /// The user's authenticators, oldest first (empty while 2FA is off).
    ///
    /// # Errors
    /// [`Error::NoSuchAccount`]; store faults.
    pub async fn authenticators(&self, id: UserId) -> Result<Vec<AuthenticatorInfo>> {
        let account = self.load(id).await?.record;
        let TwoFactor::Enabled(e) = &account.two_factor else {
            return Ok(Vec::new());
        };
        Ok(e.authenticators
            .iter()
            .map(|a| AuthenticatorInfo {
                id: authenticator_id_text(&a.id),
                name: a.name.clone(),
                added_at: a.added_at,
                last_used_at: (a.last_used_at.0 > 0).then_some(a.last_used_at),
            })
            .collect())
    }

    /// Starts adding a further authenticator (a tablet beside the phone) named `name`,
    /// while 2FA is on: returns its secret as an `otpauth://` URI to show as a QR code.
    /// It logs in only after [`confirm_authenticator`](Self::confirm_authenticator)
    /// sees a right code from it; calling this again replaces an unconfirmed one. Ask
    /// for a [`step_up`](Self::step_up) first if the session is not fresh.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty, over-long (64 bytes) or multi-line name;
    /// [`Error::Misuse`] ([`Refusal::TwoFactorNotActive`],
    /// [`Refusal::TooManyAuthenticators`]); [`Error::NoSuchAccount`]; store faults.
    pub async fn add_authenticator(&self, id: UserId, name: &str) -> Result<EnrollmentStarted> {
        let name = authenticator_name(name)?;
        let snapshot = self.load(id).await?;
        let (secret, started) = self.new_secret(&snapshot.record)?;
        let now = self.clock.now();
        let adding = Enrolling {
            id: random::bytes::<8>()?,
            name: name.to_owned(),
            secret: self.keys.seal(id, secret.as_ref())?,
            params: self.policy.totp,
            started_at: now,
        };
        let t = self.transact(snapshot, |fresh| Ok(rules::start_adding(fresh, adding.clone(), now)?)).await?;
        self.dispatch(&t.effects);
        Ok(started)
    }

    /// Confirms the authenticator being added with a code from it. On success its codes
    /// log in (that code's step counts as used) and the user is mailed.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a malformed code; [`Error::Misuse`]
    /// ([`Refusal::NoEnrollment`] when none is being added); store faults.
    pub async fn confirm_authenticator(&self, id: UserId, code: &str) -> Result<AddAuthenticatorOutcome> {
        let snapshot = self.load(id).await?;
        let adding = match &snapshot.record.two_factor {
            TwoFactor::Enabled(e) => e.adding.clone().ok_or(Refusal::NoEnrollment)?,
            _ => return Err(Refusal::TwoFactorNotActive.into()),
        };
        let now = self.clock.now();
        let Some((step, secret)) = self.confirming_step(&snapshot.record, &adding, code, now)? else {
            return Ok(AddAuthenticatorOutcome::WrongCode);
        };
        let notice = MailId::random()?;
        let t = self
            .transact(snapshot, |fresh| {
                // A re-seal meanwhile changes the sealed bytes, not the secret.
                let expected = match &fresh.two_factor {
                    TwoFactor::Enabled(e) => match &e.adding {
                        Some(a) if a.secret != adding.secret && self.holds(id, &a.secret, &secret) => &a.secret,
                        _ => &adding.secret,
                    },
                    _ => &adding.secret,
                };
                Ok(rules::confirm_adding(fresh, expected, step, notice, now)?)
            })
            .await?;
        self.dispatch(&t.effects);
        Ok(t.outcome)
    }

    /// Removes authenticator `authenticator` (its id from
    /// [`authenticators`](Self::authenticators)) after a fresh code from *another*
    /// authenticator or the backup code, so a stolen phone alone cannot remove the
    /// others. The user is mailed. The last authenticator cannot go: turning 2FA off
    /// ([`disable_two_factor`](Self::disable_two_factor)) removes it.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a malformed id; [`Error::Misuse`]
    /// ([`Refusal::NoSuchAuthenticator`], [`Refusal::LastAuthenticator`],
    /// [`Refusal::TwoFactorNotActive`]); store faults.
    pub async fn remove_authenticator(
        &self,
        id: UserId,
        authenticator: &str,
        factor: SecondFactor<'_>,
    ) -> Result<StepUpOutcome> {
        let target = parse_authenticator_id(authenticator)
            .ok_or(InputError::malformed("authenticator", "not 16 lowercase hex digits"))?;
        let remove = rules::remove(target);
        self.with_fresh_factor(id, factor, Some(target), |fresh| check_removable(fresh, &target), &remove).await
    }

    /// Turns 2FA off for the signed-in user after a fresh TOTP or backup code: every
    /// authenticator, the backup codes, pending logins and remembered locations go,
    /// and the user is mailed. Refused when the policy requires 2FA.
    ///
    /// # Errors
    /// [`Error::Misuse`] ([`Refusal::TwoFactorRequired`], [`Refusal::TwoFactorNotActive`]);
    /// [`Error::NoSuchAccount`]; store faults.
    pub async fn disable_two_factor(&self, id: UserId, factor: SecondFactor<'_>) -> Result<StepUpOutcome> {
        if self.policy.require_two_factor {
            return Err(Refusal::TwoFactorRequired.into());
        }
        let stamp = random::u64()?;
        self.with_fresh_factor(id, factor, None, |_| Ok(()), &rules::disable(stamp)).await
    }

    /// A step-up check: before a sensitive action (changing the email, the password or
    /// the authenticators), asks an already signed-in user for a fresh second factor.
    /// One call, under the login's rules (the shared failure budget, single use: a
    /// TOTP step counts as used, a backup code is replaced and its successor queued),
    /// and no new session: the application goes on with the action on
    /// [`StepUpOutcome::Verified`].
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// use twofactor::{Engine, KeyRing, NewAccount, Policy, Role, SecondFactor, StepUpOutcome};
    /// use twofactor::mail::MemoryMailer;
    /// use twofactor::store::MemoryStore;
    /// let engine = Engine::builder(MemoryStore::new(), MemoryMailer::new(), KeyRing::ephemeral()? /* tests only */)
    ///     .policy(Policy::builder().danger_fast_hashing().build()?)
    ///     .build()?;
    /// let alice = engine.create_account(NewAccount::new("alice", "alice@example.test", Role::User, "correct horse battery")).await?;
    /// // … alice enrolled and signed in; before she changes her email:
    /// # let started = engine.start_enrollment(alice).await?;
    /// # let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes())?;
    /// # let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    /// # engine.confirm_enrollment(alice, twofactor::totp::generate(&secret, &Default::default(), now - 30).expose()).await?;
    /// # let code = twofactor::totp::generate(&secret, &Default::default(), now);
    /// match engine.step_up(alice, SecondFactor::Totp(code.expose())).await? {
    ///     StepUpOutcome::Verified { .. } => { /* change the email */ }
    ///     other => panic!("ask again: {other:?}"),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(()) })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Misuse`] ([`Refusal::TwoFactorNotActive`]); [`Error::NoSuchAccount`];
    /// store faults.
    pub async fn step_up(&self, id: UserId, factor: SecondFactor<'_>) -> Result<StepUpOutcome> {
        self.with_fresh_factor(id, factor, None, |_| Ok(()), &rules::no_action).await
    }

    /// Checks a fresh factor (from any authenticator but `except`, or the backup code)
    /// and applies `action` in the same write; `allowed` re-checks the freshest record.
    async fn with_fresh_factor(
        &self,
        id: UserId,
        factor: SecondFactor<'_>,
        except: Option<crate::account::AuthenticatorId>,
        allowed: impl Fn(&Account) -> std::result::Result<(), Refusal>,
        action: Action<'_>,
    ) -> Result<StepUpOutcome> {
        let snapshot = self.load(id).await?;
        if !matches!(snapshot.record.two_factor, TwoFactor::Enabled(_)) {
            return Err(Refusal::TwoFactorNotActive.into());
        }
        allowed(&snapshot.record)?;
        let now = self.clock.now();
        let parsed = factor.parse(self.policy.totp.digits);
        let parsed = match rules::admit_fresh_factor(&snapshot.record, factor.kind(), parsed, now) {
            Ok(parsed) => parsed,
            Err(refused) => {
                self.dispatch(&refused.effects);
                return Ok(refused.outcome);
            }
        };
        let checked = self.check_factor(&snapshot.record, &parsed, except, now).await?;
        let verdict = checked.verdict.clone();
        let prepared = self.prepare(checked, now).await?;
        let stamp = snapshot.record.security_stamp;
        let t = self
            .transact(snapshot, |fresh| {
                // The verdict is about the record it was checked against. A reset, a
                // turn-off or a password change meanwhile (a new stamp) makes it
                // stale: refused as at login, and counted nowhere.
                if !matches!(fresh.two_factor, TwoFactor::Enabled(_)) {
                    return Err(Refusal::TwoFactorNotActive.into());
                }
                allowed(fresh)?;
                if fresh.security_stamp != stamp {
                    return Ok(crate::rules::Transition::unchanged(StepUpOutcome::Denied, Default::default()));
                }
                Ok(rules::fresh_factor(fresh, &verdict, &prepared, &self.policy, now, action))
            })
            .await?;
        self.dispatch(&t.effects);
        Ok(t.outcome)
    }

    /// An administrator's (or support's) unlock: clears the user's failure budget, and
    /// with it a throttle or the permanent second-factor lock, without touching the
    /// user's 2FA; records who did it and why, and mails the user.
    /// [`UnlockOutcome::NotLocked`] when the budget holds no failure. The role rules are a reset's ([`Role::may_reset`](crate::Role::may_reset));
    /// a refusal is [`UnlockOutcome::NotAllowed`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty or over-long reason; [`Error::NoSuchAccount`];
    /// store faults.
    pub async fn unlock(&self, actor: UserId, target: UserId, reason: &str) -> Result<UnlockOutcome> {
        let note = AdminNote { field: "reason", text: reason, missing: "say why the account is unlocked" };
        let Some((actor_rec, snapshot)) =
            self.admin_over(actor, target, note, EventKind::UnlockDenied { by: actor }).await?
        else {
            return Ok(UnlockOutcome::NotAllowed);
        };
        let (now, notice) = (self.clock.now(), MailId::random()?);
        let t = self.transact(snapshot, |fresh| Ok(rules::unlock(fresh, &actor_rec, reason, notice, now))).await?;
        self.dispatch(&t.effects);
        Ok(t.outcome)
    }
}

impl<S: UserStore, M: Mailer, C: Clock> Engine<S, M, C> {
    /// Forgets user `id`: removes everything the crate holds for them (their document,
    /// and with it any queued mail; in the shipped stores, which keep the users, the
    /// user too) and records a [`UserForgotten`](crate::events::EventKind::UserForgotten) event
    /// that holds no secret, for account deletion and data-protection requests. Returns
    /// `false` when the store knows no such user (so calling it again on a shipped
    /// store answers `false`). A
    /// login racing it either happens before (and is forgotten with the rest) or finds
    /// no user.
    ///
    /// # Errors
    /// Store faults ([`StoreError::Unsupported`](crate::StoreError::Unsupported) from a
    /// store without [`UserStore::forget`]); [`Error::Contention`]
    /// for a user whose document kept changing.
    pub async fn forget_user(&self, id: UserId) -> Result<bool> {
        for _ in 0..super::MAX_SWAP_ATTEMPTS {
            let Some(user) = self.store.find_by_id(id).await? else {
                return Ok(false);
            };
            let version = user.credentials.as_ref().map_or(0, |c| c.version);
            if let crate::store::Swap::Swapped { .. } = self.store.forget(id, version).await? {
                self.record(Some(id), EventKind::UserForgotten);
                return Ok(true);
            }
        }
        Err(Error::Contention)
    }
}

/// A user's name for an authenticator, checked.
fn authenticator_name(name: &str) -> Result<&str> {
    let name = name.trim();
    check_len("authenticator name", name, MAX_AUTHENTICATOR_NAME)?;
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(InputError::malformed("authenticator name", "must be one non-empty line").into());
    }
    Ok(name)
}
