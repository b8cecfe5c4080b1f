//! Tests of the default wording, per message kind.

use crate::account::Role;
use crate::crypto::secret::SecretString;
use crate::mail::{CodeReason, DefaultRenderer, Message, Recipient, Rendered, Renderer};
use crate::plumbing::clock::Timestamp;

const CODE: &str = "K7QX-M2PD-9WRT-H4NB";
const AT: Timestamp = Timestamp(1_800_000_000); // 2027-01-15T08:00:00Z
const AT_TEXT: &str = "2027-01-15T08:00:00Z";

fn renderer() -> DefaultRenderer {
    DefaultRenderer::new("Acme", "security@acme.test")
}

fn to(username: &str) -> Recipient {
    Recipient { username: username.to_owned(), email: "u@acme.test".to_owned() }
}

fn code_mail(reason: CodeReason) -> Message {
    Message::BackupCode { to: to("alice"), reason, codes: vec![SecretString::from(CODE)], expires_at: None }
}

fn all_kinds() -> Vec<Message> {
    vec![
        code_mail(CodeReason::Setup),
        code_mail(CodeReason::Rotated),
        code_mail(CodeReason::Reissued),
        Message::TwoFactorReset { to: to("alice"), by: "bob".to_owned(), by_role: Role::Admin, at: AT },
        Message::Throttled { to: to("alice"), until: AT },
        Message::SecondFactorLocked { to: to("alice"), at: AT },
        Message::NewLocation { to: to("alice"), location: "Firefox on Linux".to_owned(), at: AT },
        Message::AuthenticatorAdded { to: to("alice"), name: "Tablet".to_owned(), at: AT },
        Message::AuthenticatorRemoved { to: to("alice"), name: "Old phone".to_owned(), at: AT },
        Message::TwoFactorDisabled { to: to("alice"), at: AT },
        Message::Unlocked { to: to("alice"), by: "bob".to_owned(), by_role: Role::Admin, at: AT },
    ]
}

fn render(m: &Message) -> (Rendered, String) {
    let r = renderer().render(m);
    let html = r.html.clone().expect("every default template has an HTML alternative");
    (r, html)
}

/// Both alternatives contain `phrase`.
fn assert_both(r: &Rendered, html: &str, phrase: &str) {
    assert!(r.text.contains(phrase), "text lacks {phrase:?}:\n{}", r.text);
    assert!(html.contains(phrase), "html lacks {phrase:?}:\n{html}");
}

#[test]
fn setup_mail_carries_the_code_and_how_it_works() {
    let (r, html) = render(&code_mail(CodeReason::Setup));
    assert_eq!(r.subject, "Your Acme backup code");
    assert_both(&r, &html, "Two-factor authentication is now on for your Acme account alice.");
    assert_both(&r, &html, "Each code works once");
    assert_both(&r, &html, CODE);
    assert_both(&r, &html, "If you did not turn it on yourself");
    assert_both(&r, &html, "report this to security@acme.test");
}

#[test]
fn rotation_mail_says_the_old_code_is_void_and_how_to_report_it() {
    let (r, html) = render(&code_mail(CodeReason::Rotated));
    assert_eq!(r.subject, "Your new Acme backup code");
    assert_both(&r, &html, "was just used to sign in");
    assert_both(&r, &html, "no longer works");
    assert_both(&r, &html, "If you did not just sign in with your backup code");
    assert_both(&r, &html, "report this to security@acme.test");
}

#[test]
fn reissue_mail_says_the_previous_code_is_void_and_how_to_report_it() {
    let (r, html) = render(&code_mail(CodeReason::Reissued));
    assert_eq!(r.subject, "Your new Acme backup code");
    assert_both(&r, &html, "A new backup code was requested");
    assert_both(&r, &html, "Your previous code no longer works.");
    assert_both(&r, &html, "If you did not ask for a new code");
    assert_both(&r, &html, "security@acme.test");
}

#[test]
fn code_mail_mentions_the_expiry_when_there_is_one() {
    let m = Message::BackupCode {
        to: to("alice"),
        reason: CodeReason::Setup,
        codes: vec![SecretString::from(CODE)],
        expires_at: Some(AT),
    };
    let (r, html) = render(&m);
    assert_both(&r, &html, &format!("This code expires at {AT_TEXT} (UTC)."));
    let (plain, _) = render(&code_mail(CodeReason::Setup));
    assert!(!plain.text.contains("expires"), "{}", plain.text);
}

#[test]
fn each_code_is_on_a_line_of_its_own_in_plain_text() {
    let second = "AAAA-BBBB-CCCC-DDDD";
    let m = Message::BackupCode {
        to: to("alice"),
        reason: CodeReason::Reissued,
        codes: vec![SecretString::from(CODE), SecretString::from(second)],
        expires_at: None,
    };
    let (r, html) = render(&m);
    let lines: Vec<&str> = r.text.lines().collect();
    assert!(lines.contains(&CODE), "{}", r.text);
    assert!(lines.contains(&second), "{}", r.text);
    assert_eq!(r.text.matches(CODE).count(), 1, "{}", r.text);
    assert!(html.contains(&format!("<strong>{CODE}</strong>")), "{html}");
}

#[test]
fn reset_notice_says_who_when_and_what_to_do() {
    let m = Message::TwoFactorReset { to: to("alice"), by: "bob".to_owned(), by_role: Role::Support, at: AT };
    let (r, html) = render(&m);
    assert_eq!(r.subject, "Two-factor authentication was reset on your Acme account");
    assert_both(&r, &html, &format!("was reset by bob (support) at {AT_TEXT} (UTC)"));
    assert_both(&r, &html, "set up two-factor authentication again");
    assert_both(&r, &html, "If you did not ask for this reset");
    assert_both(&r, &html, "contact security@acme.test at once");
}

#[test]
fn throttle_notice_says_until_when_and_how_to_report_it() {
    let (r, html) = render(&Message::Throttled { to: to("alice"), until: AT });
    assert_eq!(r.subject, "Failed sign-in attempts on your Acme account");
    assert_both(&r, &html, &format!("Sign-in is paused until {AT_TEXT} (UTC)."));
    assert_both(&r, &html, "If these attempts were not yours");
    assert_both(&r, &html, "report this to security@acme.test");
}

#[test]
fn locked_notice_says_an_administrator_must_reset() {
    let (r, html) = render(&Message::SecondFactorLocked { to: to("alice"), at: AT });
    assert_eq!(r.subject, "Two-factor sign-in locked on your Acme account");
    assert_both(&r, &html, &format!("was locked at {AT_TEXT}"));
    assert_both(&r, &html, "An administrator must reset it");
    assert_both(&r, &html, "report this to security@acme.test");
}

#[test]
fn new_location_notice_names_the_location_and_how_to_report_it() {
    let m = Message::NewLocation { to: to("alice"), location: "Firefox on Linux".to_owned(), at: AT };
    let (r, html) = render(&m);
    assert_eq!(r.subject, "New sign-in to your Acme account");
    assert_both(&r, &html, &format!("at {AT_TEXT} (UTC): Firefox on Linux."));
    assert_both(&r, &html, "If you did not just sign in");
    assert_both(&r, &html, "report this to security@acme.test");
}

#[test]
fn authenticator_notices_name_the_authenticator_and_how_to_report_it() {
    let m = Message::AuthenticatorAdded { to: to("alice"), name: "Tablet".to_owned(), at: AT };
    let (r, html) = render(&m);
    assert_eq!(r.subject, "An authenticator was added to your Acme account");
    assert!(r.text.contains("named \"Tablet\" was added"), "{}", r.text);
    assert!(html.contains("named &quot;Tablet&quot; was added"), "{html}");
    assert_both(&r, &html, &format!("was added to your Acme account alice at {AT_TEXT} (UTC)"));
    assert_both(&r, &html, "If you did not add it");
    assert_both(&r, &html, "report this to security@acme.test");
    let m = Message::AuthenticatorRemoved { to: to("alice"), name: "Old phone".to_owned(), at: AT };
    let (r, html) = render(&m);
    assert_eq!(r.subject, "An authenticator was removed from your Acme account");
    assert!(r.text.contains("named \"Old phone\" was removed"), "{}", r.text);
    assert_both(&r, &html, "Its codes no longer sign you in.");
    assert_both(&r, &html, "If you did not remove it");
}

#[test]
fn disable_notice_says_the_password_alone_now_signs_in() {
    let (r, html) = render(&Message::TwoFactorDisabled { to: to("alice"), at: AT });
    assert_eq!(r.subject, "Two-factor authentication was turned off on your Acme account");
    assert_both(&r, &html, &format!("turned off for your Acme account alice at {AT_TEXT} (UTC)"));
    assert_both(&r, &html, "your password alone now signs you in");
    assert_both(&r, &html, "If you did not turn it off");
    assert_both(&r, &html, "report this to security@acme.test");
}

#[test]
fn unlock_notice_says_who_lifted_it_and_whom_to_contact() {
    let m = Message::Unlocked { to: to("alice"), by: "bob".to_owned(), by_role: Role::Admin, at: AT };
    let (r, html) = render(&m);
    assert_eq!(r.subject, "Sign-in was unlocked on your Acme account");
    assert_both(
        &r,
        &html,
        &format!("bob (admin) cleared the failed sign-in attempts on your Acme account alice at {AT_TEXT} (UTC)"),
    );
    assert_both(&r, &html, "work as before");
    assert_both(&r, &html, "contact security@acme.test at once");
}

#[test]
fn only_code_mails_carry_a_code() {
    for m in all_kinds() {
        let (r, html) = render(&m);
        assert_eq!(r.text.contains(CODE), m.carries_code(), "{}: {}", m.kind(), r.text);
        assert_eq!(html.contains(CODE), m.carries_code(), "{}", m.kind());
    }
}

#[test]
fn every_kind_has_html_with_a_title_and_names_product_and_support() {
    for m in all_kinds() {
        let (r, html) = render(&m);
        assert!(html.starts_with("<!DOCTYPE html>"), "{}", m.kind());
        assert!(html.contains(&format!("<title>{}</title>", r.subject)), "{}", m.kind());
        assert!(r.subject.contains("Acme"), "{}", m.kind());
        assert_both(&r, &html, "security@acme.test");
        assert!(r.text.ends_with("-- \nAcme\n"), "{}", m.kind());
    }
}

#[test]
fn interpolated_values_are_escaped_in_html_and_kept_to_one_line_in_text() {
    let r = DefaultRenderer::new("<b>Acme & Co</b>", "\"sec\"@acme.test");
    let hostile = "<script>alert('x')</script>\n\nZZZZ-ZZZZ-ZZZZ-ZZZZ";
    let messages = [
        Message::NewLocation { to: to("<img src=x>"), location: hostile.to_owned(), at: AT },
        Message::TwoFactorReset { to: to("alice"), by: hostile.to_owned(), by_role: Role::Admin, at: AT },
    ];
    for m in messages {
        let out = r.render(&m);
        let html = out.html.expect("html");
        assert!(!html.contains("<script>") && !html.contains("<img") && !html.contains("<b>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"), "{html}");
        assert!(html.contains("&lt;b&gt;Acme &amp; Co&lt;/b&gt;"), "{html}");
        assert!(html.contains("&quot;sec&quot;@acme.test"), "{html}");
        // The forged "code" cannot land on a line of its own in the text part.
        assert!(!out.text.lines().any(|l| l.trim() == "ZZZZ-ZZZZ-ZZZZ-ZZZZ"), "{}", out.text);
    }
}

#[test]
fn the_renderer_is_replaceable_through_the_trait() {
    struct Terse;
    impl Renderer for Terse {
        fn render(&self, m: &Message) -> Rendered {
            Rendered { subject: m.kind().to_string(), text: "x".to_owned(), html: None }
        }
    }
    let boxed: Box<dyn Renderer> = Box::new(Terse);
    let shared: std::sync::Arc<dyn Renderer> = std::sync::Arc::new(renderer());
    assert_eq!(boxed.render(&code_mail(CodeReason::Setup)).subject, "backup_code.setup");
    assert_eq!(shared.render(&code_mail(CodeReason::Setup)).subject, "Your Acme backup code");
}

#[test]
fn the_default_templates_name_no_product_and_never_the_library() {
    for m in all_kinds() {
        let r = DefaultRenderer::default().render(&m);
        let html = r.html.clone().unwrap();
        for part in [&r.subject, &r.text, &html] {
            assert!(!part.contains("twofactor") && !part.contains("  "), "{}: {part}", m.kind());
        }
        assert!(!r.text.contains("-- \n") && r.text.ends_with(".\n") && !r.text.ends_with("\n\n"), "{}", r.text);
        assert!(!html.contains("color:#666"), "no signature line: {html}");
    }
    let r = DefaultRenderer::default().render(&code_mail(CodeReason::Setup));
    assert_eq!(r.subject, "Your backup code");
    assert!(r.text.starts_with("Two-factor authentication is now on for your account alice."), "{}", r.text);
}

#[test]
fn for_policy_takes_the_product_name_from_the_issuer() {
    let policy = crate::Policy::builder().issuer("Example Co").build().unwrap();
    let renderer = DefaultRenderer::for_policy(&policy).with_support("help@example.test");
    let r = renderer.render(&code_mail(CodeReason::Rotated));
    assert_eq!(r.subject, "Your new Example Co backup code");
    assert!(r.text.contains("your Example Co account alice") && r.text.ends_with("-- \nExample Co\n"), "{}", r.text);
    assert!(r.text.contains("report this to help@example.test"), "{}", r.text);
}
