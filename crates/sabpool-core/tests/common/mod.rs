//! Helpers shared by the integration tests of the core (not a test target itself).
#![allow(dead_code)]

use sabpool_core::layout::{ChannelLayout, PoolLayout};
use sabpool_core::mem::Memory;
use sabpool_core::sync::{AtomicU32, AtomicU64, Ordering};
use sabpool_core::{Channel, OwnedMemory, Pool, Result};
use std::sync::mpsc;
use std::time::Duration;

/// A view that claims the region is only `len` bytes long (a truncated SharedArrayBuffer); every
/// access past `len` is refused exactly as `OwnedMemory` refuses accesses past its end.
#[derive(Clone, Copy)]
pub struct Truncated<'a>(pub &'a OwnedMemory, pub usize);

impl Memory for Truncated<'_> {
  fn len(&self) -> usize {
    self.1
  }
  fn u32_at(&self, offset: usize) -> Result<&AtomicU32> {
    if self.1 < 4 || offset > self.1 - 4 {
      return Err(sabpool_core::Error::Corrupt("past the truncated end"));
    }
    self.0.u32_at(offset)
  }
  fn u64_at(&self, offset: usize) -> Result<&AtomicU64> {
    if self.1 < 8 || offset > self.1 - 8 {
      return Err(sabpool_core::Error::Corrupt("past the truncated end"));
    }
    self.0.u64_at(offset)
  }
}

/// A zeroed region exactly as large as a pool of this geometry needs.
pub fn pool_memory(slot_size: u32, slots: u32, max_participants: u32) -> OwnedMemory {
  OwnedMemory::new(
    PoolLayout::new(slot_size, slots, max_participants)
      .unwrap()
      .total_len,
  )
}

pub fn new_pool(slot_size: u32, slots: u32, max_participants: u32) -> Pool<OwnedMemory> {
  Pool::create(
    pool_memory(slot_size, slots, max_participants),
    slot_size,
    slots,
    max_participants,
    0x5eed_0001,
  )
  .unwrap()
}

pub fn new_channel(capacity: u32, pool_uid: u32) -> Channel<OwnedMemory> {
  let len = ChannelLayout::new(capacity).unwrap().total_len;
  Channel::create(OwnedMemory::new(len), capacity, 0xc4a7_0001, pool_uid).unwrap()
}

pub fn read32<M: Memory>(mem: &M, offset: usize) -> u32 {
  mem.u32_at(offset).unwrap().load(Ordering::SeqCst)
}

pub fn write32<M: Memory>(mem: &M, offset: usize, value: u32) {
  mem.u32_at(offset).unwrap().store(value, Ordering::SeqCst)
}

pub fn read64<M: Memory>(mem: &M, offset: usize) -> u64 {
  mem.u64_at(offset).unwrap().load(Ordering::SeqCst)
}

pub fn write64<M: Memory>(mem: &M, offset: usize, value: u64) {
  mem.u64_at(offset).unwrap().store(value, Ordering::SeqCst)
}

/// Replaces one byte of the region (read-modify-write of the aligned word that holds it).
pub fn write8<M: Memory>(mem: &M, offset: usize, value: u8) {
  let word = mem.u32_at(offset & !3).unwrap();
  let shift = (offset & 3) * 8;
  let old = word.load(Ordering::SeqCst);
  word.store(
    (old & !(0xff << shift)) | ((value as u32) << shift),
    Ordering::SeqCst,
  );
}

/// Small deterministic PRNG (xorshift64*), so failures reproduce from the printed seed.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
  pub fn new(seed: u64) -> Self {
    Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
  }
  pub fn next_u64(&mut self) -> u64 {
    let mut x = self.0;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    self.0 = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
  }
  pub fn next_u32(&mut self) -> u32 {
    (self.next_u64() >> 32) as u32
  }
  /// Uniform-ish in `0..n` (n > 0).
  pub fn below(&mut self, n: u64) -> u64 {
    self.next_u64() % n
  }
  pub fn chance(&mut self, percent: u64) -> bool {
    self.below(100) < percent
  }
  /// A value that is often "interesting" for a corrupted 32-bit word: 0, all ones, near the
  /// original, near a power of two, or anything.
  pub fn nasty_u32(&mut self, original: u32) -> u32 {
    match self.below(8) {
      0 => 0,
      1 => u32::MAX,
      2 => original.wrapping_add(1),
      3 => original.wrapping_sub(1),
      4 => original ^ (1 << self.below(32)),
      5 => 1u32 << self.below(32),
      6 => self.below(64) as u32,
      _ => self.next_u32(),
    }
  }
  pub fn nasty_u64(&mut self, original: u64) -> u64 {
    match self.below(8) {
      0 => 0,
      1 => u64::MAX,
      2 => original.wrapping_add(1),
      3 => original.wrapping_sub(1),
      4 => original ^ (1 << self.below(64)),
      5 => 1u64 << self.below(64),
      6 => self.below(64),
      _ => self.next_u64(),
    }
  }
}

/// Runs `f` on another thread and fails if it does not finish within `limit`: a hang in the core
/// becomes a test failure instead of a stuck test run.
pub fn with_watchdog<T: Send + 'static>(
  name: &str,
  limit_secs: u64,
  f: impl FnOnce() -> T + Send + 'static,
) -> T {
  let limit = Duration::from_secs(limit_secs);
  let (tx, rx) = mpsc::channel();
  let worker = std::thread::Builder::new()
    .name(name.into())
    .spawn(move || {
      let _ = tx.send(f());
    })
    .unwrap();
  match rx.recv_timeout(limit) {
    Ok(value) => {
      worker.join().unwrap();
      value
    }
    Err(mpsc::RecvTimeoutError::Disconnected) => {
      // The closure panicked: re-raise its panic here.
      match worker.join() {
        Err(panic) => std::panic::resume_unwind(panic),
        Ok(()) => unreachable!(),
      }
    }
    Err(mpsc::RecvTimeoutError::Timeout) => panic!("{name}: still running after {limit:?} (hang?)"),
  }
}
