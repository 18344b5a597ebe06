//! Per-thread table of the regions this thread has attached, so the hot calls can name a pool or
//! channel by a small integer instead of unwrapping a JS object.
//!
//! Each entry holds a reference to the SharedArrayBuffer view (keeping the memory alive) and the
//! participant this thread registered as. An entry leaves the table when its JS owner is
//! garbage-collected or when the thread's environment is torn down; leaving reclaims every slot
//! the participant still holds, which is how leases of an exiting worker come back.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};

use sabpool_core::futex;
use sabpool_core::layout::{C_RECV_EPOCH, C_SEND_EPOCH, P_FREE_EPOCH};
use sabpool_core::mem::{Memory, SharedMemory};
use sabpool_core::shm::MappedMemory;
use sabpool_core::{Channel, Error, Lease, Participant, Pool, Received, Sent, Wake};

use super::ffi::ViewRef;
use super::watch::Watcher;

/// The memory of an attached region: a SharedArrayBuffer of this process, whose waiters park in
/// JS (`Atomics.wait`), or a mapped file shared with other processes, whose waiters park on
/// futexes and are woken here, natively.
pub enum RegionMemory {
  Js(SharedMemory),
  File(MappedMemory),
}

impl RegionMemory {
  pub fn file(&self) -> Option<&MappedMemory> {
    match self {
      RegionMemory::File(m) => Some(m),
      RegionMemory::Js(_) => None,
    }
  }

  /// Delivers a wake-up the core asked for on the epoch word at `epoch`. Returns 1 when the JS
  /// caller must notify (`Atomics.notify`), 0 when nothing more is needed.
  pub fn deliver(&self, wake: Wake, epoch: usize) -> i32 {
    match self {
      RegionMemory::Js(_) => wake.0 as i32,
      RegionMemory::File(m) => {
        if wake.0 {
          if let Ok(word) = m.u32_at(epoch) {
            futex::wake_all(word);
          }
        }
        0
      }
    }
  }
}

impl Memory for RegionMemory {
  #[inline]
  fn len(&self) -> usize {
    match self {
      RegionMemory::Js(m) => m.len(),
      RegionMemory::File(m) => m.len(),
    }
  }
  #[inline]
  fn u32_at(&self, offset: usize) -> sabpool_core::Result<&sabpool_core::sync::AtomicU32> {
    match self {
      RegionMemory::Js(m) => m.u32_at(offset),
      RegionMemory::File(m) => m.u32_at(offset),
    }
  }
  #[inline]
  fn u64_at(&self, offset: usize) -> sabpool_core::Result<&sabpool_core::sync::AtomicU64> {
    match self {
      RegionMemory::Js(m) => m.u64_at(offset),
      RegionMemory::File(m) => m.u64_at(offset),
    }
  }
}

/// A fast call got arguments that are not numbers (only reachable by bypassing the JS wrapper).
pub const STATUS_BAD_ARGUMENTS: i32 = -17;
/// A fast call named a pool or channel this thread does not have (detached or never attached).
pub const STATUS_UNKNOWN_ID: i32 = -18;
/// Fast-call results that are not errors.
pub const STATUS_NONE: i32 = -1;
pub const STATUS_CLOSED: i32 = -2;
/// An id `insert` never hands out (ids are indices of a Vec far shorter than this): calls with it
/// fail with `STATUS_UNKNOWN_ID`.
pub const DETACHED_ID: u32 = u32::MAX;

pub struct PoolEntry {
  pub pool: Pool<RegionMemory>,
  pub me: Participant,
  pub token: u64,
  /// How many waits of this thread are registered in the pool's waiter count right now.
  pub parked: Cell<u32>,
  /// File-backed pools: the thread that waits for free slots on behalf of async acquirers.
  pub watcher: RefCell<Option<Watcher>>,
}

impl PoolEntry {
  pub fn new(pool: Pool<RegionMemory>, me: Participant, token: u64) -> Self {
    PoolEntry {
      pool,
      me,
      token,
      parked: Cell::new(0),
      watcher: RefCell::new(None),
    }
  }

  pub fn memory(&self) -> &RegionMemory {
    self.pool.memory()
  }
}

pub struct ChannelEntry {
  pub channel: Channel<RegionMemory>,
  /// Waits of this thread registered in the channel's receiver and sender waiter counts.
  pub parked_recv: Cell<u32>,
  pub parked_send: Cell<u32>,
  /// File-backed channels: threads that wait for the receive and send epochs on behalf of async
  /// receivers and senders.
  pub watchers: [RefCell<Option<Watcher>>; 2],
}

impl ChannelEntry {
  pub fn new(channel: Channel<RegionMemory>) -> Self {
    ChannelEntry {
      channel,
      parked_recv: Cell::new(0),
      parked_send: Cell::new(0),
      watchers: [RefCell::new(None), RefCell::new(None)],
    }
  }

  pub fn memory(&self) -> &RegionMemory {
    self.channel.memory()
  }
}

/// Which epoch word a wait parks on.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Site {
  FreeSlot = 0,
  Received = 1,
  Room = 2,
}

impl Site {
  pub fn from_u32(n: u32) -> Option<Site> {
    match n {
      0 => Some(Site::FreeSlot),
      1 => Some(Site::Received),
      2 => Some(Site::Room),
      _ => None,
    }
  }

  pub fn epoch(self) -> usize {
    match self {
      Site::FreeSlot => P_FREE_EPOCH,
      Site::Received => C_RECV_EPOCH,
      Site::Room => C_SEND_EPOCH,
    }
  }
}

enum Region {
  Pool(PoolEntry),
  Channel(ChannelEntry),
}

struct Entry {
  region: Region,
  // Declared after `region`, and deleted only after the region view is gone (see `remove`).
  // None for file-backed regions, whose memory keeps its mapping alive itself.
  view: Option<ViewRef>,
}

#[derive(Default)]
struct Registry {
  entries: Vec<Option<Entry>>,
  free_ids: Vec<u32>,
}

thread_local! {
  static REGISTRY: RefCell<Registry> = RefCell::new(Registry::default());
  static CLEANUP_HOOKED: Cell<bool> = const { Cell::new(false) };
}

static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

/// A participant token unique within this process (and, with the pid, across processes).
pub fn new_token() -> u64 {
  ((std::process::id() as u64) << 32) | (NEXT_TOKEN.fetch_add(1, Ordering::Relaxed) & 0xffff_ffff)
}

fn insert(region: Region, view: Option<ViewRef>) -> u32 {
  REGISTRY.with(|r| {
    let mut r = r.borrow_mut();
    let entry = Some(Entry { region, view });
    match r.free_ids.pop() {
      Some(id) => {
        r.entries[id as usize] = entry;
        id
      }
      None => {
        r.entries.push(entry);
        (r.entries.len() - 1) as u32
      }
    }
  })
}

pub fn insert_pool(entry: PoolEntry, view: Option<ViewRef>) -> u32 {
  insert(Region::Pool(entry), view)
}

pub fn insert_channel(entry: ChannelEntry, view: Option<ViewRef>) -> u32 {
  insert(Region::Channel(entry), view)
}

fn retire(entry: Entry) {
  let Entry { region, view } = entry;
  // A thread torn down while parked (e.g. `worker.terminate()` during a wait) never ran the code
  // that unregisters its waits; withdraw them here so the waiter counts stay exact. Errors mean
  // the region was scribbled on; its state is then unknowable and there is nothing better to do.
  // Watcher threads are told to stop first (they hold their own reference to the mapping).
  // Slots reclaimed from a file-backed pool wake waiters of other processes right here; an
  // in-process pool's waiters (in threads still running) re-check within a park slice.
  match &region {
    Region::Pool(p) => {
      drop(p.watcher.take());
      let _ = p.pool.add_waiters(-(p.parked.get() as i32));
      if let Ok((_, wake)) = p.pool.leave(p.me, p.token) {
        p.memory().deliver(wake, P_FREE_EPOCH);
      }
    }
    Region::Channel(c) => {
      c.watchers.iter().for_each(|w| drop(w.take()));
      let _ = c.channel.add_waiters(true, -(c.parked_recv.get() as i32));
      let _ = c.channel.add_waiters(false, -(c.parked_send.get() as i32));
    }
  }
  drop(region);
  if let Some(view) = view {
    view.delete();
  }
}

/// Detaches one pool or channel: the participant leaves (its leases are reclaimed) and the
/// memory reference is dropped.
pub fn remove(id: u32) {
  let entry = REGISTRY.with(|r| {
    // A finalizer cannot run while a fast call holds the borrow (they never allocate), so this
    // only fails if a finalizer re-enters during a teardown; the teardown then retires it.
    let mut r = r.try_borrow_mut().ok()?;
    let entry = r.entries.get_mut(id as usize)?.take()?;
    r.free_ids.push(id);
    Some(entry)
  });
  if let Some(entry) = entry {
    retire(entry);
  }
}

/// The environment is going away: every participant of this thread leaves.
pub fn teardown() {
  let entries = REGISTRY.with(|r| std::mem::take(&mut *r.borrow_mut()));
  // Channels first, then pools, so no channel outlives the pool it names.
  let (channels, pools): (Vec<_>, Vec<_>) = entries
    .entries
    .into_iter()
    .flatten()
    .partition(|e| matches!(e.region, Region::Channel(_)));
  channels.into_iter().chain(pools).for_each(retire);
}

/// Registers `hook` as this thread's env cleanup the first time a region is attached.
pub fn hook_cleanup_once(hook: impl FnOnce() -> napi::Result<()>) -> napi::Result<()> {
  if CLEANUP_HOOKED.with(|h| h.get()) {
    return Ok(());
  }
  hook()?;
  CLEANUP_HOOKED.with(|h| h.set(true));
  Ok(())
}

pub fn with_pool<T>(
  id: u32,
  f: impl FnOnce(&PoolEntry) -> Result<T, Error>,
) -> Option<Result<T, Error>> {
  REGISTRY.with(|r| {
    let r = r.try_borrow().ok()?;
    match &r.entries.get(id as usize)?.as_ref()?.region {
      Region::Pool(p) => Some(f(p)),
      Region::Channel(_) => None,
    }
  })
}

/// Runs `f` on a channel and on the pool attachment whose participant sends or receives (any
/// attachment of the channel's pool in this thread; the core checks the pool's uid).
pub fn with_channel<T>(
  id: u32,
  pool_id: u32,
  f: impl FnOnce(&ChannelEntry, &PoolEntry) -> Result<T, Error>,
) -> Option<Result<T, Error>> {
  REGISTRY.with(|r| {
    let r = r.try_borrow().ok()?;
    let Region::Channel(c) = &r.entries.get(id as usize)?.as_ref()?.region else {
      return None;
    };
    let Region::Pool(p) = &r.entries.get(pool_id as usize)?.as_ref()?.region else {
      return None;
    };
    Some(f(c, p))
  })
}

/// Runs `f` on a channel alone.
pub fn with_channel_only<T>(
  id: u32,
  f: impl FnOnce(&ChannelEntry) -> Result<T, Error>,
) -> Option<Result<T, Error>> {
  REGISTRY.with(|r| {
    let r = r.try_borrow().ok()?;
    match &r.entries.get(id as usize)?.as_ref()?.region {
      Region::Channel(c) => Some(f(c)),
      Region::Pool(_) => None,
    }
  })
}

fn status(result: Option<Result<i32, Error>>) -> i32 {
  match result {
    Some(Ok(value)) => value,
    Some(Err(e)) => e.status(),
    None => STATUS_UNKNOWN_ID,
  }
}

// ---- the fast calls: integers in, one integer out -------------------------------------------

/// `[pool]` → slot index, or `STATUS_NONE` when every slot is in use.
pub fn pool_acquire([id]: [u32; 1]) -> i32 {
  status(with_pool(id, |p| {
    Ok(match p.pool.try_acquire(p.me)? {
      Some(lease) => lease.slot as i32,
      None => STATUS_NONE,
    })
  }))
}

/// `[pool, slot, generation]` → 1 if parked acquirers must be woken, else 0.
pub fn pool_release([id, slot, generation]: [u32; 3]) -> i32 {
  status(with_pool(id, |p| {
    let wake = p.pool.release(p.me, Lease { slot, generation })?;
    Ok(p.memory().deliver(wake, P_FREE_EPOCH))
  }))
}

/// `[pool, slot, generation, length]` → 0.
pub fn pool_handoff([id, slot, generation, length]: [u32; 4]) -> i32 {
  status(with_pool(id, |p| {
    p.pool.handoff(p.me, Lease { slot, generation }, length)?;
    Ok(0)
  }))
}

/// `[pool, slot, generation]` → the length the sender recorded.
pub fn pool_adopt([id, slot, generation]: [u32; 3]) -> i32 {
  status(with_pool(id, |p| {
    p.pool
      .adopt(p.me, Lease { slot, generation })
      .map(|length| length as i32)
  }))
}

/// `[channel, pool, slot, generation, length]` → 1 sent and receivers must be woken, 0 sent,
/// `STATUS_NONE` full. `pool` is the attachment that owns the lease.
pub fn channel_send([id, pool_id, slot, generation, length]: [u32; 5]) -> i32 {
  status(with_channel(id, pool_id, |c, p| {
    Ok(
      match c
        .channel
        .try_send(&p.pool, p.me, Lease { slot, generation }, length)?
      {
        Sent::Sent(wake) => c.memory().deliver(wake, C_RECV_EPOCH),
        Sent::Full => STATUS_NONE,
      },
    )
  }))
}

/// `[channel, pool]` → `slot * 2 + wake` (wake: senders must be woken), `STATUS_NONE` when empty,
/// `STATUS_CLOSED` when closed and drained. `pool` is the attachment that will own the lease. The
/// wrapper reads generation and length from the slot's metadata, which the receiver now owns.
pub fn channel_recv([id, pool_id]: [u32; 2]) -> i32 {
  status(with_channel(id, pool_id, |c, p| {
    Ok(match c.channel.try_recv(&p.pool, p.me)? {
      // Slot counts are capped at 2^24, so this fits an i32.
      Received::Lease(lease, _, wake) => {
        (lease.slot as i32) * 2 + c.memory().deliver(wake, C_SEND_EPOCH)
      }
      Received::Empty => STATUS_NONE,
      Received::Closed => STATUS_CLOSED,
    })
  }))
}
