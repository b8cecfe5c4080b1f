//! Drives the built `cli` example (`examples/cli.rs`) as a user would from a shell:
//! the whole seed story on one SQLite file and one outbox directory, refusals, usage
//! errors, help, and concurrent invocations racing one backup code; and the
//! `quickstart` example (`examples/quickstart.rs`) piped into a reader that stops early.
//!
//! `cargo test` builds the examples before running this; with `--test cli` alone, run
//! `cargo build --examples` first. Each invocation gets a fixed clock through
//! `TWOFACTOR_CLI_NOW`, so TOTP codes are deterministic.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use twofactor::BackupCode;
use twofactor::otpauth::parse_otpauth_uri;
use twofactor::totp::generate;

const ALICE_PW: &str = "correct horse battery";
const BOB_PW: &str = "admin horse battery";
/// A TOTP step boundary (divisible by 30), so `T0 + 30 * n` is step n after it.
const T0: u64 = 1_800_000_000;

/// `target/debug/examples/cli`, beside the `deps` folder this test runs from.
fn cli_binary() -> PathBuf {
    example_binary("cli")
}

/// `target/debug/examples/NAME`, beside the `deps` folder this test runs from.
fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("the test binary lives in target/PROFILE/deps");
    let bin = profile_dir.join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "the {name} example is not built at {}: run `cargo test` (which builds examples) or `cargo build --example {name}` first",
        bin.display()
    );
    bin
}

/// What one invocation did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().expect("exited normally"),
            stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
            stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
        }
    }

    #[track_caller]
    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success; stdout: {} stderr: {}", self.stdout, self.stderr);
        self
    }

    /// A refusal: exit 1 and exactly one line on stderr.
    #[track_caller]
    fn refused(self) -> Run {
        assert_eq!(self.code, 1, "expected a refusal; stdout: {} stderr: {}", self.stdout, self.stderr);
        assert_eq!(self.stderr.lines().count(), 1, "one line on stderr: {:?}", self.stderr);
        self
    }

    /// A usage error: exit 2 and exactly one line on stderr.
    #[track_caller]
    fn usage_error(self) -> Run {
        assert_eq!(self.code, 2, "expected a usage error; stdout: {} stderr: {}", self.stdout, self.stderr);
        assert_eq!(self.stderr.lines().count(), 1, "one line on stderr: {:?}", self.stderr);
        self
    }
}

/// A working directory with the default `./twofactor-cli.db` and `./outbox`.
struct Shell {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Shell {
    fn new() -> Shell {
        Shell { dir: tempfile::tempdir().expect("temp dir"), bin: cli_binary() }
    }

    fn command(&self, args: &[impl AsRef<OsStr>], now: u64) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args).current_dir(self.dir.path()).env("TWOFACTOR_CLI_NOW", now.to_string());
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }

    /// Runs the CLI at time `now` with `stdin` (a password line) and waits.
    fn run(&self, args: &[impl AsRef<OsStr>], stdin: &str, now: u64) -> Run {
        let mut child = self.command(args, now).spawn().expect("spawn the cli");
        feed(&mut child, stdin);
        Run::from(child.wait_with_output().expect("wait"))
    }

    /// The outbox's mails, oldest first.
    fn mails(&self) -> Vec<String> {
        mails_in(&self.dir.path().join("outbox"))
    }

    fn add_user(&self, name: &str, role: &str, password: &str) {
        let email = format!("{name}@example.test");
        let out = self.run(&["add-user", name, "--email", &email, "--role", role], &format!("{password}\n"), T0).ok();
        assert_eq!(out.stdout.trim(), format!("added {role} {name}"));
    }

    /// Enrolls and confirms `name` at `T0`; returns the TOTP secret and parameters.
    fn enroll(&self, name: &str) -> twofactor::otpauth::OtpauthUri {
        self.enroll_at(name, T0)
    }

    /// Enrolls and confirms `name` at time `at`.
    fn enroll_at(&self, name: &str, at: u64) -> twofactor::otpauth::OtpauthUri {
        let out = self.run(&["enroll", name], "", at).ok();
        let uri = out.stdout.lines().find(|l| l.starts_with("otpauth://")).expect("a line with the otpauth:// URI");
        assert!(out.stdout.lines().count() > 10, "a QR code follows the URI");
        let parsed = parse_otpauth_uri(uri).expect("a valid otpauth URI");
        assert_eq!(parsed.account, name);
        let code = totp(&parsed, at);
        self.run(&["confirm", name, &code], "", at).ok();
        parsed
    }
}

fn feed(child: &mut std::process::Child, stdin: &str) {
    use std::io::Write;
    let mut pipe = child.stdin.take().expect("stdin");
    pipe.write_all(stdin.as_bytes()).expect("write stdin");
}

fn totp(uri: &twofactor::otpauth::OtpauthUri, at: u64) -> String {
    generate(uri.secret.expose(), &uri.params, at).expose().to_owned()
}

fn mails_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the outbox exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    names.sort();
    names.iter().map(|p| std::fs::read_to_string(p).expect("read mail")).collect()
}

fn header<'a>(mail: &'a str, name: &str) -> Option<&'a str> {
    let head = mail.split("\r\n\r\n").next()?;
    head.split("\r\n").find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

/// The body lines of a mail that are exactly one backup code.
fn codes_in(mail: &str) -> Vec<String> {
    let body = mail.split_once("\r\n\r\n").expect("headers, blank line, body").1;
    body.lines().filter(|l| l.len() == 19 && BackupCode::parse(l).is_ok()).map(str::to_owned).collect()
}

/// The backup code in a mail, on a line of its own.
fn backup_code(mail: &str) -> String {
    let codes = codes_in(mail);
    assert_eq!(codes.len(), 1, "one code on a line of its own in: {mail}");
    codes[0].clone()
}

#[test]
fn the_seed_story_from_a_shell() {
    let sh = Shell::new();
    sh.add_user("alice", "user", ALICE_PW);
    sh.add_user("bob", "admin", BOB_PW);
    let key = std::fs::read_to_string(sh.dir.path().join("twofactor-cli.db.key")).unwrap();
    assert!(key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()), "64 hex digits");
    let alice = sh.enroll("alice");
    let pw = &format!("{ALICE_PW}\n");

    // The setup mail carries the first backup code.
    let mails = sh.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(header(&mails[0], "To"), Some("alice@example.test"));
    assert!(header(&mails[0], "Subject").is_some());
    let first_code = backup_code(&mails[0]);

    // The password alone is not enough any more.
    let out = sh.run(&["login", "alice"], pw, T0 + 30).refused();
    assert!(out.stderr.contains("--code"), "{}", out.stderr);

    // Password and authenticator code (a later step than the one confirm used).
    let out = sh.run(&["login", "alice", "--code", &totp(&alice, T0 + 30)], pw, T0 + 30).ok();
    assert!(out.stdout.contains("logged in as alice"), "{}", out.stdout);

    // A wrong code is refused, in one line.
    let wrong = format!("{:06}", (totp(&alice, T0 + 60).parse::<u32>().unwrap() + 1) % 1_000_000);
    let out = sh.run(&["login", "alice", "--code", &wrong], pw, T0 + 60).refused();
    assert!(out.stderr.contains("wrong code"), "{}", out.stderr);

    // "I don't have my device": the backup code works once and is replaced by mail.
    let out = sh.run(&["login", "alice", "--backup-code", &first_code], pw, T0 + 60).ok();
    assert_eq!(out.stdout, "logged in as alice (password and backup code); a new backup code was mailed\n");
    sh.run(&["login", "alice", "--backup-code", &first_code], pw, T0 + 60).refused();
    let mails = sh.mails();
    assert_eq!(mails.len(), 2);
    let rotated = backup_code(mails.last().unwrap());
    assert_ne!(rotated, first_code);
    sh.run(&["login", "alice", "--backup-code", &rotated], pw, T0 + 60).ok();
    assert_eq!(sh.mails().len(), 3);

    // Remember this location; then it needs the password only.
    let out = sh.run(&["login", "alice", "--code", &totp(&alice, T0 + 90), "--remember"], pw, T0 + 90).ok();
    let token = out.stdout.lines().find_map(|l| l.strip_prefix("remember-token: ")).expect("a remember-token line");
    let out = sh.run(&["login", "alice", "--device", token], pw, T0 + 120).ok();
    assert!(out.stdout.contains("remembered location"), "{}", out.stdout);
    sh.run(&["login", "alice", "--device", "not-a-token"], pw, T0 + 120).refused();

    // bob (admin) resets alice's 2FA; alice is told by mail and logs in with her password.
    let out = sh.run(&["reset", "alice", "--by", "bob", "--verified-by", "video call, photo ID"], "", T0 + 150).ok();
    assert_eq!(out.stdout, "two-factor authentication for alice was reset by bob; alice was told by mail\n");
    let notice = sh.mails().pop().unwrap();
    assert_eq!(header(&notice, "To"), Some("alice@example.test"));
    assert!(notice.contains("bob"), "{notice}");
    let out = sh.run(&["login", "alice"], pw, T0 + 180).ok();
    assert!(out.stdout.contains("logged in as alice (password)"), "{}", out.stdout);
    // The secret went with the reset ...
    sh.run(&["confirm", "alice", &totp(&alice, T0 + 180)], "", T0 + 180).refused();
    // ... and so did the remembered location: with 2FA set up again, it skips nothing.
    sh.enroll_at("alice", T0 + 210);
    let out = sh.run(&["login", "alice", "--device", token], pw, T0 + 240).refused();
    assert!(out.stderr.contains("--code"), "{}", out.stderr);
}

#[test]
fn resets_follow_the_role_rules() {
    let sh = Shell::new();
    sh.add_user("alice", "user", ALICE_PW);
    sh.add_user("carol", "user", ALICE_PW);
    sh.add_user("bob", "admin", BOB_PW);
    sh.add_user("dave", "admin", BOB_PW);
    sh.add_user("sue", "support", BOB_PW);
    sh.enroll("alice");
    let reset = |name: &str, by: &str| sh.run(&["reset", name, "--by", by, "--verified-by", "phone call"], "", T0 + 30);
    let out = reset("alice", "carol").refused();
    assert!(out.stderr.contains("may not reset"), "{}", out.stderr);
    reset("bob", "dave").refused();
    reset("bob", "bob").refused();
    reset("alice", "nobody").refused();
    reset("alice", "bob").ok();
    reset("bob", "sue").ok();
}

#[test]
fn refusals_are_one_line_and_exit_1() {
    let sh = Shell::new();
    sh.add_user("alice", "user", ALICE_PW);
    sh.run(&["add-user", "alice", "--email", "a@example.test"], "another password\n", T0).refused();
    sh.run(&["add-user", "x", "--email", "a@example.test"], "short\n", T0).refused();
    sh.run(&["login", "alice"], "wrong password\n", T0).refused();
    sh.run(&["login", "nobody"], "wrong password\n", T0).refused();
    sh.run(&["enroll", "nobody"], "", T0).refused();
    sh.run(&["confirm", "alice", "123456"], "", T0).refused();
    let alice = sh.enroll("alice");
    sh.run(&["enroll", "alice"], "", T0).refused();
    let wrong = format!("{:06}", (totp(&alice, T0 + 30).parse::<u32>().unwrap() + 1) % 1_000_000);
    sh.run(&["login", "alice", "--code", &wrong], &format!("{ALICE_PW}\n"), T0 + 30).refused();
    sh.run(&["login", "alice", "--backup-code", "nope"], &format!("{ALICE_PW}\n"), T0 + 30).refused();
}

/// Mistyped login input keeps its 0.1.0 line ("refused: invalid input: …", exit 1),
/// although the engine now answers typos as outcomes rather than errors.
#[test]
fn mistyped_login_input_keeps_its_lines() {
    let sh = Shell::new();
    sh.add_user("alice", "user", ALICE_PW);
    sh.enroll("alice");
    let pw = format!("{ALICE_PW}\n");
    let line = |run: Run| run.refused().stderr.trim_end().to_owned();
    let long_pw = format!("{}\n", "p".repeat(300));
    assert_eq!(
        line(sh.run(&["login", "alice"], &long_pw, T0 + 30)),
        "refused: invalid input: password is too long (at most 256 characters)"
    );
    assert_eq!(
        line(sh.run(&["login", &"u".repeat(65)], &pw, T0 + 30)),
        "refused: invalid input: username is too long (at most 64 characters)"
    );
    let totp_error = twofactor::totp::TotpCode::parse("12x456", 6).unwrap_err();
    assert_eq!(
        line(sh.run(&["login", "alice", "--code", "12x456"], &pw, T0 + 30)),
        format!("refused: invalid input: {totp_error}")
    );
    let backup_error = twofactor::BackupCode::parse("K7QX-M2PD-9WRT-H4N!").unwrap_err();
    assert_eq!(
        line(sh.run(&["login", "alice", "--backup-code", "K7QX-M2PD-9WRT-H4N!"], &pw, T0 + 30)),
        format!("refused: invalid input: {backup_error}")
    );
}

#[test]
fn usage_errors_exit_2() {
    let sh = Shell::new();
    for args in [
        &[][..],
        &["frobnicate"],
        &["add-user", "alice"],
        &["add-user", "alice", "--email", "a@example.test", "--role", "king"],
        &["add-user", "--email", "a@example.test"],
        &["enroll"],
        &["enroll", "alice", "bob"],
        &["confirm", "alice"],
        &["login", "alice", "--code", "1", "--backup-code", "2"],
        &["login", "alice", "--code"],
        &["login", "alice", "--by", "bob"],
        &["login", "alice", "--remember=yes"],
        &["reset", "alice", "--by", "bob"],
        &["--db"],
        &["--bogus", "enroll", "alice"],
        &["--db", "a.db", "--db", "b.db", "enroll", "alice"],
    ] {
        let out = sh.run(args, "", T0);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        out.usage_error();
    }
    // A missing password is a usage error too, and changes nothing.
    sh.run(&["add-user", "alice", "--email", "a@example.test"], "", T0).usage_error();
    let mut bad_clock = sh.command(&["enroll", "alice"], T0);
    bad_clock.env("TWOFACTOR_CLI_NOW", "yesterday");
    Run::from(bad_clock.output().unwrap()).usage_error();
    assert!(!sh.dir.path().join("twofactor-cli.db").exists(), "usage errors touch nothing");

    let help = sh.run(&["--help"], "", T0).ok();
    assert!(help.stdout.contains("add-user NAME --email ADDR"), "{}", help.stdout);
}

#[test]
fn db_and_outbox_paths_are_honoured_and_the_key_is_private() {
    let sh = Shell::new();
    let db = sh.dir.path().join("data").join("accounts.db");
    std::fs::create_dir(db.parent().unwrap()).unwrap();
    let outbox = sh.dir.path().join("mail");
    let (db_arg, outbox_arg) = (db.to_str().unwrap(), outbox.to_str().unwrap());
    let with = |args: &[&str]| -> Vec<String> {
        ["--db", db_arg, "--outbox", outbox_arg].iter().chain(args).map(|a| a.to_string()).collect()
    };
    sh.run(&with(&["add-user", "alice", "--email", "alice@example.test"]), &format!("{ALICE_PW}\n"), T0).ok();
    let out = sh.run(&with(&["enroll", "alice"]), "", T0).ok();
    let alice = parse_otpauth_uri(out.stdout.lines().next().unwrap()).unwrap();
    let out = sh.run(&with(&["confirm", "alice", &totp(&alice, T0)]), "", T0).ok();
    assert_eq!(out.stdout, "two-factor authentication is on for alice; the backup code was mailed\n");
    assert_eq!(mails_in(&outbox).len(), 1);
    assert!(!sh.dir.path().join("twofactor-cli.db").exists());
    assert!(!sh.dir.path().join("outbox").exists());
    let key = db.with_file_name("accounts.db.key");
    #[cfg(unix)]
    {
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&db), 0o600, "the database is as private as its key");
    }
    // The sealed TOTP secret needs that key: with another key, codes cannot be checked.
    std::fs::write(&key, "11".repeat(32)).unwrap();
    let code = totp(&alice, T0 + 30);
    sh.run(&with(&["login", "alice", "--code", &code]), &format!("{ALICE_PW}\n"), T0 + 30).refused();
}

/// The help text's lines before `-h`, `help` and per-command help came: docs and scripts
/// may quote them, so `--help` keeps every one.
const GLOBAL_HELP_LINES: &[&str] = &[
    "usage: cli [--db PATH] [--outbox DIR | --smtp URL] COMMAND",
    "commands:",
    "  add-user NAME --email ADDR [--role user|admin|support]   password: one line on stdin",
    "  enroll NAME                                              prints the otpauth:// URI and a QR code",
    "  confirm NAME CODE",
    "  login NAME [--code CODE | --backup-code CODE] [--remember] [--device TOKEN]",
    "                                                           password: one line on stdin",
    "  reset NAME --by ACTOR --verified-by TEXT",
    "  deliver                                                  sends the mail that is due (run it from cron)",
    "options:",
    "  --db PATH      the SQLite database (default ./twofactor-cli.db; its key is PATH.key)",
    "  --outbox DIR   where mail is written, one file per mail (default ./outbox)",
    "  --smtp URL     send mail through SMTP instead (smtp://, smtp://…?tls=starttls, smtps://;",
    "                 needs `--features smtp`); the From address is TWOFACTOR_CLI_FROM or",
    "                 twofactor <no-reply@localhost>. A URL with a password is better given",
    "                 as TWOFACTOR_CLI_SMTP_URL, which keeps it out of `ps` and shell history",
    "  --help         this text",
    "exit status: 0 done, 1 refused (reason on stderr), 2 usage error",
];

/// Each command and the usage line its help starts with.
const COMMAND_USAGE: &[(&str, &str)] = &[
    ("add-user", "add-user NAME --email ADDR [--role user|admin|support]"),
    ("enroll", "enroll NAME"),
    ("confirm", "confirm NAME CODE"),
    ("login", "login NAME [--code CODE | --backup-code CODE] [--remember] [--device TOKEN]"),
    ("reset", "reset NAME --by ACTOR --verified-by TEXT"),
    ("keygen", "keygen"),
    ("keys", "keys"),
    ("reseal", "reseal"),
    ("retire-key", "retire-key ID"),
    ("deliver", "deliver"),
    ("authenticators", "authenticators NAME"),
    ("add-authenticator", "add-authenticator NAME --name LABEL"),
    ("confirm-authenticator", "confirm-authenticator NAME --code CODE"),
    ("remove-authenticator", "remove-authenticator NAME --id ID (--code CODE | --backup-code CODE)"),
    ("disable", "disable NAME (--code CODE | --backup-code CODE)"),
    ("unlock", "unlock NAME --by ACTOR --reason TEXT"),
    ("forget", "forget NAME"),
];

#[test]
fn help_variants_print_the_right_help_and_exit_0() {
    let sh = Shell::new();
    for args in [&["--help"][..], &["-h"], &["help"], &["--db", "x.db", "--help"], &["frobnicate", "--help"]] {
        let out = sh.run(args, "", T0).ok();
        assert!(out.stderr.is_empty(), "{args:?}: {}", out.stderr);
        for line in GLOBAL_HELP_LINES {
            assert!(
                out.stdout.lines().any(|l| l == *line),
                "{args:?}: the help lost the line {line:?}:\n{}",
                out.stdout
            );
        }
    }
    for (command, usage) in COMMAND_USAGE {
        for args in [
            vec![*command, "--help"],
            vec!["-h", command],
            vec!["help", command],
            vec!["--help", command],
            vec!["--db", "x.db", command, "alice", "--help"],
            vec!["help", command, "--help"],
        ] {
            let out = sh.run(&args, "", T0).ok();
            assert!(out.stderr.is_empty(), "{args:?}: {}", out.stderr);
            let first = out.stdout.lines().next().unwrap_or_default();
            assert!(first.starts_with("usage: cli ") && first.ends_with(usage), "{args:?}: {}", out.stdout);
            assert!(!out.stdout.contains("commands:"), "{args:?} printed the whole program's help: {}", out.stdout);
        }
    }
    for args in [&["help", "--help"][..], &["help", "-h"]] {
        let out = sh.run(args, "", T0).ok();
        assert!(
            out.stdout.starts_with("usage: cli [--db PATH] [--outbox DIR | --smtp URL] help [COMMAND]\n"),
            "{args:?}"
        );
    }
    let login = sh.run(&["login", "--help"], "", T0).ok();
    for option in ["--code CODE", "--backup-code CODE", "--remember", "--device TOKEN"] {
        assert!(login.stdout.contains(&format!("  {option} ")), "login's help describes {option}: {}", login.stdout);
    }
    let out = sh.run(&["help", "frobnicate"], "", T0).usage_error();
    assert_eq!(out.stderr, "usage error: unknown command frobnicate (try --help)\n");
    let entries: Vec<_> = std::fs::read_dir(sh.dir.path()).unwrap().collect();
    assert!(entries.is_empty(), "help touches nothing: {entries:?}");
}

#[test]
fn usage_errors_keep_their_wording() {
    let sh = Shell::new();
    for (args, message) in [
        (&[][..], "no command given (try --help)"),
        (&["frobnicate"], "unknown command frobnicate (try --help)"),
        (&["-x"], "unknown command -x (try --help)"),
        (&["add-user", "alice"], "--email is required"),
        (
            &["add-user", "alice", "--email", "a@example.test", "--role", "king"],
            "--role must be user, admin or support",
        ),
        (&["add-user", "--email", "a@example.test"], "expected: add-user NAME"),
        (&["enroll"], "expected: enroll NAME"),
        (&["enroll", "alice", "bob"], "expected: enroll NAME"),
        (&["confirm", "alice"], "expected: confirm NAME CODE"),
        (&["login", "alice", "--code", "1", "--backup-code", "2"], "give --code or --backup-code, not both"),
        (&["login", "alice", "--code"], "--code needs a value"),
        (&["login", "alice", "--by", "bob"], "login does not take --by"),
        (&["login", "alice", "--remember=yes"], "--remember takes no value"),
        (&["reset", "alice", "--by", "bob"], "--verified-by is required"),
        (&["--db"], "--db needs a value"),
        (&["--bogus", "enroll", "alice"], "unknown option --bogus"),
        (&["--db", "a.db", "--db", "b.db", "enroll", "alice"], "--db given twice"),
        (&["--help=yes"], "--help takes no value"),
        (&["help", "login", "enroll"], "expected: help [COMMAND]"),
        (&["help", "--code", "1"], "help does not take --code"),
        (&["keygen", "now"], "expected: keygen"),
        (&["keys", "--email", "a@example.test"], "keys does not take --email"),
        (&["reseal", "all"], "expected: reseal"),
        (&["retire-key"], "expected: retire-key ID"),
        (&["retire-key", "1", "2"], "expected: retire-key ID"),
        (&["retire-key", "one"], "retire-key takes a key id (a number, as `keys` lists)"),
        (&["retire-key", "-1"], "retire-key takes a key id (a number, as `keys` lists)"),
        (&["authenticators"], "expected: authenticators NAME"),
        (&["authenticators", "alice", "--code", "1"], "authenticators does not take --code"),
        (&["add-authenticator", "alice"], "--name is required"),
        (&["add-authenticator", "--name", "Tablet"], "expected: add-authenticator NAME"),
        (&["confirm-authenticator", "alice"], "--code is required"),
        (&["confirm-authenticator", "alice", "123456"], "expected: confirm-authenticator NAME"),
        (&["remove-authenticator", "alice", "--code", "123456"], "--id is required"),
        (&["remove-authenticator", "alice", "--id", "00"], "give --code CODE or --backup-code CODE"),
        (
            &["remove-authenticator", "alice", "--id", "00", "--code", "1", "--backup-code", "2"],
            "give --code or --backup-code, not both",
        ),
        (&["disable", "alice"], "give --code CODE or --backup-code CODE"),
        (&["disable", "alice", "--code", "1", "--backup-code", "2"], "give --code or --backup-code, not both"),
        (&["disable", "alice", "--remember", "--code", "1"], "disable does not take --remember"),
        (&["unlock", "alice", "--by", "bob"], "--reason is required"),
        (&["unlock", "alice", "--reason", "phone call"], "--by is required"),
        (&["forget"], "expected: forget NAME"),
        (&["forget", "alice", "bob"], "expected: forget NAME"),
        (&["login", "alice", "--name", "Tablet"], "login does not take --name"),
    ] {
        let out = sh.run(args, "", T0).usage_error();
        assert_eq!(out.stderr, format!("usage error: {message}\n"), "{args:?}");
    }
    let out = sh.run(&["add-user", "alice", "--email", "a@example.test"], "", T0).usage_error();
    assert_eq!(out.stderr, "usage error: expected the password as one line on stdin\n");
}

#[test]
fn argument_forms_that_worked_still_work() {
    let sh = Shell::new();
    let pw = &format!("{ALICE_PW}\n");
    // `--option=value`, and a name that starts with `-`.
    let out = sh.run(&["add-user", "-dash", "--email=dash@example.test", "--role=admin"], pw, T0).ok();
    assert_eq!(out.stdout, "added admin -dash\n");
    // An option's value is the next argument even when it starts with `-`.
    let out = sh.run(&["login", "-dash", "--device", "-not-a-token"], pw, T0).ok();
    assert_eq!(out.stdout, "logged in as -dash (password)\n");
    // Options may come before the command or after its operands.
    sh.run(&["--outbox", "outbox", "login", "-dash"], pw, T0).ok();
    // After the command word `-h` is an operand, as in 0.1.0: a user may be named `-h`
    // (and `--` also ends the options).
    sh.run(&["add-user", "-h", "--email", "h@example.test"], pw, T0).ok();
    let out = sh.run(&["login", "-h"], pw, T0).ok();
    assert_eq!(out.stdout, "logged in as -h (password)\n");
    let out = sh.run(&["login", "--", "-h"], pw, T0).ok();
    assert_eq!(out.stdout, "logged in as -h (password)\n");
}

#[test]
fn db_in_a_missing_folder_names_the_folder_and_creates_nothing() {
    let sh = Shell::new();
    let pw = &format!("{ALICE_PW}\n");
    let db = Path::new("missing").join("accounts.db");
    let db = db.to_str().unwrap();
    for (args, stdin) in [
        (vec!["--db", db, "add-user", "alice", "--email", "a@example.test"], pw.as_str()),
        (vec!["--db", db, "enroll", "alice"], ""),
        (vec!["--db", db, "login", "alice"], pw),
    ] {
        let out = sh.run(&args, stdin, T0).refused();
        assert!(out.stderr.contains("the folder missing does not exist"), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains(".key"), "it is the folder, not the key, that is missing: {}", out.stderr);
    }
    let entries: Vec<_> = std::fs::read_dir(sh.dir.path()).unwrap().collect();
    assert!(entries.is_empty(), "nothing was created: {entries:?}");
}

#[test]
fn db_that_is_a_folder_is_refused_before_anything_is_created() {
    let sh = Shell::new();
    std::fs::create_dir(sh.dir.path().join("data")).unwrap();
    let out = sh.run(&["--db", "data", "add-user", "alice", "--email", "a@example.test"], &format!("{ALICE_PW}\n"), T0);
    let out = out.refused();
    assert!(out.stderr.contains("data") && out.stderr.contains("is a folder"), "{}", out.stderr);
    let names: Vec<_> =
        std::fs::read_dir(sh.dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names, ["data"], "no stray data.key (or anything else) beside it");
    assert_eq!(std::fs::read_dir(sh.dir.path().join("data")).unwrap().count(), 0, "nothing inside it either");
}

/// The permission bits of `path`.
#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn the_database_its_key_and_sqlites_files_are_mode_0600() {
    let sh = Shell::new();
    sh.add_user("alice", "user", ALICE_PW);
    sh.enroll("alice");
    let files: Vec<PathBuf> = std::fs::read_dir(sh.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("twofactor-cli.db"))
        .collect();
    for name in ["twofactor-cli.db", "twofactor-cli.db.key"] {
        assert!(files.contains(&sh.dir.path().join(name)), "{name} in {files:?}");
    }
    // The database, its key, and whichever of SQLite's -wal and -shm files are there.
    for file in &files {
        assert_eq!(mode(file), 0o600, "{} is mode {:o}", file.display(), mode(file));
    }
}

/// Runs `target/debug/examples/quickstart` with its temporary folder under `tmp`.
#[cfg(unix)]
fn quickstart(tmp: &Path) -> std::process::Child {
    Command::new(example_binary("quickstart"))
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the quickstart")
}

#[cfg(unix)]
#[test]
fn quickstart_stops_quietly_when_its_reader_goes_away_and_removes_its_folder() {
    use std::io::{BufRead, BufReader, Read};
    let tmp = tempfile::tempdir().unwrap();
    // `quickstart | head -1`.
    let mut child = quickstart(tmp.path());
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("accounts are stored in "), "{line}");
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a clean exit, not {:?}; stderr: {stderr}", out.status);
    assert!(stderr.is_empty(), "no panic message: {stderr}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "the temporary folder is gone: {left:?}");

    // The whole story, read to the end, leaves nothing behind either.
    let mut child = quickstart(tmp.path());
    let mut all = String::new();
    child.stdout.take().unwrap().read_to_string(&mut all).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("alice is logged in"), "{all}");
    assert!(
        all.contains("KeyRing::ephemeral") && all.contains("deletes its database on exit"),
        "the demo says why its throwaway key is fine here: {all}"
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "the temporary folder is gone");
}

#[cfg(unix)]
#[test]
fn quickstart_removes_its_folder_when_terminated() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let mut child = quickstart(tmp.path());
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    // The story is now hashing passwords; SIGTERM arrives while it runs.
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("run kill");
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(matches!(status.code(), Some(143 | 0)), "exit 143 (or 0 had it finished first): {status:?}");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "the temporary folder is gone");
}

#[test]
fn eight_concurrent_logins_race_one_backup_code() {
    let sh = Shell::new();
    sh.add_user("alice", "user", ALICE_PW);
    sh.enroll("alice");
    let code = backup_code(&sh.mails()[0]);
    let args = ["login", "alice", "--backup-code", code.as_str()];
    let mut children: Vec<_> = (0..8).map(|_| sh.command(&args, T0 + 30).spawn().expect("spawn")).collect();
    for child in &mut children {
        feed(child, &format!("{ALICE_PW}\n"));
    }
    let runs: Vec<Run> = children.into_iter().map(|c| Run::from(c.wait_with_output().unwrap())).collect();
    let winners = runs.iter().filter(|r| r.code == 0).count();
    assert_eq!(
        winners,
        1,
        "exactly one login wins: {:?}",
        runs.iter().map(|r| (r.code, &r.stderr)).collect::<Vec<_>>()
    );
    for loser in runs.into_iter().filter(|r| r.code != 0) {
        loser.refused();
    }
    // Exactly one replacement code was mailed (besides the setup code; the losers'
    // failures may add a throttling notice, which carries no code).
    assert_eq!(sh.mails().iter().filter(|m| !codes_in(m).is_empty()).count(), 2);
}

#[test]
fn concurrent_first_use_creates_one_schema_and_one_key() {
    let sh = Shell::new();
    let race = |args: &dyn Fn(usize) -> Vec<String>, stdin: &str| -> Vec<Run> {
        let children: Vec<_> = (0..8)
            .map(|i| {
                let mut child = sh.command(&args(i), T0).spawn().expect("spawn");
                feed(&mut child, stdin);
                child
            })
            .collect();
        children.into_iter().map(|c| Run::from(c.wait_with_output().unwrap())).collect()
    };
    // Eight invocations create the database at once.
    let add = |i: usize| -> Vec<String> {
        ["add-user", &format!("user{i}"), "--email", &format!("user{i}@example.test")].map(String::from).to_vec()
    };
    race(&add, &format!("{ALICE_PW}\n")).into_iter().for_each(|r| drop(r.ok()));
    // Eight invocations create the application key at once, and each seals a secret
    // with the key it read: every one must open with the key that stayed.
    std::fs::remove_file(sh.dir.path().join("twofactor-cli.db.key")).unwrap();
    let enrolled = race(&|i| vec!["enroll".to_owned(), format!("user{i}")], "");
    for (i, run) in enrolled.into_iter().enumerate() {
        let run = run.ok();
        let uri = parse_otpauth_uri(run.stdout.lines().next().unwrap()).unwrap();
        sh.run(&["confirm", &format!("user{i}"), &totp(&uri, T0)], "", T0).ok();
    }
    let leftovers: Vec<_> = std::fs::read_dir(sh.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary key files left: {leftovers:?}");
}

/// The key file of the default database.
const KEY_FILE: &str = "twofactor-cli.db.key";

impl Shell {
    fn key_file(&self) -> PathBuf {
        self.dir.path().join(KEY_FILE)
    }

    /// The key file's lines.
    fn key_lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.key_file()).unwrap().lines().map(str::to_owned).collect()
    }

    /// The `.tmp` files left in the working directory.
    fn leftovers(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }
}

/// The key material of a key file's line (0.1.0's hex, or a `tfk1.` line's last part):
/// what must never show in the CLI's output.
fn material(line: &str) -> &str {
    line.rsplit('.').next().unwrap()
}

/// Fails when any key's material shows in what `run` printed; returns `run`.
#[track_caller]
fn shows_no_key(run: Run, keys: &[String]) -> Run {
    for key in keys {
        let key = material(key);
        assert!(
            !run.stdout.contains(key) && !run.stderr.contains(key),
            "a key was printed: {} {}",
            run.stdout,
            run.stderr
        );
    }
    run
}

/// The 0.1.0 rotation story: a 64-hex key file gains a new key, every user still logs in
/// (the old key opens), `keys` counts, `retire-key` waits for `reseal`, and afterwards
/// the file holds only the new key and every user still logs in with TOTP.
#[test]
fn keygen_reseal_and_retire_key_rotate_a_0_1_0_key_file_while_everyone_logs_in() {
    let sh = Shell::new();
    sh.add_user("alice", "user", ALICE_PW);
    sh.add_user("bob", "admin", BOB_PW);
    sh.add_user("carol", "user", ALICE_PW);
    let alice = sh.enroll("alice");
    let bob = sh.enroll("bob");
    let old = std::fs::read_to_string(sh.key_file()).unwrap();
    assert!(old.len() == 64 && old.bytes().all(|b| b.is_ascii_hexdigit()), "first use writes 0.1.0's form");
    let (alice_pw, bob_pw, carol_pw) = (format!("{ALICE_PW}\n"), format!("{BOB_PW}\n"), format!("{ALICE_PW}\n"));

    // keygen: the old key becomes `tfk1.1.…` below the new key 2; nothing is printed but the id.
    let out = sh.run(&["keygen"], "", T0).ok();
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("added key 2\n", ""));
    let lines = sh.key_lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("tfk1.2."), "the new key first");
    assert_eq!(lines[1], twofactor::AppKey::from_hex(1, &old).unwrap().to_text().as_str(), "the 0.1.0 key, as key 1");
    #[cfg(unix)]
    assert_eq!(mode(&sh.key_file()), 0o600);
    assert!(sh.leftovers().is_empty(), "{:?}", sh.leftovers());
    let keys = vec![old.clone(), lines[0].clone(), lines[1].clone()];

    // The old key still opens: alice logs in (and her secret moves to key 2 as she does).
    let out = sh.run(&["login", "alice", "--code", &totp(&alice, T0 + 30)], &alice_pw, T0 + 30).ok();
    assert_eq!(shows_no_key(out, &keys).stdout, "logged in as alice (password and authenticator code)\n");
    let out = shows_no_key(sh.run(&["keys"], "", T0 + 30).ok(), &keys);
    assert_eq!(out.stdout, "key 2 (newest): 1 document\nkey 1: 1 document\nwithout a secret: 1\n");
    assert_eq!(out.stderr, "");

    // Key 1 still seals bob's secret: retiring it is refused, naming the key and the count.
    let out = shows_no_key(sh.run(&["retire-key", "1"], "", T0 + 30).refused(), &keys);
    assert_eq!(out.stderr, "refused: key 1 still seals 1 document: run reseal first\n");
    assert_eq!(sh.key_lines(), lines, "the key file is unchanged");

    // reseal moves everything to key 2 (no progress bar: stderr is not a terminal).
    let out = shows_no_key(sh.run(&["reseal"], "", T0 + 30).ok(), &keys);
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("resealed 1 of 3 documents\n", ""));
    let out = sh.run(&["keys"], "", T0 + 30).ok();
    assert_eq!(out.stdout, "key 2 (newest): 2 documents\nkey 1: 0 documents\nwithout a secret: 1\n");
    let out = sh.run(&["reseal"], "", T0 + 30).ok();
    assert_eq!(out.stdout, "resealed 0 of 3 documents\n", "running it again is harmless");

    // Now key 1 goes; the file holds key 2 alone, still private.
    let out = shows_no_key(sh.run(&["retire-key", "1"], "", T0 + 30).ok(), &keys);
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("retired key 1\n", ""));
    assert_eq!(sh.key_lines(), [lines[0].clone()]);
    #[cfg(unix)]
    assert_eq!(mode(&sh.key_file()), 0o600);
    assert!(sh.leftovers().is_empty(), "{:?}", sh.leftovers());
    let out = sh.run(&["keys"], "", T0 + 30).ok();
    assert_eq!(out.stdout, "key 2 (newest): 2 documents\nwithout a secret: 1\n");

    // Every user still logs in, with TOTP where they have it.
    let out = sh.run(&["login", "alice", "--code", &totp(&alice, T0 + 60)], &alice_pw, T0 + 60).ok();
    assert_eq!(shows_no_key(out, &keys).stdout, "logged in as alice (password and authenticator code)\n");
    let out = sh.run(&["login", "bob", "--code", &totp(&bob, T0 + 60)], &bob_pw, T0 + 60).ok();
    assert_eq!(shows_no_key(out, &keys).stdout, "logged in as bob (password and authenticator code)\n");
    let out = sh.run(&["login", "carol"], &carol_pw, T0 + 60).ok();
    assert_eq!(shows_no_key(out, &keys).stdout, "logged in as carol (password)\n");
    // And a new enrollment seals under key 2.
    sh.add_user("dave", "user", ALICE_PW);
    sh.enroll_at("dave", T0 + 60);
    let out = sh.run(&["keys"], "", T0 + 60).ok();
    assert_eq!(out.stdout, "key 2 (newest): 3 documents\nwithout a secret: 1\n");
}

#[test]
fn keygen_creates_a_missing_key_file_in_the_text_form_and_no_database() {
    let sh = Shell::new();
    let out = sh.run(&["keygen"], "", T0).ok();
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("added key 1\n", ""));
    let lines = sh.key_lines();
    assert!(lines.len() == 1 && lines[0].starts_with("tfk1.1."), "one tfk1 line");
    assert!(twofactor::KeyRing::from_text(&lines[0]).is_ok());
    #[cfg(unix)]
    assert_eq!(mode(&sh.key_file()), 0o600);
    assert!(!sh.dir.path().join("twofactor-cli.db").exists(), "keygen needs no database");
    shows_no_key(out, &lines);

    // The other commands use that file as they found it.
    sh.add_user("alice", "user", ALICE_PW);
    let alice = sh.enroll("alice");
    assert_eq!(sh.key_lines(), lines);
    sh.run(&["login", "alice", "--code", &totp(&alice, T0 + 30)], &format!("{ALICE_PW}\n"), T0 + 30).ok();
    assert_eq!(sh.run(&["keygen"], "", T0).ok().stdout, "added key 2\n");
    let out = sh.run(&["keys"], "", T0 + 30).ok();
    assert_eq!(out.stdout, "key 2 (newest): 0 documents\nkey 1: 1 document\nwithout a secret: 0\n");
}

#[test]
fn retire_key_refuses_the_newest_key_and_keys_it_does_not_hold() {
    let sh = Shell::new();
    sh.add_user("alice", "user", ALICE_PW);
    let out = sh.run(&["retire-key", "1"], "", T0).refused();
    assert_eq!(
        out.stderr,
        "refused: key 1 is the newest: it seals new secrets and cannot be retired (add a newer one with keygen first)\n"
    );
    sh.run(&["keygen"], "", T0).ok();
    let out = sh.run(&["retire-key", "7"], "", T0).refused();
    assert_eq!(out.stderr, format!("refused: no key 7 in {KEY_FILE} (it holds 2, 1)\n"));
    sh.run(&["retire-key", "2"], "", T0).refused();
    assert_eq!(sh.key_lines().len(), 2, "nothing was removed");
    // Key 1 seals nothing: it may go at once.
    assert_eq!(sh.run(&["retire-key", "1"], "", T0).ok().stdout, "retired key 1\n");
    assert_eq!(sh.key_lines().len(), 1);
}

#[test]
fn concurrent_keygens_each_add_a_key() {
    let sh = Shell::new();
    let children: Vec<_> = (0..8).map(|_| sh.command(&["keygen"], T0).spawn().expect("spawn")).collect();
    let mut added: Vec<String> =
        children.into_iter().map(|c| Run::from(c.wait_with_output().unwrap()).ok().stdout).collect();
    added.sort_by_key(|line| line.trim_end().rsplit(' ').next().unwrap().parse::<u32>().unwrap());
    let expected: Vec<String> = (1..=8).map(|id| format!("added key {id}\n")).collect();
    assert_eq!(added, expected, "one key each, none lost");
    let ids: Vec<u32> = twofactor::KeyRing::from_text(&sh.key_lines().join("\n")).unwrap().ids();
    assert_eq!(ids, [8, 7, 6, 5, 4, 3, 2, 1], "newest first");
    assert!(sh.leftovers().is_empty(), "{:?}", sh.leftovers());
}

/// A key file that does not parse stops every command with one line naming the file,
/// never quoting it, exit 1, before anything is created or rewritten.
#[test]
fn a_key_file_with_a_bad_line_is_refused_naming_the_file_not_its_content() {
    let good = twofactor::AppKey::generate(2).unwrap().to_text().to_string();
    for contents in [
        format!("{good}\ntfk1.1.not-a-key-at-all\n"),
        format!("# keys\n{good}\nsecret-looking-junk\n"),
        "zz".repeat(32),
    ] {
        let sh = Shell::new();
        std::fs::write(sh.key_file(), &contents).unwrap();
        let pw = format!("{ALICE_PW}\n");
        for (args, stdin) in [
            (&["keys"][..], ""),
            (&["reseal"], ""),
            (&["retire-key", "1"], ""),
            (&["keygen"], ""),
            (&["enroll", "alice"], ""),
            (&["login", "alice"], pw.as_str()),
            (&["add-user", "alice", "--email", "a@example.test"], pw.as_str()),
        ] {
            let out = sh.run(args, stdin, T0).refused();
            assert!(
                out.stderr.starts_with(&format!("refused: application key {KEY_FILE}: ")),
                "{args:?} names the file: {}",
                out.stderr
            );
            for line in contents.lines().filter(|l| !l.starts_with('#')) {
                assert!(!out.stderr.contains(material(line)), "{args:?} quoted the file: {}", out.stderr);
            }
            assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
        }
        assert_eq!(std::fs::read_to_string(sh.key_file()).unwrap(), contents, "the key file is left as it was");
        assert!(!sh.dir.path().join("twofactor-cli.db").exists(), "no database was created");
    }
}

/// A document under a key the file lacks: `keys` says so, `reseal` stops naming the
/// key, and putting the key back (below the newest) heals it.
#[test]
fn a_missing_key_is_named_and_putting_it_back_heals() {
    let sh = Shell::new();
    sh.add_user("alice", "user", ALICE_PW);
    let alice = sh.enroll("alice");
    let old = std::fs::read_to_string(sh.key_file()).unwrap();
    let new = twofactor::AppKey::generate(2).unwrap().to_text().to_string();
    std::fs::write(sh.key_file(), format!("{new}\n")).unwrap();
    let keys = vec![old.clone(), new.clone()];

    let out = shows_no_key(sh.run(&["keys"], "", T0).ok(), &keys);
    assert_eq!(
        out.stdout,
        "key 2 (newest): 0 documents\nkey 1 (not in the key file): 1 document\nwithout a secret: 0\n"
    );
    assert!(out.stderr.starts_with("note: 1 document need"), "{}", out.stderr);
    let out = shows_no_key(sh.run(&["reseal"], "", T0).refused(), &keys);
    assert!(out.stderr.contains("key 1") && out.stderr.contains(KEY_FILE), "{}", out.stderr);
    let pw = format!("{ALICE_PW}\n");
    let out =
        shows_no_key(sh.run(&["login", "alice", "--code", &totp(&alice, T0 + 30)], &pw, T0 + 30).refused(), &keys);
    assert!(out.stderr.contains("key 1"), "the login names the missing key: {}", out.stderr);

    // The backup of key 1 goes back in, below the newest.
    let old_line = twofactor::AppKey::from_hex(1, &old).unwrap().to_text().to_string();
    std::fs::write(sh.key_file(), format!("{new}\n{old_line}\n")).unwrap();
    assert_eq!(sh.run(&["reseal"], "", T0 + 30).ok().stdout, "resealed 1 of 1 document\n");
    sh.run(&["retire-key", "1"], "", T0 + 30).ok();
    sh.run(&["login", "alice", "--code", &totp(&alice, T0 + 60)], &pw, T0 + 60).ok();
}

/// On a terminal, `reseal` draws its progress bar on stderr; stdout keeps its one line.
#[cfg(target_os = "linux")]
#[test]
fn reseal_draws_a_progress_bar_only_on_a_terminal() {
    let sh = Shell::new();
    sh.add_user("alice", "user", ALICE_PW);
    sh.enroll("alice");
    sh.run(&["keygen"], "", T0).ok();
    // `script` (util-linux; Debian's essential bsdutils) runs the command on a
    // pseudo-terminal and copies what it shows.
    let Ok(out) = Command::new("script")
        .args(["-qec", &format!("{} reseal", sh.bin.display()), "/dev/null"])
        .current_dir(sh.dir.path())
        .env("TWOFACTOR_CLI_NOW", T0.to_string())
        .stdin(Stdio::null())
        .output()
    else {
        panic!("this test needs util-linux `script` (Debian: bsdutils)");
    };
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("re-sealing") && shown.contains("1/1 documents"), "a progress bar: {shown}");
    assert!(shown.contains("resealed 1 of 1 document"), "{shown}");
    let out = sh.run(&["keys"], "", T0).ok();
    assert_eq!(out.stdout, "key 2 (newest): 1 document\nkey 1: 0 documents\nwithout a secret: 0\n");
}

#[cfg(feature = "smtp")]
#[path = "maildir/mod.rs"]
mod maildir;

#[cfg(feature = "smtp")]
#[test]
fn smtp_sends_the_backup_code_through_a_real_server() {
    let (url, dir) = maildir::sink();
    let sh = Shell::new();
    let name = format!("cli-smtp-{}", std::process::id());
    let email = format!("{name}@example.test");
    let pw = format!("{ALICE_PW}\n");
    let smtp = |args: &[&str]| -> Vec<String> {
        ["--smtp", url.as_str()].iter().chain(args).map(|a| (*a).to_owned()).collect()
    };
    sh.run(&smtp(&["add-user", &name, "--email", &email]), &pw, T0).ok();
    let out = sh.run(&smtp(&["enroll", &name]), "", T0).ok();
    let uri = out.stdout.lines().find(|l| l.starts_with("otpauth://")).expect("a URI line");
    let uri = parse_otpauth_uri(uri).expect("valid URI");
    sh.run(&smtp(&["confirm", &name, &totp(&uri, T0)]), "", T0).ok();
    assert!(!sh.dir.path().join("outbox").exists(), "nothing went to the file outbox");
    let mails = maildir::mails_to(&dir, &email);
    assert_eq!(mails.len(), 1, "the setup mail arrived at the SMTP server");
    let code = mails[0].codes().pop().expect("a backup code in the mail");
    // The same transport from the environment (keeps credentials out of argv).
    let mut login = sh.command(&["login", name.as_str(), "--backup-code", code.as_str()], T0 + 30);
    let mut child = login.env("TWOFACTOR_CLI_SMTP_URL", &url).spawn().expect("spawn the cli");
    feed(&mut child, &pw);
    Run::from(child.wait_with_output().expect("wait")).ok();
    assert_eq!(maildir::mails_to(&dir, &email).len(), 2, "the rotated code was mailed too");
    sh.run(&["--smtp", url.as_str(), "--outbox", "x", "enroll", &name], "", T0).usage_error();
}

#[cfg(not(feature = "smtp"))]
#[test]
fn smtp_without_the_feature_is_a_usage_error() {
    let sh = Shell::new();
    let out = sh.run(&["--smtp", "smtp://127.0.0.1:25", "enroll", "x"], "", T0).usage_error();
    assert!(out.stderr.contains("--features smtp"), "{}", out.stderr);
}

/// The file names in the outbox, oldest first (they end in the message kind).
fn mail_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("the outbox exists")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8 name"))
        .filter(|n| n.ends_with(".eml"))
        .collect();
    names.sort();
    names
}

#[test]
fn deliver_with_nothing_due_says_so() {
    let sh = Shell::new();
    let out = sh.run(&["deliver"], "", T0).ok();
    assert_eq!(out.stdout, "delivered 0 messages; 0 waiting for a retry; 0 given up\n");
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    // The commands sent their own mail: nothing is left for deliver.
    sh.add_user("alice", "user", ALICE_PW);
    sh.add_user("bob", "admin", BOB_PW);
    sh.enroll("alice");
    sh.run(&["reset", "alice", "--by", "bob", "--verified-by", "phone call"], "", T0 + 30).ok();
    assert_eq!(sh.mails().len(), 2, "the setup code and the reset notice went out at once");
    let out = sh.run(&["deliver"], "", T0 + 30).ok();
    assert_eq!(out.stdout, "delivered 0 messages; 0 waiting for a retry; 0 given up\n");
    assert_eq!(sh.mails().len(), 2);
    sh.run(&["deliver", "now"], "", T0).usage_error();
}

#[test]
fn deliver_refuses_with_exit_1_on_a_store_fault() {
    let sh = Shell::new();
    std::fs::write(sh.dir.path().join("twofactor-cli.db"), "this is not a database".repeat(100)).unwrap();
    let out = sh.run(&["deliver"], "", T0).refused();
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

/// A refused login never waits on mail: the throttling notice of the fifth wrong
/// password stays queued until `deliver` sends it.
#[test]
fn a_refused_login_leaves_its_notice_to_deliver() {
    let sh = Shell::new();
    sh.add_user("alice", "user", ALICE_PW);
    for _ in 0..5 {
        sh.run(&["login", "alice"], "wrong password\n", T0).refused();
    }
    let outbox = sh.dir.path().join("outbox");
    assert!(mail_names(&outbox).is_empty(), "nothing sent by a refusal");
    let out = sh.run(&["deliver"], "", T0).ok();
    assert_eq!(out.stdout, "delivered 1 message; 0 waiting for a retry; 0 given up\n");
    let names = mail_names(&outbox);
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].ends_with("-throttled.eml"), "{names:?}");
    assert_eq!(header(&sh.mails()[0], "To"), Some("alice@example.test"));
    sh.run(&["deliver"], "", T0).ok();
    assert_eq!(mail_names(&outbox).len(), 1, "delivered once");
}

/// A mail that cannot be written stays queued: the command still does its work (exit
/// 0) and says the mail failed; once the outbox works again, `deliver` sends it when
/// its retry is due, and the code in it works.
#[cfg(target_os = "linux")]
#[test]
fn a_mail_that_failed_is_delivered_by_a_later_deliver() {
    let sh = Shell::new();
    sh.add_user("alice", "user", ALICE_PW);
    let out = sh.run(&["enroll", "alice"], "", T0).ok();
    let alice = parse_otpauth_uri(out.stdout.lines().next().unwrap()).unwrap();
    // An outbox no file can be created in, even by root: a folder of /proc.
    let outbox = sh.dir.path().join("outbox");
    std::fs::remove_dir_all(&outbox).unwrap();
    std::os::unix::fs::symlink("/proc/self", &outbox).unwrap();

    let out = sh.run(&["confirm", "alice", &totp(&alice, T0)], "", T0).ok();
    let line = out.stdout.trim_end();
    assert!(
        line.starts_with("two-factor authentication is on for alice; the backup code could not be mailed (failed: ")
            && line.contains("cannot write to the outbox"),
        "{line}"
    );
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    assert!(out.stderr.contains("stays queued"), "{}", out.stderr);
    // Not due again before its retry (30 s after the failure) ...
    let out = sh.run(&["deliver"], "", T0 + 10).ok();
    assert_eq!(out.stdout, "delivered 0 messages; 0 waiting for a retry; 0 given up\n");
    // ... then tried, and still failing.
    let out = sh.run(&["deliver"], "", T0 + 30).ok();
    assert_eq!(out.stdout, "delivered 0 messages; 1 waiting for a retry; 0 given up\n");

    // The outbox is fixed; the next retry is due 60 s after the second failure.
    std::fs::remove_file(&outbox).unwrap();
    let out = sh.run(&["deliver"], "", T0 + 60).ok();
    assert_eq!(out.stdout, "delivered 0 messages; 0 waiting for a retry; 0 given up\n");
    assert!(mail_names(&outbox).is_empty());
    let out = sh.run(&["deliver"], "", T0 + 90).ok();
    assert_eq!(out.stdout, "delivered 1 message; 0 waiting for a retry; 0 given up\n");
    let mails = sh.mails();
    assert_eq!(mails.len(), 1);
    assert!(mail_names(&outbox)[0].ends_with("-backup_code.setup.eml"));
    let code = backup_code(&mails[0]);
    sh.run(&["deliver"], "", T0 + 600).ok();
    assert_eq!(sh.mails().len(), 1, "delivered once");

    // The code from the delayed mail logs in; its replacement is mailed at once.
    let out = sh.run(&["login", "alice", "--backup-code", &code], &format!("{ALICE_PW}\n"), T0 + 600).ok();
    assert_eq!(out.stdout, "logged in as alice (password and backup code); a new backup code was mailed\n");
    assert_eq!(sh.mails().len(), 2);
}

/// A failed mail is also sent by the next command for that user, once it is due.
#[cfg(target_os = "linux")]
#[test]
fn a_later_command_for_the_user_sends_what_is_due() {
    let sh = Shell::new();
    sh.add_user("alice", "user", ALICE_PW);
    sh.add_user("bob", "admin", BOB_PW);
    sh.enroll("alice");
    let code = backup_code(&sh.mails()[0]);
    let outbox = sh.dir.path().join("outbox");
    let kept = sh.dir.path().join("kept");
    std::fs::rename(&outbox, &kept).unwrap();
    std::os::unix::fs::symlink("/proc/self", &outbox).unwrap();
    let pw = format!("{ALICE_PW}\n");
    let out = sh.run(&["login", "alice", "--backup-code", &code], &pw, T0 + 30).ok();
    assert!(
        out.stdout.starts_with(
            "logged in as alice (password and backup code); a new backup code could not be mailed (failed: "
        ),
        "{}",
        out.stdout
    );
    let out = sh.run(&["reset", "alice", "--by", "bob", "--verified-by", "phone call"], "", T0 + 60).ok();
    assert_eq!(out.stdout, "two-factor authentication for alice was reset by bob; alice could not be told by mail\n");
    assert!(out.stderr.contains("stays queued"), "{}", out.stderr);

    // Fixed. The reset voided the rotated code, so its mail is gone; the notice is due
    // 30 s after its failure and goes out with alice's next login.
    std::fs::remove_file(&outbox).unwrap();
    std::fs::rename(&kept, &outbox).unwrap();
    sh.run(&["login", "alice"], &pw, T0 + 90).ok();
    let names = mail_names(&outbox);
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[1].ends_with("-reset.eml"), "{names:?}");
    let out = sh.run(&["deliver"], "", T0 + 3600).ok();
    assert_eq!(out.stdout, "delivered 0 messages; 0 waiting for a retry; 0 given up\n");
}

/// The id, added and last-used times and name on each line `authenticators` prints.
fn authenticator_lines(out: &Run) -> Vec<(String, String)> {
    out.stdout
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.splitn(4, "  ").collect();
            assert_eq!(parts.len(), 4, "ID  added T  last used T  NAME: {l}");
            assert!(parts[1].starts_with("added 20") && parts[2].starts_with("last used "), "{l}");
            (parts[0].to_owned(), parts[3].to_owned())
        })
        .collect()
}

/// A code that is not `code` (and not any code of the same step).
fn wrong(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

#[test]
fn a_second_authenticator_is_added_listed_used_and_removed() {
    let sh = Shell::new();
    sh.add_user("alice", "user", ALICE_PW);
    sh.add_user("bob", "admin", BOB_PW);
    let pw = &format!("{ALICE_PW}\n");
    let phone = sh.enroll("alice");
    let out = sh.run(&["authenticators", "alice"], "", T0).ok();
    let listed = authenticator_lines(&out);
    assert_eq!(listed.len(), 1, "{}", out.stdout);
    let (phone_id, first_name) = listed[0].clone();
    assert_eq!(first_name, "Authenticator app");
    assert!(phone_id.len() == 16 && phone_id.bytes().all(|b| b.is_ascii_hexdigit()), "{phone_id}");

    // add-authenticator prints the URI and a QR code, as enroll does.
    let out = sh.run(&["add-authenticator", "alice", "--name", "Tablet"], "", T0).ok();
    let uri = out.stdout.lines().next().expect("the otpauth:// URI first");
    assert!(out.stdout.lines().count() > 10, "a QR code follows the URI");
    assert_eq!(out.stderr, "scan it, then run: confirm-authenticator alice --code CODE\n");
    let tablet = parse_otpauth_uri(uri).expect("a valid otpauth URI");
    assert_ne!(tablet.secret.expose(), phone.secret.expose(), "a secret of its own");

    // A wrong code leaves it waiting; the right one adds it, and alice is told by mail.
    let out = sh.run(&["confirm-authenticator", "alice", "--code", &wrong(&totp(&tablet, T0))], "", T0).refused();
    assert_eq!(out.stderr, "refused: wrong code; the authenticator is still waiting\n");
    let out = sh.run(&["confirm-authenticator", "alice", "--code", &totp(&tablet, T0)], "", T0).ok();
    let tablet_id = out
        .stdout
        .strip_prefix("added authenticator ")
        .and_then(|rest| rest.strip_suffix(" (Tablet) for alice; alice was told by mail\n"))
        .unwrap_or_else(|| panic!("{}", out.stdout))
        .to_owned();
    let names = mail_names(&sh.dir.path().join("outbox"));
    assert!(names.last().unwrap().ends_with("-authenticator.added.eml"), "{names:?}");
    let notice = sh.mails().pop().unwrap();
    assert_eq!(header(&notice, "To"), Some("alice@example.test"));
    assert!(notice.contains("Tablet"), "{notice}");
    let out = sh.run(&["confirm-authenticator", "alice", "--code", &totp(&tablet, T0)], "", T0).refused();
    assert!(out.stderr.contains("no authenticator is being added for alice"), "{}", out.stderr);
    let out = sh.run(&["authenticators", "alice"], "", T0).ok();
    assert_eq!(
        authenticator_lines(&out),
        [(phone_id.clone(), "Authenticator app".to_owned()), (tablet_id.clone(), "Tablet".to_owned())]
    );

    // The tablet's codes log in.
    let out = sh.run(&["login", "alice", "--code", &totp(&tablet, T0 + 30)], pw, T0 + 30).ok();
    assert_eq!(out.stdout, "logged in as alice (password and authenticator code)\n");

    // Removing the phone takes a code from another authenticator, not from the phone.
    let remove =
        |id: &str, code: &str, at: u64| sh.run(&["remove-authenticator", "alice", "--id", id, "--code", code], "", at);
    let out = remove(&phone_id, &totp(&phone, T0 + 60), T0 + 60).refused();
    assert_eq!(out.stderr, "refused: wrong code: give a code from another authenticator, or the backup code\n");
    let out = remove("0123456789abcdef", &totp(&tablet, T0 + 60), T0 + 60).refused();
    assert!(out.stderr.contains("alice has no authenticator 0123456789abcdef"), "{}", out.stderr);
    let out = remove(&phone_id, &totp(&tablet, T0 + 60), T0 + 60).ok();
    assert_eq!(out.stdout, format!("removed authenticator {phone_id} from alice; alice was told by mail\n"));
    let names = mail_names(&sh.dir.path().join("outbox"));
    assert!(names.last().unwrap().ends_with("-authenticator.removed.eml"), "{names:?}");
    let out = sh.run(&["authenticators", "alice"], "", T0 + 60).ok();
    assert_eq!(authenticator_lines(&out), [(tablet_id.clone(), "Tablet".to_owned())]);

    // The backup code removes one too, and is replaced by mail as at login.
    let out = sh.run(&["add-authenticator", "alice", "--name", "Laptop"], "", T0 + 60).ok();
    let laptop = parse_otpauth_uri(out.stdout.lines().next().unwrap()).unwrap();
    let out = sh.run(&["confirm-authenticator", "alice", "--code", &totp(&laptop, T0 + 60)], "", T0 + 60).ok();
    let laptop_id = out.stdout.split(' ').nth(2).unwrap().to_owned();
    let backup = backup_code(&sh.mails()[0]);
    let out =
        sh.run(&["remove-authenticator", "alice", "--id", &laptop_id, "--backup-code", &backup], "", T0 + 60).ok();
    assert_eq!(
        out.stdout,
        format!("removed authenticator {laptop_id} from alice; alice was told by mail; a new backup code was mailed\n")
    );
    let names = mail_names(&sh.dir.path().join("outbox"));
    let last_two: Vec<&str> = names[names.len() - 2..].iter().map(|n| n.rsplit('-').next().unwrap()).collect();
    assert!(
        last_two.contains(&"authenticator.removed.eml") && last_two.contains(&"backup_code.rotated.eml"),
        "{names:?}"
    );
    let out = sh.run(&["authenticators", "alice"], "", T0 + 60).ok();
    assert_eq!(authenticator_lines(&out), [(tablet_id.clone(), "Tablet".to_owned())]);

    // The last one cannot go; the phone's codes no longer log in.
    let out = remove(&tablet_id, &totp(&tablet, T0 + 90), T0 + 90).refused();
    assert!(out.stderr.contains("cannot remove the last authenticator of alice"), "{}", out.stderr);
    let out = sh.run(&["login", "alice", "--code", &totp(&phone, T0 + 120)], pw, T0 + 120).refused();
    assert!(out.stderr.contains("wrong code"), "{}", out.stderr);

    // Without two-factor authentication there is nothing to add to.
    let out = sh.run(&["authenticators", "bob"], "", T0).ok();
    assert_eq!(out.stdout, "bob has no authenticators (two-factor authentication is off)\n");
    let out = sh.run(&["add-authenticator", "bob", "--name", "Tablet"], "", T0).refused();
    assert!(out.stderr.contains("two-factor authentication is not active"), "{}", out.stderr);
    sh.run(&["add-authenticator", "nobody", "--name", "Tablet"], "", T0).refused();
    sh.run(&["add-authenticator", "alice", "--name", " "], "", T0).refused();
}

#[test]
fn disable_turns_two_factor_off_after_a_fresh_code() {
    let sh = Shell::new();
    sh.add_user("alice", "user", ALICE_PW);
    let pw = &format!("{ALICE_PW}\n");
    let alice = sh.enroll("alice");
    let backup = backup_code(&sh.mails()[0]);
    let out = sh.run(&["disable", "alice", "--code", &wrong(&totp(&alice, T0 + 30))], "", T0 + 30).refused();
    assert_eq!(out.stderr, "refused: wrong code\n");
    let out = sh.run(&["disable", "alice", "--code", "12x456"], "", T0 + 30).refused();
    assert!(out.stderr.starts_with("refused: invalid input: "), "{}", out.stderr);
    // The backup code works too; it goes with the rest, so no new one is mailed.
    let out = sh.run(&["disable", "alice", "--backup-code", &backup], "", T0 + 30).ok();
    assert_eq!(out.stdout, "two-factor authentication is off for alice; alice was told by mail\n");
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    let names = mail_names(&sh.dir.path().join("outbox"));
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[1].ends_with("-two_factor.disabled.eml"), "{names:?}");
    let out = sh.run(&["login", "alice"], pw, T0 + 60).ok();
    assert_eq!(out.stdout, "logged in as alice (password)\n");
    let out = sh.run(&["authenticators", "alice"], "", T0 + 60).ok();
    assert_eq!(out.stdout, "alice has no authenticators (two-factor authentication is off)\n");
    let out = sh.run(&["disable", "alice", "--code", &totp(&alice, T0 + 60)], "", T0 + 60).refused();
    assert!(out.stderr.contains("two-factor authentication is not active"), "{}", out.stderr);
    sh.run(&["disable", "nobody", "--code", "123456"], "", T0 + 60).refused();
}

#[test]
fn unlock_lifts_the_pause_after_wrong_codes_as_the_role_rules_allow() {
    let sh = Shell::new();
    sh.add_user("alice", "user", ALICE_PW);
    sh.add_user("carol", "user", ALICE_PW);
    sh.add_user("bob", "admin", BOB_PW);
    let pw = &format!("{ALICE_PW}\n");
    let alice = sh.enroll("alice");
    let unlock = |name: &str, by: &str| sh.run(&["unlock", name, "--by", by, "--reason", "phone call"], "", T0 + 30);
    let out = unlock("alice", "bob").refused();
    assert_eq!(out.stderr, "refused: alice is neither paused nor locked: there is nothing to unlock\n");
    // Wrong codes until sign-in is paused: then even the right code is refused.
    let bad = wrong(&totp(&alice, T0 + 30));
    for _ in 0..5 {
        sh.run(&["login", "alice", "--code", &bad], pw, T0 + 30).refused();
    }
    let out = sh.run(&["login", "alice", "--code", &totp(&alice, T0 + 30)], pw, T0 + 30).refused();
    assert!(out.stderr.contains("too many failed attempts"), "{}", out.stderr);
    let out = unlock("alice", "carol").refused();
    assert!(out.stderr.contains("carol (user) may not unlock alice (user)"), "{}", out.stderr);
    unlock("bob", "bob").refused();
    unlock("alice", "nobody").refused();
    let out = sh.run(&["unlock", "alice", "--by", "bob", "--reason", " "], "", T0 + 30).refused();
    assert!(out.stderr.starts_with("refused: invalid input: "), "{}", out.stderr);
    let out = unlock("alice", "bob").ok();
    assert_eq!(out.stdout, "alice was unlocked by bob; alice was told by mail\n");
    let names = mail_names(&sh.dir.path().join("outbox"));
    assert!(names.last().unwrap().ends_with("-unlocked.eml"), "{names:?}");
    let notice = sh.mails().pop().unwrap();
    assert!(notice.contains("bob"), "{notice}");
    // Her second factor is untouched: the code logs in.
    let out = sh.run(&["login", "alice", "--code", &totp(&alice, T0 + 30)], pw, T0 + 30).ok();
    assert_eq!(out.stdout, "logged in as alice (password and authenticator code)\n");
}

#[test]
fn forget_removes_the_user_and_everything_kept_for_them() {
    let sh = Shell::new();
    sh.add_user("alice", "user", ALICE_PW);
    sh.enroll("alice");
    let out = sh.run(&["forget", "alice"], "", T0 + 30).ok();
    assert_eq!(out.stdout, "forgot alice: the account, its two-factor authentication and its queued mail are gone\n");
    let out = sh.run(&["login", "alice"], &format!("{ALICE_PW}\n"), T0 + 30).refused();
    assert!(out.stderr.contains("wrong username or password"), "{}", out.stderr);
    let out = sh.run(&["authenticators", "alice"], "", T0 + 30).refused();
    assert_eq!(out.stderr, "refused: no user named alice\n");
    let out = sh.run(&["forget", "alice"], "", T0 + 30).refused();
    assert_eq!(out.stderr, "refused: no user named alice\n");
    // The name is free again: a new alice starts from nothing.
    sh.add_user("alice", "user", ALICE_PW);
    let out = sh.run(&["authenticators", "alice"], "", T0 + 30).ok();
    assert_eq!(out.stdout, "alice has no authenticators (two-factor authentication is off)\n");
}
