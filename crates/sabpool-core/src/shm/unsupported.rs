//! Platforms without file-backed regions (no Unix file and process APIs): creating or opening a
//! region fails with [`ShmError::Unsupported`], so no [`RegionFile`] can ever exist, and no
//! process is ever judged dead.

use std::path::Path;
use std::sync::Arc;

use super::{MappedMemory, OpenOptions, ShmError};
use crate::error::Result;
use crate::pool::ProcessId;

fn unsupported() -> ShmError {
  ShmError::Unsupported(
    "pools and channels in files (SharedPool.create/open) need Linux or another Unix".into(),
  )
}

/// Uninhabited: no value of it can be made on this platform.
pub enum RegionFile {}

impl RegionFile {
  pub fn open(_path: &Path) -> std::result::Result<Arc<RegionFile>, ShmError> {
    Err(unsupported())
  }

  pub fn open_with(
    _path: &Path,
    _options: OpenOptions,
  ) -> std::result::Result<Arc<RegionFile>, ShmError> {
    Err(unsupported())
  }

  pub fn create_exclusive<T>(
    _dir: &Path,
    _file_name: &str,
    _len: usize,
    _mode: u32,
    _init: impl FnOnce(MappedMemory) -> Result<T>,
  ) -> std::result::Result<(Arc<RegionFile>, T), ShmError> {
    Err(unsupported())
  }

  pub fn path(&self) -> &Path {
    match *self {}
  }

  pub fn len(&self) -> usize {
    match *self {}
  }

  pub fn is_empty(&self) -> bool {
    match *self {}
  }

  pub fn as_ptr(&self) -> *mut u8 {
    match *self {}
  }

  pub fn unlink(&self) -> std::result::Result<bool, ShmError> {
    match *self {}
  }

  pub fn unlink_if(
    &self,
    _condition: impl FnOnce() -> std::result::Result<bool, ShmError>,
  ) -> std::result::Result<Option<bool>, ShmError> {
    match *self {}
  }
}

pub fn process_start_time(_pid: u32) -> u64 {
  0
}

pub fn pid_namespace() -> u64 {
  0
}

pub fn this_process() -> ProcessId {
  ProcessId::new(std::process::id(), 0)
}

/// Without a way to check, every process counts as alive (nothing is reclaimed from it).
pub fn process_alive(_process: &ProcessId) -> bool {
  true
}
