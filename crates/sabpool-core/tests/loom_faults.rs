//! Loom models of the pool's death windows: a participant whose process is killed stops for ever
//! between two steps of a multi-step update of shared memory, and whoever comes next must finish
//! or undo it. Each model runs once for every step a thread can stop at (`sync::crash::arm`),
//! exploring every interleaving (within the preemption bound) for each.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release -p sabpool-core --test loom_faults` (or
//! `npm run test:loom`).
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;
use sabpool_core::layout::PoolLayout;
use sabpool_core::sync::crash;
use sabpool_core::*;
use std::time::Instant;

const SLOT_SIZE: u32 = 8;

fn new_pool(slots: u32, participants: u32) -> Pool<OwnedMemory> {
  let len = PoolLayout::new(SLOT_SIZE, slots, participants)
    .unwrap()
    .total_len;
  Pool::create(OwnedMemory::new(len), SLOT_SIZE, slots, participants, 1).unwrap()
}

/// Nobody mid-operation: every slot free and on the list exactly once, and acquirable.
fn assert_every_slot_free(pool: &Pool<OwnedMemory>, me: Participant) {
  let slots = pool.layout().slot_count;
  assert_eq!(pool.free_list_len().unwrap(), slots);
  assert_eq!(pool.census().unwrap(), [0, slots, 0, 0, 0]);
  let s = pool.stats().unwrap();
  assert_eq!(s.in_use, 0, "{s:?}");
  assert_eq!(s.acquired, s.released + s.reclaimed, "{s:?}");
  let mut got = Vec::new();
  while let Some(lease) = pool.try_acquire(me).unwrap() {
    assert!(
      !got.contains(&lease.slot),
      "slot {} acquired twice",
      lease.slot
    );
    got.push(lease.slot);
  }
  assert_eq!(
    got.len() as u32,
    slots,
    "slots lost: only {got:?} acquirable"
  );
}

/// Runs `f(step)` as a loom model for step 0, 1, ... until the thread armed with `step` no longer
/// stops (it finished before reaching that many crash points in every interleaving).
fn for_each_crash_step(name: &str, bound: usize, f: impl Fn(u32) -> bool + Sync + Send + 'static) {
  let f = std::sync::Arc::new(f);
  for step in 0.. {
    let started = Instant::now();
    let stopped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
      builder.preemption_bound = Some(bound);
    }
    let (f2, stopped2, runs2) = (f.clone(), stopped.clone(), runs.clone());
    builder.check(move || {
      runs2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
      if f2(step) {
        stopped2.store(true, std::sync::atomic::Ordering::Relaxed);
      }
    });
    println!(
      "{name}: stop at step {step}: {} interleavings in {:.1?}",
      runs.load(std::sync::atomic::Ordering::Relaxed),
      started.elapsed()
    );
    if !stopped.load(std::sync::atomic::Ordering::Relaxed) {
      break;
    }
    assert!(
      step < 64,
      "{name}: a thread never gets past its crash points"
    );
  }
}

#[test]
fn a_participant_stopping_mid_acquire_or_release_loses_no_slot() {
  for_each_crash_step(
    "a_participant_stopping_mid_acquire_or_release_loses_no_slot",
    2,
    |step| {
      let pool = Arc::new(new_pool(2, 3));
      let a = pool.join_process(1, ProcessId::new(1, 1)).unwrap();
      let b = pool.join_process(2, ProcessId::new(2, 1)).unwrap();
      let r = pool.join_process(3, ProcessId::new(3, 1)).unwrap();
      let p = pool.clone();
      // A acquires and releases a slot, and stops for ever at crash point `step` (its process
      // is killed), leaving whatever it was doing half done.
      let dying = thread::spawn(move || {
        crash::arm(step);
        let done = (|| {
          let lease = p.try_acquire(a)?.expect("a free slot");
          let _ = p.release(a, lease)?;
          Ok::<_, Error>(())
        })();
        let stopped = crash::crashed();
        assert!(stopped || done.is_ok(), "{done:?}");
        stopped
      });
      // B keeps using the pool meanwhile, helping along whatever A left at the head.
      let p = pool.clone();
      let other = thread::spawn(move || {
        for _ in 0..2 {
          if let Some(lease) = p.try_acquire(b).unwrap() {
            let _ = p.release(b, lease).unwrap();
          }
        }
      });
      let stopped = dying.join().unwrap();
      other.join().unwrap();
      // Then A's process is found dead and reclaimed.
      let reclaimed = pool.reclaim_dead(r, |p| p.pid != 1).unwrap();
      assert_eq!(reclaimed.participants, 1);
      assert_every_slot_free(&pool, r);
      stopped
    },
  );
}

#[test]
fn a_reclaimer_stopping_mid_teardown_is_taken_over() {
  for_each_crash_step(
    "a_reclaimer_stopping_mid_teardown_is_taken_over",
    2,
    |step| {
      let pool = Arc::new(new_pool(2, 4));
      let dead = pool.join_process(1, ProcessId::new(100, 1)).unwrap();
      let r1 = pool.join_process(3, ProcessId::new(300, 1)).unwrap();
      let r2 = pool.join_process(4, ProcessId::new(400, 1)).unwrap();
      let r3 = pool.join_process(5, ProcessId::new(500, 1)).unwrap();
      // The dead participant holds every slot.
      pool.try_acquire(dead).unwrap().unwrap();
      pool.try_acquire(dead).unwrap().unwrap();
      // Set once R1 has stopped: from then on its process counts as dead.
      let r1_gone = Arc::new(AtomicBool::new(false));
      let alive = {
        let r1_gone = r1_gone.clone();
        move |p: &ProcessId| p.pid != 100 && !(p.pid == 300 && r1_gone.load(SeqCst))
      };
      let (p, gone) = (pool.clone(), r1_gone.clone());
      let first = thread::spawn(move || {
        crash::arm(step);
        let done = p.reclaim_dead(r1, |p| p.pid != 100);
        let stopped = crash::crashed();
        assert!(stopped || done.is_ok(), "{done:?}");
        if stopped {
          gone.store(true, SeqCst);
        }
        stopped
      });
      let (p, alive2) = (pool.clone(), alive.clone());
      let second = thread::spawn(move || p.reclaim_dead(r2, alive2).unwrap());
      let stopped = first.join().unwrap();
      second.join().unwrap();
      // Whoever reclaims next, with both done, finds nothing left behind.
      pool.reclaim_dead(r3, alive).unwrap();
      for index in [dead.0, if stopped { r1.0 } else { dead.0 }] {
        assert_eq!(
          pool.participant_info(index).unwrap().0,
          0,
          "entry {index} left"
        );
      }
      let s = pool.stats().unwrap();
      assert_eq!(s.participants, if stopped { 2 } else { 3 }, "{s:?}");
      assert_eq!(s.reclaimed, 2, "{s:?}");
      assert_every_slot_free(&pool, r3);
      stopped
    },
  );
}
