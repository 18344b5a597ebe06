//! Word access to a shared region. This module holds the core's `unsafe` memory access (the crate
//! denies `unsafe_code` elsewhere; only `futex`, `shm::mapped` and `shm::unix` are also allowed
//! it, for system calls and for wrapping a mapping): turning a pointer to memory that other
//! threads (and JS) share into atomic references, with every access bounds- and alignment-checked.
//!
//! Everything above this module reads and writes the region only through [`Memory`], so a corrupted
//! offset can produce an error but never an access outside the region.

use super::error::{Error, Result};
use super::sync::{AtomicU32, AtomicU64};

/// Atomic words of a region, addressed by byte offset.
pub trait Memory {
  /// Length of the region in bytes.
  fn len(&self) -> usize;

  fn is_empty(&self) -> bool {
    self.len() == 0
  }

  /// The 32-bit word at `offset`, or an error when it is outside the region or misaligned.
  fn u32_at(&self, offset: usize) -> Result<&AtomicU32>;

  /// The 64-bit word at `offset`, or an error when it is outside the region or misaligned.
  fn u64_at(&self, offset: usize) -> Result<&AtomicU64>;
}

/// A reference is another view of the same region (as two threads hold one SharedArrayBuffer):
/// several `Pool`/`Channel` values can share one memory without owning it.
impl<M: Memory + ?Sized> Memory for &M {
  #[inline]
  fn len(&self) -> usize {
    (**self).len()
  }
  #[inline]
  fn u32_at(&self, offset: usize) -> Result<&AtomicU32> {
    (**self).u32_at(offset)
  }
  #[inline]
  fn u64_at(&self, offset: usize) -> Result<&AtomicU64> {
    (**self).u64_at(offset)
  }
}

#[inline]
fn check(offset: usize, size: usize, len: usize) -> Result<()> {
  // `offset <= len - size` avoids the overflow `offset + size` could hit on corrupted input.
  if len < size || offset > len - size || !offset.is_multiple_of(size) {
    return Err(Error::Corrupt("word offset outside the region"));
  }
  Ok(())
}

/// A region of memory owned elsewhere (a SharedArrayBuffer's backing store, a mapped file).
#[cfg(not(loom))]
pub struct SharedMemory {
  base: std::ptr::NonNull<u8>,
  len: usize,
}

// SAFETY: the region is only ever accessed through atomics (see `u32_at`/`u64_at`), which are
// safe to use from any thread; the creator of a `SharedMemory` guarantees the memory outlives it.
#[cfg(not(loom))]
unsafe impl Send for SharedMemory {}
// SAFETY: as for `Send`: shared access is atomic-only.
#[cfg(not(loom))]
unsafe impl Sync for SharedMemory {}

#[cfg(not(loom))]
impl SharedMemory {
  /// Wraps `len` bytes at `base`.
  ///
  /// # Safety
  /// `base` must be valid for reads and writes of `len` bytes for as long as the returned value
  /// (or anything borrowed from it) lives, and must only ever be accessed atomically or by code
  /// that treats every bit pattern as valid (JS typed arrays do). The memory need not be
  /// initialised to anything: every bit pattern is a valid integer.
  pub unsafe fn new(base: *mut u8, len: usize) -> Result<Self> {
    let base =
      std::ptr::NonNull::new(base).ok_or(Error::BadHandle("region has no backing memory"))?;
    if !(base.as_ptr() as usize).is_multiple_of(8) {
      return Err(Error::BadHandle("region is not 8-byte aligned"));
    }
    Ok(SharedMemory { base, len })
  }

  pub fn base(&self) -> *mut u8 {
    self.base.as_ptr()
  }
}

#[cfg(not(loom))]
impl Memory for SharedMemory {
  #[inline]
  fn len(&self) -> usize {
    self.len
  }

  #[inline]
  fn u32_at(&self, offset: usize) -> Result<&AtomicU32> {
    check(offset, 4, self.len)?;
    // SAFETY: `check` keeps the word inside the region and 4-aligned (base is 8-aligned); the
    // region is valid for the lifetime of `self` (constructor contract); `AtomicU32` has the size
    // and alignment of `u32` and any bit pattern is valid, so foreign writes cannot make it invalid.
    Ok(unsafe { &*(self.base.as_ptr().add(offset) as *const AtomicU32) })
  }

  #[inline]
  fn u64_at(&self, offset: usize) -> Result<&AtomicU64> {
    check(offset, 8, self.len)?;
    // SAFETY: as in `u32_at`, with 8-byte size and alignment.
    Ok(unsafe { &*(self.base.as_ptr().add(offset) as *const AtomicU64) })
  }
}

/// A zeroed region owned by Rust: for tests, benchmarks and loom models.
#[cfg(not(loom))]
pub struct OwnedMemory {
  _words: Box<[AtomicU64]>,
  view: SharedMemory,
}

#[cfg(not(loom))]
impl OwnedMemory {
  pub fn new(len: usize) -> Self {
    let words: Box<[AtomicU64]> = (0..len.div_ceil(8)).map(|_| AtomicU64::new(0)).collect();
    let base = words.as_ptr() as *mut u8;
    // SAFETY: the boxed slice is 8-aligned, at least `len` bytes long, never moves (boxed), lives
    // as long as `view` (same struct, dropped together), and is only accessed atomically.
    let view = unsafe { SharedMemory::new(base, len) }.expect("a boxed slice is aligned");
    OwnedMemory {
      _words: words,
      view,
    }
  }

  pub fn base(&self) -> *mut u8 {
    self.view.base()
  }
}

#[cfg(not(loom))]
impl Memory for OwnedMemory {
  fn len(&self) -> usize {
    self.view.len()
  }
  fn u32_at(&self, offset: usize) -> Result<&AtomicU32> {
    self.view.u32_at(offset)
  }
  fn u64_at(&self, offset: usize) -> Result<&AtomicU64> {
    self.view.u64_at(offset)
  }
}

/// Under loom, a region is a set of loom atomics. The 32- and 64-bit words live in separate arrays
/// (no algorithm accesses one location at two widths); only the control area is modelled, not the
/// payload bytes, which the core never touches.
#[cfg(loom)]
pub struct OwnedMemory {
  len: usize,
  w32: Vec<AtomicU32>,
  w64: Vec<AtomicU64>,
}

#[cfg(loom)]
impl OwnedMemory {
  pub fn new(len: usize) -> Self {
    OwnedMemory {
      len,
      w32: (0..len / 4).map(|_| AtomicU32::new(0)).collect(),
      w64: (0..len / 8).map(|_| AtomicU64::new(0)).collect(),
    }
  }
}

#[cfg(loom)]
impl Memory for OwnedMemory {
  fn len(&self) -> usize {
    self.len
  }
  fn u32_at(&self, offset: usize) -> Result<&AtomicU32> {
    check(offset, 4, self.len)?;
    Ok(&self.w32[offset / 4])
  }
  fn u64_at(&self, offset: usize) -> Result<&AtomicU64> {
    check(offset, 8, self.len)?;
    Ok(&self.w64[offset / 8])
  }
}

#[cfg(all(test, not(loom)))]
mod tests {
  use super::*;

  #[test]
  fn rejects_out_of_bounds_and_misaligned_offsets() {
    let m = OwnedMemory::new(64);
    assert!(m.u32_at(60).is_ok());
    assert!(m.u32_at(64).is_err());
    assert!(m.u32_at(2).is_err());
    assert!(m.u64_at(56).is_ok());
    assert!(m.u64_at(60).is_err());
    assert!(m.u64_at(usize::MAX - 3).is_err());
    assert!(m.u32_at(usize::MAX).is_err());
  }

  #[test]
  fn rejects_null_and_misaligned_bases() {
    // SAFETY: the constructor fails before anything is dereferenced.
    assert!(unsafe { SharedMemory::new(std::ptr::null_mut(), 8) }.is_err());
    let m = OwnedMemory::new(16);
    // SAFETY: as above: misalignment is rejected before use.
    assert!(unsafe { SharedMemory::new(m.base().wrapping_add(4), 8) }.is_err());
  }
}
