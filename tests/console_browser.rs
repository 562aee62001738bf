//! The console in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`,
//! installed by scripts/setup.sh) driven over WebDriver. An operator signs in, sees the
//! functions, tries one, finds a failing call in the log and reads its traceback, deploys a
//! version by upload and rolls back, creates and revokes a key, and signs out; the pages are
//! checked for unlabelled inputs and for overflowing a narrow screen. Each page is saved as a
//! screenshot in `<work dir>/console-screenshots/` (docs/console.md shows some of them).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Method;
use serde_json::{json, Value};

use support::broker::Broker;
use support::{json, TestServer, ADMIN_TOKEN};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a page may take to show what a step waits for.
const STEP: Duration = Duration::from_secs(60);

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver() -> Driver {
    for tool in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: `bash scripts/setup.sh` installs Debian's chromium and chromium-driver"
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    let status = format!("http://127.0.0.1:{port}/status");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = match reqwest::get(&status).await {
            Ok(response) => response.json::<Value>().await.ok(),
            Err(_) => None,
        };
        if ready.is_some_and(|v| v["value"]["ready"] == true) {
            break;
        }
        assert!(Instant::now() < deadline, "chromedriver did not become ready in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Driver { child, port, _profile: tempfile::tempdir().unwrap() }
}

async fn browser(driver: &Driver) -> Client {
    let profile = driver._profile.path().display().to_string();
    // The flags keep Chromium off the network (this machine has none) and out of a sandbox
    // it cannot make as root in a container.
    let args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,800",
    ]
    .iter()
    .map(|a| a.to_string())
    .chain([format!("--user-data-dir={profile}")])
    .collect::<Vec<_>>();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".into(), json!({"binary": CHROMIUM, "args": args}));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session")
}

fn screenshots_dir() -> PathBuf {
    let dir = support::work_dir().join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "screenshots are PNG");
    std::fs::write(screenshots_dir().join(format!("{name}.png")), png).unwrap();
}

/// Waits for an element the XPath names.
async fn wait_for(client: &Client, xpath: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .every(Duration::from_millis(50))
        .at_most(STEP)
        .for_element(Locator::XPath(xpath))
        .await
        .unwrap_or_else(|e| panic!("waiting for {xpath}: {e}"))
}

/// Waits until the status line says `text`.
async fn status_says(client: &Client, text: &str) {
    wait_for(client, &format!("//*[@id='status']/p[contains(., '{text}')]")).await;
}

async fn set_field(client: &Client, css: &str, text: &str) {
    let field = client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

/// Clicks what the XPath names; again if the page was redrawn between finding and clicking.
async fn click(client: &Client, xpath: &str) {
    let deadline = Instant::now() + STEP;
    loop {
        match wait_for(client, xpath).await.click().await {
            Ok(()) => return,
            Err(e) if e.to_string().contains("stale element") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("clicking {xpath}: {e}"),
        }
    }
}

/// Inputs, selects and text areas with no label, on the page shown.
async fn unlabelled(client: &Client) -> Vec<String> {
    let script = "return [...document.querySelectorAll('input, select, textarea')]\
                  .filter((e) => e.type !== 'hidden' && e.labels.length === 0 && !e.getAttribute('aria-label'))\
                  .map((e) => e.outerHTML);";
    let found = client.execute(script, vec![]).await.unwrap();
    serde_json::from_value(found).unwrap()
}

async fn assert_accessible(client: &Client, page: &str) {
    assert_eq!(unlabelled(client).await, Vec::<String>::new(), "unlabelled fields on {page}");
}

async fn active_version(server: &TestServer, name: &str) -> Value {
    let path = format!("/admin/spaces/default/functions/{name}");
    json(server.admin(Method::GET, &path).send().await.unwrap()).await.1["active_version"].clone()
}

#[tokio::test]
async fn an_operator_works_through_the_console_in_chromium() {
    // The test fixture and an example, as `wasmfn serve` would serve them.
    let bundle = tokio::task::spawn_blocking(|| support::fixture_bundle("behave")).await.unwrap();
    let example = tokio::task::spawn_blocking(|| {
        std::fs::read(support::example_bundle("hello-world")).expect("the example's bundle")
    })
    .await
    .unwrap();
    let bundles = vec![("default".to_string(), bundle.clone()), ("default".to_string(), example)];
    let server = support::start_bundles(
        bundles,
        None,
        support::node_options(),
        support::capability_options(),
    )
    .await;
    let upload = tempfile::Builder::new().suffix(".wasm").tempfile().unwrap();
    std::fs::write(upload.path(), &bundle).unwrap();
    let driver = start_driver().await;
    let client = browser(&driver).await;

    // Sign in.
    client.goto(&server.url("/console")).await.unwrap();
    wait_for(&client, "//input[@id='token']").await;
    assert_accessible(&client, "sign-in").await;
    let nav = client.find(Locator::Id("nav")).await.unwrap();
    assert!(!nav.is_displayed().await.unwrap(), "no sections before signing in");
    // The keyboard's way in: the skip link first, then the email field (focused at load).
    let focused = "return document.activeElement.id || document.activeElement.textContent.trim();";
    assert_eq!(client.execute(focused, vec![]).await.unwrap(), "email");
    let back_tab = format!("{}{}", char::from(Key::Shift), char::from(Key::Tab));
    client.active_element().await.unwrap().send_keys(&back_tab).await.unwrap();
    assert_eq!(client.execute(focused, vec![]).await.unwrap(), "Skip to content");
    screenshot(&client, "sign-in").await;
    set_field(&client, "#token", "wrong-token").await;
    click(&client, "//button[text()='Sign in with the token']").await;
    status_says(&client, "wrong").await;
    // From the keyboard: the token, then Enter.
    set_field(&client, "#token", &format!("{ADMIN_TOKEN}{}", char::from(Key::Enter))).await;

    // The example is listed too, and answers from Try it.
    click(&client, "//table//a[text()='hello-world']").await;
    wait_for(&client, "//h1[text()='default / hello-world']").await;
    click(&client, "//button[text()='Invoke']").await;
    wait_for(&client, "//pre[@id='try-body'][contains(., 'Hello World')]").await;
    click(&client, "//nav//a[text()='Functions']").await;

    // From the keyboard: after a page is drawn, focus is on its content, and Tab goes on from
    // there to the first link in it.
    let focused = "return document.activeElement.id || document.activeElement.textContent.trim();";
    wait_for(&client, "//table//a[text()='behave']").await;
    assert_eq!(client.execute(focused, vec![]).await.unwrap(), "main");
    let tab = char::from(Key::Tab).to_string();
    client.active_element().await.unwrap().send_keys(&tab).await.unwrap();
    assert_eq!(client.execute(focused, vec![]).await.unwrap(), "behave");

    // Functions, the node, its servers and the charts (drawn by the chart library into canvases).
    wait_for(&client, "//table//a[text()='behave']").await;
    wait_for(&client, "//*[@id='node']//dd[contains(., 'run slots')]").await;
    // The servers sharing the state: here this one only, alive.
    wait_for(&client, "//*[@id='servers']//tr[td[contains(., '(this one)')]]/td[text()='alive']")
        .await;
    wait_for(&client, "//figure[@aria-label='Duration']//canvas").await;
    assert_accessible(&client, "functions").await;
    let source = client.source().await.unwrap();
    assert!(!source.contains(ADMIN_TOKEN), "the admin token is not in the page");
    assert!(!client.current_url().await.unwrap().as_str().contains(ADMIN_TOKEN));
    screenshot(&client, "functions").await;

    // Try it: an answer, then a failure with its traceback.
    click(&client, "//table//a[text()='behave']").await;
    wait_for(&client, "//h1[text()='default / behave']").await;
    assert_accessible(&client, "function").await;
    let entry = client.find(Locator::Css("#try-entry")).await.unwrap();
    entry.select_by_value("behave.greet").await.unwrap();
    set_field(&client, "#try-arguments", r#"{"name": "Console"}"#).await;
    click(&client, "//button[text()='Invoke']").await;
    let answer = wait_for(&client, "//pre[@id='try-body'][contains(., 'Hello, Console!')]").await;
    client
        .execute("arguments[0].scrollIntoView({block: 'center'});", vec![json!(answer)])
        .await
        .unwrap();
    screenshot(&client, "try-it").await;
    let entry = client.find(Locator::Css("#try-entry")).await.unwrap();
    entry.select_by_value("behave.boom").await.unwrap();
    set_field(&client, "#try-arguments", "{}").await;
    click(&client, "//button[text()='Invoke']").await;
    wait_for(&client, "//pre[contains(@class, 'traceback')][contains(., 'ValueError')]").await;
    // The function's charts, over another window, now with its calls in them.
    let window = client.find(Locator::Css("#metrics-window")).await.unwrap();
    window.select_by_value("24h").await.unwrap();
    let charts = "//section[.//h2[text()='Metrics']]//p[contains(., 'invocations in the window; one point per 15 min')]";
    let summary = wait_for(&client, charts).await;
    assert!(!summary.text().await.unwrap().starts_with("0 "), "the calls made are counted");
    client
        .execute("arguments[0].scrollIntoView({block: 'end'});", vec![json!(summary)])
        .await
        .unwrap();
    screenshot(&client, "metrics").await;

    // Configuration set here reaches the function; a secret is set but never shown back.
    set_field(&client, "#config-values", r#"{"region": "console-set"}"#).await;
    click(&client, "//button[text()='Save values']").await;
    status_says(&client, "Configuration values saved").await;
    set_field(&client, "#secret-name", "api_token").await;
    set_field(&client, "#secret-value", "s3cret-from-browser").await;
    click(&client, "//button[text()='Set secret']").await;
    status_says(&client, "Secret api_token set").await;
    wait_for(&client, "//ul[@id='secret-names']/li[span[text()='api_token']]").await;
    assert!(
        !client.source().await.unwrap().contains("s3cret-from-browser"),
        "secrets are write-only"
    );
    let entry = client.find(Locator::Css("#try-entry")).await.unwrap();
    entry.select_by_value("behave.echo").await.unwrap();
    set_field(&client, "#try-arguments", "{}").await;
    click(&client, "//button[text()='Invoke']").await;
    wait_for(&client, "//pre[@id='try-body'][contains(., 'console-set')]").await;

    // The log, filtered to the failing call, and its record with the traceback.
    click(&client, "//nav//a[text()='Invocation log']").await;
    wait_for(&client, "//input[@id='log-outcome']").await;
    assert_accessible(&client, "log").await;
    set_field(&client, "#log-outcome", "function_exception").await;
    click(&client, "//button[text()='Filter']").await;
    let failing = "//*[@id='log-results']//tr[td[contains(., 'function_exception')]]//a";
    wait_for(&client, failing).await;
    screenshot(&client, "log").await;
    click(&client, failing).await;
    wait_for(
        &client,
        "//pre[contains(@class, 'traceback')][contains(., 'bad value from the function')]",
    )
    .await;
    screenshot(&client, "log-record").await;

    // Deploy a new function by upload, a second version, then roll back.
    client.goto(&server.url("/console#/functions")).await.unwrap();
    wait_for(&client, "//input[@id='deploy-file']").await;
    set_field(&client, "#deploy-name", "uploaded").await;
    set_field(&client, "#deploy-version", "1.0.0").await;
    let file = client.find(Locator::Css("#deploy-file")).await.unwrap();
    file.send_keys(&upload.path().display().to_string()).await.unwrap();
    click(&client, "//button[text()='Deploy']").await;
    wait_for(&client, "//h1[text()='default / uploaded']").await;
    status_says(&client, "Deployed default/uploaded 1.0.0").await;
    wait_for(&client, "//tr[td[text()='1.0.0']]//div[text()='by admin token']").await;
    set_field(&client, "#deploy-version", "1.1.0").await;
    let file = client.find(Locator::Css("#deploy-file")).await.unwrap();
    file.send_keys(&upload.path().display().to_string()).await.unwrap();
    click(&client, "//button[text()='Deploy']").await;
    status_says(&client, "Deployed default/uploaded 1.1.0").await;
    assert_eq!(active_version(&server, "uploaded").await, "1.1.0");
    click(&client, "//button[text()='Roll back to 1.0.0']").await;
    client.accept_alert().await.expect("the rollback asks first");
    status_says(&client, "uploaded now serves 1.0.0").await;
    assert_eq!(active_version(&server, "uploaded").await, "1.0.0");
    screenshot(&client, "versions").await;

    // A key, created (shown once) and revoked.
    click(&client, "//nav//a[text()='API keys']").await;
    wait_for(&client, "//input[@id='key-name']").await;
    assert_accessible(&client, "keys").await;
    set_field(&client, "#key-name", "browser-key").await;
    click(&client, "//button[text()='Create']").await;
    let shown = wait_for(&client, "//pre[@id='new-key']").await.text().await.unwrap();
    assert!(shown.starts_with("wfk_"), "{shown}");
    client.refresh().await.unwrap();
    let share = "//tr[td[text()='browser-key']]//input[starts-with(@id, 'share-')]";
    wait_for(&client, share).await.send_keys("plant-b").await.unwrap();
    click(&client, "//tr[td[text()='browser-key']]//button[text()='Share']").await;
    status_says(&client, "now opens plant-b too").await;
    let (_, keys) =
        json(server.admin(Method::GET, "/admin/spaces/default/keys").send().await.unwrap()).await;
    assert_eq!(keys["keys"][0]["shared_with"], json!(["plant-b"]), "{keys}");
    click(&client, "//tr[td[text()='browser-key']]//button[text()='Revoke']").await;
    client.accept_alert().await.expect("revoking asks first");
    status_says(&client, "Revoked key browser-key").await;
    let (_, keys) =
        json(server.admin(Method::GET, "/admin/spaces/default/keys").send().await.unwrap()).await;
    assert_eq!(keys["keys"], json!([]), "the key is gone");

    // Triggers: the fixture's cron trigger with its next fire time, and an MQTT trigger made
    // here, which goes Failed when its broker stops and Running when it is back.
    click(&client, "//nav//a[text()='Triggers']").await;
    wait_for(&client, "//tr[@data-trigger='new-year']//div[starts-with(., 'next: ')]").await;
    assert_accessible(&client, "triggers").await;
    let mut broker = Broker::start(None);
    set_field(&client, "#mqtt-name", "plant").await;
    set_field(&client, "#mqtt-broker", &broker.url()).await;
    set_field(&client, "#mqtt-topics", "plant/+/temp, plant/alarm").await;
    set_field(&client, "#mqtt-function", "behave").await;
    click(&client, "//button[text()='Create trigger']").await;
    status_says(&client, "Created trigger plant").await;
    let state = |s: &str| {
        format!("//tr[@data-trigger='plant']//span[@class='trigger-state'][text()='{s}']")
    };
    wait_for(&client, &state("Running")).await;
    // Edited in place: new topics, the same connection settings.
    click(&client, "//tr[@data-trigger='plant']//button[text()='Edit']").await;
    set_field(&client, "#mqtt-topics", "plant/+/humidity").await;
    click(&client, "//button[text()='Save trigger']").await;
    status_says(&client, "Saved trigger plant").await;
    wait_for(&client, "//tr[@data-trigger='plant']/td[contains(., 'plant/+/humidity')]").await;
    wait_for(&client, &state("Running")).await;
    broker.stop();
    wait_for(&client, &state("Failed")).await;
    let reason =
        wait_for(&client, "//tr[@data-trigger='plant']//div[contains(@class, 'reason')]").await;
    assert!(!reason.text().await.unwrap().is_empty(), "a failed trigger says why");
    screenshot(&client, "triggers").await;
    broker.resume();
    wait_for(&client, &state("Running")).await;
    click(&client, "//tr[@data-trigger='plant']//button[text()='Delete']").await;
    client.accept_alert().await.expect("deleting asks first");
    status_says(&client, "Deleted trigger plant").await;
    let (_, listed) =
        json(server.admin(Method::GET, "/admin/spaces/default/triggers").send().await.unwrap())
            .await;
    assert!(!listed.to_string().contains("\"plant\""), "{listed}");

    // An event subscription to a webhook: its secret shown once, then deleted.
    set_field(&client, "#sub-name", "inserts").await;
    click(&client, "//label[@for='sub-STORAGE_INSERT']").await;
    set_field(&client, "#sub-webhook", "http://127.0.0.1:9/hook").await;
    click(&client, "//button[text()='Create subscription']").await;
    let secret = wait_for(&client, "//pre[@id='webhook-secret']").await.text().await.unwrap();
    assert!(secret.starts_with("whs_"), "{secret}");
    wait_for(&client, "//tr[@data-subscription='inserts']").await;
    click(&client, "//tr[@data-subscription='inserts']//button[text()='Delete']").await;
    client.accept_alert().await.expect("deleting asks first");
    status_says(&client, "Deleted event subscription inserts").await;

    // A narrow screen: the page does not overflow sideways (wide tables scroll in place).
    client.set_window_size(390, 844).await.unwrap();
    client.goto(&server.url("/console#/functions")).await.unwrap();
    wait_for(&client, "//table//a[text()='behave']").await;
    let overflow = client
        .execute("return document.documentElement.scrollWidth - window.innerWidth;", vec![])
        .await
        .unwrap();
    assert!(overflow.as_i64().unwrap() <= 0, "the page is {overflow} px wider than the screen");
    screenshot(&client, "narrow").await;
    client.set_window_size(1280, 800).await.unwrap();

    // An invitation for a developer of `default`, made on the accounts page.
    click(&client, "//nav//a[text()='Accounts']").await;
    wait_for(&client, "//input[@id='invite-email']").await;
    assert_accessible(&client, "accounts").await;
    set_field(&client, "#invite-email", "dev@example.com").await;
    set_field(&client, "#invite-roles", "default:developer").await;
    click(&client, "//button[text()='Invite']").await;
    let code = wait_for(&client, "//pre[@id='invitation-code']").await.text().await.unwrap();
    assert!(code.starts_with("wfi_"), "{code}");
    screenshot(&client, "accounts").await;

    // Sign out: the session ends on the server too.
    click(&client, "//button[@id='sign-out']").await;
    wait_for(&client, "//input[@id='token']").await;
    let status = client
        .execute_async(
            "const done = arguments[0]; fetch('/admin/functions').then((r) => done(r.status));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, 401);

    // The invited developer registers, and sees what a developer of `default` may do: deploy,
    // but neither the node nor key management.
    set_field(&client, "#invitation", &code).await;
    set_field(&client, "#new-password", "a developer's passphrase").await;
    click(&client, "//button[text()='Register']").await;
    wait_for(&client, "//*[@id='who'][contains(., 'dev@example.com')]").await;
    wait_for(&client, "//select[@id='space-select']/option[@value='default']").await;
    wait_for(&client, "//input[@id='deploy-file']").await;
    assert!(client.find(Locator::Css("#node")).await.is_err(), "the node is the admin's");
    let accounts_link = client.find(Locator::Id("accounts-link")).await.unwrap();
    assert!(!accounts_link.is_displayed().await.unwrap(), "accounts are the admin's");
    click(&client, "//nav//a[text()='API keys']").await;
    wait_for(&client, "//h1[text()='API keys']").await;
    assert!(client.find(Locator::Css("#key-name")).await.is_err(), "keys are the owner's");
    screenshot(&client, "developer").await;
    client.close().await.unwrap();
}
