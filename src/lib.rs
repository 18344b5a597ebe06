//! sabpool: a preallocated shared-memory buffer pool and lock-free handoff channels for Node.js
//! worker threads. The plain-Rust core is the `sabpool-core` crate (crates/sabpool-core); this
//! crate is the thin Node-API layer over it: it converts JS values, calls the core, and maps core
//! errors to JS errors with stable codes.
//!
//! Modules, each depending only on those listed before it:
//! - `region`: the memory of an attached region and how wake-ups are delivered on it.
//! - `memory` (unsafe): adopting a SharedArrayBuffer view's memory; a mapped file as an external
//!   (Shared)ArrayBuffer.
//! - `watch`: the watcher thread that serves async waits on a file-backed region.
//! - `registry`: this thread's table of attachments.
//! - `errors`: native errors as JS sees them (the code is the error's status string), and
//!   lookups of attachments that fail with them.
//! - `fastcall` (unsafe): the hot operations as hand-written Node-API callbacks.
//! - `attach`: create, attach, open, close, unlink; reclaiming slots of participants gone.
//! - `waits`: waiter counts, futex waits and watchers of file-backed regions.
//! - `stats`: layout facts, counters and the `protocol()` table.
//! - `codecache`: the JS wrapper's lib/ files and their V8 code caches, once per process.
//! - `threads`: worker threads their parent let go of while they may still run (a terminated
//!   Deno worker parked in a blocking wait).
#![deny(unsafe_code)]

// Loom builds model the core alone (it has no file-backed regions under loom). A test build
// (`cargo clippy --all-targets`) leaves it out too: napi registers nothing there, and the
// binding's tests are the JS suite.
#[cfg(not(any(loom, test)))]
mod binding {
  pub mod attach;
  pub mod codecache;
  pub mod errors;
  #[allow(unsafe_code)]
  pub mod fastcall;
  #[allow(unsafe_code)]
  pub mod memory;
  pub mod region;
  pub mod registry;
  pub mod stats;
  pub mod threads;
  pub mod waits;
  pub mod watch;
}
