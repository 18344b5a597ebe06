//! File-backed regions on Unix: files opened without following links, created with an exact
//! mode under a temporary name and published with `link(2)`, mapped with memmap2; and which
//! processes are alive, from `kill(pid, 0)` and `/proc`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::MmapRaw;

use super::{MappedMemory, ShmError};
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
  /// Maps an existing file. Refuses symbolic links, non-regular files and files too short to
  /// hold any region header; the caller validates the header.
  pub fn open(path: &Path) -> std::result::Result<Arc<RegionFile>, ShmError> {
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

  /// Creates a zero-filled file of `len` bytes under a temporary name in `dir`, lets `init` write
  /// the region into it, then publishes it as `file_name`. Fails with [`ShmError::Exists`] if the
  /// name is taken; the temporary file is removed in every case.
  pub fn create_exclusive(
    dir: &Path,
    file_name: &str,
    len: usize,
    mode: u32,
    init: impl FnOnce(MappedMemory) -> Result<()>,
  ) -> std::result::Result<Arc<RegionFile>, ShmError> {
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
      let region = Self::map(file, &temp)?;
      init(MappedMemory::new(region.clone())?)?;
      std::fs::hard_link(&temp, &path).map_err(|e| io_error("cannot publish", &path, e))?;
      Ok(Arc::new(RegionFile {
        // Re-home the mapping under its public path (same file, same mapping).
        path: path.clone(),
        ..Arc::try_unwrap(region).map_err(|_| {
          ShmError::Io("internal: region still borrowed after initialisation".into())
        })?
      }))
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
    let mine = self
      .file
      .metadata()
      .map_err(|e| io_error("cannot stat", &self.path, e))?;
    let named = match std::fs::symlink_metadata(&self.path) {
      Ok(m) => m,
      Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
      Err(e) => return Err(io_error("cannot stat", &self.path, e)),
    };
    if named.dev() != mine.dev() || named.ino() != mine.ino() {
      return Ok(false);
    }
    match std::fs::remove_file(&self.path) {
      Ok(()) => Ok(true),
      Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
      Err(e) => Err(io_error("cannot remove", &self.path, e)),
    }
  }
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
