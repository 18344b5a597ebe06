//! Per-thread table of the regions this thread has attached, so the hot calls can name a pool or
//! channel by a small integer instead of unwrapping a JS object.
//!
//! Each entry holds a reference to the SharedArrayBuffer view (keeping the memory alive) and, for
//! a pool, the participant this thread registered as. A table region (raw words JS keeps) is its
//! validated mapping and the watcher threads of its wait words: nothing to withdraw when it
//! leaves. An entry leaves the table when its JS owner is garbage-collected or when the thread's
//! environment is torn down; leaving reclaims every slot the participant still holds, which is
//! how leases of an exiting worker come back.
//!
//! Depends only on the core and on the binding's memory types (`region`, `memory`, `watch`);
//! everything that talks to JS is built on top of it.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};

use sabpool_core::layout::{P_FREE_EPOCH, T_WAIT_WORDS};
use sabpool_core::{Channel, Participant, Pool, Table};

use super::memory::ViewRef;
use super::region::RegionMemory;
use super::watch::Watcher;

/// An id `insert` never hands out (ids are indices of a Vec far shorter than this): lookups with
/// it fail with [`Lookup::Unknown`].
pub const DETACHED_ID: u32 = u32::MAX;

/// Why a lookup found no attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
  /// No attachment of that id and kind in this thread (detached, or never attached).
  Unknown,
  /// The table is borrowed already: a re-entrant call, which sabpool never makes.
  Busy,
}

pub struct PoolEntry {
  pub pool: Pool<RegionMemory>,
  pub me: Participant,
  pub token: u64,
  /// File-backed pools: the thread that waits for free slots on behalf of async acquirers.
  pub watcher: RefCell<Option<Watcher>>,
}

impl PoolEntry {
  pub fn new(pool: Pool<RegionMemory>, me: Participant, token: u64) -> Self {
    PoolEntry {
      pool,
      me,
      token,
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

pub struct TableEntry {
  pub table: Table<RegionMemory>,
  /// Threads that wait for the table's wait words (8 to 11) on behalf of async waiters.
  pub watchers: [RefCell<Option<Watcher>>; T_WAIT_WORDS as usize],
}

impl TableEntry {
  pub fn new(table: Table<RegionMemory>) -> Self {
    TableEntry {
      table,
      watchers: Default::default(),
    }
  }

  pub fn memory(&self) -> &RegionMemory {
    self.table.memory()
  }
}

/// What kind of region an attachment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
  Pool,
  Channel,
  Table,
}

impl Kind {
  pub fn name(self) -> &'static str {
    match self {
      Kind::Pool => "pool",
      Kind::Channel => "channel",
      Kind::Table => "table",
    }
  }
}

enum Region {
  Pool(PoolEntry),
  Channel(ChannelEntry),
  Table(TableEntry),
}

impl Region {
  fn memory(&self) -> &RegionMemory {
    match self {
      Region::Pool(p) => p.memory(),
      Region::Channel(c) => c.memory(),
      Region::Table(t) => t.memory(),
    }
  }

  fn kind(&self) -> Kind {
    match self {
      Region::Pool(_) => Kind::Pool,
      Region::Channel(_) => Kind::Channel,
      Region::Table(_) => Kind::Table,
    }
  }
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

impl Registry {
  fn region(&self, id: u32) -> Result<&Region, Lookup> {
    match self.entries.get(id as usize) {
      Some(Some(entry)) => Ok(&entry.region),
      _ => Err(Lookup::Unknown),
    }
  }
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

/// Tables are file-backed only (in-process, JS keeps such words in a SharedArrayBuffer itself).
pub fn insert_table(entry: TableEntry) -> u32 {
  insert(Region::Table(entry), None)
}

fn retire(entry: Entry) {
  let Entry { region, view } = entry;
  // A thread torn down while parked (e.g. `worker.terminate()` during a wait) never ran the code
  // that unregisters its waits; withdraw them here so the waiter counts stay exact. A pool's
  // count of them is the participant's own word in the region (the one a reclaimer of a dead
  // process reads); a channel's is kept here. Errors mean the region was scribbled on; its state
  // is then unknowable and there is nothing better to do.
  // Watcher threads are told to stop first (they hold their own reference to the mapping).
  // Slots reclaimed from a file-backed pool wake waiters of other processes right here; an
  // in-process pool's waiters (in threads still running) re-check within a park slice.
  match &region {
    Region::Pool(p) => {
      drop(p.watcher.take());
      if let Ok(parked) = p.pool.parked(p.me) {
        let _ = p.pool.add_waiters(-(parked as i32));
      }
      if let Ok((_, wake)) = p.pool.leave(p.me, p.token) {
        p.memory().deliver(wake, P_FREE_EPOCH);
      }
    }
    Region::Channel(c) => {
      c.watchers.iter().for_each(|w| drop(w.take()));
      let _ = c.channel.add_waiters(true, -(c.parked_recv.get() as i32));
      let _ = c.channel.add_waiters(false, -(c.parked_send.get() as i32));
    }
    Region::Table(t) => t.watchers.iter().for_each(|w| drop(w.take())),
  }
  drop(region);
  if let Some(view) = view {
    view.delete();
  }
}

/// Detaches one pool, channel or table: a pool's participant leaves (its leases are reclaimed)
/// and the memory reference is dropped.
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
  // Channels and tables first, then pools, so none outlives the pool it names.
  let (others, pools): (Vec<_>, Vec<_>) = entries
    .entries
    .into_iter()
    .flatten()
    .partition(|e| !matches!(e.region, Region::Pool(_)));
  others.into_iter().chain(pools).for_each(retire);
}

/// Registers `hook` as this thread's env cleanup the first time a region is attached.
pub fn hook_cleanup_once<E>(hook: impl FnOnce() -> Result<(), E>) -> Result<(), E> {
  if CLEANUP_HOOKED.with(|h| h.get()) {
    return Ok(());
  }
  hook()?;
  CLEANUP_HOOKED.with(|h| h.set(true));
  Ok(())
}

/// Runs `f` on the table, borrowed for reading.
fn read<T>(f: impl FnOnce(&Registry) -> Result<T, Lookup>) -> Result<T, Lookup> {
  REGISTRY.with(|r| f(&*r.try_borrow().map_err(|_| Lookup::Busy)?))
}

/// Runs `f` on a pool attachment of this thread.
pub fn with_pool<T>(id: u32, f: impl FnOnce(&PoolEntry) -> T) -> Result<T, Lookup> {
  read(|r| match r.region(id)? {
    Region::Pool(p) => Ok(f(p)),
    _ => Err(Lookup::Unknown),
  })
}

/// Runs `f` on a channel attachment of this thread.
pub fn with_channel<T>(id: u32, f: impl FnOnce(&ChannelEntry) -> T) -> Result<T, Lookup> {
  read(|r| match r.region(id)? {
    Region::Channel(c) => Ok(f(c)),
    _ => Err(Lookup::Unknown),
  })
}

/// Runs `f` on a table attachment of this thread.
pub fn with_table<T>(id: u32, f: impl FnOnce(&TableEntry) -> T) -> Result<T, Lookup> {
  read(|r| match r.region(id)? {
    Region::Table(t) => Ok(f(t)),
    _ => Err(Lookup::Unknown),
  })
}

/// Runs `f` on a channel and on the pool attachment whose participant sends or receives (any
/// attachment of the channel's pool in this thread; the core checks the pool's uid).
pub fn with_channel_and_pool<T>(
  id: u32,
  pool_id: u32,
  f: impl FnOnce(&ChannelEntry, &PoolEntry) -> T,
) -> Result<T, Lookup> {
  read(|r| match (r.region(id)?, r.region(pool_id)?) {
    (Region::Channel(c), Region::Pool(p)) => Ok(f(c, p)),
    _ => Err(Lookup::Unknown),
  })
}

/// The kind of attachment `id` of this thread.
pub fn kind(id: u32) -> Result<Kind, Lookup> {
  read(|r| Ok(r.region(id)?.kind()))
}

/// Runs `f` on the memory of a pool, channel or table attachment of this thread.
pub fn with_memory<T>(id: u32, f: impl FnOnce(&RegionMemory) -> T) -> Result<T, Lookup> {
  read(|r| Ok(f(r.region(id)?.memory())))
}
