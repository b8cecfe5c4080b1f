//! Looking an account up by the name a person typed.

use std::borrow::Cow;

use crate::account::username;
use crate::account::{Account, Versioned};
use crate::engine::Engine;
use crate::error::Result;
use crate::mail::Mailer;
use crate::plumbing::clock::Clock;
use crate::store::UserStore;

impl<S: UserStore, M: Mailer, C: Clock> Engine<S, M, C> {
    /// The account that `input`, a username as typed at login or on an administration
    /// page, names; `None` when no account has that name or the input can never name one
    /// (it holds an invisible, formatting or control character; see
    /// [`crate::account::username`]).
    ///
    /// The store is asked for the input's NFC form. When the input was not in NFC it is
    /// also asked for the input as typed, because 0.1.0 stored names unnormalized; when
    /// both exist, the exact match wins (the name typed byte for byte is that 0.1.0
    /// account's, and new names are always NFC). Both lookups run whichever finds the account, so
    /// the work depends only on the input. The caller bounds the input's length first.
    ///
    /// # Errors
    /// Store faults.
    pub(crate) async fn find_by_login_name(&self, input: &str) -> Result<Option<Versioned<Account>>> {
        let Some(name) = username::for_login(input) else {
            return Ok(None);
        };
        let normalized = self.store.find_by_login(&name).await?;
        let found = if let Cow::Owned(_) = name {
            let as_typed = self.store.find_by_login(input).await?;
            as_typed.or(normalized)
        } else {
            normalized
        };
        found.map(|user| self.account_of(user)).transpose()
    }
}
