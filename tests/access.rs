//! Who may call what: API keys per space (created, shared and revoked through the admin API),
//! the caller identity a key carries, the admin token, and the IXON ingress signature.

mod support;

use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::{Signer, SigningKey};
use reqwest::Method;
use serde_json::{json, Value};
use wasmfn_runtime::access::signature::IngressVerifier;
use wasmfn_runtime::access::AccessPolicy;

use support::{json, node_options, start_server_with, TestServer};

async fn keyed_server() -> TestServer {
    let options = support::NodeOptions { default_access: AccessPolicy::Key, ..node_options() };
    start_server_with(&["behave"], None, options).await
}

async fn create_key(server: &TestServer, space: &str, body: Value) -> (String, String) {
    let path = format!("/admin/spaces/{space}/keys");
    let (status, created) =
        json(server.admin(Method::POST, &path).json(&body).send().await.unwrap()).await;
    assert_eq!(status, 201, "{created}");
    (created["id"].as_str().unwrap().into(), created["key"].as_str().unwrap().into())
}

async fn call(server: &TestServer, auth: Option<(&str, &str)>) -> (u16, Value) {
    let mut request = server.client.post(server.invoke_url("behave:behave.echo", ""));
    if let Some((header, value)) = auth {
        request = request.header(header, value);
    }
    json(request.send().await.unwrap()).await
}

#[tokio::test]
async fn keys_open_their_space_carry_the_caller_and_can_be_shared_and_revoked() {
    let server = keyed_server().await;

    let response = server.client.post(server.invoke_url("behave", "")).send().await.unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let (status, body) = json(response).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));
    let (status, body) = call(&server, Some(("authorization", "Bearer wfk_0000_nope"))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")));

    let (id, key) = create_key(
        &server,
        "default",
        json!({"name": "dashboard", "caller": {"company": {"public_id": "co1", "name": "Acme"}}}),
    )
    .await;
    let bearer = format!("Bearer {key}");
    let (status, body) = call(&server, Some(("authorization", &bearer))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["company"]["public_id"], "co1", "the key's identity reaches the function");
    assert_eq!(body["user"], Value::Null);
    let (status, _) = call(&server, Some(("x-api-key", &key))).await;
    assert_eq!(status, 200);

    // Listing never shows the key or its hash.
    let (_, listed) =
        json(server.admin(Method::GET, "/admin/spaces/default/keys").send().await.unwrap()).await;
    let text = listed.to_string();
    assert!(text.contains("dashboard") && !text.contains(&key) && !text.contains("hash"), "{text}");

    // A key of another space is refused until shared.
    let (other_id, other_key) = create_key(&server, "other", json!({"name": "partner"})).await;
    let other_bearer = format!("Bearer {other_key}");
    let (status, body) = call(&server, Some(("authorization", &other_bearer))).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("not valid for space 'default'"));
    let share = format!("/admin/spaces/other/keys/{other_id}/shares/default");
    assert_eq!(server.admin(Method::PUT, &share).send().await.unwrap().status(), 200);
    assert_eq!(call(&server, Some(("authorization", &other_bearer))).await.0, 200);
    assert_eq!(server.admin(Method::DELETE, &share).send().await.unwrap().status(), 200);
    assert_eq!(call(&server, Some(("authorization", &other_bearer))).await.0, 403);

    let revoke = format!("/admin/spaces/default/keys/{id}");
    assert_eq!(server.admin(Method::DELETE, &revoke).send().await.unwrap().status(), 204);
    assert_eq!(call(&server, Some(("authorization", &bearer))).await.0, 403);
    assert_eq!(server.admin(Method::DELETE, &revoke).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn the_admin_api_wants_its_token() {
    let server = keyed_server().await;
    let anonymous = server.client.get(server.url("/admin/functions")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = server.client.get(server.url("/admin/functions")).bearer_auth("guess").send();
    let (status, body) = json(wrong.await.unwrap()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")));
    // An API key is not an admin token.
    let (_, key) = create_key(&server, "default", json!({"name": "k"})).await;
    let with_key = server.client.get(server.url("/admin/functions")).bearer_auth(&key).send();
    assert_eq!(with_key.await.unwrap().status(), 403);
}

#[tokio::test]
async fn signed_ingress_calls_pass_and_unsigned_stale_or_tampered_ones_do_not() {
    let signing = SigningKey::from_bytes(&[42; 32]);
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("ixon.pem");
    let public = signing.verifying_key().to_public_key_pem(Default::default()).unwrap();
    std::fs::write(&pem, public).unwrap();
    let options = support::NodeOptions {
        default_access: AccessPolicy::Key,
        ingress: IngressVerifier::from_pem_files(&[&pem]).unwrap(),
        ..node_options()
    };
    let server = start_server_with(&["behave"], None, options).await;
    let url = server.url("/spaces/default/functions/behave/ingress");
    let body = |created_on: String| {
        json!({
            "name": "behave.echo",
            "created_on": created_on,
            "context": {"company": {"publicId": "c9", "name": "Signed Co"}},
        })
        .to_string()
    };
    let send = |body: String, signature: Option<String>| {
        let mut request = server.client.post(&url).header("content-type", "application/json");
        if let Some(signature) = signature {
            request = request.header("authorization", format!("signature {signature}"));
        }
        let request = request.body(body);
        async move { json(request.send().await.unwrap()).await }
    };
    let sign = |body: &str| hex::encode(signing.sign(body.as_bytes()).to_bytes());

    let fresh = body(chrono::Utc::now().to_rfc3339());
    let (status, answer) = send(fresh.clone(), Some(sign(&fresh))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["company"]["public_id"], "c9", "a signed context is trusted");

    let (status, answer) = send(fresh.clone(), None).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (401, Some("unauthorized")));
    let tampered = fresh.replace("c9", "c0");
    assert_eq!(send(tampered, Some(sign(&fresh))).await.0, 401);
    let stale = body((chrono::Utc::now() - chrono::Duration::seconds(120)).to_rfc3339());
    let (status, answer) = send(stale.clone(), Some(sign(&stale))).await;
    assert_eq!(status, 401);
    assert!(answer["error"]["message"].as_str().unwrap().contains("60 s"), "{answer}");
}

/// A PEM file of `signing`'s public key in `dir`.
fn public_pem(dir: &std::path::Path, name: &str, signing: &SigningKey) -> std::path::PathBuf {
    let path = dir.join(name);
    let public = signing.verifying_key().to_public_key_pem(Default::default()).unwrap();
    std::fs::write(&path, public).unwrap();
    path
}

/// A fresh ixoncdkingress call to `behave.echo` and its signature by `signing`.
fn signed_call(signing: &SigningKey, nonce: &str) -> (String, String) {
    let body = json!({
        "name": "behave.echo",
        "arguments": {"nonce": nonce},
        "created_on": chrono::Utc::now().to_rfc3339(),
    })
    .to_string();
    let signature = hex::encode(signing.sign(body.as_bytes()).to_bytes());
    (body, signature)
}

async fn send_signed(
    client: &reqwest::Client,
    url: &str,
    (body, signature): &(String, String),
) -> (u16, Value) {
    let request = client
        .post(url)
        .header("content-type", "application/json")
        .header("authorization", format!("signature {signature}"))
        .body(body.clone());
    json(request.send().await.unwrap()).await
}

#[tokio::test]
async fn a_signed_ingress_call_is_accepted_once_and_only_where_its_key_is_scoped() {
    let dir = tempfile::tempdir().unwrap();
    let for_space = SigningKey::from_bytes(&[43; 32]);
    let for_function = SigningKey::from_bytes(&[44; 32]);
    let specs = vec![
        format!("default={}", public_pem(dir.path(), "space.pem", &for_space).display()),
        format!("other/nothing={}", public_pem(dir.path(), "fn.pem", &for_function).display()),
    ];
    let options = support::NodeOptions {
        ingress: IngressVerifier::from_specs(&specs).unwrap(),
        ..node_options()
    };
    let behave = support::fixture_bundle("behave");
    let bundles = vec![("default".to_string(), behave.clone()), ("other".to_string(), behave)];
    let server =
        support::start_bundles(bundles, None, options, support::capability_options()).await;
    let default = server.url("/spaces/default/functions/behave/ingress");
    let other = server.url("/spaces/other/functions/behave/ingress");

    // Bytes signed with the key of space `default` are refused for space `other`...
    let call = signed_call(&for_space, "one");
    let (status, answer) = send_signed(&server.client, &other, &call).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (401, Some("unauthorized")));
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("not valid for function 'behave' of space 'other'"), "{message}");
    // ...accepted once in `default`, and refused when replayed there.
    let (status, answer) = send_signed(&server.client, &default, &call).await;
    assert_eq!((status, answer["args"]["nonce"].as_str()), (200, Some("one")), "{answer}");
    let (status, answer) = send_signed(&server.client, &default, &call).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (401, Some("unauthorized")));
    assert!(answer["error"]["message"].as_str().unwrap().contains("already used"), "{answer}");
    // A key scoped to one function signs for no other, even in its space.
    let call = signed_call(&for_function, "two");
    let (status, answer) = send_signed(&server.client, &other, &call).await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("not valid"), "{answer}");
}

#[tokio::test]
async fn a_restart_does_not_let_a_used_signature_in_again() {
    support::fixture_bundle("behave");
    let bundle = support::work_dir().join("bundles").join("behave-1.0.0.wasm");
    let data_dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let signing = SigningKey::from_bytes(&[45; 32]);
    let pem = public_pem(keys.path(), "ixon.pem", &signing);
    let args = [bundle.to_str().unwrap(), "--ingress-public-key", pem.to_str().unwrap()];
    let client = reqwest::Client::new();
    let call = signed_call(&signing, "once");

    let (mut first, base) = support::spawn_serve(data_dir.path(), &args);
    let url = format!("{base}/spaces/default/functions/behave/ingress");
    let (status, answer) = send_signed(&client, &url, &call).await;
    assert_eq!(status, 200, "{answer}");
    // An orderly stop (SIGTERM), as a deploy or a service manager restarts it.
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    assert!(first.wait().unwrap().success());

    let (_second, base) = support::spawn_serve(data_dir.path(), &args);
    let url = format!("{base}/spaces/default/functions/behave/ingress");
    let (status, answer) = send_signed(&client, &url, &call).await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("already used"), "{answer}");
    let (status, answer) = send_signed(&client, &url, &signed_call(&signing, "next")).await;
    assert_eq!(status, 200, "a new signature still passes: {answer}");
}
