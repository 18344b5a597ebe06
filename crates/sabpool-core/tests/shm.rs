//! File-backed regions: creating, publishing, opening, refusing files that are not regions,
//! replacing stale ones, unlinking, and reclaiming the participants of dead processes.
#![cfg(all(unix, not(loom)))]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sabpool_core::shm::{self, MappedMemory, RegionFile, ShmError};
use sabpool_core::{Channel, Error, Pool, ProcessId, Table};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
  fn new(tag: &str) -> TempDir {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("sabpool-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
  }
}

impl Drop for TempDir {
  fn drop(&mut self) {
    let _ = std::fs::remove_dir_all(&self.0);
  }
}

fn layout_len(slot_size: u32, slots: u32, participants: u32) -> usize {
  sabpool_core::layout::PoolLayout::new(slot_size, slots, participants)
    .unwrap()
    .total_len
}

/// Creates pool file `name` (64-byte slots × `slots`, 8 participants) with uid `uid`.
fn create_pool(dir: &Path, name: &str, slots: u32, uid: u32) -> Result<Arc<RegionFile>, ShmError> {
  shm::create(
    dir,
    name,
    layout_len(64, slots, 8),
    shm::DEFAULT_MODE,
    |m| Pool::create(m, 64, slots, 8, uid).map(|_| ()),
    shm::pool_is_stale::<MappedMemory>,
  )
  .map(|(file, ())| file)
}

fn open_pool(path: &Path) -> Result<Pool<MappedMemory>, ShmError> {
  let file = RegionFile::open(path)?;
  Ok(Pool::attach(MappedMemory::new(file)?)?)
}

/// A process of this namespace that has exited and been reaped.
fn dead_process() -> ProcessId {
  let mut child = std::process::Command::new("true").spawn().unwrap();
  let pid = child.id();
  let process = ProcessId {
    pid,
    start: shm::process_start_time(pid),
    namespace: shm::pid_namespace(),
  };
  child.wait().unwrap();
  process
}

#[test]
fn a_created_pool_is_published_complete_with_owner_only_permissions() {
  let dir = TempDir::new("create");
  let file = create_pool(&dir.0, "p.pool", 8, 7).unwrap();
  let path = dir.0.join("p.pool");
  assert_eq!(file.path(), path);
  let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
  assert_eq!(mode, 0o600);
  // Only the published name remains: the temporary file is gone.
  let names: Vec<_> = std::fs::read_dir(&dir.0)
    .unwrap()
    .map(|e| e.unwrap().file_name())
    .collect();
  assert_eq!(names, vec![std::ffi::OsString::from("p.pool")]);

  // Two mappings of one file are one pool: a slot taken through one is gone in the other.
  let a = Pool::attach(MappedMemory::new(file).unwrap()).unwrap();
  let b = open_pool(&path).unwrap();
  assert_eq!(b.uid(), 7);
  let me_a = a.join(1, std::process::id()).unwrap();
  let me_b = b.join(2, std::process::id()).unwrap();
  let mut taken = Vec::new();
  while let Some(lease) = a.try_acquire(me_a).unwrap() {
    taken.push(lease);
  }
  assert_eq!(taken.len(), 8);
  assert_eq!(b.try_acquire(me_b).unwrap(), None);
  let _ = a.release(me_a, taken.pop().unwrap()).unwrap();
  assert!(b.try_acquire(me_b).unwrap().is_some());
}

#[test]
fn an_explicit_mode_is_applied_exactly_and_bad_modes_are_refused() {
  let dir = TempDir::new("mode");
  let len = layout_len(64, 2, 4);
  let init = |m: MappedMemory| Pool::create(m, 64, 2, 4, 1).map(|_| ());
  shm::create(
    &dir.0,
    "g",
    len,
    0o640,
    init,
    shm::pool_is_stale::<MappedMemory>,
  )
  .unwrap();
  let mode = std::fs::metadata(dir.0.join("g"))
    .unwrap()
    .permissions()
    .mode()
    & 0o777;
  assert_eq!(mode, 0o640);
  for bad in [0o400, 0o200, 0o1777] {
    let err = shm::create(
      &dir.0,
      "h",
      len,
      bad,
      init,
      shm::pool_is_stale::<MappedMemory>,
    )
    .err()
    .unwrap();
    assert!(matches!(err, ShmError::BadMode(_)), "{bad:o}: {err:?}");
  }
  assert!(!dir.0.join("h").exists());
}

#[test]
fn creating_a_live_name_fails_and_a_stale_one_is_replaced() {
  let dir = TempDir::new("stale");
  let file = create_pool(&dir.0, "s", 4, 1).unwrap();
  let live = Pool::attach(MappedMemory::new(file.clone()).unwrap()).unwrap();
  let me = live.join(1, std::process::id()).unwrap();
  assert!(matches!(
    create_pool(&dir.0, "s", 4, 2),
    Err(ShmError::Exists(_))
  ));

  // The only participant now belongs to a process that is gone: the file is stale.
  let _ = live.leave(me, 1).unwrap();
  live.join_process(9, dead_process()).unwrap();
  let fresh = create_pool(&dir.0, "s", 4, 3).unwrap();
  let reopened = open_pool(&dir.0.join("s")).unwrap();
  assert_eq!(reopened.uid(), 3);
  assert_eq!(reopened.stats().unwrap().participants, 0);
  drop(fresh);
}

#[test]
fn files_that_are_not_regions_are_refused_and_never_replaced() {
  let dir = TempDir::new("foreign");
  let good = create_pool(&dir.0, "good", 4, 1).unwrap();
  let bytes = std::fs::read(good.path()).unwrap();
  let cases: Vec<(&str, Vec<u8>)> = vec![
    ("empty", vec![]),
    ("short", bytes[..32].to_vec()),
    (
      "random",
      (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect(),
    ),
    ("truncated", bytes[..bytes.len() - 64].to_vec()),
    ("version", {
      let mut b = bytes.clone();
      b[4] = 9;
      b
    }),
    ("more-slots", {
      let mut b = bytes.clone();
      b[28] = 200; // slot count 200 in a file sized for 4
      b
    }),
  ];
  for (name, content) in &cases {
    let path = dir.0.join(name);
    std::fs::write(&path, content).unwrap();
    let err = open_pool(&path)
      .err()
      .unwrap_or_else(|| panic!("{name} opened"));
    assert_eq!(err.code(), "ERR_SABPOOL_BAD_HANDLE", "{name}: {err}");
    // create never replaces what it cannot recognise as a stale region of its kind.
    let err = create_pool(&dir.0, name, 4, 2).err().unwrap();
    assert!(matches!(err, ShmError::Exists(_)), "{name}: {err:?}");
    assert_eq!(
      &std::fs::read(&path).unwrap(),
      content,
      "{name} was modified"
    );
  }
  // A pool file is not a channel.
  let err = Channel::attach(MappedMemory::new(RegionFile::open(good.path()).unwrap()).unwrap())
    .err()
    .unwrap();
  assert!(matches!(err, Error::BadHandle(_)));
  // Symbolic links and directories are refused.
  std::os::unix::fs::symlink(good.path(), dir.0.join("link")).unwrap();
  assert_eq!(
    open_pool(&dir.0.join("link")).err().unwrap().code(),
    "ERR_SABPOOL_BAD_HANDLE"
  );
  std::fs::create_dir(dir.0.join("dir")).unwrap();
  assert_eq!(
    open_pool(&dir.0.join("dir")).err().unwrap().code(),
    "ERR_SABPOOL_BAD_HANDLE"
  );
  assert!(matches!(
    open_pool(&dir.0.join("missing")),
    Err(ShmError::NotFound(_))
  ));
}

#[test]
fn unlink_removes_only_the_file_it_mapped() {
  let dir = TempDir::new("unlink");
  let old = create_pool(&dir.0, "u", 2, 1).unwrap();
  assert!(old.unlink().unwrap());
  assert!(!old.unlink().unwrap());
  // The old mapping still works after its name is gone.
  let pool = Pool::attach(MappedMemory::new(old.clone()).unwrap()).unwrap();
  let me = pool.join(1, std::process::id()).unwrap();
  assert!(pool.try_acquire(me).unwrap().is_some());
  // A new pool under the same name is another file: unlinking through the old one leaves it.
  let new = create_pool(&dir.0, "u", 2, 2).unwrap();
  assert!(!old.unlink().unwrap());
  assert!(new.path().exists());
  assert!(new.unlink().unwrap());
}

#[test]
fn names_that_leave_the_directory_are_refused_before_touching_it() {
  let dir = TempDir::new("names");
  for bad in ["", "..", "../x", "a/b", ".tmp", "x y"] {
    assert!(
      matches!(create_pool(&dir.0, bad, 2, 1), Err(ShmError::BadName(_))),
      "{bad:?}"
    );
  }
  assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 0);
  // The longest user name, with the binding's prefix and suffix, still makes a valid file.
  let longest = format!("sabpool.{}.channel", "n".repeat(shm::MAX_NAME_LEN));
  assert!(create_pool(&dir.0, &longest, 2, 1).is_ok());
}

#[test]
fn dead_participants_are_reclaimed_exactly_once_by_concurrent_reclaimers() {
  let dir = TempDir::new("dead");
  let file = create_pool(&dir.0, "d", 64, 1).unwrap();
  let pool = Pool::attach(MappedMemory::new(file.clone()).unwrap()).unwrap();
  // Participants 100..103 "die" holding 10 slots each; 200 stays alive holding 5.
  let mut parts = Vec::new();
  for pid in [100u32, 101, 102, 103, 200] {
    let me = pool
      .join_process(pid as u64, ProcessId::new(pid, 1))
      .unwrap();
    let n = if pid == 200 { 5 } else { 10 };
    for _ in 0..n {
      pool.try_acquire(me).unwrap().unwrap();
    }
    parts.push(me);
  }
  // A dead participant also had one wait registered.
  pool.add_waiters(1).unwrap();
  pool.set_parked(parts[0], 1).unwrap();
  let alive = |p: &ProcessId| p.pid >= 200;
  let results: Vec<_> = std::thread::scope(|s| {
    let handles: Vec<_> = (0..4u32)
      .map(|i| {
        let file = file.clone();
        s.spawn(move || {
          let view = Pool::attach(MappedMemory::new(file).unwrap()).unwrap();
          // Reclaimers are participants (a reclaim names its reclaimer); they leave after.
          let token = 300 + i as u64;
          // The table may be full: a joiner then takes a dead entry over (and reclaims it).
          let (me, took) = view
            .join_reclaiming(token, ProcessId::new(300 + i, 1), alive)
            .unwrap();
          let mut r = view.reclaim_dead(me, alive).unwrap();
          let _ = view.leave(me, token).unwrap();
          r.participants += took.participants;
          r.slots += took.slots;
          r
        })
      })
      .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
  });
  assert_eq!(results.iter().map(|r| r.participants).sum::<u32>(), 4);
  assert_eq!(results.iter().map(|r| r.slots).sum::<u32>(), 40);
  let stats = pool.stats().unwrap();
  assert_eq!(stats.in_use, 5);
  assert_eq!(stats.reclaimed, 40);
  assert_eq!(stats.participants, 1);
  assert_eq!(
    stats.waiting, 0,
    "the dead participant's wait was withdrawn"
  );
  // Nothing more to do, and the survivor's leases are untouched.
  assert_eq!(pool.reclaim_dead(parts[4], alive).unwrap().participants, 0);
  assert_eq!(pool.free_list_len().unwrap(), 59);
  // Freed entries are reusable.
  assert!(pool.join_process(7, ProcessId::new(7, 0)).is_ok());
}

#[test]
fn a_real_dead_process_is_told_from_a_live_one() {
  let dir = TempDir::new("real");
  let file = create_pool(&dir.0, "r", 8, 1).unwrap();
  let pool = Pool::attach(MappedMemory::new(file).unwrap()).unwrap();
  let dead = pool.join_process(1, dead_process()).unwrap();
  let me = pool.join_process(2, shm::this_process()).unwrap();
  // A participant of another pid namespace is never reclaimed from here, even with a dead pid.
  let elsewhere = ProcessId {
    namespace: shm::pid_namespace() + 1,
    ..dead_process()
  };
  let foreign = pool.join_process(3, elsewhere).unwrap();
  pool.try_acquire(foreign).unwrap().unwrap();
  pool.try_acquire(dead).unwrap().unwrap();
  pool.try_acquire(dead).unwrap().unwrap();
  pool.try_acquire(me).unwrap().unwrap();
  assert_eq!(pool.live_participants(shm::process_alive).unwrap(), 2);
  let r = pool.reclaim_dead(me, shm::process_alive).unwrap();
  assert_eq!((r.participants, r.slots), (1, 2));
  assert_eq!(pool.stats().unwrap().in_use, 2);
}

#[test]
fn pool_files_are_named_by_kind_and_replaced_only_when_stale() {
  let dir = TempDir::new("poolfile");
  let layout = sabpool_core::layout::PoolLayout::new(64, 4, 8).unwrap();
  let me = shm::this_process();
  // The creator is a participant of the file from the start (joined before it was published).
  let (file, creator) =
    shm::create_pool_file(&dir.0, "jobs", layout, 1, shm::DEFAULT_MODE, 1, me).unwrap();
  assert_eq!(file.path(), dir.0.join("sabpool.jobs.pool"));
  let live = Pool::attach(MappedMemory::new(file.clone()).unwrap()).unwrap();
  assert_eq!(live.participant_info(creator.0).unwrap().0, 1);
  assert!(matches!(
    shm::create_pool_file(&dir.0, "jobs", layout, 2, shm::DEFAULT_MODE, 2, me),
    Err(ShmError::Exists(_))
  ));
  let _ = live.leave(creator, 1).unwrap();
  live.join_process(9, dead_process()).unwrap();
  drop(shm::create_pool_file(&dir.0, "jobs", layout, 3, shm::DEFAULT_MODE, 3, me).unwrap());
  let reopened = shm::open_pool_file(&dir.0, "jobs", Default::default()).unwrap();
  assert_eq!(
    Pool::attach(MappedMemory::new(reopened).unwrap())
      .unwrap()
      .uid(),
    3
  );
  assert!(matches!(
    shm::open_pool_file(&dir.0, "../jobs", Default::default()),
    Err(ShmError::BadName(_))
  ));
}

#[test]
fn channel_files_are_replaced_only_when_left_over_from_another_pool() {
  let dir = TempDir::new("chanfile");
  let layout = sabpool_core::layout::ChannelLayout::new(4).unwrap();
  let file = shm::create_channel_file(&dir.0, "q", layout, 10, 1, shm::DEFAULT_MODE).unwrap();
  assert_eq!(file.path(), dir.0.join("sabpool.q.channel"));
  assert!(matches!(
    shm::create_channel_file(&dir.0, "q", layout, 11, 1, shm::DEFAULT_MODE),
    Err(ShmError::Exists(_))
  ));
  // Pool 2 took the name over: the channel of pool 1 is left over and replaced.
  drop(shm::create_channel_file(&dir.0, "q", layout, 12, 2, shm::DEFAULT_MODE).unwrap());
  let opened = shm::open_channel_file(&dir.0, "q", Default::default()).unwrap();
  let mem = MappedMemory::new(opened).unwrap();
  assert!(matches!(
    Channel::attach_to_pool(mem.clone(), 1),
    Err(Error::BadHandle(_))
  ));
  let channel = Channel::attach_to_pool(mem, 2).unwrap();
  assert_eq!((channel.uid(), channel.pool_uid()), (12, 2));
}

#[test]
fn table_files_are_replaced_only_when_left_over_from_another_pool() {
  let dir = TempDir::new("tablefile");
  let layout = sabpool_core::layout::TableLayout::new(100).unwrap();
  let file = shm::create_table_file(&dir.0, "t", layout, 20, 1, shm::DEFAULT_MODE).unwrap();
  assert_eq!(file.path(), dir.0.join("sabpool.t.table"));
  assert_eq!(file.len(), layout.total_len);
  let table = Table::attach_to_pool(MappedMemory::new(file.clone()).unwrap(), 1).unwrap();
  table
    .word(99)
    .unwrap()
    .store(7, std::sync::atomic::Ordering::SeqCst);
  // A valid table of the same pool is in use: never replaced.
  assert!(matches!(
    shm::create_table_file(&dir.0, "t", layout, 21, 1, shm::DEFAULT_MODE),
    Err(ShmError::Exists(_))
  ));
  let opened = shm::open_table_file(&dir.0, "t", Default::default()).unwrap();
  let again = Table::attach_to_pool(MappedMemory::new(opened).unwrap(), 1).unwrap();
  assert_eq!((again.uid(), again.words()), (20, 100));
  assert_eq!(
    again
      .word(99)
      .unwrap()
      .load(std::sync::atomic::Ordering::SeqCst),
    7
  );
  // Pool 2 took the name over: the table of pool 1 is left over and replaced by a zeroed one.
  drop(shm::create_table_file(&dir.0, "t", layout, 22, 2, shm::DEFAULT_MODE).unwrap());
  let opened = shm::open_table_file(&dir.0, "t", Default::default()).unwrap();
  let mem = MappedMemory::new(opened).unwrap();
  assert!(matches!(
    Table::attach_to_pool(mem.clone(), 1),
    Err(Error::BadHandle(_))
  ));
  let table = Table::attach_to_pool(mem, 2).unwrap();
  assert_eq!((table.uid(), table.pool_uid()), (22, 2));
  assert_eq!(
    table
      .word(99)
      .unwrap()
      .load(std::sync::atomic::Ordering::SeqCst),
    0
  );
  // The mapping of the replaced file stays valid for whoever still has it.
  assert_eq!(
    again
      .word(99)
      .unwrap()
      .load(std::sync::atomic::Ordering::SeqCst),
    7
  );
}

#[test]
fn table_files_refuse_bad_names_other_kinds_and_missing_names() {
  let dir = TempDir::new("tablebad");
  let layout = sabpool_core::layout::TableLayout::new(4).unwrap();
  for bad in ["", "../t", "a/b", ".hidden"] {
    assert!(matches!(
      shm::create_table_file(&dir.0, bad, layout, 1, 1, shm::DEFAULT_MODE),
      Err(ShmError::BadName(_))
    ));
    assert!(matches!(
      shm::open_table_file(&dir.0, bad, Default::default()),
      Err(ShmError::BadName(_))
    ));
  }
  assert!(matches!(
    shm::open_table_file(&dir.0, "missing", Default::default()),
    Err(ShmError::NotFound(_))
  ));
  // A channel file under the table's name is not a table: never replaced, never attached.
  let channel = sabpool_core::layout::ChannelLayout::new(4).unwrap();
  let file = shm::create_channel_file(&dir.0, "x", channel, 1, 1, shm::DEFAULT_MODE).unwrap();
  std::fs::copy(file.path(), dir.0.join("sabpool.x.table")).unwrap();
  assert!(matches!(
    shm::create_table_file(&dir.0, "x", layout, 1, 2, shm::DEFAULT_MODE),
    Err(ShmError::Exists(_))
  ));
  let opened = shm::open_table_file(&dir.0, "x", Default::default()).unwrap();
  assert!(matches!(
    Table::attach(MappedMemory::new(opened).unwrap()),
    Err(Error::BadHandle(_))
  ));
  // Owner-only by default, or the mode asked for.
  let mode = |name: &str| {
    std::fs::metadata(dir.0.join(format!("sabpool.{name}.table")))
      .unwrap()
      .permissions()
      .mode()
      & 0o777
  };
  drop(shm::create_table_file(&dir.0, "own", layout, 1, 1, shm::DEFAULT_MODE).unwrap());
  assert_eq!(mode("own"), 0o600);
  drop(shm::create_table_file(&dir.0, "grp", layout, 1, 1, 0o660).unwrap());
  assert_eq!(mode("grp"), 0o660);
  assert!(matches!(
    shm::create_table_file(&dir.0, "ro", layout, 1, 1, 0o400),
    Err(ShmError::BadMode(_))
  ));
}
