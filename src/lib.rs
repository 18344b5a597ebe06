//! sabpool: a preallocated shared-memory buffer pool and lock-free handoff channels for Node.js
//! worker threads. `core` is plain Rust; `binding` exposes it to JS.

pub mod core;

#[cfg(not(loom))]
mod binding;
