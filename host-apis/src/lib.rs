//! Host capabilities.
