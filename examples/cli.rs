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
//! ```
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
//! ```
//!
//! # What it keeps
//!
//! - `--db PATH` (default `./twofactor-cli.db`): the SQLite database. Several
//!   invocations at once on one file are safe: the store uses WAL mode and a busy
//!   timeout, and every change is a compare-and-swap, so of several logins racing one
//!   backup code exactly one wins.
//! - `PATH.key` beside it (`./twofactor-cli.db.key`): the application key, 64 hex
//!   digits, created with mode 0600 on first use. It seals the TOTP secrets in the
//!   database and signs pending logins: without it the enrolled secrets cannot be
//!   opened, so keep it with the database (and, in a real application, in a secrets
//!   manager rather than a file).
//! - `--outbox DIR` (default `./outbox`): one RFC 5322 file per mail
//!   ([`FileOutbox`]); the names sort in sending order.
//!
//! `reset` trusts `--by`: a real application authenticates the administrator first.
//! The environment variable `TWOFACTOR_CLI_NOW=UNIX_SECONDS` is a testing aid: it
//! fixes the clock (TOTP codes, expiries) for one invocation.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;
use twofactor::mail::FileOutbox;
use twofactor::{
    AccountView, AppKey, AuthMethod, Authenticated, Clock, ConfirmOutcome, Delivery, Engine, KeyRing, LoginOutcome,
    MailError, Mailer, ManualClock, NewAccount, Policy, ResetOutcome, Role, SecondFactor, SecondFactorOutcome,
    SecretString, SystemClock, Timestamp, UserStore,
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

options:
  --db PATH      the SQLite database (default ./twofactor-cli.db; its key is PATH.key)
  --outbox DIR   where mail is written, one file per mail (default ./outbox)
  --smtp URL     send mail through SMTP instead (smtp://, smtp://…?tls=starttls, smtps://;
                 needs `--features smtp`); the From address is TWOFACTOR_CLI_FROM or
                 twofactor <no-reply@localhost>. A URL with a password is better given
                 as TWOFACTOR_CLI_SMTP_URL, which keeps it out of `ps` and shell history
  --help         this text

exit status: 0 done, 1 refused (reason on stderr), 2 usage error";

/// The label a remembered location gets.
const LOCATION_LABEL: &str = "twofactor command line";

/// The store. Everything below is generic over [`UserStore`]; this alias and
/// [`open_store`] are the only places that name the backend.
type Store = twofactor::SqliteStore;

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
    Help,
    AddUser { name: String, email: String, role: Role },
    Enroll { name: String },
    Confirm { name: String, code: String },
    Login { name: String, code: Option<Code>, remember: bool, device: Option<String> },
    Reset { name: String, by: String, verified_by: String },
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
];
/// Options without a value.
const SWITCHES: &[&str] = &["--remember", "--help"];
/// Options every command accepts.
const GLOBAL_OPTIONS: &[&str] = &["--db", "--outbox", "--smtp", "--help"];

/// The command line, split into positional arguments and options.
struct Parsed {
    positional: Vec<String>,
    options: Vec<(&'static str, String)>,
}

impl Parsed {
    fn new(args: impl Iterator<Item = String>) -> Result<Parsed, Fail> {
        let mut parsed = Parsed { positional: Vec::new(), options: Vec::new() };
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            if !arg.starts_with("--") {
                parsed.positional.push(arg);
                continue;
            }
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (arg.as_str(), None),
            };
            let (known, value) = if let Some(known) = VALUE_OPTIONS.iter().find(|o| **o == name) {
                let value = match inline {
                    Some(v) => v,
                    None => args.next().ok_or_else(|| Fail::usage(format!("{name} needs a value")))?,
                };
                (*known, value)
            } else if let Some(known) = SWITCHES.iter().find(|o| **o == name) {
                if inline.is_some() {
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
        Ok(parsed)
    }

    fn option(&self, name: &str) -> Option<&str> {
        self.options.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &str) -> Result<String, Fail> {
        self.option(name).map(str::to_owned).ok_or_else(|| Fail::usage(format!("{name} is required")))
    }

    /// Checks the command's shape: its positional arguments and which options it takes.
    fn expect(&self, command: &str, operands: &[&str], options: &[&str]) -> Result<(), Fail> {
        if let Some((name, _)) = self.options.iter().find(|(n, _)| !options.contains(n) && !GLOBAL_OPTIONS.contains(n))
        {
            return Err(Fail::usage(format!("{command} does not take {name}")));
        }
        if self.positional.len() != operands.len() + 1 {
            return Err(Fail::usage(format!("expected: {command} {}", operands.join(" "))));
        }
        Ok(())
    }
}

fn parse(args: impl Iterator<Item = String>, now: Option<String>) -> Result<Invocation, Fail> {
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
        _ if p.option("--help").is_some() => Command::Help,
        None => return Err(Fail::usage("no command given (try --help)")),
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
        Some(other) => return Err(Fail::usage(format!("unknown command {other} (try --help)"))),
    };
    Ok(Invocation { db, transport, clock, command })
}

fn main() -> ExitCode {
    let invocation = parse(std::env::args().skip(1), std::env::var("TWOFACTOR_CLI_NOW").ok());
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
    if let Command::Help = inv.command {
        println!("{USAGE}");
        return Ok(());
    }
    // Read stdin before opening anything, so a missing password changes nothing.
    let password = match &inv.command {
        Command::AddUser { .. } | Command::Login { .. } => Some(read_password()?),
        _ => None,
    };
    let keys = KeyRing::new(vec![app_key(&key_path(&inv.db))?]).map_err(|e| Fail::refused(e.to_string()))?;
    let store = open_store(&inv.db).await?;
    let work = Work { clock: inv.clock, keys, command: inv.command, password };
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
    command: Command,
    password: Option<Zeroizing<String>>,
}

async fn execute<S: UserStore, M: Mailer + 'static>(store: S, mailer: M, work: Work) -> Result<(), Fail> {
    let Work { clock, keys, command, password } = work;
    let engine = Engine::builder(store, mailer, keys).clock(clock).policy(Policy::default()).build()?;
    let password = password.as_ref().map_or("", |p| p.as_str());
    match command {
        Command::Help => Ok(()),
        Command::AddUser { name, email, role } => {
            engine.create_account(NewAccount::new(&name, &email, role, password)).await?;
            println!("added {role} {name}");
            Ok(())
        }
        Command::Enroll { name } => {
            let account = find(&engine, &name).await?;
            let started = engine.start_enrollment(account.id).await?;
            let uri = started.uri.expose();
            println!("{uri}");
            if let Ok(qr) = QrCode::new(uri.as_bytes()) {
                let art = qr.render::<Dense1x2>().dark_color(Dense1x2::Light).light_color(Dense1x2::Dark).build();
                println!("{art}");
            }
            eprintln!("scan it, then run: confirm {name} CODE");
            Ok(())
        }
        Command::Confirm { name, code } => {
            let account = find(&engine, &name).await?;
            match engine.confirm_enrollment(account.id, &code).await? {
                ConfirmOutcome::Confirmed { backup_code_delivery } => {
                    println!(
                        "two-factor authentication is on for {name}; the backup code {}",
                        mailed(&backup_code_delivery)
                    );
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
                    let told = if notice_delivery.is_sent() { "was told by mail" } else { "could not be told by mail" };
                    println!("two-factor authentication for {name} was reset by {by}; {name} {told}");
                    Ok(())
                }
                _ => Err(Fail::refused(format!(
                    "{by} ({}) may not reset {name} ({}): an admin resets users, only support resets an admin",
                    actor.role, target.role
                ))),
            }
        }
    }
}

async fn login<S: UserStore, M: Mailer, C: Clock>(
    engine: &Engine<S, M, C>,
    name: &str,
    password: &str,
    code: Option<Code>,
    remember: bool,
    device: Option<&str>,
) -> Result<(), Fail> {
    let pending = match engine.begin_login(name, password, device).await? {
        LoginOutcome::Authenticated(auth) => return logged_in(&auth, remember),
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
    let factor = match &code {
        Code::Totp(c) => SecondFactor::Totp(c),
        Code::Backup(c) => SecondFactor::BackupCode(c.expose()),
    };
    let label = remember.then_some(LOCATION_LABEL);
    match engine.finish_login(pending.token(), factor, label).await? {
        SecondFactorOutcome::Authenticated(auth) => logged_in(&auth, remember),
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

fn logged_in(auth: &Authenticated, remember: bool) -> Result<(), Fail> {
    let how = match auth.method {
        AuthMethod::Password => "password",
        AuthMethod::PasswordAndLocation => "password from a remembered location",
        AuthMethod::PasswordAndTotp => "password and authenticator code",
        AuthMethod::PasswordAndBackupCode => "password and backup code",
        _ => "password and second factor",
    };
    print!("logged in as {} ({how})", auth.username);
    match &auth.backup_code_delivery {
        Some(d) => println!("; a new backup code {}", mailed(d)),
        None => println!(),
    }
    match &auth.remembered {
        Some(token) => println!("remember-token: {}", token.token()),
        None if remember => eprintln!("note: nothing to remember: this login used no code"),
        None => {}
    }
    Ok(())
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

/// `PATH.key` beside the database.
fn key_path(db: &Path) -> PathBuf {
    with_suffix(db, ".key")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Reads the application key, creating it (mode 0600) on first use. Creation is
/// race-free: the key is written to a temporary file and hard-linked into place, which
/// fails if another invocation got there first, and then its key is read.
fn app_key(path: &Path) -> Result<AppKey, Fail> {
    let fail = |e: std::io::Error| Fail::refused(format!("application key {}: {e}", path.display()));
    if !path.exists() {
        let mut material = Zeroizing::new([0u8; 32]);
        getrandom::fill(material.as_mut()).map_err(|e| Fail::refused(format!("no randomness: {e}")))?;
        let hex = Zeroizing::new(data_encoding::HEXLOWER.encode(material.as_ref()));
        let temp = with_suffix(path, &format!(".{}.tmp", std::process::id()));
        write_private(&temp, hex.as_bytes()).map_err(fail)?;
        let linked = std::fs::hard_link(&temp, path);
        let _ = std::fs::remove_file(&temp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail(e)),
        }
    }
    let hex = Zeroizing::new(std::fs::read_to_string(path).map_err(fail)?);
    AppKey::from_hex(1, &hex).map_err(|e| Fail::refused(format!("application key {}: {e}", path.display())))
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
