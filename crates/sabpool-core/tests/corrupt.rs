//! The region is untrusted input: any thread with a view can scribble on it. These tests corrupt
//! headers, metadata, the free list and ring cells and check that the core answers with errors,
//! never with a panic, a hang or an access outside the region (every access goes through the
//! bounds-checked `Memory` trait, so "outside" would surface as an error from `OwnedMemory`, and a
//! layout that points outside is checked here explicitly).
#![cfg(not(loom))]

mod common;

use common::*;
use sabpool_core::layout::*;
use sabpool_core::pool::{MAX_RETRIES, NIL};
use sabpool_core::*;
use std::time::{Duration, Instant};

/// A layout returned by a successful attach must lie entirely inside the region and agree with
/// the geometry it claims.
fn assert_pool_layout_inside(layout: &PoolLayout, len: usize) {
  let recomputed =
    PoolLayout::new(layout.slot_size, layout.slot_count, layout.max_participants).unwrap();
  assert_eq!(
    *layout, recomputed,
    "attached layout is not self-consistent"
  );
  assert!(
    layout.total_len <= len,
    "{layout:?} exceeds region of {len}"
  );
  assert!(layout.participant(layout.max_participants - 1) + PART_SIZE <= layout.meta_offset);
  assert!(layout.meta(layout.slot_count - 1) + META_SIZE <= layout.data_offset);
  assert!(layout.stride >= layout.slot_size);
  assert!(
    layout.data(layout.slot_count - 1) + layout.stride as usize <= layout.total_len,
    "{layout:?}"
  );
}

fn snapshot(mem: &OwnedMemory, words: usize) -> Vec<u32> {
  (0..words).map(|i| read32(mem, i * 4)).collect()
}

fn restore(mem: &OwnedMemory, words: &[u32]) {
  for (i, &w) in words.iter().enumerate() {
    write32(mem, i * 4, w);
  }
}

/// Applies one random corruption to bytes `from..to` of the region: a 32-bit word, a 64-bit
/// word, or a few scattered bytes.
fn corrupt_range(rng: &mut Rng, mem: &OwnedMemory, from: usize, to: usize) {
  match rng.below(3) {
    0 => {
      let off = from + (rng.below(((to - from) / 4) as u64) as usize) * 4;
      let value = rng.nasty_u32(read32(mem, off));
      write32(mem, off, value);
    }
    1 => {
      let off = from.div_ceil(8) * 8 + (rng.below(((to - from) / 8) as u64) as usize) * 8;
      if off + 8 <= to {
        let value = rng.nasty_u64(read64(mem, off));
        write64(mem, off, value);
      }
    }
    _ => {
      for _ in 0..=rng.below(8) {
        let off = from + rng.below((to - from) as u64) as usize;
        write8(mem, off, rng.next_u32() as u8);
      }
    }
  }
}

#[test]
fn pool_attach_validates_every_header_field() {
  let mem = pool_memory(64, 8, 2);
  Pool::create(&mem, 64, 8, 2, 42).unwrap();
  let original = snapshot(&mem, P_PARTICIPANTS / 4);
  assert!(Pool::attach(&mem).is_ok());
  // Changing any of these words by one must be refused: each one moves a bound or names another
  // kind of region. (The slot size may move within its 64-byte stride, and the uid is free.)
  for (field, wide) in [
    (H_MAGIC, false),
    (H_VERSION, false),
    (H_TOTAL_LEN, true),
    (P_SLOT_COUNT, false),
    (P_STRIDE, false),
    (P_MAX_PARTICIPANTS, false),
    (P_DATA_OFFSET, true),
  ] {
    for delta in [1u64, u64::MAX] {
      if wide {
        write64(&mem, field, read64(&mem, field).wrapping_add(delta));
      } else {
        write32(&mem, field, read32(&mem, field).wrapping_add(delta as u32));
      }
      assert!(
        matches!(Pool::attach(&mem), Err(Error::BadHandle(_))),
        "field at {field} changed by {delta} was accepted"
      );
      restore(&mem, &original);
    }
  }
  // A slot size past the stride changes the geometry: refused.
  write32(&mem, P_SLOT_SIZE, 65);
  assert!(matches!(Pool::attach(&mem), Err(Error::BadHandle(_))));
  write32(&mem, P_SLOT_SIZE, 0);
  assert!(matches!(Pool::attach(&mem), Err(Error::BadHandle(_))));
  restore(&mem, &original);
  let pool = Pool::attach(&mem).unwrap();
  assert_eq!(pool.uid(), 42);
  assert_eq!(pool.layout().slot_size, 64);
}

#[test]
fn pool_attach_survives_random_header_corruption() {
  for (geometry, seed) in [
    ((64, 8, 2), 1u64),
    ((1, 1, 1), 2),
    ((1000, 16, 4), 3),
    ((64, 3, 3), 4),
  ] {
    let (size, count, parts) = geometry;
    // Some spare room past the pool, so a corrupted header can claim a slightly larger pool.
    let len = PoolLayout::new(size, count, parts).unwrap().total_len + 256;
    let mem = OwnedMemory::new(len);
    Pool::create(&mem, size, count, parts, 7).unwrap();
    let original = snapshot(&mem, P_PARTICIPANTS / 4);
    let mut rng = Rng::new(seed);
    let (mut accepted, mut rejected) = (0u32, 0u32);
    for trial in 0..20_000 {
      restore(&mem, &original);
      match rng.below(4) {
        // Most trials hit the 48 bytes attach validates; some hit the whole header area.
        0..=1 => corrupt_range(&mut rng, &mem, 0, 48),
        2 => {
          for _ in 0..=rng.below(4) {
            corrupt_range(&mut rng, &mem, 0, P_PARTICIPANTS);
          }
        }
        _ => {
          // A consistent-looking header for some other geometry: only the region length can
          // tell it apart.
          let size = rng.nasty_u32(size);
          let count = rng.nasty_u32(count) % 64;
          let parts = rng.nasty_u32(parts) % 8;
          if let Ok(l) = PoolLayout::new(size, count, parts) {
            write32(&mem, P_SLOT_SIZE, size);
            write32(&mem, P_SLOT_COUNT, count);
            write32(&mem, P_MAX_PARTICIPANTS, parts);
            write32(&mem, P_STRIDE, l.stride);
            write64(&mem, P_DATA_OFFSET, l.data_offset as u64);
            write64(&mem, H_TOTAL_LEN, l.total_len as u64);
          }
        }
      }
      match Pool::attach(&mem) {
        Ok(pool) => {
          accepted += 1;
          let layout = *pool.layout();
          assert_pool_layout_inside(&layout, len);
          assert_eq!(read32(&mem, H_MAGIC), POOL_MAGIC);
          assert_eq!(read32(&mem, H_VERSION), VERSION);
          assert_eq!(read32(&mem, P_SLOT_COUNT), layout.slot_count);
          assert_eq!(read64(&mem, H_TOTAL_LEN), layout.total_len as u64);
          // Whatever it now believes, reading through it stays in bounds.
          if let Ok(stats) = pool.stats() {
            assert!(stats.in_use <= stats.slots);
          }
          if let Ok(census) = pool.census() {
            assert_eq!(census.iter().sum::<u32>(), layout.slot_count);
          }
          if let Ok(n) = pool.free_list_len() {
            assert!(n <= layout.slot_count);
          }
        }
        Err(Error::BadHandle(_)) => rejected += 1,
        Err(other) => panic!("trial {trial}: attach failed with {other:?}, not BadHandle"),
      }
    }
    // The random corruptions must have hit both outcomes, or this test checks nothing.
    assert!(
      accepted > 100 && rejected > 10_000,
      "{accepted} accepted, {rejected} rejected"
    );
  }
}

#[test]
fn pool_attach_rejects_truncated_regions() {
  for (size, count, parts) in [(64, 4, 2), (1, 1, 1), (200, 3, 5)] {
    let total = PoolLayout::new(size, count, parts).unwrap().total_len;
    let mem = OwnedMemory::new(total + 64);
    Pool::create(&mem, size, count, parts, 1).unwrap();
    for len in 0..total {
      assert!(
        matches!(Pool::attach(Truncated(&mem, len)), Err(Error::BadHandle(_))),
        "a region truncated to {len} of {total} bytes was accepted"
      );
    }
    for len in total..total + 64 {
      let pool = Pool::attach(Truncated(&mem, len)).unwrap();
      assert_eq!(pool.layout().total_len, total);
    }
    // Creating into a region that is one byte short is refused too.
    assert!(matches!(
      Pool::create(OwnedMemory::new(total - 1), size, count, parts, 1),
      Err(Error::BadHandle(_))
    ));
  }
}

#[test]
fn pool_header_scribbles_after_attach_do_not_move_bounds() {
  let mem = pool_memory(64, 6, 2);
  let pool = Pool::create(&mem, 64, 6, 2, 1).unwrap();
  let me = pool.join(1, 1).unwrap();
  // Claim a huge pool in the header: the view must keep using the geometry it validated.
  write32(&mem, P_SLOT_COUNT, MAX_SLOTS);
  write32(&mem, P_SLOT_SIZE, MAX_SLOT_SIZE);
  write32(&mem, P_MAX_PARTICIPANTS, MAX_PARTICIPANTS);
  write64(&mem, H_TOTAL_LEN, u64::MAX);
  write32(&mem, H_MAGIC, 0);
  let mut held = Vec::new();
  while let Some(lease) = pool.try_acquire(me).unwrap() {
    assert!(lease.slot < 6);
    held.push(lease);
  }
  assert_eq!(held.len(), 6);
  assert!(matches!(
    pool.handoff(me, held[0], 65),
    Err(Error::BadTicket(_))
  ));
  assert!(matches!(
    pool.adopt(
      me,
      Lease {
        slot: 6,
        generation: 1
      }
    ),
    Err(Error::BadTicket(_))
  ));
  for lease in held {
    let _ = pool.release(me, lease).unwrap();
  }
  assert_eq!(pool.free_list_len().unwrap(), 6);
  assert_eq!(pool.stats().unwrap().slots, 6);
  assert!(matches!(Pool::attach(&mem), Err(Error::BadHandle(_))));
}

#[test]
fn channel_attach_survives_random_header_corruption() {
  for (capacity, seed) in [(2u32, 11u64), (4, 12), (64, 13)] {
    let len = ChannelLayout::new(capacity).unwrap().total_len + 1024;
    let mem = OwnedMemory::new(len);
    Channel::create(&mem, capacity, 5, 6).unwrap();
    let original = snapshot(&mem, C_CELLS / 4);
    let mut rng = Rng::new(seed);
    let (mut accepted, mut rejected) = (0u32, 0u32);
    for trial in 0..20_000 {
      restore(&mem, &original);
      match rng.below(3) {
        0 => corrupt_range(&mut rng, &mem, 0, 32),
        1 => {
          for _ in 0..=rng.below(4) {
            corrupt_range(&mut rng, &mem, 0, C_CELLS);
          }
        }
        _ => {
          let cap = rng.nasty_u32(capacity);
          if let Ok(l) = ChannelLayout::new(cap) {
            write32(&mem, C_CAPACITY, cap);
            write64(&mem, H_TOTAL_LEN, l.total_len as u64);
          }
        }
      }
      match Channel::attach(&mem) {
        Ok(channel) => {
          accepted += 1;
          let layout = *channel.layout();
          assert_eq!(layout, ChannelLayout::new(layout.capacity).unwrap());
          assert!(layout.total_len <= len);
          assert!(layout.cell(u64::MAX) + CELL_SIZE <= layout.total_len);
          assert_eq!(read32(&mem, H_MAGIC), CHANNEL_MAGIC);
          if let Ok(stats) = channel.stats() {
            assert!(stats.queued <= layout.capacity as u64);
          }
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
fn channel_attach_rejects_truncated_regions_and_bad_capacities() {
  for capacity in [2u32, 8, 32] {
    let total = ChannelLayout::new(capacity).unwrap().total_len;
    let mem = OwnedMemory::new(total + 64);
    Channel::create(&mem, capacity, 1, 2).unwrap();
    for len in 0..total {
      assert!(
        matches!(
          Channel::attach(Truncated(&mem, len)),
          Err(Error::BadHandle(_))
        ),
        "a channel truncated to {len} of {total} bytes was accepted"
      );
    }
    for len in total..total + 64 {
      let channel = Channel::attach(Truncated(&mem, len)).unwrap();
      assert_eq!((channel.uid(), channel.pool_uid()), (1, 2));
    }
  }
  for capacity in [
    0,
    1,
    3,
    6,
    100,
    MAX_CAPACITY + 1,
    MAX_CAPACITY * 2,
    u32::MAX,
  ] {
    assert!(matches!(
      ChannelLayout::new(capacity),
      Err(Error::BadHandle(_))
    ));
    assert!(matches!(
      Channel::create(OwnedMemory::new(1 << 12), capacity, 1, 1),
      Err(Error::BadHandle(_))
    ));
  }
  assert!(matches!(
    Channel::create(
      OwnedMemory::new(ChannelLayout::new(8).unwrap().total_len - 1),
      8,
      1,
      1
    ),
    Err(Error::BadHandle(_))
  ));
}

/// Where to scribble in a running pool + channel: the shared control words.
fn corrupt_live(
  rng: &mut Rng,
  pool_mem: &OwnedMemory,
  chan_mem: &OwnedMemory,
  layout: &PoolLayout,
) {
  let slots = layout.slot_count;
  match rng.below(10) {
    // Slot state word (any bits), sometimes a plausible one.
    0 | 1 => {
      let off = layout.meta(rng.below(slots as u64) as u32) + META_WORD;
      let value = if rng.chance(50) {
        SlotWord::new(
          rng.below(4) as u32,
          rng.below(5) as u32,
          SlotState::from_bits(rng.below(6) as u8),
        )
        .pack()
      } else {
        rng.nasty_u64(read64(pool_mem, off))
      };
      write64(pool_mem, off, value);
    }
    // Free-list link: another slot, NIL, out of range, garbage.
    2 => {
      let off = layout.meta(rng.below(slots as u64) as u32) + META_NEXT;
      let value = match rng.below(3) {
        0 => rng.below(slots as u64 + 2) as u32,
        1 => NIL,
        _ => rng.nasty_u32(read32(pool_mem, off)),
      };
      write32(pool_mem, off, value);
    }
    // Recorded length.
    3 => {
      let off = layout.meta(rng.below(slots as u64) as u32) + META_LENGTH;
      let value = rng.nasty_u32(read32(pool_mem, off));
      write32(pool_mem, off, value);
    }
    // Free-list head (tag and index) and the counters on its line.
    4 => {
      let value = match rng.below(3) {
        0 => (read64(pool_mem, P_FREE_HEAD) & !0xffff_ffff) | rng.below(slots as u64 + 2),
        1 => rng.nasty_u64(read64(pool_mem, P_FREE_HEAD)),
        _ => (rng.next_u64() << 32) | NIL as u64,
      };
      write64(pool_mem, P_FREE_HEAD, value);
    }
    // Anything else in the pool's control area: counters, participant table.
    5 => corrupt_range(rng, pool_mem, LINE, layout.data_offset),
    // Ring cells: any bits, or a plausible full cell (lap 0 or 1, slot in range or just past).
    6 | 7 => {
      let cell = C_CELLS + rng.below(4) as usize * CELL_SIZE;
      let value = if rng.chance(50) {
        RingCell::Full {
          tag: rng.below(2) as u32,
          lease: Lease {
            slot: rng.below(slots as u64 + 1) as u32,
            generation: rng.below(4) as u32,
          },
        }
        .pack()
      } else {
        rng.nasty_u64(read64(chan_mem, cell))
      };
      write64(chan_mem, cell, value);
    }
    // Enqueue / dequeue positions (bit 63 of enqueue is "closed").
    8 => {
      let off = if rng.chance(50) { C_ENQ } else { C_DEQ };
      let value = rng.nasty_u64(read64(chan_mem, off));
      write64(chan_mem, off, value);
    }
    _ => corrupt_range(rng, chan_mem, LINE, C_CELLS + 4 * CELL_SIZE),
  }
}

#[derive(Default, Debug)]
struct FuzzReport {
  ops: u64,
  ok: u64,
  errors: [u64; 7],
  slowest: Duration,
}

fn error_index(e: &Error) -> usize {
  Error::ALL
    .iter()
    .position(|x| x.code() == e.code())
    .unwrap()
}

/// Random operation sequences over a pool and a channel that get corrupted as they run. Every
/// result is checked for plausibility; nothing may panic or hang.
fn fuzz_live(seed: u64, iterations: u32) -> FuzzReport {
  const SLOT_SIZE: u32 = 64;
  const SLOTS: u32 = 8;
  let mut rng = Rng::new(seed);
  let mut report = FuzzReport::default();
  let mut epoch = 0;
  while epoch * 1000 < iterations {
    epoch += 1;
    // Start from a fresh pool and channel every 1000 operations, so corruption does not
    // accumulate into a region where every call fails the same way.
    let pool_mem = pool_memory(SLOT_SIZE, SLOTS, 3);
    let chan_mem = OwnedMemory::new(ChannelLayout::new(4).unwrap().total_len);
    let pool = Pool::create(&pool_mem, SLOT_SIZE, SLOTS, 3, 99).unwrap();
    let channel = Channel::create(&chan_mem, 4, 100, 99).unwrap();
    let layout = *pool.layout();
    let mut who: Vec<(Participant, u64)> = (1..=3u64)
      .map(|t| (pool.join(t, t as u32).unwrap(), t))
      .collect();
    let mut next_token = 4u64;
    let mut held: Vec<(usize, Lease)> = Vec::new();
    let mut tickets: Vec<Lease> = Vec::new();

    for _ in 0..1000 {
      if rng.chance(4) {
        corrupt_live(&mut rng, &pool_mem, &chan_mem, &layout);
      }
      let p = rng.below(who.len() as u64) as usize;
      let me = who[p].0;
      let forged = Lease {
        slot: if rng.chance(80) {
          rng.below(SLOTS as u64 + 1) as u32
        } else {
          rng.next_u32()
        },
        generation: rng.below(6) as u32,
      };
      let pick_held = |rng: &mut Rng, held: &mut Vec<(usize, Lease)>| {
        if !held.is_empty() && rng.chance(85) {
          Some(held.swap_remove(rng.below(held.len() as u64) as usize))
        } else {
          None
        }
      };
      let started = Instant::now();
      let result: Result<()> = match rng.below(16) {
        0..=2 => pool.try_acquire(me).map(|lease| {
          if let Some(lease) = lease {
            assert!(lease.slot < SLOTS, "acquired {lease:?}");
            held.push((p, lease));
          }
        }),
        3 | 4 => match pick_held(&mut rng, &mut held) {
          Some((owner, lease)) => pool.release(who[owner].0, lease).map(|_| ()),
          None => pool.release(me, forged).map(|_| ()),
        },
        5 => {
          let (owner, lease) = pick_held(&mut rng, &mut held).unwrap_or((p, forged));
          let length = rng.below(SLOT_SIZE as u64 + 8) as u32;
          pool
            .handoff(who[owner].0, lease, length)
            .map(|_| tickets.push(lease))
        }
        6 => {
          let lease = if !tickets.is_empty() && rng.chance(80) {
            tickets.swap_remove(rng.below(tickets.len() as u64) as usize)
          } else {
            forged
          };
          pool.adopt(me, lease).map(|length| {
            assert!(length <= SLOT_SIZE);
            held.push((p, lease));
          })
        }
        7 | 8 => {
          let (owner, lease) = pick_held(&mut rng, &mut held).unwrap_or((p, forged));
          let length = rng.below(SLOT_SIZE as u64 + 8) as u32;
          match channel.try_send(&pool, who[owner].0, lease, length) {
            Ok(Sent::Sent(_)) => Ok(()),
            Ok(Sent::Full) => {
              held.push((owner, lease));
              Ok(())
            }
            Err(e) => Err(e),
          }
        }
        9 | 10 => channel.try_recv(&pool, me).map(|r| {
          if let Received::Lease(lease, length, _) = r {
            assert!(lease.slot < SLOTS, "received {lease:?}");
            assert!(length <= SLOT_SIZE);
            held.push((p, lease));
          }
        }),
        11 => pool.reclaim(me).map(|(n, _)| assert!(n <= SLOTS)),
        12 => {
          // Leave and join again as a new participant.
          let token = who[p].1;
          pool.leave(me, token).and_then(|(n, _)| {
            assert!(n <= SLOTS);
            let joined = pool.join(next_token, 0);
            if let Ok(participant) = joined {
              who[p] = (participant, next_token);
              next_token += 1;
            }
            joined.map(|_| ())
          })
        }
        13 => {
          if rng.chance(10) {
            channel.close().map(|_| ())
          } else {
            channel.stats().map(|s| {
              assert!(s.queued <= 4);
              assert_eq!(s.capacity, 4);
            })
          }
        }
        14 => pool.stats().and_then(|s| {
          assert!(s.in_use <= SLOTS && s.slots == SLOTS);
          assert!(s.participants <= 3);
          pool
            .census()
            .map(|c| assert_eq!(c.iter().sum::<u32>(), SLOTS))
        }),
        _ => pool
          .free_list_len()
          .map(|n| assert!(n <= SLOTS))
          .and_then(|_| pool.length(forged.slot).map(|n| assert!(n <= SLOT_SIZE)))
          .and_then(|_| pool.slot_state(forged.slot).map(|_| ())),
      };
      report.slowest = report.slowest.max(started.elapsed());
      report.ops += 1;
      match result {
        Ok(()) => report.ok += 1,
        Err(e) => report.errors[error_index(&e)] += 1,
      }
      held.truncate(64);
      tickets.truncate(64);
    }
  }
  report
}

#[test]
fn pool_and_channel_survive_live_corruption() {
  // SABPOOL_FUZZ_SEEDS=n runs n seeds instead of 4 (for longer hunts).
  let seeds: u64 = std::env::var("SABPOOL_FUZZ_SEEDS")
    .ok()
    .and_then(|s| s.parse().ok())
    .unwrap_or(4);
  let mut handles = Vec::new();
  for seed in 0..seeds {
    handles.push(std::thread::spawn(move || {
      with_watchdog(&format!("fuzz seed {seed}"), 120, move || {
        fuzz_live(0xf00d + seed, 25_000)
      })
    }));
  }
  let mut total = FuzzReport::default();
  for h in handles {
    let r = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    total.ops += r.ops;
    total.ok += r.ok;
    for (t, e) in total.errors.iter_mut().zip(r.errors) {
      *t += e;
    }
    total.slowest = total.slowest.max(r.slowest);
  }
  println!("live corruption: {total:?}");
  assert_eq!(total.ops, 25_000 * seeds);
  // Single-threaded, no bounded loop may run out of retries: corruption is detected, not spun on.
  assert_eq!(total.errors[error_index(&Error::Contended)], 0, "{total:?}");
  // The sequences must exercise both working and failing paths.
  assert!(total.ok > total.ops / 4, "{total:?}");
  assert!(
    total.errors[error_index(&Error::StaleLease)] > 0,
    "{total:?}"
  );
  assert!(
    total.errors[error_index(&Error::Corrupt(""))] > 0,
    "{total:?}"
  );
}

#[test]
fn corrupted_free_list_is_reported_not_followed() {
  let pool = new_pool(64, 4, 1);
  let mem = pool.memory();
  let layout = *pool.layout();
  let me = pool.join(1, 1).unwrap();
  // Head names a slot that does not exist.
  let head = read64(mem, P_FREE_HEAD);
  write64(mem, P_FREE_HEAD, (head & !0xffff_ffff) | 4);
  assert!(matches!(pool.try_acquire(me), Err(Error::Corrupt(_))));
  write64(mem, P_FREE_HEAD, head);
  // A link that names no slot: the pop that would install it cuts the list instead.
  write32(mem, layout.meta(0) + META_NEXT, 1000);
  assert!(matches!(pool.try_acquire(me), Err(Error::Corrupt(_))));
  assert_eq!(
    FreeHead::unpack(read64(mem, P_FREE_HEAD)).index,
    NIL,
    "list cut"
  );
  assert_eq!(pool.try_acquire(me).unwrap(), None);
  assert_eq!(pool.free_list_len().unwrap(), 0);
  // A free-list entry whose slot word says "leased" is refused, not leased twice.
  let pool = new_pool(64, 2, 1);
  let mem = pool.memory();
  let me = pool.join(1, 1).unwrap();
  let lease = pool.try_acquire(me).unwrap().unwrap();
  write32(
    mem,
    pool.layout().meta(1 - lease.slot) + META_NEXT,
    lease.slot,
  );
  let other = pool.try_acquire(me).unwrap().unwrap();
  assert_ne!(other.slot, lease.slot);
  assert!(matches!(pool.try_acquire(me), Err(Error::Corrupt(_))));
  assert_eq!(pool.slot_state(lease.slot).unwrap().owner, me.0 + 1);
  let _ = pool.release(me, lease).unwrap();
  let _ = pool.release(me, other).unwrap();
  assert_eq!(pool.census().unwrap()[SlotState::Free.bits() as usize], 2);
}

#[test]
fn corrupted_ring_entries_are_reported() {
  // A full ring cell that names a slot which is not queued with that generation (or no slot at
  // all, or is no valid cell) must not hand anyone a lease; it is reported and stepped over.
  for forged in [
    |real: Lease| {
      RingCell::Full {
        tag: 0,
        lease: Lease {
          slot: real.slot,
          generation: real.generation + 1,
        },
      }
      .pack()
    },
    |real: Lease| {
      RingCell::Full {
        tag: 0,
        lease: Lease {
          slot: 4,
          generation: real.generation,
        },
      }
      .pack()
    },
    |_: Lease| u64::MAX,
  ] {
    let pool = new_pool(64, 4, 2);
    let me = pool.join(1, 1).unwrap();
    let chan_mem = OwnedMemory::new(ChannelLayout::new(4).unwrap().total_len);
    let channel = Channel::create(&chan_mem, 4, 1, pool.uid()).unwrap();
    let first = pool.try_acquire(me).unwrap().unwrap();
    let second = pool.try_acquire(me).unwrap().unwrap();
    for (lease, length) in [(first, 8), (second, 9)] {
      assert!(matches!(
        channel.try_send(&pool, me, lease, length).unwrap(),
        Sent::Sent(_)
      ));
    }
    let cell = channel.layout().cell(1);
    write64(&chan_mem, cell, forged(second));
    assert_eq!(
      channel.try_recv(&pool, me).unwrap(),
      Received::Lease(first, 8, Wake(false))
    );
    assert!(matches!(
      channel.try_recv(&pool, me),
      Err(Error::Corrupt(_))
    ));
    assert_eq!(channel.try_recv(&pool, me).unwrap(), Received::Empty);
    // The slot the forged entry replaced is stranded in the queued state, but it was not handed
    // to anyone, and the ring keeps working.
    let stranded = pool.slot_state(second.slot).unwrap();
    assert_eq!(
      (stranded.generation, stranded.state),
      (second.generation, SlotState::Queued)
    );
    let _ = pool.release(me, first).unwrap();
    let again = pool.try_acquire(me).unwrap().unwrap();
    assert!(matches!(
      channel.try_send(&pool, me, again, 3).unwrap(),
      Sent::Sent(_)
    ));
    assert_eq!(
      channel.try_recv(&pool, me).unwrap(),
      Received::Lease(again, 3, Wake(false))
    );
    let _ = pool.release(me, again).unwrap();
  }
}

#[test]
fn corrupted_ring_sequences_fail_fast() {
  // A cell that belongs to no lap the position that reaches it can see cannot happen without
  // corruption. Sending or receiving through such a cell must answer at once, not spin through
  // the whole retry budget.
  let pool = new_pool(64, 4, 2);
  let me = pool.join(1, 1).unwrap();
  let chan_mem = OwnedMemory::new(ChannelLayout::new(4).unwrap().total_len);
  let channel = Channel::create(&chan_mem, 4, 1, pool.uid()).unwrap();
  let lease = pool.try_acquire(me).unwrap().unwrap();

  // Producer side: the first cell is no valid cell (an empty cell has no other bits set).
  write64(&chan_mem, C_CELLS, 1000);
  let started = Instant::now();
  let sent = channel.try_send(&pool, me, lease, 1);
  let spent = started.elapsed();
  assert!(matches!(sent, Err(Error::Corrupt(_))), "{sent:?}");
  // The failed send left the lease with its sender.
  assert_eq!(pool.slot_state(lease.slot).unwrap().owner, me.0 + 1);
  // Consumer side: same cell.
  let started = Instant::now();
  let received = channel.try_recv(&pool, me);
  let spent = spent.max(started.elapsed());
  assert!(matches!(received, Err(Error::Corrupt(_))), "{received:?}");
  println!("slowest corrupted-ring call: {spent:?} (retry budget {MAX_RETRIES} spins)");

  // Repaired, the channel works again.
  write64(&chan_mem, C_CELLS, 0);
  assert!(matches!(
    channel.try_send(&pool, me, lease, 1).unwrap(),
    Sent::Sent(_)
  ));
  assert!(matches!(
    channel.try_recv(&pool, me).unwrap(),
    Received::Lease(l, 1, _) if l == lease
  ));
}

#[test]
fn scribbled_counters_do_not_overflow_stats() {
  let pool = new_pool(64, 4, 3);
  let mem = pool.memory();
  let layout = *pool.layout();
  for field in [
    P_RETIRED_ACQUIRED,
    P_RETIRED_RELEASED,
    P_RETIRED_WAITS,
    P_RECLAIMED,
  ] {
    write64(mem, field, u64::MAX);
  }
  for index in 0..3 {
    for field in [PART_ACQUIRED, PART_RELEASED, PART_WAITS] {
      write64(mem, layout.participant(index) + field, u64::MAX - 1);
    }
  }
  // The free count lives in the first free slot's length word.
  write32(mem, layout.meta(0) + META_LENGTH, u32::MAX);
  let s = pool.stats().unwrap();
  // Sums wrap like the counters themselves: MAX + 3 * (MAX - 1) = MAX - 3 - 3 (mod 2^64).
  assert_eq!(
    (s.acquired, s.released, s.waits),
    (u64::MAX - 6, u64::MAX - 6, u64::MAX - 6)
  );
  assert_eq!(s.in_use, 0, "the free count is clamped to the slot count");
  // Joining and leaving with those counters folds them without a panic either.
  let me = pool.join(5, 5).unwrap();
  let lease = pool.try_acquire(me).unwrap().unwrap();
  let _ = pool.release(me, lease).unwrap();
  assert_eq!(pool.leave(me, 5).unwrap().0, 0);
  assert!(pool.stats().is_ok());
}
