//! Remembered locations: the one a token opens, and remembering a new one.

use crate::account::{Account, RememberedLocation};
use crate::crypto::token::LocationToken;
use crate::events::EventKind;
use crate::plumbing::clock::Timestamp;
use crate::policy::Policy;
use crate::rules::Effects;

/// Finds the remembered location a token opens among the account's, if it is valid
/// now. A 0.1.0 token (which names its account) works only for that account.
pub(crate) fn valid_location(account: &Account, token: &LocationToken, now: Timestamp) -> Option<usize> {
    if token.legacy_account.is_some_and(|named| named != account.id) {
        return None;
    }
    account.locations.iter().position(|l| l.expires_at > now && token.matches(l, account.security_stamp))
}

/// Adds a remembered location, dropping expired ones and evicting the oldest beyond the
/// policy's bound.
pub(super) fn remember(
    account: &mut Account,
    token: &LocationToken,
    label: &str,
    policy: &Policy,
    now: Timestamp,
    effects: &mut Effects,
) {
    account.locations.retain(|l| l.expires_at > now);
    while account.locations.len() >= policy.locations.max_per_account {
        account.locations.remove(0);
    }
    account.locations.push(RememberedLocation {
        id: token.id,
        token_hash: token.hash(account.security_stamp),
        label: label.to_owned(),
        created_at: now,
        last_used_at: now,
        expires_at: now.plus(policy.locations.lifetime),
    });
    effects.event(
        now,
        account,
        EventKind::LocationRemembered { location: crate::crypto::token::location_id_text(&token.id) },
    );
}
