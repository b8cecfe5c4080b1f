//! Operating the key ring over every document: which keys are in use, the bulk
//! re-seal under the newest key, and retiring an old key.

use std::collections::{BTreeMap, BTreeSet};

use crate::account::{Account, SealedSecret, TwoFactor};
use crate::crypto::keys::{KeyRing, sealed_key_id};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::mail::Mailer;
use crate::outbox::Payload;
use crate::plumbing::clock::Clock;
use crate::rules::Transition;
use crate::store::UserStore;

/// How many users one page of a walk reads.
const PAGE: usize = 200;

/// Which keys the stored documents need ([`Engine::key_usage`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyUsage {
    /// Documents visited.
    pub documents: u64,
    /// For each key id, how many documents hold a TOTP secret or a queued backup code
    /// sealed under it.
    pub by_key: BTreeMap<u32, u64>,
    /// Documents without a sealed secret (2FA off).
    pub without_secret: u64,
}

/// Where a re-seal stands, reported after each page ([`Engine::reseal`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResealProgress {
    /// Documents visited so far (in this call).
    pub scanned: u64,
    /// Of those, re-sealed by this call.
    pub resealed: u64,
    /// Where to resume (pass it as `from`) if the walk stops now; `None` at the end.
    pub cursor: Option<String>,
}

/// What a finished re-seal did ([`Engine::reseal`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResealReport {
    /// Documents visited.
    pub scanned: u64,
    /// Re-sealed under the newest key by this call.
    pub resealed: u64,
    /// Already under the newest key (by an earlier call, or a login that re-sealed).
    pub already_current: u64,
    /// Without a sealed secret.
    pub without_secret: u64,
}

/// The keys a document needs: its TOTP secret's and its queued backup codes'
/// (`None` for a document without a secret or queued code; an error for a sealed blob
/// too short to name its key).
fn key_ids(account: &Account) -> Result<Option<BTreeSet<u32>>> {
    let sealed: Vec<&SealedSecret> = account.two_factor.secrets().into_iter().chain(queued_codes(account)).collect();
    if sealed.is_empty() {
        return Ok(None);
    }
    sealed.into_iter().map(|s| sealed_key_id(s).ok_or(Error::Corrupt("sealed secret"))).collect::<Result<_>>().map(Some)
}

/// The sealed backup codes waiting in `account`'s outbox.
fn queued_codes(account: &Account) -> impl Iterator<Item = &SealedSecret> {
    account.outbox.iter().flat_map(|m| match &m.payload {
        Payload::BackupCode { codes, .. } => codes.as_slice(),
        _ => &[],
    })
}

/// What re-sealing one document found.
enum Resealed {
    Done,
    AlreadyCurrent,
    NoSecret,
}

/// The document with its secret and queued codes sealed under the ring's newest key,
/// or no write when they already are (or it holds none). Cheap (an XChaCha20 open and
/// seal each), so it runs again on the freshest document after a lost race.
fn reseal_one(account: &Account, keys: &KeyRing) -> Result<Transition<Resealed>> {
    let newest = keys.current().id();
    let Some(ids) = key_ids(account)? else {
        return Ok(Transition::unchanged(Resealed::NoSecret, Default::default()));
    };
    if ids.iter().all(|id| *id == newest) {
        return Ok(Transition::unchanged(Resealed::AlreadyCurrent, Default::default()));
    }
    let mut next = account.clone();
    let id = account.id;
    for secret in next.two_factor.secrets_mut() {
        if sealed_key_id(secret) != Some(newest) {
            let (plain, _) = keys.unseal(id, secret)?;
            *secret = keys.seal(id, &plain)?;
        }
    }
    for mail in &mut next.outbox {
        if let Payload::BackupCode { codes, .. } = &mut mail.payload {
            for code in codes.iter_mut().filter(|c| sealed_key_id(c) != Some(newest)) {
                let (plain, _) = keys.unseal_mail_code(id, mail.id, code)?;
                *code = keys.seal_mail_code(id, mail.id, &plain)?;
            }
        }
    }
    Ok(Transition { next: Some(next), outcome: Resealed::Done, effects: Default::default() })
}

impl<S: UserStore, M: Mailer, C: Clock> Engine<S, M, C> {
    /// Counts, for each key id, the documents whose TOTP secret (or a backup code waiting
    /// in their outbox) is sealed under it, by
    /// walking every document ([`UserStore::scan`]). Check it before retiring a key:
    /// a key that still seals documents is needed.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// use twofactor::{Engine, KeyRing, Policy};
    /// use twofactor::mail::MemoryMailer;
    /// use twofactor::store::MemoryStore;
    /// let engine = Engine::builder(MemoryStore::new(), MemoryMailer::new(), KeyRing::ephemeral()? /* tests only */)
    ///     .policy(Policy::builder().danger_fast_hashing().build()?)
    ///     .build()?;
    /// let usage = engine.key_usage().await?;
    /// assert_eq!(usage.documents, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(()) })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// Store faults ([`StoreError::Unsupported`](crate::StoreError::Unsupported) from a
    /// store without `scan`); a corrupt document.
    pub async fn key_usage(&self) -> Result<KeyUsage> {
        let mut usage = KeyUsage::default();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.scan(after.as_deref(), PAGE).await?;
            for user in page.users {
                let account = self.account_of(user)?.record;
                usage.documents += 1;
                if matches!(account.two_factor, TwoFactor::Disabled) {
                    usage.without_secret += 1;
                }
                for id in key_ids(&account)?.unwrap_or_default() {
                    *usage.by_key.entry(id).or_default() += 1;
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(usage),
            }
        }
    }

    /// Re-seals every TOTP secret (and backup code waiting in an outbox) that is not
    /// under the ring's newest key, so older
    /// keys can be retired. Each document is rewritten by compare-and-swap, so it is
    /// safe while users log in (a document a login changed meanwhile is re-read and
    /// re-sealed). `progress` hears after each page, with the cursor to pass as `from`
    /// to resume after an interruption (`None`: from the start); re-running from the
    /// start is harmless too, since documents already under the newest key are left
    /// alone.
    ///
    /// # Errors
    /// [`Error::UnknownKey`] naming the key of a document the ring cannot open (nothing
    /// is written for that document; the ones before it stay re-sealed); store faults;
    /// [`Error::Contention`] for a document that kept changing.
    pub async fn reseal(&self, from: Option<&str>, mut progress: impl FnMut(&ResealProgress)) -> Result<ResealReport> {
        let mut report = ResealReport::default();
        let mut after = from.map(str::to_owned);
        loop {
            let page = self.store.scan(after.as_deref(), PAGE).await?;
            for user in page.users {
                let snapshot = self.account_of(user)?;
                let t = self.transact(snapshot, |fresh| reseal_one(fresh, &self.keys)).await?;
                report.scanned += 1;
                match t.outcome {
                    Resealed::Done => report.resealed += 1,
                    Resealed::AlreadyCurrent => report.already_current += 1,
                    Resealed::NoSecret => report.without_secret += 1,
                }
            }
            progress(&ResealProgress { scanned: report.scanned, resealed: report.resealed, cursor: page.next.clone() });
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(report),
            }
        }
    }

    /// The engine's key ring without key `key_id`, once no document needs it: write
    /// the result ([`KeyRing::to_text`]) where the application loads its keys from, and
    /// build engines with it. Pending logins sealed under the retired key (they live
    /// at most the policy's pending lifetime) then answer `Expired`, and those users
    /// type their password again.
    ///
    /// # Errors
    /// [`Error::KeyInUse`] while documents hold secrets sealed under the key (re-seal
    /// first); [`Error::InvalidInput`] for the newest key or an id not in the ring; store
    /// faults.
    pub async fn retire_key(&self, key_id: u32) -> Result<KeyRing> {
        let remaining = self.keys.without(key_id)?;
        let usage = self.key_usage().await?;
        match usage.by_key.get(&key_id).copied().unwrap_or(0) {
            0 => Ok(remaining),
            documents => Err(Error::KeyInUse { key_id, documents }),
        }
    }

    /// The engine's key ring.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }
}
