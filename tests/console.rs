//! The operator console (`/console`): sign-in sessions and what they may do, over real HTTP
//! (cookies, CSRF, a space key's read-only view, failed sign-ins limited), and the pages
//! themselves in headless Chromium driven over WebDriver (`tests/console_browser.rs`).

mod support;

use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::Method;
use serde_json::{json, Value};

use support::{json, node_options, start_bundles, TestServer, ADMIN_TOKEN};

/// `behave` in spaces `default` and `other`.
async fn two_spaces() -> TestServer {
    let bytes = tokio::task::spawn_blocking(|| support::fixture_bundle("behave")).await.unwrap();
    let bundles = vec![("default".to_string(), bytes.clone()), ("other".to_string(), bytes)];
    start_bundles(bundles, None, node_options(), support::capability_options()).await
}

/// A signed-in browser, as far as HTTP goes: its session cookie and CSRF token.
struct Session {
    cookie: String,
    csrf: String,
    view: Value,
}

async fn sign_in(server: &TestServer, token: &str) -> Result<Session, (u16, Value, HeaderMap)> {
    let response = server
        .client
        .post(server.url("/console/session"))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    let headers = response.headers().clone();
    let (status, view) = json(response).await;
    if status != 200 {
        return Err((status, view, headers));
    }
    let set_cookie = headers[SET_COOKIE].to_str().unwrap().to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let csrf = view["csrf_token"].as_str().unwrap().to_string();
    Ok(Session { cookie, csrf, view })
}

impl Session {
    fn request(&self, server: &TestServer, method: Method, path: &str) -> reqwest::RequestBuilder {
        server.client.request(method, server.url(path)).header(COOKIE, &self.cookie)
    }

    /// A change, with the CSRF token.
    fn change(&self, server: &TestServer, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.request(server, method, path).header("x-csrf-token", &self.csrf)
    }
}

#[tokio::test]
async fn the_page_is_served_with_headers_that_keep_scripts_and_frames_out() {
    let server = two_spaces().await;
    let response = server.client.get(server.url("/console")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let html = response.text().await.unwrap();
    assert!(html.contains("/console/assets/app.js"), "{html}");
    assert!(!html.contains("<script>"), "no inline script (the policy would refuse it)");
    for asset in ["app.js", "style.css"] {
        let response = server
            .client
            .get(server.url(&format!("/console/assets/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{asset}");
    }
    let missing = server.client.get(server.url("/console/assets/nope.js")).send().await.unwrap();
    assert_eq!(json(missing).await.0, 404);

    // A browser opening /admin is sent to the console; API clients still get the index.
    let no_redirects =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let browser = no_redirects.get(server.url("/admin")).header(ACCEPT, "text/html").send();
    let browser = browser.await.unwrap();
    assert_eq!(browser.status(), 303);
    assert_eq!(browser.headers()[LOCATION], "/console");
    let (status, index) = json(server.client.get(server.url("/admin")).send().await.unwrap()).await;
    assert_eq!((status, index["console"].as_str()), (200, Some("/console")));
}

#[tokio::test]
async fn nothing_answers_without_a_session_and_changes_need_the_csrf_token() {
    let server = two_spaces().await;
    // No credentials, a forged cookie, a wrong token: nothing.
    let (status, _) =
        json(server.client.get(server.url("/admin/functions")).send().await.unwrap()).await;
    assert_eq!(status, 401);
    let forged =
        server.client.get(server.url("/admin/functions")).header(COOKIE, "wasmfn_console=forged");
    let (status, body) = json(forged.send().await.unwrap()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));
    let (status, ..) = sign_in(&server, "not-the-token").await.err().unwrap();
    assert_eq!(status, 401);
    let (status, _) =
        json(server.client.get(server.url("/console/session")).send().await.unwrap()).await;
    assert_eq!(status, 401);
    // A form post (what another site could make a browser send) cannot sign in.
    let form = server
        .client
        .post(server.url("/console/session"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token={ADMIN_TOKEN}"));
    assert_eq!(json(form.send().await.unwrap()).await.0, 415);

    let admin = sign_in(&server, ADMIN_TOKEN).await.unwrap();
    assert_eq!(admin.view["scope"]["kind"], "admin");
    assert!(!admin.view.to_string().contains(ADMIN_TOKEN), "the token is never sent back");
    assert!(!admin.cookie.contains(ADMIN_TOKEN));
    let (status, listed) =
        json(admin.request(&server, Method::GET, "/admin/functions").send().await.unwrap()).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["functions"].as_array().unwrap().len(), 2, "{listed}");
    // With what the functions page shows of each: access and limits (behave's function.toml).
    assert_eq!(listed["functions"][0]["access"], "public");
    assert_eq!(listed["functions"][0]["limits"]["timeout_ms"], 1000);
    // The page reloads its CSRF token from the session.
    let (status, current) =
        json(admin.request(&server, Method::GET, "/console/session").send().await.unwrap()).await;
    assert_eq!((status, current["csrf_token"].as_str()), (200, Some(admin.csrf.as_str())));

    // A change without the token, or with another one, is refused and changes nothing.
    let create = json!({"name": "from-the-console"});
    let without = admin.request(&server, Method::POST, "/admin/spaces/default/keys").json(&create);
    let (status, body) = json(without.send().await.unwrap()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("csrf")));
    let wrong = admin
        .request(&server, Method::POST, "/admin/spaces/default/keys")
        .header("x-csrf-token", "guess")
        .json(&create);
    assert_eq!(json(wrong.send().await.unwrap()).await.0, 403);
    let (_, keys) =
        json(server.admin(Method::GET, "/admin/spaces/default/keys").send().await.unwrap()).await;
    assert_eq!(keys["keys"], json!([]), "refused changes changed nothing");
    let with = admin.change(&server, Method::POST, "/admin/spaces/default/keys").json(&create);
    let (status, created) = json(with.send().await.unwrap()).await;
    assert_eq!(status, 201, "{created}");

    // Signing out ends the session on the server, not only in the browser.
    let out = admin.change(&server, Method::DELETE, "/console/session").send().await.unwrap();
    assert_eq!(out.status(), 200);
    assert!(out.headers()[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    let after = admin.request(&server, Method::GET, "/admin/functions").send().await.unwrap();
    assert_eq!(after.status(), 401);
}

#[tokio::test]
async fn try_it_answers_the_call_and_its_log_record() {
    let server = two_spaces().await;
    let admin = sign_in(&server, ADMIN_TOKEN).await.unwrap();
    let call =
        json!({"entry": "behave.echo", "arguments": {"n": 7}, "method": "PUT", "path": "/a/b"});
    let try_path = "/admin/spaces/default/functions/behave/try";
    let (status, answer) =
        json(admin.change(&server, Method::POST, try_path).json(&call).send().await.unwrap()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], 200);
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["args"], json!({"n": 7}));
    assert_eq!((body["method"].as_str(), body["path"].as_str()), (Some("PUT"), Some("/a/b")));
    assert_eq!(body["trigger"], "console");
    assert_eq!(answer["record"]["trigger"], "console");
    assert_eq!(answer["record"]["id"], answer["invocation_id"]);

    let chatty = json!({"entry": "behave.chatty"});
    let (_, answer) =
        json(admin.change(&server, Method::POST, try_path).json(&chatty).send().await.unwrap())
            .await;
    assert_eq!(answer["record"]["stdout"], "printed to stdout\n");
    assert_eq!(answer["record"]["stderr"], "printed to stderr\n");
    assert_eq!(answer["record"]["logs"][0]["message"], "logged a warning");

    let boom = json!({"entry": "behave.boom"});
    let (_, answer) =
        json(admin.change(&server, Method::POST, try_path).json(&boom).send().await.unwrap()).await;
    assert_eq!(answer["status"], 500);
    let traceback = answer["record"]["traceback"].as_str().unwrap();
    assert!(traceback.contains("ValueError: bad value from the function"), "{traceback}");

    let bad = admin.change(&server, Method::POST, try_path).json(&json!({"arguments": [1]}));
    let (status, body) = json(bad.send().await.unwrap()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")));
    let missing = admin.change(&server, Method::POST, "/admin/spaces/default/functions/nope/try");
    assert_eq!(json(missing.send().await.unwrap()).await.0, 404);
    // The call is in the invocation log (written a moment later), which the text filter finds.
    let query = "/admin/logs?text=BAD%20value&trigger=console";
    let records = logs_until(&server, &admin, query, 1).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["outcome"], "function_exception");
    let query = "/admin/logs?text=printed%20to%20stderr&version=1.0.0";
    assert_eq!(logs_until(&server, &admin, query, 1).await[0]["entry"], "behave.chatty");
    let none = "/admin/logs?text=printed%20to%20stderr&version=9.9.9";
    let (_, found) = json(admin.request(&server, Method::GET, none).send().await.unwrap()).await;
    assert_eq!(found["records"], json!([]));
}

/// The records a log query finds once it finds `n` (the log writer batches its writes);
/// what it found after 10 s otherwise.
async fn logs_until(server: &TestServer, session: &Session, query: &str, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let response = session.request(server, Method::GET, query).send().await.unwrap();
        let (status, found) = json(response).await;
        assert_eq!(status, 200, "{found}");
        let records = found["records"].as_array().unwrap().clone();
        if records.len() >= n || std::time::Instant::now() > deadline {
            return records;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_api_key_signs_in_to_a_read_only_view_of_its_own_space() {
    let server = two_spaces().await;
    let (status, created) = json(
        server
            .admin(Method::POST, "/admin/spaces/other/keys")
            .json(&json!({"name": "viewer", "caller": {"company": {"public_id": "co9"}}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap();
    // One call in each space, so the log has records the key may and may not see.
    for space in ["default", "other"] {
        let url = server.url(&format!("/spaces/{space}/functions/behave/invoke"));
        let response = server.client.post(url).json(&json!({"space": space})).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let viewer = sign_in(&server, key).await.unwrap();
    assert_eq!(
        viewer.view["scope"],
        json!({"kind": "space", "space": "other", "key_id": created["id"], "key_name": "viewer"})
    );

    let get = |path: &str| viewer.request(&server, Method::GET, path).send();
    assert_eq!(json(get("/admin/spaces/other/functions").await.unwrap()).await.0, 200);
    for path in
        ["/admin/spaces/default/functions", "/admin/functions", "/admin/triggers", "/metrics"]
    {
        let (status, body) = json(get(path).await.unwrap()).await;
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some("read_only")), "{path}");
    }
    // The log is cut to its space, even when the query names another one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let all = loop {
        let (_, all) = json(server.admin(Method::GET, "/admin/logs").send().await.unwrap()).await;
        if all["records"].as_array().unwrap().len() >= 2 || std::time::Instant::now() > deadline {
            break all;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let (_, seen) = json(get("/admin/logs?space=default").await.unwrap()).await;
    let seen = seen["records"].as_array().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["space"], "other");
    let foreign =
        all["records"].as_array().unwrap().iter().find(|r| r["space"] == "default").unwrap();
    let foreign_path = format!("/admin/logs/{}", foreign["id"].as_str().unwrap());
    assert_eq!(json(get(&foreign_path).await.unwrap()).await.0, 404);

    // No changes, with or without the CSRF token; Try it runs with the key's identity.
    let change = viewer
        .change(&server, Method::POST, "/admin/spaces/other/keys")
        .json(&json!({"name": "x"}));
    assert_eq!(json(change.send().await.unwrap()).await.0, 403);
    let delete = viewer.change(&server, Method::DELETE, "/admin/spaces/other/functions/behave");
    assert_eq!(json(delete.send().await.unwrap()).await.0, 403);
    let tried = viewer
        .change(&server, Method::POST, "/admin/spaces/other/functions/behave/try")
        .json(&json!({}));
    let (status, answer) = json(tried.send().await.unwrap()).await;
    assert_eq!(status, 200, "{answer}");
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["company"]["public_id"], "co9");
    let elsewhere = viewer
        .change(&server, Method::POST, "/admin/spaces/default/functions/behave/try")
        .json(&json!({}));
    assert_eq!(json(elsewhere.send().await.unwrap()).await.0, 403);

    // Revoking the key ends the session.
    let id = created["id"].as_str().unwrap();
    let revoked = server.admin(Method::DELETE, &format!("/admin/spaces/other/keys/{id}")).send();
    assert_eq!(revoked.await.unwrap().status(), 204);
    assert_eq!(json(get("/admin/spaces/other/functions").await.unwrap()).await.0, 401);
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_client_address() {
    let server = two_spaces().await;
    let limit = wasmfn_runtime::access::console::MAX_FAILURES;
    for _ in 0..limit {
        let (status, ..) = sign_in(&server, "guess").await.err().unwrap();
        assert_eq!(status, 401);
    }
    let (status, body, headers) = sign_in(&server, ADMIN_TOKEN).await.err().unwrap();
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("too_many_sign_ins")));
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= wasmfn_runtime::access::console::FAILURE_WINDOW.as_secs());
    // The bearer token still works: operators are not locked out of the API.
    let api = server.admin(Method::GET, "/admin/functions").send().await.unwrap();
    assert_eq!(api.status(), 200);
}

#[tokio::test]
async fn statistics_for_the_charts_come_from_the_invocation_log() {
    let server = two_spaces().await;
    // Three good calls and one failure in `default`, one call in `other`.
    for entry in ["behave.echo", "behave.echo", "behave.greet?name=x", "behave.boom"] {
        let (function, query) = entry.split_once('?').unwrap_or((entry, ""));
        let url = format!("/spaces/default/functions/behave:{function}/invoke?{query}");
        server.client.post(server.url(&url)).send().await.unwrap();
    }
    server.client.post(server.url("/spaces/other/functions/behave/invoke")).send().await.unwrap();
    let admin = sign_in(&server, ADMIN_TOKEN).await.unwrap();
    logs_until(&server, &admin, "/admin/logs", 5).await;

    let (status, stats) =
        json(admin.request(&server, Method::GET, "/admin/stats?window=1h").send().await.unwrap())
            .await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!((stats["step_seconds"].as_u64(), stats["records"].as_u64()), (Some(60), Some(5)));
    let series = &stats["series"];
    assert_eq!(series["time"].as_array().unwrap().len(), 60, "one point a minute");
    let sum =
        |name: &str| series[name].as_array().unwrap().iter().filter_map(Value::as_u64).sum::<u64>();
    assert_eq!((sum("calls"), sum("errors")), (5, 1));
    let points = series["calls"].as_array().unwrap();
    let last = points.iter().rposition(|c| c.as_u64() > Some(0)).unwrap();
    assert!(series["p99_ms"][last].is_u64(), "durations where there were calls: {series}");
    assert!(series["instantiate_ms"][last].is_f64(), "{series}");
    let default = stats["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["space"] == "default")
        .unwrap()
        .clone();
    assert_eq!((default["calls"].as_u64(), default["errors"].as_u64()), (Some(4), Some(1)));
    assert_eq!(default["version"], "1.0.0");

    // One function's series, a longer window, and what is refused.
    let (_, week) = json(
        admin
            .request(&server, Method::GET, "/admin/spaces/other/stats?window=7d&function=behave")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((week["step_seconds"].as_u64(), week["records"].as_u64()), (Some(3600), Some(1)));
    let version = |v: &str| format!("/admin/spaces/default/stats?version={v}");
    let (_, of_version) =
        json(admin.request(&server, Method::GET, &version("1.0.0")).send().await.unwrap()).await;
    assert_eq!(of_version["records"], 4);
    let (_, none) =
        json(admin.request(&server, Method::GET, &version("9.9.9")).send().await.unwrap()).await;
    assert_eq!(none["records"], 0);
    let bad = admin.request(&server, Method::GET, "/admin/stats?window=2y").send().await.unwrap();
    let (status, body) = json(bad).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_query")));

    let (status, node) =
        json(admin.request(&server, Method::GET, "/admin/node").send().await.unwrap()).await;
    assert_eq!(status, 200, "{node}");
    assert_eq!(node["functions"], 2);
    assert!(node["max_running"].as_u64().unwrap() >= 1);
    assert!(node["free_instance_slots"].as_u64().unwrap() >= 1, "{node}");
    assert!(node["pooled_instances"].is_u64(), "{node}");
    assert!(node["resident_memory_bytes"].as_u64().unwrap() > 1 << 20, "{node}");
}

/// Creates an account through the admin API.
async fn create_account(server: &TestServer, body: Value) -> Value {
    let response = server.admin(Method::POST, "/admin/accounts").json(&body).send().await.unwrap();
    let (status, account) = json(response).await;
    assert_eq!(status, 201, "{account}");
    account
}

async fn sign_in_account(server: &TestServer, email: &str, password: &str) -> Result<Session, u16> {
    let body = json!({"email": email, "password": password});
    let response =
        server.client.post(server.url("/console/session")).json(&body).send().await.unwrap();
    let headers = response.headers().clone();
    let (status, view) = json(response).await;
    if status != 200 {
        return Err(status);
    }
    let cookie = headers[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
    Ok(Session { cookie, csrf: view["csrf_token"].as_str().unwrap().into(), view })
}

#[tokio::test]
async fn operator_accounts_act_by_their_role_in_each_space() {
    let server = two_spaces().await;
    let ada = create_account(
        &server,
        json!({"email": "Ada@Example.com", "password": "a long passphrase",
               "roles": {"default": "developer", "other": "viewer"}}),
    )
    .await;
    assert_eq!(ada["email"], "ada@example.com");
    assert!(!ada.to_string().contains("passphrase") && ada.get("password_hash").is_none());
    let listed = json(server.admin(Method::GET, "/admin/accounts").send().await.unwrap()).await.1;
    assert_eq!(listed["accounts"][0]["id"], ada["id"]);

    assert_eq!(
        sign_in_account(&server, "ada@example.com", "not the passphrase").await.err(),
        Some(401)
    );
    assert_eq!(
        sign_in_account(&server, "nobody@example.com", "a long passphrase").await.err(),
        Some(401)
    );
    let session = sign_in_account(&server, "ada@example.com", "a long passphrase").await.unwrap();
    assert_eq!(session.view["scope"]["kind"], "account");
    assert_eq!(session.view["scope"]["roles"], json!({"default": "developer", "other": "viewer"}));

    // Developer in `default`: configuration yes, keys no; viewer in `other`: reads and Try it.
    let config = json!({"values": {"region": "set-by-ada"}});
    let change = |space: &str, path: &str| format!("/admin/spaces/{space}/{path}");
    let patch =
        session.change(&server, Method::PATCH, &change("default", "functions/behave/config"));
    assert_eq!(patch.json(&config).send().await.unwrap().status(), 200);
    let keys = session
        .change(&server, Method::POST, &change("default", "keys"))
        .json(&json!({"name": "k"}));
    let (status, body) = json(keys.send().await.unwrap()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("no_access")));
    let patch = session.change(&server, Method::PATCH, &change("other", "functions/behave/config"));
    assert_eq!(patch.json(&config).send().await.unwrap().status(), 403);
    let read =
        session.request(&server, Method::GET, &change("other", "functions")).send().await.unwrap();
    assert_eq!(read.status(), 200);
    let tried = session
        .change(&server, Method::POST, &change("other", "functions/behave/try"))
        .json(&json!({}));
    assert_eq!(tried.send().await.unwrap().status(), 200);
    for path in ["/admin/functions", "/admin/accounts", "/admin/node", "/metrics"] {
        let response = session.request(&server, Method::GET, path).send().await.unwrap();
        assert_eq!(response.status(), 403, "{path}");
    }

    // New roles apply to the session at once: owner of `default` (keys), nothing in `other`.
    let id = ada["id"].as_str().unwrap();
    let roles = json!({"roles": {"default": "owner"}});
    let changed = server.admin(Method::PATCH, &format!("/admin/accounts/{id}")).json(&roles);
    let (status, changed) = json(changed.send().await.unwrap()).await;
    assert_eq!((status, &changed["roles"]), (200, &json!({"default": "owner"})));
    let keys = session
        .change(&server, Method::POST, &change("default", "keys"))
        .json(&json!({"name": "k"}));
    assert_eq!(keys.send().await.unwrap().status(), 201);
    let read =
        session.request(&server, Method::GET, &change("other", "functions")).send().await.unwrap();
    assert_eq!(read.status(), 403);

    // Deleting the account ends its session.
    let deleted =
        server.admin(Method::DELETE, &format!("/admin/accounts/{id}")).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let after = session
        .request(&server, Method::GET, &change("default", "functions"))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
}

#[tokio::test]
async fn an_invitation_registers_an_account_and_sign_ins_are_published_as_events() {
    let server = two_spaces().await;
    let (hook, received) = support::webhook_receiver().await;
    let subscription =
        json!({"name": "logins", "events": ["AUTH_LOGIN", "AUTH_REGISTER"], "webhook_url": hook});
    let response = server.admin(Method::POST, "/admin/spaces/default/events").json(&subscription);
    let (status, body) = json(response.send().await.unwrap()).await;
    assert_eq!(status, 201, "{body}");

    let invite = json!({"email": "bob@example.com", "roles": {"default": "viewer"}});
    let response =
        server.admin(Method::POST, "/admin/invitations").json(&invite).send().await.unwrap();
    let (status, invitation) = json(response).await;
    assert_eq!(status, 201, "{invitation}");
    let code = invitation["invitation"].as_str().unwrap();

    let register =
        |body: Value| server.client.post(server.url("/console/register")).json(&body).send();
    let weak =
        register(json!({"invitation": code, "password": "short", "lang": "nl"})).await.unwrap();
    assert_eq!(json(weak).await.0, 400, "a weak password is refused and the code stays usable");
    let response =
        register(json!({"invitation": code, "password": "bob's long password", "lang": "nl"}));
    let response = response.await.unwrap();
    assert!(response.headers()[SET_COOKIE].to_str().unwrap().contains("HttpOnly"));
    let (status, view) = json(response).await;
    assert_eq!((status, view["scope"]["email"].as_str()), (201, Some("bob@example.com")));
    let again =
        register(json!({"invitation": code, "password": "bob's long password"})).await.unwrap();
    let (status, body) = json(again).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_invitation")));
    sign_in_account(&server, "bob@example.com", "bob's long password").await.unwrap();

    // AUTH_REGISTER once, AUTH_LOGIN at registration and at the sign-in, with the platform's data.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let events = loop {
        let events: Vec<Value> =
            received.lock().unwrap().iter().map(|(_, body)| body.clone()).collect();
        if events.len() >= 3 || std::time::Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let named =
        |name: &str| events.iter().filter(|e| e["event"] == name).cloned().collect::<Vec<_>>();
    let registered = named("AUTH_REGISTER");
    assert_eq!(registered.len(), 1, "{events:?}");
    assert_eq!(registered[0]["event_id"], 2001);
    let data = &registered[0]["data"];
    assert_eq!(
        (data["email"].as_str(), data["lang"].as_str()),
        (Some("bob@example.com"), Some("nl"))
    );
    assert_eq!(data["user_id"], view["scope"]["id"]);
    let logins = named("AUTH_LOGIN");
    assert_eq!(logins.len(), 2, "{events:?}");
    assert_eq!(logins[0]["event_id"], 2000);
    assert_eq!(logins[0]["data"]["email"], "bob@example.com");
    assert!(logins[0]["_secret"].as_str().is_some_and(|s| s.starts_with("whs_")), "{events:?}");
}

#[tokio::test]
async fn the_admin_token_never_reaches_the_server_log() {
    // The real binary, logging everything it logs at debug level to a file.
    let data = tempfile::tempdir().unwrap();
    let log_path = data.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wasmfn"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-token", ADMIN_TOKEN])
        .arg("--data-dir")
        .arg(data.path().join("data"))
        .env("WASMFN_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    let base = first.trim().strip_prefix("wasmfn: listening on ").unwrap().to_string();
    let rest = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });

    let client = reqwest::Client::new();
    let sign_in = |token: String| {
        client.post(format!("{base}/console/session")).json(&json!({"token": token})).send()
    };
    // A near miss, then the token itself; then a session at work.
    assert_eq!(sign_in(format!("{ADMIN_TOKEN}x")).await.unwrap().status(), 401);
    let response = sign_in(ADMIN_TOKEN.to_string()).await.unwrap();
    assert_eq!(response.status(), 200);
    let cookie =
        response.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
    let listed =
        client.get(format!("{base}/admin/functions")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(listed.status(), 200);
    let bearer =
        client.get(format!("{base}/admin/logs")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(bearer.status(), 200);

    let _ = child.kill();
    let _ = child.wait();
    let banner = rest.join().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("console sign-in failed"), "the log is written: {log}");
    assert!(!log.contains(ADMIN_TOKEN), "the token is in the log:\n{log}");
    assert!(!banner.contains(ADMIN_TOKEN) && !first.contains(ADMIN_TOKEN), "{banner}");
    assert!(banner.contains("/console"), "the banner links the console: {banner}");
}

#[tokio::test]
async fn an_mqtt_trigger_is_replaced_in_place_keeping_its_password() {
    let server = two_spaces().await;
    let mut broker = support::broker::Broker::start(Some(("plant", "s3cret-pass")));
    let path = "/admin/spaces/default/triggers";
    let created = json!({"type": "mqtt", "name": "plant", "broker": broker.url(), "username": "plant",
                         "password": "s3cret-pass", "topics": ["plant/a"], "functions": [{"function": "behave"}]});
    let (status, body) =
        json(server.admin(Method::POST, path).json(&created).send().await.unwrap()).await;
    assert_eq!(status, 201, "{body}");
    let state = |server: &TestServer| {
        let get = server.admin(Method::GET, "/admin/spaces/default/triggers/plant").send();
        async move { json(get.await.unwrap()).await.1 }
    };
    let running = |view: &Value| view["status"]["state"] == "Running";
    let wait_running = || async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let view = state(&server).await;
            if running(&view) || std::time::Instant::now() > deadline {
                return view;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    assert!(running(&wait_running().await));

    // New topics, no password given: the saved one is kept, so the login still works.
    let changed = json!({"broker": broker.url(), "username": "plant", "topics": ["plant/b", "plant/c"],
                         "functions": [{"function": "behave"}]});
    let put = server.admin(Method::PUT, "/admin/spaces/default/triggers/plant").json(&changed);
    let (status, view) = json(put.send().await.unwrap()).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["config"]["topics"], json!(["plant/b", "plant/c"]));
    let view = wait_running().await;
    assert!(running(&view), "logged in with the kept password: {view}");
    assert!(!view.to_string().contains("s3cret-pass"), "never shown back");

    // Refused, and the trigger is left as it was: a rename, a bad config, a declared trigger.
    let renamed = json!({"name": "other", "broker": broker.url(), "topics": ["x"], "functions": [{"function": "behave"}]});
    let put = server.admin(Method::PUT, "/admin/spaces/default/triggers/plant").json(&renamed);
    assert_eq!(json(put.send().await.unwrap()).await.0, 400);
    let invalid =
        json!({"broker": "ftp://nope", "topics": ["x"], "functions": [{"function": "behave"}]});
    let put = server.admin(Method::PUT, "/admin/spaces/default/triggers/plant").json(&invalid);
    assert_eq!(json(put.send().await.unwrap()).await.0, 400);
    assert_eq!(state(&server).await["config"]["topics"], json!(["plant/b", "plant/c"]));
    let put = server.admin(Method::PUT, "/admin/spaces/default/triggers/new-year").json(&changed);
    let (status, body) = json(put.send().await.unwrap()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("declared_in_function_toml")));
    let put = server.admin(Method::PUT, "/admin/spaces/default/triggers/nope").json(&changed);
    assert_eq!(json(put.send().await.unwrap()).await.0, 404);
    broker.stop();
}

#[tokio::test]
async fn function_answers_cannot_use_or_set_the_console_session() {
    let server = two_spaces().await;
    let admin = sign_in(&server, ADMIN_TOKEN).await.unwrap();
    // A function's answer is a page of an opaque origin of its own, not the server's (where the
    // console is): its scripts cannot send or read the console's session.
    let url = server.url("/spaces/default/functions/behave:behave.greet/invoke?name=Ada");
    let answer = server.client.get(url).header(COOKIE, &admin.cookie).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let csp = answer.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("sandbox ") && !csp.contains("allow-same-origin"), "{csp}");
    // The session still works (the call neither used nor ended it).
    let listed = admin.request(&server, Method::GET, "/admin/functions").send().await.unwrap();
    assert_eq!(listed.status(), 200);
}

#[test]
fn wasmfn_accounts_manages_accounts_from_the_command_line() {
    let data = tempfile::tempdir().unwrap();
    let (_server, base) = support::spawn_serve(data.path(), &[]);
    let cli = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write;
        let mut command = support::wasmfn();
        command.arg("accounts").args(args).args(["--server", &base, "--token", ADMIN_TOKEN]);
        command.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
        command.stderr(std::process::Stdio::piped());
        let mut child = command.spawn().unwrap();
        if let Some(text) = stdin {
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        let output = child.wait_with_output().unwrap();
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        (output.status.success(), text(&output.stdout), text(&output.stderr))
    };
    let (ok, code, err) = cli(&["invite", "eve@example.com", "--role", "default:viewer"], None);
    assert!(ok && code.trim().starts_with("wfi_"), "{code} {err}");
    assert!(err.contains("not shown again"), "{err}");
    let create =
        ["create", "ada@example.com", "--role", "default:developer", "--role", "other:owner"];
    let (ok, out, err) = cli(&create, Some("a long passphrase\n"));
    assert!(ok && out.contains("default:developer, other:owner"), "{out} {err}");
    let (ok, out, _) = cli(&["list"], None);
    assert!(ok && out.contains("ada@example.com") && !out.contains("passphrase"), "{out}");
    let (ok, out, err) = cli(&["roles", "ada@example.com", "--role", "default:viewer"], None);
    assert!(ok && out.contains("ada@example.com: default:viewer"), "{out} {err}");
    let (ok, _, err) = cli(&["invite", "x@example.com", "--role", "default:boss"], None);
    assert!(!ok && err.contains("viewer, developer or owner"), "{err}");
    let (ok, _, err) =
        cli(&["create", "short@example.com", "--role", "default:viewer"], Some("short\n"));
    assert!(!ok && err.contains("password"), "{err}");
    let (ok, out, _) = cli(&["delete", "ada@example.com"], None);
    assert!(ok && out.contains("deleted"), "{out}");
    let (ok, out, _) = cli(&["list"], None);
    assert!(ok && out.contains("no accounts"), "{out}");
}
