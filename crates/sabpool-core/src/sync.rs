//! Atomics used by the core: `std`'s in normal builds, `loom`'s under `--cfg loom` so the same
//! algorithms can be model-checked.

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[cfg(not(loom))]
pub use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Called between retries of a contended or not-yet-published step.
#[inline]
pub fn spin_hint() {
  #[cfg(loom)]
  loom::thread::yield_now();
  #[cfg(not(loom))]
  std::hint::spin_loop();
}
