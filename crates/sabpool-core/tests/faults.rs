//! Death at the wrong instruction, and hostile or full file systems: a participant stopping for
//! ever between two steps of acquire, release or reclaim loses no slot and no participant entry;
//! region files reserve their space, refuse other users' files, and two creators never both win.
//!
//! The half-done states are built by hand here, exactly as a process killed between two steps
//! leaves them (the loom models in `loom_faults.rs` stop threads at every step instead).
#![cfg(unix)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Barrier};

use sabpool_core::layout::*;
use sabpool_core::mem::Memory;
use sabpool_core::shm::{self, MappedMemory, OpenOptions, RegionFile, ShmError};
use sabpool_core::*;

fn new_pool(slots: u32, participants: u32) -> Pool<OwnedMemory> {
  let len = PoolLayout::new(64, slots, participants).unwrap().total_len;
  Pool::create(OwnedMemory::new(len), 64, slots, participants, 1).unwrap()
}

const DEAD: u32 = 100;
fn alive(p: &ProcessId) -> bool {
  p.pid != DEAD
}

fn set_word(pool: &Pool<OwnedMemory>, slot: u32, word: SlotWord) {
  let meta = pool.layout().meta(slot);
  pool
    .memory()
    .u64_at(meta + META_WORD)
    .unwrap()
    .store(word.pack(), SeqCst);
}

fn head(pool: &Pool<OwnedMemory>) -> FreeHead {
  FreeHead::unpack(pool.memory().u64_at(P_FREE_HEAD).unwrap().load(SeqCst))
}

/// Every slot free, on the list once, counted free, and acquirable exactly once.
fn assert_all_free(pool: &Pool<OwnedMemory>, me: Participant) {
  let slots = pool.layout().slot_count;
  assert_eq!(pool.free_list_len().unwrap(), slots);
  assert_eq!(pool.census().unwrap(), [0, slots, 0, 0, 0]);
  assert_eq!(pool.stats().unwrap().in_use, 0);
  let mut got = Vec::new();
  while let Some(lease) = pool.try_acquire(me).unwrap() {
    assert!(!got.contains(&lease.slot));
    got.push(lease.slot);
  }
  assert_eq!(got.len() as u32, slots, "only {got:?} acquirable");
  for slot in got {
    let generation = pool.slot_state(slot).unwrap().generation;
    let _ = pool.release(me, Lease { slot, generation }).unwrap();
  }
}

#[test]
fn a_release_stopped_before_its_push_is_finished_by_the_reclaimer() {
  let pool = new_pool(4, 3);
  let dead = pool.join_process(1, ProcessId::new(DEAD, 1)).unwrap();
  let me = pool.join_process(2, ProcessId::new(200, 1)).unwrap();
  let lease = pool.try_acquire(dead).unwrap().unwrap();
  // Killed right after the first step of `release`: no longer leased, not on the list.
  set_word(
    &pool,
    lease.slot,
    SlotWord::new(lease.generation, dead.0 + 1, SlotState::Releasing),
  );
  assert_eq!(pool.free_list_len().unwrap(), 3);
  let r = pool.reclaim_dead(me, alive).unwrap();
  assert_eq!((r.participants, r.slots), (1, 1));
  assert_all_free(&pool, me);
}

#[test]
fn a_release_stopped_after_its_push_is_settled_not_pushed_twice() {
  let pool = new_pool(4, 3);
  let dead = pool.join_process(1, ProcessId::new(DEAD, 1)).unwrap();
  let me = pool.join_process(2, ProcessId::new(200, 1)).unwrap();
  let lease = pool.try_acquire(dead).unwrap().unwrap();
  // A release that got as far as the push: the slot heads the list, still `Releasing`.
  let _ = pool.release(dead, lease).unwrap();
  set_word(
    &pool,
    lease.slot,
    SlotWord::new(lease.generation, dead.0 + 1, SlotState::Releasing),
  );
  assert_eq!(head(&pool).index, lease.slot);
  let r = pool.reclaim_dead(me, alive).unwrap();
  assert_eq!((r.participants, r.slots), (1, 0));
  assert_all_free(&pool, me);
  // And an acquirer finding such a head settles it too, instead of calling it corrupt.
  let dead = pool.join_process(3, ProcessId::new(DEAD, 1)).unwrap();
  let lease = pool.try_acquire(dead).unwrap().unwrap();
  let _ = pool.release(dead, lease).unwrap();
  set_word(
    &pool,
    lease.slot,
    SlotWord::new(lease.generation, dead.0 + 1, SlotState::Releasing),
  );
  let got = pool.try_acquire(me).unwrap().unwrap();
  assert_eq!(got.slot, lease.slot);
  assert_eq!(got.generation, lease.generation + 1);
}

#[test]
fn a_pop_claimed_by_a_participant_that_died_is_its_lease_and_is_returned() {
  let pool = new_pool(4, 3);
  let dead = pool.join_process(1, ProcessId::new(DEAD, 1)).unwrap();
  let me = pool.join_process(2, ProcessId::new(200, 1)).unwrap();
  // Killed right after claiming the first slot: the head records the claim.
  let word = pool.memory().u64_at(P_FREE_HEAD).unwrap();
  let seen = head(&pool);
  word.store(seen.claimed_by(dead.0 + 1).pack(), SeqCst);
  // Anyone else acquiring completes the claim first (the slot becomes the dead one's lease)...
  let mine = pool.try_acquire(me).unwrap().unwrap();
  assert_ne!(mine.slot, seen.index);
  let theirs = pool.slot_state(seen.index).unwrap();
  assert_eq!(
    (theirs.owner, theirs.state),
    (dead.0 + 1, SlotState::Leased)
  );
  let _ = pool.release(me, mine).unwrap();
  // ...and reclaiming the dead participant returns it.
  let r = pool.reclaim_dead(me, alive).unwrap();
  assert_eq!((r.participants, r.slots), (1, 1));
  assert_all_free(&pool, me);
  // A claim nobody completed before the reclaim is completed by the reclaim itself.
  let dead = pool.join_process(3, ProcessId::new(DEAD, 1)).unwrap();
  let seen = head(&pool);
  word.store(seen.claimed_by(dead.0 + 1).pack(), SeqCst);
  let r = pool.reclaim_dead(me, alive).unwrap();
  assert_eq!((r.participants, r.slots), (1, 1));
  assert_all_free(&pool, me);
}

/// The marker a reclaimer writes into an entry it tears down (layout notes: `PART_RECLAIM_BIT`).
fn marker(pool: &Pool<OwnedMemory>, reclaimer: Participant) -> u64 {
  let token = pool.participant_info(reclaimer.0).unwrap().0;
  PART_RECLAIM_BIT | (reclaimer.0 as u64) << 32 | (token & 0xffff_ffff)
}

#[test]
fn a_reclaim_interrupted_by_the_reclaimers_death_is_taken_over_and_finished() {
  let pool = new_pool(8, 4);
  let dead = pool.join_process(1, ProcessId::new(DEAD, 1)).unwrap();
  let leases: Vec<_> = (0..3)
    .map(|_| pool.try_acquire(dead).unwrap().unwrap())
    .collect();
  // A reclaimer (of another process that then died too) claimed the entry, returned the first
  // lease, and was killed while returning the second (after its first step).
  let reclaimer = pool.join_process(2, ProcessId::new(DEAD, 2)).unwrap();
  let entry = pool.layout().participant(dead.0);
  let token = pool.memory().u64_at(entry + PART_TOKEN).unwrap();
  token.store(marker(&pool, reclaimer), SeqCst);
  let _ = pool.reclaim_lease(dead, leases[0]).unwrap();
  set_word(
    &pool,
    leases[1].slot,
    SlotWord::new(leases[1].generation, reclaimer.0 + 1, SlotState::Releasing),
  );
  let me = pool.join_process(3, ProcessId::new(200, 1)).unwrap();
  // While that reclaimer is alive, its entry is left alone.
  let r = pool
    .reclaim_dead(me, |p| p.pid != DEAD || p.start == 2)
    .unwrap();
  assert_eq!(r.participants, 0);
  assert_ne!(token.load(SeqCst), 0);
  // Once it is dead, both entries are torn down: the third lease and the half-returned second.
  let r = pool.reclaim_dead(me, alive).unwrap();
  assert_eq!((r.participants, r.slots), (2, 2));
  for index in [dead.0, reclaimer.0] {
    assert_eq!(pool.participant_info(index).unwrap().0, 0);
  }
  assert_eq!(pool.stats().unwrap().participants, 1);
  assert_all_free(&pool, me);
  // Layout version 1's marker names no reclaimer: it is taken over as well.
  let dead = pool.join_process(4, ProcessId::new(DEAD, 1)).unwrap();
  pool.try_acquire(dead).unwrap().unwrap();
  let entry = pool.layout().participant(dead.0);
  pool
    .memory()
    .u64_at(entry + PART_TOKEN)
    .unwrap()
    .store(PART_RECLAIMING, SeqCst);
  let r = pool.reclaim_dead(me, alive).unwrap();
  assert_eq!((r.participants, r.slots), (1, 1));
}

#[test]
fn a_reclaimer_resumes_its_own_interrupted_teardown() {
  let pool = new_pool(4, 3);
  let dead = pool.join_process(1, ProcessId::new(DEAD, 1)).unwrap();
  pool.try_acquire(dead).unwrap().unwrap();
  let me = pool.join_process(2, ProcessId::new(200, 1)).unwrap();
  // An earlier reclaim of ours stopped with an error after marking the entry.
  let entry = pool.layout().participant(dead.0);
  pool
    .memory()
    .u64_at(entry + PART_TOKEN)
    .unwrap()
    .store(marker(&pool, me), SeqCst);
  let r = pool.reclaim_dead(me, |_| true).unwrap();
  assert_eq!((r.participants, r.slots), (1, 1));
  assert_all_free(&pool, me);
}

#[test]
fn a_full_table_of_dead_participants_is_joined_by_taking_one_over() {
  let pool = new_pool(4, 2);
  for token in 1..=2 {
    let dead = pool.join_process(token, ProcessId::new(DEAD, 1)).unwrap();
    pool.try_acquire(dead).unwrap().unwrap();
  }
  assert_eq!(
    pool.join_process(3, ProcessId::new(200, 1)),
    Err(Error::TooManyParticipants)
  );
  let (me, took) = pool
    .join_reclaiming(3, ProcessId::new(200, 1), alive)
    .unwrap();
  assert_eq!((took.participants, took.slots), (1, 1));
  let r = pool.reclaim_dead(me, alive).unwrap();
  assert_eq!((r.participants, r.slots), (1, 1));
  assert_eq!(pool.stats().unwrap().participants, 1);
  assert_all_free(&pool, me);
  // With every entry live, there is nothing to take over.
  let _other = pool.join_process(4, ProcessId::new(201, 1)).unwrap();
  assert_eq!(
    pool.join_reclaiming(5, ProcessId::new(202, 1), alive).err(),
    Some(Error::TooManyParticipants)
  );
}

#[test]
fn a_reused_or_taken_over_entry_starts_with_no_registered_waits() {
  let pool = new_pool(2, 1);
  let dead = pool.join_process(1, ProcessId::new(DEAD, 1)).unwrap();
  // It died parked in a wait for a free slot.
  pool.add_waiters(1).unwrap();
  pool.set_parked(dead, 1).unwrap();
  let (me, _) = pool
    .join_reclaiming(2, ProcessId::new(200, 1), alive)
    .unwrap();
  assert_eq!(me, dead, "the only entry was taken over");
  assert_eq!(pool.parked(me).unwrap(), 0);
  assert_eq!(pool.stats().unwrap().waiting, 0, "its wait was withdrawn");
  // An entry left by a participant that forgot to clear its count is reset on join too.
  pool.set_parked(me, 1).unwrap();
  let _ = pool.leave(me, 2).unwrap();
  let again = pool.join_process(3, ProcessId::new(200, 1)).unwrap();
  assert_eq!(pool.parked(again).unwrap(), 0);
}

#[test]
fn the_free_count_is_exact_after_every_operation() {
  let pool = new_pool(8, 2);
  let me = pool.join_process(1, ProcessId::new(1, 1)).unwrap();
  let mut held = Vec::new();
  for n in 1..=8 {
    held.push(pool.try_acquire(me).unwrap().unwrap());
    assert_eq!(pool.stats().unwrap().in_use, n);
  }
  assert_eq!(pool.stats().unwrap().high_water, 8);
  for n in (0..8).rev() {
    let _ = pool.release(me, held.pop().unwrap()).unwrap();
    assert_eq!(pool.stats().unwrap().in_use, n);
  }
}

// ---- region files ---------------------------------------------------------------------------

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
  fn new(tag: &str) -> TempDir {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, SeqCst);
    let dir = std::env::temp_dir().join(format!("sabpool-faults-{tag}-{}-{n}", std::process::id()));
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

fn pool_len(slot_size: u32, slots: u32) -> usize {
  PoolLayout::new(slot_size, slots, 8).unwrap().total_len
}

fn is_stale(memory: MappedMemory) -> sabpool_core::Result<bool> {
  Ok(Pool::attach(memory)?.live_participants(shm::process_alive)? == 0)
}

/// Creates pool `name` in `dir` the way the binding does: the creator joins in the new file
/// before it is published.
fn create(
  dir: &Path,
  name: &str,
  slot_size: u32,
  slots: u32,
  token: u64,
) -> std::result::Result<(Arc<RegionFile>, Participant), ShmError> {
  shm::create(
    dir,
    name,
    pool_len(slot_size, slots),
    shm::DEFAULT_MODE,
    |m| Pool::create(m, slot_size, slots, 8, 1)?.join_process(token, shm::this_process()),
    is_stale,
  )
}

fn entries(dir: &Path) -> Vec<String> {
  let mut names: Vec<_> = std::fs::read_dir(dir)
    .unwrap()
    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
    .collect();
  names.sort();
  names
}

#[test]
fn concurrent_creators_of_one_name_have_exactly_one_winner() {
  let dir = TempDir::new("race");
  const CREATORS: usize = 6;
  let token = AtomicU64::new(1);
  for round in 0..40 {
    let barrier = Barrier::new(CREATORS);
    let results: Vec<_> = std::thread::scope(|s| {
      let handles: Vec<_> = (0..CREATORS)
        .map(|_| {
          let (dir, barrier, token) = (&dir.0, &barrier, &token);
          s.spawn(move || {
            barrier.wait();
            create(dir, "race", 64, 4, token.fetch_add(1, SeqCst))
          })
        })
        .collect();
      handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(
      winners.len(),
      1,
      "round {round}: {results:?}",
      results = results
        .iter()
        .map(|r| r.as_ref().map(|_| ()).map_err(|e| e.to_string()))
        .collect::<Vec<_>>()
    );
    for r in &results {
      if let Err(e) = r {
        assert!(matches!(e, ShmError::Exists(_)), "round {round}: {e}");
      }
    }
    // The winner's file is the one published, and it is intact.
    let (file, _) = winners[0];
    let named = std::fs::metadata(dir.0.join("race")).unwrap();
    let mine = std::fs::metadata(file.path()).unwrap();
    assert_eq!(
      named.ino(),
      mine.ino(),
      "round {round}: the winner's file was replaced"
    );
    assert!(file.unlink().unwrap());
    assert_eq!(
      entries(&dir.0),
      Vec::<String>::new(),
      "temporary files left"
    );
  }
}

#[test]
fn files_of_another_user_are_refused_unless_allowed() {
  // SAFETY: geteuid has no preconditions.
  if unsafe { libc::geteuid() } != 0 {
    eprintln!("skipped: changing a file's owner needs root");
    return;
  }
  let dir = TempDir::new("owner");
  let (file, _) = create(&dir.0, "theirs", 64, 2, 1).unwrap();
  let path = file.path().to_path_buf();
  drop(file);
  std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
  let err = RegionFile::open(&path).err().unwrap();
  assert!(matches!(err, ShmError::Access(_)), "{err:?}");
  assert_eq!(err.code(), "ERR_SABPOOL_ACCESS");
  assert!(err.to_string().contains("uid 65534"), "{err}");
  let file = RegionFile::open_with(
    &path,
    OpenOptions {
      allow_foreign_owner: true,
    },
  )
  .unwrap();
  assert!(Pool::attach(MappedMemory::new(file).unwrap()).is_ok());
  // Nor is such a file replaced by a creator, stale or not.
  let err = create(&dir.0, "theirs", 64, 2, 2).err().unwrap();
  assert!(matches!(err, ShmError::Access(_)), "{err:?}");
}

/// Mounts a tmpfs of `size` on a fresh directory, when this process may (root, and a kernel
/// that lets it); unmounted on drop.
struct SmallFs(TempDir);

impl SmallFs {
  fn mount(size: &str) -> Option<SmallFs> {
    let dir = TempDir::new("small");
    let ok = std::process::Command::new("mount")
      .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
      .arg(&dir.0)
      .stderr(std::process::Stdio::null())
      .status()
      .is_ok_and(|s| s.success());
    ok.then_some(SmallFs(dir))
  }
}

impl Drop for SmallFs {
  fn drop(&mut self) {
    let _ = std::process::Command::new("umount")
      .arg(&self.0 .0)
      .status();
  }
}

#[test]
fn a_region_larger_than_the_free_space_fails_to_create_and_leaves_nothing() {
  let Some(fs) = SmallFs::mount("8m") else {
    eprintln!("skipped: cannot mount a small tmpfs here (needs root and mount permission)");
    return;
  };
  let dir = &fs.0 .0;
  // 16 MiB of slots on an 8 MiB filesystem: before reserving space, this was created, and the
  // first touch of a slot past 8 MiB killed the process with SIGBUS.
  let err = create(dir, "big", 1 << 20, 16, 1).err().unwrap();
  assert!(matches!(err, ShmError::NoSpace(_)), "{err:?}");
  assert_eq!(err.code(), "ERR_SABPOOL_NO_SPACE");
  let message = err.to_string();
  assert!(
    message.contains(&pool_len(1 << 20, 16).to_string()),
    "{message}"
  );
  assert!(message.contains(&dir.display().to_string()), "{message}");
  assert_eq!(entries(dir), Vec::<String>::new(), "files left behind");
  // One that fits is created, and every byte of it can be written.
  let (file, _) = create(dir, "fits", 1 << 20, 4, 2).unwrap();
  // SAFETY: the mapping is `len()` bytes long and alive while `file` is; no one else uses it.
  unsafe { std::ptr::write_bytes(file.as_ptr(), 0xa5, file.len()) };
  assert!(file.unlink().unwrap());
}
