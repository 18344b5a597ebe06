//! Creating, attaching, opening, closing and unlinking pools and channels, in a SharedArrayBuffer
//! of this process or in a mapped file shared with other processes, and tables (raw words next to
//! a file-backed pool); and the calls that return the slots of participants that went away.

use std::path::Path;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use sabpool_core::layout::{self, ChannelLayout, PoolLayout, TableLayout};
use sabpool_core::shm::{self, MappedMemory, RegionFile};
use sabpool_core::{Channel, Lease, Pool, Table, Wake};

use super::errors::{self, on_channel, on_pool};
use super::memory::{self, ViewRef};
use super::region::RegionMemory;
use super::registry::{self, ChannelEntry, PoolEntry, TableEntry};

/// Keeps one attached pool, channel or table alive for this thread; dropping it (garbage collection)
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
    self.id = registry::DETACHED_ID;
  }
}

impl Drop for Attachment {
  fn drop(&mut self) {
    if self.id != registry::DETACHED_ID {
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
  .map_err(|e| errors::internal(&format!("cannot hook the env cleanup: {}", e.reason)))
}

/// Bytes a pool region needs (throws ERR_SABPOOL_BAD_HANDLE for out-of-range geometry).
#[napi]
pub fn pool_region_size(slot_size: u32, slots: u32, max_participants: u32) -> Result<f64, String> {
  PoolLayout::new(slot_size, slots, max_participants)
    .map(|l| l.total_len as f64)
    .map_err(errors::core)
}

/// Bytes a channel region needs.
#[napi]
pub fn channel_region_size(capacity: u32) -> Result<f64, String> {
  ChannelLayout::new(capacity)
    .map(|l| l.total_len as f64)
    .map_err(errors::core)
}

// ---- in-process regions (a SharedArrayBuffer) -----------------------------------------------

/// Joins `pool` as a new participant and registers it in this thread's table.
fn join_pool(
  pool: sabpool_core::Result<Pool<RegionMemory>>,
  view: Option<ViewRef>,
) -> Result<Attachment, String> {
  let token = registry::new_token();
  let joined = pool.and_then(|pool| {
    let me = pool.join_process(token, shm::this_process())?;
    Ok(PoolEntry::new(pool, me, token))
  });
  register_pool(joined, view)
}

/// Registers a joined pool participant in this thread's table.
fn register_pool(
  joined: sabpool_core::Result<PoolEntry>,
  view: Option<ViewRef>,
) -> Result<Attachment, String> {
  match joined {
    Ok(entry) => Ok(Attachment {
      id: registry::insert_pool(entry, view),
    }),
    Err(e) => {
      if let Some(view) = view {
        view.delete();
      }
      Err(errors::core(e))
    }
  }
}

fn attach_pool(
  env: &Env,
  view: Unknown,
  create: Option<(u32, u32, u32, u32)>,
) -> Result<Attachment, String> {
  hook_cleanup(env)?;
  let (memory, view_ref) = memory::adopt_view(env.raw(), view.raw()).map_err(errors::core)?;
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

fn attach_channel(
  env: &Env,
  view: Unknown,
  pool_id: u32,
  create: Option<(u32, u32)>,
) -> Result<Attachment, String> {
  hook_cleanup(env)?;
  let pool_uid = on_pool(pool_id, |p| Ok(p.pool.uid()))?;
  let (memory, view_ref) = memory::adopt_view(env.raw(), view.raw()).map_err(errors::core)?;
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
      Err(errors::core(e))
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

// ---- file-backed regions (cross-process) ------------------------------------------------------

fn mapped(file: Arc<RegionFile>) -> Result<MappedMemory, String> {
  MappedMemory::new(file).map_err(errors::core)
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
  // Checked first, so a bad name is reported before a bad geometry.
  shm::pool_file_name(&name).map_err(errors::shm)?;
  let layout = PoolLayout::new(slot_size, slots, max_participants).map_err(errors::core)?;
  // This thread joins the pool inside the new file, before it is published (see
  // `shm::create_pool_file`): no concurrent creator can judge it stale.
  let token = registry::new_token();
  let (file, me) = shm::create_pool_file(
    Path::new(&dir),
    &name,
    layout,
    uid,
    mode,
    token,
    shm::this_process(),
  )
  .map_err(errors::shm)?;
  let joined =
    Pool::attach(RegionMemory::File(mapped(file)?)).map(|pool| PoolEntry::new(pool, me, token));
  register_pool(joined, None)
}

/// Opens the pool file `sabpool.<name>.pool` of `dir`, validates it, joins it (taking over the
/// entry of a dead participant if every entry is taken), then reclaims what participants of dead
/// processes still hold, and attaches this thread. The reclaim runs as this participant, so if
/// this process is killed mid-way, whoever reclaims next takes it over. A file owned by another
/// user is refused (ERR_SABPOOL_ACCESS) unless `allow_foreign_owner`.
#[napi]
pub fn pool_open_file(
  env: Env,
  dir: String,
  name: String,
  allow_foreign_owner: Option<bool>,
) -> Result<Attachment, String> {
  hook_cleanup(&env)?;
  let options = shm::OpenOptions {
    allow_foreign_owner: allow_foreign_owner.unwrap_or(false),
  };
  let file = shm::open_pool_file(Path::new(&dir), &name, options).map_err(errors::shm)?;
  let token = registry::new_token();
  let joined = Pool::attach(RegionMemory::File(mapped(file)?)).and_then(|pool| {
    let (me, took) = pool.join_reclaiming(token, shm::this_process(), shm::process_alive)?;
    let entry = PoolEntry::new(pool, me, token);
    let reclaimed = entry.pool.reclaim_dead(me, shm::process_alive);
    // Registered even if the reclaim failed (scribbled memory): the participant exists.
    let wake = Wake(took.wake.0 | reclaimed.as_ref().is_ok_and(|r| r.wake.0));
    entry.memory().deliver(wake, layout::P_FREE_EPOCH);
    match reclaimed {
      Ok(_) => Ok(entry),
      Err(e) => {
        let _ = entry.pool.leave(me, token);
        Err(e)
      }
    }
  });
  register_pool(joined, None)
}

/// The uid of the pool `pool_id`, which must be file-backed for a `what` (channel, table) in a
/// file to go with it.
fn file_pool_uid(pool_id: u32, what: &str) -> Result<u32, String> {
  let (pool_uid, is_file) = on_pool(pool_id, |p| Ok((p.pool.uid(), p.memory().file().is_some())))?;
  if !is_file {
    return Err(errors::not_file(&format!(
      "a file-backed {what} needs a file-backed pool"
    )));
  }
  Ok(pool_uid)
}

fn file_channel(
  pool_id: u32,
  open: impl FnOnce(u32) -> Result<Arc<RegionFile>, String>,
) -> Result<Attachment, String> {
  let pool_uid = file_pool_uid(pool_id, "channel")?;
  let file = open(pool_uid)?;
  let channel =
    Channel::attach_to_pool(RegionMemory::File(mapped(file)?), pool_uid).map_err(errors::core)?;
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
  shm::channel_file_name(&name).map_err(errors::shm)?;
  let layout = ChannelLayout::new(capacity).map_err(errors::core)?;
  file_channel(pool_id, |pool_uid| {
    shm::create_channel_file(Path::new(&dir), &name, layout, uid, pool_uid, mode)
      .map_err(errors::shm)
  })
}

/// Opens the channel file `sabpool.<name>.channel` of `dir`; it must carry slots of `pool_id`. A
/// file owned by another user is refused (ERR_SABPOOL_ACCESS) unless `allow_foreign_owner`.
#[napi]
pub fn channel_open_file(
  env: Env,
  dir: String,
  name: String,
  pool_id: u32,
  allow_foreign_owner: Option<bool>,
) -> Result<Attachment, String> {
  hook_cleanup(&env)?;
  shm::channel_file_name(&name).map_err(errors::shm)?;
  let options = shm::OpenOptions {
    allow_foreign_owner: allow_foreign_owner.unwrap_or(false),
  };
  file_channel(pool_id, |_| {
    shm::open_channel_file(Path::new(&dir), &name, options).map_err(errors::shm)
  })
}

fn file_table(
  pool_id: u32,
  open: impl FnOnce(u32) -> Result<Arc<RegionFile>, String>,
) -> Result<Attachment, String> {
  let pool_uid = file_pool_uid(pool_id, "table")?;
  let file = open(pool_uid)?;
  let table =
    Table::attach_to_pool(RegionMemory::File(mapped(file)?), pool_uid).map_err(errors::core)?;
  Ok(Attachment {
    id: registry::insert_table(TableEntry::new(table)),
  })
}

/// Creates a table of `words` zeroed 32-bit words in a new file `sabpool.<name>.table` of `dir`
/// for the file-backed pool `pool_id`. A table file left over from an earlier pool (another pool
/// uid) is replaced; a table of this pool under that name is in use (ERR_SABPOOL_EXISTS).
#[napi]
pub fn table_create_file(
  env: Env,
  dir: String,
  name: String,
  pool_id: u32,
  words: u32,
  uid: u32,
  mode: u32,
) -> Result<Attachment, String> {
  hook_cleanup(&env)?;
  shm::table_file_name(&name).map_err(errors::shm)?;
  let layout = TableLayout::new(words).map_err(errors::core)?;
  file_table(pool_id, |pool_uid| {
    shm::create_table_file(Path::new(&dir), &name, layout, uid, pool_uid, mode).map_err(errors::shm)
  })
}

/// Opens the table file `sabpool.<name>.table` of `dir`; it must belong to the pool `pool_id`
/// (ERR_SABPOOL_BAD_HANDLE otherwise, as for a channel of another pool). A file owned by another
/// user is refused (ERR_SABPOOL_ACCESS) unless `allow_foreign_owner`.
#[napi]
pub fn table_open_file(
  env: Env,
  dir: String,
  name: String,
  pool_id: u32,
  allow_foreign_owner: Option<bool>,
) -> Result<Attachment, String> {
  hook_cleanup(&env)?;
  shm::table_file_name(&name).map_err(errors::shm)?;
  let options = shm::OpenOptions {
    allow_foreign_owner: allow_foreign_owner.unwrap_or(false),
  };
  file_table(pool_id, |_| {
    shm::open_table_file(Path::new(&dir), &name, options).map_err(errors::shm)
  })
}

/// The mapped file of a pool, channel or table attachment, or None for an in-process region.
fn region_file(id: u32) -> Result<Option<MappedMemory>, String> {
  registry::with_memory(id, |m| m.file().cloned()).map_err(errors::lookup)
}

/// The mapped file of a pool, channel or table attachment, which must be file-backed.
fn require_file(id: u32) -> Result<MappedMemory, String> {
  region_file(id)?.ok_or_else(|| errors::not_file("this pool or channel is not backed by a file"))
}

/// A new JS buffer over the whole mapping of a file-backed attachment (a SharedArrayBuffer where
/// this Node supports one over external memory, else an ArrayBuffer).
#[napi]
pub fn region_buffer(env: Env, id: u32) -> Result<Unknown<'static>, String> {
  let memory = require_file(id)?;
  memory::region_buffer(&env, memory.file()).map_err(errors::buffer)
}

/// Path of a file-backed region, or null.
#[napi]
pub fn region_path(id: u32) -> Result<Option<String>, String> {
  Ok(region_file(id)?.map(|m| m.file().path().display().to_string()))
}

/// Removes the region's file name if it still names this region. Returns whether it did.
#[napi]
pub fn region_unlink(id: u32) -> Result<bool, String> {
  require_file(id)?.file().unlink().map_err(errors::shm)
}

// ---- closing, and slots of participants that went away ---------------------------------------

/// Closes the channel; returns false if it was closed already. The caller wakes every waiter of
/// an in-process channel; those of a file-backed one are woken here.
#[napi]
pub fn channel_close(id: u32) -> Result<bool, String> {
  on_channel(id, |c| {
    let was_open = c.channel.close()?;
    let all = Wake(true);
    c.memory().deliver(all, layout::C_RECV_EPOCH);
    c.memory().deliver(all, layout::C_SEND_EPOCH);
    Ok(was_open)
  })
}

/// Returns a slot whose Lease object was garbage-collected while still owned by this thread.
/// Returns whether parked acquirers must be woken; throws ERR_SABPOOL_STALE_LEASE if the slot
/// was not leased here with that generation.
#[napi]
pub fn pool_reclaim_lease(id: u32, slot: u32, generation: u32) -> Result<bool, String> {
  on_pool(id, |p| {
    p.pool
      .reclaim_lease(p.me, Lease { slot, generation })
      .map(|wake| p.memory().deliver(wake, layout::P_FREE_EPOCH) == 1)
  })
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
    let r = p.pool.reclaim_dead(p.me, shm::process_alive)?;
    p.memory().deliver(r.wake, layout::P_FREE_EPOCH);
    Ok(DeadReclaimed {
      participants: r.participants,
      slots: r.slots,
    })
  })
}
