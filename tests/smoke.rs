//! End-to-end smoke test of the seed story on in-memory parts.

mod common;
use common::*;
use twofactor::{LoginOutcome, Role, SecondFactor, SecondFactorOutcome};

#[tokio::test]
async fn the_seed_story_end_to_end() {
    let f = fixture();
    let (alice, secret) = f.enrolled("alice").await;
    let bob = f.user("bob", Role::Admin).await;
    assert!(is_authenticated(&f.totp_login("alice", &secret).await));
    f.clock.advance(std::time::Duration::from_secs(30));
    let code = f.backup_code("alice");
    let pending = f.pending("alice").await;
    let out = f.engine.finish_login(&pending, SecondFactor::BackupCode(&code), None).await.unwrap();
    assert!(is_authenticated(&out), "{out:?}");
    f.deliver().await;
    let new_code = f.backup_code("alice");
    assert_ne!(code, new_code);
    let pending = f.pending("alice").await;
    let out = f.engine.finish_login(&pending, SecondFactor::BackupCode(&code), None).await.unwrap();
    assert!(matches!(out, SecondFactorOutcome::Denied { .. }), "{out:?}");
    f.engine.reset(bob, alice, "video call").await.unwrap();
    assert!(matches!(f.engine.begin_login("alice", PASSWORD, None).await.unwrap(), LoginOutcome::Authenticated(_)));
}
