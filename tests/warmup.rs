//! function.toml `[[warmup]]`: calls made at build time whose effects every instance starts
//! with, host services refused during them, and a failing warm-up failing the build.

mod support;

use serde_json::json;
use support::{json, start_server, wasmfn};

#[tokio::test]
async fn every_instance_starts_with_what_the_warmup_calls_left() {
    let server = start_server(&["warm"], None).await;
    let mut draws = Vec::new();
    for word in ["valve", "pump"] {
        let url = server.invoke_url("warm", &format!("?word={word}"));
        let (status, body) = json(server.client.get(url).send().await.unwrap()).await;
        assert_eq!(status, 200, "{body}");
        // The build's calls, in order, with the [config] values; nothing from the other
        // request (each call still gets a fresh instance).
        assert_eq!(
            body["calls_before"],
            json!([["pump", "eu"], ["pump", "eu"], ["pump", "eu"], ["store", null]]),
        );
        let mut spelled = vec!["pump".to_string()];
        if word != "pump" {
            spelled.push(word.to_string());
        }
        spelled.sort();
        assert_eq!(body["spelled"], json!(spelled));
        // The document store is not there at build time: a clear error, not a trap.
        let errors = body["store_errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{body}");
        let error = errors[0].as_str().unwrap();
        assert!(
            error.starts_with("NotAtBuildTime: the document store is not available during a build-time warm-up call"),
            "{error}"
        );
        draws.push(body["random"].as_f64().unwrap());
    }
    // The warm-up drew random numbers at build time; each instance still draws its own.
    assert_ne!(draws[0], draws[1], "two instances drew the same random number");
}

#[test]
fn a_warmup_call_that_raises_fails_the_build_with_its_error() {
    let dir = tempfile::Builder::new().prefix("wasmfn-warmup").tempdir().unwrap();
    std::fs::write(
        dir.path().join("function.toml"),
        "name = \"cold\"\ndefault_entry = \"functions.f\"\n[[warmup]]\narguments = { n = 0 }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("functions.py"),
        "from ixoncdkingress.function.context import FunctionContext\n\n\
         @FunctionContext.expose\ndef f(context, n=1, **kwargs):\n    return {'inverse': 1 / n}\n",
    )
    .unwrap();
    let output = wasmfn().arg("build").arg(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "the build should fail: {stderr}");
    assert!(
        stderr.contains("warmup[0] (functions.f) raised ZeroDivisionError: division by zero"),
        "{stderr}"
    );
    assert!(stderr.contains("ignore_errors = true"), "{stderr}");
    assert!(stderr.contains("functions.py"), "the user's frame is named: {stderr}");
    assert!(!dir.path().join("dist").exists(), "no bundle is written");
}
