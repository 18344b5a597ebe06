//! Regions backed by a memory-mapped file, so processes can share a pool, channel or table.
//!
//! A region file is written in full under a temporary name and then published with `link(2)`,
//! which fails if the name exists: other processes never see a half-initialised region, and two
//! creators of one name cannot both win. Opening maps the whole file and leaves validation to
//! `Pool::attach`/`Channel::attach`/`Table::attach`, which refuse anything whose header does not describe a region
//! that fits in the file. Files are created with owner-only permissions unless asked otherwise.
//!
//! A file another process shrinks while mapped makes accesses past its new end raise SIGBUS; only
//! processes allowed to write the file (by default: the same user) can do that.

use std::path::Path;
use std::sync::Arc;

use super::channel::Channel;
use super::error::{Error, Result};
use super::layout::{ChannelLayout, PoolLayout, TableLayout};
use super::mem::Memory;
use super::pool::{Participant, Pool, ProcessId};
use super::table::Table;

// The one unsafe step of file-backed regions: a mapping as `SharedMemory`.
#[allow(unsafe_code)]
mod mapped;
pub use mapped::MappedMemory;

// Unsafe only for `kill(pid, 0)`.
#[cfg(unix)]
#[allow(unsafe_code)]
mod unix;
#[cfg(unix)]
pub use unix::{pid_namespace, process_alive, process_start_time, this_process, RegionFile};

#[cfg(not(unix))]
mod unsupported;
#[cfg(not(unix))]
pub use unsupported::{pid_namespace, process_alive, process_start_time, this_process, RegionFile};

/// Longest region name accepted (file names stay well under the usual 255-byte limit).
pub const MAX_NAME_LEN: usize = 200;
/// Permissions of a new region file unless the caller asks for others: owner read and write.
pub const DEFAULT_MODE: u32 = 0o600;

/// Why a file-backed region could not be created, opened or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShmError {
  /// The name is not a plain file name (empty, too long, a path, hidden, odd characters).
  BadName(String),
  /// The permission mode is out of range or does not let the owner read and write.
  BadMode(String),
  /// Creating: the name is taken by a region still in use, or by a file that is not a region
  /// of this kind.
  Exists(String),
  /// Opening: no region of that name.
  NotFound(String),
  /// The operating system refused access (permissions), or the region file belongs to another
  /// user (see [`OpenOptions::allow_foreign_owner`]).
  Access(String),
  /// The region's directory has too little free space for it: the message says how many bytes
  /// were needed, where, and how many were available.
  NoSpace(String),
  /// Any other operating-system error.
  Io(String),
  /// The file is not a valid region (validation error of the core).
  Region(Error),
  /// File-backed regions are not available on this platform.
  Unsupported(String),
}

impl ShmError {
  pub fn code(&self) -> &'static str {
    match self {
      ShmError::BadName(_) => "ERR_SABPOOL_BAD_NAME",
      ShmError::BadMode(_) => "ERR_OUT_OF_RANGE",
      ShmError::Exists(_) => "ERR_SABPOOL_EXISTS",
      ShmError::NotFound(_) => "ERR_SABPOOL_NOT_FOUND",
      ShmError::Access(_) => "ERR_SABPOOL_ACCESS",
      ShmError::NoSpace(_) => "ERR_SABPOOL_NO_SPACE",
      ShmError::Io(_) => "ERR_SABPOOL_IO",
      ShmError::Unsupported(_) => "ERR_SABPOOL_UNSUPPORTED",
      ShmError::Region(e) => e.code(),
    }
  }
}

impl std::fmt::Display for ShmError {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    match self {
      ShmError::BadName(m)
      | ShmError::BadMode(m)
      | ShmError::Exists(m)
      | ShmError::NotFound(m)
      | ShmError::Access(m)
      | ShmError::NoSpace(m)
      | ShmError::Io(m)
      | ShmError::Unsupported(m) => f.write_str(m),
      ShmError::Region(e) => write!(f, "{e}"),
    }
  }
}

impl From<Error> for ShmError {
  fn from(e: Error) -> Self {
    ShmError::Region(e)
  }
}

/// How [`RegionFile::open_with`] treats the file it opens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenOptions {
  /// Open a region file that another user owns. Off by default: the owner of a file can read
  /// every payload written into it and can shrink it under the mapping (which kills the mapping
  /// processes with SIGBUS on their next access past the new end).
  pub allow_foreign_owner: bool,
}

/// Checks that `name` can only ever name a file directly inside the region directory: ASCII
/// letters, digits, `.`, `_` and `-`, not starting with `.` (no `..`, no hidden or temporary files).
pub fn validate_name(name: &str) -> std::result::Result<(), ShmError> {
  if name.len() <= MAX_NAME_LEN && is_plain_file_name(name) {
    Ok(())
  } else {
    Err(ShmError::BadName(format!(
      "region names are 1 to {MAX_NAME_LEN} characters of A-Z a-z 0-9 . _ - and do not start with '.', got {:?}",
      name.chars().take(MAX_NAME_LEN + 1).collect::<String>()
    )))
  }
}

/// Non-empty, at most 255 bytes, only `A-Z a-z 0-9 . _ -`, not starting with `.`.
pub(crate) fn is_plain_file_name(name: &str) -> bool {
  !name.is_empty()
    && name.len() <= 255
    && !name.starts_with('.')
    && name
      .bytes()
      .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Creates the region file `file_name` in `dir`, replacing a stale one: if the name is taken and
/// `is_stale` says the existing region is left over (e.g. every process that used it is dead), the
/// old file is removed and creation retried. A live region, a file that is not a valid region of
/// this kind, or one that another user owns, is never replaced.
///
/// `init` writes the region into the new file before anyone can see it, and returns what the
/// caller needs of it: a creator that joins its pool there is a live participant of the region
/// from the instant it is published, so a concurrent creator that finds it never judges it stale.
pub fn create<T>(
  dir: &Path,
  file_name: &str,
  len: usize,
  mode: u32,
  init: impl Fn(MappedMemory) -> Result<T>,
  is_stale: impl Fn(MappedMemory) -> Result<bool>,
) -> std::result::Result<(Arc<RegionFile>, T), ShmError> {
  // Callers validate the user's name (`validate_name`); the file name built from it may be
  // longer, but must still be a plain name inside `dir`.
  if !is_plain_file_name(file_name) {
    return Err(ShmError::BadName(format!(
      "{file_name:?} is not a plain file name"
    )));
  }
  if mode > 0o777 || mode & 0o600 != 0o600 {
    return Err(ShmError::BadMode(format!(
      "mode must be a permission mode from 0o600 to 0o777 that lets the owner read and write, got {mode:#o}"
    )));
  }
  let path = dir.join(file_name);
  for _ in 0..3 {
    match RegionFile::create_exclusive(dir, file_name, len, mode, &init) {
      Err(ShmError::Exists(_)) => {}
      other => return other,
    }
    let existing = match RegionFile::open(&path) {
      Ok(existing) => existing,
      Err(ShmError::NotFound(_)) => continue, // removed meanwhile: try again
      Err(e @ ShmError::Access(_)) => return Err(e),
      Err(e) => {
        return Err(ShmError::Exists(format!(
          "{} exists and is not a sabpool region ({e}); remove it or pick another name",
          path.display()
        )))
      }
    };
    // Judged and removed under the file's lock, so two creators that both find it stale cannot
    // remove a fresh file one of them (or a third) has published meanwhile.
    match existing.unlink_if(|| Ok(is_stale(MappedMemory::new(existing.clone())?)?)) {
      Ok(Some(false)) => {
        return Err(ShmError::Exists(format!(
          "{} is in use by a live process; open it, or unlink it first",
          path.display()
        )))
      }
      Ok(_) => {} // removed, or the name moved on meanwhile: try again
      Err(ShmError::Region(e)) => {
        return Err(ShmError::Exists(format!(
        "{} exists and is not a sabpool region of this kind ({e}); remove it or pick another name",
        path.display()
      )))
      }
      Err(e) => return Err(e),
    }
  }
  Err(ShmError::Exists(format!(
    "{} keeps being recreated by another process",
    path.display()
  )))
}

// ---- sabpool's region files: naming and replacement policy --------------------------------------

/// File name of the pool region called `name` in its directory: `sabpool.<name>.pool`.
pub fn pool_file_name(name: &str) -> std::result::Result<String, ShmError> {
  validate_name(name)?;
  Ok(format!("sabpool.{name}.pool"))
}

/// File name of the channel region called `name` in its directory: `sabpool.<name>.channel`.
pub fn channel_file_name(name: &str) -> std::result::Result<String, ShmError> {
  validate_name(name)?;
  Ok(format!("sabpool.{name}.channel"))
}

/// File name of the table region called `name` in its directory: `sabpool.<name>.table`.
pub fn table_file_name(name: &str) -> std::result::Result<String, ShmError> {
  validate_name(name)?;
  Ok(format!("sabpool.{name}.table"))
}

/// The stale-file rule for pools: a pool region is left over once no participant of it belongs to
/// a live process. Errors when `memory` is not a valid pool region (never replaced then).
pub fn pool_is_stale<M: Memory>(memory: M) -> Result<bool> {
  Ok(Pool::attach(memory)?.live_participants(process_alive)? == 0)
}

/// The stale-file rule for channels: a channel region is left over when it carries slots of
/// another pool than `pool_uid` (an earlier pool of the same name). Errors when `memory` is not a
/// valid channel region (never replaced then).
pub fn channel_is_stale<M: Memory>(memory: M, pool_uid: u32) -> Result<bool> {
  Ok(Channel::attach(memory)?.pool_uid() != pool_uid)
}

/// The stale-file rule for tables, the channels' one: a table region is left over when it belongs
/// to another pool than `pool_uid` (an earlier pool of the same name). Errors when `memory` is not
/// a valid table region (never replaced then).
pub fn table_is_stale<M: Memory>(memory: M, pool_uid: u32) -> Result<bool> {
  Ok(Table::attach(memory)?.pool_uid() != pool_uid)
}

/// Creates the pool region file for `name` in `dir` (see [`pool_file_name`]), replacing a stale
/// one ([`pool_is_stale`]), and joins it as participant `process` with `token`. The creator joins
/// in the new file before it is published: the published file always has a live participant, so
/// a concurrent creator of the same name never judges it stale and removes it (it gets
/// [`ShmError::Exists`]). The caller attaches to the returned file as the returned participant.
pub fn create_pool_file(
  dir: &Path,
  name: &str,
  layout: PoolLayout,
  uid: u32,
  mode: u32,
  token: u64,
  process: ProcessId,
) -> std::result::Result<(Arc<RegionFile>, Participant), ShmError> {
  create(
    dir,
    &pool_file_name(name)?,
    layout.total_len,
    mode,
    |memory| {
      Pool::create(
        memory,
        layout.slot_size,
        layout.slot_count,
        layout.max_participants,
        uid,
      )?
      .join_process(token, process)
    },
    pool_is_stale,
  )
}

/// Creates the channel region file for `name` in `dir` (see [`channel_file_name`]) carrying slots
/// of the pool `pool_uid`, replacing a stale one ([`channel_is_stale`]).
pub fn create_channel_file(
  dir: &Path,
  name: &str,
  layout: ChannelLayout,
  uid: u32,
  pool_uid: u32,
  mode: u32,
) -> std::result::Result<Arc<RegionFile>, ShmError> {
  create(
    dir,
    &channel_file_name(name)?,
    layout.total_len,
    mode,
    |memory| Channel::create(memory, layout.capacity, uid, pool_uid).map(|_| ()),
    |memory| channel_is_stale(memory, pool_uid),
  )
  .map(|(file, ())| file)
}

/// Creates the table region file for `name` in `dir` (see [`table_file_name`]) belonging to the
/// pool `pool_uid`, its words zeroed, replacing a stale one ([`table_is_stale`]); a valid table of
/// the same pool is in use ([`ShmError::Exists`]).
pub fn create_table_file(
  dir: &Path,
  name: &str,
  layout: TableLayout,
  uid: u32,
  pool_uid: u32,
  mode: u32,
) -> std::result::Result<Arc<RegionFile>, ShmError> {
  create(
    dir,
    &table_file_name(name)?,
    layout.total_len,
    mode,
    |memory| Table::create(memory, layout.words, uid, pool_uid).map(|_| ()),
    |memory| table_is_stale(memory, pool_uid),
  )
  .map(|(file, ())| file)
}

/// Maps the existing pool region file for `name` in `dir`; the caller validates it by attaching.
/// A file another user owns is refused unless `options` allow it.
pub fn open_pool_file(
  dir: &Path,
  name: &str,
  options: OpenOptions,
) -> std::result::Result<Arc<RegionFile>, ShmError> {
  RegionFile::open_with(&dir.join(pool_file_name(name)?), options)
}

/// Maps the existing channel region file for `name` in `dir`; the caller validates it by
/// attaching ([`Channel::attach_to_pool`]). A file another user owns is refused unless `options`
/// allow it.
pub fn open_channel_file(
  dir: &Path,
  name: &str,
  options: OpenOptions,
) -> std::result::Result<Arc<RegionFile>, ShmError> {
  RegionFile::open_with(&dir.join(channel_file_name(name)?), options)
}

/// Maps the existing table region file for `name` in `dir`; the caller validates it by attaching
/// ([`Table::attach_to_pool`]). A file another user owns is refused unless `options` allow it.
pub fn open_table_file(
  dir: &Path,
  name: &str,
  options: OpenOptions,
) -> std::result::Result<Arc<RegionFile>, ShmError> {
  RegionFile::open_with(&dir.join(table_file_name(name)?), options)
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn names_that_could_leave_the_directory_are_refused() {
    for bad in [
      "",
      ".",
      "..",
      "../x",
      "a/b",
      ".hidden",
      "a b",
      "é",
      "a\0b",
      &"x".repeat(MAX_NAME_LEN + 1),
    ] {
      assert!(
        matches!(validate_name(bad), Err(ShmError::BadName(_))),
        "{bad:?}"
      );
    }
    for good in ["jobs", "a.b-c_d", "X9", &"x".repeat(MAX_NAME_LEN)] {
      assert!(validate_name(good).is_ok(), "{good:?}");
    }
  }

  #[test]
  fn region_file_names_carry_the_kind_and_refuse_bad_names() {
    assert_eq!(pool_file_name("jobs").unwrap(), "sabpool.jobs.pool");
    assert_eq!(channel_file_name("jobs").unwrap(), "sabpool.jobs.channel");
    assert_eq!(table_file_name("jobs").unwrap(), "sabpool.jobs.table");
    assert!(matches!(pool_file_name("../x"), Err(ShmError::BadName(_))));
    assert!(matches!(channel_file_name(""), Err(ShmError::BadName(_))));
    assert!(matches!(table_file_name("a/b"), Err(ShmError::BadName(_))));
  }
}
