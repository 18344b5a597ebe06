//! The Node-API layer: converts JS values, maps core errors to JS errors with stable codes. The
//! hot operations are raw callbacks (see `ffi`); everything here runs once per attach or per
//! stats poll.

mod ffi;
mod registry;
mod watch;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use std::path::Path;

use registry::{ChannelEntry, PoolEntry, RegionMemory, Site};
use sabpool_core::layout::{self, ChannelLayout, PoolLayout};
use sabpool_core::mem::Memory;
use sabpool_core::shm::{self, MappedMemory, RegionFile, ShmError};
use sabpool_core::{futex, Channel, Error as CoreError, Pool};

fn js_error(e: CoreError) -> napi::Error<String> {
  napi::Error::new(e.code().to_string(), e.to_string())
}

fn shm_error(e: ShmError) -> napi::Error<String> {
  napi::Error::new(e.code().to_string(), e.to_string())
}

fn detached() -> napi::Error<String> {
  napi::Error::new(
    "ERR_SABPOOL_DETACHED".to_string(),
    "this pool or channel has been detached in this thread".to_string(),
  )
}

/// Runs `f` on a pool attachment of this thread.
fn on_pool<T>(id: u32, f: impl FnOnce(&PoolEntry) -> sabpool_core::Result<T>) -> Result<T, String> {
  registry::with_pool(id, f)
    .ok_or_else(detached)?
    .map_err(js_error)
}

/// Runs `f` on a channel attachment of this thread.
fn on_channel<T>(
  id: u32,
  f: impl FnOnce(&ChannelEntry) -> sabpool_core::Result<T>,
) -> Result<T, String> {
  registry::with_channel_only(id, f)
    .ok_or_else(detached)?
    .map_err(js_error)
}

/// Keeps one attached pool or channel alive for this thread; dropping it (garbage collection)
/// detaches it and reclaims the slots it still holds.
#[napi]
pub struct Attachment {
  id: u32,
}

#[napi]
impl Attachment {
  /// Small integer naming the region in the fast calls of this thread.
  #[napi(getter)]
  pub fn id(&self) -> u32 {
    self.id
  }

  /// Detaches now instead of at garbage collection.
  #[napi]
  pub fn detach(&mut self) {
    registry::remove(self.id);
    self.id = u32::MAX;
  }
}

impl Drop for Attachment {
  fn drop(&mut self) {
    if self.id != u32::MAX {
      registry::remove(self.id);
    }
  }
}

fn hook_cleanup(env: &Env) -> Result<(), String> {
  registry::hook_cleanup_once(|| {
    env
      .add_env_cleanup_hook((), |_| registry::teardown())
      .map(|_| ())
  })
  .map_err(|e| napi::Error::new("ERR_SABPOOL_INTERNAL".to_string(), e.reason.clone()))
}

/// Layout facts the JS wrapper needs to read slot metadata and park on wait words.
#[napi(object)]
pub struct PoolInfo {
  pub id: u32,
  pub uid: u32,
  pub slot_size: u32,
  pub slots: u32,
  pub max_participants: u32,
  pub stride: u32,
  pub meta_offset: u32,
  pub data_offset: f64,
  pub total_length: f64,
  pub participant: u32,
}

fn pool_info(id: u32) -> Result<PoolInfo, String> {
  on_pool(id, |p| {
    let l: &PoolLayout = p.pool.layout();
    Ok(PoolInfo {
      id,
      uid: p.pool.uid(),
      slot_size: l.slot_size,
      slots: l.slot_count,
      max_participants: l.max_participants,
      stride: l.stride,
      meta_offset: l.meta_offset as u32,
      data_offset: l.data_offset as f64,
      total_length: l.total_len as f64,
      participant: p.me.0,
    })
  })
}

/// Bytes a pool region needs (throws ERR_SABPOOL_BAD_HANDLE for out-of-range geometry).
#[napi]
pub fn pool_region_size(slot_size: u32, slots: u32, max_participants: u32) -> Result<f64, String> {
  PoolLayout::new(slot_size, slots, max_participants)
    .map(|l| l.total_len as f64)
    .map_err(js_error)
}

/// Bytes a channel region needs.
#[napi]
pub fn channel_region_size(capacity: u32) -> Result<f64, String> {
  ChannelLayout::new(capacity)
    .map(|l| l.total_len as f64)
    .map_err(js_error)
}

/// Joins `pool` as a new participant and registers it in this thread's table.
fn join_pool(
  pool: sabpool_core::Result<Pool<RegionMemory>>,
  view: Option<ffi::ViewRef>,
) -> Result<Attachment, String> {
  let token = registry::new_token();
  let joined = pool.and_then(|pool| {
    let me = pool.join_process(token, shm::this_process())?;
    Ok(PoolEntry::new(pool, me, token))
  });
  match joined {
    Ok(entry) => Ok(Attachment {
      id: registry::insert_pool(entry, view),
    }),
    Err(e) => {
      if let Some(view) = view {
        view.delete();
      }
      Err(js_error(e))
    }
  }
}

fn attach_pool(
  env: &Env,
  view: Unknown,
  create: Option<(u32, u32, u32, u32)>,
) -> Result<Attachment, String> {
  hook_cleanup(env)?;
  let (memory, view_ref) = ffi::adopt_view(env.raw(), view.raw()).map_err(js_error)?;
  let memory = RegionMemory::Js(memory);
  let pool = match create {
    Some((slot_size, slots, max_participants, uid)) => {
      Pool::create(memory, slot_size, slots, max_participants, uid)
    }
    None => Pool::attach(memory),
  };
  join_pool(pool, Some(view_ref))
}

/// Lays out a fresh pool in `view` (a zeroed Uint8Array over a SharedArrayBuffer) and attaches.
#[napi]
pub fn pool_create(
  env: Env,
  view: Unknown,
  slot_size: u32,
  slots: u32,
  max_participants: u32,
  uid: u32,
) -> Result<Attachment, String> {
  attach_pool(&env, view, Some((slot_size, slots, max_participants, uid)))
}

/// Validates the pool region in `view` and attaches this thread as a participant.
#[napi]
pub fn pool_attach(env: Env, view: Unknown) -> Result<Attachment, String> {
  attach_pool(&env, view, None)
}

#[napi]
pub fn pool_describe(id: u32) -> Result<PoolInfo, String> {
  pool_info(id)
}

#[napi(object)]
pub struct PoolStats {
  pub slots: u32,
  pub in_use: u32,
  pub free: u32,
  pub high_water: u32,
  pub acquired: f64,
  pub released: f64,
  pub reclaimed: f64,
  pub waits: f64,
  pub participants: u32,
  pub waiting: u32,
}

#[napi]
pub fn pool_stats(id: u32) -> Result<PoolStats, String> {
  let s = on_pool(id, |p| p.pool.stats())?;
  Ok(PoolStats {
    slots: s.slots,
    in_use: s.in_use,
    free: s.slots - s.in_use,
    high_water: s.high_water,
    acquired: s.acquired as f64,
    released: s.released as f64,
    reclaimed: s.reclaimed as f64,
    waits: s.waits as f64,
    participants: s.participants,
    waiting: s.waiting,
  })
}

/// Counts one parked wait of this thread.
#[napi]
pub fn pool_note_wait(id: u32) {
  let _ = registry::with_pool(id, |p| p.pool.note_wait(p.me));
}

/// Registers (`delta` 1) or unregisters (-1) this thread as waiting for a free slot. Kept per
/// attachment so a thread torn down mid-wait does not leave the shared count raised.
#[napi]
pub fn pool_waiting(id: u32, delta: i32) -> Result<(), String> {
  on_pool(id, |p| {
    p.pool.add_waiters(delta)?;
    p.parked.set(p.parked.get().wrapping_add_signed(delta));
    // Kept in the region too: if this process dies, whoever reclaims it withdraws these.
    p.pool.set_parked(p.me, p.parked.get())
  })
}

/// Returns a slot whose Lease object was garbage-collected while still owned by this thread.
/// Returns whether parked acquirers must be woken; throws ERR_SABPOOL_STALE_LEASE if the slot
/// was not leased here with that generation.
#[napi]
pub fn pool_reclaim_lease(id: u32, slot: u32, generation: u32) -> Result<bool, String> {
  on_pool(id, |p| {
    p.pool
      .reclaim_lease(p.me, sabpool_core::Lease { slot, generation })
      .map(|wake| p.memory().deliver(wake, layout::P_FREE_EPOCH) == 1)
  })
}

fn attach_channel(
  env: &Env,
  view: Unknown,
  pool_id: u32,
  create: Option<(u32, u32)>,
) -> Result<Attachment, String> {
  hook_cleanup(env)?;
  let pool_uid = on_pool(pool_id, |p| Ok(p.pool.uid()))?;
  let (memory, view_ref) = ffi::adopt_view(env.raw(), view.raw()).map_err(js_error)?;
  let memory = RegionMemory::Js(memory);
  let channel = match create {
    Some((capacity, uid)) => Channel::create(memory, capacity, uid, pool_uid),
    None => Channel::attach_to_pool(memory, pool_uid),
  };
  match channel {
    Ok(channel) => Ok(Attachment {
      id: registry::insert_channel(ChannelEntry::new(channel), Some(view_ref)),
    }),
    Err(e) => {
      view_ref.delete();
      Err(js_error(e))
    }
  }
}

#[napi]
pub fn channel_create(
  env: Env,
  view: Unknown,
  pool_id: u32,
  capacity: u32,
  uid: u32,
) -> Result<Attachment, String> {
  attach_channel(&env, view, pool_id, Some((capacity, uid)))
}

#[napi]
pub fn channel_attach(env: Env, view: Unknown, pool_id: u32) -> Result<Attachment, String> {
  attach_channel(&env, view, pool_id, None)
}

#[napi(object)]
pub struct ChannelStats {
  pub capacity: u32,
  pub queued: f64,
  pub sent: f64,
  pub received: f64,
  pub send_waits: f64,
  pub recv_waits: f64,
  pub closed: bool,
}

/// The channel's random id (what wait diagnostics report).
#[napi]
pub fn channel_uid(id: u32) -> Result<u32, String> {
  on_channel(id, |c| Ok(c.channel.uid()))
}

#[napi]
pub fn channel_stats(id: u32) -> Result<ChannelStats, String> {
  let s = on_channel(id, |c| c.channel.stats())?;
  Ok(ChannelStats {
    capacity: s.capacity,
    queued: s.queued as f64,
    sent: s.sent as f64,
    received: s.received as f64,
    send_waits: s.send_waits as f64,
    recv_waits: s.recv_waits as f64,
    closed: s.closed,
  })
}

/// Closes the channel; returns false if it was closed already. The caller wakes every waiter of
/// an in-process channel; those of a file-backed one are woken here.
#[napi]
pub fn channel_close(id: u32) -> Result<bool, String> {
  on_channel(id, |c| {
    let was_open = c.channel.close()?;
    let all = sabpool_core::Wake(true);
    c.memory().deliver(all, layout::C_RECV_EPOCH);
    c.memory().deliver(all, layout::C_SEND_EPOCH);
    Ok(was_open)
  })
}

#[napi]
pub fn channel_note_wait(id: u32, receiver: bool) {
  let _ = registry::with_channel_only(id, |c| c.channel.note_wait(receiver));
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

/// Byte offsets of the words the JS wrapper parks on and reads.
#[napi(object)]
pub struct Offsets {
  pub free_head: u32,
  pub enqueue: u32,
  pub dequeue: u32,
  pub cells: u32,
  pub cell_size: u32,
  pub free_waiters: u32,
  pub free_epoch: u32,
  pub meta_size: u32,
  pub meta_word: u32,
  pub meta_length: u32,
  pub recv_waiters: u32,
  pub recv_epoch: u32,
  pub send_waiters: u32,
  pub send_epoch: u32,
  pub max_slot_size: u32,
  pub max_slots: u32,
  pub max_participants: u32,
  pub default_participants: u32,
  pub max_capacity: u32,
}

fn offsets() -> Offsets {
  Offsets {
    free_head: layout::P_FREE_HEAD as u32,
    enqueue: layout::C_ENQ as u32,
    dequeue: layout::C_DEQ as u32,
    cells: layout::C_CELLS as u32,
    cell_size: layout::CELL_SIZE as u32,
    free_waiters: layout::P_FREE_WAITERS as u32,
    free_epoch: layout::P_FREE_EPOCH as u32,
    meta_size: layout::META_SIZE as u32,
    meta_word: layout::META_WORD as u32,
    meta_length: layout::META_LENGTH as u32,
    recv_waiters: layout::C_RECV_WAITERS as u32,
    recv_epoch: layout::C_RECV_EPOCH as u32,
    send_waiters: layout::C_SEND_WAITERS as u32,
    send_epoch: layout::C_SEND_EPOCH as u32,
    max_slot_size: layout::MAX_SLOT_SIZE,
    max_slots: layout::MAX_SLOTS,
    max_participants: layout::MAX_PARTICIPANTS,
    default_participants: layout::DEFAULT_PARTICIPANTS,
    max_capacity: layout::MAX_CAPACITY,
  }
}

/// Status numbers of the fast calls and the error code and message each stands for.
#[napi(object)]
pub struct StatusInfo {
  pub status: i32,
  pub code: String,
  pub message: String,
}

fn status_table() -> Vec<StatusInfo> {
  let mut table: Vec<StatusInfo> = CoreError::ALL
    .iter()
    .map(|e| StatusInfo {
      status: e.status(),
      code: e.code().to_string(),
      message: e.to_string(),
    })
    .collect();
  table.push(StatusInfo {
    status: registry::STATUS_BAD_ARGUMENTS,
    code: "ERR_INVALID_ARG_TYPE".into(),
    message: "native call received non-numeric arguments".into(),
  });
  table.push(StatusInfo {
    status: registry::STATUS_UNKNOWN_ID,
    code: "ERR_SABPOOL_DETACHED".into(),
    message: "this pool or channel has been detached in this thread".into(),
  });
  table
}

/// Every constant the JS wrapper shares with the native side, defined once here: the layout
/// version handles carry, the default mode of region files, the wait-site numbers, the fast calls'
/// non-error results, the id no attachment has, and the status table.
#[napi(object)]
pub struct Protocol {
  pub layout_version: u32,
  pub default_file_mode: u32,
  pub site_free_slot: u32,
  pub site_received: u32,
  pub site_room: u32,
  pub status_none: i32,
  pub status_closed: i32,
  pub detached_id: u32,
  pub statuses: Vec<StatusInfo>,
  pub offsets: Offsets,
}

#[napi]
pub fn protocol() -> Protocol {
  Protocol {
    layout_version: layout::VERSION,
    default_file_mode: shm::DEFAULT_MODE,
    site_free_slot: Site::FreeSlot as u32,
    site_received: Site::Received as u32,
    site_room: Site::Room as u32,
    status_none: registry::STATUS_NONE,
    status_closed: registry::STATUS_CLOSED,
    detached_id: registry::DETACHED_ID,
    statuses: status_table(),
    offsets: offsets(),
  }
}

#[napi(module_exports)]
pub fn init(exports: Object, env: Env) -> Result<()> {
  ffi::register_fast_functions(env.raw(), exports.raw())
}

// ---- file-backed regions (cross-process) ------------------------------------------------------

fn mapped(file: std::sync::Arc<RegionFile>) -> Result<MappedMemory, String> {
  MappedMemory::new(file).map_err(js_error)
}

/// Creates a pool in a new file `sabpool.<name>.pool` of `dir` (replacing one left over by
/// processes that are all gone) and attaches this thread.
#[napi]
#[allow(clippy::too_many_arguments)]
pub fn pool_create_file(
  env: Env,
  dir: String,
  name: String,
  slot_size: u32,
  slots: u32,
  max_participants: u32,
  uid: u32,
  mode: u32,
) -> Result<Attachment, String> {
  hook_cleanup(&env)?;
  // Checked first, so a bad name is reported before a bad geometry, as before.
  shm::pool_file_name(&name).map_err(shm_error)?;
  let layout = PoolLayout::new(slot_size, slots, max_participants).map_err(js_error)?;
  let file = shm::create_pool_file(Path::new(&dir), &name, layout, uid, mode).map_err(shm_error)?;
  let pool = Pool::attach(RegionMemory::File(mapped(file)?));
  join_pool(pool, None)
}

/// Opens the pool file `sabpool.<name>.pool` of `dir`, validates it, reclaims what participants
/// of dead processes still hold (first, so their entries are free to join), and attaches this
/// thread.
#[napi]
pub fn pool_open_file(env: Env, dir: String, name: String) -> Result<Attachment, String> {
  hook_cleanup(&env)?;
  let file = shm::open_pool_file(Path::new(&dir), &name).map_err(shm_error)?;
  let pool = Pool::attach(RegionMemory::File(mapped(file)?)).and_then(|pool| {
    let reclaimed = pool.reclaim_dead(shm::process_alive)?;
    pool.memory().deliver(reclaimed.wake, layout::P_FREE_EPOCH);
    Ok(pool)
  });
  join_pool(pool, None)
}

fn file_channel(
  pool_id: u32,
  open: impl FnOnce(u32) -> Result<std::sync::Arc<RegionFile>, String>,
) -> Result<Attachment, String> {
  let (pool_uid, is_file) = on_pool(pool_id, |p| Ok((p.pool.uid(), p.memory().file().is_some())))?;
  if !is_file {
    return Err(js_error(CoreError::BadHandle(
      "a file-backed channel needs a file-backed pool",
    )));
  }
  let file = open(pool_uid)?;
  let channel =
    Channel::attach_to_pool(RegionMemory::File(mapped(file)?), pool_uid).map_err(js_error)?;
  Ok(Attachment {
    id: registry::insert_channel(ChannelEntry::new(channel), None),
  })
}

/// Creates a channel in a new file `sabpool.<name>.channel` of `dir` for the file-backed pool
/// `pool_id`. A channel file left over from an earlier pool (another pool uid) is replaced.
#[napi]
pub fn channel_create_file(
  env: Env,
  dir: String,
  name: String,
  pool_id: u32,
  capacity: u32,
  uid: u32,
  mode: u32,
) -> Result<Attachment, String> {
  hook_cleanup(&env)?;
  shm::channel_file_name(&name).map_err(shm_error)?;
  let layout = ChannelLayout::new(capacity).map_err(js_error)?;
  file_channel(pool_id, |pool_uid| {
    shm::create_channel_file(Path::new(&dir), &name, layout, uid, pool_uid, mode).map_err(shm_error)
  })
}

/// Opens the channel file `sabpool.<name>.channel` of `dir`; it must carry slots of `pool_id`.
#[napi]
pub fn channel_open_file(
  env: Env,
  dir: String,
  name: String,
  pool_id: u32,
) -> Result<Attachment, String> {
  hook_cleanup(&env)?;
  shm::channel_file_name(&name).map_err(shm_error)?;
  file_channel(pool_id, |_| {
    shm::open_channel_file(Path::new(&dir), &name).map_err(shm_error)
  })
}

/// The mapped file of a pool or channel attachment, or None for an in-process region.
fn region_file(id: u32) -> Result<Option<MappedMemory>, String> {
  if let Some(found) = registry::with_pool(id, |p| Ok(p.memory().file().cloned())) {
    return found.map_err(js_error);
  }
  registry::with_channel_only(id, |c| Ok(c.memory().file().cloned()))
    .ok_or_else(detached)?
    .map_err(js_error)
}

fn require_file(id: u32) -> Result<MappedMemory, String> {
  region_file(id)?.ok_or_else(|| {
    js_error(CoreError::BadHandle(
      "this pool or channel is not backed by a file",
    ))
  })
}

/// A new JS buffer over the whole mapping of a file-backed attachment (a SharedArrayBuffer where
/// this Node supports one over external memory, else an ArrayBuffer).
#[napi]
pub fn region_buffer(env: Env, id: u32) -> Result<Unknown<'static>, String> {
  let memory = require_file(id)?;
  ffi::region_buffer(&env, memory.file()).map_err(js_error)
}

/// Path of a file-backed region, or null.
#[napi]
pub fn region_path(id: u32) -> Result<Option<String>, String> {
  Ok(region_file(id)?.map(|m| m.file().path().display().to_string()))
}

/// Removes the region's file name if it still names this region. Returns whether it did.
#[napi]
pub fn region_unlink(id: u32) -> Result<bool, String> {
  require_file(id)?.file().unlink().map_err(shm_error)
}

#[napi(object)]
pub struct DeadReclaimed {
  pub participants: u32,
  pub slots: u32,
}

/// Tears down participants whose process has died and returns their leased slots.
#[napi]
pub fn pool_reclaim_dead(id: u32) -> Result<DeadReclaimed, String> {
  on_pool(id, |p| {
    let r = p.pool.reclaim_dead(shm::process_alive)?;
    p.memory().deliver(r.wake, layout::P_FREE_EPOCH);
    Ok(DeadReclaimed {
      participants: r.participants,
      slots: r.slots,
    })
  })
}

/// The mapped file of attachment `id`, which must be of the kind `site` belongs to (a pool for
/// free slots, a channel otherwise).
fn site_file(id: u32, site: Site) -> Result<MappedMemory, String> {
  let found = match site {
    Site::FreeSlot => registry::with_pool(id, |p| Ok(p.memory().file().cloned())),
    Site::Received | Site::Room => {
      registry::with_channel_only(id, |c| Ok(c.memory().file().cloned()))
    }
  };
  found
    .ok_or_else(detached)?
    .map_err(js_error)?
    .ok_or_else(|| {
      js_error(CoreError::BadHandle(
        "this pool or channel is not backed by a file",
      ))
    })
}

fn site(n: u32) -> Result<Site, String> {
  Site::from_u32(n).ok_or_else(|| {
    napi::Error::new(
      "ERR_INVALID_ARG_TYPE".to_string(),
      "unknown wait site".to_string(),
    )
  })
}

/// Blocks this thread on the epoch word of `site` of a file-backed region while it still holds
/// `seen`, for at most `timeout_ms`. Wakes come from any process.
#[napi]
pub fn wait_file(id: u32, site_kind: u32, seen: u32, timeout_ms: f64) -> Result<(), String> {
  let site = site(site_kind)?;
  let memory = site_file(id, site)?;
  let word = memory.u32_at(site.epoch()).map_err(js_error)?;
  let timeout = std::time::Duration::from_secs_f64((timeout_ms.max(0.0) / 1000.0).min(3600.0));
  futex::wait(word, seen, Some(timeout));
  Ok(())
}

type WatcherCell = std::cell::RefCell<Option<watch::Watcher>>;

/// Runs `f` on the watcher slot of `site` of attachment `id`.
fn with_watcher<T>(
  id: u32,
  site: Site,
  f: impl FnOnce(&WatcherCell) -> Result<T, String>,
) -> Result<T, String> {
  let found = match site {
    Site::FreeSlot => registry::with_pool(id, |p| Ok(f(&p.watcher))),
    Site::Received => registry::with_channel_only(id, |c| Ok(f(&c.watchers[0]))),
    Site::Room => registry::with_channel_only(id, |c| Ok(f(&c.watchers[1]))),
  };
  found.ok_or_else(detached)?.map_err(js_error)?
}

/// Starts (once per attachment and site) the thread that serves async waits of this JS thread on
/// a file-backed region; `callback` runs on this JS thread each time an armed wait's epoch moves.
#[napi]
pub fn watch_file(
  id: u32,
  site_kind: u32,
  callback: Function<'_, (), Unknown<'static>>,
) -> Result<(), String> {
  let site = site(site_kind)?;
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
      .map_err(|e| napi::Error::new("ERR_SABPOOL_INTERNAL".to_string(), e.reason.clone()))?;
    let watcher = watch::Watcher::start(memory, site.epoch(), tsfn).map_err(|e| {
      napi::Error::new(
        "ERR_SABPOOL_IO".to_string(),
        format!("cannot start a watcher thread: {e}"),
      )
    })?;
    *cell.borrow_mut() = Some(watcher);
    Ok(())
  })
}

/// Arms the watcher of `site`: one callback once its epoch word no longer holds `seen`.
#[napi]
pub fn arm_file(id: u32, site_kind: u32, seen: u32) -> Result<(), String> {
  with_watcher(id, site(site_kind)?, |cell| match &*cell.borrow() {
    Some(w) => {
      w.arm(seen);
      Ok(())
    }
    None => Err(js_error(CoreError::BadHandle(
      "no watcher started for this wait site",
    ))),
  })
}
