//! A quick check that a component targets our world, from its top-level import and export
//! names alone, before the seconds-long compile: it must export `wasmfn:platform/handler` at a
//! compatible version and import nothing but WASI and `wasmfn:platform` interfaces.

use crate::bundle::BundleError;

/// The package every bundle is built against.
pub const PACKAGE: &str = "wasmfn:platform";
/// Bundles built against any 0.3.x of the package run on this host (0.3 moved the response
/// body out of the `response` record into `response-body`).
pub const COMPATIBLE: &str = "^0.3";

/// Checks the component's world; the error names the export or import that is wrong.
pub fn check_world(bytes: &[u8]) -> Result<(), BundleError> {
    let (imports, exports) = top_level_names(bytes)?;
    let handler = format!("{PACKAGE}/handler@");
    let Some(export) = exports.iter().find(|name| name.starts_with(&handler)) else {
        let shown = if exports.is_empty() { "nothing".to_string() } else { exports.join(", ") };
        return Err(BundleError::WrongWorld(format!(
            "it does not export {PACKAGE}/handler (it exports {shown})"
        )));
    };
    check_version(export)?;
    for import in &imports {
        if import.starts_with("wasi:") {
            continue;
        }
        if import.starts_with(&format!("{PACKAGE}/")) {
            check_version(import)?;
            continue;
        }
        return Err(BundleError::WrongWorld(format!(
            "it imports {import}, which wasmfn does not provide"
        )));
    }
    Ok(())
}

fn check_version(name: &str) -> Result<(), BundleError> {
    let requirement = semver::VersionReq::parse(COMPATIBLE).expect("valid requirement");
    let version = name.rsplit_once('@').map(|(_, v)| v).unwrap_or("");
    match semver::Version::parse(version) {
        Ok(version) if requirement.matches(&version) => Ok(()),
        _ => Err(BundleError::WrongWorld(format!(
            "{name} is not compatible with this host, which provides {PACKAGE}@0.3.x"
        ))),
    }
}

/// Import and export names of the outermost component (not of components nested in it).
fn top_level_names(bytes: &[u8]) -> Result<(Vec<String>, Vec<String>), BundleError> {
    use wasmparser::Payload;
    let malformed = |e: wasmparser::BinaryReaderError| BundleError::Malformed(e.message().into());
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.map_err(malformed)? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    imports.push(import.map_err(malformed)?.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    exports.push(export.map_err(malformed)?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok((imports, exports))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_encoder::{
        Component, ComponentExportKind, ComponentExportSection, ComponentImportSection,
        ComponentTypeRef, ComponentTypeSection, InstanceType,
    };

    /// A component importing instances under `imports` and re-exporting the first as `export`.
    fn component(imports: &[&str], export: Option<&str>) -> Vec<u8> {
        let mut component = Component::new();
        let mut types = ComponentTypeSection::new();
        types.instance(&InstanceType::new());
        component.section(&types);
        let mut section = ComponentImportSection::new();
        for name in imports {
            section.import(*name, ComponentTypeRef::Instance(0));
        }
        component.section(&section);
        if let Some(name) = export {
            let mut exports = ComponentExportSection::new();
            exports.export(name, ComponentExportKind::Instance, 0, None);
            component.section(&exports);
        }
        component.finish()
    }

    #[test]
    fn a_component_of_another_world_is_named_as_such() {
        let error = check_world(&component(&[], None)).unwrap_err().to_string();
        assert!(error.contains("does not export wasmfn:platform/handler (it exports nothing)"));
        let other = component(&["acme:thing/api@1.0.0"], Some("acme:thing/run@1.0.0"));
        let error = check_world(&other).unwrap_err().to_string();
        assert!(error.contains("it exports acme:thing/run@1.0.0"), "{error}");
    }

    #[test]
    fn versions_and_imports_are_checked() {
        let handler = |version: &str, import: &str| {
            component(&[import], Some(&format!("wasmfn:platform/handler@{version}")))
        };
        assert!(check_world(&handler("0.3.0", "wasi:cli/stdout@0.2.0")).is_ok());
        assert!(check_world(&handler("0.3.2", "wasmfn:platform/response-body@0.3.2")).is_ok());
        let newer = check_world(&handler("0.4.0", "wasi:cli/stdout@0.2.0")).unwrap_err();
        assert!(newer.to_string().contains("is not compatible"), "{newer}");
        // 0.2 returned the response body inside `response`; 0.3 writes it in pieces.
        let older = check_world(&handler("0.2.0", "wasi:cli/stdout@0.2.0")).unwrap_err();
        assert!(older.to_string().contains("is not compatible"), "{older}");
        // 0.1 gave configuration values as strings; 0.2 gives JSON text.
        let oldest = check_world(&handler("0.1.0", "wasi:cli/stdout@0.2.0")).unwrap_err();
        assert!(oldest.to_string().contains("is not compatible"), "{oldest}");
        let foreign = check_world(&handler("0.3.0", "acme:db/query@1.0.0")).unwrap_err();
        assert!(foreign.to_string().contains("imports acme:db/query@1.0.0"), "{foreign}");
    }
}
