//! Waiting: the counts of parked waiters the core's wake decisions read, synchronous waits on a
//! file-backed region's futex (`wait_file`), and the watcher threads that serve async waits on
//! one (`watch_file`, `arm_file`; the thread itself is in `watch`). Waits on an in-process region
//! are JS `Atomics.wait`/`waitAsync` on the same words and need nothing native beyond the counts.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use sabpool_core::futex;
use sabpool_core::layout::{C_RECV_EPOCH, C_SEND_EPOCH, P_FREE_EPOCH};
use sabpool_core::mem::Memory;
use sabpool_core::shm::MappedMemory;

use super::errors::{self, on_channel, on_pool};
use super::registry;
use super::watch::Watcher;

/// Which epoch word a wait parks on.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Site {
  FreeSlot = 0,
  Received = 1,
  Room = 2,
}

impl Site {
  fn from_u32(n: u32) -> Result<Site, String> {
    match n {
      0 => Ok(Site::FreeSlot),
      1 => Ok(Site::Received),
      2 => Ok(Site::Room),
      _ => Err(errors::error(errors::INVALID_ARG_TYPE, "unknown wait site")),
    }
  }

  fn epoch(self) -> usize {
    match self {
      Site::FreeSlot => P_FREE_EPOCH,
      Site::Received => C_RECV_EPOCH,
      Site::Room => C_SEND_EPOCH,
    }
  }
}

// ---- waiter counts ----------------------------------------------------------------------------

/// Counts one parked wait of this thread.
#[napi]
pub fn pool_note_wait(id: u32) {
  let _ = registry::with_pool(id, |p| p.pool.note_wait(p.me));
}

/// Registers (`delta` 1) or unregisters (-1) this thread as waiting for a free slot. Recorded in
/// the participant's entry of the region too, so the waits are withdrawn if this thread is torn
/// down mid-wait (see `registry::retire`) or its process dies (`Pool::reclaim_dead`).
#[napi]
pub fn pool_waiting(id: u32, delta: i32) -> Result<(), String> {
  on_pool(id, |p| {
    p.pool.add_waiters(delta)?;
    let parked = p.pool.parked(p.me)?.wrapping_add_signed(delta);
    p.pool.set_parked(p.me, parked)
  })
}

#[napi]
pub fn channel_note_wait(id: u32, receiver: bool) {
  let _ = registry::with_channel(id, |c| c.channel.note_wait(receiver));
}

/// Registers (`delta` 1) or unregisters (-1) this thread as a parked receiver or sender.
#[napi]
pub fn channel_waiting(id: u32, receiver: bool, delta: i32) -> Result<(), String> {
  on_channel(id, |c| {
    c.channel.add_waiters(receiver, delta)?;
    let parked = if receiver {
      &c.parked_recv
    } else {
      &c.parked_send
    };
    parked.set(parked.get().wrapping_add_signed(delta));
    Ok(())
  })
}

// ---- file-backed regions: futex waits and watcher threads ------------------------------------

/// The mapped file of attachment `id`, which must be of the kind `site` belongs to (a pool for
/// free slots, a channel otherwise).
fn site_file(id: u32, site: Site) -> Result<MappedMemory, String> {
  let found = match site {
    Site::FreeSlot => registry::with_pool(id, |p| p.memory().file().cloned()),
    Site::Received | Site::Room => registry::with_channel(id, |c| c.memory().file().cloned()),
  };
  found
    .map_err(errors::lookup)?
    .ok_or_else(|| errors::not_file("this pool or channel is not backed by a file"))
}

/// Blocks this thread on the epoch word of `site` of a file-backed region while it still holds
/// `seen`, for at most `timeout_ms`. Wakes come from any process.
#[napi]
pub fn wait_file(id: u32, site_kind: u32, seen: u32, timeout_ms: f64) -> Result<(), String> {
  let site = Site::from_u32(site_kind)?;
  let memory = site_file(id, site)?;
  let word = memory.u32_at(site.epoch()).map_err(errors::core)?;
  let timeout = std::time::Duration::from_secs_f64((timeout_ms.max(0.0) / 1000.0).min(3600.0));
  futex::wait(word, seen, Some(timeout));
  Ok(())
}

type WatcherCell = std::cell::RefCell<Option<Watcher>>;

/// Runs `f` on the watcher slot of `site` of attachment `id`.
fn with_watcher<T>(
  id: u32,
  site: Site,
  f: impl FnOnce(&WatcherCell) -> Result<T, String>,
) -> Result<T, String> {
  match site {
    Site::FreeSlot => registry::with_pool(id, |p| f(&p.watcher)),
    Site::Received => registry::with_channel(id, |c| f(&c.watchers[0])),
    Site::Room => registry::with_channel(id, |c| f(&c.watchers[1])),
  }
  .map_err(errors::lookup)?
}

/// Starts (once per attachment and site) the thread that serves async waits of this JS thread on
/// a file-backed region; `callback` runs on this JS thread each time an armed wait's epoch moves.
#[napi]
pub fn watch_file(
  id: u32,
  site_kind: u32,
  callback: Function<'_, (), Unknown<'static>>,
) -> Result<(), String> {
  let site = Site::from_u32(site_kind)?;
  let memory = site_file(id, site)?;
  with_watcher(id, site, |cell| {
    if cell.borrow().is_some() {
      return Ok(());
    }
    let tsfn = callback
      .build_threadsafe_function::<()>()
      .callee_handled::<false>()
      .weak::<true>()
      .build()
      .map_err(|e| {
        errors::internal(&format!("cannot make a thread-safe function: {}", e.reason))
      })?;
    let watcher = Watcher::start(memory, site.epoch(), tsfn)
      .map_err(|e| errors::error(errors::IO, format!("cannot start a watcher thread: {e}")))?;
    *cell.borrow_mut() = Some(watcher);
    Ok(())
  })
}

/// Arms the watcher of `site`: one callback once its epoch word no longer holds `seen`.
#[napi]
pub fn arm_file(id: u32, site_kind: u32, seen: u32) -> Result<(), String> {
  with_watcher(id, Site::from_u32(site_kind)?, |cell| {
    match &*cell.borrow() {
      Some(w) => {
        w.arm(seen);
        Ok(())
      }
      // The wrapper always starts the watcher before arming it.
      None => Err(errors::internal("no watcher started for this wait site")),
    }
  })
}
