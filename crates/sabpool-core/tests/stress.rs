//! Multi-threaded stress of the pool and the channel with std threads, plus the channel's close
//! and full-ring behaviour.
//!
//! The core never touches payload bytes, so the tests keep per-slot side arrays as the payload
//! stand-in and an "owner tag" per slot: set with a compare-and-swap from 0 when a thread gains a
//! slot (acquire, adopt, receive) and cleared before it gives the slot up (release, handoff,
//! send). A failed compare-and-swap means two threads owned one slot at once.
#![cfg(not(loom))]

mod common;

use common::*;
use crossbeam::queue::SegQueue;
use sabpool_core::*;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Barrier};
use std::time::Instant;

struct Tags(Vec<AtomicU64>);

impl Tags {
  fn new(slots: u32) -> Self {
    Tags((0..slots).map(|_| AtomicU64::new(0)).collect())
  }
  fn claim(&self, slot: u32, tag: u64, what: &str) {
    if let Err(other) = self.0[slot as usize].compare_exchange(0, tag, AcqRel, Acquire) {
      panic!("{what}: slot {slot} given to {tag:#x} while {other:#x} still owns it");
    }
  }
  fn unclaim(&self, slot: u32, tag: u64) {
    if let Err(other) = self.0[slot as usize].compare_exchange(tag, 0, AcqRel, Acquire) {
      panic!("slot {slot}: {tag:#x} gives up a slot tagged {other:#x}");
    }
  }
}

fn assert_quiescent<M: Memory>(pool: &Pool<M>) -> PoolStats {
  let slots = pool.layout().slot_count;
  assert_eq!(
    pool.free_list_len().unwrap(),
    slots,
    "every slot free exactly once"
  );
  assert_eq!(pool.census().unwrap(), [0, slots, 0, 0, 0]);
  let s = pool.stats().unwrap();
  assert_eq!(s.in_use, 0, "{s:?}");
  assert_eq!(s.acquired, s.released + s.reclaimed, "{s:?}");
  assert!(
    s.high_water <= slots,
    "high water {} of {slots} slots",
    s.high_water
  );
  s
}

// ---- pool stress -------------------------------------------------------------------------------

struct Ticket {
  lease: Lease,
  length: u32,
  stamp: u64,
}

const PAYLOAD_WORDS: usize = 4;

struct PoolShared {
  pool: Pool<OwnedMemory>,
  tags: Tags,
  /// Payload stand-in: a thread that owns a slot writes a stamp into every word and checks the
  /// stamp is intact before it gives the slot up.
  payload: Vec<[AtomicU64; PAYLOAD_WORDS]>,
  /// How many times each slot was acquired (its generation must end equal to it).
  acquisitions: Vec<AtomicU64>,
  tickets: SegQueue<Ticket>,
}

impl PoolShared {
  fn stamp(&self, slot: u32, stamp: u64) {
    for word in &self.payload[slot as usize] {
      word.store(stamp, Relaxed);
    }
  }
  fn check(&self, slot: u32, stamp: u64, what: &str) {
    for (i, word) in self.payload[slot as usize].iter().enumerate() {
      let got = word.load(Relaxed);
      assert_eq!(
        got, stamp,
        "{what}: slot {slot} word {i} changed under its owner"
      );
    }
  }
}

#[derive(Default, Debug, Clone, Copy)]
struct PoolCounts {
  ops: u64,
  acquired: u64,
  exhausted: u64,
  released: u64,
  handed_off: u64,
  adopted: u64,
  stale_checked: u64,
  reclaimed: u64,
}

fn pool_worker(
  shared: &PoolShared,
  tid: u64,
  ops: u64,
  max_held: usize,
  keep_at_end: bool,
) -> PoolCounts {
  let pool = &shared.pool;
  let tag = tid + 1;
  let me = pool.join(tag, tid as u32).unwrap();
  let mut rng = Rng::new(0x57e55 + tid);
  let mut held: Vec<(Lease, u64)> = Vec::new();
  let mut counts = PoolCounts::default();
  let mut last_released: Option<Lease> = None;
  let mut serial = 0u64;
  let mut next_stamp = || {
    serial += 1;
    (tid << 48) | serial
  };
  while counts.ops < ops {
    counts.ops += 1;
    if counts.ops % 4096 == 0 {
      // Let the other threads of this 2-core machine in, mid-sequence.
      std::thread::yield_now();
    }
    let roll = rng.below(100);
    if roll < 35 && held.len() < max_held {
      match pool.try_acquire(me).unwrap() {
        Some(lease) => {
          shared.tags.claim(lease.slot, tag, "acquire");
          shared.acquisitions[lease.slot as usize].fetch_add(1, Relaxed);
          let stamp = next_stamp();
          shared.stamp(lease.slot, stamp);
          held.push((lease, stamp));
          counts.acquired += 1;
        }
        None => counts.exhausted += 1,
      }
    } else if roll < 58 && !held.is_empty() {
      let (lease, stamp) = held.swap_remove(rng.below(held.len() as u64) as usize);
      shared.check(lease.slot, stamp, "release");
      shared.tags.unclaim(lease.slot, tag);
      let _ = pool.release(me, lease).unwrap();
      last_released = Some(lease);
      counts.released += 1;
    } else if roll < 78 && !held.is_empty() {
      let (lease, stamp) = held.swap_remove(rng.below(held.len() as u64) as usize);
      shared.check(lease.slot, stamp, "handoff");
      let length = (stamp % 257) as u32;
      shared.tags.unclaim(lease.slot, tag);
      let lease = pool.handoff(me, lease, length).unwrap();
      // A handoff moves the generation on too.
      shared.acquisitions[lease.slot as usize].fetch_add(1, Relaxed);
      shared.tickets.push(Ticket {
        lease,
        length,
        stamp,
      });
      counts.handed_off += 1;
    } else if roll < 95 {
      if let Some(ticket) = shared.tickets.pop() {
        let length = pool.adopt(me, ticket.lease).unwrap();
        shared.tags.claim(ticket.lease.slot, tag, "adopt");
        assert_eq!(length, ticket.length, "length carried by the handoff");
        shared.check(ticket.lease.slot, ticket.stamp, "adopt");
        let stamp = next_stamp();
        shared.stamp(ticket.lease.slot, stamp);
        held.push((ticket.lease, stamp));
        counts.adopted += 1;
      }
    } else if let Some(old) = last_released.take() {
      // A released lease is dead for good, whatever happened to its slot since.
      assert_eq!(pool.release(me, old), Err(Error::StaleLease));
      assert_eq!(pool.adopt(me, old), Err(Error::StaleLease));
      assert_eq!(pool.handoff(me, old, 0), Err(Error::StaleLease));
      counts.stale_checked += 1;
    }
  }
  // Tear down: either give everything back, or go away holding leases and let `leave` reclaim.
  if keep_at_end {
    for (lease, stamp) in &held {
      shared.check(lease.slot, *stamp, "leave");
      shared.tags.unclaim(lease.slot, tag);
    }
  } else {
    for (lease, stamp) in held.drain(..) {
      shared.check(lease.slot, stamp, "final release");
      shared.tags.unclaim(lease.slot, tag);
      let _ = pool.release(me, lease).unwrap();
      counts.released += 1;
    }
  }
  let (reclaimed, _) = pool.leave(me, tag).unwrap();
  assert_eq!(
    reclaimed as usize,
    held.len(),
    "leave reclaims exactly the held leases"
  );
  counts.reclaimed = reclaimed as u64;
  counts
}

/// `threads` participants each run `ops` random operations, holding at most `max_held` leases.
fn pool_stress(threads: u64, slots: u32, max_held: usize, ops: u64) {
  #[allow(non_snake_case)]
  let (THREADS, SLOTS, OPS) = (threads, slots, ops);
  let shared = Arc::new(PoolShared {
    pool: new_pool(256, SLOTS, 8),
    tags: Tags::new(SLOTS),
    payload: (0..SLOTS)
      .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
      .collect(),
    acquisitions: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
    tickets: SegQueue::new(),
  });
  let started = Instant::now();
  let barrier = Arc::new(Barrier::new(THREADS as usize));
  let workers: Vec<_> = (0..THREADS)
    .map(|tid| {
      let shared = shared.clone();
      let barrier = barrier.clone();
      std::thread::spawn(move || {
        barrier.wait();
        pool_worker(&shared, tid, OPS, max_held, tid % 2 == 0)
      })
    })
    .collect();
  // Meanwhile, the shared counters must stay plausible at every instant: never more slots in
  // use than exist (nor a wrapped-around "negative" count).
  let running = Arc::new(AtomicBool::new(true));
  let monitor = {
    let (shared, running) = (shared.clone(), running.clone());
    std::thread::spawn(move || {
      let mem = shared.pool.memory();
      let mut samples = 0u64;
      while running.load(Relaxed) {
        // The free count is kept in the list itself (the first free slot's count word).
        let in_use = shared.pool.stats().unwrap().in_use;
        let high_water = read32(mem, sabpool_core::layout::P_HIGH_WATER);
        assert!(in_use <= SLOTS, "in_use {in_use} of {SLOTS} slots");
        assert!(
          high_water <= SLOTS,
          "high water {high_water} of {SLOTS} slots"
        );
        samples += 1;
        std::thread::yield_now();
      }
      samples
    })
  };
  let mut total = PoolCounts::default();
  for w in workers {
    let c = w.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    total.ops += c.ops;
    total.acquired += c.acquired;
    total.exhausted += c.exhausted;
    total.released += c.released;
    total.handed_off += c.handed_off;
    total.adopted += c.adopted;
    total.stale_checked += c.stale_checked;
    total.reclaimed += c.reclaimed;
  }
  let elapsed = started.elapsed();
  running.store(false, Relaxed);
  let samples = monitor
    .join()
    .unwrap_or_else(|p| std::panic::resume_unwind(p));
  assert!(samples > 0);

  // Tickets nobody adopted: a late participant takes and releases them.
  let pool = &shared.pool;
  let me = pool.join(999, 0).unwrap();
  let mut leftover = 0;
  while let Some(ticket) = shared.tickets.pop() {
    assert_eq!(
      pool.slot_state(ticket.lease.slot).unwrap(),
      SlotWord::new(ticket.lease.generation, 0, SlotState::InFlight)
    );
    assert_eq!(pool.adopt(me, ticket.lease).unwrap(), ticket.length);
    shared.check(ticket.lease.slot, ticket.stamp, "late adopt");
    let _ = pool.release(me, ticket.lease).unwrap();
    leftover += 1;
  }
  let _ = pool.leave(me, 999).unwrap();
  println!(
    "pool stress ({THREADS} threads, {SLOTS} slots): {total:?}, {leftover} late adoptions, {elapsed:?}"
  );

  assert!(total.ops >= 1_000_000);
  assert_eq!(total.handed_off, total.adopted + leftover);
  assert!(
    total.exhausted > 0,
    "the pool never ran dry: the test is too gentle"
  );
  assert!(total.adopted > 0 && total.stale_checked > 0);
  // With room to spare, the threads that leave holding leases do hold some.
  assert!(total.reclaimed > 0 || (SLOTS as u64) < THREADS * max_held as u64 / 2);
  for (slot, tag) in shared.tags.0.iter().enumerate() {
    assert_eq!(tag.load(Relaxed), 0, "slot {slot} still tagged");
    let SlotWord {
      generation,
      owner,
      state,
    } = pool.slot_state(slot as u32).unwrap();
    assert_eq!((owner, state), (0, SlotState::Free));
    assert_eq!(
      generation as u64,
      shared.acquisitions[slot].load(Relaxed),
      "slot {slot}: one new generation per acquisition and per handoff"
    );
  }
  let s = assert_quiescent(pool);
  assert_eq!(s.acquired, total.acquired);
  assert_eq!(s.released, total.released + leftover);
  assert_eq!(s.reclaimed, total.reclaimed);
  assert_eq!(s.participants, 0);
}

#[test]
fn pool_stress_many_threads() {
  // 6 M operations; the pool runs dry often (6 threads may want 48 of 32 slots).
  with_watchdog("pool stress", 120, || pool_stress(6, 32, 8, 1_000_000));
}

#[test]
fn pool_stress_tiny_pool() {
  // 3 slots for 4 threads: every pop and push races with others on the same few slots, the
  // setting where a free list without ABA protection hands one slot out twice.
  with_watchdog("tiny pool stress", 120, || pool_stress(4, 3, 2, 500_000));
}

// ---- channel stress ----------------------------------------------------------------------------

struct ChannelShared {
  pool: Pool<OwnedMemory>,
  channel: Channel<OwnedMemory>,
  tags: Tags,
  /// Payload stand-in: (producer << 32) | sequence of the item the slot carries.
  item: Vec<AtomicU64>,
}

fn item_length(seq: u64) -> u32 {
  (seq % 257) as u32
}

#[test]
fn channel_stress_producers_and_consumers() {
  with_watchdog("channel stress", 120, channel_stress);
}

fn channel_stress() {
  const PRODUCERS: usize = 3;
  const CONSUMERS: usize = 3;
  const PER_PRODUCER: u64 = 350_000; // 1.05 M items in all
  const SLOTS: u32 = 48;
  let pool = new_pool(256, SLOTS, 8);
  let channel = new_channel(8, pool.uid());
  let shared = Arc::new(ChannelShared {
    pool,
    channel,
    tags: Tags::new(SLOTS),
    item: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
  });
  let seen: Arc<Vec<Vec<AtomicBool>>> = Arc::new(
    (0..PRODUCERS)
      .map(|_| (0..PER_PRODUCER).map(|_| AtomicBool::new(false)).collect())
      .collect(),
  );
  let full = Arc::new(AtomicU64::new(0));
  let empty = Arc::new(AtomicU64::new(0));
  let started = Instant::now();

  let producers: Vec<_> = (0..PRODUCERS)
    .map(|p| {
      let shared = shared.clone();
      let full = full.clone();
      std::thread::spawn(move || {
        let (pool, channel) = (&shared.pool, &shared.channel);
        let tag = 0x100 + p as u64;
        let me = pool.join(tag, 0).unwrap();
        for seq in 0..PER_PRODUCER {
          let lease = loop {
            match pool.try_acquire(me).unwrap() {
              Some(lease) => break lease,
              None => std::thread::yield_now(),
            }
          };
          shared.tags.claim(lease.slot, tag, "producer acquire");
          shared.item[lease.slot as usize].store(((p as u64) << 32) | seq, Relaxed);
          loop {
            shared.tags.unclaim(lease.slot, tag);
            match channel.try_send(pool, me, lease, item_length(seq)).unwrap() {
              Sent::Sent(_) => break,
              Sent::Full => {
                // Still ours.
                shared.tags.claim(lease.slot, tag, "full ring");
                full.fetch_add(1, Relaxed);
                std::thread::yield_now();
              }
            }
          }
        }
        let _ = pool.leave(me, tag).unwrap();
      })
    })
    .collect();

  let consumers: Vec<_> = (0..CONSUMERS)
    .map(|c| {
      let shared = shared.clone();
      let seen = seen.clone();
      let empty = empty.clone();
      std::thread::spawn(move || {
        let (pool, channel) = (&shared.pool, &shared.channel);
        let tag = 0x200 + c as u64;
        let me = pool.join(tag, 0).unwrap();
        let mut last: [Option<u64>; PRODUCERS] = [None; PRODUCERS];
        let mut received = 0u64;
        loop {
          match channel.try_recv(pool, me).unwrap() {
            Received::Lease(lease, length, _) => {
              shared.tags.claim(lease.slot, tag, "receive");
              assert_eq!(pool.slot_state(lease.slot).unwrap().owner, me.0 + 1);
              let item = shared.item[lease.slot as usize].load(Relaxed);
              let (p, seq) = ((item >> 32) as usize, item & 0xffff_ffff);
              assert!(
                p < PRODUCERS && seq < PER_PRODUCER,
                "garbage item {item:#x}"
              );
              assert_eq!(length, item_length(seq), "length of item {p}/{seq}");
              if let Some(prev) = last[p] {
                assert!(
                  seq > prev,
                  "consumer {c}: producer {p} item {seq} after {prev} (FIFO broken)"
                );
              }
              last[p] = Some(seq);
              assert!(
                !seen[p][seq as usize].swap(true, Relaxed),
                "item {p}/{seq} twice"
              );
              shared.tags.unclaim(lease.slot, tag);
              let _ = pool.release(me, lease).unwrap();
              received += 1;
            }
            Received::Empty => {
              empty.fetch_add(1, Relaxed);
              std::thread::yield_now();
            }
            Received::Closed => break,
          }
        }
        let _ = pool.leave(me, tag).unwrap();
        received
      })
    })
    .collect();

  for p in producers {
    p.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
  }
  assert!(
    shared.channel.close().unwrap(),
    "first close reports the channel was open"
  );
  let per_consumer: Vec<u64> = consumers
    .into_iter()
    .map(|c| c.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
    .collect();
  let elapsed = started.elapsed();
  let total = PER_PRODUCER * PRODUCERS as u64;
  println!(
    "channel stress: {total} items in {elapsed:?}, per consumer {per_consumer:?}, {} full, {} empty",
    full.load(Relaxed),
    empty.load(Relaxed)
  );
  assert_eq!(per_consumer.iter().sum::<u64>(), total);
  for (p, flags) in seen.iter().enumerate() {
    if let Some(seq) = flags.iter().position(|f| !f.load(Relaxed)) {
      panic!("item {p}/{seq} lost");
    }
  }
  let cs = shared.channel.stats().unwrap();
  assert_eq!(
    (cs.sent, cs.received, cs.queued, cs.closed),
    (total, total, 0, true)
  );
  let s = assert_quiescent(&shared.pool);
  assert_eq!((s.acquired, s.released, s.reclaimed), (total, total, 0));
}

// ---- close and full ----------------------------------------------------------------------------

#[test]
fn close_fails_sends_and_drains_receivers() {
  let pool = new_pool(64, 8, 2);
  let channel = new_channel(8, pool.uid());
  let a = pool.join(1, 1).unwrap();
  let b = pool.join(2, 2).unwrap();
  assert_eq!(channel.try_recv(&pool, b).unwrap(), Received::Empty);
  let sent: Vec<Lease> = (0..3u32)
    .map(|i| {
      let lease = pool.try_acquire(a).unwrap().unwrap();
      assert!(matches!(
        channel.try_send(&pool, a, lease, 10 + i).unwrap(),
        Sent::Sent(_)
      ));
      lease
    })
    .collect();
  assert!(!channel.is_closed().unwrap());
  assert!(channel.close().unwrap());
  assert!(
    !channel.close().unwrap(),
    "second close reports it was already closed"
  );
  assert!(channel.is_closed().unwrap());

  // Sends fail, and the lease stays the sender's.
  let late = pool.try_acquire(a).unwrap().unwrap();
  assert_eq!(channel.try_send(&pool, a, late, 1), Err(Error::Closed));
  assert_eq!(
    pool.slot_state(late.slot).unwrap(),
    SlotWord::new(late.generation, a.0 + 1, SlotState::Leased)
  );
  let _ = pool.release(a, late).unwrap();

  // What was queued before the close is still delivered, in order, then Closed for good.
  for (i, lease) in sent.iter().enumerate() {
    assert_eq!(
      channel.try_recv(&pool, b).unwrap(),
      Received::Lease(*lease, 10 + i as u32, Wake(false))
    );
    let _ = pool.release(b, *lease).unwrap();
  }
  for _ in 0..3 {
    assert_eq!(channel.try_recv(&pool, b).unwrap(), Received::Closed);
  }
  let cs = channel.stats().unwrap();
  assert_eq!(
    (cs.sent, cs.received, cs.queued, cs.closed),
    (3, 3, 0, true)
  );
  assert_quiescent(&pool);
}

#[test]
fn full_ring_keeps_the_lease_with_its_sender() {
  let pool = new_pool(64, 4, 2);
  let channel = new_channel(2, pool.uid());
  let a = pool.join(1, 1).unwrap();
  let b = pool.join(2, 2).unwrap();
  let leases: Vec<Lease> = (0..4)
    .map(|_| pool.try_acquire(a).unwrap().unwrap())
    .collect();
  for lease in &leases[..2] {
    assert!(matches!(
      channel.try_send(&pool, a, *lease, 1).unwrap(),
      Sent::Sent(_)
    ));
  }
  assert_eq!(
    channel.try_send(&pool, a, leases[2], 5).unwrap(),
    Sent::Full
  );
  assert_eq!(
    channel.try_send(&pool, a, leases[2], 5).unwrap(),
    Sent::Full
  );
  assert_eq!(
    pool.slot_state(leases[2].slot).unwrap(),
    SlotWord::new(leases[2].generation, a.0 + 1, SlotState::Leased)
  );
  assert_eq!(channel.stats().unwrap().queued, 2);
  // The refused lease can be released (or sent elsewhere) by its owner.
  let _ = pool.release(a, leases[2]).unwrap();
  // Once a receiver makes room, sending works again.
  assert_eq!(
    channel.try_recv(&pool, b).unwrap(),
    Received::Lease(leases[0], 1, Wake(false))
  );
  assert!(matches!(
    channel.try_send(&pool, a, leases[3], 7).unwrap(),
    Sent::Sent(_)
  ));
  assert_eq!(
    channel.try_send(&pool, a, leases[3], 7),
    Err(Error::StaleLease)
  );
  assert_eq!(
    channel.try_recv(&pool, b).unwrap(),
    Received::Lease(leases[1], 1, Wake(false))
  );
  assert_eq!(
    channel.try_recv(&pool, b).unwrap(),
    Received::Lease(leases[3], 7, Wake(false))
  );
  assert_eq!(channel.try_recv(&pool, b).unwrap(), Received::Empty);
  for lease in [leases[0], leases[1], leases[3]] {
    let _ = pool.release(b, lease).unwrap();
  }
  assert_quiescent(&pool);
}

#[test]
fn send_checks_ownership_pool_and_length() {
  let pool = new_pool(64, 4, 2);
  let other_pool = Pool::create(pool_memory(64, 4, 2), 64, 4, 2, pool.uid() + 1).unwrap();
  let channel = new_channel(4, pool.uid());
  let a = pool.join(1, 1).unwrap();
  let b = pool.join(2, 2).unwrap();
  let lease = pool.try_acquire(a).unwrap().unwrap();
  assert_eq!(channel.try_send(&pool, b, lease, 1), Err(Error::StaleLease));
  assert!(matches!(
    channel.try_send(&pool, a, lease, 65),
    Err(Error::BadTicket(_))
  ));
  assert!(matches!(
    channel.try_send(&other_pool, a, lease, 1),
    Err(Error::BadTicket(_))
  ));
  assert!(matches!(
    channel.try_recv(&other_pool, a),
    Err(Error::BadTicket(_))
  ));
  let lease = pool.handoff(a, lease, 3).unwrap();
  assert_eq!(channel.try_send(&pool, a, lease, 1), Err(Error::StaleLease));
  // Nothing was queued by the failed sends.
  assert_eq!(channel.stats().unwrap().sent, 0);
  assert_eq!(channel.try_recv(&pool, b).unwrap(), Received::Empty);
  assert_eq!(pool.adopt(b, lease).unwrap(), 3);
  let _ = pool.release(b, lease).unwrap();
  assert_quiescent(&pool);
}

#[test]
fn receivers_are_woken_only_when_parked() {
  let pool = new_pool(64, 4, 2);
  let chan_mem = sabpool_core::OwnedMemory::new(
    sabpool_core::layout::ChannelLayout::new(4)
      .unwrap()
      .total_len,
  );
  let channel = Channel::create(&chan_mem, 4, 3, pool.uid()).unwrap();
  use sabpool_core::layout::{C_RECV_EPOCH, C_RECV_WAITERS, C_SEND_EPOCH, C_SEND_WAITERS};
  let a = pool.join(1, 1).unwrap();
  let l1 = pool.try_acquire(a).unwrap().unwrap();
  assert_eq!(
    channel.try_send(&pool, a, l1, 0).unwrap(),
    Sent::Sent(Wake(false))
  );
  write32(&chan_mem, C_RECV_WAITERS, 1);
  let l2 = pool.try_acquire(a).unwrap().unwrap();
  assert_eq!(
    channel.try_send(&pool, a, l2, 0).unwrap(),
    Sent::Sent(Wake(true))
  );
  assert_eq!(read32(&chan_mem, C_RECV_EPOCH), 1);
  assert_eq!(
    channel.try_recv(&pool, a).unwrap(),
    Received::Lease(l1, 0, Wake(false))
  );
  write32(&chan_mem, C_SEND_WAITERS, 2);
  assert_eq!(
    channel.try_recv(&pool, a).unwrap(),
    Received::Lease(l2, 0, Wake(true))
  );
  assert_eq!(read32(&chan_mem, C_SEND_EPOCH), 1);
  // Close bumps both epochs so every parked thread re-checks.
  assert!(channel.close().unwrap());
  assert_eq!(
    (
      read32(&chan_mem, C_RECV_EPOCH),
      read32(&chan_mem, C_SEND_EPOCH)
    ),
    (2, 2)
  );
}

#[test]
fn close_races_with_senders_and_receivers() {
  with_watchdog("close race", 120, close_race);
}

fn close_race() {
  const PRODUCERS: usize = 3;
  const CONSUMERS: usize = 2;
  for round in 0..20u64 {
    let pool = new_pool(64, 32, 8);
    let channel = new_channel(4, pool.uid());
    let shared = Arc::new((pool, channel));
    let received_total = Arc::new(AtomicUsize::new(0));
    let producers: Vec<_> = (0..PRODUCERS)
      .map(|p| {
        let shared = shared.clone();
        std::thread::spawn(move || {
          let (pool, channel) = (&shared.0, &shared.1);
          let me = pool.join(1 + p as u64, 0).unwrap();
          let mut sent = Vec::new();
          loop {
            let Some(lease) = pool.try_acquire(me).unwrap() else {
              std::thread::yield_now();
              continue;
            };
            match channel.try_send(pool, me, lease, p as u32) {
              Ok(Sent::Sent(_)) => sent.push(lease),
              Ok(Sent::Full) => {
                let _ = pool.release(me, lease).unwrap();
                std::thread::yield_now();
              }
              Err(Error::Closed) => {
                // Refused, and still ours: release must work.
                assert_eq!(
                  pool.slot_state(lease.slot).unwrap(),
                  SlotWord::new(lease.generation, me.0 + 1, SlotState::Leased)
                );
                let _ = pool.release(me, lease).unwrap();
                break;
              }
              Err(e) => panic!("send: {e:?}"),
            }
          }
          let _ = pool.leave(me, 1 + p as u64).unwrap();
          sent
        })
      })
      .collect();
    let consumers: Vec<_> = (0..CONSUMERS)
      .map(|c| {
        let shared = shared.clone();
        let received_total = received_total.clone();
        std::thread::spawn(move || {
          let (pool, channel) = (&shared.0, &shared.1);
          let me = pool.join(100 + c as u64, 0).unwrap();
          let mut got = Vec::new();
          loop {
            match channel.try_recv(pool, me).unwrap() {
              Received::Lease(lease, _, _) => {
                got.push(lease);
                received_total.fetch_add(1, Relaxed);
                let _ = pool.release(me, lease).unwrap();
              }
              Received::Empty => std::hint::spin_loop(),
              Received::Closed => break,
            }
          }
          let _ = pool.leave(me, 100 + c as u64).unwrap();
          got
        })
      })
      .collect();
    // Close at a varying point of the traffic.
    while received_total.load(Relaxed) < 50 + 100 * round as usize {
      std::hint::spin_loop();
    }
    assert!(shared.1.close().unwrap());
    let mut sent: Vec<(u32, u32)> = producers
      .into_iter()
      .flat_map(|p| p.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
      .map(|l| (l.slot, l.generation))
      .collect();
    let mut got: Vec<(u32, u32)> = consumers
      .into_iter()
      .flat_map(|c| c.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
      .map(|l| (l.slot, l.generation))
      .collect();
    // Every lease whose send succeeded was received exactly once; nothing else was.
    sent.sort_unstable();
    got.sort_unstable();
    assert_eq!(sent.len(), got.len(), "round {round}");
    assert_eq!(sent, got, "round {round}");
    let (pool, channel) = (&shared.0, &shared.1);
    let cs = channel.stats().unwrap();
    assert_eq!(
      (cs.sent, cs.received, cs.queued),
      (got.len() as u64, got.len() as u64, 0)
    );
    assert_quiescent(pool);
  }
}
