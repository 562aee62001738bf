//! Functions calling outside services (issue 22): `requests`, `urllib.request` and
//! `http.client` unchanged, through the host's `wasi:http` and the function's
//! `[network] allow`, against local HTTP and HTTPS servers the tests start (a test CA signs the
//! HTTPS one). Denied hosts, redirects to them, timeouts and
//! oversized responses end in the Python exceptions code expects, never in a trap; every call
//! is in the invocation log.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::IntoResponse;
use axum::routing::{get, post};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use wasmfn_runtime::node::CapabilityOptions;
use wasmfn_runtime::outbound::OutboundLimits;

use support::{capability_options, fixture_bundle, node_options, start_bundles, TestServer};

const RESPONSE_LIMIT: u64 = 1 << 20;

fn tls_file(name: &str) -> std::path::PathBuf {
    support::repo_root().join("tests").join("tls").join(name)
}

/// The service functions call: JSON, an echo, redirects (one to a host the function may not
/// reach), a server that never answers and one that answers too much.
fn service(port: Arc<std::sync::OnceLock<u16>>) -> axum::Router {
    let away = port.clone();
    axum::Router::new()
        .route(
            "/json",
            get(|| async {
                ([("set-cookie", "session=abc; Path=/")], axum::Json(json!({"hello": "world"})))
            }),
        )
        .route(
            "/echo",
            post(|headers: axum::http::HeaderMap, body: String| async move {
                let content_type =
                    headers.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
                let got: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
                axum::Json(json!({"got": got, "content_type": content_type}))
            }),
        )
        .route("/redirect", get(|| async { axum::response::Redirect::to("/json") }))
        .route(
            "/redirect-away",
            get(move || async move {
                let port = away.get().copied().unwrap_or(0);
                axum::response::Redirect::to(&format!("http://localhost:{port}/json"))
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route(
            "/huge",
            get(|| async {
                let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
                let chunks = (0..64).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
                axum::body::Body::from_stream(tokio_stream::iter(chunks)).into_response()
            }),
        )
}

/// The service over plain HTTP on 127.0.0.1; its port.
async fn http_service() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cell = Arc::new(std::sync::OnceLock::new());
    cell.set(port).unwrap();
    let router = service(cell);
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}

/// A TLS acceptor with the test CA's certificate for 127.0.0.1 and localhost.
fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(tls_file("server.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(tls_file("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// The service over HTTPS with the test CA's certificate.
async fn https_service() -> u16 {
    let acceptor = tls_acceptor();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cell = Arc::new(std::sync::OnceLock::new());
    cell.set(port).unwrap();
    let router = service(cell);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    port
}

/// A node serving the `outbound` fixture; with the test CA trusted when `trust_ca`.
async fn node(trust_ca: bool) -> TestServer {
    let bytes = tokio::task::spawn_blocking(|| fixture_bundle("outbound")).await.unwrap();
    let capabilities = CapabilityOptions {
        outbound_ca_file: trust_ca.then(|| tls_file("ca.pem")),
        outbound_limits: OutboundLimits {
            max_response_bytes: RESPONSE_LIMIT,
            ..Default::default()
        },
        ..capability_options()
    };
    start_bundles(vec![("default".into(), bytes)], None, node_options(), capabilities).await
}

/// Calls an entry of the fixture with JSON arguments; status and JSON answer.
async fn call(server: &TestServer, entry: &str, args: Value) -> (u16, Value) {
    let response = server
        .client
        .post(server.invoke_url(&format!("outbound:outbound.{entry}"), ""))
        .json(&args)
        .send()
        .await
        .unwrap();
    support::json(response).await
}

#[tokio::test]
async fn requests_gets_posts_follows_redirects_and_keeps_cookies() {
    let port = http_service().await;
    let server = node(false).await;
    let base = format!("http://127.0.0.1:{port}");

    let (status, got) = call(&server, "fetch", json!({"url": format!("{base}/json")})).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["status"], 200, "{got}");
    assert_eq!(got["body"], json!({"hello": "world"}));
    assert_eq!(got["content_type"], "application/json");
    assert_eq!(got["cookies"], json!({"session": "abc"}));

    let payload = json!({"n": 1, "text": "é"});
    let args = json!({"url": format!("{base}/echo"), "method": "POST", "json": payload});
    let (_, got) = call(&server, "fetch", args).await;
    assert_eq!(got["body"]["got"], payload, "{got}");
    assert_eq!(got["body"]["content_type"], "application/json");

    let (_, got) = call(&server, "fetch", json!({"url": format!("{base}/redirect")})).await;
    assert_eq!(got["status"], 200, "{got}");
    assert_eq!(got["url"], format!("{base}/json"));
    assert_eq!(got["redirects"], json!([303]));

    let args = json!({"url": format!("{base}/json"), "stream": true});
    let (_, got) = call(&server, "fetch", args).await;
    assert_eq!(got["streamed"], 17, "{got}");
}

/// A server that answers every request and closes the connection at once, as HTTP/1.0 servers
/// and `Connection: close` services do.
async fn closing_service() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut seen = Vec::new();
                let mut buffer = [0u8; 1024];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buffer[..n]),
                    }
                }
                let body = br#"{"closed": true}"#;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\
                     Content-Length: {}\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&[head.as_bytes(), body].concat()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    port
}

#[tokio::test]
async fn a_server_that_answers_and_closes_is_read_every_time() {
    // The response and the end of the connection arrive together: the host once took the end
    // for a hang-up, now and then (a race), and the call failed with HttpProtocolError.
    let port = closing_service().await;
    let server = node(false).await;
    let url = format!("http://127.0.0.1:{port}/json");
    for lib in ["requests", "urllib", "http.client"] {
        for round in 0..10 {
            let (status, got) = call(&server, "fetch", json!({"url": url, "lib": lib})).await;
            assert_eq!(status, 200, "{lib}, call {round}: {got}");
            assert_eq!(got["body"], json!({"closed": true}), "{lib}, call {round}: {got}");
        }
    }
}

#[tokio::test]
async fn urllib_and_http_client_work_unchanged() {
    let port = http_service().await;
    let server = node(false).await;
    let base = format!("http://127.0.0.1:{port}");
    for lib in ["urllib", "http.client"] {
        let (_, got) =
            call(&server, "fetch", json!({"url": format!("{base}/json"), "lib": lib})).await;
        assert_eq!(got["status"], 200, "{lib}: {got}");
        assert_eq!(got["body"], json!({"hello": "world"}), "{lib}");
        let args =
            json!({"url": format!("{base}/echo"), "method": "POST", "json": [1, 2], "lib": lib});
        let (_, got) = call(&server, "fetch", args).await;
        assert_eq!(got["body"]["got"], json!([1, 2]), "{lib}: {got}");
    }
    let (_, got) =
        call(&server, "fetch", json!({"url": format!("{base}/redirect"), "lib": "urllib"})).await;
    assert_eq!(got["url"], format!("{base}/json"), "urllib follows the redirect: {got}");
}

#[tokio::test]
async fn https_is_verified_against_the_trusted_roots() {
    let port = https_service().await;
    let trusting = node(true).await;
    let url = format!("https://127.0.0.1:{port}/json");
    for lib in ["requests", "urllib", "http.client"] {
        let (_, got) = call(&trusting, "fetch", json!({"url": url, "lib": lib})).await;
        assert_eq!(got["status"], 200, "{lib}: {got}");
        assert_eq!(got["body"], json!({"hello": "world"}), "{lib}");
    }
    // Without the test CA the server's certificate is not trusted: an SSLError, as CPython.
    let untrusting = node(false).await;
    let (status, got) = call(&untrusting, "fetch", json!({"url": url})).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["error"], "SSLError", "{got}");
    assert!(got["message"].as_str().unwrap().contains("not trusted"), "{got}");
}

#[tokio::test]
async fn hosts_not_allowed_are_refused_by_name_even_after_a_redirect() {
    let port = http_service().await;
    let server = node(false).await;
    // `localhost` is not listed for http: refused, naming the origin and the setting.
    for lib in ["requests", "urllib"] {
        let url = format!("http://localhost:{port}/json");
        let (status, got) = call(&server, "fetch", json!({"url": url, "lib": lib})).await;
        assert_eq!(status, 200, "{got}");
        assert_eq!(got["permission"], true, "{lib}: {got}");
        let message = got["message"].as_str().unwrap();
        assert!(message.contains(&format!("http://localhost:{port}")), "{message}");
        assert!(message.contains("[network] allow"), "{message}");
    }
    let (_, got) =
        call(&server, "fetch", json!({"url": format!("http://localhost:{port}/json")})).await;
    assert_eq!(got["requests_connection_error"], true, "a requests ConnectionError: {got}");

    // An allowed host that redirects to one that is not.
    let url = format!("http://127.0.0.1:{port}/redirect-away");
    let (_, got) = call(&server, "fetch", json!({"url": url})).await;
    assert_eq!(got["permission"], true, "{got}");
    assert!(got["message"].as_str().unwrap().contains("localhost"), "{got}");

    // Sockets of the function's own are not given: an error, not a trap; name lookups fail
    // as unresolved names do; a connection by address goes through the host.
    let (status, got) = call(&server, "raw_socket", json!({"port": port})).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        (got["own"]["os_error"].as_bool(), got["own"]["permission"].as_bool()),
        (Some(true), Some(true)),
        "{got}"
    );
    assert_eq!(got["lookup"]["gaierror"], true, "{got}");
    let reply = got["reply"].as_str().unwrap();
    assert!(
        reply.starts_with("HTTP/1.0 200") && reply.ends_with(r#"{"hello":"world"}"#),
        "{reply}"
    );
}

#[tokio::test]
async fn slow_and_oversized_responses_end_in_python_exceptions() {
    let port = http_service().await;
    let server = node(false).await;
    let base = format!("http://127.0.0.1:{port}");

    let started = Instant::now();
    let args = json!({"url": format!("{base}/slow"), "timeout": 0.5});
    let (status, got) = call(&server, "fetch", args).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["error"], "ReadTimeout", "{got}");
    assert!(started.elapsed() < Duration::from_secs(3), "the timeout was not kept");

    // No timeout of its own: the invocation's deadline (3 s) ends the wait.
    let (status, got) = call(&server, "fetch", json!({"url": format!("{base}/slow")})).await;
    assert!(
        status == 504 || got["timeout"] == true,
        "the deadline must end a call that waits forever: {status} {got}"
    );

    // requests reports a body that breaks off as CPython's does: ChunkedEncodingError.
    let (_, got) = call(&server, "fetch", json!({"url": format!("{base}/huge")})).await;
    assert_eq!(got["error"], "ChunkedEncodingError", "{got}");
    assert!(got["message"].as_str().unwrap().contains("larger than the limit"), "{got}");

    // The node still serves.
    let (_, got) = call(&server, "fetch", json!({"url": format!("{base}/json")})).await;
    assert_eq!(got["status"], 200, "{got}");
}

#[tokio::test]
async fn the_invocation_log_records_each_outbound_call() {
    let port = http_service().await;
    let server = node(false).await;
    let url = format!("http://127.0.0.1:{port}/redirect");
    let (_, got) = call(&server, "fetch", json!({"url": url})).await;
    assert_eq!(got["status"], 200, "{got}");
    let deadline = Instant::now() + Duration::from_secs(1);
    let record = loop {
        let response =
            server.admin(Method::GET, "/admin/logs?function=outbound").send().await.unwrap();
        let (_, body) = support::json(response).await;
        if let Some(record) = body["records"].as_array().and_then(|r| r.first()).cloned() {
            break record;
        }
        assert!(Instant::now() < deadline, "no record within 1 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let calls = record["outbound"].as_array().unwrap_or_else(|| panic!("{record}"));
    let origin = format!("http://127.0.0.1:{port}");
    assert_eq!(calls.len(), 2, "the redirect and its target: {record}");
    assert_eq!(
        (calls[0]["method"].as_str(), calls[0]["status"].as_u64()),
        (Some("GET"), Some(303))
    );
    assert_eq!(calls[1]["status"], 200);
    assert_eq!(calls[1]["bytes"], 17);
    assert!(calls.iter().all(|c| c["origin"] == origin), "{record}");

    // And the metrics count them.
    let text = server.admin(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    let series = |name: &str, labels: &str| {
        let prefix = format!("{name}{{{labels}}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in:\n{text}"))
            .to_string()
    };
    let function = r#"space="default",function="outbound""#;
    let requests = "wasmfn_outbound_requests_total";
    assert_eq!(series(requests, &format!(r#"{function},result="3xx""#)), "1");
    assert_eq!(series(requests, &format!(r#"{function},result="2xx""#)), "1");
    assert_eq!(series("wasmfn_outbound_response_bytes_total", function), "17");
}

#[tokio::test]
async fn calls_stuck_in_outbound_requests_end_at_their_deadline_and_give_their_instances_back() {
    let port = http_service().await;
    let server = node(false).await;
    let url = format!("http://127.0.0.1:{port}/json");
    let (_, got) = call(&server, "fetch", json!({"url": url})).await;
    assert_eq!(got["status"], 200, "{got}");
    // What is free once the pool has settled after a call.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let free_before = server.runtime.invoker().free_instance_slots();

    // Eight calls wait on a server that never answers, with no timeout of their own.
    let slow = format!("http://127.0.0.1:{port}/slow");
    let started = Instant::now();
    let stuck = (0..8).map(|_| call(&server, "fetch", json!({"url": slow})));
    for (status, got) in futures::future::join_all(stuck).await {
        assert!(status == 504 || got["timeout"] == true, "{status} {got}");
    }
    assert!(started.elapsed() < Duration::from_secs(6), "the 3 s deadline was not kept");

    // Meanwhile and afterwards the node serves, and every instance comes back.
    let (_, got) = call(&server, "fetch", json!({"url": url})).await;
    assert_eq!(got["status"], 200, "{got}");
    let deadline = Instant::now() + Duration::from_secs(3);
    while server.runtime.invoker().free_instance_slots() < free_before {
        assert!(Instant::now() < deadline, "instances were not given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_operator_replaces_the_allowlist_and_goes_back_to_function_toml() {
    let port = http_service().await;
    let server = node(false).await;
    let path = "/admin/spaces/default/functions/outbound/network";
    let admin = |method: Method, body: Option<Value>| {
        let request = server.admin(method, path);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        async move { support::json(request.send().await.unwrap()).await }
    };
    let url = format!("http://127.0.0.1:{port}/json");
    let fetch = || call(&server, "fetch", json!({"url": url}));

    let (status, shown) = admin(Method::GET, None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["source"], "function.toml");
    assert_eq!(shown["allow"], json!(["http://127.0.0.1:*", "https://127.0.0.1:*", "127.0.0.1:*"]));

    // Nothing allowed: the next call is refused.
    let (status, shown) = admin(Method::PUT, Some(json!({"allow": []}))).await;
    assert_eq!((status, shown["source"].as_str()), (200, Some("operator")), "{shown}");
    let (_, got) = fetch().await;
    assert_eq!(got["permission"], true, "{got}");

    // An invalid list is refused whole and the one in force stays.
    let (status, refused) = admin(Method::PUT, Some(json!({"allow": ["ftp://x.example"]}))).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["code"], "invalid_network");
    assert!(refused["error"]["message"].as_str().unwrap().contains("ftp"), "{refused}");
    assert_eq!(fetch().await.1["permission"], true);

    // Exactly the service's port.
    let exact = format!("http://127.0.0.1:{port}");
    let (status, _) = admin(Method::PUT, Some(json!({"allow": [exact]}))).await;
    assert_eq!(status, 200);
    assert_eq!(fetch().await.1["status"], 200);

    // Setting the function's configuration leaves the allowlist alone.
    let config = "/admin/spaces/default/functions/outbound/config";
    let response = server.admin(Method::PUT, config).json(&json!({"values": {"a": 1}})).send();
    assert_eq!(response.await.unwrap().status(), 200);
    assert_eq!(admin(Method::GET, None).await.1["allow"], json!([exact]));

    // Cleared: function.toml's list again.
    let (status, shown) = admin(Method::DELETE, None).await;
    assert_eq!((status, shown["source"].as_str()), (200, Some("function.toml")), "{shown}");
    assert_eq!(fetch().await.1["status"], 200);
}

/// The mails an SMTP test server accepted: whether TLS carried it, and its text.
type Mails = Arc<std::sync::Mutex<Vec<(bool, String)>>>;

/// One SMTP conversation over `stream` (enough of RFC 5321 for smtplib: EHLO, STARTTLS when
/// not yet on TLS, AUTH PLAIN, MAIL, RCPT, DATA, QUIT). Answers the stream back when the
/// client asked for STARTTLS.
async fn smtp_session<S>(stream: S, greet: bool, tls: bool, mails: &Mails) -> Option<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut stream = BufReader::new(stream);
    if greet {
        stream.get_mut().write_all(b"220 test.local ESMTP\r\n").await.ok()?;
    }
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let command = line.trim_end().to_ascii_uppercase();
        let answer: &[u8] = if command.starts_with("EHLO") {
            if tls {
                b"250-test.local\r\n250 AUTH PLAIN\r\n"
            } else {
                b"250-test.local\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n"
            }
        } else if command == "STARTTLS" && !tls {
            stream.get_mut().write_all(b"220 go ahead\r\n").await.ok()?;
            return Some(stream.into_inner());
        } else if command.starts_with("AUTH PLAIN ") {
            // base64 of "\0functions\0secret"
            if line.trim_end().ends_with("AGZ1bmN0aW9ucwBzZWNyZXQ=") {
                b"235 accepted\r\n"
            } else {
                b"535 no\r\n"
            }
        } else if command == "DATA" {
            stream.get_mut().write_all(b"354 go on\r\n").await.ok()?;
            let mut text = String::new();
            loop {
                line.clear();
                if stream.read_line(&mut line).await.ok()? == 0 || line == ".\r\n" {
                    break;
                }
                text.push_str(&line);
            }
            mails.lock().unwrap().push((tls, text));
            b"250 queued\r\n"
        } else if command == "QUIT" {
            stream.get_mut().write_all(b"221 bye\r\n").await.ok()?;
            return None;
        } else if command.starts_with("MAIL") || command.starts_with("RCPT") || command == "NOOP" {
            b"250 ok\r\n"
        } else {
            b"502 not here\r\n"
        };
        stream.get_mut().write_all(answer).await.ok()?;
    }
}

/// An SMTP server on 127.0.0.1: implicit TLS (as on port 465) or plain with STARTTLS.
async fn smtp_service(implicit_tls: bool) -> (u16, Mails) {
    let acceptor = tls_acceptor();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mails = Mails::default();
    let kept = mails.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, mails) = (acceptor.clone(), kept.clone());
            tokio::spawn(async move {
                if implicit_tls {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    smtp_session(tls, true, true, &mails).await;
                } else if let Some(plain) = smtp_session(tcp, true, false, &mails).await {
                    let Ok(tls) = acceptor.accept(plain).await else { return };
                    smtp_session(tls, false, true, &mails).await;
                }
            });
        }
    });
    (port, mails)
}

#[tokio::test]
async fn smtplib_sends_mail_over_implicit_tls_and_starttls() {
    let server = node(true).await;
    let (ssl_port, ssl_mails) = smtp_service(true).await;
    let (status, got) = call(&server, "send_mail", json!({"port": ssl_port, "mode": "ssl"})).await;
    assert_eq!((status, &got), (200, &json!({"sent": true})));
    let (over_tls, text) = ssl_mails.lock().unwrap()[0].clone();
    assert!(over_tls);
    assert!(text.contains("Subject: Pump 3") && text.contains("back to normal"), "{text}");

    let (plain_port, plain_mails) = smtp_service(false).await;
    let args = json!({"port": plain_port, "mode": "starttls"});
    let (_, got) = call(&server, "send_mail", args).await;
    assert_eq!(got, json!({"sent": true}));
    let mails = plain_mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].0, "the mail went after STARTTLS, over TLS");

    // A host that is not listed, and a certificate that is not trusted: exceptions.
    let args = json!({"host": "localhost", "port": ssl_port, "mode": "ssl"});
    let (_, got) = call(&server, "send_mail", args).await;
    assert_eq!(got["permission"], true, "{got}");
    assert!(got["message"].as_str().unwrap().contains("[network] allow"), "{got}");
    let untrusting = node(false).await;
    let (_, got) = call(&untrusting, "send_mail", json!({"port": ssl_port, "mode": "ssl"})).await;
    assert_eq!((got["error"].as_str(), got["os_error"].as_bool()), (Some("TLSFailed"), Some(true)));
    assert_eq!(ssl_mails.lock().unwrap().len(), 1, "nothing sent without trust");
}
