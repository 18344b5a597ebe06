//! The memory of an attached region, and how wake-ups the core asks for are delivered on it.

use sabpool_core::futex;
use sabpool_core::mem::{Memory, SharedMemory};
use sabpool_core::shm::MappedMemory;
use sabpool_core::sync::{AtomicU32, AtomicU64};
use sabpool_core::Wake;

/// The memory of an attached region: a SharedArrayBuffer of this process, whose waiters park in
/// JS (`Atomics.wait`), or a mapped file shared with other processes, whose waiters park on
/// futexes and are woken here, natively.
pub enum RegionMemory {
  Js(SharedMemory),
  File(MappedMemory),
}

impl RegionMemory {
  pub fn file(&self) -> Option<&MappedMemory> {
    match self {
      RegionMemory::File(m) => Some(m),
      RegionMemory::Js(_) => None,
    }
  }

  /// Delivers a wake-up the core asked for on the epoch word at `epoch`. Returns 1 when the JS
  /// caller must notify (`Atomics.notify`), 0 when nothing more is needed.
  pub fn deliver(&self, wake: Wake, epoch: usize) -> i32 {
    match self {
      RegionMemory::Js(_) => wake.0 as i32,
      RegionMemory::File(m) => {
        if wake.0 {
          if let Ok(word) = m.u32_at(epoch) {
            futex::wake_all(word);
          }
        }
        0
      }
    }
  }
}

impl Memory for RegionMemory {
  #[inline]
  fn len(&self) -> usize {
    match self {
      RegionMemory::Js(m) => m.len(),
      RegionMemory::File(m) => m.len(),
    }
  }
  #[inline]
  fn u32_at(&self, offset: usize) -> sabpool_core::Result<&AtomicU32> {
    match self {
      RegionMemory::Js(m) => m.u32_at(offset),
      RegionMemory::File(m) => m.u32_at(offset),
    }
  }
  #[inline]
  fn u64_at(&self, offset: usize) -> sabpool_core::Result<&AtomicU64> {
    match self {
      RegionMemory::Js(m) => m.u64_at(offset),
      RegionMemory::File(m) => m.u64_at(offset),
    }
  }
}
