//! sabpool-core: region layout, validation, the pool, the channel and the table. No Node-API types;
//! everything here is tested with `cargo test` (and `--cfg loom` models).
//!
//! Modules: `layout` (byte offsets and header validation), `words` (the packed words' bits),
//! `mem` (atomic word access to a region), `sync` (std or loom atomics), `pool`, `channel`,
//! `table` (raw words next to a pool), `error`, and, outside loom builds, `futex` (cross-process waits) and `shm` (file-backed
//! regions: creating, naming, opening, the stale-file rule, which processes are alive).

#![deny(unsafe_code)]

pub mod channel;
pub mod error;
// Unsafe: the futex system call.
#[cfg(not(loom))]
#[allow(unsafe_code)]
pub mod futex;
pub mod layout;
// Unsafe: a pointer to shared memory as atomic words, bounds- and alignment-checked.
#[allow(unsafe_code)]
pub mod mem;
pub mod pool;
#[cfg(not(loom))]
pub mod shm;
pub mod sync;
pub mod table;
pub mod words;

pub use channel::{Channel, ChannelStats, Received, RecvStep, SendStep, Sent};
pub use error::{Error, Result};
pub use mem::{Memory, OwnedMemory};
pub use pool::{DeadReclaim, Lease, Participant, Pool, PoolStats, ProcessId, Wake};
pub use table::Table;
pub use words::{FreeHead, RingCell, SlotState, SlotWord};
