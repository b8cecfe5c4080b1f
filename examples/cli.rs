//! A small command-line application over a SQLite file and a file outbox: how an
//! application wires `twofactor` (store, mailer, clock, keys, policy) and what it does
//! with each outcome.
//!
//! ```text
//! cargo run --example cli -- [--db PATH] [--outbox DIR | --smtp URL] COMMAND
//!
//! add-user NAME --email ADDR [--role user|admin|support]   password: one line on stdin
//! enroll NAME                                              prints the otpauth:// URI and a QR code
//! confirm NAME CODE
//! login NAME [--code CODE | --backup-code CODE] [--remember] [--device TOKEN]
//!                                                          password: one line on stdin
//! reset NAME --by ACTOR --verified-by TEXT
//! authenticators NAME                                      lists NAME's authenticators
//! add-authenticator NAME --name LABEL                      prints the otpauth:// URI and a QR code
//! confirm-authenticator NAME --code CODE
//! remove-authenticator NAME --id ID (--code CODE | --backup-code CODE)
//! disable NAME (--code CODE | --backup-code CODE)          turns two-factor authentication off
//! unlock NAME --by ACTOR --reason TEXT                     lifts a throttle or the second-factor lock
//! forget NAME                                              removes everything kept for NAME
//! keygen                                                   adds a fresh key to PATH.key, the newest
//! keys                                                     each key and the documents it seals
//! reseal                                                   moves every secret to the newest key
//! retire-key ID                                            removes key ID once no document needs it
//! deliver                                                  sends the mail that is due (run it from cron)
//! help [COMMAND]                                           the help, or one command's
//! ```
//!
//! `--help` or `-h` prints the help, `COMMAND --help` (or `help COMMAND`) one command's.
//! Arguments are split with [`lexopt`]: an option's value may follow it or be joined
//! with `=` (`--role=admin`), and a value starting with `-` is taken as it is.
//!
//! Exit status: 0 when the command did what was asked (for `login`: the user is logged
//! in), 1 when it was refused (the reason is one line on stderr), 2 on a usage error.
//!
//! # The seed story from a shell
//!
//! ```text
//! $ alias cli='cargo run -q --example cli --'
//! $ echo 'correct horse battery' | cli add-user alice --email alice@example.test
//! added user alice
//! $ echo 'admin horse battery' | cli add-user bob --email bob@example.test --role admin
//! added admin bob
//! $ cli enroll alice
//! otpauth://totp/twofactor:alice?secret=K67KNYL35JXDOZ4Y3PFKZ65HLBC7Y7IH&issuer=twofactor
//! █████████████████████████████████████████████████
//! ████ ▄▄▄▄▄ █▄ ▀█ █▄▀█ █▀ █▄▄███▄▀█  ▀█ ▄▄▄▄▄ ████
//! … (the rest of the QR code: scan it with an authenticator app)
//! scan it, then run: confirm alice CODE
//! $ cli confirm alice 492039                  # the code the app shows
//! two-factor authentication is on for alice; the backup code was mailed
//! $ ls outbox/
//! 01795808800430831600-0000003355-000000-backup_code.setup.eml
//! $ echo 'correct horse battery' | cli login alice
//! refused: alice needs a second factor: pass --code CODE or --backup-code CODE
//! $ # a code works once: wait for the app's next one
//! $ echo 'correct horse battery' | cli login alice --code 201733
//! logged in as alice (password and authenticator code)
//! $ # "I don't have my device": the backup code from the mail in outbox/
//! $ echo 'correct horse battery' | cli login alice --backup-code 3827-ZT9P-3GPG-9A11
//! logged in as alice (password and backup code); a new backup code was mailed
//! $ echo 'correct horse battery' | cli login alice --backup-code 3827-ZT9P-3GPG-9A11
//! refused: wrong code (4 attempts left on this login)
//! $ echo $?
//! 1
//! $ echo 'correct horse battery' | cli login alice --code 733115 --remember
//! logged in as alice (password and authenticator code)
//! remember-token: loc2.YtFNIuW34J61QidAVNsFHaPVWm7-6YO0iasCwq9qMGU
//! $ echo 'correct horse battery' | cli login alice --device loc2.YtFNIuW34J61QidAVNsFHaPVWm7-6YO0iasCwq9qMGU
//! logged in as alice (password from a remembered location)
//! $ # alice lost her phone and her backup code: bob checks who she is, then resets
//! $ cli reset alice --by bob --verified-by 'video call, photo ID'
//! two-factor authentication for alice was reset by bob; alice was told by mail
//! $ echo 'correct horse battery' | cli login alice
//! logged in as alice (password)
//! $ cli deliver                  # from cron: whatever is still due (nothing here)
//! delivered 0 messages; 0 waiting for a retry; 0 given up
//! ```
//!
//! # Several authenticators, turning 2FA off, unlocking, forgetting
//!
//! With alice's two-factor authentication on (her phone, the "Authenticator app"):
//!
//! ```text
//! $ cli add-authenticator alice --name Tablet
//! otpauth://totp/twofactor:alice?secret=OHRYGHVU7KVNRT6KYDRDNYU5Q6SQWBR5&issuer=twofactor
//! … (a QR code: scan it with the tablet's app)
//! scan it, then run: confirm-authenticator alice --code CODE
//! $ cli confirm-authenticator alice --code 318004        # the tablet's code
//! added authenticator 9f083940109f0b00 (Tablet) for alice; alice was told by mail
//! $ cli authenticators alice
//! 173fbc9ab92aa71c  added 2027-01-15T08:00:00Z  last used 2027-01-15T08:00:30Z  Authenticator app
//! 9f083940109f0b00  added 2027-01-15T08:01:00Z  last used 2027-01-15T08:01:00Z  Tablet
//! $ # the phone is lost: a code from the tablet (or the backup code) removes it
//! $ cli remove-authenticator alice --id 173fbc9ab92aa71c --code 650274
//! removed authenticator 173fbc9ab92aa71c from alice; alice was told by mail
//! $ cli remove-authenticator alice --id 9f083940109f0b00 --code 104711
//! refused: cannot remove the last authenticator of alice: `disable alice` turns two-factor authentication off
//! $ cli disable alice --code 104711
//! two-factor authentication is off for alice; alice was told by mail
//! $ # carol typed wrong codes until sign-in paused; bob checks it is her, then:
//! $ cli unlock carol --by bob --reason 'she called from the number on file'
//! carol was unlocked by bob; carol was told by mail
//! $ cli forget carol                  # account deletion: everything kept for carol goes
//! forgot carol: the account, its two-factor authentication and its queued mail are gone
//! ```
//!
//! A code that removes an authenticator or turns 2FA off is checked as at login: it
//! works once, and wrong ones count towards the pause after failed attempts. A backup
//! code used to remove an authenticator is replaced by mail, as at login (`…; a new
//! backup code was mailed`); one used to turn 2FA off goes with the rest. `unlock`
//! follows the role rules of `reset` and is refused when nothing is paused or locked.
//!
//! # Rotating the key
//!
//! With alice enrolled and bob not:
//!
//! ```text
//! $ cli keygen                    # key 2 seals from now on; key 1 still opens
//! added key 2
//! $ cli keys
//! key 2 (newest): 0 documents
//! key 1: 1 document
//! without a secret: 1
//! $ cli retire-key 1
//! refused: key 1 still seals 1 document: run reseal first
//! $ cli reseal                    # safe while users log in; run it again if it stops
//! resealed 1 of 2 documents
//! $ cli retire-key 1
//! retired key 1
//! ```
//!
//! A login re-seals its user's secret under the newest key too, so `reseal` finds less
//! to do the longer it waits. Retiring a key ends the logins that are waiting for their
//! second factor (those users type their password again); remembered locations are not
//! sealed and stay. No command ever prints a key.
//!
//! # What it keeps
//!
//! - `--db PATH` (default `./twofactor-cli.db`): the SQLite database, created with mode
//!   0600 (SQLite gives its `-wal` and `-shm` files the same) in a folder that must
//!   exist. Several invocations at once on one file are safe: the store uses WAL mode
//!   and a busy timeout, and every change is a compare-and-swap, so of several logins
//!   racing one backup code exactly one wins.
//! - `PATH.key` beside it (`./twofactor-cli.db.key`): the application's keys, read with
//!   [`KeyRing::from_file`]. First use creates it with mode 0600 holding one key in
//!   0.1.0's form (64 hex digits: key 1), which every version reads. `keygen` and
//!   `retire-key` rewrite it in the text form, one `tfk1.<id>.<key>` line per key,
//!   newest first (comments are not kept), atomically: a temporary file with mode
//!   0600, flushed to disk, then renamed over it. They take turns on `PATH.key.lock`,
//!   so two of them at once never lose a key. The keys seal the TOTP secrets in the
//!   database and pending logins: without them the enrolled secrets cannot be opened,
//!   so back the file up with the database and keep it out of any repository (a real
//!   application keeps its keys in a secrets manager: see README, "Keys").
//! - `--outbox DIR` (default `./outbox`): one RFC 5322 file per mail
//!   ([`FileOutbox`]); the names sort in sending order.
//! - The mail itself waits in the database until it is sent. A command writes the mail
//!   its change causes (a backup code, a reset notice) into the user's document in the
//!   same write as the change (the transactional outbox), so a crash or a mail outage
//!   never loses it; then, with its change committed, the command sends that user's
//!   due mail ([`Engine::deliver_queued`]) before it exits, and its line says how that
//!   went (`the backup code was mailed`, or `could not be mailed (…)`). A mail that
//!   could not be sent stays queued and is tried again, with a growing wait (30
//!   seconds after the first failure, up to an hour; given up after 10 tries), by the
//!   next command for that user or by `deliver`. A refused login sends nothing: its
//!   notices (too many attempts) wait for `deliver`, so a refusal never waits on
//!   mail. Run `deliver` from cron, as an application runs its delivery worker
//!   ([`twofactor::DeliveryWorker`]).
//!
//! `reset` and `unlock` trust `--by`: a real application authenticates the administrator
//! first.
//! The environment variable `TWOFACTOR_CLI_NOW=UNIX_SECONDS` is a testing aid: it
//! fixes the clock (TOTP codes, expiries, when queued mail is due) for one invocation.

use std::ffi::OsString;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;
use twofactor::mail::FileOutbox;
use twofactor::mail::{Delivery, Mailer, MessageKind};
use twofactor::store::UserStore;
use twofactor::{
    AccountView, AddAuthenticatorOutcome, AppKey, AuthMethod, Authenticated, Clock, ConfirmOutcome, DeliveryReport,
    Engine, KeyError, KeyRing, LoginOutcome, MailError, MailId, MailStatus, ManualClock, NewAccount, Policy, Refusal,
    ResetOutcome, Role, SecondFactor, SecondFactorOutcome, SecretString, StepUpOutcome, SystemClock, Timestamp,
    TwoFactorState, UnlockOutcome, UserId,
};
use zeroize::Zeroizing;

const USAGE: &str = "\
usage: cli [--db PATH] [--outbox DIR | --smtp URL] COMMAND

commands:
  add-user NAME --email ADDR [--role user|admin|support]   password: one line on stdin
  enroll NAME                                              prints the otpauth:// URI and a QR code
  confirm NAME CODE
  login NAME [--code CODE | --backup-code CODE] [--remember] [--device TOKEN]
                                                           password: one line on stdin
  reset NAME --by ACTOR --verified-by TEXT
  authenticators NAME                                      lists NAME's authenticators
  add-authenticator NAME --name LABEL                      prints the otpauth:// URI and a QR code
  confirm-authenticator NAME --code CODE
  remove-authenticator NAME --id ID (--code CODE | --backup-code CODE)
  disable NAME (--code CODE | --backup-code CODE)          turns two-factor authentication off
  unlock NAME --by ACTOR --reason TEXT                     lifts a throttle or the second-factor lock
  forget NAME                                              removes everything kept for NAME
  keygen                                                   adds a fresh key to PATH.key, the newest
  keys                                                     each key and the documents it seals
  reseal                                                   moves every secret to the newest key
  retire-key ID                                            removes key ID once no document needs it
  deliver                                                  sends the mail that is due (run it from cron)
  help [COMMAND]                                           this text, or one command's

options:
  --db PATH      the SQLite database (default ./twofactor-cli.db; its key is PATH.key)
  --outbox DIR   where mail is written, one file per mail (default ./outbox)
  --smtp URL     send mail through SMTP instead (smtp://, smtp://…?tls=starttls, smtps://;
                 needs `--features smtp`); the From address is TWOFACTOR_CLI_FROM or
                 twofactor <no-reply@localhost>. A URL with a password is better given
                 as TWOFACTOR_CLI_SMTP_URL, which keeps it out of `ps` and shell history
  --help         this text
  -h             the same; `COMMAND --help` or `help COMMAND` shows one command's help

exit status: 0 done, 1 refused (reason on stderr), 2 usage error";

/// One command's help: the usage line, `body`, and the lines every command's help ends with.
macro_rules! command_help {
    ($usage:literal, $body:literal) => {
        concat!(
            "usage: cli [--db PATH] [--outbox DIR | --smtp URL] ",
            $usage,
            "\n\n",
            $body,
            "\n\nThe global options --db, --outbox and --smtp are described by `cli --help`.\n\n",
            "exit status: 0 done, 1 refused (reason on stderr), 2 usage error"
        )
    };
}

/// Each command's help, for `COMMAND --help`, `COMMAND -h` and `help COMMAND`.
const COMMAND_HELP: &[(&str, &str)] = &[
    (
        "add-user",
        command_help!(
            "add-user NAME --email ADDR [--role user|admin|support]",
            "Creates the account NAME; its password is one line on stdin.

options:
  --email ADDR   where the account's mail goes (required)
  --role ROLE    user (the default), admin or support"
        ),
    ),
    (
        "enroll",
        command_help!(
            "enroll NAME",
            "Starts setting up two-factor authentication for NAME: prints the otpauth:// URI and
a QR code of it to scan with an authenticator app, then run `cli confirm NAME CODE`."
        ),
    ),
    (
        "confirm",
        command_help!(
            "confirm NAME CODE",
            "Finishes the setup `enroll` started with a CODE the authenticator app shows; the
first backup code is mailed to NAME."
        ),
    ),
    (
        "login",
        command_help!(
            "login NAME [--code CODE | --backup-code CODE] [--remember] [--device TOKEN]",
            "Logs NAME in; the password is one line on stdin.

options:
  --code CODE          the code the authenticator app shows
  --backup-code CODE   the backup code from the mail (works once; a new one is mailed)
  --remember           remember this location: prints a remember-token line
  --device TOKEN       a remember-token from an earlier --remember: no code needed"
        ),
    ),
    (
        "reset",
        command_help!(
            "reset NAME --by ACTOR --verified-by TEXT",
            "Turns two-factor authentication off for NAME (who is told by mail), on behalf of
the administrator ACTOR: an admin resets users, only support resets an admin.

options:
  --by ACTOR           who resets (this example trusts it; a real application
                       authenticates the administrator first)
  --verified-by TEXT   how ACTOR checked who NAME is (kept in the audit trail)"
        ),
    ),
    (
        "authenticators",
        command_help!(
            "authenticators NAME",
            "Lists NAME's authenticators, oldest first, one line each: its id (for
`remove-authenticator`), when it was added and last used, and its name. With
two-factor authentication off there are none."
        ),
    ),
    (
        "add-authenticator",
        command_help!(
            "add-authenticator NAME --name LABEL",
            "Starts adding a further authenticator (a tablet beside the phone) for NAME, whose
two-factor authentication is on: prints its otpauth:// URI and a QR code of it to scan,
then run `cli confirm-authenticator NAME --code CODE`. Running it again replaces an
authenticator not yet confirmed.

options:
  --name LABEL   what to call it (one line, at most 64 bytes), e.g. Tablet (required)"
        ),
    ),
    (
        "confirm-authenticator",
        command_help!(
            "confirm-authenticator NAME --code CODE",
            "Finishes adding the authenticator `add-authenticator` started, with a CODE it shows:
its codes log NAME in from then on, and NAME is told by mail.

options:
  --code CODE   the code the new authenticator shows (required)"
        ),
    ),
    (
        "remove-authenticator",
        command_help!(
            "remove-authenticator NAME --id ID (--code CODE | --backup-code CODE)",
            "Removes NAME's authenticator ID (as `authenticators` lists it) after a fresh code
from another authenticator, or the backup code; NAME is told by mail. The last
authenticator cannot be removed: `disable` turns two-factor authentication off.

options:
  --id ID              the authenticator to remove (required)
  --code CODE          a code from another authenticator
  --backup-code CODE   the backup code (works once; a new one is mailed)"
        ),
    ),
    (
        "disable",
        command_help!(
            "disable NAME (--code CODE | --backup-code CODE)",
            "Turns two-factor authentication off for NAME after a fresh code: every
authenticator, the backup code and the remembered locations go, the password alone
logs in, and NAME is told by mail.

options:
  --code CODE          a code from any of NAME's authenticators
  --backup-code CODE   the backup code"
        ),
    ),
    (
        "unlock",
        command_help!(
            "unlock NAME --by ACTOR --reason TEXT",
            "Lifts the pause after failed attempts, or the second-factor lock, on NAME (who is
told by mail), on behalf of the administrator ACTOR, without touching NAME's
two-factor authentication: an admin unlocks users, only support unlocks an admin.
Refused when nothing is paused or locked.

options:
  --by ACTOR      who unlocks (this example trusts it, as it does for reset)
  --reason TEXT   why (kept in the audit trail)"
        ),
    ),
    (
        "forget",
        command_help!(
            "forget NAME",
            "Removes everything kept for NAME (the account, its two-factor authentication and its
queued mail), for account deletion and data-protection requests. It cannot be undone."
        ),
    ),
    (
        "keygen",
        command_help!(
            "keygen",
            "Adds a fresh random key to the key file PATH.key (creating it if missing) as the
newest: it seals every TOTP secret and pending login from now on, and the older keys
still open what they sealed. Prints `added key ID`, never the key. The file is
rewritten in the text form, one tfk1.<id>.<key> line per key, newest first (a 0.1.0
file of 64 hex digits is key 1), through a temporary file with mode 0600 renamed over
it. Back it up: a lost key takes every secret sealed under it with it.

Then `reseal` moves the existing secrets to the new key, and `retire-key` removes the
old one."
        ),
    ),
    (
        "keys",
        command_help!(
            "keys",
            "Lists the keys in PATH.key, newest first, with how many documents hold a TOTP
secret sealed under each (a key with 0 documents can be retired), then how many
documents hold no secret. A key that documents need but PATH.key lacks is listed
as `not in the key file`: put it back, or those users cannot log in."
        ),
    ),
    (
        "reseal",
        command_help!(
            "reseal",
            "Re-seals every TOTP secret that is not under the newest key, document by document
(each by compare-and-swap: safe while users log in), then prints `resealed N of M
documents`. On a terminal, stderr shows a progress bar. Running it again is
harmless: documents already under the newest key are left alone."
        ),
    ),
    (
        "retire-key",
        command_help!(
            "retire-key ID",
            "Removes key ID from PATH.key (rewritten as `keygen` does) once no document needs
it; refused while documents still hold secrets sealed under it (run `reseal`
first), and for the newest key. Logins waiting for their second factor that were
sealed under it end: those users type their password again. Remembered locations
are not affected."
        ),
    ),
    (
        "deliver",
        command_help!(
            "deliver",
            "Sends every mail that is due, then prints `delivered N messages; R waiting for a
retry; G given up`. Each command sends the mail its change causes before it exits;
what is left for `deliver` is mail that could not be sent then (it is tried again
30 seconds after the first failure, the wait doubling up to an hour, and given up
after 10 tries) and the notices of refused logins (a refusal never waits on mail).
Run it from cron, as an application runs its delivery worker."
        ),
    ),
    ("help", command_help!("help [COMMAND]", "Prints the help of COMMAND, or of the whole program without one.")),
];

/// Writes one line to stdout. A reader that went away (`cli enroll alice | head -1`) is
/// no error: the command has done its work, so the rest of the output is dropped
/// quietly; any other failure to write is a refusal.
macro_rules! say {
    ($($arg:tt)*) => {
        write_line(format_args!($($arg)*))?
    };
}

fn write_line(line: std::fmt::Arguments<'_>) -> Result<(), Fail> {
    match writeln!(std::io::stdout().lock(), "{line}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Fail::refused(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// The label a remembered location gets.
const LOCATION_LABEL: &str = "twofactor command line";

/// The store. Everything below is generic over [`UserStore`]; this alias and
/// [`open_store`] are the only places that name the backend.
type Store = twofactor::store::SqliteStore;

async fn open_store(db: &Path) -> Result<Store, Fail> {
    Store::open(db).await.map_err(|e| Fail::refused(format!("cannot open the database {}: {e}", db.display())))
}

/// Why the program stops early: a refusal (exit 1) or a usage error (exit 2), with one
/// line for stderr.
#[derive(Debug)]
struct Fail {
    usage: bool,
    message: String,
}

impl Fail {
    fn refused(message: impl Into<String>) -> Fail {
        Fail { usage: false, message: message.into() }
    }

    fn usage(message: impl Into<String>) -> Fail {
        Fail { usage: true, message: message.into() }
    }
}

impl From<twofactor::Error> for Fail {
    fn from(err: twofactor::Error) -> Fail {
        Fail::refused(err.to_string())
    }
}

/// Where mail goes. A new transport is one more variant here and one more arm in
/// [`run`].
enum Transport {
    Outbox(PathBuf),
    #[cfg(feature = "smtp")]
    Smtp(String),
}

struct Invocation {
    db: PathBuf,
    transport: Transport,
    clock: Arc<dyn Clock>,
    command: Command,
}

enum Command {
    Help(&'static str),
    AddUser { name: String, email: String, role: Role },
    Enroll { name: String },
    Confirm { name: String, code: String },
    Login { name: String, code: Option<Code>, remember: bool, device: Option<String> },
    Reset { name: String, by: String, verified_by: String },
    Authenticators { name: String },
    AddAuthenticator { name: String, label: String },
    ConfirmAuthenticator { name: String, code: String },
    RemoveAuthenticator { name: String, id: String, code: Code },
    Disable { name: String, code: Code },
    Unlock { name: String, by: String, reason: String },
    Forget { name: String },
    Keygen,
    Keys,
    Reseal,
    RetireKey { id: u32 },
    Deliver,
}

enum Code {
    Totp(String),
    Backup(SecretString),
}

/// Options that take a value.
const VALUE_OPTIONS: &[&str] = &[
    "--db",
    "--outbox",
    "--smtp",
    "--email",
    "--role",
    "--code",
    "--backup-code",
    "--device",
    "--by",
    "--verified-by",
    "--name",
    "--id",
    "--reason",
];
/// Options without a value (`--help`, also spelled `-h`, is apart: see [`Parsed::help`]).
const SWITCHES: &[&str] = &["--remember"];
/// Options every command accepts.
const GLOBAL_OPTIONS: &[&str] = &["--db", "--outbox", "--smtp"];

/// The command line, split into positional arguments and options.
struct Parsed {
    positional: Vec<String>,
    options: Vec<(&'static str, String)>,
    /// `--help` was given anywhere, or `-h` before the command word (or after `help`).
    help: bool,
}

impl Parsed {
    /// Splits the arguments with [`lexopt`]. An option's value is always the next
    /// argument (or what follows `=`), even when it starts with `-`; a word starting
    /// with a single `-` is a positional argument (a name may start with `-`), except
    /// `-h` before the command word; everything after `--` is positional.
    fn new(args: impl IntoIterator<Item = OsString>) -> Result<Parsed, Fail> {
        let mut parsed = Parsed { positional: Vec::new(), options: Vec::new(), help: false };
        let mut parser = lexopt::Parser::from_args(args);
        loop {
            if let Some(mut raw) = parser.try_raw_args()
                && let Some(word) = raw.next_if(|w| w.to_str().is_some_and(is_single_dash_word))
            {
                parsed.positional.push(word.into_string().unwrap_or_default());
                continue;
            }
            let arg = match parser.next() {
                Ok(Some(arg)) => arg,
                Ok(None) => break,
                Err(e) => return Err(Fail::usage(e.to_string())),
            };
            match arg {
                lexopt::Arg::Value(word) => parsed.positional.push(utf8(word)?),
                // Only a lone `-h` gets here (other single-dash words are positional),
                // or a word that is not UTF-8. It asks for help before the command word
                // (or after `help`); after any other command it is an operand, as in
                // 0.1.0 (a user may be named `-h`).
                lexopt::Arg::Short('h') => match parsed.positional.first().map(String::as_str) {
                    None | Some("help") => parsed.help = true,
                    Some(_) => parsed.positional.push("-h".to_owned()),
                },
                lexopt::Arg::Short(c) => return Err(Fail::usage(format!("unknown option -{c}"))),
                lexopt::Arg::Long("help") => {
                    if parser.optional_value().is_some() {
                        return Err(Fail::usage("--help takes no value"));
                    }
                    parsed.help = true;
                }
                lexopt::Arg::Long(name) => {
                    let name = format!("--{name}");
                    let (known, value) = if let Some(known) = VALUE_OPTIONS.iter().find(|o| **o == name) {
                        let value = parser.value().map_err(|_| Fail::usage(format!("{name} needs a value")))?;
                        (*known, utf8(value)?)
                    } else if let Some(known) = SWITCHES.iter().find(|o| **o == name) {
                        if parser.optional_value().is_some() {
                            return Err(Fail::usage(format!("{name} takes no value")));
                        }
                        (*known, String::new())
                    } else {
                        return Err(Fail::usage(format!("unknown option {name}")));
                    };
                    if parsed.option(known).is_some() {
                        return Err(Fail::usage(format!("{known} given twice")));
                    }
                    parsed.options.push((known, value));
                }
            }
        }
        Ok(parsed)
    }

    fn option(&self, name: &str) -> Option<&str> {
        self.options.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &str) -> Result<String, Fail> {
        self.option(name).map(str::to_owned).ok_or_else(|| Fail::usage(format!("{name} is required")))
    }

    /// Checks that every option given is global or one of the command's `options`.
    fn check_options(&self, command: &str, options: &[&str]) -> Result<(), Fail> {
        match self.options.iter().find(|(n, _)| !options.contains(n) && !GLOBAL_OPTIONS.contains(n)) {
            Some((name, _)) => Err(Fail::usage(format!("{command} does not take {name}"))),
            None => Ok(()),
        }
    }

    /// Checks the command's shape: its positional arguments and which options it takes.
    fn expect(&self, command: &str, operands: &[&str], options: &[&str]) -> Result<(), Fail> {
        self.check_options(command, options)?;
        if self.positional.len() != operands.len() + 1 {
            return Err(Fail::usage(format!("expected: {command} {}", operands.join(" ")).trim_end().to_owned()));
        }
        Ok(())
    }
}

/// `-x…` (but not `-h`, `-` or `--…`): a positional argument, as it always was here.
fn is_single_dash_word(word: &str) -> bool {
    word.len() > 1 && word.starts_with('-') && !word.starts_with("--") && word != "-h"
}

fn utf8(word: OsString) -> Result<String, Fail> {
    word.into_string().map_err(|w| Fail::usage(format!("{} is not valid UTF-8", w.to_string_lossy())))
}

/// The help text of `command`, if there is such a command.
fn command_help(command: &str) -> Option<&'static str> {
    COMMAND_HELP.iter().find(|(name, _)| *name == command).map(|(_, text)| *text)
}

fn parse(args: impl IntoIterator<Item = OsString>, now: Option<String>) -> Result<Invocation, Fail> {
    let p = Parsed::new(args)?;
    let db = PathBuf::from(p.option("--db").unwrap_or("twofactor-cli.db"));
    // A URL with credentials on the command line shows in `ps` and shell history; the
    // environment variable keeps it out of both.
    let smtp_env = std::env::var("TWOFACTOR_CLI_SMTP_URL").ok();
    let transport = match (p.option("--smtp").or(smtp_env.as_deref()), p.option("--outbox")) {
        (Some(_), Some(_)) => return Err(Fail::usage("give --outbox or --smtp, not both")),
        #[cfg(feature = "smtp")]
        (Some(url), None) => Transport::Smtp(url.to_owned()),
        #[cfg(not(feature = "smtp"))]
        (Some(_), None) => {
            return Err(Fail::usage("--smtp needs the smtp feature: cargo run --features smtp --example cli"));
        }
        (None, outbox) => Transport::Outbox(PathBuf::from(outbox.unwrap_or("outbox"))),
    };
    let clock: Arc<dyn Clock> = match now {
        Some(secs) => {
            let secs = secs.parse().map_err(|_| Fail::usage("TWOFACTOR_CLI_NOW must be Unix seconds"))?;
            Arc::new(ManualClock::new(Timestamp(secs)))
        }
        None => Arc::new(SystemClock),
    };
    let arg = |i: usize| p.positional[i].clone();
    let command = match p.positional.first().map(String::as_str) {
        // `COMMAND --help` (and `help COMMAND --help`); the whole program's help for
        // `--help` alone and, as before, for an unknown command with `--help`.
        _ if p.help => {
            let command = match p.positional.as_slice() {
                [help, command, ..] if help == "help" => Some(command),
                other => other.first(),
            };
            Command::Help(command.and_then(|c| command_help(c)).unwrap_or(USAGE))
        }
        None => return Err(Fail::usage("no command given (try --help)")),
        Some("help") => {
            p.check_options("help", &[])?;
            match &p.positional[1..] {
                [] => Command::Help(USAGE),
                [c] => Command::Help(
                    command_help(c).ok_or_else(|| Fail::usage(format!("unknown command {c} (try --help)")))?,
                ),
                _ => return Err(Fail::usage("expected: help [COMMAND]")),
            }
        }
        Some("add-user") => {
            p.expect("add-user", &["NAME"], &["--email", "--role"])?;
            let role = p.option("--role").unwrap_or("user");
            let role = Role::parse(role).ok_or_else(|| Fail::usage("--role must be user, admin or support"))?;
            Command::AddUser { name: arg(1), email: p.required("--email")?, role }
        }
        Some("enroll") => {
            p.expect("enroll", &["NAME"], &[])?;
            Command::Enroll { name: arg(1) }
        }
        Some("confirm") => {
            p.expect("confirm", &["NAME", "CODE"], &[])?;
            Command::Confirm { name: arg(1), code: arg(2) }
        }
        Some("login") => {
            p.expect("login", &["NAME"], &["--code", "--backup-code", "--remember", "--device"])?;
            let code = match (p.option("--code"), p.option("--backup-code")) {
                (Some(_), Some(_)) => return Err(Fail::usage("give --code or --backup-code, not both")),
                (Some(c), None) => Some(Code::Totp(c.to_owned())),
                (None, Some(c)) => Some(Code::Backup(SecretString::from(c))),
                (None, None) => None,
            };
            let remember = p.option("--remember").is_some();
            Command::Login { name: arg(1), code, remember, device: p.option("--device").map(str::to_owned) }
        }
        Some("reset") => {
            p.expect("reset", &["NAME"], &["--by", "--verified-by"])?;
            Command::Reset { name: arg(1), by: p.required("--by")?, verified_by: p.required("--verified-by")? }
        }
        Some("authenticators") => {
            p.expect("authenticators", &["NAME"], &[])?;
            Command::Authenticators { name: arg(1) }
        }
        Some("add-authenticator") => {
            p.expect("add-authenticator", &["NAME"], &["--name"])?;
            Command::AddAuthenticator { name: arg(1), label: p.required("--name")? }
        }
        Some("confirm-authenticator") => {
            p.expect("confirm-authenticator", &["NAME"], &["--code"])?;
            Command::ConfirmAuthenticator { name: arg(1), code: p.required("--code")? }
        }
        Some("remove-authenticator") => {
            p.expect("remove-authenticator", &["NAME"], &["--id", "--code", "--backup-code"])?;
            let id = p.required("--id")?;
            Command::RemoveAuthenticator { name: arg(1), id, code: fresh_code(&p)? }
        }
        Some("disable") => {
            p.expect("disable", &["NAME"], &["--code", "--backup-code"])?;
            Command::Disable { name: arg(1), code: fresh_code(&p)? }
        }
        Some("unlock") => {
            p.expect("unlock", &["NAME"], &["--by", "--reason"])?;
            Command::Unlock { name: arg(1), by: p.required("--by")?, reason: p.required("--reason")? }
        }
        Some("forget") => {
            p.expect("forget", &["NAME"], &[])?;
            Command::Forget { name: arg(1) }
        }
        Some("keygen") => {
            p.expect("keygen", &[], &[])?;
            Command::Keygen
        }
        Some("keys") => {
            p.expect("keys", &[], &[])?;
            Command::Keys
        }
        Some("reseal") => {
            p.expect("reseal", &[], &[])?;
            Command::Reseal
        }
        Some("deliver") => {
            p.expect("deliver", &[], &[])?;
            Command::Deliver
        }
        Some("retire-key") => {
            p.expect("retire-key", &["ID"], &[])?;
            let id =
                arg(1).parse().map_err(|_| Fail::usage("retire-key takes a key id (a number, as `keys` lists)"))?;
            Command::RetireKey { id }
        }
        Some(other) => return Err(Fail::usage(format!("unknown command {other} (try --help)"))),
    };
    Ok(Invocation { db, transport, clock, command })
}

/// The fresh factor a command needs: `--code` or `--backup-code`, exactly one.
fn fresh_code(p: &Parsed) -> Result<Code, Fail> {
    match (p.option("--code"), p.option("--backup-code")) {
        (Some(_), Some(_)) => Err(Fail::usage("give --code or --backup-code, not both")),
        (Some(c), None) => Ok(Code::Totp(c.to_owned())),
        (None, Some(c)) => Ok(Code::Backup(SecretString::from(c))),
        (None, None) => Err(Fail::usage("give --code CODE or --backup-code CODE")),
    }
}

fn main() -> ExitCode {
    let invocation = parse(std::env::args_os().skip(1), std::env::var("TWOFACTOR_CLI_NOW").ok());
    let result = invocation.and_then(|inv| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Fail::refused(format!("cannot start the runtime: {e}")))?;
        runtime.block_on(run(inv))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(fail) => {
            eprintln!("{}: {}", if fail.usage { "usage error" } else { "refused" }, fail.message);
            ExitCode::from(if fail.usage { 2 } else { 1 })
        }
    }
}

async fn run(inv: Invocation) -> Result<(), Fail> {
    if let Command::Help(text) = inv.command {
        say!("{text}");
        return Ok(());
    }
    // Read stdin before opening anything, so a missing password changes nothing.
    let password = match &inv.command {
        Command::AddUser { .. } | Command::Login { .. } => Some(read_password()?),
        _ => None,
    };
    // Check where the database goes before creating anything there.
    check_db_path(&inv.db)?;
    let key_file = key_path(&inv.db);
    if let Command::Keygen = inv.command {
        return keygen(&key_file);
    }
    // `retire-key` writes back the ring it read: it holds the lock from the read to the
    // write, so a `keygen` meanwhile waits instead of being overwritten.
    let _lock = match inv.command {
        Command::RetireKey { .. } => Some(KeyFileLock::take(&key_file)?),
        _ => None,
    };
    let keys = load_keys(&key_file)?;
    create_database(&inv.db)?;
    let store = open_store(&inv.db).await?;
    let work = Work { clock: inv.clock, keys, key_file, command: inv.command, password };
    // The mailer: one arm per transport.
    match inv.transport {
        Transport::Outbox(dir) => execute(store, FileOutbox::new(dir).map_err(mail_fault)?, work).await,
        #[cfg(feature = "smtp")]
        Transport::Smtp(url) => {
            let from = std::env::var("TWOFACTOR_CLI_FROM").unwrap_or_else(|_| "twofactor <no-reply@localhost>".into());
            let mailer =
                twofactor::mail::SmtpMailer::from_url(&url, &from).map_err(|e| Fail::usage(format!("--smtp: {e}")))?;
            execute(store, mailer, work).await
        }
    }
}

fn mail_fault(err: MailError) -> Fail {
    Fail::refused(err.to_string())
}

/// Everything a command needs besides the store and the mailer.
struct Work {
    clock: Arc<dyn Clock>,
    keys: KeyRing,
    /// Where `keys` came from, `PATH.key`.
    key_file: PathBuf,
    command: Command,
    password: Option<Zeroizing<String>>,
}

async fn execute<S: UserStore, M: Mailer + 'static>(store: S, mailer: M, work: Work) -> Result<(), Fail> {
    let Work { clock, keys, key_file, command, password } = work;
    let engine = Engine::builder(store, mailer, keys).clock(clock).policy(Policy::default()).build()?;
    let password = password.as_ref().map_or("", |p| p.as_str());
    match command {
        // Answered before the engine is built.
        Command::Help(_) | Command::Keygen => Ok(()),
        Command::AddUser { name, email, role } => {
            engine.create_account(NewAccount::new(&name, &email, role, password)).await?;
            say!("added {role} {name}");
            Ok(())
        }
        Command::Enroll { name } => {
            let account = find(&engine, &name).await?;
            let started = engine.start_enrollment(account.id).await?;
            show_uri(started.uri.expose())?;
            eprintln!("scan it, then run: confirm {name} CODE");
            Ok(())
        }
        Command::Confirm { name, code } => {
            let account = find(&engine, &name).await?;
            match engine.confirm_enrollment(account.id, &code).await? {
                ConfirmOutcome::Confirmed { backup_code_delivery } => {
                    let delivery = deliver_now(&engine, account.id, &backup_code_delivery).await;
                    say!("two-factor authentication is on for {name}; the backup code {}", mailed(&delivery));
                    still_queued(&engine, account.id, &backup_code_delivery, &delivery).await;
                    Ok(())
                }
                ConfirmOutcome::WrongCode => Err(Fail::refused("wrong code; the enrollment is still waiting")),
                _ => Err(Fail::refused("not confirmed")),
            }
        }
        Command::Login { name, code, remember, device } => {
            login(&engine, &name, password, code, remember, device.as_deref()).await
        }
        Command::Reset { name, by, verified_by } => {
            let target = find(&engine, &name).await?;
            let actor = find(&engine, &by).await?;
            match engine.reset(actor.id, target.id, &verified_by).await? {
                ResetOutcome::Reset { notice_delivery } => {
                    let delivery = deliver_now(&engine, target.id, &notice_delivery).await;
                    say!("two-factor authentication for {name} was reset by {by}; {name} {}", told(&delivery));
                    still_queued(&engine, target.id, &notice_delivery, &delivery).await;
                    Ok(())
                }
                _ => Err(Fail::refused(format!(
                    "{by} ({}) may not reset {name} ({}): an admin resets users, only support resets an admin",
                    actor.role, target.role
                ))),
            }
        }
        Command::Authenticators { name } => list_authenticators(&engine, &name).await,
        Command::AddAuthenticator { name, label } => {
            let account = find(&engine, &name).await?;
            let started = engine.add_authenticator(account.id, &label).await?;
            show_uri(started.uri.expose())?;
            eprintln!("scan it, then run: confirm-authenticator {name} --code CODE");
            Ok(())
        }
        Command::ConfirmAuthenticator { name, code } => confirm_authenticator(&engine, &name, &code).await,
        Command::RemoveAuthenticator { name, id, code } => {
            let account = find(&engine, &name).await?;
            typed_code(&code)?;
            let outcome = match engine.remove_authenticator(account.id, &id, factor_of(&code)).await {
                Err(twofactor::Error::Misuse(Refusal::NoSuchAuthenticator) | twofactor::Error::InvalidInput(_)) => {
                    return Err(Fail::refused(format!(
                        "{name} has no authenticator {id} (`authenticators {name}` lists them)"
                    )));
                }
                Err(twofactor::Error::Misuse(Refusal::LastAuthenticator)) => {
                    return Err(Fail::refused(format!(
                        "cannot remove the last authenticator of {name}: `disable {name}` turns two-factor \
                         authentication off"
                    )));
                }
                other => other?,
            };
            let asked = Asked {
                notice: MessageKind::AuthenticatorRemoved,
                wrong: "wrong code: give a code from another authenticator, or the backup code",
                new_code: true,
            };
            after_fresh_factor(&engine, &account, outcome, asked, |told| {
                format!("removed authenticator {id} from {name}; {name} {told}")
            })
            .await
        }
        Command::Disable { name, code } => {
            let account = find(&engine, &name).await?;
            typed_code(&code)?;
            let outcome = engine.disable_two_factor(account.id, factor_of(&code)).await?;
            // The backup code goes with the rest: no new one is mailed, even after one was used.
            let asked = Asked { notice: MessageKind::TwoFactorDisabled, wrong: "wrong code", new_code: false };
            after_fresh_factor(&engine, &account, outcome, asked, |told| {
                format!("two-factor authentication is off for {name}; {name} {told}")
            })
            .await
        }
        Command::Unlock { name, by, reason } => {
            let target = find(&engine, &name).await?;
            let actor = find(&engine, &by).await?;
            match engine.unlock(actor.id, target.id, &reason).await? {
                UnlockOutcome::Unlocked { notice_delivery } => {
                    let delivery = deliver_now(&engine, target.id, &notice_delivery).await;
                    say!("{name} was unlocked by {by}; {name} {}", told(&delivery));
                    still_queued(&engine, target.id, &notice_delivery, &delivery).await;
                    Ok(())
                }
                UnlockOutcome::NotLocked => {
                    Err(Fail::refused(format!("{name} is neither paused nor locked: there is nothing to unlock")))
                }
                _ => Err(Fail::refused(format!(
                    "{by} ({}) may not unlock {name} ({}): an admin unlocks users, only support unlocks an admin",
                    actor.role, target.role
                ))),
            }
        }
        Command::Forget { name } => {
            let account = find(&engine, &name).await?;
            if !engine.forget_user(account.id).await? {
                return Err(Fail::refused(format!("no user named {name}")));
            }
            say!("forgot {name}: the account, its two-factor authentication and its queued mail are gone");
            Ok(())
        }
        Command::Keys => list_keys(&engine).await,
        Command::Reseal => reseal(&engine, &key_file).await,
        Command::RetireKey { id } => retire_key(&engine, &key_file, id).await,
        Command::Deliver => deliver(&engine).await,
    }
}

/// Prints an `otpauth://` URI and, below it, a QR code of it to scan.
fn show_uri(uri: &str) -> Result<(), Fail> {
    say!("{uri}");
    if let Ok(qr) = QrCode::new(uri.as_bytes()) {
        let art = qr.render::<Dense1x2>().dark_color(Dense1x2::Light).light_color(Dense1x2::Dark).build();
        say!("{art}");
    }
    Ok(())
}

/// The engine's form of a code given on the command line.
fn factor_of(code: &Code) -> SecondFactor<'_> {
    match code {
        Code::Totp(c) => SecondFactor::Totp(c),
        Code::Backup(c) => SecondFactor::BackupCode(c.expose()),
    }
}

/// `authenticators NAME`: one line per authenticator, oldest first.
async fn list_authenticators<S: UserStore, M: Mailer, C: Clock>(
    engine: &Engine<S, M, C>,
    name: &str,
) -> Result<(), Fail> {
    let account = find(engine, name).await?;
    let list = engine.authenticators(account.id).await?;
    if list.is_empty() {
        let why = match account.two_factor {
            TwoFactorState::Enrolling => "two-factor authentication is being set up: run confirm",
            _ => "two-factor authentication is off",
        };
        say!("{name} has no authenticators ({why})");
    }
    for a in &list {
        let used = a.last_used_at.map_or_else(|| "unknown".to_owned(), |t| t.to_string());
        say!("{}  added {}  last used {used}  {}", a.id, a.added_at, a.name);
    }
    Ok(())
}

/// `confirm-authenticator NAME --code CODE`.
async fn confirm_authenticator<S: UserStore, M: Mailer, C: Clock>(
    engine: &Engine<S, M, C>,
    name: &str,
    code: &str,
) -> Result<(), Fail> {
    let account = find(engine, name).await?;
    let outcome = match engine.confirm_authenticator(account.id, code).await {
        Err(twofactor::Error::Misuse(Refusal::NoEnrollment)) => {
            return Err(Fail::refused(format!(
                "no authenticator is being added for {name}: run add-authenticator {name} --name LABEL first"
            )));
        }
        other => other?,
    };
    match outcome {
        AddAuthenticatorOutcome::Added { id, notice_delivery } => {
            let delivery = deliver_now(engine, account.id, &notice_delivery).await;
            let label = engine
                .authenticators(account.id)
                .await
                .ok()
                .and_then(|all| all.into_iter().find(|a| a.id == id).map(|a| format!(" ({})", a.name)));
            say!("added authenticator {id}{} for {name}; {name} {}", label.unwrap_or_default(), told(&delivery));
            still_queued(engine, account.id, &notice_delivery, &delivery).await;
            Ok(())
        }
        AddAuthenticatorOutcome::WrongCode => Err(Fail::refused("wrong code; the authenticator is still waiting")),
        _ => Err(Fail::refused("not confirmed")),
    }
}

/// What a command that asks for a fresh factor says and mails.
struct Asked {
    /// The notice its change queues.
    notice: MessageKind,
    /// The refusal of a wrong code.
    wrong: &'static str,
    /// Whether a backup code used for it is replaced by mail (not when 2FA goes off).
    new_code: bool,
}

/// After a call that asked for a fresh factor: on success, sends the mail it queued
/// (its notice, and a new backup code when one was used) and prints `done(told)`;
/// otherwise the refusal.
async fn after_fresh_factor<S: UserStore, M: Mailer, C: Clock>(
    engine: &Engine<S, M, C>,
    account: &AccountView,
    outcome: StepUpOutcome,
    asked: Asked,
    done: impl FnOnce(&str) -> String,
) -> Result<(), Fail> {
    let backup_code_delivery = match outcome {
        StepUpOutcome::Verified { backup_code_delivery, .. } => backup_code_delivery.filter(|_| asked.new_code),
        StepUpOutcome::Denied => return Err(Fail::refused(asked.wrong)),
        StepUpOutcome::Throttled { until } => {
            return Err(Fail::refused(format!("too many failed attempts: try again after {until}")));
        }
        StepUpOutcome::Locked => {
            return Err(Fail::refused(
                "too many failed attempts: the second factor is locked until an administrator unlocks it",
            ));
        }
        _ => return Err(Fail::refused("not verified")),
    };
    let user = account.id;
    let report = engine.deliver_queued(user).await;
    // The notice's id is not returned: it is the newest of its kind this round tried.
    let notice_delivery = match &report {
        Ok(report) => report.messages.iter().rev().find(|(_, kind, _)| *kind == asked.notice).map_or_else(
            || Delivery::Failed("another invocation is sending it".to_owned()),
            |(_, _, delivery)| delivery.clone(),
        ),
        Err(e) => Delivery::Failed(e.to_string()),
    };
    let mut line = done(told(&notice_delivery));
    let code = match &backup_code_delivery {
        Some(queued) => Some((queued, settled(engine, user, queued, report.as_ref()).await)),
        None => None,
    };
    if let Some((_, delivery)) = &code {
        line.push_str(&format!("; a new backup code {}", mailed(delivery)));
    }
    say!("{line}");
    if matches!(notice_delivery, Delivery::Failed(_)) {
        eprintln!("note: the mail stays queued and is tried again by the next command or `deliver`");
    } else if let Some((queued, delivery)) = &code {
        still_queued(engine, user, queued, delivery).await;
    }
    Ok(())
}

/// Users per delivery round of `deliver`.
const DELIVERY_ROUND: usize = 100;

/// `deliver`: every mail that is due, in rounds until a round finds no more.
async fn deliver<S: UserStore, M: Mailer, C: Clock>(engine: &Engine<S, M, C>) -> Result<(), Fail> {
    let (mut sent, mut retrying, mut gave_up) = (0u64, 0u64, 0u64);
    let skipped = loop {
        let round = engine.deliver_due(DELIVERY_ROUND).await?;
        sent += u64::from(round.sent);
        retrying += u64::from(round.retrying);
        gave_up += u64::from(round.gave_up);
        let tried = round.sent + round.retrying + round.gave_up;
        // A round short of the limit saw every user with mail due. A round that tried
        // nothing would find the same users again (their documents cannot be read, or
        // another invocation holds their mail): stop there too.
        let seen = usize::try_from(round.users + round.skipped).unwrap_or(usize::MAX);
        if seen < DELIVERY_ROUND || tried == 0 {
            break round.skipped;
        }
    };
    say!("delivered {}; {retrying} waiting for a retry; {gave_up} given up", messages(sent));
    if skipped > 0 {
        eprintln!("note: the mail of {skipped} user(s) stays queued: their documents cannot be read");
    }
    Ok(())
}

/// "1 message", "2 messages".
fn messages(n: u64) -> String {
    if n == 1 { "1 message".to_owned() } else { format!("{n} messages") }
}

/// How long a command waits for a message another invocation (`deliver`, or a
/// command racing this one) is sending.
const SENDING_ELSEWHERE: Duration = Duration::from_secs(2);

/// Sends `user`'s due mail now that the command's change is committed (the engine only
/// queued it), and answers how the message `queued` names went: `Sent`, or `Failed`
/// (it stays queued for a later command or `deliver`). A fault here is a mail
/// failure, not the command's: its change stands.
async fn deliver_now<S: UserStore, M: Mailer, C: Clock>(
    engine: &Engine<S, M, C>,
    user: UserId,
    queued: &Delivery,
) -> Delivery {
    let report = engine.deliver_queued(user).await;
    settled(engine, user, queued, report.as_ref()).await
}

/// How the message `queued` names went in the delivery round `report`.
async fn settled<S: UserStore, M: Mailer, C: Clock>(
    engine: &Engine<S, M, C>,
    user: UserId,
    queued: &Delivery,
    report: Result<&DeliveryReport, &twofactor::Error>,
) -> Delivery {
    let Some(id) = queued.queued() else {
        return queued.clone();
    };
    match report.map(|r| r.delivery_of(id).cloned()) {
        Ok(Some(delivery)) => delivery,
        Ok(None) => sent_elsewhere(engine, user, id).await,
        Err(e) => Delivery::Failed(e.to_string()),
    }
}

/// Where message `id` ends up when another invocation claimed it first: waits a
/// moment for that one to record its try.
async fn sent_elsewhere<S: UserStore, M: Mailer, C: Clock>(
    engine: &Engine<S, M, C>,
    user: UserId,
    id: MailId,
) -> Delivery {
    let deadline = std::time::Instant::now() + SENDING_ELSEWHERE;
    loop {
        match engine.mail_status(user, id).await {
            Ok(MailStatus::Delivered { .. }) => return Delivery::Sent,
            Ok(MailStatus::GaveUp { .. }) => return Delivery::Failed("given up".to_owned()),
            Ok(MailStatus::Queued { .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(MailStatus::Queued { .. }) => {
                return Delivery::Failed("another invocation is still sending it".to_owned());
            }
            Ok(_) => return Delivery::Failed("a newer message replaced it".to_owned()),
            Err(e) => return Delivery::Failed(e.to_string()),
        }
    }
}

/// After a line saying the mail `queued` names could not be sent: a note on stderr
/// that it is not lost, if it still waits for another try.
async fn still_queued<S: UserStore, M: Mailer, C: Clock>(
    engine: &Engine<S, M, C>,
    user: UserId,
    queued: &Delivery,
    delivery: &Delivery,
) {
    let Some(id) = queued.queued().filter(|_| !delivery.is_sent()) else {
        return;
    };
    if let Ok(MailStatus::Queued { .. }) = engine.mail_status(user, id).await {
        eprintln!("note: the mail stays queued and is tried again by the next command or `deliver`");
    }
}

/// `keys`: each key of the ring, newest first, with the documents that need it.
async fn list_keys<S: UserStore, M: Mailer, C: Clock>(engine: &Engine<S, M, C>) -> Result<(), Fail> {
    let usage = engine.key_usage().await?;
    let ids = engine.keys().ids();
    for (i, id) in ids.iter().enumerate() {
        let newest = if i == 0 { " (newest)" } else { "" };
        say!("key {id}{newest}: {}", documents(usage.by_key.get(id).copied().unwrap_or(0)));
    }
    let mut missing = 0;
    for (id, n) in usage.by_key.iter().filter(|(id, _)| !ids.contains(id)) {
        say!("key {id} (not in the key file): {}", documents(*n));
        missing += n;
    }
    say!("without a secret: {}", usage.without_secret);
    if missing > 0 {
        eprintln!(
            "note: {} need keys the key file lacks: put them back, or those users cannot log in",
            documents(missing)
        );
    }
    Ok(())
}

/// `reseal`: every secret under the newest key, with a progress bar on a terminal.
async fn reseal<S: UserStore, M: Mailer, C: Clock>(engine: &Engine<S, M, C>, key_file: &Path) -> Result<(), Fail> {
    let bar = if std::io::stderr().is_terminal() {
        let total = engine.key_usage().await?.documents;
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("re-sealing {bar:40} {pos}/{len} documents") {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let result = engine.reseal(None, |progress| bar.set_position(progress.scanned)).await;
    bar.finish_and_clear();
    match result {
        Ok(report) => {
            say!("resealed {} of {}", report.resealed, documents(report.scanned));
            Ok(())
        }
        Err(twofactor::Error::UnknownKey { key_id }) => Err(Fail::refused(format!(
            "a TOTP secret is sealed under key {key_id}, which {} does not hold: put that key back \
             (below the newest), then run reseal again",
            key_file.display()
        ))),
        Err(e) => Err(e.into()),
    }
}

/// `retire-key ID`: the ring without key `id`, written back once no document needs it.
async fn retire_key<S: UserStore, M: Mailer, C: Clock>(
    engine: &Engine<S, M, C>,
    key_file: &Path,
    id: u32,
) -> Result<(), Fail> {
    let ids = engine.keys().ids();
    if ids.first() == Some(&id) {
        return Err(Fail::refused(format!(
            "key {id} is the newest: it seals new secrets and cannot be retired (add a newer one with keygen first)"
        )));
    }
    if !ids.contains(&id) {
        let held: Vec<String> = ids.iter().map(u32::to_string).collect();
        return Err(Fail::refused(format!("no key {id} in {} (it holds {})", key_file.display(), held.join(", "))));
    }
    match engine.retire_key(id).await {
        Ok(ring) => {
            write_key_file(key_file, &ring)?;
            say!("retired key {id}");
            Ok(())
        }
        Err(twofactor::Error::KeyInUse { key_id, documents: n }) => {
            Err(Fail::refused(format!("key {key_id} still seals {}: run reseal first", documents(n))))
        }
        Err(e) => Err(e.into()),
    }
}

/// "1 document", "2 documents".
fn documents(n: u64) -> String {
    if n == 1 { "1 document".to_owned() } else { format!("{n} documents") }
}

/// The CLI's answer to a mistyped login input, unchanged since 0.1.0 ("refused:
/// invalid input: …", exit 1). The engine now answers typos as outcomes (`Denied`,
/// counting nothing), so the CLI checks the shape itself first, with the same limits.
fn typed_login(name: &str, password: &str, policy: &twofactor::Policy) -> Result<(), Fail> {
    let too_long = |field, max| Fail::from(twofactor::Error::from(twofactor::InputError::TooLong { field, max }));
    if name.len() > 64 * 4 || name.chars().count() > 64 {
        return Err(too_long("username", 64));
    }
    let max = policy.password().max_chars.max(64);
    if password.len() > 4096 || password.chars().count() > max {
        return Err(too_long("password", max));
    }
    Ok(())
}

/// See [`typed_login`]: a code that is not a code, worded as before.
fn typed_code(code: &Code) -> Result<(), Fail> {
    let checked = match code {
        Code::Totp(c) => twofactor::totp::TotpCode::parse(c, 6)
            .or_else(|e| twofactor::totp::TotpCode::parse(c, 8).map_err(|_| e))
            .map(drop),
        Code::Backup(c) => twofactor::BackupCode::parse(c.expose()).map(drop),
    };
    checked.map_err(|e| Fail::from(twofactor::Error::from(e)))
}

async fn login<S: UserStore, M: Mailer, C: Clock>(
    engine: &Engine<S, M, C>,
    name: &str,
    password: &str,
    code: Option<Code>,
    remember: bool,
    device: Option<&str>,
) -> Result<(), Fail> {
    typed_login(name, password, engine.policy())?;
    let pending = match engine.begin_login(name, password, device).await? {
        LoginOutcome::Authenticated(auth) => return logged_in(engine, &auth, remember).await,
        LoginOutcome::SecondFactorRequired(pending) => pending,
        LoginOutcome::EnrollmentRequired(_) => {
            return Err(Fail::refused(format!("{name} must set up two-factor authentication first")));
        }
        LoginOutcome::Busy { .. } => return Err(Fail::refused("the server is busy; try again in a moment")),
        _ => return Err(Fail::refused("wrong username or password, or too many failed attempts")),
    };
    let Some(code) = code else {
        return Err(Fail::refused(format!("{name} needs a second factor: pass --code CODE or --backup-code CODE")));
    };
    typed_code(&code)?;
    let factor = factor_of(&code);
    let label = remember.then_some(LOCATION_LABEL);
    match engine.finish_login(pending.token(), factor, label).await? {
        SecondFactorOutcome::Authenticated(auth) => logged_in(engine, &auth, remember).await,
        SecondFactorOutcome::Denied { attempts_left } => {
            Err(Fail::refused(format!("wrong code ({attempts_left} attempts left on this login)")))
        }
        SecondFactorOutcome::Locked { until: Some(until) } => {
            Err(Fail::refused(format!("too many failed attempts: try again after {until}")))
        }
        SecondFactorOutcome::Locked { until: None } => {
            Err(Fail::refused("too many failed attempts: the second factor is locked until an administrator resets it"))
        }
        _ => Err(Fail::refused("the login expired: start again")),
    }
}

/// Says who logged in and how, once the login's mail is sent (a refused login sends
/// none: its answer never waits on mail).
async fn logged_in<S: UserStore, M: Mailer, C: Clock>(
    engine: &Engine<S, M, C>,
    auth: &Authenticated,
    remember: bool,
) -> Result<(), Fail> {
    let how = match auth.method {
        AuthMethod::Password => "password",
        AuthMethod::PasswordAndLocation => "password from a remembered location",
        AuthMethod::PasswordAndTotp => "password and authenticator code",
        AuthMethod::PasswordAndBackupCode => "password and backup code",
        _ => "password and second factor",
    };
    match &auth.backup_code_delivery {
        Some(queued) => {
            let delivery = deliver_now(engine, auth.account, queued).await;
            say!("logged in as {} ({how}); a new backup code {}", auth.username, mailed(&delivery));
            still_queued(engine, auth.account, queued, &delivery).await;
        }
        None => {
            // Other mail the login queued (a new-location notice, if the policy asks):
            // sent like the rest; its result changes nothing here.
            let _ = engine.deliver_queued(auth.account).await;
            say!("logged in as {} ({how})", auth.username);
        }
    }
    match &auth.remembered {
        Some(token) => say!("remember-token: {}", token.token()),
        None if remember => eprintln!("note: nothing to remember: this login used no code"),
        None => {}
    }
    Ok(())
}

/// "was told by mail", or not.
fn told(delivery: &Delivery) -> &'static str {
    if delivery.is_sent() { "was told by mail" } else { "could not be told by mail" }
}

fn mailed(delivery: &Delivery) -> String {
    match delivery {
        Delivery::Sent => "was mailed".to_owned(),
        failed => format!("could not be mailed ({failed})"),
    }
}

async fn find<S: UserStore, M: Mailer, C: Clock>(engine: &Engine<S, M, C>, name: &str) -> Result<AccountView, Fail> {
    engine.account_by_username(name).await?.ok_or_else(|| Fail::refused(format!("no user named {name}")))
}

/// One line from stdin, without its line ending.
fn read_password() -> Result<Zeroizing<String>, Fail> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password (it will show as you type): ");
        let _ = std::io::stderr().flush();
    }
    let mut line = Zeroizing::new(String::new());
    let read = stdin.lock().read_line(&mut line).map_err(|e| Fail::usage(format!("cannot read the password: {e}")))?;
    if read == 0 {
        return Err(Fail::usage("expected the password as one line on stdin"));
    }
    let len = line.trim_end_matches(['\n', '\r']).len();
    line.truncate(len);
    Ok(line)
}

/// Refuses a `--db` whose folder does not exist, or that is itself a folder, before
/// anything (the key, the database) is created.
fn check_db_path(db: &Path) -> Result<(), Fail> {
    let folder = db.parent().filter(|f| !f.as_os_str().is_empty()).unwrap_or(Path::new("."));
    match std::fs::metadata(folder) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(Fail::refused(format!(
                "cannot use the database {}: {} is not a folder",
                db.display(),
                folder.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Fail::refused(format!(
                "cannot use the database {}: the folder {} does not exist (create it, or give another --db)",
                db.display(),
                folder.display()
            )));
        }
        Err(e) => {
            return Err(Fail::refused(format!(
                "cannot use the database {}: folder {}: {e}",
                db.display(),
                folder.display()
            )));
        }
    }
    match std::fs::metadata(db) {
        Ok(meta) if meta.is_dir() => Err(Fail::refused(format!(
            "cannot use the database {}: it is a folder (--db names the database file)",
            db.display()
        ))),
        _ => Ok(()),
    }
}

/// Creates the database file, empty, with mode 0600 like its key, unless it exists.
/// SQLite opens an empty file as an empty database, and gives the `-wal` and `-shm`
/// files it creates beside it the database file's mode.
fn create_database(db: &Path) -> Result<(), Fail> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(db) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Fail::refused(format!("cannot create the database {}: {e}", db.display()))),
    }
}

/// Removes a temporary file when dropped: on every way out, a panic included.
struct RemoveOnDrop<'a>(&'a Path);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

/// `PATH.key` beside the database.
fn key_path(db: &Path) -> PathBuf {
    with_suffix(db, ".key")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Reads the application's keys ([`KeyRing::from_file`]: 0.1.0's 64 hex digits or
/// `tfk1.` lines), creating the file on first use as 0.1.0 did: one key, 64 hex digits,
/// mode 0600.
fn load_keys(path: &Path) -> Result<KeyRing, Fail> {
    if !path.exists() {
        let mut material = Zeroizing::new([0u8; 32]);
        getrandom::fill(material.as_mut()).map_err(|e| Fail::refused(format!("no randomness: {e}")))?;
        let hex = Zeroizing::new(data_encoding::HEXLOWER.encode(material.as_ref()));
        create_key_file(path, hex.as_bytes())?;
    }
    KeyRing::from_file(path).map_err(|e| key_fault(path, e))
}

/// A key file that cannot be used, named by its path; never its content.
fn key_fault(path: &Path, err: KeyError) -> Fail {
    match err {
        KeyError::Read { source, .. } => Fail::refused(format!("application key {}: {source}", path.display())),
        other => Fail::refused(format!("application key {}: {other}", path.display())),
    }
}

fn key_file_fault(path: &Path, err: std::io::Error) -> Fail {
    Fail::refused(format!("application key {}: {err}", path.display()))
}

/// Creates the key file holding `contents`, unless it exists (then `false`). Race-free:
/// the key is written to a temporary file (mode 0600) and hard-linked into place,
/// which fails if another invocation got there first; its key is then the one used.
fn create_key_file(path: &Path, contents: &[u8]) -> Result<bool, Fail> {
    let temp = with_suffix(path, &format!(".{}.tmp", std::process::id()));
    let _remove = RemoveOnDrop(&temp);
    write_private(&temp, contents).map_err(|e| key_file_fault(path, e))?;
    match std::fs::hard_link(&temp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(key_file_fault(path, e)),
    }
}

/// Replaces the key file with `ring`, one `tfk1.` line per key, newest first:
/// atomically (a temporary file with mode 0600, flushed to disk, renamed over it, and
/// the rename flushed too), so a reader sees the old ring or the new one, never part.
fn write_key_file(path: &Path, ring: &KeyRing) -> Result<(), Fail> {
    let temp = with_suffix(path, &format!(".{}.tmp", std::process::id()));
    let _remove = RemoveOnDrop(&temp);
    write_private(&temp, ring.to_text().as_bytes()).map_err(|e| key_file_fault(path, e))?;
    std::fs::rename(&temp, path).map_err(|e| key_file_fault(path, e))?;
    sync_folder(path).map_err(|e| key_file_fault(path, e))
}

/// Flushes the folder holding `path`, so a rename in it survives a power loss.
fn sync_folder(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let folder = path.parent().filter(|f| !f.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::File::open(folder)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// `keygen`: a fresh key as the newest, written to the key file (created if missing).
fn keygen(path: &Path) -> Result<(), Fail> {
    let _lock = KeyFileLock::take(path)?;
    if !path.exists() {
        let ring = KeyRing::new(vec![AppKey::generate(1)?]).map_err(twofactor::Error::from)?;
        if create_key_file(path, ring.to_text().as_bytes())? {
            say!("added key {}", ring.current().id());
            return Ok(());
        }
        // Another invocation created it meanwhile (on first use): add to that.
    }
    let ring = KeyRing::from_file(path).map_err(|e| key_fault(path, e))?.with_new_key()?;
    write_key_file(path, &ring)?;
    say!("added key {}", ring.current().id());
    Ok(())
}

/// `PATH.key.lock`, locked while held: `keygen` and `retire-key` hold it from reading
/// the key file to writing it back, so neither overwrites a key the other just wrote.
/// (Other commands only read the file, which a rename replaces whole.)
struct KeyFileLock {
    _file: std::fs::File,
}

impl KeyFileLock {
    fn take(key_file: &Path) -> Result<KeyFileLock, Fail> {
        let path = with_suffix(key_file, ".lock");
        let fail = |e: std::io::Error| Fail::refused(format!("key file lock {}: {e}", path.display()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&path).map_err(fail)?;
        file.lock().map_err(fail)?;
        Ok(KeyFileLock { _file: file })
    }
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}
