use wasm_encoder::{
    Alias, CodeSection, Component, ComponentAliasSection, EntityType, ExportKind, ExportSection,
    Function, FunctionSection, ImportSection, InstanceSection, MemorySection, MemoryType, Module,
    ModuleArg, ModuleSection, NestedComponentSection, TypeSection,
};
use wasmparser::{Parser, Payload, Validator, WasmFeatures};

use super::*;

/// A module defining `names` as functions (and a memory), exporting all of them.
fn library(names: &[&str]) -> Module {
    let mut module = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([], []);
    module.section(&types);
    let mut functions = FunctionSection::new();
    let mut code = CodeSection::new();
    for _ in names {
        functions.function(0);
        let mut body = Function::new([]);
        body.instructions().end();
        code.function(&body);
    }
    module.section(&functions);
    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: 1,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    module.section(&memories);
    let mut exports = ExportSection::new();
    for (i, name) in names.iter().enumerate() {
        exports.export(name, ExportKind::Func, i as u32);
    }
    exports.export("memory", ExportKind::Memory, 0);
    module.section(&exports);
    module.section(&code);
    module
}

/// A module importing `lib.f` and exporting `run`, which calls it.
fn user() -> Module {
    let mut module = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([], []);
    module.section(&types);
    let mut imports = ImportSection::new();
    imports.import("lib", "f", EntityType::Function(0));
    module.section(&imports);
    let mut functions = FunctionSection::new();
    functions.function(0);
    module.section(&functions);
    let mut exports = ExportSection::new();
    exports.export("run", ExportKind::Func, 1);
    module.section(&exports);
    let mut code = CodeSection::new();
    let mut body = Function::new([]);
    body.instructions().call(0).end();
    code.function(&body);
    module.section(&code);
    module
}

/// The library (f, g, h, memory) instantiated, the user module instantiated with it as `lib`,
/// and the library's `g` and the user's `run` aliased by the component.
fn component() -> Vec<u8> {
    let mut component = Component::new();
    component.section(&ModuleSection(&library(&["f", "g", "h"])));
    component.section(&ModuleSection(&user()));
    let mut instances = InstanceSection::new();
    instances.instantiate(0, Vec::<(&str, ModuleArg)>::new());
    instances.instantiate(1, [("lib", ModuleArg::Instance(0))]);
    component.section(&instances);
    let mut aliases = ComponentAliasSection::new();
    aliases.alias(Alias::CoreInstanceExport { instance: 0, kind: ExportKind::Func, name: "g" });
    aliases.alias(Alias::CoreInstanceExport { instance: 1, kind: ExportKind::Func, name: "run" });
    component.section(&aliases);
    component.finish()
}

/// The export names of each top-level core module.
fn exports_of(component: &[u8]) -> Vec<Vec<String>> {
    let mut modules = Vec::new();
    for payload in Parser::new(0).parse_all(component) {
        match payload.unwrap() {
            Payload::Version { encoding: Encoding::Module, .. } => modules.push(Vec::new()),
            Payload::ExportSection(reader) => {
                let names = reader.into_iter().map(|e| e.unwrap().name.to_string());
                modules.last_mut().unwrap().extend(names);
            }
            _ => {}
        }
    }
    modules
}

fn validate(component: &[u8]) {
    Validator::new_with_features(WasmFeatures::all()).validate_all(component).unwrap();
}

#[test]
fn a_function_export_no_one_imports_or_aliases_is_removed_and_the_rest_stays() {
    let original = component();
    validate(&original);
    let (stripped, what) = strip_unused_exports(&original).unwrap().expect("something to remove");
    assert_eq!(what, Stripped { modules: 1, functions: 1 });
    validate(&stripped);
    // `h` went; `f` (imported by the user), `g` (aliased), the memory and `run` stayed.
    assert_eq!(exports_of(&stripped), [vec!["f", "g", "memory"], vec!["run"]]);
    assert_eq!(stripped.len(), original.len() - (1 + 1 + 1 + 1));
    // A second pass finds nothing left to remove.
    assert_eq!(strip_unused_exports(&stripped).unwrap(), None);
}

#[test]
fn section_sizes_that_need_more_bytes_are_rewritten_whole() {
    // Enough exports that the module's and the export section's sizes take two or three
    // LEB128 bytes before and fewer after.
    let names: Vec<String> = (0..3000).map(|i| format!("unused_function_{i:05}")).collect();
    let mut all: Vec<&str> = vec!["f", "g"];
    all.extend(names.iter().map(String::as_str));
    let mut component = Component::new();
    component.section(&ModuleSection(&library(&all)));
    component.section(&ModuleSection(&user()));
    let mut instances = InstanceSection::new();
    instances.instantiate(0, Vec::<(&str, ModuleArg)>::new());
    instances.instantiate(1, [("lib", ModuleArg::Instance(0))]);
    component.section(&instances);
    let original = component.finish();
    let (stripped, what) = strip_unused_exports(&original).unwrap().expect("something to remove");
    assert_eq!(what, Stripped { modules: 2, functions: 3002 });
    validate(&stripped);
    assert_eq!(exports_of(&stripped), [vec!["f", "memory"], Vec::<&str>::new()]);
}

#[test]
fn a_core_module_or_something_unreadable_is_left_alone() {
    let module = library(&["f"]).finish();
    assert_eq!(strip_unused_exports(&module).unwrap(), None);
    // A nested component with a core module of its own: its wiring is out of this pass's sight.
    let mut inner = Component::new();
    inner.section(&ModuleSection(&library(&["f"])));
    let mut outer = Component::new();
    outer.section(&ModuleSection(&library(&["unused"])));
    outer.section(&NestedComponentSection(&inner));
    let outer = outer.finish();
    validate(&outer);
    assert_eq!(strip_unused_exports(&outer).unwrap(), None);
    // Without the module inside, the outer module's unused export goes.
    let mut outer = Component::new();
    outer.section(&ModuleSection(&library(&["unused"])));
    outer.section(&NestedComponentSection(&Component::new()));
    let (_, what) = strip_unused_exports(&outer.finish()).unwrap().expect("something to remove");
    assert_eq!(what, Stripped { modules: 1, functions: 1 });
    assert!(strip_unused_exports(b"\0asm\x0d\0\x01\0garbage").is_err());
}

#[test]
fn an_export_that_declares_a_function_the_code_takes_a_reference_to_stays() {
    // `target` is exported for no one, but `other` runs `ref.func target`, which is valid only
    // because of that export: it must stay. `other` itself goes.
    let mut module = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([], []);
    module.section(&types);
    let mut functions = FunctionSection::new();
    functions.function(0);
    functions.function(0);
    module.section(&functions);
    let mut exports = ExportSection::new();
    exports.export("target", ExportKind::Func, 0);
    exports.export("other", ExportKind::Func, 1);
    module.section(&exports);
    let mut code = CodeSection::new();
    let mut empty = Function::new([]);
    empty.instructions().end();
    code.function(&empty);
    let mut taker = Function::new([]);
    taker.instructions().ref_func(0).drop().end();
    code.function(&taker);
    module.section(&code);
    let mut component = Component::new();
    component.section(&ModuleSection(&module));
    let mut instances = InstanceSection::new();
    instances.instantiate(0, Vec::<(&str, ModuleArg)>::new());
    component.section(&instances);
    let original = component.finish();
    validate(&original);
    let (stripped, what) = strip_unused_exports(&original).unwrap().expect("something to remove");
    assert_eq!(what, Stripped { modules: 1, functions: 1 });
    validate(&stripped);
    assert_eq!(exports_of(&stripped), [vec!["target"]]);
}
