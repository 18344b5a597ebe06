//! Waiting: the counts of parked waiters the core's wake decisions read, synchronous waits on a
//! file-backed region's futex (`wait_file`), the watcher threads that serve async waits on one
//! (`watch_file`, `arm_file`; the thread itself is in `watch`), and wakes of a table's wait words
//! (`table_wake`). Waits on an in-process region are JS `Atomics.wait`/`waitAsync` on the same
//! words and need nothing native beyond the counts.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use sabpool_core::futex;
use sabpool_core::layout::{C_RECV_EPOCH, C_SEND_EPOCH, P_FREE_EPOCH, T_WAIT_WORD, T_WAIT_WORDS};
use sabpool_core::mem::Memory;
use sabpool_core::shm::MappedMemory;

use super::errors::{self, on_channel, on_pool};
use super::registry::{self, Kind, Lookup};
use super::watch::Watcher;

/// Which word a wait parks on: the epoch word of a pool (free slots) or of a channel (received,
/// room), or one of a table's four wait words. A table's wait words are its data words 8 to 11
/// (`layout::T_WAIT_WORD`, `T_WAIT_WORDS`), site `TableWait0 + k` on word `8 + k`: JS bumps one
/// with `Atomics` and then wakes its waiters (`table_wake`); the core never reads them for a
/// decision. A table of fewer than 12 words has only the wait sites of the words it holds.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Site {
  FreeSlot = 0,
  Received = 1,
  Room = 2,
  /// Table word 8.
  TableWait0 = 3,
  /// Table word 9.
  TableWait1 = 4,
  /// Table word 10.
  TableWait2 = 5,
  /// Table word 11.
  TableWait3 = 6,
}

/// The largest site number.
const LAST_SITE: u32 = Site::TableWait3 as u32;
const _: () = assert!(LAST_SITE + 1 - Site::TableWait0 as u32 == T_WAIT_WORDS);

impl Site {
  fn from_u32(n: u32) -> Result<Site, String> {
    match n {
      0 => Ok(Site::FreeSlot),
      1 => Ok(Site::Received),
      2 => Ok(Site::Room),
      3 => Ok(Site::TableWait0),
      4 => Ok(Site::TableWait1),
      5 => Ok(Site::TableWait2),
      6 => Ok(Site::TableWait3),
      _ => Err(errors::error(
        errors::OUT_OF_RANGE,
        format!("unknown wait site {n} (sites are 0 to {LAST_SITE})"),
      )),
    }
  }

  /// The kind of region the site is on.
  fn kind(self) -> Kind {
    match self {
      Site::FreeSlot => Kind::Pool,
      Site::Received | Site::Room => Kind::Channel,
      _ => Kind::Table,
    }
  }

  /// For a table's site, which of its wait words (0 to 3) it parks on.
  fn table_wait(self) -> Option<u32> {
    (self.kind() == Kind::Table).then(|| self as u32 - Site::TableWait0 as u32)
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

/// Why `site` could not be reached on attachment `id`: an attachment of another kind than the
/// site's says so (ERR_INVALID_ARG_TYPE), a missing one is detached.
fn site_lookup(id: u32, site: Site, e: Lookup) -> napi::Error<String> {
  match (e, registry::kind(id)) {
    (Lookup::Unknown, Ok(kind)) => errors::error(
      errors::INVALID_ARG_TYPE,
      format!(
        "wait site {} is on a {}, and attachment {id} is a {}",
        site as u32,
        site.kind().name(),
        kind.name()
      ),
    ),
    _ => errors::lookup(e),
  }
}

/// Byte offset of wait word `k` of `table`, which must hold that word.
fn table_wait_offset(table: &registry::TableEntry, k: u32) -> Result<usize, String> {
  table.table.wait_word_offset(k).ok_or_else(|| {
    errors::error(
      errors::OUT_OF_RANGE,
      format!(
        "wait site {} parks on table word {}, and this table has {} words",
        Site::TableWait0 as u32 + k,
        T_WAIT_WORD + k,
        table.table.words()
      ),
    )
  })
}

/// The mapped file of attachment `id` and the byte offset in it of the word `site` parks on. The
/// attachment must be of the kind `site` belongs to, file-backed, and (a table) hold the word.
fn site_word(id: u32, site: Site) -> Result<(MappedMemory, usize), String> {
  let found = match site.table_wait() {
    None => {
      let epoch = match site {
        Site::FreeSlot => P_FREE_EPOCH,
        Site::Received => C_RECV_EPOCH,
        _ => C_SEND_EPOCH,
      };
      match site.kind() {
        Kind::Pool => registry::with_pool(id, |p| Ok((p.memory().file().cloned(), epoch))),
        _ => registry::with_channel(id, |c| Ok((c.memory().file().cloned(), epoch))),
      }
    }
    Some(k) => registry::with_table(id, |t| {
      table_wait_offset(t, k).map(|offset| (t.memory().file().cloned(), offset))
    }),
  };
  let (file, offset) = found.map_err(|e| site_lookup(id, site, e))??;
  let file = file.ok_or_else(|| {
    errors::not_file(&format!(
      "this {} is not backed by a file",
      site.kind().name()
    ))
  })?;
  Ok((file, offset))
}

/// Blocks this thread on the word `site` parks on (an epoch word of a pool or channel, a wait word
/// of a table) of a file-backed region while it still holds `seen`, for at most `timeout_ms`.
/// Wakes come from any process.
#[napi]
pub fn wait_file(id: u32, site_kind: u32, seen: u32, timeout_ms: f64) -> Result<(), String> {
  let site = Site::from_u32(site_kind)?;
  let (memory, offset) = site_word(id, site)?;
  let word = memory.u32_at(offset).map_err(errors::core)?;
  let timeout = std::time::Duration::from_secs_f64((timeout_ms.max(0.0) / 1000.0).min(3600.0));
  futex::wait(word, seen, Some(timeout));
  Ok(())
}

/// Wakes every thread of every process blocked on wait site `site_kind` (3 to 6) of the table
/// `id`, in `wait_file` or in a watcher thread. JS bumps the word (`Atomics.add` on its mapping)
/// first: a waiter whose word still holds the value it saw parks again. Returns how many threads
/// the futex woke (0 where the platform does not say; there waiters poll).
#[napi]
pub fn table_wake(id: u32, site_kind: u32) -> Result<u32, String> {
  let site = Site::from_u32(site_kind)?;
  if site.table_wait().is_none() {
    return Err(errors::error(
      errors::OUT_OF_RANGE,
      format!(
        "tableWake takes a table's wait site ({} to {LAST_SITE}), not {site_kind}",
        Site::TableWait0 as u32
      ),
    ));
  }
  let (memory, offset) = site_word(id, site)?;
  let word = memory.u32_at(offset).map_err(errors::core)?;
  Ok(u32::try_from(futex::wake_all(word)).unwrap_or(u32::MAX))
}

type WatcherCell = std::cell::RefCell<Option<Watcher>>;

/// Runs `f` on the watcher slot of `site` of attachment `id`.
fn with_watcher<T>(
  id: u32,
  site: Site,
  f: impl FnOnce(&WatcherCell) -> Result<T, String>,
) -> Result<T, String> {
  let found = match (site, site.table_wait()) {
    (_, Some(k)) => registry::with_table(id, |t| {
      table_wait_offset(t, k)?;
      f(&t.watchers[k as usize])
    }),
    (Site::FreeSlot, None) => registry::with_pool(id, |p| f(&p.watcher)),
    (Site::Received, None) => registry::with_channel(id, |c| f(&c.watchers[0])),
    (_, None) => registry::with_channel(id, |c| f(&c.watchers[1])),
  };
  found.map_err(|e| site_lookup(id, site, e))?
}

/// Starts (once per attachment and site) the thread that serves async waits of this JS thread on
/// a file-backed region; `callback` runs on this JS thread each time an armed wait's word moves.
#[napi]
pub fn watch_file(
  id: u32,
  site_kind: u32,
  callback: Function<'_, (), Unknown<'static>>,
) -> Result<(), String> {
  let site = Site::from_u32(site_kind)?;
  let (memory, offset) = site_word(id, site)?;
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
    let watcher = Watcher::start(memory, offset, tsfn)
      .map_err(|e| errors::error(errors::IO, format!("cannot start a watcher thread: {e}")))?;
    *cell.borrow_mut() = Some(watcher);
    Ok(())
  })
}

/// Arms the watcher of `site`: one callback once its word no longer holds `seen`.
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
