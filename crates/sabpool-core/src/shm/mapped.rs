//! A mapped region file as [`Memory`].

use std::sync::Arc;

use super::RegionFile;
use crate::error::Result;
use crate::mem::{Memory, SharedMemory};
use crate::sync::{AtomicU32, AtomicU64};

/// A mapped region file as [`Memory`]; keeps the mapping alive.
pub struct MappedMemory {
  // Declared first so it is dropped before the mapping it points into.
  view: SharedMemory,
  file: Arc<RegionFile>,
}

impl MappedMemory {
  pub fn new(file: Arc<RegionFile>) -> Result<Self> {
    // SAFETY: the mapping is valid for reads and writes of `len()` bytes until `file` is dropped,
    // and `self` holds `file` for as long as `view` lives (and drops `view` first). Other
    // processes write the same pages concurrently; the core only accesses them atomically, and
    // any bit pattern is a valid integer.
    let view = unsafe { SharedMemory::new(file.as_ptr(), file.len()) }?;
    Ok(MappedMemory { view, file })
  }

  pub fn file(&self) -> &Arc<RegionFile> {
    &self.file
  }
}

impl Clone for MappedMemory {
  fn clone(&self) -> Self {
    MappedMemory::new(self.file.clone()).expect("a mapping that was valid stays valid")
  }
}

impl Memory for MappedMemory {
  #[inline]
  fn len(&self) -> usize {
    self.view.len()
  }
  #[inline]
  fn u32_at(&self, offset: usize) -> Result<&AtomicU32> {
    self.view.u32_at(offset)
  }
  #[inline]
  fn u64_at(&self, offset: usize) -> Result<&AtomicU64> {
    self.view.u64_at(offset)
  }
}
