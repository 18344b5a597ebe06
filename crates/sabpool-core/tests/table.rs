//! The table region: geometry, creation, and attach refusing anything that is not a table of
//! the expected pool that fits in its memory (magic, version, word count, length, truncation,
//! random header scribbles).
#![cfg(not(loom))]

mod common;

use common::*;
use sabpool_core::layout::*;
use sabpool_core::{Error, OwnedMemory, Table};

const UID: u32 = 0x7ab1_0001;
const POOL_UID: u32 = 0x5eed_0001;

fn new_table(words: u32) -> (OwnedMemory, usize) {
  let len = TableLayout::new(words).unwrap().total_len;
  let mem = OwnedMemory::new(len);
  Table::create(&mem, words, UID, POOL_UID).unwrap();
  (mem, len)
}

fn refused<M: sabpool_core::Memory>(mem: M) -> bool {
  matches!(Table::attach(mem), Err(Error::BadHandle(_)))
}

#[test]
fn layout_is_a_header_line_then_the_words_rounded_up_to_a_line() {
  for (words, total) in [
    (1u32, 128usize),
    (16, 128),
    (17, 192),
    (32, 192),
    (1000, 64 + 4000 + 32),
    (MAX_TABLE_WORDS, 64 + 4 * (1 << 26)),
  ] {
    let layout = TableLayout::new(words).unwrap();
    assert_eq!(
      (layout.words, layout.total_len),
      (words, total),
      "{words} words"
    );
    assert_eq!(layout.total_len % LINE, 0);
  }
  for words in [0, MAX_TABLE_WORDS + 1, u32::MAX] {
    assert!(
      matches!(TableLayout::new(words), Err(Error::BadHandle(_))),
      "{words} words accepted"
    );
  }
}

#[test]
fn create_writes_the_header_and_zeroes_the_words_attach_reads_it_back() {
  let words = 37;
  let len = TableLayout::new(words).unwrap().total_len;
  let mem = OwnedMemory::new(len);
  // Memory that held something else before: create leaves every word zero.
  for offset in (0..len).step_by(4) {
    write32(&mem, offset, 0xdead_beef);
  }
  let table = Table::create(&mem, words, UID, POOL_UID).unwrap();
  assert_eq!(read32(&mem, H_MAGIC), u32::from_le_bytes(*b"SBTB"));
  assert_eq!(read32(&mem, H_VERSION), VERSION);
  assert_eq!(read32(&mem, H_UID), UID);
  assert_eq!(read64(&mem, H_TOTAL_LEN), len as u64);
  assert_eq!(read32(&mem, T_POOL_UID), POOL_UID);
  assert_eq!(read32(&mem, T_WORDS), words);
  assert_eq!(table.data_offset(), 64);
  for offset in (64..len).step_by(4) {
    assert_eq!(read32(&mem, offset), 0, "byte {offset}");
  }
  // Words written through one view are read through another attached to the same memory.
  for i in 0..words {
    table
      .word(i)
      .unwrap()
      .store(i * 3 + 1, std::sync::atomic::Ordering::SeqCst);
  }
  assert!(table.word(words).is_none());
  let attached = Table::attach(&mem).unwrap();
  assert_eq!(
    (attached.uid(), attached.pool_uid(), attached.words()),
    (UID, POOL_UID, words)
  );
  assert_eq!(attached.data_offset(), 64);
  assert_eq!(*attached.layout(), TableLayout::new(words).unwrap());
  for i in 0..words {
    assert_eq!(read32(&mem, 64 + 4 * i as usize), i * 3 + 1);
  }
  // The words are the user's: any value in them leaves the header valid.
  write32(&mem, 64, u32::MAX);
  assert!(Table::attach(&mem).is_ok());
}

#[test]
fn create_refuses_memory_smaller_than_the_table() {
  let len = TableLayout::new(100).unwrap().total_len;
  let mem = OwnedMemory::new(len - 4);
  assert!(matches!(
    Table::create(&mem, 100, UID, POOL_UID),
    Err(Error::BadHandle(_))
  ));
  assert_eq!(read32(&mem, H_MAGIC), 0, "nothing was written");
  assert!(matches!(
    Table::create(&mem, 0, UID, POOL_UID),
    Err(Error::BadHandle(_))
  ));
}

#[test]
fn attach_to_pool_refuses_a_table_of_another_pool() {
  let (mem, _) = new_table(8);
  assert!(Table::attach_to_pool(&mem, POOL_UID).is_ok());
  assert!(matches!(
    Table::attach_to_pool(&mem, POOL_UID + 1),
    Err(Error::BadHandle(_))
  ));
}

#[test]
fn attach_refuses_bad_magic_version_and_sizes() {
  let (mem, len) = new_table(20);
  let header: Vec<u32> = (0..16).map(|i| read32(&mem, i * 4)).collect();
  let reset = || {
    for (i, &w) in header.iter().enumerate() {
      write32(&mem, i * 4, w);
    }
  };
  // Zeroed memory, and the other kinds of region.
  assert!(refused(OwnedMemory::new(len)));
  for magic in [
    0,
    POOL_MAGIC,
    CHANNEL_MAGIC,
    TABLE_MAGIC ^ 1,
    TABLE_MAGIC.swap_bytes(),
  ] {
    write32(&mem, H_MAGIC, magic);
    assert!(refused(&mem), "magic {magic:#x} accepted");
  }
  reset();
  for version in [0, 1, VERSION + 1, u32::MAX] {
    write32(&mem, H_VERSION, version);
    assert!(refused(&mem), "version {version} accepted");
  }
  reset();
  // A word count out of range, or one that disagrees with the recorded length (20 words take 192
  // bytes, so do 17 to 32: those agree).
  for words in [0, 16, 33, 1000, MAX_TABLE_WORDS + 1, u32::MAX] {
    write32(&mem, T_WORDS, words);
    assert!(refused(&mem), "{words} words accepted");
  }
  reset();
  for total in [0, len as u64 - 64, len as u64 + 64, u64::MAX] {
    write64(&mem, H_TOTAL_LEN, total);
    assert!(refused(&mem), "total_len {total} accepted");
  }
  // A consistent header claiming more words than the memory holds.
  reset();
  let bigger = TableLayout::new(1000).unwrap();
  write32(&mem, T_WORDS, 1000);
  write64(&mem, H_TOTAL_LEN, bigger.total_len as u64);
  assert!(refused(&mem));
  reset();
  assert!(Table::attach(&mem).is_ok());
}

#[test]
fn attach_refuses_truncated_memory() {
  for words in [1u32, 16, 17, 300] {
    let (mem, total) = new_table(words);
    for len in 0..total {
      assert!(
        refused(Truncated(&mem, len)),
        "a table of {words} words truncated to {len} of {total} bytes was accepted"
      );
    }
    let table = Table::attach(Truncated(&mem, total)).unwrap();
    assert_eq!(table.words(), words);
  }
}

#[test]
fn attach_survives_random_header_corruption() {
  for (words, seed) in [(1u32, 21u64), (64, 22), (1000, 23)] {
    let (_, exact) = new_table(words);
    // Slack after the table, so a scribbled header may claim a slightly larger table.
    let len = exact + 1024;
    let mem = OwnedMemory::new(len);
    Table::create(&mem, words, UID, POOL_UID).unwrap();
    let original: Vec<u32> = (0..16).map(|i| read32(&mem, i * 4)).collect();
    let mut rng = Rng::new(seed);
    let (mut accepted, mut rejected) = (0u32, 0u32);
    for trial in 0..20_000 {
      for (i, &w) in original.iter().enumerate() {
        write32(&mem, i * 4, w);
      }
      match rng.below(3) {
        0 => {
          let off = rng.below(8) as usize * 4;
          let value = rng.nasty_u32(read32(&mem, off));
          write32(&mem, off, value);
        }
        1 => {
          let value = rng.nasty_u64(read64(&mem, H_TOTAL_LEN));
          write64(&mem, H_TOTAL_LEN, value);
        }
        _ => {
          // A self-consistent header for another word count.
          let n = rng.nasty_u32(words);
          if let Ok(l) = TableLayout::new(n) {
            write32(&mem, T_WORDS, n);
            write64(&mem, H_TOTAL_LEN, l.total_len as u64);
          }
        }
      }
      match Table::attach(&mem) {
        Ok(table) => {
          accepted += 1;
          let layout = *table.layout();
          assert_eq!(layout, TableLayout::new(layout.words).unwrap());
          assert!(layout.total_len <= len, "trial {trial}: {layout:?}");
          assert!(64 + 4 * layout.words as usize <= len);
          assert!(table.word(layout.words - 1).is_some());
          assert_eq!(read32(&mem, H_MAGIC), TABLE_MAGIC);
        }
        Err(Error::BadHandle(_)) => rejected += 1,
        Err(other) => panic!("trial {trial}: attach failed with {other:?}, not BadHandle"),
      }
    }
    assert!(
      accepted > 100 && rejected > 5_000,
      "{accepted} accepted, {rejected} rejected"
    );
  }
}

#[test]
fn wait_words_are_words_8_to_11_and_only_those_the_table_holds() {
  assert_eq!((T_WAIT_WORD, T_WAIT_WORDS), (8, 4));
  for words in [12u32, 13, 100] {
    let (mem, _) = new_table(words);
    let table = Table::attach(&mem).unwrap();
    for k in 0..T_WAIT_WORDS {
      assert_eq!(table.wait_word_offset(k), Some(64 + 4 * (8 + k as usize)));
      assert_eq!(table.word_offset(8 + k), table.wait_word_offset(k));
      // The same word as `word(8 + k)`, not merely the same offset.
      let word = table.wait_word(k).unwrap();
      word.store(0x1000 + k, std::sync::atomic::Ordering::SeqCst);
      assert_eq!(read32(&mem, 64 + 4 * (8 + k as usize)), 0x1000 + k);
      assert!(std::ptr::eq(word, table.word(8 + k).unwrap()));
    }
    for k in [T_WAIT_WORDS, T_WAIT_WORDS + 1, u32::MAX] {
      assert_eq!(
        table.wait_word_offset(k),
        None,
        "{words} words, wait word {k}"
      );
      assert!(table.wait_word(k).is_none());
    }
  }
  // A table of 1 to 11 words holds only the wait words below its word count, though its mapping
  // (rounded up to a line) is long enough for all of them.
  for words in [1u32, 8, 9, 11] {
    let (mem, len) = new_table(words);
    assert!(len >= 64 + 4 * 12, "{words} words take {len} bytes");
    let table = Table::attach(&mem).unwrap();
    for k in 0..T_WAIT_WORDS {
      let held = 8 + k < words;
      assert_eq!(
        table.wait_word_offset(k).is_some(),
        held,
        "{words} words, wait word {k}"
      );
      assert_eq!(table.wait_word(k).is_some(), held);
    }
    assert_eq!(table.word_offset(words), None);
    assert_eq!(table.word_offset(u32::MAX), None);
  }
}

#[test]
fn a_thread_parked_on_a_wait_word_returns_after_a_bump_and_a_wake_not_before() {
  use sabpool_core::futex;
  use std::sync::atomic::Ordering::SeqCst;
  use std::time::{Duration, Instant};
  with_watchdog("table wait word", 30, || {
    let (mem, _) = new_table(16);
    let table = Table::attach(&mem).unwrap();
    let parked = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
      let waiter = s.spawn(|| {
        let word = table.wait_word(2).unwrap();
        let seen = word.load(SeqCst);
        parked.store(true, SeqCst);
        let start = Instant::now();
        while word.load(SeqCst) == seen {
          futex::wait(word, seen, Some(Duration::from_secs(10)));
        }
        start.elapsed()
      });
      while !parked.load(SeqCst) {
        std::thread::yield_now();
      }
      std::thread::sleep(Duration::from_millis(100));
      // A wake of another wait word, or of this one without a bump, releases nobody for good.
      futex::wake_all(table.wait_word(1).unwrap());
      futex::wake_all(table.wait_word(2).unwrap());
      std::thread::sleep(Duration::from_millis(50));
      assert!(
        !waiter.is_finished(),
        "the waiter left before its word moved"
      );
      table.wait_word(2).unwrap().fetch_add(1, SeqCst);
      let woke_at = Instant::now();
      futex::wake_all(table.wait_word(2).unwrap());
      let waited = waiter.join().unwrap();
      assert!(
        waited >= Duration::from_millis(140),
        "waited only {waited:?}"
      );
      assert!(
        woke_at.elapsed() < Duration::from_secs(5),
        "the wake took {:?}",
        woke_at.elapsed()
      );
    });
    // The core read none of it: the other words are untouched, the header still valid.
    assert_eq!(read32(&mem, 64 + 4 * 10), 1);
    for i in (0..16).filter(|&i| i != 10) {
      assert_eq!(read32(&mem, 64 + 4 * i), 0, "word {i}");
    }
    assert!(Table::attach(&mem).is_ok());
  });
}
