//! Checking a second factor against a snapshot: the expensive half (HMAC for a TOTP
//! code against every authenticator, Argon2 for a backup code), shared by the login's
//! second step and the calls that ask a signed-in user for a fresh factor. The cheap
//! re-check on the freshest record is [`accept_factor`](crate::rules::login::accept_factor).

use crate::account::{Account, AuthenticatorId, TwoFactor};
use crate::engine::{Engine, SecondFactor};
use crate::error::{InputError, Result};
use crate::events::Factor;
use crate::factors::backup_code::BackupCode;
use crate::factors::password;
use crate::factors::totp::{TotpCode, TotpKey, TotpVerification, verify};
use crate::mail::Mailer;
use crate::plumbing::clock::{Clock, Timestamp};
use crate::rules::login::{CodeVerdict, Prepared};
use crate::store::UserStore;

/// A second factor as typed, parsed.
pub(super) enum ParsedFactor {
    Totp(TotpCode),
    Backup(BackupCode),
}

impl SecondFactor<'_> {
    /// Which factor it is.
    pub(super) fn kind(&self) -> Factor {
        match self {
            SecondFactor::Totp(_) => Factor::Totp,
            SecondFactor::BackupCode(_) => Factor::BackupCode,
        }
    }

    /// Parses it: a TOTP code of the policy's digit count (or the other one, for an
    /// authenticator enrolled under another policy), or a backup code.
    pub(super) fn parse(&self, digits: u8) -> std::result::Result<ParsedFactor, InputError> {
        match self {
            SecondFactor::Totp(code) => TotpCode::parse(code, digits)
                .or_else(|e| {
                    let other = if digits == 6 { 8 } else { 6 };
                    TotpCode::parse(code, other).map_err(|_| e)
                })
                .map(ParsedFactor::Totp),
            SecondFactor::BackupCode(code) => BackupCode::parse(code).map(ParsedFactor::Backup),
        }
    }
}

/// What checking a factor found, with the accepting authenticator's secret re-sealed
/// under the newest key when it was sealed under an older one.
pub(super) struct Checked {
    pub(super) verdict: CodeVerdict,
    pub(super) resealed: Option<crate::account::SealedSecret>,
}

impl<S: UserStore, M: Mailer, C: Clock> Engine<S, M, C> {
    /// Checks `factor` against `account`'s active authenticators (all but `except`) or
    /// its backup codes. A TOTP code is tried against each authenticator in turn, each
    /// with its own newest step; the first that accepts it wins.
    pub(super) async fn check_factor(
        &self,
        account: &Account,
        factor: &ParsedFactor,
        except: Option<AuthenticatorId>,
        now: Timestamp,
    ) -> Result<Checked> {
        let TwoFactor::Enabled(enabled) = &account.two_factor else {
            let verdict = match factor {
                ParsedFactor::Totp(_) => {
                    CodeVerdict::Totp { authenticator: None, verification: TotpVerification::Rejected }
                }
                ParsedFactor::Backup(_) => CodeVerdict::BackupWrong,
            };
            return Ok(Checked { verdict, resealed: None });
        };
        match factor {
            ParsedFactor::Totp(code) => {
                let mut best = CodeVerdict::Totp { authenticator: None, verification: TotpVerification::Rejected };
                for a in enabled.authenticators.iter().filter(|a| Some(a.id) != except) {
                    let (secret, stale) = self.keys.unseal(account.id, &a.secret)?;
                    let key = TotpKey::new(a.params.algorithm, &secret);
                    let used = a.last_used_step.max(account.retired_totp_step);
                    match verify(&key, &a.params, self.policy.window, code, now.0, Some(used)) {
                        accepted @ TotpVerification::Accepted { .. } => {
                            let resealed = if stale { Some(self.keys.seal(account.id, &secret)?) } else { None };
                            let verdict = CodeVerdict::Totp { authenticator: Some(a.id), verification: accepted };
                            return Ok(Checked { verdict, resealed });
                        }
                        replayed @ TotpVerification::Replayed { .. } => {
                            best = CodeVerdict::Totp { authenticator: Some(a.id), verification: replayed };
                        }
                        TotpVerification::Rejected => {}
                    }
                }
                Ok(Checked { verdict: best, resealed: None })
            }
            ParsedFactor::Backup(code) => {
                let candidates: Vec<String> =
                    enabled.backup_codes.iter().filter(|c| c.is_live(now)).map(|c| c.phc.clone()).collect();
                let code = code.clone();
                let verdict = self
                    .run_hashing(move || -> Result<CodeVerdict> {
                        for phc in candidates {
                            if password::verify(code.canonical(), &phc)? {
                                return Ok(CodeVerdict::BackupMatched(phc));
                            }
                        }
                        Ok(CodeVerdict::BackupWrong)
                    })
                    .await??;
                Ok(Checked { verdict, resealed: None })
            }
        }
    }

    /// What a successful check needs before the swap: a replacement backup
    /// code (hashed here, off the swap loop) after a backup code.
    pub(super) async fn prepare(&self, checked: Checked, now: Timestamp) -> Result<Prepared> {
        let replacement = match &checked.verdict {
            CodeVerdict::BackupMatched(_) => Some(self.new_backup_codes(1, now).await?),
            _ => None,
        };
        Ok(Prepared { replacement, remember: None, resealed: checked.resealed })
    }
}
