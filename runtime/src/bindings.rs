//! The one `bindgen!` call: Rust types and traits for the `wasmfn:platform` world in `wit/`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "wasmfn:platform/function",
    imports: {
        "wasmfn:platform/documents": async,
        "wasmfn:platform/objects": async,
        "wasmfn:platform/ixon-api": async,
    },
    exports: { default: async },
});

pub use exports::wasmfn::platform::handler::Guest as Handler;
pub use wasmfn::platform::types;
