//! Builds are hermetic: nothing of the host's Python gets into a bundle, the same folder gives
//! the same bundle wherever it is built (byte for byte, with the componentize-py that
//! scripts/setup-componentize-py.sh builds; vendor/README.md), requirements are pinned in
//! requirements.lock, and mistakes that need no Python are reported before componentize-py runs.

mod support;

use std::path::Path;
use std::process::Command;

use wasmfn_runtime::bundle::sha256_hex;

/// Each section of a bundle (core modules' sections come one by one), digested: what a failure
/// shows of two bundles that should be the same.
fn section_digests(bytes: &[u8]) -> Vec<(u8, String)> {
    use wasmparser::{Parser, Payload};
    let mut kept = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.expect("a valid component");
        // Their contents come as payloads of their own.
        let nested =
            matches!(payload, Payload::ModuleSection { .. } | Payload::ComponentSection { .. });
        if let (false, Some((id, range))) = (nested, payload.as_section()) {
            kept.push((id, sha256_hex(&bytes[range])));
        }
    }
    kept
}

/// `wasmfn build DIR -o OUT` with `env`; (success, stderr).
fn build(dir: &Path, out: &Path, env: &[(&str, &Path)]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_wasmfn"))
        .arg("build")
        .arg(dir)
        .arg("-o")
        .arg(out)
        .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())))
        .output()
        .unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn write_function(dir: &Path, source: &str, toml_extra: &str) {
    std::fs::create_dir_all(dir.join("functions")).unwrap();
    let toml = format!("name = \"sealed\"\nversion = \"1.0.0\"\n{toml_extra}");
    std::fs::write(dir.join("function.toml"), toml).unwrap();
    std::fs::write(dir.join("functions/sealed.py"), source).unwrap();
}

const HEADER: &str = "from ixoncdkingress.function.context import FunctionContext\n\n";

#[test]
fn the_hosts_packages_never_get_into_a_bundle_and_builds_are_reproducible() {
    let scratch = tempfile::tempdir().unwrap();
    // A package only the host has: on PYTHONPATH, and in the site-packages of an active
    // virtualenv, where componentize-py would otherwise look.
    let venv = scratch.path().join("venv");
    let site = venv.join("lib/python3.14/site-packages");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("host_only_pkg.py"), "VALUE = 'from the host'\n").unwrap();
    let poisoned = [("VIRTUAL_ENV", venv.as_path()), ("PYTHONPATH", site.as_path())];
    let first = scratch.path().join("first");
    let source = format!(
        "{HEADER}import host_only_pkg\n\n@FunctionContext.expose\ndef value(context):\n    return host_only_pkg.VALUE\n"
    );
    write_function(&first, &source, "");
    let (ok, stderr) = build(&first, &scratch.path().join("out-poisoned"), &poisoned);
    assert!(!ok, "the host's package was found:\n{stderr}");
    assert!(stderr.contains("No module named 'host_only_pkg'"), "{stderr}");

    // The same folder, built in two places with different temporary directories, time zones
    // and locales, gives the same bytes: CPython's pre-initialized memory included.
    let source = format!("{HEADER}@FunctionContext.expose\ndef value(context):\n    return 42\n");
    write_function(&first, &source, "");
    let second = scratch.path().join("elsewhere/second");
    write_function(&second, &source, "");
    let tmp_a = scratch.path().join("tmp-a");
    let tmp_b = scratch.path().join("tmp-b");
    std::fs::create_dir_all(&tmp_a).unwrap();
    std::fs::create_dir_all(&tmp_b).unwrap();
    let env_a = [("TMPDIR", tmp_a.as_path()), ("TZ", Path::new("UTC")), ("LC_ALL", Path::new("C"))];
    let env_b = [
        ("TMPDIR", tmp_b.as_path()),
        ("TZ", Path::new("Asia/Tokyo")),
        ("LC_ALL", Path::new("C.UTF-8")),
    ];
    let (ok, stderr) = build(&first, &scratch.path().join("out-a"), &env_a);
    assert!(ok, "{stderr}");
    assert!(
        !stderr.contains("not be byte-reproducible"),
        "builds use PyPI's componentize-py: run bash scripts/setup-componentize-py.sh\n{stderr}"
    );
    // (Seconds later: a build takes that long, so the clocks differ too.)
    let (ok, stderr) = build(&second, &scratch.path().join("out-b"), &env_b);
    assert!(ok, "{stderr}");
    let a = std::fs::read(scratch.path().join("out-a/sealed-1.0.0.wasm")).unwrap();
    let b = std::fs::read(scratch.path().join("out-b/sealed-1.0.0.wasm")).unwrap();
    let (sections_a, sections_b) = (section_digests(&a), section_digests(&b));
    assert!(sections_a.len() > 100, "the bundle was parsed: {} sections", sections_a.len());
    let differing: Vec<_> = sections_a.iter().zip(&sections_b).filter(|(x, y)| x != y).collect();
    assert_eq!(
        sha256_hex(&a),
        sha256_hex(&b),
        "two builds of one folder differ ({} and {} bytes) in sections {differing:?}",
        a.len(),
        b.len()
    );

    // Another source gives another bundle (and another hash secret: the seed follows it).
    let other = format!("{HEADER}@FunctionContext.expose\ndef value(context):\n    return 43\n");
    write_function(&second, &other, "");
    let (ok, stderr) = build(&second, &scratch.path().join("out-c"), &env_b);
    assert!(ok, "{stderr}");
    let c = std::fs::read(scratch.path().join("out-c/sealed-1.0.0.wasm")).unwrap();
    assert_ne!(sha256_hex(&a), sha256_hex(&c));
}

#[test]
fn requirements_are_pinned_in_a_lock_that_later_builds_install() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("f");
    let source = format!(
        "{HEADER}import six\n\n@FunctionContext.expose\ndef value(context):\n    return six.PY3\n"
    );
    write_function(&dir, &source, "");
    // Unpinned: the first build resolves it and writes down what it got.
    std::fs::write(dir.join("requirements.txt"), "six\n").unwrap();
    let (ok, stderr) = build(&dir, &scratch.path().join("out"), &[]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("wrote requirements.lock"), "{stderr}");
    let lock = std::fs::read_to_string(dir.join("requirements.lock")).unwrap();
    let six = lock.lines().find(|l| l.starts_with("six==")).unwrap_or_else(|| panic!("{lock}"));
    assert!(lock.lines().any(|l| l.starts_with("requests==2.31.0")), "the SDK's pins too: {lock}");

    // The next build installs the pins without resolving.
    let (ok, stderr) = build(&dir, &scratch.path().join("out"), &[]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("pinned versions of requirements.lock"), "{stderr}");
    assert!(!stderr.contains("resolving requirements"), "{stderr}");
    assert_eq!(std::fs::read_to_string(dir.join("requirements.lock")).unwrap(), lock);

    // A changed requirements.txt resolves again.
    std::fs::write(dir.join("requirements.txt"), format!("{six}\n")).unwrap();
    let (ok, stderr) = build(&dir, &scratch.path().join("out"), &[]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("resolving requirements: six=="), "{stderr}");
}

#[test]
fn mistakes_that_need_no_python_are_reported_before_componentize_runs() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("f");
    let source = format!("{HEADER}@FunctionContext.expose\ndef value(context):\n    return 1\n");
    write_function(&dir, &source, "default_entry = \"sealed.valeu\"\n");
    let (ok, stderr) = build(&dir, &scratch.path().join("out"), &[]);
    assert!(!ok);
    assert!(
        stderr.contains("default_entry 'sealed.valeu': module 'sealed' has no 'valeu'"),
        "{stderr}"
    );
    assert!(!stderr.contains("componentize-py"), "componentize-py ran: {stderr}");

    // A syntax error is found by the host's Python at once: with a host Python older than the
    // bundle's it is shown as a likely error and the build goes on to let the bundle decide.
    let broken = format!("{HEADER}@FunctionContext.expose\ndef value(context:\n    return 1\n");
    write_function(&dir, &broken, "");
    let (ok, stderr) = build(&dir, &scratch.path().join("out"), &[]);
    assert!(!ok);
    let file_line = format!("{}:4", dir.join("functions/sealed.py").display());
    assert!(stderr.contains(&file_line) && stderr.contains("SyntaxError"), "{stderr}");
}
