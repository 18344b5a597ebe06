//! sabpool: a preallocated shared-memory buffer pool and lock-free handoff channels for Node.js
//! worker threads. The plain-Rust core is the `sabpool-core` crate (crates/sabpool-core); this
//! crate exposes it to JS.

// Loom builds model the core alone (it has no file-backed regions under loom).
#[cfg(not(loom))]
mod binding;
