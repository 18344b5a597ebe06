//! Byte layout of pool, channel and table regions, and validation of headers read from shared
//! memory.
//!
//! Every kind of region starts with a 64-byte header; every word that different threads write
//! often sits on its own 64-byte cache line. Offsets are computed once from validated header
//! fields and cached in Rust, so later scribbles on the header cannot move any bound.

use super::error::{Error, Result};
use super::mem::Memory;
use super::sync::Ordering;

pub const LINE: usize = 64;
/// Version 2: the free-list head carries a claim, slots have a `Releasing` state, the free count
/// is kept in the list itself, reclaim markers name their reclaimer (see `pool.rs`), and each ring
/// cell is one word a single CAS fills or clears (see `channel.rs`).
pub const VERSION: u32 = 2;

/// "SBPL", little-endian.
pub const POOL_MAGIC: u32 = u32::from_le_bytes(*b"SBPL");
/// "SBCH", little-endian.
pub const CHANNEL_MAGIC: u32 = u32::from_le_bytes(*b"SBCH");
/// "SBTB", little-endian.
pub const TABLE_MAGIC: u32 = u32::from_le_bytes(*b"SBTB");

// Header fields shared by every kind.
pub const H_MAGIC: usize = 0;
pub const H_VERSION: usize = 4;
pub const H_UID: usize = 8;
pub const H_TOTAL_LEN: usize = 16; // u64

// Pool header.
pub const P_SLOT_SIZE: usize = 24;
pub const P_SLOT_COUNT: usize = 28;
pub const P_STRIDE: usize = 32;
pub const P_MAX_PARTICIPANTS: usize = 36;
pub const P_DATA_OFFSET: usize = 40; // u64
/// Free-list line: tagged head (u64, [`FreeHead`](super::words::FreeHead)), an unused word
/// (version 1 kept a count of slots in use there; now the list's nodes carry the free count, see
/// [`META_LENGTH`]), high-water mark.
pub const P_FREE_HEAD: usize = LINE;
pub const P_IN_USE: usize = LINE + 8;
pub const P_HIGH_WATER: usize = LINE + 12;
/// Wait line: threads parked for a free slot, and the word they park on (bumped on release).
pub const P_FREE_WAITERS: usize = 2 * LINE;
pub const P_FREE_EPOCH: usize = 2 * LINE + 4;
/// Totals of participants that have left, and of reclaimed slots.
pub const P_RETIRED_ACQUIRED: usize = 3 * LINE;
pub const P_RETIRED_RELEASED: usize = 3 * LINE + 8;
pub const P_RECLAIMED: usize = 3 * LINE + 16;
pub const P_RETIRED_WAITS: usize = 3 * LINE + 24;
pub const P_PARTICIPANTS: usize = 4 * LINE;

/// One participant entry per line: token (0 = free), pid, and counters only its owner writes.
pub const PART_SIZE: usize = LINE;
pub const PART_TOKEN: usize = 0;
pub const PART_PID: usize = 8;
/// Waits of this participant registered in `P_FREE_WAITERS` right now (withdrawn if it dies).
pub const PART_PARKED: usize = 12;
pub const PART_ACQUIRED: usize = 16;
pub const PART_RELEASED: usize = 24;
pub const PART_WAITS: usize = 32;
/// Start time of the participant's process (0: unknown); with the pid it survives pid reuse.
pub const PART_START: usize = 40;
/// The participant's pid namespace (0: unknown); pids of other namespaces are not judged.
pub const PART_PID_NS: usize = 48;
/// Token of an entry being torn down by a reclaimer that did not say who it is (layout version 1
/// wrote it; a reclaimer that finds it takes the entry over).
pub const PART_RECLAIMING: u64 = u64::MAX;
/// Token of an entry being claimed, until its pid and start time are written.
pub const PART_JOINING: u64 = u64::MAX - 1;
/// Set in the token of an entry being torn down: `PART_RECLAIM_BIT | reclaimer index << 32 | low
/// half of the reclaimer's token`. Participant tokens never have it (pids are below 2^31), and
/// neither marker above has the index bits a reclaimer marker can carry clear, so the three never
/// collide.
pub const PART_RECLAIM_BIT: u64 = 1 << 63;

/// Per-slot metadata: state word (u64, [`SlotWord`](super::words::SlotWord)), free-list link,
/// length in use. While a slot is on the free list its length word holds the number of slots on
/// the list from it down (itself included), written before it is pushed: the head's count is the
/// number of free slots, exact with every push and pop.
pub const META_SIZE: usize = 16;
pub const META_WORD: usize = 0;
pub const META_NEXT: usize = 8;
pub const META_LENGTH: usize = 12;

pub const MAX_SLOT_SIZE: u32 = 1 << 30;
pub const MAX_SLOTS: u32 = 1 << 24;
pub const MAX_PARTICIPANTS: u32 = 4096;
pub const DEFAULT_PARTICIPANTS: u32 = 128;

// Channel header.
pub const C_CAPACITY: usize = 24;
pub const C_POOL_UID: usize = 28;
/// Enqueue position (u64); bit 63 set means closed.
pub const C_ENQ: usize = LINE;
/// Ring positions that carried no lease (u64): cells senders turned into `Skip` because their
/// fill landed laps late. The stats subtract them, so `sent`/`received` count leases.
pub const C_SKIPPED: usize = LINE + 8;
/// Dequeue position (u64).
pub const C_DEQ: usize = 2 * LINE;
pub const C_RECV_WAITERS: usize = 3 * LINE;
pub const C_RECV_EPOCH: usize = 3 * LINE + 4;
pub const C_RECV_WAITS: usize = 3 * LINE + 8; // u64
pub const C_SEND_WAITERS: usize = 4 * LINE;
pub const C_SEND_EPOCH: usize = 4 * LINE + 4;
pub const C_SEND_WAITS: usize = 4 * LINE + 8; // u64
pub const C_CELLS: usize = 5 * LINE;
/// Ring cell: one u64, a [`RingCell`](super::words::RingCell).
pub const CELL_SIZE: usize = 8;
pub const MAX_CAPACITY: u32 = 1 << 24;

// Table header: the uid of the pool the table belongs to, and how many 32-bit words it holds.
pub const T_POOL_UID: usize = 24;
pub const T_WORDS: usize = 28;
/// The words start on the line after the header.
pub const T_DATA: usize = LINE;
pub const MAX_TABLE_WORDS: u32 = 1 << 26;
/// The table's wait words: words `T_WAIT_WORD .. T_WAIT_WORD + T_WAIT_WORDS` (8 to 11) are the
/// ones a thread of any process may park on (a futex on a file-backed table), wait site `k` on
/// word `T_WAIT_WORD + k`. JS bumps one with `Atomics` and then wakes its waiters; the core only
/// computes where they are. A table of fewer than 12 words has only those of them it holds.
pub const T_WAIT_WORD: u32 = 8;
pub const T_WAIT_WORDS: u32 = 4;

pub const fn round_up(n: u64, to: u64) -> u64 {
  n.div_ceil(to) * to
}

/// Geometry of a pool region, derived from three numbers and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLayout {
  pub slot_size: u32,
  pub slot_count: u32,
  pub max_participants: u32,
  pub stride: u32,
  pub meta_offset: usize,
  pub data_offset: usize,
  pub total_len: usize,
}

impl PoolLayout {
  pub fn new(slot_size: u32, slot_count: u32, max_participants: u32) -> Result<Self> {
    if slot_size == 0 || slot_size > MAX_SLOT_SIZE {
      return Err(Error::BadHandle("slot size out of range"));
    }
    if slot_count == 0 || slot_count > MAX_SLOTS {
      return Err(Error::BadHandle("slot count out of range"));
    }
    if max_participants == 0 || max_participants > MAX_PARTICIPANTS {
      return Err(Error::BadHandle("participant count out of range"));
    }
    // Slots start on cache lines so two threads writing neighbouring slots do not share one.
    let stride = round_up(slot_size as u64, LINE as u64);
    let meta_offset = P_PARTICIPANTS as u64 + max_participants as u64 * PART_SIZE as u64;
    let data_offset = round_up(
      meta_offset + slot_count as u64 * META_SIZE as u64,
      LINE as u64,
    );
    let total = data_offset + stride * slot_count as u64;
    let total_len =
      usize::try_from(total).map_err(|_| Error::BadHandle("region too large for this platform"))?;
    Ok(PoolLayout {
      slot_size,
      slot_count,
      max_participants,
      stride: stride as u32,
      meta_offset: meta_offset as usize,
      data_offset: data_offset as usize,
      total_len,
    })
  }

  /// Reads and validates the header of an existing pool region.
  pub fn read<M: Memory>(mem: &M) -> Result<(Self, u32)> {
    if mem.len() < P_PARTICIPANTS {
      return Err(Error::BadHandle("region shorter than a pool header"));
    }
    let word = |off| mem.u32_at(off).map(|w| w.load(Ordering::Acquire));
    if word(H_MAGIC)? != POOL_MAGIC {
      return Err(Error::BadHandle("wrong magic: not a pool region"));
    }
    if word(H_VERSION)? != VERSION {
      return Err(Error::BadHandle("unsupported layout version"));
    }
    let layout = PoolLayout::new(
      word(P_SLOT_SIZE)?,
      word(P_SLOT_COUNT)?,
      word(P_MAX_PARTICIPANTS)?,
    )?;
    let total = mem.u64_at(H_TOTAL_LEN)?.load(Ordering::Relaxed);
    let data = mem.u64_at(P_DATA_OFFSET)?.load(Ordering::Relaxed);
    if word(P_STRIDE)? != layout.stride
      || data != layout.data_offset as u64
      || total != layout.total_len as u64
    {
      return Err(Error::BadHandle("header sizes are inconsistent"));
    }
    if layout.total_len > mem.len() {
      return Err(Error::BadHandle("region is truncated"));
    }
    Ok((layout, word(H_UID)?))
  }

  pub fn meta(&self, slot: u32) -> usize {
    self.meta_offset + slot as usize * META_SIZE
  }

  pub fn participant(&self, index: u32) -> usize {
    P_PARTICIPANTS + index as usize * PART_SIZE
  }

  pub fn data(&self, slot: u32) -> usize {
    self.data_offset + slot as usize * self.stride as usize
  }
}

/// Geometry of a channel region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelLayout {
  pub capacity: u32,
  pub total_len: usize,
}

impl ChannelLayout {
  pub fn new(capacity: u32) -> Result<Self> {
    if !(2..=MAX_CAPACITY).contains(&capacity) || !capacity.is_power_of_two() {
      return Err(Error::BadHandle(
        "capacity must be a power of two in 2..=2^24",
      ));
    }
    Ok(ChannelLayout {
      capacity,
      total_len: C_CELLS + capacity as usize * CELL_SIZE,
    })
  }

  /// Reads and validates the header of an existing channel region; returns the layout, the
  /// channel's uid and the uid of the pool it carries slots of.
  pub fn read<M: Memory>(mem: &M) -> Result<(Self, u32, u32)> {
    if mem.len() < C_CELLS {
      return Err(Error::BadHandle("region shorter than a channel header"));
    }
    let word = |off| mem.u32_at(off).map(|w| w.load(Ordering::Acquire));
    if word(H_MAGIC)? != CHANNEL_MAGIC {
      return Err(Error::BadHandle("wrong magic: not a channel region"));
    }
    if word(H_VERSION)? != VERSION {
      return Err(Error::BadHandle("unsupported layout version"));
    }
    let layout = ChannelLayout::new(word(C_CAPACITY)?)?;
    if mem.u64_at(H_TOTAL_LEN)?.load(Ordering::Relaxed) != layout.total_len as u64 {
      return Err(Error::BadHandle("header sizes are inconsistent"));
    }
    if layout.total_len > mem.len() {
      return Err(Error::BadHandle("region is truncated"));
    }
    Ok((layout, word(H_UID)?, word(C_POOL_UID)?))
  }

  pub fn cell(&self, pos: u64) -> usize {
    C_CELLS + (pos & (self.capacity as u64 - 1)) as usize * CELL_SIZE
  }
}

/// Geometry of a table region: a header line, then `words` 32-bit words that JS reads and writes
/// with `Atomics`. The core never interprets the words, so nothing it does depends on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableLayout {
  pub words: u32,
  pub total_len: usize,
}

impl TableLayout {
  pub fn new(words: u32) -> Result<Self> {
    if words == 0 || words > MAX_TABLE_WORDS {
      return Err(Error::BadHandle("table word count out of range"));
    }
    // At most 64 + 2^28 bytes: fits any usize of 32 bits or more.
    let total = round_up(T_DATA as u64 + words as u64 * 4, LINE as u64);
    Ok(TableLayout {
      words,
      total_len: total as usize,
    })
  }

  /// Reads and validates the header of an existing table region; returns the layout, the table's
  /// uid and the uid of the pool it belongs to.
  pub fn read<M: Memory>(mem: &M) -> Result<(Self, u32, u32)> {
    if mem.len() < T_DATA {
      return Err(Error::BadHandle("region shorter than a table header"));
    }
    let word = |off| mem.u32_at(off).map(|w| w.load(Ordering::Acquire));
    if word(H_MAGIC)? != TABLE_MAGIC {
      return Err(Error::BadHandle("wrong magic: not a table region"));
    }
    if word(H_VERSION)? != VERSION {
      return Err(Error::BadHandle("unsupported layout version"));
    }
    let layout = TableLayout::new(word(T_WORDS)?)?;
    if mem.u64_at(H_TOTAL_LEN)?.load(Ordering::Relaxed) != layout.total_len as u64 {
      return Err(Error::BadHandle("header sizes are inconsistent"));
    }
    // `total_len` covers the words (`new` rounds their end up), so this bounds both.
    if layout.total_len > mem.len() {
      return Err(Error::BadHandle("region is truncated"));
    }
    Ok((layout, word(H_UID)?, word(T_POOL_UID)?))
  }
}
