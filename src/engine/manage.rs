//! Accounts, enrollment, backup-code reissue, administrator reset, password change and
//! remembered locations.

use crate::UserId;
use crate::account::username::{self, MAX_USERNAME};
use crate::account::{Account, DEFAULT_AUTHENTICATOR_NAME, Enrolling, Role, TwoFactor, Versioned};
use crate::crypto::random;
use crate::crypto::secret::SecretString;
use crate::crypto::token::{location_id_text, parse_location_id};
use crate::document;
use crate::engine::Engine;
use crate::error::{Error, InputError, Refusal, Result, check_len};
use crate::events::EventKind;
use crate::factors::otpauth::otpauth_uri;
use crate::factors::password;
use crate::factors::totp::{TotpCode, TotpKey, TotpVerification, verify};
use crate::mail::{Delivery, Mailer};
use crate::outbox::MailId;
use crate::outcome::{AccountView, ConfirmOutcome, LocationInfo, ResetOutcome};
use crate::plumbing::clock::Clock;
use crate::rules::manage;
use crate::store::UserRecord;
use crate::store::UserStore;
use crate::{StoreError, totp::TotpParams};

/// Longest email address.
const MAX_EMAIL: usize = 254;
/// Longest imported password hash accepted (the longest format is under 200).
const MAX_IMPORTED_HASH: usize = 512;
/// Longest identity-check note.
const MAX_IDENTITY_CHECK: usize = 500;

/// The free text an administrator gives with an action: the input field it is checked
/// as, the text, and what to say when it is empty.
pub(super) struct AdminNote<'a> {
    pub(super) field: &'static str,
    pub(super) text: &'a str,
    pub(super) missing: &'static str,
}
/// TOTP secret length: 160 bits, as RFC 4226 recommends.
const SECRET_BYTES: usize = 20;

/// A new account's details.
#[derive(Debug, Clone)]
pub struct NewAccount<'a> {
    /// Unique login name. It is stored in Unicode Normalization Form C, so `josé` typed
    /// precomposed or decomposed is one name, and must be 1–64 characters (after
    /// normalization) with no control, invisible or formatting character (general
    /// categories Cc, Cf, Zl, Zp, and the other default-ignorable code points such as
    /// variation selectors), no `:` (authenticator apps could not be enrolled), no
    /// space other than U+0020, no two spaces in a row and no surrounding whitespace.
    ///
    /// Names are case-sensitive: `Alice` and `alice` are two accounts, as in 0.1.0,
    /// whose databases may already hold both. An application that wants
    /// case-insensitive names folds them itself before creating and before logging in.
    pub username: &'a str,
    /// Email address for backup codes and notices.
    pub email: &'a str,
    /// Role.
    pub role: Role,
    /// The password (checked against the policy; never stored).
    pub password: SecretString,
}

impl<'a> NewAccount<'a> {
    /// Details for [`Engine::create_account`].
    pub fn new(username: &'a str, email: &'a str, role: Role, password: &str) -> Self {
        NewAccount { username, email, role, password: SecretString::from(password) }
    }
}

/// What enrollment shows the user: the `otpauth://` URI (for a QR code) and the
/// secret in base32 (for typing in). Both are secrets: `Debug` redacts them.
#[derive(Clone)]
pub struct EnrollmentStarted {
    /// The Key Uri Format URI.
    pub uri: SecretString,
    /// The secret, base32 without padding.
    pub secret_base32: SecretString,
    /// The code parameters.
    pub params: TotpParams,
}

impl std::fmt::Debug for EnrollmentStarted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollmentStarted").field("params", &self.params).finish_non_exhaustive()
    }
}

fn check_email(email: &str) -> Result<(), InputError> {
    check_len("email", email, MAX_EMAIL)?;
    let valid = match email.split_once('@') {
        Some((local, domain)) => !local.is_empty() && !domain.is_empty() && !domain.contains('@'),
        None => false,
    };
    if !valid || email.chars().any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>') {
        return Err(InputError::malformed("email", "must look like name@domain"));
    }
    // The mail composer (lettre) must accept it too, or every mail to it would fail.
    if email.parse::<lettre::Address>().is_err() {
        return Err(InputError::malformed("email", "is not a deliverable address"));
    }
    Ok(())
}

impl<S: UserStore, M: Mailer, C: Clock> Engine<S, M, C> {
    /// Creates an account with 2FA disabled.
    ///
    /// The username is stored in its NFC form (see [`NewAccount::username`]), so the
    /// uniqueness check treats every canonically equivalent spelling as the same name.
    /// The new account's id is random and below 2^63, so it reads as itself (a positive
    /// number) in any signed 64-bit column.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad username ([`InputError::ForbiddenCharacter`]
    /// names a refused character by code point), email or password (NIST length
    /// rules); [`Error::UsernameTaken`], also for another spelling of a taken name;
    /// store faults.
    pub async fn create_account(&self, new: NewAccount<'_>) -> Result<UserId> {
        let username = username::validate_new(new.username)?;
        check_email(new.email)?;
        password::check_new(new.password.expose(), &self.policy.password)?;
        let params = self.policy.password.hash;
        let secret = new.password.clone();
        let password_hash = self.run_hashing(move || password::hash(secret.expose().as_bytes(), &params)).await??;
        let id = UserId::from(random::u64()? >> 1);
        let mut account =
            Account::new(id, username.clone(), new.email.to_owned(), new.role, random::u64()?, self.clock.now());
        account.password_hash = Some(password_hash);
        let user = UserRecord::new(id, username, new.email, new.role).with_document(1, document::encode(&account)?);
        match self.store.create_user(&user).await {
            Ok(()) => {}
            Err(StoreError::Duplicate) => return Err(Error::UsernameTaken),
            Err(e) => return Err(e.into()),
        }
        self.record(Some(account.id), EventKind::AccountCreated);
        Ok(account.id)
    }

    /// What the application may show about an account.
    ///
    /// # Errors
    /// Store faults.
    pub async fn account(&self, id: UserId) -> Result<Option<AccountView>> {
        let Some(user) = self.store.find_by_id(id).await? else { return Ok(None) };
        Ok(Some(view(&self.account_of(user)?.record)))
    }

    /// Looks an account up by username (for administration pages; login never reveals
    /// whether a username exists). The name is matched in its NFC form, as login does
    /// (a name stored unnormalized by 0.1.0 is also found as typed); a name holding an
    /// invisible, formatting or control character names no account.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an over-long username; store faults.
    pub async fn account_by_username(&self, username: &str) -> Result<Option<AccountView>> {
        check_len("username", username, MAX_USERNAME)?;
        Ok(self.find_by_login_name(username).await?.map(|v| view(&v.record)))
    }

    /// Issues a fresh TOTP secret (160 bits from the OS CSPRNG) and returns the
    /// `otpauth://` URI to show as a QR code. 2FA stays inactive, and login ignores
    /// the secret, until [`confirm_enrollment`](Self::confirm_enrollment) sees a
    /// correct code. Calling it again replaces an unconfirmed secret.
    ///
    /// # Errors
    /// [`Error::Misuse`] ([`Refusal::TwoFactorActive`]) when 2FA is already active;
    /// [`Error::NoSuchAccount`]; store faults.
    pub async fn start_enrollment(&self, id: UserId) -> Result<EnrollmentStarted> {
        let snapshot = self.load(id).await?;
        let (secret, started) = self.new_secret(&snapshot.record)?;
        self.store_enrollment(snapshot, secret.as_ref(), self.policy.totp).await?;
        Ok(started)
    }

    /// A fresh TOTP secret (160 bits from the OS CSPRNG) and how to show it to
    /// `account`'s user.
    pub(super) fn new_secret(
        &self,
        account: &Account,
    ) -> Result<(zeroize::Zeroizing<[u8; SECRET_BYTES]>, EnrollmentStarted)> {
        let secret = zeroize::Zeroizing::new(random::bytes::<SECRET_BYTES>()?);
        let params = self.policy.totp;
        let uri = otpauth_uri(&self.policy.issuer, &account.username, secret.as_ref(), &params)?;
        let secret_base32 = SecretString::new(data_encoding::BASE32_NOPAD.encode(secret.as_ref()));
        Ok((secret, EnrollmentStarted { uri, secret_base32, params }))
    }

    /// Starts an enrollment with a secret provisioned elsewhere (migrating from another
    /// system): `uri` is its `otpauth://totp/…` URI. As with
    /// [`start_enrollment`](Self::start_enrollment), 2FA becomes active only after
    /// [`confirm_enrollment`](Self::confirm_enrollment) sees a correct code.
    ///
    /// Secrets shorter than 128 bits are refused unless the policy opted in with
    /// [`danger_short_imported_secrets`](crate::PolicyBuilder::danger_short_imported_secrets).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a malformed URI or a short secret; [`Error::Misuse`]
    /// ([`Refusal::TwoFactorActive`]) when 2FA is already active;
    /// [`Error::NoSuchAccount`]; store faults.
    pub async fn import_enrollment(&self, id: UserId, uri: &str) -> Result<()> {
        let parsed = crate::factors::otpauth::parse_otpauth_uri(uri)?;
        let min = self.policy.min_imported_secret_bytes;
        if parsed.secret.len() < min {
            return Err(
                InputError::malformed("secret", "shorter than the policy's minimum for imported secrets").into()
            );
        }
        let snapshot = self.load(id).await?;
        self.store_enrollment(snapshot, parsed.secret.expose(), parsed.params).await
    }

    /// Seals `secret` for the account and moves it to `Enrolling` (the shared half of
    /// starting and importing an enrollment).
    async fn store_enrollment(&self, snapshot: Versioned<Account>, secret: &[u8], params: TotpParams) -> Result<()> {
        let id = snapshot.record.id;
        let now = self.clock.now();
        let enrolling = Enrolling {
            id: random::bytes::<8>()?,
            name: DEFAULT_AUTHENTICATOR_NAME.to_owned(),
            secret: self.keys.seal(id, secret)?,
            params,
            started_at: now,
        };
        let t = self.transact(snapshot, |fresh| Ok(manage::start_enrollment(fresh, enrolling.clone(), now)?)).await?;
        self.dispatch(&t.effects);
        Ok(())
    }

    /// Confirms an enrollment with a code from the authenticator app. On success 2FA is
    /// active, that code's time step counts as used (it cannot log in), and the first
    /// backup code is mailed.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a malformed code; [`Error::Misuse`]
    /// ([`Refusal::NoEnrollment`]) when no enrollment is pending; store faults.
    pub async fn confirm_enrollment(&self, id: UserId, code: &str) -> Result<ConfirmOutcome> {
        let snapshot = self.load(id).await?;
        let TwoFactor::Enrolling(enrolling) = &snapshot.record.two_factor else {
            return Err(Refusal::NoEnrollment.into());
        };
        let now = self.clock.now();
        let Some((step, secret)) = self.confirming_step(&snapshot.record, enrolling, code, now)? else {
            return Ok(ConfirmOutcome::WrongCode);
        };
        let sealed = enrolling.secret.clone();
        let codes = self.new_backup_codes(self.policy.backup.count, now).await?;
        let t = self
            .transact(snapshot, |fresh| {
                // A re-seal under a new key changes the sealed bytes, not the secret
                // they hold: the enrollment is the same if its secret is.
                let expected = match &fresh.two_factor {
                    TwoFactor::Enrolling(e) if e.secret != sealed && self.holds(id, &e.secret, &secret) => &e.secret,
                    _ => &sealed,
                };
                Ok(manage::confirm_enrollment(fresh, expected, step, &codes, now)?)
            })
            .await?;
        self.dispatch(&t.effects);
        Ok(ConfirmOutcome::Confirmed { backup_code_delivery: t.outcome })
    }

    /// The time step `code` matches for the authenticator being enrolled (or added),
    /// with its opened secret; `None` for a wrong code. A step accepted before a reset
    /// (or from a removed authenticator) stays used: a captured code does not confirm.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a malformed code; the secret cannot be opened.
    pub(super) fn confirming_step(
        &self,
        account: &Account,
        enrolling: &Enrolling,
        code: &str,
        now: crate::plumbing::clock::Timestamp,
    ) -> Result<Option<(u64, zeroize::Zeroizing<Vec<u8>>)>> {
        let code = TotpCode::parse(code, enrolling.params.digits)?;
        let (secret, _) = self.keys.unseal(account.id, &enrolling.secret)?;
        let key = TotpKey::new(enrolling.params.algorithm, &secret);
        // Steps up to the one retired at the last reset (0 when none: a step no clock
        // since 1970 has) do not confirm.
        let retired = Some(account.retired_totp_step);
        Ok(match verify(&key, &enrolling.params, self.policy.window, &code, now.0, retired) {
            TotpVerification::Accepted { step } => Some((step, secret)),
            _ => None,
        })
    }

    /// Whether `sealed` opens to `secret` (compared in constant time).
    pub(super) fn holds(&self, id: UserId, sealed: &crate::account::SealedSecret, secret: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.keys.unseal(id, sealed).is_ok_and(|(plain, _)| bool::from(plain.as_slice().ct_eq(secret)))
    }

    /// Replaces the account's backup code(s) with fresh ones and mails them; the old
    /// ones stop working at once. For a logged-in user whose code mail was lost.
    ///
    /// # Errors
    /// [`Error::Misuse`] ([`Refusal::TwoFactorNotActive`]) when 2FA is not active;
    /// store faults.
    pub async fn reissue_backup_code(&self, id: UserId) -> Result<Delivery> {
        let snapshot = self.load(id).await?;
        let now = self.clock.now();
        let codes = self.new_backup_codes(self.policy.backup.count, now).await?;
        let t = self.transact(snapshot, |fresh| Ok(manage::reissue(fresh, &codes, now)?)).await?;
        self.dispatch(&t.effects);
        Ok(t.outcome)
    }

    /// An administrator's (or support's) reset of another account's 2FA: removes the
    /// secret, backup codes, replay state, pending logins and remembered locations,
    /// records who did it and how the user's identity was checked, and mails the user.
    ///
    /// Role rules: an admin resets users; only support resets an admin; nobody resets
    /// themselves or a peer; a plain user resets no one. A refusal is
    /// [`ResetOutcome::NotAllowed`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty or over-long identity check;
    /// [`Error::NoSuchAccount`]; store faults.
    pub async fn reset(&self, actor: UserId, target: UserId, identity_check: &str) -> Result<ResetOutcome> {
        let note = AdminNote {
            field: "identity check",
            text: identity_check,
            missing: "say how the user's identity was verified",
        };
        let Some((actor_rec, snapshot)) =
            self.admin_over(actor, target, note, EventKind::ResetDenied { by: actor }).await?
        else {
            return Ok(ResetOutcome::NotAllowed);
        };
        let now = self.clock.now();
        let (stamp, notice) = (random::u64()?, MailId::random()?);
        let t = self
            .transact(snapshot, |fresh| Ok(manage::reset(fresh, &actor_rec, identity_check, stamp, notice, now)))
            .await?;
        self.dispatch(&t.effects);
        Ok(t.outcome)
    }

    /// Checks an administrator's note and the role rules for `actor` acting on
    /// `target` (see [`Role::may_reset`]): the actor's record and the target's
    /// snapshot, or `None` after recording `denied`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty or over-long note; [`Error::NoSuchAccount`];
    /// store faults.
    pub(super) async fn admin_over(
        &self,
        actor: UserId,
        target: UserId,
        note: AdminNote<'_>,
        denied: EventKind,
    ) -> Result<Option<(Account, Versioned<Account>)>> {
        check_len(note.field, note.text, MAX_IDENTITY_CHECK)?;
        if note.text.trim().is_empty() {
            return Err(InputError::malformed(note.field, note.missing).into());
        }
        let actor_rec = self.load(actor).await?.record;
        let snapshot = self.load(target).await?;
        if actor == target || !actor_rec.role.may_reset(snapshot.record.role) {
            self.record(Some(target), denied);
            return Ok(None);
        }
        Ok(Some((actor_rec, snapshot)))
    }

    /// Sets the user's password, the first one too (for a user of the application's
    /// own table, this creates the crate's document), or a new one (the application
    /// checks the old one or a reset link first). Ends every pending login and
    /// remembered location of the account.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a password outside the policy's rules;
    /// [`Error::NoSuchAccount`]; store faults.
    pub async fn change_password(&self, id: UserId, new_password: &str) -> Result<()> {
        password::check_new(new_password, &self.policy.password)?;
        let snapshot = self.load(id).await?;
        let params = self.policy.password.hash;
        let secret = SecretString::from(new_password);
        let phc = self.run_hashing(move || password::hash(secret.expose().as_bytes(), &params)).await??;
        let now = self.clock.now();
        let stamp = random::u64()?;
        let t = self.transact(snapshot, |fresh| Ok(manage::change_password(fresh, phc.clone(), stamp, now))).await?;
        self.dispatch(&t.effects);
        Ok(())
    }

    /// Gives the crate a user's password hash from the system the application moves
    /// from, so the user keeps their password: Django's `pbkdf2_sha256$…`,
    /// `pbkdf2_sha1$…`, `scrypt$…`, `argon2$…` and `bcrypt$…`, bcrypt (`$2a$`, `$2b$`,
    /// `$2y$`: Rails/Devise, PHP's `password_hash`, `htpasswd -B`), scrypt and PBKDF2 in
    /// passlib's PHC-like forms, and Argon2 PHC strings. The hash is checked whole, and
    /// one whose cost would make each login a denial of service (say PBKDF2 beyond 10
    /// million iterations, or scrypt beyond 256 MiB) is refused. The next right
    /// password at [`begin_login`](Self::begin_login) replaces it with an Argon2id hash
    /// under the policy's parameters. Creates the user's document if the crate holds
    /// none yet. It never replaces a password the crate keeps, so a migration run twice
    /// cannot put back a password the user has changed since.
    ///
    /// Until that next right password, a wrong one costs the imported format's work
    /// rather than Argon2's, so response times can tell these users from others and
    /// from unknown names: import with a cost near the policy's Argon2 time, or have
    /// sensitive users set a new password.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a hash the crate cannot verify (unknown format,
    /// malformed, cost too high; the message never quotes the hash);
    /// [`Error::Misuse`] ([`Refusal::PasswordAlreadySet`](crate::Refusal::PasswordAlreadySet))
    /// when the crate keeps a password for the user; [`Error::NoSuchAccount`]; store
    /// faults.
    pub async fn import_password_hash(&self, id: UserId, hash: &str) -> Result<()> {
        check_len("password hash", hash, MAX_IMPORTED_HASH)?;
        password::check_imported(hash).map_err(|problem| {
            InputError::malformed(
                "password hash",
                match problem {
                    password::ImportProblem::Unrecognised => "not a format the crate can verify",
                    password::ImportProblem::Malformed(reason) => reason,
                    password::ImportProblem::CostTooHigh(_) => "its cost is above the import bounds",
                },
            )
        })?;
        let snapshot = self.load(id).await?;
        let now = self.clock.now();
        let t = self.transact(snapshot, |fresh| Ok(manage::import_password(fresh, hash.to_owned(), now)?)).await?;
        self.dispatch(&t.effects);
        Ok(())
    }

    /// The account's remembered locations that are still valid, oldest first.
    ///
    /// # Errors
    /// [`Error::NoSuchAccount`]; store faults.
    pub async fn remembered_locations(&self, id: UserId) -> Result<Vec<LocationInfo>> {
        let now = self.clock.now();
        let rec = self.load(id).await?.record;
        Ok(rec
            .locations
            .iter()
            .filter(|l| l.expires_at > now)
            .map(|l| LocationInfo {
                id: location_id_text(&l.id),
                label: l.label.clone(),
                created_at: l.created_at,
                last_used_at: l.last_used_at,
                expires_at: l.expires_at,
            })
            .collect())
    }

    /// Revokes one remembered location by its public id. Returns whether it existed.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a malformed id; [`Error::NoSuchAccount`]; store
    /// faults.
    pub async fn revoke_location(&self, id: UserId, location: &str) -> Result<bool> {
        let loc = parse_location_id(location)?;
        let snapshot = self.load(id).await?;
        let now = self.clock.now();
        let t = self.transact(snapshot, |fresh| Ok(manage::revoke_location(fresh, &loc, now))).await?;
        let existed = t.outcome;
        self.dispatch(&t.effects);
        Ok(existed)
    }
}

fn view(a: &Account) -> AccountView {
    let backup_codes = match &a.two_factor {
        TwoFactor::Enabled(e) => e.backup_codes.len(),
        _ => 0,
    };
    AccountView {
        id: a.id,
        username: a.username.clone(),
        email: a.email.clone(),
        role: a.role,
        two_factor: a.two_factor.state(),
        backup_codes,
        remembered_locations: a.locations.len(),
        locked: a.throttle.second_factor_locked,
    }
}
