//! The table: a region of raw 32-bit words next to a pool, for bookkeeping that JS keeps with
//! `Atomics` and that other processes must reach (a file-backed region like the pool's).
//!
//! The core writes and validates only the header; it never reads the words for any decision, so
//! whatever another participant writes there cannot make it misbehave. The words are zero when
//! the table is created.
//!
//! Words 8 to 11 ([`T_WAIT_WORD`], [`T_WAIT_WORDS`]) are the table's wait words: the binding parks
//! threads of any process on them (a futex on a file-backed table) and wakes them when JS asks,
//! after JS has bumped the word. Which value a waiter waits past is the caller's affair: the core
//! only says where the words are ([`Table::wait_word_offset`]), it never reads them either.

use super::error::{Error, Result};
use super::layout::*;
use super::mem::Memory;
use super::sync::{AtomicU32, Ordering::*};

pub struct Table<M: Memory> {
  mem: M,
  layout: TableLayout,
  uid: u32,
  pool_uid: u32,
}

impl<M: Memory> Table<M> {
  /// Lays out a table of `words` zeroed words in `mem`, belonging to the pool `pool_uid`.
  pub fn create(mem: M, words: u32, uid: u32, pool_uid: u32) -> Result<Self> {
    let layout = TableLayout::new(words)?;
    if mem.len() < layout.total_len {
      return Err(Error::BadHandle("region is smaller than the table needs"));
    }
    // A fresh file is zero already; this makes it so for any memory. Eight bytes at a time: the
    // words start on a line and `total_len` ends on one.
    for offset in (T_DATA..layout.total_len).step_by(8) {
      mem.u64_at(offset)?.store(0, Relaxed);
    }
    mem.u32_at(T_WORDS)?.store(words, Relaxed);
    mem.u32_at(T_POOL_UID)?.store(pool_uid, Relaxed);
    mem.u32_at(H_UID)?.store(uid, Relaxed);
    mem
      .u64_at(H_TOTAL_LEN)?
      .store(layout.total_len as u64, Relaxed);
    mem.u32_at(H_VERSION)?.store(VERSION, Relaxed);
    // Last, with Release: whoever sees the magic sees the rest of the header and zeroed words.
    mem.u32_at(H_MAGIC)?.store(TABLE_MAGIC, Release);
    Ok(Table {
      mem,
      layout,
      uid,
      pool_uid,
    })
  }

  /// Validates the table region in `mem`: magic, layout version, and a word count and length that
  /// fit in the memory.
  pub fn attach(mem: M) -> Result<Self> {
    let (layout, uid, pool_uid) = TableLayout::read(&mem)?;
    Ok(Table {
      mem,
      layout,
      uid,
      pool_uid,
    })
  }

  /// As [`Table::attach`], also checking that the table belongs to the pool `pool_uid`.
  pub fn attach_to_pool(mem: M, pool_uid: u32) -> Result<Self> {
    let table = Self::attach(mem)?;
    if table.pool_uid != pool_uid {
      return Err(Error::BadHandle("the table belongs to another pool"));
    }
    Ok(table)
  }

  pub fn memory(&self) -> &M {
    &self.mem
  }

  pub fn layout(&self) -> &TableLayout {
    &self.layout
  }

  pub fn uid(&self) -> u32 {
    self.uid
  }

  pub fn pool_uid(&self) -> u32 {
    self.pool_uid
  }

  /// Number of 32-bit words, as validated on attach (later scribbles on the header change nothing).
  pub fn words(&self) -> u32 {
    self.layout.words
  }

  /// Byte offset of the first word.
  pub fn data_offset(&self) -> usize {
    T_DATA
  }

  /// Word `index`; None past the last one.
  pub fn word(&self, index: u32) -> Option<&AtomicU32> {
    self.mem.u32_at(self.word_offset(index)?).ok()
  }

  /// Byte offset of word `index`; None past the last one (the word count validated on attach,
  /// not the mapping's length, which is rounded up to a line).
  pub fn word_offset(&self, index: u32) -> Option<usize> {
    (index < self.layout.words).then(|| T_DATA + index as usize * 4)
  }

  /// Byte offset of wait word `k` (word `T_WAIT_WORD + k`); None for `k >= T_WAIT_WORDS` or a
  /// table too small to hold that word.
  pub fn wait_word_offset(&self, k: u32) -> Option<usize> {
    if k >= T_WAIT_WORDS {
      return None;
    }
    self.word_offset(T_WAIT_WORD + k)
  }

  /// Wait word `k`, as [`Table::wait_word_offset`].
  pub fn wait_word(&self, k: u32) -> Option<&AtomicU32> {
    self.mem.u32_at(self.wait_word_offset(k)?).ok()
  }
}
