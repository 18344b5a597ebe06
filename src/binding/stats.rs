//! What JS reads about pools, channels and tables: layout facts, counters, and the protocol table of
//! every constant the JS wrapper shares with the native side.

use napi::Result;
use napi_derive::napi;

use sabpool_core::layout::{self, PoolLayout};
use sabpool_core::shm;
use sabpool_core::Error as CoreError;
use sabpool_core::RingCell;

use super::errors::{self, on_channel, on_pool};
use super::fastcall;
use super::registry;
use super::waits::Site;

/// Layout facts the JS wrapper needs to read slot metadata and park on wait words, and where this
/// attachment's participant entry is: its token (`participantsOffset + participant *
/// participantSize + offsets.participantToken`, a u64) names this participant for as long as it
/// holds the entry; an entry that was left or reclaimed carries another token (or 0).
#[napi(object)]
pub struct PoolInfo {
  pub uid: u32,
  pub slot_size: u32,
  pub slots: u32,
  pub stride: u32,
  pub meta_offset: u32,
  pub data_offset: f64,
  /// This attachment's participant entry (0-based index).
  pub participant: u32,
  pub max_participants: u32,
  /// Byte offset of entry 0, and the size of one entry.
  pub participants_offset: u32,
  pub participant_size: u32,
}

#[napi]
pub fn pool_describe(id: u32) -> Result<PoolInfo, String> {
  on_pool(id, |p| {
    let l: &PoolLayout = p.pool.layout();
    Ok(PoolInfo {
      uid: p.pool.uid(),
      slot_size: l.slot_size,
      slots: l.slot_count,
      stride: l.stride,
      meta_offset: l.meta_offset as u32,
      data_offset: l.data_offset as f64,
      participant: p.me.0,
      max_participants: l.max_participants,
      participants_offset: layout::P_PARTICIPANTS as u32,
      participant_size: layout::PART_SIZE as u32,
    })
  })
}

/// What JS needs to reach a table's words: `new Int32Array(regionBuffer(id), dataOffset, words)`.
#[napi(object)]
pub struct TableInfo {
  pub uid: u32,
  pub words: u32,
  pub data_offset: u32,
}

#[napi]
pub fn table_info(id: u32) -> Result<TableInfo, String> {
  registry::with_table(id, |t| TableInfo {
    uid: t.table.uid(),
    words: t.table.words(),
    data_offset: t.table.data_offset() as u32,
  })
  .map_err(errors::lookup)
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
    waiting: s.waiting,
  })
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

/// Byte offsets of the words the JS wrapper parks on and reads.
#[napi(object)]
pub struct Offsets {
  pub free_head: u32,
  /// The low 32 bits of the free-list head when the list is empty, as an Int32Array reads them.
  pub free_empty: i32,
  pub enqueue: u32,
  pub dequeue: u32,
  pub cells: u32,
  pub cell_size: u32,
  /// Distinct lap tags of a ring cell, and the bit of the cell word where the tag starts: an empty
  /// cell is exactly its position's lap tag there.
  pub cell_lap_tags: u32,
  pub cell_lap_shift: u32,
  pub free_waiters: u32,
  pub free_epoch: u32,
  pub meta_size: u32,
  pub meta_word: u32,
  pub meta_length: u32,
  pub recv_waiters: u32,
  pub recv_epoch: u32,
  pub send_waiters: u32,
  pub send_epoch: u32,
  /// Where the token (u64) sits in a participant entry (see `PoolInfo`).
  pub participant_token: u32,
  pub max_slot_size: u32,
  pub max_slots: u32,
  pub max_participants: u32,
  pub default_participants: u32,
  pub max_capacity: u32,
  pub max_table_words: u32,
}

fn offsets() -> Offsets {
  Offsets {
    free_head: layout::P_FREE_HEAD as u32,
    free_empty: sabpool_core::FreeHead::EMPTY_LOW as i32,
    enqueue: layout::C_ENQ as u32,
    dequeue: layout::C_DEQ as u32,
    cells: layout::C_CELLS as u32,
    cell_size: layout::CELL_SIZE as u32,
    cell_lap_tags: RingCell::TAGS,
    cell_lap_shift: RingCell::TAG_SHIFT,
    free_waiters: layout::P_FREE_WAITERS as u32,
    free_epoch: layout::P_FREE_EPOCH as u32,
    meta_size: layout::META_SIZE as u32,
    meta_word: layout::META_WORD as u32,
    meta_length: layout::META_LENGTH as u32,
    recv_waiters: layout::C_RECV_WAITERS as u32,
    recv_epoch: layout::C_RECV_EPOCH as u32,
    send_waiters: layout::C_SEND_WAITERS as u32,
    send_epoch: layout::C_SEND_EPOCH as u32,
    participant_token: layout::PART_TOKEN as u32,
    max_slot_size: layout::MAX_SLOT_SIZE,
    max_slots: layout::MAX_SLOTS,
    max_participants: layout::MAX_PARTICIPANTS,
    default_participants: layout::DEFAULT_PARTICIPANTS,
    max_capacity: layout::MAX_CAPACITY,
    max_table_words: layout::MAX_TABLE_WORDS,
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
  let entry = |status: i32, code: &str, message: &str| StatusInfo {
    status,
    code: code.into(),
    message: message.into(),
  };
  let mut table: Vec<StatusInfo> = CoreError::ALL
    .iter()
    .map(|e| entry(e.status(), e.code(), &e.to_string()))
    .collect();
  table.push(entry(
    fastcall::STATUS_NO_BLOCK,
    errors::INTERNAL,
    "a native fast call ran in a thread whose argument block is not registered",
  ));
  table.push(entry(
    fastcall::STATUS_UNKNOWN_ID,
    errors::DETACHED,
    errors::DETACHED_MESSAGE,
  ));
  table.push(entry(
    fastcall::STATUS_INTERNAL,
    errors::INTERNAL,
    errors::INTERNAL_MESSAGE,
  ));
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
  /// A table's first wait site; sites `site_table_wait + k` for k below `table_wait_sites` park
  /// on the table's word `table_wait_word + k` (data words 8 to 11).
  pub site_table_wait: u32,
  pub table_wait_sites: u32,
  pub table_wait_word: u32,
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
    site_table_wait: Site::TableWait0 as u32,
    table_wait_sites: layout::T_WAIT_WORDS,
    table_wait_word: layout::T_WAIT_WORD,
    status_none: fastcall::STATUS_NONE,
    status_closed: fastcall::STATUS_CLOSED,
    detached_id: registry::DETACHED_ID,
    statuses: status_table(),
    offsets: offsets(),
  }
}
