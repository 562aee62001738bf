//! The development loop with the real `wasmfn` binary: `new` templates that build and answer,
//! `dev` that swaps in each saved edit and keeps serving through a broken one, and the
//! operator commands `config`, `secrets` and `logs <id>`.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use support::{fixture_bundle, json, spawn_serve, work_dir, ADMIN_TOKEN};

fn wasmfn_new(parent: &Path, name: &str, template: &str) -> std::path::PathBuf {
    let dir = parent.join(name);
    let output = Command::new(env!("CARGO_BIN_EXE_wasmfn"))
        .args(["new", name, "--template", template, "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains(&format!("({template} template)")), "{stdout}");
    dir
}

#[tokio::test]
async fn every_new_template_builds_and_answers() {
    let parent = tempfile::tempdir().unwrap();
    let hello = wasmfn_new(parent.path(), "hello-there", "ixon");
    let todo = wasmfn_new(parent.path(), "todo", "storage");
    let ticker = wasmfn_new(parent.path(), "ticker", "triggers");
    // A second `new` into the same folder never overwrites it.
    let again = Command::new(env!("CARGO_BIN_EXE_wasmfn"))
        .args(["new", "hello-there", "--dir"])
        .arg(&hello)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    let data_dir = tempfile::tempdir().unwrap();
    let paths: Vec<&str> = [&hello, &todo, &ticker].map(|p| p.to_str().unwrap()).to_vec();
    let (_server, base) = spawn_serve(data_dir.path(), &paths);
    let client = reqwest::Client::new();
    let url = |function: &str, rest: &str| {
        format!("{base}/spaces/default/functions/{function}/invoke{rest}")
    };

    let (status, body) =
        json(client.get(url("hello-there", "?name=Ada")).send().await.unwrap()).await;
    assert_eq!((status, body), (200, json!({"message": "Hello, Ada!"})));

    let added = client.post(url("todo", "")).json(&json!({"title": " water the plants "}));
    let (status, body) = json(added.send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["title"], "water the plants");
    let (status, body) =
        json(client.post(url("todo", "")).json(&json!({})).send().await.unwrap()).await;
    assert_eq!(status, 500, "an empty title is the function's ValueError: {body}");
    let (status, body) = json(client.get(url("todo:todo.items", "")).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{body}");
    assert_eq!(
        (&items[0]["title"], &items[0]["done"]),
        (&json!("water the plants"), &json!(false))
    );

    let (status, body) =
        json(client.get(url("ticker:ticker.tick", "")).send().await.unwrap()).await;
    assert_eq!((status, &body["trigger"]), (200, &json!("http")), "{body}");
    let message = client.post(url("ticker", "")).json(&json!({"level": 3}));
    let (status, body) = json(message.send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((&body["fields"], &body["topic"]), (&json!({"level": 3}), &Value::Null));

    // The template's declared triggers started with it.
    let triggers = Command::new(env!("CARGO_BIN_EXE_wasmfn"))
        .args(["triggers", "list", "--json", "--server", &base, "--token", ADMIN_TOKEN])
        .output()
        .unwrap();
    let listed: Value = serde_json::from_slice(&triggers.stdout).unwrap();
    let names: Vec<&str> =
        listed["triggers"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"every-five-minutes") && names.contains(&"events"), "{listed}");
}

/// Lines a child writes to stderr, read on a thread of their own.
struct Lines(mpsc::Receiver<String>, Vec<String>);

impl Lines {
    fn of(stream: impl std::io::Read + Send + 'static) -> Self {
        let (send, receive) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Self(receive, Vec::new())
    }

    /// Every line seen, and those that come within a second, for a failure's message.
    fn drain(&mut self) -> String {
        while let Ok(line) = self.0.recv_timeout(Duration::from_secs(1)) {
            self.1.push(line);
        }
        self.1.join("\n")
    }

    /// Waits for a line containing `needle` (a rebuild takes a componentize-py build and a
    /// Cranelift compile: minutes on a busy 2-core machine).
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.0.recv_timeout(left) {
                Ok(line) => {
                    self.1.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with '{needle}' in:\n{}", self.1.join("\n")),
            }
        }
    }
}

#[tokio::test]
async fn dev_swaps_in_each_edit_and_keeps_serving_through_a_broken_one() {
    let parent = tempfile::tempdir().unwrap();
    let dir = wasmfn_new(parent.path(), "live", "ixon");
    let data_dir = parent.path().join("dev-data");

    // --reset wipes only a directory `wasmfn dev` made.
    let foreign = parent.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("keep.txt"), "precious").unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_wasmfn"))
        .arg("dev")
        .arg(&dir)
        .args(["--reset", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&foreign)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("was not made by `wasmfn dev`"));
    assert!(foreign.join("keep.txt").exists());

    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmfn"))
        .arg("dev")
        .arg(&dir)
        .args(["--listen", "127.0.0.1:0", "--poll-ms", "100", "--data-dir"])
        .arg(&data_dir)
        .env("WASMFN_CACHE_DIR", work_dir().join("compiled"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let child = support::ServeProcess::from({
        let mut stderr = Lines::of(child.stderr.take().unwrap());
        let mut stdout = Lines::of(child.stdout.take().unwrap());
        let first = stdout.wait_for("listening on");
        let base = first.rsplit(' ').next().unwrap().to_string();
        let url = format!("{base}/spaces/default/functions/live/invoke?name=Ada");
        // A new connection per call: a rebuild can outlast the server's idle timeout (60 s),
        // and a kept-alive connection it is closing would fail the next call.
        let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        let call = || async {
            match client.get(&url).send().await {
                Ok(response) => Ok(json(response).await),
                Err(error) => Err(error.to_string()),
            }
        };
        let first = call().await.unwrap_or_else(|e| panic!("{e}: {}", stderr.drain()));
        assert_eq!(first, (200, json!({"message": "Hello, Ada!"})), "public in dev");
        // The call and what the function printed are shown on the terminal.
        stderr.wait_for("live 0.1.0 live.hello via http");
        stderr.wait_for("| greeting Ada");

        let source = dir.join("functions/live.py");
        let text = std::fs::read_to_string(&source).unwrap();
        std::fs::write(&source, text.replace("{name}!\"", "{name}, welcome!\"")).unwrap();
        // A `.py` edit is not built: the last bundle takes the new sources.
        let live = stderr.wait_for("live 0.1.0 is live");
        assert!(live.contains("sources reloaded"), "{live}");
        let edited = call().await.unwrap_or_else(|e| panic!("{e}: {}", stderr.drain()));
        assert_eq!(edited, (200, json!({"message": "Hello, Ada, welcome!"})));
        let edited_text = std::fs::read_to_string(&source).unwrap();

        let mut file = std::fs::OpenOptions::new().append(true).open(&source).unwrap();
        writeln!(file, "def broken(:\n").unwrap();
        drop(file);
        stderr.wait_for("this edit does not load");
        let kept = call().await.unwrap_or_else(|e| panic!("{e}: {}", stderr.drain()));
        assert_eq!(
            kept,
            (200, json!({"message": "Hello, Ada, welcome!"})),
            "the previous version keeps answering"
        );

        // Valid syntax that fails when imported: refused with the guest's traceback.
        std::fs::write(&source, format!("{edited_text}\nBROKEN = undefined_name\n")).unwrap();
        let refused = stderr.wait_for("importing the edited sources raised NameError");
        assert!(refused.contains("undefined_name"), "{refused}");
        let kept = call().await.unwrap_or_else(|e| panic!("{e}: {}", stderr.drain()));
        assert_eq!(kept.1, json!({"message": "Hello, Ada, welcome!"}), "still the old one");

        // A new module and a new entry that imports it, without a build.
        std::fs::write(dir.join("functions/helper.py"), "ANSWER = {\"helper\": 42}\n").unwrap();
        let added = "\n\n@FunctionContext.expose\ndef added(context: FunctionContext):\n    \
                     from functions import helper\n    return helper.ANSWER\n";
        std::fs::write(&source, format!("{edited_text}{added}")).unwrap();
        let live = stderr.wait_for("live 0.1.0 is live");
        assert!(live.contains("sources reloaded"), "{live}");
        let entry = format!("{base}/spaces/default/functions/live:live.added/invoke");
        let response = client.get(&entry).send().await.unwrap();
        assert_eq!(json(response).await, (200, json!({"helper": 42})));

        // function.toml changed: the folder is built again, and the new value is served.
        let toml = dir.join("function.toml");
        let manifest = std::fs::read_to_string(&toml).unwrap();
        std::fs::write(&toml, manifest.replace("greeting = \"Hello\"", "greeting = \"Hi\""))
            .unwrap();
        let live = stderr.wait_for("live 0.1.0 is live");
        assert!(live.contains("rebuilt"), "{live}");
        let rebuilt = call().await.unwrap_or_else(|e| panic!("{e}: {}", stderr.drain()));
        assert_eq!(rebuilt, (200, json!({"message": "Hi, Ada, welcome!"})));
        child
    });
    drop(child);
}

#[tokio::test]
async fn config_secrets_and_one_log_record_from_the_command_line() {
    tokio::task::spawn_blocking(|| fixture_bundle("behave")).await.unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let bundle = work_dir().join("bundles/behave-1.0.0.wasm");
    let (_server, base) =
        spawn_serve(data_dir.path(), &[bundle.to_str().unwrap(), "--default-access", "public"]);
    let try_cli = |args: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wasmfn"))
            .args(args)
            .args(["--server", &base, "--token", ADMIN_TOKEN])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (output.status.success(), text(&output.stdout), text(&output.stderr))
    };
    let cli = |args: &[&str], stdin: &str| {
        let (ok, stdout, stderr) = try_cli(args, stdin);
        assert!(ok, "{args:?}: {stderr}");
        stdout
    };
    let shown = cli(&["config", "set", "behave", "region=us", "limit=5"], "");
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["values"], json!({"region": "us", "limit": 5}));
    let listed = cli(&["secrets", "set", "behave", "token"], "s3cret-value\n");
    assert_eq!(listed.trim(), "token");
    // Setting values again keeps the secret (a PATCH, not a replacement).
    cli(&["config", "unset", "behave", "limit"], "");
    let shown = cli(&["config", "show", "behave"], "");
    assert!(!shown.contains("s3cret-value"), "{shown}");
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["values"], json!({"region": "us"}));
    assert_eq!(shown["secrets"], json!({"token": "[redacted]"}));

    let client = reqwest::Client::new();
    let response = client
        .post(format!("{base}/spaces/default/functions/behave:behave.chatty/invoke"))
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-invocation-id"].to_str().unwrap().to_string();
    let (status, body) = json(response).await;
    assert_eq!(status, 200, "{body}");
    let response = client
        .post(format!("{base}/spaces/default/functions/behave/invoke"))
        .json(&json!({"who": "Ada", "password": "pw-not-for-logs"}))
        .send()
        .await
        .unwrap();
    let echo_id = response.headers()["x-invocation-id"].to_str().unwrap().to_string();
    let (_, echoed) = json(response).await;
    assert_eq!(echoed["config"]["region"], "us", "the value reached the function: {echoed}");

    // The log promises a record within a second of the call's end.
    let record_of = |id: String| async move {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match try_cli(&["logs", &id], "") {
                (true, record, _) => break record,
                (false, _, error) if Instant::now() < deadline && error.contains("404") => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                (_, _, error) => panic!("logs {id}: {error}"),
            }
        }
    };
    let record = record_of(id.clone()).await;
    assert!(record.contains(&format!("invocation  {id}")), "{record}");
    assert!(record.contains("behave 1.0.0") && record.contains("--- stdout ---"), "{record}");
    assert!(
        record.contains("printed to stdout") && record.contains("logged a warning"),
        "{record}"
    );
    // The arguments are in the record, a credential's value is not.
    let echo_record = record_of(echo_id).await;
    assert!(
        echo_record.contains("--- arguments ---") && echo_record.contains("\"Ada\""),
        "{echo_record}"
    );
    assert!(
        echo_record.contains("[redacted]") && !echo_record.contains("pw-not-for-logs"),
        "{echo_record}"
    );
    let table = cli(&["logs", "--since", "10m", "--function", "behave"], "");
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("STARTED") && header.contains("VERSION"), "{table}");
    let row = lines.find(|l| l.contains(&id)).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("1.0.0") && row.contains("behave.chatty"), "{row}");
}

#[test]
fn invoke_keeps_documents_in_the_storage_dev_uses() {
    let parent = tempfile::tempdir().unwrap();
    let dir = wasmfn_new(parent.path(), "jots", "storage");
    let storage = parent.path().join("storage");
    let invoke = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_wasmfn"))
            .arg("invoke")
            .arg(&dir)
            .args(args)
            .arg("--storage-dir")
            .arg(&storage)
            .env("WASMFN_CACHE_DIR", work_dir().join("compiled"))
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (output.status.success(), text(&output.stdout), text(&output.stderr))
    };
    for title in ["first", "second"] {
        let (ok, _, stderr) = invoke(&["--args", &format!("{{\"title\": \"{title}\"}}")]);
        assert!(ok, "{stderr}");
    }
    let (ok, stdout, stderr) = invoke(&["jots.items"]);
    assert!(ok, "{stderr}");
    let items: Value = serde_json::from_str(&stdout).unwrap();
    let titles: Vec<&str> =
        items["items"].as_array().unwrap().iter().filter_map(|i| i["title"].as_str()).collect();
    assert_eq!(titles, ["first", "second"], "the documents outlived each call's process");

    // While something holds the directory (a running `wasmfn dev`), invoke says what to do.
    let held = sled::open(storage.join("state")).unwrap();
    let (ok, _, stderr) = invoke(&["jots.items"]);
    assert!(!ok && stderr.contains("if a `wasmfn dev` runs on it"), "{stderr}");
    drop(held);
}
