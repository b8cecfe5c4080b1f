//! The seed story in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) drives the `web` example through enrollment, a login with the
//! authenticator code, the "I don't have my device" switch to the backup code, the
//! rotated code from the demo mailbox, a remembered location (then revoked), a reissued
//! backup code, and an administrator's reset; each page says whether its mail went
//! out, and a mail the outbox could not take is delayed, then delivered by the
//! background worker once the outbox works again. Screenshots of each page land in
//! `target/web-screenshots/`. A second test checks over plain HTTP that forms need the
//! CSRF token, that output is escaped, the cookie flags, that a session id the browser
//! brings is never adopted at login, and that a plain user is kept out of the
//! administrator's page. Under a policy that requires 2FA, a password-only session
//! reaches only the enrollment pages until enrollment completes. Over HTTP again: no
//! anonymous request stores a session, and the session store's cap drops the least
//! recently used session. The session id is cycled at every login step (password,
//! code, enrollment that had to come first). And the process: a busy port is named
//! with the setting to change, and neither that nor Ctrl-C or SIGTERM leaves the run's
//! temp folder (with its mailed backup codes) behind. The keys come from
//! `TWOFACTOR_KEYS`, or else from a key file with mode 0600 beside the database.
//!
//! Self-service, one test per flow: a second authenticator added with its QR code and
//! secret (a wrong code refused), whose code then signs in; an authenticator removed
//! with a code from the other one (its own refused), the last one kept with the reason
//! shown; 2FA turned off with a fresh code, then the password alone signs in (and under
//! a policy requiring 2FA, refused with the reason); the step-up before changing the
//! email (the password without 2FA, a code with it; a wrong one refused, a forged
//! change refused, the right one lets the change happen, and the next mail goes to the
//! new address); and an administrator's unlock of a user paused by wrong codes, who
//! then signs in with her code.
//!
//! Runs under the `browser-tests` feature (so a plain `cargo test` needs no browser):
//! `cargo build --example web && cargo test --features browser-tests --test web_browser`
//! (`--test` alone does not rebuild the example; the tests refuse a stale build). They
//! fail loudly when Chromium or ChromeDriver is missing.
//!
//! TOTP without waiting: enrollment is confirmed with the previous step's code (the
//! verification window allows one step back), which leaves the current step's code
//! unused for the first login.

mod web_support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use twofactor::totp::TotpParams;
use web_support::{Browser, Server, cookie_pair, header, set_cookie};

const ALICE_EMAIL: &str = "alice@example.test";

fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

/// Waits until at least 3 s remain in the current 30 s step, so a code computed now is
/// still in its step when the server checks it.
async fn clear_of_step_edge() {
    let into_step = unix_now().as_secs_f64() % 30.0;
    if into_step > 27.0 {
        tokio::time::sleep(Duration::from_secs_f64(30.2 - into_step)).await;
    }
}

/// What the authenticator app shows `steps_back` steps before now.
fn totp(secret: &[u8], steps_back: u64) -> String {
    let at = unix_now().as_secs() - 30 * steps_back;
    twofactor::totp::generate(secret, &TotpParams::default(), at).expose().to_owned()
}

/// The backup code in a mail body: the first line the library itself accepts as one.
fn backup_code_in(body: &str) -> Option<String> {
    body.lines().map(str::trim).find(|l| twofactor::BackupCode::parse(l).is_ok()).map(str::to_owned)
}

/// How long a test waits for a mail to show up in the demo mailbox.
const MAIL_WAIT: Duration = Duration::from_secs(20);

/// The newest backup code mailed to Alice, once it is not `previous`, read from the
/// demo mailbox page.
async fn new_backup_code(b: &Browser, url: &str, shot: Option<&str>, previous: Option<&str>) -> String {
    new_backup_mail(b, url, shot, previous).await.0
}

/// The newest mail to Alice that carries a backup code other than `previous`: (the
/// code, the mail's body). Mail is sent by a worker, not by the request: the mailbox
/// is read again until it arrives (at most [`MAIL_WAIT`]).
async fn new_backup_mail(b: &Browser, url: &str, shot: Option<&str>, previous: Option<&str>) -> (String, String) {
    let deadline = Instant::now() + MAIL_WAIT;
    loop {
        b.goto(&format!("{url}/mailbox")).await;
        b.wait("h1").await;
        if let Some((code, body)) = newest_backup_mail(b).await
            && Some(code.as_str()) != previous
        {
            if let Some(name) = shot {
                b.shot(name).await;
            }
            return (code, body);
        }
        assert!(Instant::now() < deadline, "no new backup code mailed to {ALICE_EMAIL} in the demo mailbox");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// On the mailbox page: the newest mail to Alice that carries a backup code.
async fn newest_backup_mail(b: &Browser) -> Option<(String, String)> {
    let mails = b
        .client
        .find_all(fantoccini::Locator::Css(&format!(r#"article.mail[data-to="{ALICE_EMAIL}"]"#)))
        .await
        .unwrap();
    for mail in mails {
        let body = mail.find(fantoccini::Locator::Css("pre.body")).await.unwrap().text().await.unwrap();
        if let Some(code) = backup_code_in(&body) {
            return Some((code, body));
        }
    }
    None
}

async fn sign_in(b: &Browser, url: &str, username: &str, password: &str) {
    b.goto(&format!("{url}/login")).await;
    b.wait("#username").await;
    b.fill("#username", username).await;
    b.fill("#password", password).await;
    b.click_and_load(r#"form[action="/login"] button[type=submit]"#).await;
}

/// On the enrollment page: reads the secret and confirms it, with the previous step's
/// code (the window allows one step back), so that the current step's code is still
/// unused for a login right after. Returns the secret; waits for the account page.
async fn confirm_enrollment(b: &Browser) -> Vec<u8> {
    let shown: String = b.text("#secret").await.split_whitespace().collect();
    let secret = data_encoding::BASE32_NOPAD.decode(shown.as_bytes()).expect("the secret is base32");
    clear_of_step_edge().await;
    b.fill("#code", &totp(&secret, 1)).await;
    b.click_and_load("#confirm").await;
    b.wait("#tf-status").await;
    secret
}

async fn sign_out(b: &Browser) {
    b.click_and_load("#sign-out").await;
    b.wait("#username").await;
}

/// Opens the verification page's "I don't have my device" help and ticks the
/// checkbox; asserts the code field really switches to the backup-code field.
async fn switch_to_backup_code(b: &Browser) {
    assert!(b.displayed("#code").await, "the verification code field is shown first");
    assert!(!b.displayed("#backup_code").await, "the backup code field is hidden at first");
    assert!(!b.displayed("#no-device").await, "the help is hidden until the link is followed");
    b.click("#no-device-link").await;
    assert!(b.displayed("#no-device").await, "the link reveals the message and checkbox");
    assert!(b.text("#no-device").await.contains("Don't have your verified device?"));
    assert_eq!(b.path().await, "/verify", "with JavaScript the link does not navigate");
    b.shot("05-no-device-help").await;
    b.click("#use_backup").await;
    let code = b.find("#code").await;
    let backup = b.find("#backup_code").await;
    assert!(!code.is_displayed().await.unwrap() && !code.is_enabled().await.unwrap(), "code field hidden, disabled");
    assert!(backup.is_displayed().await.unwrap() && backup.is_enabled().await.unwrap(), "backup field shown");
    assert_eq!(backup.attr("name").await.unwrap().as_deref(), Some("backup_code"));
    b.shot("06-backup-code").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_story_in_headless_chromium() {
    let server = Server::start();
    let b = Browser::start().await;
    let url = server.url.as_str();
    let alice_pw = server.user_password.as_str();

    // 1. Enrollment, confirmed with a code computed from the secret shown.
    b.goto(&format!("{url}/login")).await;
    b.wait("#username").await;
    b.shot("01-sign-in").await;
    assert!(b.cookie("tf_session").await.is_none(), "the sign-in form stores no session");
    let login_csrf = b.cookie("tf_login_csrf").await.expect("the sign-in form's CSRF cookie");
    assert_eq!(login_csrf.http_only(), Some(true));
    assert_eq!(format!("{:?}", login_csrf.same_site()), "Some(Lax)");
    sign_in(&b, url, "alice", alice_pw).await;
    assert_eq!(b.path().await, "/account", "no 2FA yet: the password alone signs in");
    let signed_in = b.cookie("tf_session").await.expect("a session once signed in");
    assert_eq!(signed_in.http_only(), Some(true));
    assert_eq!(format!("{:?}", signed_in.same_site()), "Some(Lax)");
    assert!(b.text("#tf-status").await.contains("off"));
    b.click_and_load("#enroll-link").await;
    b.wait("#secret").await;
    assert!(b.displayed("#qr svg").await, "the QR code is an inline SVG");
    b.shot("02-enrollment").await;
    let secret = confirm_enrollment(&b).await;
    assert!(b.text("#tf-status").await.contains("on"), "2FA is on after a correct code");
    assert!(b.text(".msg.info").await.contains("We emailed you a backup code"), "the setup mail went out");
    b.shot("03-account-2fa-on").await;
    let setup_code = new_backup_code(&b, url, None, None).await;
    b.goto(&format!("{url}/account")).await;
    b.wait("#sign-out").await;
    sign_out(&b).await;

    // 2. A login that needs the code.
    assert!(b.cookie("tf_session").await.is_none(), "signed out, the shown notice leaves no session cookie");
    sign_in(&b, url, "alice", alice_pw).await;
    assert_eq!(b.path().await, "/verify");
    let pending = b.cookie("tf_session").await.expect("a session holding the pending login");
    assert!(b.text("main").await.contains("Enter the verification code from your authentication app"));
    b.shot("04-verification").await;
    clear_of_step_edge().await;
    b.fill("#code", &totp(&secret, 0)).await;
    b.click_and_load("#verify").await;
    b.wait("#whoami").await;
    assert_eq!(b.text("#whoami").await, "alice");
    let full = b.cookie("tf_session").await.expect("a session once signed in");
    assert_ne!(pending.value(), full.value(), "the session id is cycled at the code step too");
    assert_eq!(
        get(url, "/verify", &format!("tf_session={}", pending.value())),
        (303, "/login".to_owned()),
        "the pending-login id is retired"
    );
    sign_out(&b).await;

    // 3. "I don't have my device": the checkbox switches to the backup-code field.
    sign_in(&b, url, "alice", alice_pw).await;
    switch_to_backup_code(&b).await;
    b.fill("#backup_code", &setup_code).await;
    b.click_and_load("#verify").await;
    b.wait("#whoami").await;
    assert_eq!(b.path().await, "/account", "the emailed backup code logs in");
    assert!(b.text(".msg.info").await.contains("We emailed you a new backup code"), "the new code went out");

    // 4. The rotated code arrives in the mailbox; the used one is void, the new one works.
    let rotated = new_backup_code(&b, url, Some("07-mailbox"), Some(&setup_code)).await;
    assert_ne!(rotated, setup_code, "a new backup code was mailed after the use");
    b.goto(&format!("{url}/account")).await;
    b.wait("#sign-out").await;
    sign_out(&b).await;
    sign_in(&b, url, "alice", alice_pw).await;
    // The link's no-JavaScript target renders the backup-code form on the server.
    let link = b.find("#no-device-link").await.attr("href").await.unwrap().unwrap();
    b.goto(&format!("{url}{link}")).await;
    assert!(b.find("#use_backup").await.is_selected().await.unwrap(), "the checkbox comes ticked");
    assert!(b.displayed("#backup_code").await && !b.displayed("#code").await, "and the backup field shown");
    b.fill("#backup_code", &setup_code).await;
    b.click_and_load("#verify").await;
    b.wait(".msg.error").await;
    assert!(b.text(".msg.error").await.contains("not right"), "a used backup code is refused");
    assert!(b.displayed("#backup_code").await, "the page stays on the backup-code field");
    b.shot("08-used-code-refused").await;
    b.fill("#backup_code", &rotated).await;
    b.click("#remember").await;
    b.click_and_load("#verify").await;
    b.wait("#whoami").await;
    assert_eq!(b.path().await, "/account", "the rotated code logs in");
    assert!(b.displayed("#locations").await, "the location is listed as remembered");
    let location = b.cookie("tf_location").await.expect("a remembered-location cookie");
    assert_eq!(location.http_only(), Some(true));
    b.shot("09-account-remembered").await;
    sign_out(&b).await;

    // 5. The remembered location skips the code.
    sign_in(&b, url, "alice", alice_pw).await;
    assert_eq!(b.path().await, "/account", "a remembered location needs only the password");
    sign_out(&b).await;

    // 6. Revoking the location on the account page: the next login asks for the code.
    sign_in(&b, url, "alice", alice_pw).await;
    assert_eq!(b.path().await, "/account");
    let revoke_buttons = b.client.find_all(fantoccini::Locator::Css("#locations button.revoke")).await.unwrap();
    assert_eq!(revoke_buttons.len(), 1, "exactly this browser is remembered");
    b.click_and_load("#locations button.revoke").await;
    b.wait("#whoami").await;
    assert_eq!(b.path().await, "/account", "the revoke form returns to the account page");
    assert!(b.displayed("#no-locations").await, "the revoked location is no longer listed");
    assert!(b.client.find(fantoccini::Locator::Css("#locations")).await.is_err(), "no location table left");
    assert!(b.text(".msg.info").await.contains("will need the verification code again"));
    b.shot("09a-location-revoked").await;
    assert!(
        b.cookie("tf_location").await.is_some(),
        "the browser still holds its location cookie: the server-side revocation is what counts"
    );
    // The code mailed after the rotated code's use in step 4.
    let current = new_backup_code(&b, url, None, Some(&rotated)).await;
    assert_ne!(current, rotated, "a fresh code was mailed after the rotated one was used");
    b.goto(&format!("{url}/account")).await;
    b.wait("#sign-out").await;
    sign_out(&b).await;
    sign_in(&b, url, "alice", alice_pw).await;
    assert_eq!(b.path().await, "/verify", "a revoked location asks for the code again");
    b.click("#no-device-link").await;
    b.click("#use_backup").await;
    b.fill("#backup_code", &current).await;
    b.click_and_load("#verify").await;
    b.wait("#whoami").await;
    assert_eq!(b.path().await, "/account");
    assert!(b.displayed("#no-locations").await, "not remembered again without the checkbox");
    let after_use = new_backup_code(&b, url, None, Some(&current)).await;
    assert_ne!(after_use, current, "the used code was replaced by mail");

    // 7. Reissue: a new code by mail; the previous one is refused, the new one works.
    b.goto(&format!("{url}/account")).await;
    b.wait("#reissue").await;
    b.click_and_load("#reissue").await;
    b.wait("#whoami").await;
    assert_eq!(b.path().await, "/account");
    assert!(b.text(".msg.info").await.contains("We emailed you a new backup code"), "the reissue is confirmed");
    let (reissued, mail) = new_backup_mail(&b, url, Some("09b-mailbox-reissued"), Some(&after_use)).await;
    assert_ne!(reissued, after_use, "the reissue mailed a different code");
    assert!(mail.contains("A new backup code was requested"), "the reissue mail says why: {mail}");
    b.goto(&format!("{url}/account")).await;
    b.wait("#sign-out").await;
    sign_out(&b).await;
    sign_in(&b, url, "alice", alice_pw).await;
    assert_eq!(b.path().await, "/verify");
    b.click("#no-device-link").await;
    b.click("#use_backup").await;
    b.fill("#backup_code", &after_use).await;
    b.click_and_load("#verify").await;
    b.wait(".msg.error").await;
    assert!(b.text(".msg.error").await.contains("not right"), "the code the reissue replaced is refused");
    assert_eq!(b.path().await, "/verify");
    b.fill("#backup_code", &reissued).await;
    b.click("#remember").await;
    b.click_and_load("#verify").await;
    b.wait("#whoami").await;
    assert_eq!(b.path().await, "/account", "the reissued code logs in");
    assert!(b.displayed("#locations").await, "remembered again, for the reset below to forget");
    sign_out(&b).await;

    // 8. An administrator's reset, then the password alone.
    sign_in(&b, url, "admin", &server.admin_password).await;
    assert_eq!(b.path().await, "/account");
    b.goto(&format!("{url}/admin")).await;
    b.wait("#identity_check").await;
    b.fill("#username", "admin").await;
    b.fill("#identity_check", "It is me").await;
    b.click_and_load("#reset").await;
    b.wait(".msg.error").await;
    assert!(b.text(".msg.error").await.starts_with("Not allowed"), "the engine's role rules refuse a self-reset");
    b.shot("10-admin-not-allowed").await;
    b.fill("#username", "alice").await;
    b.fill("#identity_check", "Video call; matched her photo ID").await;
    b.click_and_load("#reset").await;
    b.wait(".msg.ok").await;
    assert!(b.text(".msg.ok").await.contains("was reset"));
    assert!(b.text(".msg.ok").await.contains("the notice was sent"), "the reset notice went out");
    b.shot("11-admin-reset").await;
    sign_out(&b).await;
    sign_in(&b, url, "alice", alice_pw).await;
    assert_eq!(b.path().await, "/account", "after the reset the password alone signs in");
    assert!(b.text("#tf-status").await.contains("off"));
    assert!(b.displayed("#no-locations").await, "the reset forgot the remembered locations");
    b.client.clone().close().await.unwrap();
}

/// The sign-in form over HTTP: (its CSRF cookie pair, the token in the form).
fn login_form(url: &str) -> (String, String) {
    let (status, headers, body) = web_support::http(url, "GET", "/login", None, None);
    assert_eq!(status, 200);
    (cookie_pair(&headers, "tf_login_csrf").expect("the sign-in form's CSRF cookie"), csrf_in(&body))
}

/// Signs in over HTTP with a fresh sign-in form: (status, `Location`, the session cookie
/// pair the response sets). `extra` cookies are sent along.
fn http_sign_in(url: &str, username: &str, password: &str, extra: Option<&str>) -> (u16, String, Option<String>) {
    let (login_cookie, csrf) = login_form(url);
    let cookies = extra.map_or(login_cookie.clone(), |e| format!("{login_cookie}; {e}"));
    let form = format!("csrf={csrf}&username={username}&password={password}");
    let (status, headers, _) = web_support::http(url, "POST", "/login", Some(&cookies), Some(&form));
    (status, header(&headers, "location").unwrap_or_default(), cookie_pair(&headers, "tf_session"))
}

/// GET `path` with `cookie`: (status, `Location`).
fn get(url: &str, path: &str, cookie: &str) -> (u16, String) {
    let (status, headers, _) = web_support::http(url, "GET", path, Some(cookie), None);
    (status, header(&headers, "location").unwrap_or_default())
}

/// The CSRF token in a page's forms.
fn csrf_in(body: &str) -> String {
    body.split(r#"name="csrf" value=""#).nth(1).expect("a CSRF field").split('"').next().unwrap().to_owned()
}

#[test]
fn forms_need_the_csrf_token_output_is_escaped_and_cookies_are_locked_down() {
    let server = Server::start();
    let url = server.url.as_str();
    let (status, headers, body) = web_support::http(url, "GET", "/login", None, None);
    assert_eq!(status, 200);
    assert_eq!(set_cookie(&headers, "tf_session"), None, "the sign-in form stores no session");
    let set = set_cookie(&headers, "tf_login_csrf").expect("the sign-in form's CSRF cookie");
    assert!(set.contains("; HttpOnly") && set.contains("; SameSite=Lax"), "{set}");
    assert!(!set.contains("Secure"), "plain HTTP on 127.0.0.1 by default: {set}");
    assert!(headers.iter().any(|h| h.to_ascii_lowercase().starts_with("content-security-policy: default-src 'none'")));
    let cookie = cookie_pair(&headers, "tf_login_csrf").unwrap();
    let csrf = csrf_in(&body);
    assert_eq!(cookie, format!("tf_login_csrf={csrf}"), "double submit: the form carries the cookie's token");
    let (_, again, _) = web_support::http(url, "GET", "/login", Some(&cookie), None);
    assert_eq!(set_cookie(&again, "tf_login_csrf"), None, "a browser keeps its token across reloads and tabs");

    let form = format!("csrf=wrong&username=alice&password={}", server.user_password);
    let (status, _, _) = web_support::http(url, "POST", "/login", Some(&cookie), Some(&form));
    assert_eq!(status, 403, "a wrong CSRF token is refused");
    let form = format!("username=alice&password={}", server.user_password);
    let (missing_csrf, _, _) = web_support::http(url, "POST", "/login", Some(&cookie), Some(&form));
    assert!((400..500).contains(&missing_csrf), "a missing CSRF token is refused: {missing_csrf}");
    let form = format!("csrf={csrf}&username=alice&password={}", server.user_password);
    let (status, _, _) = web_support::http(url, "POST", "/login", None, Some(&form));
    assert_eq!(status, 403, "a token without its cookie is refused (a cross-site POST sends no Lax cookie)");
    let (other_browser, _) = login_form(url);
    let (status, _, _) = web_support::http(url, "POST", "/login", Some(&other_browser), Some(&form));
    assert_eq!(status, 403, "a token with another browser's cookie is refused");

    let form = format!("csrf={csrf}&username=%3Cscript%3Ealert(1)%3C%2Fscript%3E&password=wrong-password");
    let (status, headers, body) = web_support::http(url, "POST", "/login", Some(&cookie), Some(&form));
    assert_eq!(status, 200);
    assert!(body.contains("Wrong username or password."));
    assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !body.contains("<script>alert"), "escaped");
    assert_eq!(set_cookie(&headers, "tf_session"), None, "a refused password stores no session");
    assert_eq!(csrf_in(&body), csrf, "the form is shown again with the same token");

    // Session fixation: a session id the browser brings is never adopted at login,
    // neither an unknown one nor a real one (a signed-out session holding its notice).
    let planted = "tf_session=planted-by-an-attacker";
    let (status, to, alice) = http_sign_in(url, "alice", &server.user_password, Some(planted));
    assert_eq!((status, to.as_str()), (303, "/account"));
    let alice = alice.expect("a new session at login");
    assert_ne!(alice, planted, "the planted id is not adopted");
    assert_eq!(get(url, "/account", planted), (303, "/login".to_owned()), "and signs nobody in");
    let (_, _, body) = web_support::http(url, "GET", "/account", Some(&alice), None);
    let form = format!("csrf={}", csrf_in(&body));
    let (status, headers, _) = web_support::http(url, "POST", "/logout", Some(&alice), Some(&form));
    assert_eq!(status, 303);
    let signed_out = cookie_pair(&headers, "tf_session").expect("the signed-out notice's session");
    assert_eq!(get(url, "/account", &alice), (303, "/login".to_owned()), "signed out");
    let (_, _, rotated) = http_sign_in(url, "alice", &server.user_password, Some(&signed_out));
    let rotated = rotated.expect("a new session id at login");
    assert_ne!(rotated, signed_out, "a new session id at login");
    assert_eq!(get(url, "/account", &signed_out), (303, "/login".to_owned()), "the pre-login id signs nobody in");

    // Signed in as Alice, a plain user: the administrator's page is closed to her.
    let alice = rotated;
    let (status, _, body) = web_support::http(url, "GET", "/account", Some(&alice), None);
    assert_eq!(status, 200);
    assert!(body.contains(r#"<strong id="whoami">alice</strong>"#), "signed in as alice");
    let csrf = csrf_in(&body);
    assert!(!csrf.is_empty());
    let (status, _, body) = web_support::http(url, "GET", "/admin", Some(&alice), None);
    assert_eq!(status, 403, "a user may not open the reset form");
    assert!(body.contains("Administrators only.") && !body.contains("identity_check"), "{body}");
    let form = format!("csrf={csrf}&username=admin&identity_check=I+am+the+admin");
    let (status, _, body) = web_support::http(url, "POST", "/admin", Some(&alice), Some(&form));
    assert_eq!(status, 403, "a user may not reset anyone, even with a valid CSRF token");
    assert!(body.contains("Administrators only.") && !body.contains("was reset"), "{body}");

    // The account page's other forms need the token too, refused like the sign-in form.
    for (path, fields) in [("/account/locations/revoke", "location=no-such-location"), ("/account/backup-code", "")] {
        let (status, _, _) = web_support::http(url, "POST", path, Some(&alice), Some(fields));
        assert_eq!(status, missing_csrf, "{path} without a CSRF token is refused like /login");
        let with =
            |token: &str| if fields.is_empty() { format!("csrf={token}") } else { format!("csrf={token}&{fields}") };
        let (status, _, _) = web_support::http(url, "POST", path, Some(&alice), Some(&with("wrong")));
        assert_eq!(status, 403, "{path} with a wrong CSRF token is refused like /login");
        let (status, headers, _) = web_support::http(url, "POST", path, Some(&alice), Some(&with(&csrf)));
        assert_eq!(status, 303, "{path} with the session's token goes through");
        assert!(headers.iter().any(|h| h.eq_ignore_ascii_case("location: /account")), "{path}: {headers:?}");
    }
    // And the self-service forms.
    for (path, fields) in [
        ("/account/authenticators", "name=Tablet"),
        ("/account/authenticators/new", "code=123456"),
        ("/account/authenticators/remove", "id=0123456789abcdef&code=123456"),
        ("/account/two-factor/off", "code=123456"),
        ("/account/step-up", "password=x"),
        ("/account/email", "email=mallory%40example.test"),
    ] {
        let (status, _, _) = web_support::http(url, "POST", path, Some(&alice), Some(fields));
        assert_eq!(status, missing_csrf, "{path} without a CSRF token is refused like /login");
        let (status, _, _) = web_support::http(url, "POST", path, Some(&alice), Some(&format!("csrf=wrong&{fields}")));
        assert_eq!(status, 403, "{path} with a wrong CSRF token is refused like /login");
    }
    let (status, _, body) = web_support::http(url, "GET", "/account", Some(&alice), None);
    assert_eq!(status, 200, "the refusals left Alice signed in");
    assert!(body.contains(r#"<span id="email">alice@example.test</span>"#), "and her email unchanged");
    assert!(body.contains(r#"id="tf-status""#) && body.contains("<strong>off</strong>"), "and 2FA unchanged");

    let secure = Server::start_with(&[("TWOFACTOR_WEB_SECURE_COOKIES", "1")]);
    let (_, headers, _) = web_support::http(&secure.url, "GET", "/login", None, None);
    let set = set_cookie(&headers, "tf_login_csrf").unwrap();
    assert!(set.ends_with("; Secure"), "TWOFACTOR_WEB_SECURE_COOKIES=1 marks cookies Secure: {set}");
    let (login_cookie, csrf) = login_form(&secure.url);
    let form = format!("csrf={csrf}&username=alice&password={}", secure.user_password);
    let (_, headers, _) = web_support::http(&secure.url, "POST", "/login", Some(&login_cookie), Some(&form));
    let set = set_cookie(&headers, "tf_session").expect("signed in");
    assert!(set.contains("; Secure") && set.contains("; HttpOnly"), "the session cookie too: {set}");
}

/// Every kind of request an anonymous visitor (or a script) can make that needs no
/// password: with no cookie, or with a session id the server never issued.
const ANONYMOUS: [(&str, &str, Option<&str>); 18] = [
    ("GET", "/", None),
    ("GET", "/login", None),
    ("GET", "/verify", None),
    ("GET", "/verify?device=lost", None),
    ("GET", "/enroll", None),
    ("GET", "/account", None),
    ("GET", "/account/email", None),
    ("GET", "/account/two-factor/off", None),
    ("GET", "/account/authenticators/new", None),
    ("GET", "/account/authenticators/remove?id=0123456789abcdef", None),
    ("POST", "/account/step-up", Some("csrf=x&code=123456")),
    ("POST", "/admin/unlock", Some("csrf=x&username=alice&reason=x")),
    ("GET", "/admin", None),
    ("GET", "/mailbox", None),
    ("GET", "/favicon.ico", None),
    ("GET", "/no/such/page", None),
    ("POST", "/verify", Some("csrf=x&code=123456")),
    ("POST", "/logout", Some("csrf=x")),
];

#[test]
fn anonymous_requests_store_no_session() {
    // Room for exactly one session: any session an anonymous request stored would
    // evict Alice's.
    let server = Server::start_with(&[("TWOFACTOR_WEB_MAX_SESSIONS", "1")]);
    let url = server.url.as_str();
    let (_, _, alice) = http_sign_in(url, "alice", &server.user_password, None);
    let alice = alice.expect("Alice's session");
    // 84 rounds of every anonymous request: over a thousand requests.
    for round in 0..84 {
        let cookie = if round % 2 == 0 { None } else { Some("tf_session=never-issued") };
        for (method, path, form) in ANONYMOUS {
            let (status, headers, _) = web_support::http(url, method, path, cookie, form);
            assert!(status < 500, "{method} {path}: {status}");
            // An id the server does not hold may be told to go (tower-sessions removes
            // the cookie of a session it cannot load); nothing else may be set.
            let set = set_cookie(&headers, "tf_session");
            assert!(
                set.as_deref()
                    .is_none_or(|s| cookie.is_some() && s.starts_with("tf_session=;") && s.contains("Max-Age=0")),
                "{method} {path} (cookie {cookie:?}) stored a session: {set:?}"
            );
        }
    }
    // A refused password costs a hash each: a few are enough.
    for _ in 0..3 {
        let (status, _, session) = http_sign_in(url, "alice", "not-her-password", None);
        assert_eq!((status, session), (200, None), "a refused password stores no session");
    }
    let (status, _) = get(url, "/account", &alice);
    assert_eq!(status, 200, "Alice's session survived: no anonymous request took a place in the store");
}

#[test]
fn the_session_cap_drops_the_least_recently_used() {
    let server = Server::start_with(&[("TWOFACTOR_WEB_MAX_SESSIONS", "2")]);
    let url = server.url.as_str();
    let sign_in = |who: &str| {
        let password = if who == "admin" { &server.admin_password } else { &server.user_password };
        let (status, to, session) = http_sign_in(url, who, password, None);
        assert_eq!((status, to.as_str()), (303, "/account"));
        session.expect("a session")
    };
    let first = sign_in("alice");
    let second = sign_in("admin");
    assert_eq!(get(url, "/account", &first).0, 200, "two sessions fit; using the first makes it the newest");
    let third = sign_in("alice");
    assert_eq!(get(url, "/account", &second), (303, "/login".to_owned()), "the least recently used was dropped");
    assert_eq!(get(url, "/account", &first).0, 200, "the recently used one was kept");
    assert_eq!(get(url, "/account", &third).0, 200, "and the new one stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_2fa_keeps_a_password_only_session_on_the_enrollment_pages() {
    let server = Server::start_with(&[("TWOFACTOR_WEB_REQUIRE_2FA", "1")]);
    let url = server.url.as_str();
    let (status, to, _) = http_sign_in(url, "alice", &server.user_password, None);
    assert_eq!((status, to.as_str()), (303, "/enroll"), "a user without 2FA is sent to enroll");

    let b = Browser::start().await;
    sign_in(&b, url, "admin", &server.admin_password).await;
    assert_eq!(b.path().await, "/enroll", "an administrator without 2FA lands on enrollment");
    for path in [
        "/admin",
        "/account",
        "/",
        "/account/email",
        "/account/two-factor/off",
        "/account/authenticators/new",
        "/account/authenticators/remove?id=0123456789abcdef",
    ] {
        b.goto(&format!("{url}{path}")).await;
        assert_eq!(b.path().await, "/enroll", "{path} is closed until enrollment");
    }
    assert!(b.client.find(fantoccini::Locator::Css("#identity_check")).await.is_err(), "no reset form");
    b.wait("#secret").await;
    assert!(b.text("main").await.contains("required for your account"), "and is told why");
    assert!(b.client.find(fantoccini::Locator::Css(r#"header a[href="/admin"]"#)).await.is_err(), "no Admin link");
    b.shot("12-required-enrollment").await;

    // Not with a forged form either: the session's own CSRF token does not open the rest.
    let session = format!("tf_session={}", b.cookie("tf_session").await.expect("a session").value());
    let csrf = b.find(r#"input[name="csrf"]"#).await.attr("value").await.unwrap().expect("a CSRF token");
    let posts = [
        ("/admin", format!("csrf={csrf}&username=alice&identity_check=forged")),
        ("/admin/unlock", format!("csrf={csrf}&username=alice&reason=forged")),
        ("/account/backup-code", format!("csrf={csrf}")),
        ("/account/locations/revoke", format!("csrf={csrf}&location=x")),
        ("/account/authenticators", format!("csrf={csrf}&name=Tablet")),
        ("/account/authenticators/new", format!("csrf={csrf}&code=123456")),
        ("/account/authenticators/remove", format!("csrf={csrf}&id=0123456789abcdef&code=123456")),
        ("/account/two-factor/off", format!("csrf={csrf}&code=123456")),
        ("/account/step-up", format!("csrf={csrf}&code=123456")),
        ("/account/email", format!("csrf={csrf}&email=mallory%40example.test")),
    ];
    for (path, form) in &posts {
        let (status, headers, body) = web_support::http(url, "POST", path, Some(&session), Some(form));
        assert_eq!((status, header(&headers, "location")), (303, Some("/enroll".to_owned())), "POST {path}: {body}");
    }
    assert!(!mail_subjects(&b, url).await.iter().any(|s| s.contains("reset")), "nobody was reset");

    // Enrolling makes it a full session, under a new id.
    b.goto(&format!("{url}/enroll")).await;
    let secret = confirm_enrollment(&b).await;
    assert_eq!(b.path().await, "/account", "enrolled: the account page opens");
    assert!(b.text("#tf-status").await.contains("on"));
    let full = format!("tf_session={}", b.cookie("tf_session").await.unwrap().value());
    assert_ne!(full, session, "the session id is rotated when enrollment completes");
    assert_eq!(get(url, "/account", &session), (303, "/login".to_owned()), "the enrollment-only id is retired");
    b.goto(&format!("{url}/admin")).await;
    b.wait("#identity_check").await;
    assert_eq!(b.path().await, "/admin", "and now the administrator's page opens");
    sign_out(&b).await;
    sign_in(&b, url, "admin", &server.admin_password).await;
    assert_eq!(b.path().await, "/verify", "from now on the password alone is not enough");
    clear_of_step_edge().await;
    b.fill("#code", &totp(&secret, 0)).await;
    b.click_and_load("#verify").await;
    b.wait("#whoami").await;
    b.goto(&format!("{url}/admin")).await;
    b.wait("#identity_check").await;

    // Required 2FA cannot be turned off: the account page offers no way, the page says
    // why, and the engine refuses a forged form, even with a right code.
    b.goto(&format!("{url}/account")).await;
    b.wait("#tf-required").await;
    assert!(b.text("#tf-required").await.contains("required"));
    assert!(b.client.find(fantoccini::Locator::Css("#disable-link")).await.is_err(), "no way to turn it off");
    b.goto(&format!("{url}/account/two-factor/off")).await;
    b.wait("#tf-required").await;
    assert!(b.text("#tf-required").await.contains("cannot be turned off"), "the page says why");
    assert!(b.client.find(fantoccini::Locator::Css("#disable")).await.is_err(), "and offers no form");
    b.shot("12a-required-cannot-turn-off").await;
    let session = format!("tf_session={}", b.cookie("tf_session").await.unwrap().value());
    let csrf = b.find(r#"input[name="csrf"]"#).await.attr("value").await.unwrap().unwrap();
    clear_of_step_edge().await;
    let form = format!("csrf={csrf}&code={}", totp(&secret, 0));
    let (status, _, body) = web_support::http(url, "POST", "/account/two-factor/off", Some(&session), Some(&form));
    assert_eq!(status, 200);
    assert!(body.contains("cannot be turned off"), "the engine refuses: {body}");
    b.goto(&format!("{url}/account")).await;
    b.wait("#tf-status").await;
    assert!(b.text("#tf-status").await.contains("on"), "2FA stays on");
    b.client.clone().close().await.unwrap();
}

/// The subjects of every mail in the demo mailbox.
async fn mail_subjects(b: &Browser, url: &str) -> Vec<String> {
    b.goto(&format!("{url}/mailbox")).await;
    b.wait("h1").await;
    let mut subjects = Vec::new();
    for el in b.client.find_all(fantoccini::Locator::Css("article.mail .subject")).await.unwrap() {
        subjects.push(el.text().await.unwrap().to_lowercase());
    }
    subjects
}

/// The demo started with its default data directory (a temp dir of its own) under
/// `tmp` as the system temp dir.
fn web_in(tmp: &std::path::Path, addr: &str) -> std::process::Command {
    let mut command = std::process::Command::new(web_support::web_binary());
    command.env("TMPDIR", tmp).env("TWOFACTOR_WEB_ADDR", addr).env_remove("TWOFACTOR_WEB_DATA_DIR");
    command
}

#[test]
fn a_busy_port_is_named_and_no_exit_leaves_the_temp_folder_behind() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let tmp = web_support::TempDir::new("web-tmp");
    let left = || std::fs::read_dir(&tmp.0).unwrap().map(|e| e.unwrap().path()).collect::<Vec<_>>();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = web_in(&tmp.0, &addr).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let port = addr.rsplit(':').next().unwrap();
    assert!(stderr.contains(&format!("port {port} is in use")), "the busy port is named: {stderr}");
    assert!(stderr.contains("set TWOFACTOR_WEB_ADDR"), "and the setting to change: {stderr}");
    assert!(!stderr.contains("Os {"), "no debug dump: {stderr}");
    assert_eq!(left(), Vec::<std::path::PathBuf>::new(), "nothing written for a run that never started");

    // Ctrl-C (SIGINT) or SIGTERM: the run's temp folder, backup codes and all, is removed.
    for signal in ["-INT", "-TERM"] {
        let mut child = web_in(&tmp.0, "127.0.0.1:0").stdout(Stdio::piped()).spawn().unwrap();
        let mut data = None;
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if let Some(dir) = line.strip_prefix("data in ") {
                data = Some(std::path::PathBuf::from(dir));
            }
            if line.starts_with("listening on ") {
                break;
            }
        }
        let data = data.expect("the example prints its data directory");
        assert!(data.starts_with(&tmp.0) && data.join("twofactor.db").exists(), "{}", data.display());
        let killed = std::process::Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
        assert!(killed.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "the example did not stop on {signal}");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{signal} is a clean exit: {status}");
        assert!(!data.exists(), "{signal} removed {}", data.display());
        assert_eq!(left(), Vec::<std::path::PathBuf>::new());
    }
}

/// The demo's keys: `TWOFACTOR_KEYS` when it is set (nothing written), else a key file
/// beside the database, created with mode 0600; the console says which, never a key.
#[test]
fn keys_come_from_twofactor_keys_or_a_private_key_file_beside_the_database() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let web = |data: &std::path::Path, keys: Option<&str>| {
        let mut command = std::process::Command::new(web_support::web_binary());
        command.env("TWOFACTOR_WEB_ADDR", "127.0.0.1:0").env("TWOFACTOR_WEB_DATA_DIR", data);
        match keys {
            Some(keys) => command.env("TWOFACTOR_KEYS", keys),
            None => command.env_remove("TWOFACTOR_KEYS"),
        };
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        command
    };
    // The lines printed up to `listening on`; then the demo is stopped.
    let started = |mut command: std::process::Command| -> Vec<String> {
        let mut child = command.spawn().unwrap();
        let mut lines = Vec::new();
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            let listening = line.starts_with("listening on ");
            lines.push(line);
            if listening {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(lines.last().is_some_and(|l| l.starts_with("listening on ")), "{lines:?}");
        lines
    };

    // Unset: a fresh key file beside the database, private, and where it is.
    let data = web_support::TempDir::new("web-keys-file");
    let lines = started(web(&data.0, None));
    let file = data.0.join("twofactor.db.key");
    let said = format!("keys in {} (a new key, mode 0600", file.display());
    assert!(lines.iter().any(|l| l.starts_with(&said)), "{lines:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(twofactor::KeyRing::from_text(&text).unwrap().ids(), [1]);
    let material = text.trim().rsplit('.').next().unwrap().to_owned();
    assert!(lines.iter().all(|l| !l.contains(&material)), "the key was printed: {lines:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // Set: those keys (newest first, space-separated here), and no file.
    let data = web_support::TempDir::new("web-keys-env");
    let (new, old) = (twofactor::AppKey::generate(2).unwrap(), twofactor::AppKey::generate(1).unwrap());
    let keys = format!("{} {}", new.to_text().as_str(), old.to_text().as_str());
    let lines = started(web(&data.0, Some(&keys)));
    assert!(lines.iter().any(|l| l == "keys from TWOFACTOR_KEYS"), "{lines:?}");
    assert!(!data.0.join("twofactor.db.key").exists(), "no key file when the variable is set");
    for key in keys.split(' ') {
        let material = key.rsplit('.').next().unwrap();
        assert!(lines.iter().all(|l| !l.contains(material)), "a key was printed: {lines:?}");
    }

    // Set but not keys: the demo stops, naming the variable and not its value.
    let data = web_support::TempDir::new("web-keys-bad");
    let mut child = web(&data.0, Some("tfk1.1.not-a-real-key")).spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the demo started with a bad TWOFACTOR_KEYS");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("TWOFACTOR_KEYS") && !stderr.contains("not-a-real-key"), "{stderr}");
    assert!(!data.0.join("twofactor.db").exists(), "the keys are checked before the database is created");
}

/// A mail the outbox cannot take: the backup-code login still succeeds and says the
/// mail is delayed; once the outbox works again, the background worker delivers it
/// (`TWOFACTOR_WEB_MAIL_RETRY=1`: the first retry a second after the failure), and the
/// delivered code works.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_backup_code_mail_says_so_and_the_worker_delivers_it_later() {
    let server = Server::start_with(&[("TWOFACTOR_WEB_MAIL_RETRY", "1")]);
    let b = Browser::start().await;
    let url = server.url.as_str();
    let alice_pw = server.user_password.as_str();
    sign_in(&b, url, "alice", alice_pw).await;
    b.click_and_load("#enroll-link").await;
    b.wait("#secret").await;
    confirm_enrollment(&b).await;
    let setup_code = new_backup_code(&b, url, None, None).await;
    b.goto(&format!("{url}/account")).await;
    b.wait("#sign-out").await;
    sign_out(&b).await;

    // The outbox breaks: a folder of /proc takes no file, not even from root.
    let outbox = server.data.0.join("outbox");
    let kept = server.data.0.join("outbox-kept");
    std::fs::rename(&outbox, &kept).unwrap();
    std::os::unix::fs::symlink("/proc/self", &outbox).unwrap();

    sign_in(&b, url, "alice", alice_pw).await;
    assert_eq!(b.path().await, "/verify");
    b.click("#no-device-link").await;
    b.click("#use_backup").await;
    b.fill("#backup_code", &setup_code).await;
    b.click_and_load("#verify").await;
    b.wait("#whoami").await;
    assert_eq!(b.path().await, "/account", "the login does not depend on the mail");
    let notice = b.text(".msg.info").await;
    assert!(notice.contains("delayed; we keep trying"), "{notice}");
    b.shot("09c-backup-code-mail-delayed").await;

    // Fixed: the worker's next try delivers the code, once.
    std::fs::remove_file(&outbox).unwrap();
    std::fs::rename(&kept, &outbox).unwrap();
    let delayed = new_backup_code(&b, url, None, Some(&setup_code)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let count = std::fs::read_dir(&outbox)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with("-backup_code.rotated.eml"));
    assert_eq!(count.count(), 1, "the delayed mail was delivered once");
    b.goto(&format!("{url}/account")).await;
    b.wait("#sign-out").await;
    sign_out(&b).await;
    sign_in(&b, url, "alice", alice_pw).await;
    b.click("#no-device-link").await;
    b.click("#use_backup").await;
    b.fill("#backup_code", &delayed).await;
    b.click_and_load("#verify").await;
    b.wait("#whoami").await;
    assert_eq!(b.path().await, "/account", "the delayed code logs in");
    assert!(b.text(".msg.info").await.contains("We emailed you a new backup code"), "and the outbox works again");
    b.client.clone().close().await.unwrap();
}

// ---- Self-service: several authenticators, turning 2FA off, step-up, unlock ----

/// A code that is not `code`.
fn other_code(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

/// Waits until the demo mailbox holds a mail whose subject contains `needle` (mail is
/// sent by the worker, not by the request).
async fn wait_for_subject(b: &Browser, url: &str, needle: &str) {
    let deadline = Instant::now() + MAIL_WAIT;
    while !mail_subjects(b, url).await.iter().any(|s| s.contains(needle)) {
        assert!(Instant::now() < deadline, "no mail about {needle:?} in the demo mailbox");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The names in the account page's authenticators table, oldest first.
async fn authenticator_names(b: &Browser) -> Vec<String> {
    let mut names = Vec::new();
    for cell in b.client.find_all(fantoccini::Locator::Css("#authenticators td.label")).await.unwrap() {
        names.push(cell.text().await.unwrap());
    }
    names
}

/// How many elements match `css` on the page.
async fn count(b: &Browser, css: &str) -> usize {
    b.client.find_all(fantoccini::Locator::Css(css)).await.unwrap().len()
}

/// The base32 secret shown on an enrollment or add-authenticator page.
async fn shown_secret(b: &Browser) -> Vec<u8> {
    let shown: String = b.text("#secret").await.split_whitespace().collect();
    data_encoding::BASE32_NOPAD.decode(shown.as_bytes()).expect("the secret is base32")
}

/// Alice signs in (2FA off) and enrolls; returns her phone's secret, on the account page.
async fn alice_enrolled(b: &Browser, server: &Server) -> Vec<u8> {
    sign_in(b, &server.url, "alice", &server.user_password).await;
    b.click_and_load("#enroll-link").await;
    b.wait("#secret").await;
    confirm_enrollment(b).await
}

/// On the account page: adds an authenticator named `name`, confirmed with its
/// previous step's code (so its current one is unused); returns its secret.
async fn add_authenticator(b: &Browser, name: &str) -> Vec<u8> {
    b.fill("#authenticator_name", name).await;
    b.click_and_load("#add-authenticator").await;
    b.wait("#secret").await;
    let secret = shown_secret(b).await;
    clear_of_step_edge().await;
    b.fill("#code", &totp(&secret, 1)).await;
    b.click_and_load("#confirm-authenticator").await;
    b.wait("#whoami").await;
    secret
}

/// The session cookie pair and the CSRF token of the page the browser shows.
async fn session_and_csrf(b: &Browser) -> (String, String) {
    let session = format!("tf_session={}", b.cookie("tf_session").await.expect("a session").value());
    let csrf = b.find(r#"input[name="csrf"]"#).await.attr("value").await.unwrap().expect("a CSRF token");
    (session, csrf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_authenticator_is_added_with_its_qr_code_and_its_codes_sign_in() {
    let server = Server::start();
    let b = Browser::start().await;
    let url = server.url.as_str();
    let phone = alice_enrolled(&b, &server).await;

    // One authenticator: listed, with why it cannot be removed, and no Remove button.
    assert_eq!(authenticator_names(&b).await, ["Authenticator app"]);
    assert!(b.text("#last-authenticator").await.contains("cannot be removed"), "the page says why");
    assert_eq!(count(&b, "#authenticators button.remove").await, 0);
    b.shot("13-authenticators-one").await;

    // A name, then a page with the QR code and the secret.
    b.fill("#authenticator_name", "Tablet").await;
    b.click_and_load("#add-authenticator").await;
    b.wait("#secret").await;
    assert_eq!(b.path().await, "/account/authenticators/new");
    assert_eq!(b.text("#adding-name").await, "Tablet");
    assert!(b.displayed("#qr svg").await, "the QR code is an inline SVG");
    let tablet = shown_secret(&b).await;
    assert_ne!(tablet, phone, "a secret of its own");
    b.shot("14-add-authenticator").await;

    // A wrong code says so and keeps the same secret on screen; the right one adds it.
    clear_of_step_edge().await;
    b.fill("#code", &other_code(&totp(&tablet, 1))).await;
    b.click_and_load("#confirm-authenticator").await;
    b.wait(".msg.error").await;
    assert!(b.text(".msg.error").await.contains("not right"), "a wrong code is refused");
    assert_eq!(shown_secret(&b).await, tablet, "the same authenticator is still being added");
    b.goto(&format!("{url}/account/authenticators/new")).await;
    assert_eq!(shown_secret(&b).await, tablet, "a reload shows the same secret");
    clear_of_step_edge().await;
    b.fill("#code", &totp(&tablet, 1)).await;
    b.click_and_load("#confirm-authenticator").await;
    b.wait("#whoami").await;
    assert_eq!(b.path().await, "/account");
    let notice = b.text(".msg.info").await;
    assert!(notice.contains("“Tablet” was added") && notice.contains("We emailed you a notice"), "{notice}");
    assert_eq!(authenticator_names(&b).await, ["Authenticator app", "Tablet"]);
    assert_eq!(count(&b, "#authenticators button.remove").await, 2, "each can be removed now");
    assert!(b.client.find(fantoccini::Locator::Css("#last-authenticator")).await.is_err());
    b.shot("15-two-authenticators").await;
    wait_for_subject(&b, url, "an authenticator was added").await;

    // The tablet's code signs in.
    b.goto(&format!("{url}/account")).await;
    b.wait("#sign-out").await;
    sign_out(&b).await;
    sign_in(&b, url, "alice", &server.user_password).await;
    assert_eq!(b.path().await, "/verify");
    clear_of_step_edge().await;
    b.fill("#code", &totp(&tablet, 0)).await;
    b.click_and_load("#verify").await;
    b.wait("#whoami").await;
    assert_eq!(b.path().await, "/account", "a code from the added authenticator signs in");
    b.client.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_an_authenticator_takes_a_code_from_another_one_and_the_last_one_stays() {
    let server = Server::start();
    let b = Browser::start().await;
    let url = server.url.as_str();
    let phone = alice_enrolled(&b, &server).await;
    let tablet = add_authenticator(&b, "Tablet").await;
    assert_eq!(authenticator_names(&b).await, ["Authenticator app", "Tablet"]);
    let tablet_id = b
        .find("#authenticators tr:nth-child(3) input[name=id]")
        .await
        .attr("value")
        .await
        .unwrap()
        .expect("the tablet's id");

    // The phone's Remove button asks for a code from another authenticator.
    b.click_and_load("#authenticators tr:nth-child(2) button.remove").await;
    b.wait("#removing").await;
    assert_eq!(b.path().await, "/account/authenticators/remove");
    assert_eq!(b.text("#removing").await, "Authenticator app");
    b.shot("16-remove-authenticator").await;
    clear_of_step_edge().await;
    b.fill("#code", &totp(&phone, 0)).await;
    b.click_and_load("#remove").await;
    b.wait(".msg.error").await;
    assert!(b.text(".msg.error").await.contains("another authenticator"), "the phone's own code is refused");
    assert_eq!(b.text("#removing").await, "Authenticator app", "still on the remove page");
    clear_of_step_edge().await;
    b.fill("#code", &totp(&tablet, 0)).await;
    b.click_and_load("#remove").await;
    b.wait("#whoami").await;
    assert_eq!(b.path().await, "/account");
    assert!(b.text(".msg.info").await.contains("“Authenticator app” was removed"));
    assert_eq!(authenticator_names(&b).await, ["Tablet"]);

    // The last one stays, and both the account page and its remove page say why.
    assert!(b.text("#last-authenticator").await.contains("cannot be removed"));
    assert_eq!(count(&b, "#authenticators button.remove").await, 0);
    b.goto(&format!("{url}/account/authenticators/remove?id={tablet_id}")).await;
    b.wait("#removing").await;
    assert_eq!(b.text("#removing").await, "Tablet");
    assert!(b.text("#last-authenticator").await.contains("only authenticator"), "the remove page says why");
    assert!(b.client.find(fantoccini::Locator::Css("#remove")).await.is_err(), "and offers no form");
    b.shot("17-last-authenticator").await;
    // Not even a forged form removes it.
    let (session, csrf) = session_and_csrf(&b).await;
    let form = format!("csrf={csrf}&id={tablet_id}&code={}", totp(&tablet, 0));
    let (status, _, body) =
        web_support::http(url, "POST", "/account/authenticators/remove", Some(&session), Some(&form));
    assert_eq!(status, 200);
    assert!(body.contains("only authenticator"), "the engine refuses the last one: {body}");
    wait_for_subject(&b, url, "an authenticator was removed").await;

    // The removed phone's codes no longer sign in.
    b.goto(&format!("{url}/account")).await;
    b.wait("#sign-out").await;
    assert_eq!(authenticator_names(&b).await, ["Tablet"]);
    sign_out(&b).await;
    sign_in(&b, url, "alice", &server.user_password).await;
    clear_of_step_edge().await;
    b.fill("#code", &totp(&phone, 0)).await;
    b.click_and_load("#verify").await;
    b.wait(".msg.error").await;
    assert!(b.text(".msg.error").await.contains("not right"), "the removed phone's code is refused");
    b.client.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_two_factor_off_takes_a_fresh_code_then_the_password_alone_signs_in() {
    let server = Server::start();
    let b = Browser::start().await;
    let url = server.url.as_str();
    let phone = alice_enrolled(&b, &server).await;
    b.click_and_load("#disable-link").await;
    b.wait("#disable").await;
    assert_eq!(b.path().await, "/account/two-factor/off");
    b.shot("18-turn-off").await;
    clear_of_step_edge().await;
    b.fill("#code", &other_code(&totp(&phone, 0))).await;
    b.click_and_load("#disable").await;
    b.wait(".msg.error").await;
    assert!(b.text(".msg.error").await.contains("not right"), "a wrong code is refused");
    clear_of_step_edge().await;
    b.fill("#code", &totp(&phone, 0)).await;
    b.click_and_load("#disable").await;
    b.wait("#whoami").await;
    assert_eq!(b.path().await, "/account");
    assert!(b.text("#tf-status").await.contains("off"), "2FA is off");
    assert!(b.text(".msg.info").await.contains("password alone signs you in"));
    assert!(b.displayed("#enroll-link").await, "and can be set up again");
    wait_for_subject(&b, url, "two-factor authentication was turned off").await;
    b.goto(&format!("{url}/account")).await;
    b.wait("#sign-out").await;
    sign_out(&b).await;
    sign_in(&b, url, "alice", &server.user_password).await;
    assert_eq!(b.path().await, "/account", "the password alone signs in");
    b.client.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_email_needs_a_fresh_step_up() {
    let server = Server::start();
    let b = Browser::start().await;
    let url = server.url.as_str();
    let alice_pw = server.user_password.as_str();

    // Without 2FA the step-up asks for the password.
    sign_in(&b, url, "alice", alice_pw).await;
    assert_eq!(b.text("#email").await, ALICE_EMAIL);
    b.click_and_load("#email-link").await;
    b.wait("#step-up").await;
    assert_eq!(b.path().await, "/account/email");
    assert!(b.client.find(fantoccini::Locator::Css("input#email")).await.is_err(), "no email field yet");
    b.fill("#password", "not-her-password").await;
    b.click_and_load("#step-up").await;
    b.wait(".msg.error").await;
    assert!(b.text(".msg.error").await.contains("not right"));
    b.fill("#password", alice_pw).await;
    b.click_and_load("#step-up").await;
    b.wait("input#email").await;
    b.fill("input#email", "alice.new@example.test").await;
    b.click_and_load("#change-email").await;
    b.wait("#whoami").await;
    assert_eq!(b.text("#email").await, "alice.new@example.test");
    assert!(b.text(".msg.info").await.contains("Your email address is now alice.new@example.test"));

    // The engine reads the address at every call: the setup mail goes to the new one.
    b.click_and_load("#enroll-link").await;
    b.wait("#secret").await;
    let phone = confirm_enrollment(&b).await;
    b.goto(&format!("{url}/mailbox")).await;
    b.wait("h1").await;
    let deadline = Instant::now() + MAIL_WAIT;
    let setup_code = loop {
        let to_new = b
            .client
            .find_all(fantoccini::Locator::Css(r#"article.mail[data-to="alice.new@example.test"] pre.body"#))
            .await
            .unwrap();
        if let Some(mail) = to_new.first() {
            break backup_code_in(&mail.text().await.unwrap()).expect("the setup mail's backup code");
        }
        assert!(Instant::now() < deadline, "no mail to the new address");
        tokio::time::sleep(Duration::from_millis(200)).await;
        b.goto(&format!("{url}/mailbox")).await;
    };

    // A new session (signed in with the backup code, so the phone's current code is
    // unused) must step up again, with a code now.
    b.goto(&format!("{url}/account")).await;
    b.wait("#sign-out").await;
    sign_out(&b).await;
    sign_in(&b, url, "alice", alice_pw).await;
    b.click("#no-device-link").await;
    b.click("#use_backup").await;
    b.fill("#backup_code", &setup_code).await;
    b.click_and_load("#verify").await;
    b.wait("#whoami").await;
    b.click_and_load("#email-link").await;
    b.wait("#step-up").await;
    assert!(b.displayed("#code").await, "with 2FA on, the step-up asks for a code");
    assert!(b.text("#step-up-help").await.contains("sensitive"));
    b.shot("19-step-up").await;

    // Without a fresh step-up, a forged change is refused.
    let (session, csrf) = session_and_csrf(&b).await;
    let form = format!("csrf={csrf}&email=mallory%40example.test");
    let (status, _, body) = web_support::http(url, "POST", "/account/email", Some(&session), Some(&form));
    assert_eq!(status, 200);
    assert!(body.contains("Please confirm it") && !body.contains("mallory"), "refused: {body}");

    // A wrong code is refused; the right one opens the form, and the change happens.
    clear_of_step_edge().await;
    b.fill("#code", &other_code(&totp(&phone, 0))).await;
    b.click_and_load("#step-up").await;
    b.wait(".msg.error").await;
    assert!(b.text(".msg.error").await.contains("not right"), "a wrong code is refused");
    assert!(b.client.find(fantoccini::Locator::Css("input#email")).await.is_err(), "and opens nothing");
    clear_of_step_edge().await;
    b.fill("#code", &totp(&phone, 0)).await;
    b.click_and_load("#step-up").await;
    b.wait("input#email").await;
    assert_eq!(b.path().await, "/account/email");
    b.shot("20-change-email").await;
    let (session, csrf) = session_and_csrf(&b).await;
    let form = format!("csrf={csrf}&email=not-an-address");
    let (_, _, body) = web_support::http(url, "POST", "/account/email", Some(&session), Some(&form));
    assert!(body.contains("does not look like an email address"), "{body}");
    b.fill("input#email", "alice.other@example.test").await;
    b.click_and_load("#change-email").await;
    b.wait("#whoami").await;
    assert_eq!(b.text("#email").await, "alice.other@example.test", "the change happened");
    b.client.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_unlocks_a_user_paused_by_wrong_codes_who_then_signs_in() {
    let server = Server::start();
    let b = Browser::start().await;
    let url = server.url.as_str();
    let alice_pw = server.user_password.as_str();
    let phone = alice_enrolled(&b, &server).await;
    sign_out(&b).await;

    // Nothing to unlock yet; nobody unlocks themselves.
    sign_in(&b, url, "admin", &server.admin_password).await;
    b.goto(&format!("{url}/admin")).await;
    b.wait("#unlock").await;
    b.fill("#unlock_username", "alice").await;
    b.fill("#reason", "She asked").await;
    b.click_and_load("#unlock").await;
    b.wait(".msg.info").await;
    assert!(b.text(".msg.info").await.contains("neither paused nor locked"), "NotLocked is shown");
    b.fill("#unlock_username", "admin").await;
    b.fill("#reason", "It is me").await;
    b.click_and_load("#unlock").await;
    b.wait(".msg.error").await;
    assert!(b.text(".msg.error").await.starts_with("Not allowed"), "NotAllowed is shown");
    sign_out(&b).await;

    // Wrong codes until sign-in pauses; then even her right password is refused.
    sign_in(&b, url, "alice", alice_pw).await;
    let wrong = other_code(&totp(&phone, 0));
    for _ in 0..7 {
        if b.path().await != "/verify" {
            break;
        }
        b.fill("#code", &wrong).await;
        b.click_and_load("#verify").await;
    }
    assert_eq!(b.path().await, "/login", "sent back to sign in");
    assert!(b.text(".msg.info").await.contains("Too many wrong codes"));
    sign_in(&b, url, "alice", alice_pw).await;
    assert_eq!(b.path().await, "/login", "paused: the right password does not get through");

    // The administrator unlocks her, saying why; she is told by mail.
    sign_in(&b, url, "admin", &server.admin_password).await;
    b.goto(&format!("{url}/admin")).await;
    b.wait("#unlock").await;
    b.fill("#unlock_username", "alice").await;
    b.fill("#reason", "She called from the number on file").await;
    b.click_and_load("#unlock").await;
    b.wait(".msg.ok").await;
    let said = b.text(".msg.ok").await;
    assert!(said.contains("was unlocked") && said.contains("the notice was sent"), "{said}");
    b.shot("21-admin-unlock").await;
    assert!(mail_subjects(&b, url).await.iter().any(|s| s.contains("sign-in was unlocked")));
    b.goto(&format!("{url}/account")).await;
    b.wait("#sign-out").await;
    sign_out(&b).await;

    // Her 2FA is as it was: password, then her code.
    sign_in(&b, url, "alice", alice_pw).await;
    assert_eq!(b.path().await, "/verify", "unlocked, and still asked for her code");
    clear_of_step_edge().await;
    b.fill("#code", &totp(&phone, 0)).await;
    b.click_and_load("#verify").await;
    b.wait("#whoami").await;
    assert_eq!(b.path().await, "/account");
    b.client.clone().close().await.unwrap();
}
