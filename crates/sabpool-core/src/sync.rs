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

/// Fault injection for the loom models: a thread can be made to stop for ever, as if its process
/// were killed, at a chosen step of a multi-step update of shared memory. Every such step calls
/// [`crash_point`] after its write; outside loom builds it does nothing and compiles away.
#[cfg(loom)]
pub mod crash {
  use std::cell::Cell;

  loom::thread_local! {
    static BUDGET: Cell<Option<u32>> = Cell::new(None);
  }

  /// The calling thread stops at its `steps`-th crash point from now (0: at the next one).
  pub fn arm(steps: u32) {
    BUDGET.with(|b| b.set(Some(steps)));
  }

  /// Whether the calling thread has stopped.
  pub fn crashed() -> bool {
    BUDGET.with(|b| b.get() == Some(0))
  }

  /// True when the calling thread must stop here (and at every later point).
  pub fn point() -> bool {
    BUDGET.with(|b| match b.get() {
      None => false,
      Some(0) => true,
      Some(n) => {
        b.set(Some(n - 1));
        false
      }
    })
  }
}

/// A step boundary of a multi-step update (see [`crash`]). Under loom, a thread armed to crash
/// gets [`Error::Contended`](super::error::Error::Contended) here and, since every caller
/// propagates it, writes nothing more.
#[inline(always)]
pub fn crash_point() -> super::error::Result<()> {
  #[cfg(loom)]
  if crash::point() {
    return Err(super::error::Error::Contended);
  }
  Ok(())
}
