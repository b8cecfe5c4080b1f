//! What the engine enforces: [`Policy`] and its parts, with safe defaults and presets.
//!
//! Anything that weakens security is reachable only through a builder method whose
//! name starts with `danger_`, so a reviewer sees it.

use std::time::Duration;

use crate::error::InputError;
use crate::factors::totp::{TotpParams, Window};
use crate::outbox::DeliveryPolicy;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HashParams {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl HashParams {
    /// Parameters as given: memory in KiB, passes, lanes (the policy builder checks
    /// them against its floor).
    pub const fn new(m_cost: u32, t_cost: u32, p_cost: u32) -> HashParams {
        HashParams { m_cost, t_cost, p_cost }
    }

    /// OWASP's Argon2id recommendation: 19 MiB, 2 iterations, 1 lane.
    pub const OWASP: HashParams = HashParams { m_cost: 19_456, t_cost: 2, p_cost: 1 };
    /// Light parameters for high-entropy backup codes (the code, not the hash, carries
    /// the strength): 2 MiB, 1 iteration, 1 lane.
    pub const BACKUP_CODE: HashParams = HashParams { m_cost: 2_048, t_cost: 1, p_cost: 1 };
    /// The cheapest parameters Argon2 allows. Only for tests; see
    /// [`PolicyBuilder::danger_fast_hashing`].
    pub const MINIMAL: HashParams = HashParams { m_cost: 8, t_cost: 1, p_cost: 1 };

    /// Whether `self` is weaker than `other` in any dimension (a stored hash with
    /// weaker parameters is re-hashed at the next successful login).
    pub fn weaker_than(&self, other: &HashParams) -> bool {
        self.m_cost < other.m_cost || self.t_cost < other.t_cost || self.p_cost < other.p_cost
    }
}

/// Password rules (NIST SP 800-63B): a minimum length, a generous maximum, no
/// composition rules, no truncation. Lengths count Unicode characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PasswordPolicy {
    /// At least this many characters (default 8).
    pub min_chars: usize,
    /// At most this many characters (default 256; at least 64 is always accepted).
    pub max_chars: usize,
    /// Hash cost for new and re-hashed passwords.
    pub hash: HashParams,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy { min_chars: 8, max_chars: 256, hash: HashParams::OWASP }
    }
}

/// Backup-code rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupCodePolicy {
    /// How many codes an account holds (default 1, as in the seed).
    pub count: u8,
    /// How long an issued code works; `None` means until used (the seed's default).
    pub lifetime: Option<Duration>,
    /// Hash cost for stored codes.
    pub hash: HashParams,
}

impl Default for BackupCodePolicy {
    fn default() -> Self {
        BackupCodePolicy { count: 1, lifetime: None, hash: HashParams::BACKUP_CODE }
    }
}

/// The shared failure budget (NIST SP 800-63B rate limiting).
///
/// The first `free_failures - 1` consecutive failures cost nothing. The
/// `free_failures`-th throttles the account for `base_delay`, each further one doubles
/// the delay up to `max_delay`. While throttled, attempts are refused unevaluated. At
/// `disable_after` consecutive failures the second factor is locked until an
/// administrator resets it. A successful login clears the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThrottlePolicy {
    /// Failures before throttling starts (default 5).
    pub free_failures: u32,
    /// The first delay (default 60 s).
    pub base_delay: Duration,
    /// The largest delay (default 1 h).
    pub max_delay: Duration,
    /// Consecutive second-factor failures (wrong TOTP or backup codes after a right
    /// password) after which the second factor is locked until an administrator
    /// reset (default and maximum 100). Wrong passwords never count towards it.
    pub disable_after: u32,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        ThrottlePolicy {
            free_failures: 5,
            base_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(3600),
            disable_after: 100,
        }
    }
}

impl ThrottlePolicy {
    /// The delay after `failures` consecutive failures, if any.
    pub fn delay_after(&self, failures: u32) -> Option<Duration> {
        let over = failures.checked_sub(self.free_failures)?;
        let factor = 1u32.checked_shl(over.min(31)).unwrap_or(u32::MAX);
        Some(self.base_delay.saturating_mul(factor).min(self.max_delay))
    }

    /// The most second-factor guesses (TOTP or backup codes, entered after a right
    /// password) an attacker can have evaluated against one account before its second
    /// factor locks: `disable_after`. Wrong passwords do not count towards it: they
    /// throttle (see [`password_guess_bound`](Self::password_guess_bound)) but never
    /// lock, so guessing passwords cannot lock the owner out.
    pub fn guess_bound(&self) -> u32 {
        self.disable_after
    }

    /// The most guesses (of any kind) evaluated against one account within `period`,
    /// starting from a clean budget: the `free_failures` at once, then one per throttle
    /// window, the windows doubling from `base_delay` up to `max_delay`. With the
    /// defaults: 5 at once, 10 within the first hour, 33 within a day, then 24 a day.
    ///
    /// ```
    /// use std::time::Duration;
    /// use twofactor::ThrottlePolicy;
    /// let p = ThrottlePolicy::default();
    /// assert_eq!(p.password_guess_bound(Duration::ZERO), 5);
    /// assert_eq!(p.password_guess_bound(Duration::from_secs(3600)), 10);
    /// assert_eq!(p.password_guess_bound(Duration::from_secs(86_400)), 33);
    /// ```
    pub fn password_guess_bound(&self, period: Duration) -> u64 {
        let mut guesses = u64::from(self.free_failures);
        let mut elapsed = Duration::ZERO;
        let mut failures = self.free_failures;
        while let Some(delay) = self.delay_after(failures) {
            if delay.is_zero() {
                return u64::MAX;
            }
            elapsed = elapsed.saturating_add(delay);
            if elapsed > period {
                break;
            }
            guesses += 1;
            failures = failures.saturating_add(1);
        }
        guesses
    }
}

/// Remembered-location rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocationPolicy {
    /// How long a remembered location skips the code (default 30 days).
    pub lifetime: Duration,
    /// How many an account keeps; the oldest is evicted first (default 10).
    pub max_per_account: usize,
    /// Mail the user after a login from a location that was not remembered.
    pub notify_new_location: bool,
}

impl Default for LocationPolicy {
    fn default() -> Self {
        LocationPolicy { lifetime: Duration::from_secs(30 * 86_400), max_per_account: 10, notify_new_location: false }
    }
}

/// Everything the engine enforces.
///
/// ```
/// use twofactor::Policy;
/// let policy = Policy::builder().issuer("Example Co").require_two_factor(true).build()?;
/// assert!(policy.requires_two_factor());
/// assert_eq!(policy.issuer(), "Example Co");
/// # Ok::<(), twofactor::InputError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub(crate) issuer: String,
    pub(crate) require_two_factor: bool,
    pub(crate) password: PasswordPolicy,
    pub(crate) backup: BackupCodePolicy,
    pub(crate) totp: TotpParams,
    pub(crate) window: Window,
    pub(crate) pending_lifetime: Duration,
    pub(crate) max_code_attempts: u32,
    pub(crate) throttle: ThrottlePolicy,
    pub(crate) locations: LocationPolicy,
    pub(crate) min_imported_secret_bytes: usize,
    pub(crate) delivery: DeliveryPolicy,
}

impl Default for Policy {
    /// The seed's behaviour: 2FA optional per account, one emailed backup code with no
    /// expiry, SHA-1/6 digits/30 s codes with one step of clock drift, OWASP Argon2id.
    fn default() -> Self {
        Policy {
            issuer: "twofactor".to_owned(),
            require_two_factor: false,
            password: PasswordPolicy::default(),
            backup: BackupCodePolicy::default(),
            totp: TotpParams::default(),
            window: Window::default(),
            pending_lifetime: Duration::from_secs(300),
            max_code_attempts: 5,
            throttle: ThrottlePolicy::default(),
            locations: LocationPolicy::default(),
            min_imported_secret_bytes: 16,
            delivery: DeliveryPolicy::default(),
        }
    }
}

impl Policy {
    /// Starts from [`Policy::default`].
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder { policy: Policy::default(), danger_fast: false, danger_wide: false, danger_throttle: false }
    }

    /// NIST SP 800-63B-4 AAL2: 2FA required for every account; an emailed backup code
    /// (an "issued recovery code") works for 24 hours; new-location logins are mailed.
    ///
    /// Session limits are the application's: AAL2 asks for reauthentication at least
    /// every 24 hours and after 1 hour of inactivity, and remembered locations here last
    /// 24 hours so that a remembered device does not outlive that.
    pub fn nist_aal2() -> Policy {
        let mut p = Policy { require_two_factor: true, ..Policy::default() };
        p.backup.lifetime = Some(Duration::from_secs(24 * 3600));
        p.locations.lifetime = Duration::from_secs(24 * 3600);
        p.locations.notify_new_location = true;
        p
    }

    /// Whether every account must have 2FA.
    pub fn requires_two_factor(&self) -> bool {
        self.require_two_factor
    }

    /// The product name: the issuer authenticator apps show, and the name the default
    /// mail templates use ([`DefaultRenderer::for_policy`](crate::mail::DefaultRenderer::for_policy)).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Password rules.
    pub fn password(&self) -> &PasswordPolicy {
        &self.password
    }

    /// Backup-code rules.
    pub fn backup_codes(&self) -> &BackupCodePolicy {
        &self.backup
    }

    /// TOTP parameters for new enrollments.
    pub fn totp(&self) -> &TotpParams {
        &self.totp
    }

    /// Accepted clock drift, in steps.
    pub fn window(&self) -> Window {
        self.window
    }

    /// How long a pending login lives.
    pub fn pending_lifetime(&self) -> Duration {
        self.pending_lifetime
    }

    /// Wrong codes a single pending login allows.
    pub fn max_code_attempts(&self) -> u32 {
        self.max_code_attempts
    }

    /// The shared failure budget.
    pub fn throttle(&self) -> &ThrottlePolicy {
        &self.throttle
    }

    /// Remembered-location rules.
    pub fn locations(&self) -> &LocationPolicy {
        &self.locations
    }

    /// The shortest TOTP secret [`Engine::import_enrollment`](crate::Engine::import_enrollment)
    /// accepts, in bytes (16 = 128 bits unless
    /// [`danger_short_imported_secrets`](PolicyBuilder::danger_short_imported_secrets)).
    pub fn min_imported_secret_bytes(&self) -> usize {
        self.min_imported_secret_bytes
    }

    /// How queued mail is retried.
    pub fn delivery(&self) -> &DeliveryPolicy {
        &self.delivery
    }
}

/// Builds a [`Policy`], checking every bound.
#[derive(Debug, Clone)]
pub struct PolicyBuilder {
    policy: Policy,
    danger_fast: bool,
    danger_wide: bool,
    danger_throttle: bool,
}

impl PolicyBuilder {
    /// The product name (no ':' allowed, at most 64 characters; default `twofactor`):
    /// the issuer authenticator apps show, and, through
    /// [`DefaultRenderer::for_policy`](crate::mail::DefaultRenderer::for_policy), the
    /// name every mail uses. Set it here, once.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.policy.issuer = issuer.into();
        self
    }

    /// Require 2FA for every account (login answers `EnrollmentRequired` until set up).
    pub fn require_two_factor(mut self, yes: bool) -> Self {
        self.policy.require_two_factor = yes;
        self
    }

    /// Minimum password length in characters (8 or more).
    pub fn min_password_chars(mut self, n: usize) -> Self {
        self.policy.password.min_chars = n;
        self
    }

    /// Argon2id parameters for passwords (at least OWASP's, unless
    /// [`danger_fast_hashing`](Self::danger_fast_hashing)).
    pub fn password_hash(mut self, params: HashParams) -> Self {
        self.policy.password.hash = params;
        self
    }

    /// How many backup codes an account holds (1 to 16).
    pub fn backup_code_count(mut self, n: u8) -> Self {
        self.policy.backup.count = n;
        self
    }

    /// Limit an issued backup code's life.
    pub fn backup_code_lifetime(mut self, d: Option<Duration>) -> Self {
        self.policy.backup.lifetime = d;
        self
    }

    /// TOTP parameters for new enrollments (SHA-256/512 and 8 digits are opt-in here).
    pub fn totp(mut self, params: TotpParams) -> Self {
        self.policy.totp = params;
        self
    }

    /// Accepted clock drift: at most one step back and one ahead. Wider windows need
    /// [`danger_wide_window`](Self::danger_wide_window).
    pub fn window(mut self, window: Window) -> Self {
        self.policy.window = window;
        self
    }

    /// **Weakens security**: accept codes from up to `Window::MAX` steps away.
    pub fn danger_wide_window(mut self, window: Window) -> Self {
        self.policy.window = window;
        self.danger_wide = true;
        self
    }

    /// How long a pending login lives (30 s to 30 min).
    pub fn pending_lifetime(mut self, d: Duration) -> Self {
        self.policy.pending_lifetime = d;
        self
    }

    /// Wrong codes a pending login allows (1 to 10).
    pub fn max_code_attempts(mut self, n: u32) -> Self {
        self.policy.max_code_attempts = n;
        self
    }

    /// The shared failure budget (`free_failures` at most 10, `disable_after` at most
    /// 100).
    pub fn throttle(mut self, t: ThrottlePolicy) -> Self {
        self.policy.throttle = t;
        self
    }

    /// **Weakens security**: a budget with more than 10 free failures before
    /// throttling starts (up to `disable_after`). Test suites that race many requests
    /// on one account use it so throttling does not pre-empt the race.
    pub fn danger_relaxed_throttle(mut self, t: ThrottlePolicy) -> Self {
        self.policy.throttle = t;
        self.danger_throttle = true;
        self
    }

    /// Remembered-location rules.
    pub fn locations(mut self, l: LocationPolicy) -> Self {
        self.policy.locations = l;
        self
    }

    /// **Weakens security**: accept imported TOTP secrets down to 80 bits (RFC 4226's
    /// minimum) instead of 128, for migrating authenticators provisioned elsewhere.
    pub fn danger_short_imported_secrets(mut self) -> Self {
        self.policy.min_imported_secret_bytes = 10;
        self
    }

    /// **Weakens security; tests only**: the cheapest Argon2 parameters for passwords
    /// and backup codes, so a test suite runs fast. Never use in production.
    pub fn danger_fast_hashing(mut self) -> Self {
        self.policy.password.hash = HashParams::MINIMAL;
        self.policy.backup.hash = HashParams::MINIMAL;
        self.danger_fast = true;
        self
    }

    /// How queued mail is retried (see [`DeliveryPolicy`]).
    pub fn delivery(mut self, d: DeliveryPolicy) -> Self {
        self.policy.delivery = d;
        self
    }

    /// Checks the bounds and returns the policy.
    ///
    /// # Errors
    /// [`InputError`] naming the first setting out of bounds.
    pub fn build(self) -> Result<Policy, InputError> {
        let p = self.policy.clone();
        let bad = |field, reason| Err(InputError::Malformed { field, reason });
        crate::error::check_len("issuer", &p.issuer, 64)?;
        if p.issuer.is_empty() || p.issuer.contains(':') || p.issuer.chars().any(char::is_control) {
            return bad("issuer", "must be non-empty, without ':' or control characters");
        }
        if p.password.min_chars < 8 {
            return bad("min_password_chars", "NIST SP 800-63B requires at least 8");
        }
        if p.password.min_chars > 64 {
            return bad("min_password_chars", "must accept passphrases of 64 characters");
        }
        if !self.danger_fast
            && (p.password.hash.weaker_than(&HashParams::OWASP) || p.backup.hash.weaker_than(&HashParams::BACKUP_CODE))
        {
            return bad("password_hash", "weaker than OWASP's Argon2id parameters");
        }
        if p.backup.count == 0 || p.backup.count > 16 {
            return bad("backup_code_count", "must be 1 to 16");
        }
        if p.window.back > Window::MAX || p.window.ahead > Window::MAX {
            return bad("window", "at most Window::MAX steps either way");
        }
        if !self.danger_wide && (p.window.back > 1 || p.window.ahead > 1) {
            return bad("window", "more than one step needs danger_wide_window");
        }
        let secs = p.pending_lifetime.as_secs();
        if !(30..=1800).contains(&secs) {
            return bad("pending_lifetime", "must be 30 s to 30 min");
        }
        if !(1..=10).contains(&p.max_code_attempts) {
            return bad("max_code_attempts", "must be 1 to 10");
        }
        let t = p.throttle;
        if t.free_failures > 10 && !self.danger_throttle {
            return bad("throttle", "more than 10 free failures needs danger_relaxed_throttle");
        }
        if t.free_failures == 0 || t.disable_after > 100 || t.disable_after < t.free_failures {
            return bad("throttle", "need 1 <= free_failures <= disable_after <= 100");
        }
        // Throttle times are whole seconds: a sub-second delay would throttle nothing.
        if t.base_delay < Duration::from_secs(1) || t.max_delay < t.base_delay {
            return bad("throttle", "need 1 s <= base_delay <= max_delay");
        }
        if p.locations.max_per_account == 0 || p.locations.max_per_account > 100 {
            return bad("locations", "max_per_account must be 1 to 100");
        }
        if p.locations.lifetime.is_zero() {
            return bad("locations", "lifetime must be positive");
        }
        let d = p.delivery;
        if !(1..=100).contains(&d.max_attempts) {
            return bad("delivery", "max_attempts must be 1 to 100");
        }
        // Due times are whole seconds, as throttle times are.
        if d.first_retry < Duration::from_secs(1) || d.max_retry < d.first_retry {
            return bad("delivery", "need 1 s <= first_retry <= max_retry");
        }
        if d.lease < Duration::from_secs(1) {
            return bad("delivery", "lease must be at least 1 s");
        }
        Ok(p)
    }
}

setters!(HashParams { m_cost: u32, t_cost: u32, p_cost: u32 });
setters!(PasswordPolicy { min_chars: usize, max_chars: usize, hash: HashParams });
setters!(BackupCodePolicy { count: u8, lifetime: Option<Duration>, hash: HashParams });
setters!(ThrottlePolicy { free_failures: u32, base_delay: Duration, max_delay: Duration, disable_after: u32 });
setters!(LocationPolicy { lifetime: Duration, max_per_account: usize, notify_new_location: bool });

#[cfg(test)]
mod tests {
    use super::*;

    /// The field a builder is refused for, or `None` when it builds.
    fn refused(builder: PolicyBuilder) -> Option<&'static str> {
        match builder.build() {
            Ok(_) => None,
            Err(InputError::Malformed { field, .. } | InputError::TooLong { field, .. }) => Some(field),
            Err(_) => Some("another error"),
        }
    }

    fn fast() -> PolicyBuilder {
        Policy::builder().danger_fast_hashing()
    }

    #[test]
    fn every_bound_takes_its_edge_and_refuses_one_past_it() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        let t = ThrottlePolicy::default();
        let l = LocationPolicy::default();
        let d = DeliveryPolicy::default();
        let w = Window::default();
        let cases = [
            (fast().issuer("x".repeat(64)), fast().issuer("x".repeat(65)), "issuer"),
            (fast().issuer("Acme"), fast().issuer(""), "issuer"),
            (fast().issuer("Acme"), fast().issuer("Acme:Corp"), "issuer"),
            (fast().issuer("Acme"), fast().issuer("Acme\n"), "issuer"),
            (fast().min_password_chars(8), fast().min_password_chars(7), "min_password_chars"),
            (fast().min_password_chars(64), fast().min_password_chars(65), "min_password_chars"),
            (Policy::builder(), Policy::builder().password_hash(HashParams::OWASP.m_cost(19_455)), "password_hash"),
            (Policy::builder(), Policy::builder().password_hash(HashParams::OWASP.t_cost(1)), "password_hash"),
            (fast().password_hash(HashParams::OWASP.p_cost(2)), fast().backup_code_count(0), "backup_code_count"),
            (fast().backup_code_count(16), fast().backup_code_count(17), "backup_code_count"),
            (fast().window(w.back(1).ahead(1)), fast().window(w.back(2)), "window"),
            (fast().window(w.back(1).ahead(1)), fast().window(w.ahead(2)), "window"),
            (fast().danger_wide_window(w.back(10)), fast().danger_wide_window(w.back(11)), "window"),
            (fast().danger_wide_window(w.ahead(10)), fast().danger_wide_window(w.ahead(11)), "window"),
            (fast().pending_lifetime(s(30)), fast().pending_lifetime(s(29)), "pending_lifetime"),
            (fast().pending_lifetime(s(1800)), fast().pending_lifetime(s(1801)), "pending_lifetime"),
            (fast().max_code_attempts(1), fast().max_code_attempts(0), "max_code_attempts"),
            (fast().max_code_attempts(10), fast().max_code_attempts(11), "max_code_attempts"),
            (fast().throttle(t.free_failures(10)), fast().throttle(t.free_failures(11)), "throttle"),
            (fast().danger_relaxed_throttle(t.free_failures(11)), fast().throttle(t.free_failures(0)), "throttle"),
            (fast().throttle(t.disable_after(100)), fast().throttle(t.disable_after(101)), "throttle"),
            (fast().throttle(t.free_failures(3).disable_after(3)), fast().throttle(t.disable_after(4)), "throttle"),
            (fast().throttle(t.base_delay(s(1))), fast().throttle(t.base_delay(ms(999))), "throttle"),
            (fast().throttle(t.max_delay(t.base_delay)), fast().throttle(t.max_delay(t.base_delay - s(1))), "throttle"),
            (fast().locations(l.max_per_account(1)), fast().locations(l.max_per_account(0)), "locations"),
            (fast().locations(l.max_per_account(100)), fast().locations(l.max_per_account(101)), "locations"),
            (fast().locations(l.lifetime(s(1))), fast().locations(l.lifetime(Duration::ZERO)), "locations"),
            (fast().delivery(d.max_attempts(1)), fast().delivery(d.max_attempts(0)), "delivery"),
            (fast().delivery(d.max_attempts(100)), fast().delivery(d.max_attempts(101)), "delivery"),
            (fast().delivery(d.retry(s(1), s(1))), fast().delivery(d.retry(ms(999), s(1))), "delivery"),
            (fast().delivery(d.retry(s(2), s(2))), fast().delivery(d.retry(s(2), s(1))), "delivery"),
            (fast().delivery(d.lease(s(1))), fast().delivery(d.lease(ms(999))), "delivery"),
        ];
        for (i, (edge, past, field)) in cases.into_iter().enumerate() {
            assert_eq!(refused(edge), None, "case {i}: the edge builds");
            assert_eq!(refused(past), Some(field), "case {i}: one past it");
        }
    }

    #[test]
    fn weaker_means_weaker_in_any_dimension() {
        let base = HashParams::new(100, 2, 2);
        assert!(!base.weaker_than(&base));
        assert!(base.m_cost(99).weaker_than(&base));
        assert!(base.t_cost(1).weaker_than(&base));
        assert!(base.p_cost(1).weaker_than(&base));
        assert!(!base.m_cost(200).t_cost(1).weaker_than(&base.t_cost(1)));
    }

    #[test]
    fn the_getters_return_what_was_built() -> Result<(), InputError> {
        let t = ThrottlePolicy::default().free_failures(3).disable_after(7);
        let l = LocationPolicy::default().max_per_account(4);
        let d = DeliveryPolicy::default().max_attempts(3);
        let p = Policy::builder()
            .password_hash(HashParams::OWASP.m_cost(65_536))
            .min_password_chars(12)
            .backup_code_count(2)
            .totp(TotpParams::default().digits(8))
            .danger_wide_window(Window::default().ahead(2))
            .pending_lifetime(Duration::from_secs(60))
            .max_code_attempts(4)
            .throttle(t)
            .locations(l)
            .delivery(d)
            .require_two_factor(true)
            .danger_short_imported_secrets()
            .build()?;
        assert_eq!((p.password().min_chars, p.password().hash.m_cost), (12, 65_536));
        assert_eq!(p.backup_codes().count, 2);
        assert_eq!(p.totp().digits, 8);
        assert_eq!(p.window(), Window::default().ahead(2));
        assert_eq!(p.pending_lifetime(), Duration::from_secs(60));
        assert_eq!(p.max_code_attempts(), 4);
        assert_eq!((p.throttle(), p.locations(), p.delivery()), (&t, &l, &d));
        assert!(p.requires_two_factor() && !Policy::default().requires_two_factor());
        assert!(p.min_imported_secret_bytes() < Policy::default().min_imported_secret_bytes());
        Ok(())
    }

    #[test]
    fn the_guess_bounds_follow_the_throttle() {
        let t = ThrottlePolicy::default().free_failures(2).disable_after(9);
        assert_eq!(t.guess_bound(), 9);
        // 2 at once, then one per window: 60 s, 120 s, 240 s, … (the defaults' base).
        let base = t.base_delay;
        assert_eq!(t.password_guess_bound(Duration::ZERO), 2);
        assert_eq!(t.password_guess_bound(base - Duration::from_secs(1)), 2);
        assert_eq!(t.password_guess_bound(base), 3, "a window that ends exactly at the period counts");
        assert_eq!(t.password_guess_bound(base * 3), 4);
    }

    #[test]
    fn aal2_keeps_backup_codes_and_locations_a_day() {
        let p = Policy::nist_aal2();
        assert_eq!(p.backup_codes().lifetime, Some(Duration::from_secs(86_400)));
        assert_eq!(p.locations().lifetime, Duration::from_secs(86_400));
        assert!(p.requires_two_factor() && p.locations().notify_new_location);
    }
}
