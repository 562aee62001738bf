//! `wasmfn new NAME`: a function folder from a template (`runtime/templates/`), ready to build,
//! serve and call.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

use crate::names::validate_name;

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The function's name, as it appears in URLs: lowercase letters, digits, '-' and '_'.
    pub name: String,
    /// What the function starts as.
    #[arg(long, short, value_enum, default_value_t = Template::Ixon)]
    pub template: Template,
    /// The folder to create (default: ./NAME); it must not exist, or be empty.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// The templates, one folder each under `runtime/templates/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Template {
    /// An HTTP function as on IXON Cloud Functions: `@FunctionContext.expose`, config, output.
    Ixon,
    /// A to-do list in the document store (`context.document_db_client`).
    Storage,
    /// Entries run by a cron trigger and an MQTT trigger.
    Triggers,
}

/// A template's files: path (with `MODULE` for the module name) and text.
type Files = &'static [(&'static str, &'static str)];

macro_rules! template_files {
    ($folder:literal: $($path:literal),+ $(,)?) => {
        &[$(($path, include_str!(concat!("../../templates/", $folder, "/", $path)))),+]
    };
}

impl Template {
    fn files(self) -> Files {
        match self {
            Template::Ixon => template_files!("ixon":
                "function.toml", "functions/MODULE.py", "requirements.txt", ".gitignore"),
            Template::Storage => template_files!("storage":
                "function.toml", "functions/MODULE.py", "requirements.txt", ".gitignore"),
            Template::Triggers => template_files!("triggers":
                "function.toml", "functions/MODULE.py", "requirements.txt", ".gitignore"),
        }
    }
}

/// The Python module a function's code goes in: its name with `-` as `_`, prefixed when that
/// is not an identifier Python can import.
pub fn module_name(name: &str) -> String {
    const KEYWORDS: &[&str] = &[
        "and",
        "as",
        "assert",
        "async",
        "await",
        "break",
        "class",
        "continue",
        "def",
        "del",
        "elif",
        "else",
        "except",
        "finally",
        "for",
        "from",
        "global",
        "if",
        "import",
        "in",
        "is",
        "lambda",
        "nonlocal",
        "not",
        "or",
        "pass",
        "raise",
        "return",
        "try",
        "while",
        "with",
        "yield",
        "functions",
    ];
    let module = name.replace('-', "_");
    if module.starts_with(|c: char| c.is_ascii_digit()) || KEYWORDS.contains(&module.as_str()) {
        format!("fn_{module}")
    } else {
        module
    }
}

/// Writes the template's files for `name` into `dir`; returns the paths written.
pub fn create(name: &str, template: Template, dir: &Path) -> Result<Vec<PathBuf>> {
    validate_name(name).map_err(anyhow::Error::msg)?;
    if dir.exists() {
        let mut entries =
            std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} already exists and is not empty: choose another name, or --dir",
                dir.display()
            );
        }
    }
    let module = module_name(name);
    let mut written = Vec::new();
    for (path, text) in template.files() {
        let target = dir.join(path.replace("MODULE", &module));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let text = text.replace("{{name}}", name).replace("{{module}}", &module);
        std::fs::write(&target, text).with_context(|| format!("writing {}", target.display()))?;
        written.push(target);
    }
    Ok(written)
}

pub fn run(args: NewArgs) -> Result<std::process::ExitCode> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(&args.name));
    let written = create(&args.name, args.template, &dir)?;
    println!("created {} ({} template):", dir.display(), template_name(args.template));
    for path in &written {
        println!("  {}", path.display());
    }
    let shown = dir.display();
    println!(
        "\nnext:\n  wasmfn dev {shown}          # serve it, rebuilt on every save\n  \
         wasmfn invoke {shown}       # or call it once, without a server\n  \
         wasmfn build {shown}        # or build the bundle to deploy"
    );
    Ok(std::process::ExitCode::SUCCESS)
}

fn template_name(template: Template) -> String {
    template.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_are_importable() {
        assert_eq!(module_name("hello-world"), "hello_world");
        assert_eq!(module_name("3d-render"), "fn_3d_render");
        assert_eq!(module_name("import"), "fn_import");
        assert_eq!(module_name("functions"), "fn_functions");
    }

    #[test]
    fn every_template_writes_its_files_with_the_name_filled_in() {
        for template in Template::value_variants() {
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join("f");
            let written = create("my-fn", *template, &target).unwrap();
            assert!(written.contains(&target.join("functions/my_fn.py")), "{written:?}");
            let toml = std::fs::read_to_string(target.join("function.toml")).unwrap();
            assert!(toml.contains("name = \"my-fn\"") && !toml.contains("{{"), "{toml}");
            let manifest = crate::manifest::FunctionManifest::load(&target).unwrap();
            let entry = manifest.default_entry.clone().unwrap();
            assert!(entry.starts_with("my_fn."), "{entry}");
            // A second run never overwrites.
            let again = create("my-fn", *template, &target).unwrap_err().to_string();
            assert!(again.contains("not empty"), "{again}");
        }
        let refused = create("Bad Name", Template::Ixon, Path::new("/nonexistent/x"));
        assert!(refused.unwrap_err().to_string().contains("is invalid"));
    }
}
