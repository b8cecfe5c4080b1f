//! The login ceremony: [`Engine::begin_login`] and [`Engine::finish_login`].

use crate::UserId;
use crate::account::username::MAX_USERNAME;
use crate::account::{Account, BackupCodeHash, Versioned};
use crate::crypto::random;
use crate::crypto::secret::SecretString;
use crate::crypto::token::{LocationToken, LoginClaims};
use crate::engine::Engine;
use crate::error::{Error, Result, check_len};
use crate::events::{EventKind, FailureClass};
use crate::factors::backup_code::BackupCode;
use crate::factors::password;
use crate::mail::Mailer;
use crate::outbox::MailId;
use crate::outcome::{LoginOutcome, PendingLogin, SecondFactorOutcome};
use crate::plumbing::clock::{Clock, Timestamp};
use crate::plumbing::semaphore::Lane;
use crate::rules::locations::valid_location;
use crate::rules::login::{CodeVerdict, Prepared, admit_second_step, apply_second_step};
use crate::rules::password::{
    FirstFactor, PasswordChanged, RightPassword, apply_password_failure, apply_right_password, refused_while_throttled,
};
use crate::rules::{FreshCodes, Transition};
use crate::store::{Swap, UserStore};

/// What [`LoginOutcome::Busy`] suggests: a second, long enough for the line of
/// waiting hashes to move on.
const RETRY_AFTER_BUSY: std::time::Duration = std::time::Duration::from_secs(1);

/// No ticket was free (see `admission`).
struct Shed;

/// Longest remembered-location label, in characters.
pub(crate) const MAX_LABEL: usize = 128;

/// The second factor a user entered against a pending login. `Debug` shows which kind,
/// never the code.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum SecondFactor<'a> {
    /// The code from the authenticator app.
    Totp(&'a str),
    /// The emailed backup code ("I don't have my device").
    BackupCode(&'a str),
}

impl std::fmt::Debug for SecondFactor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SecondFactor::Totp(_) => "Totp(REDACTED)",
            SecondFactor::BackupCode(_) => "BackupCode(REDACTED)",
        })
    }
}

impl<S: UserStore, M: Mailer, C: Clock> Engine<S, M, C> {
    /// The password step.
    ///
    /// `remembered` is the token from an earlier
    /// [`Authenticated::remembered`](crate::Authenticated::remembered), if the client
    /// sent one; a token that does not parse or does not belong to this account is
    /// ignored.
    ///
    /// Unknown user, wrong password and throttled account all answer
    /// [`LoginOutcome::Denied`] after the same Argon2 work, and none of them waits on
    /// mail (a throttle notice is sent without holding the answer back). A right
    /// password on an account with active 2FA answers
    /// [`LoginOutcome::SecondFactorRequired`] unless the location is remembered.
    ///
    /// Password steps for one username run one at a time in this engine (others wait
    /// their turn, first come first served), so concurrent guesses are evaluated in
    /// sequence against the failure budget: once the account is throttled, every later
    /// guess, the right password included, answers `Denied` after the same work as any
    /// throttled attempt.
    ///
    /// An over-long username or password (a typo or junk) is [`LoginOutcome::Denied`]
    /// too, decided before anything is read or hashed; the event says which input
    /// ([`FailureClass::BadInput`](crate::events::FailureClass::BadInput)).
    ///
    /// # Errors
    /// Store faults only: what a user types is never an `Err`.
    pub async fn begin_login(&self, username: &str, password: &str, remembered: Option<&str>) -> Result<LoginOutcome> {
        if let Err(bad) = check_len("username", username, MAX_USERNAME)
            .and_then(|()| password::check_input(password, &self.policy.password))
        {
            // A typo or junk: refused unread and unhashed (the answer depends only on
            // the input's length, never on the account).
            self.record(None, EventKind::LoginFailed { reason: FailureClass::bad_input(&bad) });
            return Ok(LoginOutcome::Denied);
        }
        let secret = SecretString::from(password);
        let location_token = remembered.and_then(|t| LocationToken::decode(t).ok());
        // Shedding (see `admission`): without a location token, a ticket is taken before
        // anything is read, or the answer is `Busy` at once.
        let early_ticket = match location_token {
            None => Some(self.admission.try_admit().ok_or(Shed)),
            Some(_) => None,
        };
        if let Some(Err(Shed)) = early_ticket {
            return Ok(self.shed());
        }
        // One password step per name at a time (see `name_gate`), held from before the
        // read until the verdict is written, so each step reads what the previous one
        // wrote and a burst of guesses is evaluated one by one against the budget.
        let gate_key = crate::account::username::for_login(username).unwrap_or(std::borrow::Cow::Borrowed(username));
        let _turn = self.name_gate.turn(&gate_key).await;
        let mut snapshot = self.find_by_login_name(username).await?;
        // The store may find the user under another spelling than the one typed (an
        // application's case-insensitive login, say): then also take the turn of the
        // login it found, in which every exact spelling waits, and read again under it,
        // so every spelling of one user waits in one line. (A turn is only ever taken
        // second on a stored login, whose own holders take no second turn: no cycle.)
        let _found_turn = match &snapshot {
            Some(found) if found.record.username != *gate_key => {
                let turn = self.name_gate.turn(&found.record.username).await;
                let id = found.record.id;
                snapshot = match self.store.find_by_id(id).await? {
                    Some(user) => Some(self.account_of(user)?),
                    None => None,
                };
                Some(turn)
            }
            _ => None,
        };
        let now = self.clock.now();
        // A valid remembered location is hashed first and never shed; anyone else needs
        // a ticket (taken now if the token turned out invalid).
        let remembered_here = snapshot
            .as_ref()
            .is_some_and(|s| location_token.as_ref().and_then(|t| valid_location(&s.record, t, now)).is_some());
        let lane = if remembered_here { Lane::Priority } else { Lane::Normal };
        let _late_ticket = match (lane, &early_ticket) {
            (Lane::Normal, None) => match self.admission.try_admit() {
                Some(ticket) => Some(ticket),
                None => return Ok(self.shed()),
            },
            _ => None,
        };
        // A user whose password the application checks (the crate keeps none) is
        // answered as an unknown name: same work, same outcome, nothing written.
        let Some(snapshot) = snapshot.filter(|s| s.record.password_hash.is_some()) else {
            self.dummy_verify(secret, lane).await?;
            self.record(None, EventKind::LoginFailed { reason: FailureClass::UnknownUser });
            return Ok(LoginOutcome::Denied);
        };
        let account = &snapshot.record;
        if let Some(refused) = refused_while_throttled(account, now) {
            self.dummy_verify(secret, lane).await?;
            self.dispatch(&refused);
            return Ok(LoginOutcome::Denied);
        }
        let phc = account.password_hash.clone().unwrap_or_default();
        let policy_hash = self.policy.password.hash;
        let (matched, rehash) = self
            .run_hashing_in(lane, move || -> Result<(bool, Option<String>)> {
                let matched = password::verify(secret.expose().as_bytes(), &phc)?;
                let rehash = if matched && password::needs_rehash(&phc, &policy_hash) {
                    Some(password::hash(secret.expose().as_bytes(), &policy_hash)?)
                } else {
                    None
                };
                Ok((matched, rehash))
            })
            .await??;
        if !matched {
            let t = self.transact(snapshot, |fresh| Ok(apply_password_failure(fresh, &self.policy, now))).await?;
            self.dispatch(&t.effects);
            return Ok(LoginOutcome::Denied);
        }

        let verified_hash = account.password_hash.clone();
        self.after_first_factor(snapshot, location_token.as_ref(), rehash.as_deref(), verified_hash.as_deref(), now)
            .await
    }

    /// The second-factor-only mode's first call: the application (or its single
    /// sign-on) has already checked the user, and the user now needs the crate's second
    /// step. Answers what [`begin_login`](Self::begin_login) answers after a right
    /// password, under the same rules: a throttled or locked account is
    /// [`LoginOutcome::Denied`], a valid remembered-location token skips the code, an
    /// account without 2FA is [`LoginOutcome::Authenticated`] (or
    /// [`LoginOutcome::EnrollmentRequired`] when the policy requires 2FA), and otherwise
    /// the answer is [`LoginOutcome::SecondFactorRequired`] with a pending login for
    /// [`finish_login`](Self::finish_login), with the same attempts, backup code,
    /// remembered locations and events.
    ///
    /// For a single sign-on, call it after the sign-on. When the application checks
    /// passwords itself, use [`password_attempt`](Self::password_attempt) instead: it
    /// refuses a check while the account is throttled and lets one check per user run
    /// at a time, so the shared budget limits the application's guesses too.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// use twofactor::{Engine, KeyRing, LoginOutcome, Policy, Role, UserId};
    /// use twofactor::mail::MemoryMailer;
    /// use twofactor::store::MemoryStore;
    /// let store = MemoryStore::new();
    /// store.add_user(UserId::from(42_u64), "alice", "alice@example.test", Role::User)?; // the app's user
    /// let engine = Engine::builder(store, MemoryMailer::new(), KeyRing::ephemeral()? /* tests only */)
    ///     .policy(Policy::builder().danger_fast_hashing().build()?)
    ///     .build()?;
    /// // alice signed in through the single sign-on.
    /// let outcome = engine.begin_second_factor(UserId::from(42_u64), None).await?;
    /// assert!(matches!(outcome, LoginOutcome::Authenticated(_)), "no 2FA enrolled yet");
    /// # Ok::<(), Box<dyn std::error::Error>>(()) })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::NoSuchAccount`] when the store has no such user; store faults.
    pub async fn begin_second_factor(&self, id: UserId, remembered: Option<&str>) -> Result<LoginOutcome> {
        let _turn = self.name_gate.turn(&user_turn(id)).await;
        self.second_factor_after_check(id, remembered).await
    }

    /// Lets the application check a user's password itself under the crate's failure
    /// budget. Returns [`PasswordAttempt::Refused`] while the account is throttled or
    /// locked: do not check the password then, and answer as for a wrong one. Otherwise
    /// [`PasswordAttempt::Check`] holds this user's turn (one check per user at a time
    /// in this engine, so a burst of concurrent guesses meets the budget one by one):
    /// check the password, then report the result with [`PasswordCheck::failed`] or
    /// [`PasswordCheck::succeeded`] (which answers like
    /// [`begin_second_factor`](Self::begin_second_factor)). Dropping the check without
    /// reporting counts nothing.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// use twofactor::{Engine, KeyRing, LoginOutcome, PasswordAttempt, Policy, Role, UserId};
    /// use twofactor::mail::MemoryMailer;
    /// use twofactor::store::MemoryStore;
    /// # let store = MemoryStore::new();
    /// # store.add_user(UserId::from(42_u64), "alice", "alice@example.test", Role::User)?;
    /// # let engine = Engine::builder(store, MemoryMailer::new(), KeyRing::ephemeral()?)
    /// #     .policy(Policy::builder().danger_fast_hashing().build()?).build()?;
    /// # let app_password_is_right = |_: &str| false;
    /// let outcome = match engine.password_attempt(UserId::from(42_u64)).await? {
    ///     PasswordAttempt::Check(check) if app_password_is_right("typed password") => check.succeeded(None).await?,
    ///     PasswordAttempt::Check(check) => {
    ///         check.failed().await?;
    ///         LoginOutcome::Denied
    ///     }
    ///     _ => LoginOutcome::Denied, // Refused: the same answer as a wrong password
    /// };
    /// assert!(matches!(outcome, LoginOutcome::Denied));
    /// # Ok::<(), Box<dyn std::error::Error>>(()) })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::NoSuchAccount`]; store faults.
    pub async fn password_attempt(&self, id: UserId) -> Result<PasswordAttempt<'_, S, M, C>> {
        let turn = self.name_gate.turn(&user_turn(id)).await;
        let snapshot = self.load(id).await?;
        let now = self.clock.now();
        if let Some(refused) = refused_while_throttled(&snapshot.record, now) {
            self.dispatch(&refused);
            return Ok(PasswordAttempt::Refused);
        }
        Ok(PasswordAttempt::Check(PasswordCheck { engine: self, id, _turn: turn }))
    }

    /// Counts a wrong password that the application checked itself in the user's
    /// shared failure budget, exactly as a wrong password given to
    /// [`begin_login`](Self::begin_login) counts: it throttles the account (and queues
    /// the throttle notice in the same write), but never locks the second factor.
    /// A failure reported while the account is throttled is not counted. Prefer
    /// [`password_attempt`](Self::password_attempt), which also keeps the application
    /// from checking passwords while the account is throttled.
    ///
    /// # Errors
    /// [`Error::NoSuchAccount`]; store faults.
    pub async fn record_password_failure(&self, id: UserId) -> Result<()> {
        let _turn = self.name_gate.turn(&user_turn(id)).await;
        self.count_password_failure(id).await
    }

    async fn count_password_failure(&self, id: UserId) -> Result<()> {
        let snapshot = self.load(id).await?;
        let now = self.clock.now();
        let t = self.transact(snapshot, |fresh| Ok(apply_password_failure(fresh, &self.policy, now))).await?;
        self.dispatch(&t.effects);
        Ok(())
    }

    async fn second_factor_after_check(&self, id: UserId, remembered: Option<&str>) -> Result<LoginOutcome> {
        let snapshot = self.load(id).await?;
        let now = self.clock.now();
        if let Some(refused) = refused_while_throttled(&snapshot.record, now) {
            self.dispatch(&refused);
            return Ok(LoginOutcome::Denied);
        }
        let location_token = remembered.and_then(|t| LocationToken::decode(t).ok());
        self.after_first_factor(snapshot, location_token.as_ref(), None, None, now).await
    }

    /// What follows a right first factor (the crate's password check, or the
    /// application's): clear the failures, use a remembered location, and answer
    /// authenticated, enrollment required or second factor required. `verified_hash`
    /// is the password hash the crate verified, if it did; `rehash` replaces it.
    async fn after_first_factor(
        &self,
        snapshot: Versioned<Account>,
        location_token: Option<&LocationToken>,
        rehash: Option<&str>,
        verified_hash: Option<&str>,
        now: Timestamp,
    ) -> Result<LoginOutcome> {
        // Decided inside the compare-and-swap loop: when the step writes (a re-hash,
        // clearing failures, touching a location) and loses a race, it is decided again
        // on the record that won, so a concurrent throttle, reset or revocation counts.
        let first = FirstFactor { verified_hash, rehash, location: location_token, pending_id: random::bytes::<16>()? };
        let (t, stored) = self
            .transact_settled(snapshot, |fresh| {
                // The password changed after we verified it: refused rather than
                // re-verified against a hash we did not check.
                apply_right_password(fresh, first, &self.policy, now).map_err(|PasswordChanged| Error::Contention)
            })
            .await?;
        self.dispatch(&t.effects);
        Ok(match t.outcome {
            RightPassword::Authenticated(authenticated) => LoginOutcome::Authenticated(authenticated),
            RightPassword::EnrollmentRequired(authenticated) => LoginOutcome::EnrollmentRequired(authenticated),
            RightPassword::SecondFactor(claims) => {
                let token = SecretString::new(claims.seal(&self.keys)?);
                self.recent.keep(claims.id, claims.expires_at, stored, now);
                LoginOutcome::SecondFactorRequired(PendingLogin {
                    token,
                    expires_at: claims.expires_at,
                    lifetime: self.policy.pending_lifetime,
                })
            }
            RightPassword::Denied => LoginOutcome::Denied,
        })
    }

    async fn dummy_verify(&self, secret: SecretString, lane: Lane) -> Result<()> {
        let dummy = self.dummy_hash.clone();
        self.run_hashing_in(lane, move || password::verify(secret.expose().as_bytes(), &dummy)).await??;
        Ok(())
    }

    /// The answer to a password step the engine is too busy to take.
    fn shed(&self) -> LoginOutcome {
        self.record(None, EventKind::LoginShed);
        LoginOutcome::Busy { retry_after: RETRY_AFTER_BUSY }
    }

    /// The second step: a TOTP code or the backup code against a pending login.
    ///
    /// With `remember_as` (a label such as "Firefox on Linux"), a successful login also
    /// returns a [`RememberToken`](crate::RememberToken) that lets this location skip the code next time.
    ///
    /// A wrong code is [`SecondFactorOutcome::Denied`]; every failure counts against
    /// the pending login's attempts and the account's shared budget. A backup code
    /// works once: in the same atomic write it is voided and replaced, and the new code
    /// is queued for mail (see [`Authenticated::backup_code_delivery`](crate::Authenticated::backup_code_delivery)).
    ///
    /// Store round trips: one compare-and-swap, after one read of the user, or none
    /// when the password step ran on this engine (it keeps the record it read for a
    /// few hundred pending logins; a record that changed meanwhile costs a lost swap
    /// and a read). Whichever, the step is decided on the record it writes over.
    ///
    /// A token that is not a pending login of this engine's key ring (malformed,
    /// altered, forged, from 0.1.0) is [`SecondFactorOutcome::Expired`], like an expired,
    /// used or revoked one.
    ///
    /// A code that is not a code (letters, a wrong length) is
    /// [`SecondFactorOutcome::Denied`] with the attempts left, and counts nothing; an
    /// over-long token is `Expired` like any other that does not open. The event says
    /// which input ([`FailureClass::BadInput`](crate::events::FailureClass::BadInput)).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an over-long `remember_as` label (it comes from the
    /// application, not the user; nothing is read); store faults; [`Error::Unseal`]
    /// when the TOTP key cannot be opened.
    pub async fn finish_login(
        &self,
        pending: &str,
        factor: SecondFactor<'_>,
        remember_as: Option<&str>,
    ) -> Result<SecondFactorOutcome> {
        let kind = factor.kind();
        if let Some(label) = remember_as {
            // The label comes from the application, not the user: a misuse stays an error.
            check_len("location label", label, MAX_LABEL)?;
        }
        let claims = match LoginClaims::open(pending, &self.keys) {
            Ok(Some(claims)) => claims,
            Ok(None) => {
                self.record(None, EventKind::SecondFactorFailed { factor: kind, reason: FailureClass::PendingInvalid });
                return Ok(SecondFactorOutcome::Expired);
            }
            Err(bad) => {
                let reason = FailureClass::bad_input(&bad);
                self.record(None, EventKind::SecondFactorFailed { factor: kind, reason });
                return Ok(SecondFactorOutcome::Expired);
            }
        };
        // Started from the record the password step kept (see `recent`) when it is
        // here. The answer stands only if it was written over that very version at the
        // first try: an answer that writes nothing, or a write that met a changed
        // document (the code was checked against the old one), is decided again on a
        // fresh read.
        let now = self.clock.now();
        if let Some(kept) = self.recent.take(&claims.id, claims.account, now)
            && let Decided::Checked(verdict, prepared) =
                self.decide_second_step(&kept.record, &claims, &factor, remember_as, now).await?
        {
            let mut t = apply_second_step(&kept.record, &claims, &verdict, &prepared, &self.policy, now);
            if let Some(Swap::Swapped { .. }) = self.commit(&kept, &mut t).await? {
                self.dispatch(&t.effects);
                return Ok(t.outcome);
            }
        }
        let Some(user) = self.store.find_by_id(claims.account).await? else {
            return Ok(SecondFactorOutcome::Expired);
        };
        let snapshot = self.account_of(user)?;
        let t = match self.decide_second_step(&snapshot.record, &claims, &factor, remember_as, now).await? {
            Decided::Refused(refused) => *refused,
            Decided::Checked(verdict, prepared) => {
                self.transact(snapshot, |fresh| {
                    Ok(apply_second_step(fresh, &claims, &verdict, &prepared, &self.policy, now))
                })
                .await?
            }
        };
        self.dispatch(&t.effects);
        Ok(t.outcome)
    }

    /// Admits a second step on `record` and checks its code: refused outright (the
    /// pending login's problem, or input that is not a code), or the code's verdict
    /// with what a success needs. Nothing is written or dispatched.
    async fn decide_second_step(
        &self,
        record: &Account,
        claims: &LoginClaims,
        factor: &SecondFactor<'_>,
        remember_as: Option<&str>,
        now: Timestamp,
    ) -> Result<Decided> {
        let parsed = factor.parse(self.policy.totp.digits);
        let parsed = match admit_second_step(record, claims, factor.kind(), parsed, &self.policy, now) {
            Ok(parsed) => parsed,
            Err(refused) => return Ok(Decided::Refused(refused)),
        };
        let checked = self.check_factor(record, &parsed, None, now).await?;
        // Drawn whatever the verdict: the rule keeps it only on success.
        let remember = match remember_as {
            Some(label) => Some((LocationToken::generate()?, label.to_owned())),
            None => None,
        };
        let verdict = checked.verdict.clone();
        Ok(Decided::Checked(verdict, Prepared { remember, ..self.prepare(checked, now).await? }))
    }

    /// `count` fresh backup codes with their hashes (Argon2 runs through the offload
    /// hook), and the id of the mail that will carry them.
    pub(crate) async fn new_backup_codes(&self, count: u8, now: Timestamp) -> Result<FreshCodes> {
        let params = self.policy.backup.hash;
        let expires_at = self.policy.backup.lifetime.map(|d| now.plus(d));
        let mut codes = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let code = BackupCode::generate()?;
            let shown = code.display();
            let phc = self.run_hashing(move || password::hash(code.canonical(), &params)).await??;
            codes.push((shown, BackupCodeHash { phc, issued_at: now, expires_at }));
        }
        Ok(FreshCodes { mail: MailId::random()?, codes })
    }
}

/// What a second step decided on a record, before any write.
#[expect(clippy::large_enum_variant, reason = "one lives on the stack for one step; boxing buys nothing")]
enum Decided {
    /// Refused before any code was checked.
    Refused(Box<Transition<SecondFactorOutcome>>),
    /// The code's verdict, and what a success needs.
    Checked(CodeVerdict, Prepared),
}

/// The name-gate key of a user's turn in the second-factor-only calls: a control
/// character no login name holds keeps it apart from the password step's keys.
fn user_turn(id: UserId) -> String {
    format!("\u{1}user:{id}")
}

/// What [`Engine::password_attempt`] allows.
#[non_exhaustive]
pub enum PasswordAttempt<'e, S, M, C> {
    /// Check the password now, then report the result.
    Check(PasswordCheck<'e, S, M, C>),
    /// The account is throttled or locked: do not check the password; answer as for a
    /// wrong one.
    Refused,
}

impl<S, M, C> std::fmt::Debug for PasswordAttempt<'_, S, M, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PasswordAttempt::Check(_) => "Check",
            PasswordAttempt::Refused => "Refused",
        })
    }
}

/// A password check the application runs under this user's turn
/// ([`Engine::password_attempt`]). Report its result; dropping it counts nothing.
#[must_use = "report the check's result with `failed` or `succeeded`"]
pub struct PasswordCheck<'e, S, M, C> {
    engine: &'e Engine<S, M, C>,
    id: UserId,
    _turn: crate::engine::name_gate::Turn<'e>,
}

impl<S, M, C> std::fmt::Debug for PasswordCheck<'_, S, M, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordCheck").field("id", &self.id).finish_non_exhaustive()
    }
}

impl<S: UserStore, M: Mailer, C: Clock> PasswordCheck<'_, S, M, C> {
    /// The password was wrong: counted in the shared budget (see
    /// [`Engine::record_password_failure`]).
    ///
    /// # Errors
    /// [`Error::NoSuchAccount`]; store faults.
    pub async fn failed(self) -> Result<()> {
        self.engine.count_password_failure(self.id).await
    }

    /// The password was right: the second step, as [`Engine::begin_second_factor`]
    /// answers it.
    ///
    /// # Errors
    /// [`Error::NoSuchAccount`]; store faults.
    pub async fn succeeded(self, remembered: Option<&str>) -> Result<LoginOutcome> {
        self.engine.second_factor_after_check(self.id, remembered).await
    }
}

#[cfg(test)]
mod kept_record_tests {
    use super::*;
    use crate::account::TwoFactor;
    use crate::factors::totp::{TotpParams, generate};
    use crate::mail::MemoryMailer;
    use crate::plumbing::clock::ManualClock;
    use crate::store::MemoryStore;
    use crate::{ConfirmOutcome, KeyRing, NewAccount, Policy, Role};

    /// An answer that writes nothing is never given from a kept record: here the kept
    /// record (altered to show 2FA off, which refuses the step unwritten) is set aside
    /// and the step decided on the store's record, which logs in.
    #[tokio::test]
    async fn an_unwritten_answer_from_a_kept_record_is_decided_again_on_a_fresh_read() {
        let clock = ManualClock::new(Timestamp(1_800_000_000));
        let policy = Policy::builder().danger_fast_hashing().build().expect("policy");
        let engine = Engine::builder(MemoryStore::new(), MemoryMailer::new(), KeyRing::ephemeral().expect("keys"))
            .clock(clock.clone())
            .policy(policy)
            .build()
            .expect("engine");
        let id = engine.create_account(NewAccount::new("kim", "k@example.test", Role::User, "pw pw pw pw")).await;
        let id = id.expect("create");
        let started = engine.start_enrollment(id).await.expect("enroll");
        let secret = data_encoding::BASE32_NOPAD.decode(started.secret_base32.expose().as_bytes()).expect("base32");
        let code = generate(&secret, &TotpParams::default(), clock.now().0);
        let confirmed = engine.confirm_enrollment(id, code.expose()).await.expect("confirm");
        assert!(matches!(confirmed, ConfirmOutcome::Confirmed { .. }), "{confirmed:?}");
        clock.advance(std::time::Duration::from_secs(30));

        let LoginOutcome::SecondFactorRequired(pending) = engine.begin_login("kim", "pw pw pw pw", None).await.unwrap()
        else {
            panic!("expected a second factor")
        };
        let claims = LoginClaims::open(pending.token(), &engine.keys).expect("opens").expect("valid");
        let mut kept = engine.recent.take(&claims.id, id, clock.now()).expect("kept by the password step");
        kept.record.two_factor = TwoFactor::Disabled;
        engine.recent.keep(claims.id, claims.expires_at, kept, clock.now());

        let code = generate(&secret, &TotpParams::default(), clock.now().0);
        let outcome = engine.finish_login(pending.token(), SecondFactor::Totp(code.expose()), None).await.unwrap();
        assert!(matches!(outcome, SecondFactorOutcome::Authenticated(_)), "{outcome:?}");
    }
}
