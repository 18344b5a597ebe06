//! sabpool-core: region layout, validation, the pool and the channel. No Node-API types;
//! everything here is tested with `cargo test` (and `--cfg loom` models).

pub mod channel;
pub mod error;
#[cfg(not(loom))]
pub mod futex;
pub mod layout;
pub mod mem;
pub mod pool;
#[cfg(not(loom))]
pub mod shm;
pub mod sync;
pub mod words;

pub use channel::{Channel, ChannelStats, Received, Sent};
pub use error::{Error, Result};
pub use mem::{Memory, OwnedMemory};
pub use pool::{DeadReclaim, Lease, Participant, Pool, PoolStats, ProcessId, Wake};
pub use words::{FreeHead, SlotState, SlotWord};
