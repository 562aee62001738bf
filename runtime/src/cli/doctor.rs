//! `wasmfn doctor`: checks what wasmfn needs on this machine and says what to fix. Every check
//! is bounded (a few seconds at most) and only reads: nothing is installed or changed.

use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::python_build::wasi_wheels_dir;
use crate::toolchain::{find_python, wasmfn_home, Toolchain, COMPONENTIZE_PY_VERSION};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The data directory `serve` would use (default: $WASMFN_HOME, ~/.cache/wasmfn).
    #[arg(long, env = "WASMFN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The address `serve` would listen on: checked to be free.
    #[arg(long, default_value = "127.0.0.1:8080", env = "WASMFN_LISTEN")]
    pub listen: SocketAddr,
    /// An MQTT broker a trigger uses (`mqtt://host[:port]`): checked to be reachable.
    #[arg(long, value_name = "URL")]
    pub broker: Vec<String>,
    /// The document store `serve` would use (`sled`, or a `postgres://` URL checked to be
    /// reachable).
    #[arg(long, default_value = "sled", env = "WASMFN_DOCUMENT_STORE", hide_env_values = true)]
    pub document_store: String,
}

/// One check's verdict.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Ok(String),
    /// Works, but something is worth knowing.
    Note(String),
    /// Does not work; what to do.
    Fix(String),
}

pub fn run(args: DoctorArgs) -> Result<std::process::ExitCode> {
    let data_dir = args.data_dir.clone().unwrap_or_else(wasmfn_home);
    let mut checks: Vec<(&str, Verdict)> = vec![
        ("python", python()),
        ("componentize-py", toolchain()),
        ("WebAssembly wheels", wheels()),
        ("data directory", data_directory(&data_dir)),
        ("listen address", listen(args.listen)),
    ];
    for broker in &args.broker {
        checks.push(("MQTT broker", reachable(broker, "mqtt", 1883)));
    }
    if args.document_store.starts_with("postgres") {
        checks.push(("document store", reachable(&args.document_store, "postgres", 5432)));
    }
    let mut failed = 0;
    for (what, verdict) in &checks {
        let (mark, text) = match verdict {
            Verdict::Ok(text) => ("ok  ", text),
            Verdict::Note(text) => ("note", text),
            Verdict::Fix(text) => {
                failed += 1;
                ("FIX ", text)
            }
        };
        println!("{mark} {what:<20} {text}");
    }
    if failed == 0 {
        println!("\nwasmfn can build and serve functions here.");
        Ok(std::process::ExitCode::SUCCESS)
    } else {
        println!("\n{failed} thing(s) to fix, above.");
        Ok(std::process::ExitCode::FAILURE)
    }
}

fn python() -> Verdict {
    let Ok(python) = find_python() else {
        return Verdict::Fix(
            "no python3 on PATH: install Python 3.9 or newer with the venv module (Debian: \
             apt-get install python3 python3-venv); it installs componentize-py"
                .into(),
        );
    };
    let script = "import sys, venv; print('%d.%d' % sys.version_info[:2])";
    match Command::new(&python).args(["-c", script]).output() {
        Ok(output) if output.status.success() => {
            let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
            let (major, minor) = version.split_once('.').unwrap_or(("0", "0"));
            let new_enough = (major.parse().unwrap_or(0), minor.parse().unwrap_or(0)) >= (3, 9);
            if new_enough {
                Verdict::Ok(format!("{} is Python {version}, with venv", python.display()))
            } else {
                Verdict::Fix(format!(
                    "{} is Python {version}: wasmfn needs 3.9 or newer",
                    python.display()
                ))
            }
        }
        _ => Verdict::Fix(format!(
            "{} has no venv module: install it (Debian: apt-get install python3-venv)",
            python.display()
        )),
    }
}

fn toolchain() -> Verdict {
    match Toolchain::installed(&wasmfn_home()) {
        Some(toolchain) if toolchain.is_reproducible() => Verdict::Ok(format!(
            "{COMPONENTIZE_PY_VERSION} in {}; builds are reproducible ({})",
            toolchain.dir().display(),
            toolchain.componentize_py().display()
        )),
        Some(toolchain) => Verdict::Note(format!(
            "{COMPONENTIZE_PY_VERSION} from PyPI in {}: bundles work, but two builds of one \
             folder differ in CPython's pre-initialized memory; `bash \
             scripts/setup-componentize-py.sh` builds the patched one (cargo, ~10 min once)",
            toolchain.dir().display()
        )),
        None => Verdict::Note(format!(
            "componentize-py {COMPONENTIZE_PY_VERSION} is not installed yet: the first \
             `wasmfn build` installs it from PyPI (needs network), or run `bash scripts/setup.sh`"
        )),
    }
}

fn wheels() -> Verdict {
    let dir = wasi_wheels_dir();
    let count = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "whl"))
                .count()
        })
        .unwrap_or(0);
    if count > 0 {
        Verdict::Ok(format!("{count} in {}", dir.display()))
    } else {
        Verdict::Note(format!(
            "none in {}: only needed for requirements with native code, such as pydantic 2 \
             (bash scripts/build-wasi-wheels.sh; docs/native-packages.md)",
            dir.display()
        ))
    }
}

fn data_directory(dir: &Path) -> Verdict {
    let Ok(metadata) = std::fs::metadata(dir) else {
        return Verdict::Note(format!("{} does not exist yet: `serve` creates it", dir.display()));
    };
    if !metadata.is_dir() {
        return Verdict::Fix(format!(
            "{} is not a directory: give another --data-dir",
            dir.display()
        ));
    }
    let mode = metadata.permissions().mode() & 0o777;
    let probe = dir.join(".wasmfn-doctor-probe");
    let writable = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    if !writable {
        return Verdict::Fix(format!("{} is not writable by this user", dir.display()));
    }
    if mode & 0o077 != 0 {
        return Verdict::Note(format!(
            "{} is readable by others (mode {mode:o}); `serve` makes it 0700 at start",
            dir.display()
        ));
    }
    Verdict::Ok(format!("{} (mode {mode:o})", dir.display()))
}

fn listen(address: SocketAddr) -> Verdict {
    match TcpListener::bind(address) {
        Ok(_) => Verdict::Ok(format!("{address} is free")),
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => Verdict::Fix(format!(
            "{address} is in use (another `wasmfn serve`?): stop it, or pass --listen"
        )),
        Err(error) => Verdict::Fix(format!("cannot listen on {address}: {error}")),
    }
}

/// Whether `url`'s host and port (`scheme://[user@]host[:port]/...`) accept a TCP connection.
fn reachable(url: &str, scheme: &str, default_port: u16) -> Verdict {
    let Ok(parsed) = url::Url::parse(url) else {
        return Verdict::Fix(format!("'{url}' is not a URL like {scheme}://host[:port]"));
    };
    let host = parsed.host_str().unwrap_or("127.0.0.1").trim_matches(['[', ']']).to_string();
    let port = parsed.port().unwrap_or(default_port);
    // The URL may hold a password: only its host and port are shown.
    let shown = format!("{scheme} at {host}:{port}");
    let addresses = match (host.as_str(), port).to_socket_addrs() {
        Ok(addresses) => addresses.collect::<Vec<_>>(),
        Err(error) => return Verdict::Fix(format!("{shown}: the name does not resolve ({error})")),
    };
    for address in &addresses {
        if TcpStream::connect_timeout(address, Duration::from_secs(3)).is_ok() {
            return Verdict::Ok(format!("{shown} accepts connections"));
        }
    }
    Verdict::Fix(format!("{shown} does not accept connections: is it running?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_in_use_and_an_unreachable_service_are_told_with_the_fix() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap();
        assert!(matches!(listen(address), Verdict::Fix(text) if text.contains("in use")));
        drop(taken);
        let closed = format!("mqtt://user:hunter2@127.0.0.1:{}", address.port());
        match reachable(&closed, "mqtt", 1883) {
            Verdict::Fix(text) => {
                assert!(text.contains("does not accept connections"), "{text}");
                assert!(!text.contains("hunter2"), "no secret in the message: {text}");
            }
            other => panic!("{other:?}"),
        }
        let open = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("mqtt://127.0.0.1:{}", open.local_addr().unwrap().port());
        assert!(matches!(reachable(&url, "mqtt", 1883), Verdict::Ok(_)));
    }

    #[test]
    fn a_data_directory_open_to_others_is_noted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(data_directory(dir.path()), Verdict::Note(text) if text.contains("755")));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(matches!(data_directory(dir.path()), Verdict::Ok(_)));
    }
}
