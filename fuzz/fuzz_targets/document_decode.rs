//! The credential document decoder (private to the crate), through the public API: an
//! arbitrary text is stored as a user's document in a `MemoryStore`, and the engine's
//! calls that read it run: `account`, `authenticators`, `mail_status`, `key_usage`,
//! `begin_login` with the right password, `begin_second_factor` and `deliver_due`
//! (with a `MemoryMailer`). Also `Document::mail_due_at` on the text. Never panics
//! (errors are fine), and:
//! - the read paths agree: the document decodes for all of them or for none;
//! - what the engine writes back it reads again (the document still decodes after the
//!   login and the delivery), and the due time it records with it is the one its text
//!   gives.
//!
//! The seeds in `corpus/document_decode` are real documents (from
//! `examples/document_seeds.rs`) sealed under the fixed key of `common::fixed_engine`,
//! so mutations of them reach the TOTP, backup-code and outbox paths.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use twofactor::store::{Document, UserRecord, UserStore};
use twofactor::{MailId, Role, UserId};

use common::{DOC_EMAIL, DOC_LOGIN, DOC_USER, NOW, PASSWORD, block_on};

/// The first run of 32 lowercase hex digits in `text` after its `"outbox"` (else after
/// its `"settled_mail"`, else anywhere): a mail id when the text is a document with
/// mail. Else id zero.
fn mail_id_in(text: &str) -> MailId {
    let from = ["\"outbox\"", "\"settled_mail\""].iter().find_map(|key| text.find(key)).unwrap_or(0);
    let (text, bytes) = (&text[from..], &text.as_bytes()[from..]);
    let is_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    let mut start = 0;
    while start < bytes.len() {
        let run = bytes[start..].iter().take_while(|b| is_hex(b)).count();
        if run >= 32 {
            return MailId::parse(&text[start..start + 32]).expect("32 hex digits");
        }
        start += run + 1;
    }
    MailId::parse(&"0".repeat(32)).expect("zero id")
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = Document::from_json(text.as_ref()).mail_due_at();

    let fixed = common::fixed();
    let engine = &fixed.engine;
    fixed.clock.set(twofactor::Timestamp(NOW));
    let id = UserId::from(DOC_USER);
    let user =
        UserRecord::new(id, DOC_LOGIN, DOC_EMAIL, Role::User).with_document(1, Document::from_json(text.as_ref()));
    block_on(engine.store().create_user(&user)).expect("create the user");

    let account = block_on(engine.account(id));
    let authenticators = block_on(engine.authenticators(id));
    let status = block_on(engine.mail_status(id, mail_id_in(&text)));
    let usage = block_on(engine.key_usage());
    let decodes = account.is_ok();
    assert!(matches!(account, Ok(Some(_))) || account.is_err(), "the user is there: {account:?}");
    assert_eq!(authenticators.is_ok(), decodes, "account {account:?}, authenticators {authenticators:?}");
    assert_eq!(status.is_ok(), decodes, "account {account:?}, mail status {status:?}");
    assert!(usage.is_err() || decodes, "key usage read a document the account read refused: {usage:?}");

    let _ = block_on(engine.begin_login(DOC_LOGIN, PASSWORD, None));
    let _ = block_on(engine.begin_second_factor(id, None));
    let _ = block_on(engine.deliver_due(4));
    engine.mailer().clear();

    if decodes {
        let after = block_on(engine.account(id));
        assert!(matches!(after, Ok(Some(_))), "the engine wrote a document it cannot read: {after:?}");
        let stored = block_on(engine.store().find_by_id(id)).expect("find").expect("the user").credentials;
        let stored = stored.expect("a document").document;
        let reread = Document::from_json(stored.as_json());
        assert_eq!(stored.mail_due_at(), reread.mail_due_at(), "the recorded due time is not the text's");
    }
    common::remove_user(engine, id);
});
