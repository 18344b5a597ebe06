//! sabpool: a preallocated shared-memory buffer pool and lock-free handoff channels for Node.js
//! worker threads. `core` is plain Rust; `binding` exposes it to JS.

pub mod core;

// Left out of loom models and of the crate's own unit tests, which exercise the core alone.
#[cfg(not(any(loom, test)))]
mod binding;
