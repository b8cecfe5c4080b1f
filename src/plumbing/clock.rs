//! Time: a synchronous [`Clock`] trait, the [`SystemClock`] and a [`ManualClock`] for
//! tests.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time, in whole seconds since the Unix epoch (UTC).
///
/// Converts to and from [`SystemTime`] (for cookie `Expires`, HTTP dates, database
/// drivers):
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use twofactor::Timestamp;
///
/// let t = Timestamp::from(UNIX_EPOCH + Duration::from_millis(1_700_000_000_999));
/// assert_eq!(t, Timestamp(1_700_000_000)); // sub-second part dropped
/// assert_eq!(SystemTime::from(t), UNIX_EPOCH + Duration::from_secs(1_700_000_000));
/// // A time before 1970 saturates to the epoch, as [`SystemClock`] does.
/// assert_eq!(Timestamp::from(UNIX_EPOCH - Duration::from_secs(5)), Timestamp(0));
/// ```
///
/// With the `serde` feature it serializes as its number of seconds (a JSON integer,
/// e.g. `1764498000`), and deserializes from one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(transparent))]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Seconds since the Unix epoch.
    pub fn as_secs(self) -> u64 {
        self.0
    }

    /// This time plus `d`, saturating.
    pub fn plus(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(d.as_secs()))
    }

    /// The time from `earlier` to `self`, or zero.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_secs(self.0.saturating_sub(earlier.0))
    }
}

impl From<SystemTime> for Timestamp {
    /// Whole seconds since the Unix epoch, rounded down. Saturating: a time before
    /// 1970 (a broken clock) becomes `Timestamp(0)`, as [`SystemClock`] reads it, never
    /// an error or a panic.
    fn from(t: SystemTime) -> Self {
        Timestamp(t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0))
    }
}

impl From<Timestamp> for SystemTime {
    /// The same instant. Saturating: a timestamp beyond the latest time the platform's
    /// `SystemTime` can hold (hundreds of billions of years on Unix, the year 30828 on
    /// Windows) becomes that latest time, never a panic.
    fn from(t: Timestamp) -> Self {
        if let Some(time) = UNIX_EPOCH.checked_add(Duration::from_secs(t.0)) {
            return time;
        }
        // Find the latest representable whole second: `lo` always fits, `hi` never.
        let (mut lo, mut hi) = (0u64, t.0);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if UNIX_EPOCH.checked_add(Duration::from_secs(mid)).is_some() {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        UNIX_EPOCH.checked_add(Duration::from_secs(lo)).unwrap_or(UNIX_EPOCH)
    }
}

impl fmt::Display for Timestamp {
    /// Formats as an RFC 3339 UTC time, e.g. `2026-11-27T19:18:48Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0;
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        write!(f, "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
    }
}

/// Days since 1970-01-01 to a (year, month, day) civil date (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// What time it is. Synchronous: reading a clock never waits.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        // A clock before 1970 is a broken machine; treat it as the epoch rather than panic.
        Timestamp::from(SystemTime::now())
    }
}

/// A clock that moves only when told to. Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use twofactor::{Clock, ManualClock, Timestamp};
/// let clock = ManualClock::new(Timestamp(1_000));
/// clock.advance(Duration::from_secs(30));
/// assert_eq!(clock.now(), Timestamp(1_030));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicU64::new(start.0)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_secs(), Ordering::SeqCst);
    }

    /// Sets the clock to `to` (which may be in the past).
    pub fn set(&self, to: Timestamp) {
        self.0.store(to.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp(1_111_111_109).to_string(), "2005-03-18T01:58:29Z");
        assert_eq!(Timestamp(20_000_000_000).to_string(), "2603-10-11T11:33:20Z");
    }

    #[test]
    fn converts_to_and_from_system_time() {
        for secs in [0, 1, 1_111_111_109, 20_000_000_000] {
            let t = Timestamp(secs);
            assert_eq!(SystemTime::from(t), UNIX_EPOCH + Duration::from_secs(secs));
            assert_eq!(Timestamp::from(SystemTime::from(t)), t);
        }
        assert_eq!(Timestamp::from(UNIX_EPOCH + Duration::from_nanos(1_999_999_999)), Timestamp(1));
        assert_eq!(Timestamp::from(UNIX_EPOCH - Duration::from_nanos(1)), Timestamp(0));
        // Beyond what `SystemTime` holds: saturates at the latest representable second.
        let max = SystemTime::from(Timestamp(u64::MAX));
        assert!(max >= SystemTime::from(Timestamp(20_000_000_000)));
        assert!(max.checked_add(Duration::from_secs(1)).is_none());
        let now = SystemTime::now();
        assert_eq!(Timestamp::from(now).as_secs(), now.duration_since(UNIX_EPOCH).unwrap().as_secs());
    }
}
