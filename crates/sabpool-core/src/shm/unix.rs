//! File-backed regions on Unix: files opened without following links, created with an exact
//! mode under a temporary name and published with `link(2)`, mapped with memmap2; and which
//! processes are alive, from `kill(pid, 0)` and `/proc`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::MmapRaw;

use super::{MappedMemory, OpenOptions as RegionOpenOptions, ShmError};
use crate::error::{Error, Result};
use crate::pool::ProcessId;

fn io_error(what: &str, path: &Path, e: io::Error) -> ShmError {
  let message = format!("{what} {}: {e}", path.display());
  match e.kind() {
    io::ErrorKind::NotFound => ShmError::NotFound(message),
    io::ErrorKind::AlreadyExists => ShmError::Exists(message),
    io::ErrorKind::PermissionDenied => ShmError::Access(message),
    _ => ShmError::Io(message),
  }
}

/// A mapped region file. The mapping lives as long as this value; the file stays open so that
/// `unlink` can tell whether the name still refers to it.
pub struct RegionFile {
  map: MmapRaw,
  file: File,
  path: PathBuf,
}

impl RegionFile {
  /// Maps an existing file. Refuses symbolic links, non-regular files, files too short to
  /// hold any region header and files owned by another user; the caller validates the header.
  pub fn open(path: &Path) -> std::result::Result<Arc<RegionFile>, ShmError> {
    Self::open_with(path, RegionOpenOptions::default())
  }

  /// As [`RegionFile::open`], with `options`.
  pub fn open_with(
    path: &Path,
    options: RegionOpenOptions,
  ) -> std::result::Result<Arc<RegionFile>, ShmError> {
    let file = OpenOptions::new()
      .read(true)
      .write(true)
      .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
      .open(path)
      .map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => ShmError::Region(Error::BadHandle("the name is a symbolic link")),
        Some(libc::EISDIR) => ShmError::Region(Error::BadHandle("not a regular file")),
        _ => io_error("cannot open", path, e),
      })?;
    if !options.allow_foreign_owner {
      // The opened file itself (fstat), not whatever the name points to by now.
      let owner = file
        .metadata()
        .map_err(|e| io_error("cannot stat", path, e))?
        .uid();
      // SAFETY: geteuid has no preconditions and cannot fail.
      let me = unsafe { libc::geteuid() };
      if owner != me {
        return Err(ShmError::Access(format!(
          "{} is owned by uid {owner}, not by this user (uid {me}): its owner could read \
           every payload and truncate it under the mapping; pass allowForeignOwner: true to \
           open it anyway",
          path.display()
        )));
      }
    }
    Self::map(file, path)
  }

  fn map(file: File, path: &Path) -> std::result::Result<Arc<RegionFile>, ShmError> {
    let meta = file
      .metadata()
      .map_err(|e| io_error("cannot stat", path, e))?;
    if !meta.file_type().is_file() {
      return Err(ShmError::Region(Error::BadHandle("not a regular file")));
    }
    if meta.len() < crate::layout::LINE as u64 {
      return Err(ShmError::Region(Error::BadHandle(
        "file is shorter than any region header",
      )));
    }
    if usize::try_from(meta.len()).is_err() {
      return Err(ShmError::Region(Error::BadHandle(
        "file too large for this platform",
      )));
    }
    let map = MmapRaw::map_raw(&file).map_err(|e| io_error("cannot map", path, e))?;
    Ok(Arc::new(RegionFile {
      map,
      file,
      path: path.to_path_buf(),
    }))
  }

  /// Creates a zero-filled file of `len` bytes under a temporary name in `dir`, reserves its
  /// space (so that touching it later can never fail with SIGBUS on a full filesystem), lets
  /// `init` write the region into it, then publishes it as `file_name`. Fails with
  /// [`ShmError::Exists`] if the name is taken, [`ShmError::NoSpace`] if the space cannot be
  /// reserved; the temporary file is removed in every case.
  pub fn create_exclusive<T>(
    dir: &Path,
    file_name: &str,
    len: usize,
    mode: u32,
    init: impl FnOnce(MappedMemory) -> Result<T>,
  ) -> std::result::Result<(Arc<RegionFile>, T), ShmError> {
    let path = dir.join(file_name);
    let temp = dir.join(format!(
      ".{file_name}.{}.{}.tmp",
      std::process::id(),
      temp_suffix()
    ));
    let result = (|| {
      let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&temp)
        .map_err(|e| io_error("cannot create", &temp, e))?;
      // The umask may have removed bits from `mode`; the caller's choice is exact.
      file
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| io_error("cannot set permissions of", &temp, e))?;
      file
        .set_len(len as u64)
        .map_err(|e| io_error("cannot size", &temp, e))?;
      reserve(&file, len, dir)?;
      let region = Self::map(file, &temp)?;
      let value = init(MappedMemory::new(region.clone())?)?;
      std::fs::hard_link(&temp, &path).map_err(|e| io_error("cannot publish", &path, e))?;
      Ok((
        Arc::new(RegionFile {
          // Re-home the mapping under its public path (same file, same mapping).
          path: path.clone(),
          ..Arc::try_unwrap(region).map_err(|_| {
            ShmError::Io("internal: region still borrowed after initialisation".into())
          })?
        }),
        value,
      ))
    })();
    let _ = std::fs::remove_file(&temp);
    result
  }

  pub fn path(&self) -> &Path {
    &self.path
  }

  pub fn len(&self) -> usize {
    self.map.len()
  }

  pub fn is_empty(&self) -> bool {
    self.map.len() == 0
  }

  /// Start of the mapping (page-aligned). Valid for `len()` bytes while `self` lives.
  pub fn as_ptr(&self) -> *mut u8 {
    self.map.as_mut_ptr()
  }

  /// Removes the file's name if it still names this file (not one created since under the same
  /// name). Returns whether it removed it. Processes that have it mapped keep their mapping; the
  /// memory is freed when the last one unmaps.
  pub fn unlink(&self) -> std::result::Result<bool, ShmError> {
    Ok(self.unlink_if(|| Ok(true))? == Some(true))
  }

  /// Removes the file's name if it still names this file and `condition` (judged while the name
  /// cannot be removed by anyone else) holds. Returns `None` when the name no longer names this
  /// file, else whether the condition held (and the name was removed).
  ///
  /// Every removal of a region's name happens under an exclusive `flock` of the file, with the
  /// name checked to still be this file under the lock: without it, two processes could both
  /// check the name, then one remove it and a third publish a new region there, and the second
  /// remove the new region's name.
  pub fn unlink_if(
    &self,
    condition: impl FnOnce() -> std::result::Result<bool, ShmError>,
  ) -> std::result::Result<Option<bool>, ShmError> {
    let _lock = FileLock::exclusive(&self.file, &self.path)?;
    let mine = self
      .file
      .metadata()
      .map_err(|e| io_error("cannot stat", &self.path, e))?;
    let named = match std::fs::symlink_metadata(&self.path) {
      Ok(m) => m,
      Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
      Err(e) => return Err(io_error("cannot stat", &self.path, e)),
    };
    if named.dev() != mine.dev() || named.ino() != mine.ino() {
      return Ok(None);
    }
    if !condition()? {
      return Ok(Some(false));
    }
    match std::fs::remove_file(&self.path) {
      Ok(()) => Ok(Some(true)),
      Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
      Err(e) => Err(io_error("cannot remove", &self.path, e)),
    }
  }
}

/// An exclusive `flock` on a file, released when dropped (or when the process dies).
struct FileLock<'a>(&'a File);

impl<'a> FileLock<'a> {
  fn exclusive(file: &'a File, path: &Path) -> std::result::Result<Self, ShmError> {
    loop {
      // SAFETY: flock on a file descriptor we own; no memory is passed.
      if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
        return Ok(FileLock(file));
      }
      let e = io::Error::last_os_error();
      if e.kind() != io::ErrorKind::Interrupted {
        return Err(io_error("cannot lock", path, e));
      }
    }
  }
}

impl Drop for FileLock<'_> {
  fn drop(&mut self) {
    // SAFETY: as in `exclusive`.
    unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
  }
}

/// Reserves the blocks of a new region file, so that touching any page of it later cannot fail
/// (SIGBUS) because the filesystem is full; a filesystem without room fails here instead.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn reserve(file: &File, len: usize, dir: &Path) -> std::result::Result<(), ShmError> {
  let Ok(size) = libc::off_t::try_from(len) else {
    return Err(ShmError::Io(format!(
      "{len} bytes is too large a file here"
    )));
  };
  loop {
    // SAFETY: posix_fallocate on a file descriptor we own; it returns an error number.
    let status = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, size) };
    match status {
      0 => return Ok(()),
      libc::EINTR => continue,
      libc::ENOSPC | libc::EFBIG | libc::EDQUOT => {
        return Err(ShmError::NoSpace(format!(
          "not enough space in {}: the region needs {len} bytes, {} are available{}",
          dir.display(),
          available_bytes(file).map_or("an unknown number".to_string(), |n| n.to_string()),
          if dir.starts_with("/dev/shm") {
            " (a container's /dev/shm is often small: Docker's default is 64 MiB, see --shm-size)"
          } else {
            ""
          }
        )))
      }
      // The filesystem cannot reserve space (no fallocate): nothing better to do than go on.
      libc::EOPNOTSUPP | libc::EINVAL => return Ok(()),
      other => {
        return Err(ShmError::Io(format!(
          "cannot reserve {len} bytes in {}: {}",
          dir.display(),
          io::Error::from_raw_os_error(other)
        )))
      }
    }
  }
}

/// Platforms without `posix_fallocate` (macOS): the space is not reserved ahead.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn reserve(_file: &File, _len: usize, _dir: &Path) -> std::result::Result<(), ShmError> {
  Ok(())
}

/// Free bytes of the filesystem holding `file`, for error messages.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn available_bytes(file: &File) -> Option<u64> {
  let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
  // SAFETY: fstatvfs fills the struct on success; we read it only then.
  if unsafe { libc::fstatvfs(file.as_raw_fd(), stats.as_mut_ptr()) } != 0 {
    return None;
  }
  // SAFETY: initialised by the successful call above.
  let stats = unsafe { stats.assume_init() };
  // The field types differ between platforms (u64 on Linux x86_64, narrower elsewhere).
  #[allow(clippy::unnecessary_cast)]
  Some((stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64))
}

fn temp_suffix() -> u64 {
  use std::hash::{BuildHasher, Hasher};
  let mut h = std::collections::hash_map::RandomState::new().build_hasher();
  h.write_u128(
    std::time::SystemTime::now()
      .duration_since(std::time::UNIX_EPOCH)
      .map_or(0, |d| d.as_nanos()),
  );
  h.finish()
}

// ---- processes ------------------------------------------------------------------------------

/// Start time of process `pid` (clock ticks since boot, from `/proc/<pid>/stat`), or 0 when it
/// cannot be read. Together with the pid it names one process even after pids are reused.
pub fn process_start_time(pid: u32) -> u64 {
  proc_stat(pid).map_or(0, |(_, start)| start)
}

/// State letter and start time from `/proc/<pid>/stat`.
fn proc_stat(pid: u32) -> Option<(u8, u64)> {
  let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
  // The command name (field 2) may contain spaces and parentheses; fields after it follow the
  // last ')'. There: field 3 is the state, field 22 the start time.
  let rest = &text[text.rfind(')')? + 1..];
  let mut fields = rest.split_ascii_whitespace();
  let state = fields.next()?.bytes().next()?;
  let start = fields.nth(18)?.parse().ok()?;
  Some((state, start))
}

/// Identity of this process's pid namespace (the inode of `/proc/self/ns/pid`), 0 if unknown.
pub fn pid_namespace() -> u64 {
  std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino())
}

/// This process, as recorded in the participant entries it takes.
pub fn this_process() -> ProcessId {
  static THIS: std::sync::OnceLock<ProcessId> = std::sync::OnceLock::new();
  *THIS.get_or_init(|| {
    let pid = std::process::id();
    ProcessId {
      pid,
      start: process_start_time(pid),
      namespace: pid_namespace(),
    }
  })
}

/// Whether `process` may still be running. Errs on the side of "alive", so only provably dead
/// processes lose their leases: a pid that cannot be a process id (0, or beyond `i32`), that
/// cannot be checked, or that belongs to another pid namespace (a container sharing the region
/// directory) is alive. A zombie (killed, not yet reaped) is dead; so is a live process whose
/// start time differs (the pid was reused).
pub fn process_alive(process: &ProcessId) -> bool {
  let ProcessId {
    pid,
    start,
    namespace,
  } = *process;
  if namespace != this_process().namespace {
    return true;
  }
  let Ok(raw) = i32::try_from(pid) else {
    return true;
  };
  if raw <= 0 {
    return true;
  }
  if raw as u32 == std::process::id() {
    return true;
  }
  // SAFETY: signal 0 performs only the existence and permission checks; nothing is delivered.
  let exists = unsafe { libc::kill(raw, 0) } == 0
    || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH);
  if !exists {
    return false;
  }
  match proc_stat(pid) {
    Some((b'Z' | b'X', _)) => false,
    Some((_, now)) if start != 0 && now != start => false,
    _ => true,
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn this_process_is_alive_and_its_start_time_matches() {
    let me = this_process();
    assert_eq!(me.pid, std::process::id());
    assert_ne!(me.start, 0);
    assert_ne!(me.namespace, 0);
    assert!(process_alive(&me));
    let here = |pid, start| ProcessId {
      pid,
      start,
      namespace: me.namespace,
    };
    assert!(process_alive(&here(0, 0)));
    assert!(process_alive(&here(u32::MAX, 0)));
  }

  #[test]
  fn an_exited_process_is_dead_and_a_reused_pid_is_told_apart() {
    let mut child = std::process::Command::new("sleep")
      .arg("30")
      .spawn()
      .unwrap();
    let id = ProcessId {
      pid: child.id(),
      start: process_start_time(child.id()),
      namespace: pid_namespace(),
    };
    assert!(process_alive(&id));
    // Same pid, other start time: another process.
    assert!(!process_alive(&ProcessId {
      start: id.start + 1,
      ..id
    }));
    child.kill().unwrap();
    // Killed but not yet reaped: a zombie, which counts as dead.
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(!process_alive(&id));
    child.wait().unwrap();
    assert!(!process_alive(&id));
    // A pid of another namespace is never judged dead from here.
    assert!(process_alive(&ProcessId {
      namespace: id.namespace + 1,
      ..id
    }));
  }
}
