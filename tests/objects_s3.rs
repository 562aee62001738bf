//! Object storage on S3, not only unit-tested: the real `wasmfn serve` with
//! `--object-store s3://…` against moto's S3-compatible server (scripts/setup-s3.sh installs it)
//! on 127.0.0.1, running the file-store example: objects land in the bucket under the space,
//! presigned links serve them, and they are still there after a restart.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use support::broker::free_port;
use support::{example_bundle, json, spawn_serve_env};

/// moto's server on a free port, stopped when dropped.
struct S3Server {
    child: Child,
    url: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_server() -> PathBuf {
    let home = std::env::var_os("WASMFN_HOME").map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
        cache.join("wasmfn")
    });
    let binary = home.join("moto").join("bin").join("moto_server");
    assert!(binary.exists(), "{} is missing: run `bash scripts/setup-s3.sh`", binary.display());
    binary
}

async fn start_s3() -> S3Server {
    let port = free_port();
    let child = Command::new(moto_server())
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting moto_server");
    let url = format!("http://127.0.0.1:{port}");
    let server = S3Server { child, url };
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("{}/moto-api/", server.url)).await.is_err() {
        assert!(Instant::now() < deadline, "moto_server did not answer within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server
}

/// The keys in the bucket (moto answers unsigned ListObjectsV2 requests).
async fn bucket_keys(s3: &S3Server, bucket: &str) -> Vec<String> {
    let xml = reqwest::get(format!("{}/{bucket}?list-type=2", s3.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    xml.split("<Key>")
        .skip(1)
        .filter_map(|part| part.split("</Key>").next())
        .map(String::from)
        .collect()
}

async fn call(base: &str, entry: &str, arguments: Value) -> (u16, Value) {
    let url = format!("{base}/spaces/default/functions/file-store:files.{entry}/invoke");
    json(reqwest::Client::new().post(url).json(&arguments).send().await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_store_example_keeps_its_objects_in_an_s3_bucket() {
    let s3 = start_s3().await;
    let bucket = "wasmfn-objects";
    let created = reqwest::Client::new().put(format!("{}/{bucket}", s3.url)).send().await.unwrap();
    assert!(created.status().is_success(), "creating the bucket: {}", created.status());
    let bundle = tokio::task::spawn_blocking(|| example_bundle("file-store")).await.unwrap();
    let store =
        format!("s3://{bucket}/node-a?region=us-east-1&endpoint={}&allow_http=true", s3.url);
    let data = tempfile::tempdir().unwrap();
    // moto takes any credentials; object_store reads them from the environment, as in production.
    let env = [("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")];
    let args = [bundle.to_str().unwrap(), "--object-store", &store, "--default-access", "public"];

    let (server, base) = spawn_serve_env(data.path(), &args, &env);
    let content = "x,y\n1,2\n";
    let (status, uploaded) = call(
        &base,
        "upload",
        json!({"name": "data.csv", "content": content, "content_type": "text/csv"}),
    )
    .await;
    assert_eq!(status, 200, "{uploaded}");
    let keys = bucket_keys(&s3, bucket).await;
    assert!(
        keys.iter().any(|k| k.starts_with("node-a/")
            && k.contains("default")
            && k.ends_with("uploads/data.csv")),
        "the object is in the bucket, under the prefix and the space: {keys:?}"
    );
    // The presigned link is served by wasmfn from S3.
    let link = uploaded["download_url"].as_str().unwrap().to_string();
    let response = reqwest::get(&link).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/csv");
    assert_eq!(response.text().await.unwrap(), content);
    drop(server);

    // A new process (another node, say) finds it there.
    let data = tempfile::tempdir().unwrap();
    let (_server, base) = spawn_serve_env(data.path(), &args, &env);
    let (_, listed) = call(&base, "files", json!({})).await;
    assert_eq!(
        listed["files"],
        json!([{"name": "data.csv", "size": 8, "content_type": "text/csv"}])
    );
    let (_, removed) = call(&base, "remove", json!({"name": "data.csv"})).await;
    assert_eq!(removed, json!({"deleted": true}));
    let keys = bucket_keys(&s3, bucket).await;
    assert!(
        !keys.iter().any(|k| k.ends_with("uploads/data.csv")),
        "deleted from the bucket: {keys:?}"
    );

    // The node is ready while S3 answers, and not once S3 is gone (the check is cached 2 s).
    let readyz = || async { json(reqwest::get(format!("{base}/readyz")).await.unwrap()).await };
    let (status, ready) = readyz().await;
    assert_eq!((status, &ready["backends"]["objects"]), (200, &json!("ok")), "{ready}");
    drop(s3);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (status, ready) = loop {
        let (status, ready) = readyz().await;
        if status != 200 || Instant::now() > deadline {
            break (status, ready);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!((status, ready["status"].as_str()), (503, Some("not_ready")), "{ready}");
    assert_ne!(ready["backends"]["objects"], "ok", "{ready}");
    assert_eq!(ready["backends"]["documents"], "ok", "{ready}");
}
