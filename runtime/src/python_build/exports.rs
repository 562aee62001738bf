//! Core functions exported for no one, made private: after componentize-py wrote the
//! component, every function export of a core module that neither another core module imports
//! nor the component aliases is removed from the module's export section.
//!
//! Why: componentize-py links libpython and libc as shared libraries, which export every
//! global symbol (hello world: ~3,400 functions), but the component wires up only the ~1,000
//! that some other module imports. wasmtime treats every exported function as one that may
//! escape: it compiles an entry trampoline for it and, with vendored patch 3, writes its
//! function reference (32 bytes) into every new instance. An export no one can reach costs
//! both and does nothing. Removing it changes no code, no index and no import: only the export
//! section of the module, and the size headers around it. An export that declares a function
//! the module's own code takes with `ref.func` stays (the module would not validate without it).
//!
//! Only top-level core modules are touched, and only when the component's wiring is plain
//! enough to be sure of who uses what: a core module inside a nested component, or one that
//! leaves the component (exported, passed to a component instance, aliased into a nested
//! component), leaves the component as it is.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use wasm_encoder::{ComponentSectionId, Encode, RawSection, Section, SectionId};
use wasmparser::{
    BinaryReader, BinaryReaderError, ComponentAlias, ComponentExternalKind,
    ComponentOuterAliasKind, Encoding, ExternalKind, Instance, Operator, Parser, Payload,
};

/// What [`strip_unused_exports`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stripped {
    /// Core modules whose export section changed.
    pub modules: usize,
    /// Function exports removed.
    pub functions: usize,
}

/// A top-level core module of the component, as far as its exports are concerned.
#[derive(Default)]
struct CoreModule {
    /// The module's bytes in the component (after its section header).
    bytes: Range<usize>,
    /// (module, name) of every import.
    imports: Vec<(String, String)>,
    /// The export section's contents (after its header), and each export: name, the function
    /// it exports (`None`: not a function), and where its entry is in the component.
    export_section: Option<Range<usize>>,
    exports: Vec<(String, Option<u32>, Range<usize>)>,
    /// Functions the module's code or globals take with `ref.func`: an export may be what
    /// declares them (a module may only `ref.func` a function it exports or lists in an
    /// element segment), so theirs stay.
    referenced: HashSet<u32>,
}

/// Removes the function exports no one uses from the component's core modules. `Ok(None)`:
/// nothing to remove, or a component this pass does not rewrite (see the module doc). Errors
/// are a component wasmparser cannot read.
pub fn strip_unused_exports(
    component: &[u8],
) -> Result<Option<(Vec<u8>, Stripped)>, BinaryReaderError> {
    let Some((modules, used)) = wiring(component)? else { return Ok(None) };
    // (bytes to replace, what replaces them), in file order.
    let mut edits: Vec<(Range<usize>, Vec<u8>)> = Vec::new();
    let mut stripped = Stripped::default();
    for (index, module) in modules.iter().enumerate() {
        let Some(section) = module.export_section.clone() else { continue };
        let no_names = HashSet::new();
        let used = used.get(&index).unwrap_or(&no_names);
        let kept: Vec<_> = module
            .exports
            .iter()
            .filter(|(name, func, _)| match func {
                Some(index) => used.contains(name) || module.referenced.contains(index),
                None => true,
            })
            .collect();
        let removed = module.exports.len() - kept.len();
        if removed == 0 {
            continue;
        }
        let mut contents = Vec::new();
        (kept.len() as u32).encode(&mut contents);
        for (_, _, entry) in &kept {
            contents.extend_from_slice(&component[entry.clone()]);
        }
        // A header this pass cannot read back: leave the component as it is.
        let Some(header) = section_header(component, &section, SectionId::Export as u8) else {
            return Ok(None);
        };
        let mut new_section = Vec::new();
        RawSection { id: SectionId::Export as u8, data: &contents }.append_to(&mut new_section);
        let new_module_len = module.bytes.len() - (section.end - header.start) + new_section.len();
        // The module's own section header gets its new size.
        let core_module = ComponentSectionId::CoreModule as u8;
        let Some(module_header) = section_header(component, &module.bytes, core_module) else {
            return Ok(None);
        };
        let mut new_header = vec![core_module];
        (new_module_len as u32).encode(&mut new_header);
        edits.push((module_header.start..module.bytes.start, new_header));
        edits.push((header.start..section.end, new_section));
        stripped.modules += 1;
        stripped.functions += removed;
    }
    if edits.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(component.len());
    let mut at = 0;
    for (range, bytes) in edits {
        out.extend_from_slice(&component[at..range.start]);
        out.extend_from_slice(&bytes);
        at = range.end;
    }
    out.extend_from_slice(&component[at..]);
    Ok(Some((out, stripped)))
}

/// The component's top-level core modules and, per module, the names some core instance of
/// it is asked for (by another module's imports or by an alias). `None`: not a component this
/// pass can be sure about.
#[allow(clippy::type_complexity)]
fn wiring(
    component: &[u8],
) -> Result<Option<(Vec<CoreModule>, HashMap<usize, HashSet<String>>)>, BinaryReaderError> {
    let mut depth: Vec<Encoding> = Vec::new();
    let mut modules: Vec<CoreModule> = Vec::new();
    // The module each core instance was instantiated from (`None`: made from exports).
    let mut instances: Vec<Option<usize>> = Vec::new();
    let mut asked: HashSet<(u32, String)> = HashSet::new();
    for payload in Parser::new(0).parse_all(component) {
        let payload = payload?;
        match &payload {
            Payload::Version { encoding, .. } => {
                depth.push(*encoding);
                if depth.len() == 1 && *encoding != Encoding::Component {
                    return Ok(None);
                }
                continue;
            }
            Payload::End(_) => {
                depth.pop();
                continue;
            }
            _ => {}
        }
        // Inside a nested component (wit-component wraps exported interfaces in some, which
        // hold no core code): a core module of its own, or one of ours aliased in, would be
        // instantiated out of sight.
        if depth.get(1) == Some(&Encoding::Component) {
            let out_of_sight = match payload {
                Payload::ModuleSection { .. } => true,
                Payload::ComponentAliasSection(reader) => reader.into_iter().any(|alias| {
                    matches!(
                        alias,
                        Err(_)
                            | Ok(ComponentAlias::Outer {
                                kind: ComponentOuterAliasKind::CoreModule,
                                ..
                            })
                    )
                }),
                _ => false,
            };
            if out_of_sight {
                return Ok(None);
            }
            continue;
        }
        if depth.len() == 2 {
            let Some(module) = modules.last_mut() else { return Ok(None) };
            match payload {
                Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        let import = import?;
                        module.imports.push((import.module.to_string(), import.name.to_string()));
                    }
                }
                Payload::ExportSection(reader) => {
                    let section = reader.range();
                    let entries: Vec<_> = reader.into_iter_with_offsets().collect();
                    for (i, entry) in entries.iter().enumerate() {
                        let (start, export) = entry.as_ref().map_err(Clone::clone)?;
                        let end = match entries.get(i + 1) {
                            Some(Ok((next, _))) => *next,
                            _ => section.end,
                        };
                        let func =
                            matches!(export.kind, ExternalKind::Func).then_some(export.index);
                        module.exports.push((export.name.to_string(), func, *start..end));
                    }
                    module.export_section = Some(section);
                }
                Payload::CodeSectionEntry(body) => {
                    for operator in body.get_operators_reader()? {
                        if let Operator::RefFunc { function_index } = operator? {
                            module.referenced.insert(function_index);
                        }
                    }
                }
                Payload::GlobalSection(reader) => {
                    for global in reader {
                        for operator in global?.init_expr.get_operators_reader() {
                            if let Operator::RefFunc { function_index } = operator? {
                                module.referenced.insert(function_index);
                            }
                        }
                    }
                }
                _ => {}
            }
            continue;
        }
        match payload {
            Payload::ModuleSection { unchecked_range, .. } => {
                modules.push(CoreModule { bytes: unchecked_range, ..CoreModule::default() });
            }
            Payload::InstanceSection(reader) => {
                for instance in reader {
                    match instance? {
                        Instance::Instantiate { module_index, args } => {
                            let Some(module) = modules.get(module_index as usize) else {
                                return Ok(None);
                            };
                            for arg in args.iter() {
                                for (from, name) in &module.imports {
                                    if from == arg.name {
                                        asked.insert((arg.index, name.clone()));
                                    }
                                }
                            }
                            instances.push(Some(module_index as usize));
                        }
                        Instance::FromExports(_) => instances.push(None),
                    }
                }
            }
            Payload::ComponentAliasSection(reader) => {
                for alias in reader {
                    match alias? {
                        ComponentAlias::CoreInstanceExport { instance_index, name, .. } => {
                            asked.insert((instance_index, name.to_string()));
                        }
                        ComponentAlias::Outer { .. } => return Ok(None),
                        ComponentAlias::InstanceExport { .. } => {}
                    }
                }
            }
            // A core module that leaves the component: its exports are someone else's to use.
            Payload::ComponentExportSection(reader) => {
                for export in reader {
                    if export?.kind == ComponentExternalKind::Module {
                        return Ok(None);
                    }
                }
            }
            Payload::ComponentInstanceSection(reader) => {
                for instance in reader {
                    let passes_module = match instance? {
                        wasmparser::ComponentInstance::Instantiate { args, .. } => {
                            args.iter().any(|arg| arg.kind == ComponentExternalKind::Module)
                        }
                        wasmparser::ComponentInstance::FromExports(exports) => {
                            exports.iter().any(|e| e.kind == ComponentExternalKind::Module)
                        }
                    };
                    if passes_module {
                        return Ok(None);
                    }
                }
            }
            _ => {}
        }
    }
    let mut used: HashMap<usize, HashSet<String>> = HashMap::new();
    for (instance, name) in asked {
        if let Some(Some(module)) = instances.get(instance as usize) {
            used.entry(*module).or_default().insert(name);
        }
    }
    Ok(Some((modules, used)))
}

/// The header (id byte and LEB128 size) in front of the section whose contents are `contents`.
fn section_header(bytes: &[u8], contents: &Range<usize>, id: u8) -> Option<Range<usize>> {
    // A LEB128 u32 takes 1 to 5 bytes (encoders may pad it).
    (2..=6).find_map(|len| {
        let start = contents.start.checked_sub(len)?;
        if bytes[start] != id {
            return None;
        }
        let mut reader = BinaryReader::new(&bytes[start + 1..contents.start], 0);
        let size = reader.read_var_u32().ok()?;
        (reader.eof() && size as usize == contents.len()).then_some(start..contents.start)
    })
}

#[cfg(test)]
mod tests;
