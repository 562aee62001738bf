//! IXON apps run unchanged: an app in IXON's layout (`functions/` package, modules imported by
//! both their names, an import cycle, a bare entry served by `functions/__init__.py`), JSON
//! configuration, imports during a call, the SDK's module paths and its reserved entries, end to
//! end through the ingress endpoint, and the build's errors for what cannot run in a bundle.

mod support;

use std::process::Command;

use serde_json::{json, Value};
use support::{fixture_dir, json, start_server, wasmfn, TestServer};

async fn ingress(server: &TestServer, body: Value) -> (u16, Value) {
    let url = server.url("/spaces/default/functions/ixonapp/ingress");
    json(server.client.post(url).json(&body).send().await.unwrap()).await
}

#[tokio::test]
async fn an_ixon_layout_app_answers_by_every_name_ixoncdkingress_accepts() {
    let server = start_server(&["ixonapp"], None).await;
    // Bare name: functions/__init__.py, which imports `mailer` by its top-level name, which
    // imports `functions.shapes` back: the cycle works from the package, as on IXON.
    for name in ["send_note", "functions.send_note", "mailer.send_note"] {
        let (status, body) =
            ingress(&server, json!({"name": name, "arguments": {"subject": "up"}})).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(body, json!({"to": "toml-user", "subject": "UP!"}), "{name}");
    }
    // `functions.notes` is the file the build imported as `notes`: imported during the call.
    let (status, body) = ingress(&server, json!({"name": "functions.notes.config_view"})).await;
    assert_eq!((status, &body["username"]), (200, &json!("toml-user")), "{body}");
    let (status, body) = ingress(&server, json!({"name": "notes.nope"})).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = ingress(&server, json!({"name": "functions.notes.nope"})).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn configuration_is_json_from_function_toml_and_from_the_call() {
    let server = start_server(&["ixonapp"], None).await;
    let (status, body) = ingress(&server, json!({"name": "notes.config_view"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["config"],
        json!({"greeting": "Hello", "retries": 3,
               "serviceAccount": {"username": "toml-user", "roles": ["reader", "writer"]}})
    );
    // The call's config replaces keys whole, with any JSON value, as ixoncdkingress merges it.
    let call = json!({"name": "notes.config_view",
                      "config": {"serviceAccount": {"username": "svc"}, "custom_fields": [{"ixon": "serial", "zendesk": 1191}], "retries": null}});
    let (status, body) = ingress(&server, call).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["username"], "svc");
    assert_eq!(body["config"]["serviceAccount"], json!({"username": "svc"}));
    assert_eq!(body["config"]["custom_fields"][0]["zendesk"], 1191);
    assert_eq!(body["config"]["retries"], Value::Null);
}

#[tokio::test]
async fn modules_first_imported_during_a_call_are_found_in_the_bundle() {
    let server = start_server(&["ixonapp"], None).await;
    let (status, body) =
        ingress(&server, json!({"name": "notes.lazy", "arguments": {"when": "2025-12-31"}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["was_loaded_at_build"], false, "colorsys must be imported by the call: {body}");
    assert_eq!(body["hls"], json!([0.0, 0.5, 1.0]));
    assert_eq!(body["xml"], "text");
    assert_eq!((&body["extras"], &body["extras_file"]), (&json!("a call"), &json!("extras.py")));
    assert_eq!(body["date"], "31.12.2025");
    // A fresh instance imports them again: the second call works the same.
    let (status, again) =
        ingress(&server, json!({"name": "notes.lazy", "arguments": {"when": "2025-12-31"}})).await;
    assert_eq!((status, again), (200, body));
}

#[tokio::test]
async fn every_sdk_module_path_and_the_sdk_dependencies_import() {
    let server = start_server(&["ixonapp"], None).await;
    let (status, body) = ingress(&server, json!({"name": "notes.sdk_paths"})).await;
    assert_eq!(status, 200, "{body}");
    for (module, found) in body.as_object().unwrap() {
        if module.starts_with("ixoncdkingress") {
            assert_eq!(found, &json!(true), "{module}");
        }
    }
    // Not in the fixture's requirements: they come with the SDK, as on IXON.
    assert_eq!(body["requests"], "2.31.0");
    assert_eq!(body["packaging"], "True");
    // Declared, and built from its source distribution: it publishes no wheel.
    assert_eq!(body["docopt"], "0.6.2");
}

#[tokio::test]
async fn the_sdk_reserved_entries_answer_as_ixoncdkingress() {
    let server = start_server(&["ixonapp"], None).await;
    let (status, body) = ingress(&server, json!({"name": "list-agent-tools"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"], "success");
    assert_eq!(
        body["data"],
        json!([{"name": "notes.add", "description": "Adds a note.", "requires_human_permission": true,
                "inputSchema": {"properties": {"text": {"title": "Text", "type": "string"},
                                               "category": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": null, "title": "Category"}},
                                "required": ["text"], "type": "object"},
                "outputSchema": {"properties": {"output": {"title": "Output", "type": "object"}}, "required": ["output"], "type": "object"},
                "meta": null, "issues": []}])
    );
    let (status, body) =
        ingress(&server, json!({"name": "functions.list-agent-tools-issues"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"][0],
        json!({"type": "import_error", "module_name": "broken_helper",
               "error": "No module named 'wasmfn_fixture_missing_package'"})
    );
    assert_eq!(body["data"][1]["name"], "notes.undocumented");
    let (status, body) = ingress(&server, json!({"name": "app-description"})).await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"result": "success", "data": {"description": "Keeps notes for the tests", "shortName": "ixonapp"}})
        )
    );
}

/// A copy of the fixture folder, so that `invoke` builds it outside the repository.
fn fixture_copy() -> tempfile::TempDir {
    let copy = tempfile::Builder::new().prefix("wasmfn-ixonapp").tempdir().unwrap();
    let status =
        Command::new("cp").arg("-r").arg(fixture_dir("ixonapp")).arg(copy.path()).status().unwrap();
    assert!(status.success());
    copy
}

#[test]
fn a_served_folder_reads_ixon_dev_values_and_the_environment_overrides_nested_values() {
    let copy = fixture_copy();
    let folder = copy.path().join("ixonapp");
    let output = wasmfn()
        .arg("invoke")
        .arg(&folder)
        .arg("notes.config_view")
        .args(["--config", "retries=5"])
        .env("WASMFN_CONFIG__IXONAPP__GREETING", "Hoi")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let body: Value = serde_json::from_slice(&output.stdout).unwrap();
    // context_values.yaml replaces [config] key by key; --config is JSON when it parses as JSON.
    assert_eq!(
        body["config"],
        json!({"greeting": "Hoi", "retries": 5, "timeout_s": 2.5,
               "serviceAccount": {"username": "dev-user", "roles": ["dev"]}})
    );

    std::fs::remove_file(folder.join("context_values.yaml")).unwrap();
    let output = wasmfn()
        .arg("invoke")
        .arg(&folder)
        .arg("notes.config_view")
        .env("WASMFN_CONFIG__IXONAPP__SERVICEACCOUNT__USERNAME", "from-env")
        .env("WASMFN_CONFIG__IXONAPP__RETRIES", "7")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let body: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        body["config"]["serviceAccount"],
        json!({"username": "from-env", "roles": ["reader", "writer"]})
    );
    assert_eq!(body["config"]["retries"], 7, "a number stays a number");

    let output = wasmfn()
        .arg("invoke")
        .arg(&folder)
        .arg("notes.config_view")
        .env("WASMFN_CONFIG__IXONAPP__RETRIES", "many")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("WASMFN_CONFIG__IXONAPP__RETRIES must be JSON"), "{stderr}");
}

#[test]
fn what_cannot_run_in_a_bundle_fails_the_build_naming_it() {
    let dir = tempfile::Builder::new().prefix("wasmfn-native").tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("functions")).unwrap();
    std::fs::write(
        dir.path().join("functions").join("mail.py"),
        "import smtplib\nimport ssl\nfrom ixoncdkingress.function.context import FunctionContext\n\n@FunctionContext.expose\ndef send(context):\n    return ssl.PROTOCOL_TLS_CLIENT\n",
    )
    .unwrap();
    let output = wasmfn().arg("build").arg(dir.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("functions/mail.py:2"), "{stderr}");
    assert!(
        stderr.contains("ssl (TLS: smtplib.SMTP_SSL, HTTPS) needs the native module _ssl"),
        "{stderr}"
    );

    // A requirement whose dependency has native code only is named with that dependency:
    // argon2-cffi needs argon2-cffi-bindings (C, and no WebAssembly build of it).
    std::fs::write(dir.path().join("requirements.txt"), "argon2-cffi==23.1.0\n").unwrap();
    let output = wasmfn().arg("build").arg(dir.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "requirement 'argon2-cffi' needs 'argon2-cffi-bindings', which has no pure-Python wheel"
        ),
        "{stderr}"
    );

    // regex (which dateparser needs) has a WebAssembly build (tests/native_c.rs), made by a
    // script: without it in the wheels directory, the build names the script.
    let no_wheels = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("requirements.txt"), "dateparser==1.5.0\n").unwrap();
    let output = wasmfn()
        .arg("build")
        .arg(dir.path())
        .env("WASMFN_WHEELS", no_wheels.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!(
        "requirement 'dateparser' needs regex>=2024.9.11 built for WebAssembly (WASI), which is not in {}: run scripts/build-wasi-c-wheels.sh once",
        no_wheels.path().display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}
