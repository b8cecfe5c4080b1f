//! Processes for the browser tests: the `web` example server and ChromeDriver driving
//! Debian's headless Chromium, plus a small page toolkit over fantoccini.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fantoccini::{Client, ClientBuilder, Locator};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A child process killed (and reaped) on drop.
pub struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("twofactor-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `target/` (this test binary lives in `target/debug/deps/`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).expect("target dir above the test binary").to_path_buf()
}

/// The running `web` example: its URL and the seeded credentials it printed.
pub struct Server {
    pub url: String,
    pub admin_password: String,
    pub user_password: String,
    /// The run's data directory (`TWOFACTOR_WEB_DATA_DIR`): its database, key file and
    /// file outbox (`outbox/`).
    pub data: TempDir,
    _child: Reaped,
}

impl Server {
    /// Starts `target/debug/examples/web` on a free port with a fresh data dir.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Like [`start`](Self::start), with extra environment variables.
    pub fn start_with(env: &[(&str, &str)]) -> Server {
        let bin = web_binary();
        let data = TempDir::new("web-data");
        let mut child = Command::new(&bin)
            .env("TWOFACTOR_WEB_ADDR", "127.0.0.1:0")
            .env("TWOFACTOR_WEB_DATA_DIR", &data.0)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stdout = child.stdout.take().unwrap();
        let child = Reaped(child);
        let (mut url, mut admin, mut user) = (None, None, None);
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("listening on ") {
                url = Some(rest.trim().to_owned());
                break;
            }
            let password = line.split(" password ").nth(1).map(str::to_owned);
            if line.starts_with("demo admin: username admin ") {
                admin = password;
            } else if line.starts_with("demo user: username alice ") {
                user = password;
            }
        }
        // Keep draining stdout so the server never writes into a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Server {
            url: url.expect("the example never printed `listening on http://…`"),
            admin_password: admin.expect("admin credentials line"),
            user_password: user.expect("user credentials line"),
            data,
            _child: child,
        }
    }
}

/// `target/debug/examples/web`, checked to be newer than its sources.
pub fn web_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.ancestors().nth(2).unwrap().join("examples").join("web");
    assert!(bin.exists(), "{} is missing: `cargo test` builds the examples; run it via cargo", bin.display());
    assert_fresh(&bin);
    bin
}

/// Fails when a source of the example is newer than its binary: `cargo test --test
/// web_browser` alone does not rebuild the example, and would test an old build.
fn assert_fresh(bin: &Path) {
    let built = std::fs::metadata(bin).and_then(|m| m.modified()).unwrap();
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join("web");
    for source in std::fs::read_dir(&sources).unwrap() {
        let source = source.unwrap().path();
        if source.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let modified = std::fs::metadata(&source).and_then(|m| m.modified()).unwrap();
        assert!(
            modified <= built,
            "{} is older than {}: build it first (`cargo build --features sqlite --example web`)",
            bin.display(),
            source.display()
        );
    }
}

/// A plain HTTP/1.1 exchange: (status, headers lowercased as `name: value`, body).
pub fn http(
    url: &str,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> (u16, Vec<String>, String) {
    use std::io::{Read, Write};
    let host = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    let body = form.unwrap_or_default();
    if form.is_some() {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    (status, lines.map(str::to_owned).collect(), body.to_owned())
}

/// The value of the first response header `name` (case-insensitive).
pub fn header(headers: &[String], name: &str) -> Option<String> {
    headers.iter().find_map(|h| {
        let (k, v) = h.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// The whole `Set-Cookie` value that sets cookie `name`, if the response sets it.
pub fn set_cookie(headers: &[String], name: &str) -> Option<String> {
    headers.iter().find_map(|h| {
        let (k, v) = h.split_once(':')?;
        let v = v.trim();
        (k.eq_ignore_ascii_case("set-cookie") && v.starts_with(&format!("{name}="))).then(|| v.to_owned())
    })
}

/// The `name=value` pair a response's `Set-Cookie` sets for cookie `name`.
pub fn cookie_pair(headers: &[String], name: &str) -> Option<String> {
    set_cookie(headers, name).map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// ChromeDriver on a free port and a headless Chromium session through it.
pub struct Browser {
    pub client: Client,
    pub shots: PathBuf,
    _driver: Reaped,
    _profile: TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: install Debian's chromium and chromium-driver \
                 (`bash -c 'source scripts/services.sh; install_packages'`)"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let driver = Reaped(driver);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen on port {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = TempDir::new("chromium-profile");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-quic",
            "--no-first-run",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1000,1000",
            &format!("--user-data-dir={}", profile.0.display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), serde_json::json!({ "binary": CHROMIUM, "args": args }));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("cannot start a Chromium session through chromedriver: {e}"));
        let shots = target_dir().join("web-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Browser { client, shots, _driver: driver, _profile: profile }
    }

    /// Saves a PNG of the current page as `target/web-screenshots/NAME.png`.
    pub async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// Waits for an element (the next page has loaded).
    pub async fn wait(&self, css: &str) -> fantoccini::elements::Element {
        let found = self.client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await;
        match found {
            Ok(el) => el,
            Err(e) => {
                let page = self.client.source().await.unwrap_or_default();
                panic!("no `{css}` on {:?}: {e}\n{page}", self.client.current_url().await.ok())
            }
        }
    }

    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no `{css}`: {e}"))
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    pub async fn displayed(&self, css: &str) -> bool {
        self.find(css).await.is_displayed().await.unwrap()
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let el = self.find(css).await;
        el.clear().await.unwrap();
        el.send_keys(value).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    /// Clicks something that loads a new page and waits until the old page is gone.
    pub async fn click_and_load(&self, css: &str) {
        let old = self.find("html").await;
        self.click(css).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while old.tag_name().await.is_ok() {
            assert!(Instant::now() < deadline, "clicking `{css}` did not load a new page");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.wait("body").await;
    }

    /// Loads `url`.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
        self.wait("body").await;
    }

    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    pub async fn cookie(&self, name: &str) -> Option<fantoccini::cookies::Cookie<'static>> {
        self.client.get_named_cookie(name).await.ok()
    }
}
