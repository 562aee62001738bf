//! The one `bindgen!` call: Rust types and traits for the `wasmfn:platform` world in `wit/`.
//!
//! Generated from `function-host`, the guests' `function` world less `response-body`: that one
//! import is defined by hand (`crate::response_body`), so that a piece of a response body is
//! measured before it is copied out of the instance.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "wasmfn:platform/function-host",
    imports: {
        "wasmfn:platform/documents": async,
        "wasmfn:platform/objects": async,
        "wasmfn:platform/ixon-api": async,
        "wasmfn:platform/tcp": async,
    },
    with: {
        "wasmfn:platform/tcp.connection": crate::outbound::tcp::TcpConnection,
    },
    exports: { default: async },
});

pub use exports::wasmfn::platform::handler::Guest as Handler;
pub use wasmfn::platform::types;
/// A bundle's instance, as the host calls it.
pub type Function = FunctionHost;
/// A bundle linked and ready to be instantiated.
pub type FunctionPre<T> = FunctionHostPre<T>;
