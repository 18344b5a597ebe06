//! Unit tests of the pool: layout round trip, acquire/release, ownership errors, handoff/adopt,
//! participants, reclaim and statistics.
#![cfg(not(loom))]

mod common;

use common::*;
use sabpool_core::layout::*;
use sabpool_core::pool::NIL;
use sabpool_core::*;
use std::collections::HashSet;

/// `acquired == released + reclaimed + in_use` holds whenever no operation is in progress:
/// every acquired slot is either still in use (leased, in flight or queued) or went back exactly
/// once, by a release or by a reclaim.
fn assert_stats_add_up<M: Memory>(pool: &Pool<M>) -> PoolStats {
  let s = pool.stats().unwrap();
  assert_eq!(
    s.acquired,
    s.released + s.reclaimed + s.in_use as u64,
    "stats do not add up: {s:?}"
  );
  let census = pool.census().unwrap();
  assert_eq!(census[0], 0, "slots in no valid state: {census:?}");
  assert_eq!(
    census[SlotState::Free.bits() as usize],
    pool.free_list_len().unwrap(),
    "every free slot must be on the free list exactly once"
  );
  assert_eq!(
    s.in_use,
    s.slots - census[SlotState::Free.bits() as usize],
    "in_use disagrees with the census {census:?}"
  );
  s
}

#[test]
fn create_then_attach_round_trip() {
  let mem = pool_memory(100, 5, 3);
  let created = Pool::create(&mem, 100, 5, 3, 0xabcd).unwrap();
  let attached = Pool::attach(&mem).unwrap();
  assert_eq!(created.layout(), attached.layout());
  assert_eq!(attached.uid(), 0xabcd);
  let layout = *attached.layout();
  assert_eq!(layout.slot_size, 100);
  assert_eq!(layout.slot_count, 5);
  assert_eq!(layout.max_participants, 3);
  assert_eq!(layout.stride, 128, "slots start on 64-byte lines");
  assert_eq!(layout.data_offset % LINE, 0);
  assert_eq!(layout.total_len, mem.len());
  assert!(layout.meta(4) + META_SIZE <= layout.data_offset);
  assert_eq!(layout.data(4) + layout.stride as usize, layout.total_len);

  // Both views see one shared state: a lease taken through one is released through the other.
  let me = created.join(1, 77).unwrap();
  assert_eq!(attached.participant_info(me.0).unwrap(), (1, 77));
  let lease = created.try_acquire(me).unwrap().unwrap();
  assert_eq!(
    attached.slot_state(lease.slot).unwrap(),
    SlotWord::new(lease.generation, me.0 + 1, SlotState::Leased)
  );
  assert_eq!(attached.stats().unwrap().in_use, 1);
  let _ = attached.release(me, lease).unwrap();
  assert_eq!(
    created.slot_state(lease.slot).unwrap(),
    SlotWord::new(lease.generation, 0, SlotState::Free)
  );
  assert_eq!(created.free_list_len().unwrap(), 5);
  assert_stats_add_up(&created);
}

#[test]
fn attach_rejects_what_is_not_a_pool() {
  // Zeroed memory, too short memory, and a channel region.
  let zeroed = OwnedMemory::new(4096);
  assert!(matches!(Pool::attach(zeroed), Err(Error::BadHandle(_))));
  assert!(matches!(
    Pool::attach(OwnedMemory::new(16)),
    Err(Error::BadHandle(_))
  ));
  let channel_mem = OwnedMemory::new(ChannelLayout::new(4).unwrap().total_len + 4096);
  Channel::create(&channel_mem, 4, 1, 2).unwrap();
  assert!(matches!(
    Pool::attach(&channel_mem),
    Err(Error::BadHandle(_))
  ));
  // And the other way round.
  let pool_mem = pool_memory(64, 4, 2);
  Pool::create(&pool_mem, 64, 4, 2, 1).unwrap();
  assert!(matches!(
    Channel::attach(&pool_mem),
    Err(Error::BadHandle(_))
  ));
}

#[test]
fn create_rejects_bad_geometry_and_small_regions() {
  for (size, count, parts) in [
    (0, 1, 1),
    (MAX_SLOT_SIZE + 1, 1, 1),
    (1, 0, 1),
    (1, MAX_SLOTS + 1, 1),
    (1, 1, 0),
    (1, 1, MAX_PARTICIPANTS + 1),
  ] {
    assert!(
      matches!(
        PoolLayout::new(size, count, parts),
        Err(Error::BadHandle(_))
      ),
      "{size} {count} {parts}"
    );
    assert!(matches!(
      Pool::create(OwnedMemory::new(1 << 16), size, count, parts, 1),
      Err(Error::BadHandle(_))
    ));
  }
  let needed = PoolLayout::new(64, 8, 2).unwrap().total_len;
  assert!(matches!(
    Pool::create(OwnedMemory::new(needed - 1), 64, 8, 2, 1),
    Err(Error::BadHandle(_))
  ));
  assert!(Pool::create(OwnedMemory::new(needed), 64, 8, 2, 1).is_ok());
  // The largest geometry still computes without overflow.
  let big = PoolLayout::new(MAX_SLOT_SIZE, MAX_SLOTS, MAX_PARTICIPANTS).unwrap();
  assert_eq!(big.total_len as u64 % LINE as u64, 0);
  assert!(big.total_len as u64 >= MAX_SLOT_SIZE as u64 * MAX_SLOTS as u64);
}

#[test]
fn acquire_until_exhausted_returns_none() {
  let pool = new_pool(64, 6, 2);
  let me = pool.join(1, 1).unwrap();
  let mut slots = HashSet::new();
  for i in 0..6 {
    let lease = pool.try_acquire(me).unwrap().expect("a free slot");
    assert!(lease.slot < 6);
    assert_eq!(
      lease.generation, 1,
      "first lease of a slot has generation 1"
    );
    assert!(
      slots.insert(lease.slot),
      "slot {} handed out twice",
      lease.slot
    );
    assert_eq!(pool.stats().unwrap().in_use, i + 1);
  }
  assert_eq!(pool.try_acquire(me).unwrap(), None);
  assert_eq!(pool.try_acquire(me).unwrap(), None);
  assert_eq!(pool.free_list_len().unwrap(), 0);
  assert_eq!(pool.census().unwrap(), [0, 0, 6, 0, 0]);
  let s = assert_stats_add_up(&pool);
  assert_eq!(
    (s.in_use, s.high_water, s.acquired, s.released),
    (6, 6, 6, 0)
  );
}

#[test]
fn release_makes_slot_reusable_with_new_generation() {
  let pool = new_pool(64, 2, 2);
  let me = pool.join(1, 1).unwrap();
  let a = pool.try_acquire(me).unwrap().unwrap();
  let b = pool.try_acquire(me).unwrap().unwrap();
  assert_eq!(pool.try_acquire(me).unwrap(), None);
  assert_eq!(pool.release(me, a).unwrap(), Wake(false));
  assert_eq!(
    pool.slot_state(a.slot).unwrap(),
    SlotWord::new(a.generation, 0, SlotState::Free)
  );
  let again = pool.try_acquire(me).unwrap().unwrap();
  assert_eq!(again.slot, a.slot, "the only free slot is reused");
  assert_eq!(again.generation, a.generation + 1);
  // The old lease of that slot is stale now; the new one works.
  assert_eq!(pool.release(me, a), Err(Error::StaleLease));
  let _ = pool.release(me, again).unwrap();
  let _ = pool.release(me, b).unwrap();
  let s = assert_stats_add_up(&pool);
  assert_eq!(
    (s.acquired, s.released, s.in_use, s.high_water),
    (3, 3, 0, 2)
  );
  assert_eq!(pool.free_list_len().unwrap(), 2);
}

#[test]
fn free_list_is_lifo_and_generations_keep_counting() {
  let pool = new_pool(8, 3, 1);
  let me = pool.join(9, 9).unwrap();
  let mut last_gen = [0u32; 3];
  for round in 0..50 {
    let lease = pool.try_acquire(me).unwrap().unwrap();
    assert_eq!(
      lease.generation,
      last_gen[lease.slot as usize] + 1,
      "round {round}"
    );
    last_gen[lease.slot as usize] = lease.generation;
    let _ = pool.release(me, lease).unwrap();
    // LIFO: the slot just released is the next one handed out.
    let next = pool.try_acquire(me).unwrap().unwrap();
    assert_eq!(next.slot, lease.slot);
    assert_eq!(next.generation, lease.generation + 1);
    last_gen[next.slot as usize] = next.generation;
    let _ = pool.release(me, next).unwrap();
  }
  assert_stats_add_up(&pool);
}

#[test]
fn double_release_is_stale() {
  let pool = new_pool(64, 4, 2);
  let me = pool.join(1, 1).unwrap();
  let lease = pool.try_acquire(me).unwrap().unwrap();
  let _ = pool.release(me, lease).unwrap();
  assert_eq!(pool.release(me, lease), Err(Error::StaleLease));
  assert_eq!(pool.release(me, lease), Err(Error::StaleLease));
  // The failed releases pushed nothing: the free list still holds each slot once.
  assert_eq!(pool.free_list_len().unwrap(), 4);
  let s = assert_stats_add_up(&pool);
  assert_eq!((s.acquired, s.released), (1, 1));
}

#[test]
fn release_of_handed_off_lease_is_stale() {
  let pool = new_pool(64, 4, 2);
  let a = pool.join(1, 1).unwrap();
  let b = pool.join(2, 2).unwrap();
  let lease = pool.try_acquire(a).unwrap().unwrap();
  let lease = pool.handoff(a, lease, 10).unwrap();
  assert_eq!(pool.release(a, lease), Err(Error::StaleLease));
  assert_eq!(pool.release(b, lease), Err(Error::StaleLease));
  assert_eq!(
    pool.slot_state(lease.slot).unwrap(),
    SlotWord::new(lease.generation, 0, SlotState::InFlight)
  );
  assert_eq!(pool.adopt(b, lease).unwrap(), 10);
  // Now it is b's: a still cannot release it, b can.
  assert_eq!(pool.release(a, lease), Err(Error::StaleLease));
  let _ = pool.release(b, lease).unwrap();
  assert_eq!(pool.free_list_len().unwrap(), 4);
  let s = assert_stats_add_up(&pool);
  assert_eq!((s.acquired, s.released, s.in_use), (1, 1, 0));
}

#[test]
fn release_with_wrong_generation_owner_or_slot_fails() {
  let pool = new_pool(64, 4, 3);
  let a = pool.join(1, 1).unwrap();
  let b = pool.join(2, 2).unwrap();
  let lease = pool.try_acquire(a).unwrap().unwrap();
  for generation in [
    0,
    lease.generation + 1,
    lease.generation.wrapping_sub(2),
    u32::MAX,
  ] {
    assert_eq!(
      pool.release(
        a,
        Lease {
          slot: lease.slot,
          generation
        }
      ),
      Err(Error::StaleLease)
    );
  }
  assert_eq!(pool.release(b, lease), Err(Error::StaleLease));
  // A participant index nobody joined as.
  assert_eq!(pool.release(Participant(2), lease), Err(Error::StaleLease));
  // Another slot with the right generation is not leased at all.
  let other = Lease {
    slot: (lease.slot + 1) % 4,
    generation: lease.generation,
  };
  assert_eq!(pool.release(a, other), Err(Error::StaleLease));
  for slot in [4, 5, u32::MAX] {
    assert!(matches!(
      pool.release(
        a,
        Lease {
          slot,
          generation: 1
        }
      ),
      Err(Error::BadTicket(_))
    ));
  }
  // None of that disturbed the real owner.
  assert_eq!(
    pool.slot_state(lease.slot).unwrap(),
    SlotWord::new(lease.generation, a.0 + 1, SlotState::Leased)
  );
  let _ = pool.release(a, lease).unwrap();
  assert_eq!(pool.free_list_len().unwrap(), 4);
  assert_stats_add_up(&pool);
}

#[test]
fn handoff_then_adopt_carries_length() {
  let pool = new_pool(1000, 4, 2);
  let a = pool.join(1, 1).unwrap();
  let b = pool.join(2, 2).unwrap();
  for length in [0, 1, 999, 1000] {
    let lease = pool.try_acquire(a).unwrap().unwrap();
    assert_eq!(
      pool.length(lease.slot).unwrap(),
      0,
      "a new lease has length 0"
    );
    let lease = pool.handoff(a, lease, length).unwrap();
    assert_eq!(
      pool.slot_state(lease.slot).unwrap(),
      SlotWord::new(lease.generation, 0, SlotState::InFlight)
    );
    assert_eq!(pool.adopt(b, lease).unwrap(), length);
    assert_eq!(pool.length(lease.slot).unwrap(), length);
    assert_eq!(
      pool.slot_state(lease.slot).unwrap(),
      SlotWord::new(lease.generation, b.0 + 1, SlotState::Leased),
      "adopting keeps the generation and makes b the owner"
    );
    // b can pass it back.
    let lease = pool.handoff(b, lease, length / 2).unwrap();
    assert_eq!(pool.adopt(a, lease).unwrap(), length / 2);
    let _ = pool.release(a, lease).unwrap();
  }
  let s = assert_stats_add_up(&pool);
  assert_eq!((s.acquired, s.released), (4, 4));
}

#[test]
fn adopt_twice_is_stale() {
  let pool = new_pool(64, 4, 3);
  let a = pool.join(1, 1).unwrap();
  let b = pool.join(2, 2).unwrap();
  let c = pool.join(3, 3).unwrap();
  let lease = pool.try_acquire(a).unwrap().unwrap();
  let lease = pool.handoff(a, lease, 5).unwrap();
  assert_eq!(pool.adopt(b, lease).unwrap(), 5);
  assert_eq!(pool.adopt(b, lease), Err(Error::StaleLease));
  assert_eq!(pool.adopt(c, lease), Err(Error::StaleLease));
  assert_eq!(pool.adopt(a, lease), Err(Error::StaleLease));
  assert_eq!(
    pool.slot_state(lease.slot).unwrap(),
    SlotWord::new(lease.generation, b.0 + 1, SlotState::Leased)
  );
  let _ = pool.release(b, lease).unwrap();
  // A ticket for a slot that was released (and even re-acquired) since is stale too.
  assert_eq!(pool.adopt(c, lease), Err(Error::StaleLease));
  let again = pool.try_acquire(a).unwrap().unwrap();
  assert_eq!(again.slot, lease.slot);
  let again = pool.handoff(a, again, 1).unwrap();
  assert_eq!(pool.adopt(c, lease), Err(Error::StaleLease));
  assert_eq!(pool.adopt(c, again).unwrap(), 1);
  let _ = pool.release(c, again).unwrap();
  assert_stats_add_up(&pool);
}

#[test]
fn adopt_of_bad_tickets() {
  let pool = new_pool(64, 4, 2);
  let a = pool.join(1, 1).unwrap();
  let b = pool.join(2, 2).unwrap();
  for slot in [4, 1000, u32::MAX] {
    assert!(matches!(
      pool.adopt(
        b,
        Lease {
          slot,
          generation: 1
        }
      ),
      Err(Error::BadTicket(_))
    ));
    assert!(matches!(
      pool.handoff(
        a,
        Lease {
          slot,
          generation: 1
        },
        0
      ),
      Err(Error::BadTicket(_))
    ));
    assert!(matches!(pool.length(slot), Err(Error::BadTicket(_))));
    assert!(matches!(pool.slot_state(slot), Err(Error::BadTicket(_))));
  }
  // A slot that is merely leased (not handed off) cannot be adopted, nor a free one.
  let lease = pool.try_acquire(a).unwrap().unwrap();
  assert_eq!(pool.adopt(b, lease), Err(Error::StaleLease));
  let free = Lease {
    slot: (lease.slot + 1) % 4,
    generation: 0,
  };
  assert_eq!(pool.adopt(b, free), Err(Error::StaleLease));
  // Wrong generation of an in-flight slot.
  let lease = pool.handoff(a, lease, 3).unwrap();
  for generation in [0, lease.generation + 1, u32::MAX] {
    assert_eq!(
      pool.adopt(
        b,
        Lease {
          slot: lease.slot,
          generation
        }
      ),
      Err(Error::StaleLease)
    );
  }
  assert_eq!(pool.adopt(b, lease).unwrap(), 3);
  let _ = pool.release(b, lease).unwrap();
  assert_stats_add_up(&pool);
}

#[test]
fn handoff_checks_length_owner_and_state() {
  let pool = new_pool(100, 4, 2);
  let a = pool.join(1, 1).unwrap();
  let b = pool.join(2, 2).unwrap();
  let lease = pool.try_acquire(a).unwrap().unwrap();
  for length in [101, 4096, u32::MAX] {
    assert!(matches!(
      pool.handoff(a, lease, length),
      Err(Error::BadTicket(_))
    ));
  }
  // Rejected lengths changed nothing.
  assert_eq!(
    pool.slot_state(lease.slot).unwrap(),
    SlotWord::new(lease.generation, a.0 + 1, SlotState::Leased)
  );
  assert_eq!(pool.length(lease.slot).unwrap(), 0);
  // Only the owner may hand off, and a failed attempt must not overwrite the recorded length.
  assert_eq!(pool.handoff(b, lease, 77), Err(Error::StaleLease));
  assert_eq!(pool.length(lease.slot).unwrap(), 0);
  let wrong_gen = Lease {
    slot: lease.slot,
    generation: lease.generation + 1,
  };
  assert_eq!(pool.handoff(a, wrong_gen, 77), Err(Error::StaleLease));
  assert_eq!(pool.length(lease.slot).unwrap(), 0);

  let lease = pool.handoff(a, lease, 100).unwrap();
  // Handing off twice fails, and does not clobber the length the first handoff recorded.
  assert_eq!(pool.handoff(a, lease, 7), Err(Error::StaleLease));
  assert_eq!(pool.length(lease.slot).unwrap(), 100);
  assert_eq!(pool.adopt(b, lease).unwrap(), 100);
  let _ = pool.release(b, lease).unwrap();
  assert_stats_add_up(&pool);
}

#[test]
fn reclaim_returns_exactly_the_leased_slots() {
  let pool = new_pool(64, 10, 3);
  let channel = new_channel(4, pool.uid());
  let a = pool.join(1, 1).unwrap();
  let b = pool.join(2, 2).unwrap();
  let mut held: Vec<Lease> = (0..6)
    .map(|_| pool.try_acquire(a).unwrap().unwrap())
    .collect();
  let theirs: Vec<Lease> = (0..2)
    .map(|_| pool.try_acquire(b).unwrap().unwrap())
    .collect();
  // Two of a's slots go in flight, one into the channel; three stay leased by a.
  held[0] = pool.handoff(a, held[0], 1).unwrap();
  held[1] = pool.handoff(a, held[1], 2).unwrap();
  assert!(matches!(
    channel.try_send(&pool, a, held[2], 3).unwrap(),
    Sent::Sent(_)
  ));

  let (count, wake) = pool.reclaim(a).unwrap();
  assert_eq!(count, 3);
  assert_eq!(wake, Wake(false));
  for lease in &held[3..] {
    assert_eq!(
      pool.slot_state(lease.slot).unwrap(),
      SlotWord::new(lease.generation, 0, SlotState::Free)
    );
    // Reclaimed leases are dead.
    assert_eq!(pool.release(a, *lease), Err(Error::StaleLease));
  }
  assert_eq!(
    pool.slot_state(held[0].slot).unwrap().state,
    SlotState::InFlight
  );
  assert_eq!(
    pool.slot_state(held[1].slot).unwrap().state,
    SlotState::InFlight
  );
  assert_eq!(
    pool.slot_state(held[2].slot).unwrap().state,
    SlotState::Queued
  );
  for lease in &theirs {
    assert_eq!(
      pool.slot_state(lease.slot).unwrap(),
      SlotWord::new(lease.generation, b.0 + 1, SlotState::Leased)
    );
  }
  assert_eq!(pool.free_list_len().unwrap(), 2 + 3);
  let s = assert_stats_add_up(&pool);
  assert_eq!(
    (s.acquired, s.released, s.reclaimed, s.in_use),
    (8, 0, 3, 5)
  );

  // Reclaiming again finds nothing.
  assert_eq!(pool.reclaim(a).unwrap(), (0, Wake(false)));
  // In-flight and queued slots survive and can still be taken over.
  assert_eq!(pool.adopt(b, held[0]).unwrap(), 1);
  assert_eq!(pool.adopt(b, held[1]).unwrap(), 2);
  match channel.try_recv(&pool, b).unwrap() {
    Received::Lease(lease, 3, _) => assert_eq!(lease, held[2]),
    other => panic!("expected the queued lease, got {other:?}"),
  }
  // b now holds 5; reclaiming b returns all of them.
  assert_eq!(pool.reclaim(b).unwrap().0, 5);
  assert_eq!(pool.free_list_len().unwrap(), 10);
  assert_eq!(pool.census().unwrap(), [0, 10, 0, 0, 0]);
  let s = assert_stats_add_up(&pool);
  assert_eq!(
    (s.acquired, s.released, s.reclaimed, s.in_use),
    (8, 0, 8, 0)
  );
}

#[test]
fn leave_reclaims_folds_counters_and_frees_the_entry() {
  let pool = new_pool(64, 8, 2);
  let a = pool.join(0xaaaa, 11).unwrap();
  let b = pool.join(0xbbbb, 22).unwrap();
  assert_eq!(pool.stats().unwrap().participants, 2);
  let mut kept = Vec::new();
  for i in 0..5 {
    let lease = pool.try_acquire(a).unwrap().unwrap();
    if i < 2 {
      let _ = pool.release(a, lease).unwrap();
    } else {
      kept.push(lease);
    }
  }
  pool.note_wait(a).unwrap();
  pool.note_wait(a).unwrap();
  let in_flight = kept.pop().unwrap();
  let in_flight = pool.handoff(a, in_flight, 9).unwrap();

  // A wrong token leaves nothing and touches nothing (the entry may have been recycled).
  assert_eq!(pool.leave(a, 0xbbbb).unwrap(), (0, Wake(false)));
  assert_eq!(pool.participant_info(a.0).unwrap(), (0xaaaa, 11));
  assert_eq!(pool.stats().unwrap().in_use, 3);

  let before = pool.stats().unwrap();
  assert_eq!((before.acquired, before.released, before.waits), (5, 2, 2));
  let (count, _) = pool.leave(a, 0xaaaa).unwrap();
  assert_eq!(count, 2, "the two leased slots, not the in-flight one");
  assert_eq!(pool.participant_info(a.0).unwrap().0, 0, "entry is free");
  let after = pool.stats().unwrap();
  assert_eq!(after.participants, 1);
  // The participant's counters survive its departure.
  assert_eq!((after.acquired, after.released, after.waits), (5, 2, 2));
  assert_eq!((after.reclaimed, after.in_use), (2, 1));
  assert_stats_add_up(&pool);
  // Leaving twice does nothing more.
  assert_eq!(pool.leave(a, 0xaaaa).unwrap(), (0, Wake(false)));
  assert_eq!(pool.stats().unwrap(), after);

  // The in-flight slot outlives its sender.
  assert_eq!(pool.adopt(b, in_flight).unwrap(), 9);
  let _ = pool.release(b, in_flight).unwrap();

  // The entry is reusable, with fresh counters.
  let c = pool.join(0xcccc, 33).unwrap();
  assert_eq!(c, a);
  assert_eq!(pool.participant_info(c.0).unwrap(), (0xcccc, 33));
  let lease = pool.try_acquire(c).unwrap().unwrap();
  let _ = pool.release(c, lease).unwrap();
  let s = assert_stats_add_up(&pool);
  assert_eq!(
    (s.acquired, s.released, s.reclaimed, s.waits, s.participants),
    (6, 4, 2, 2, 2)
  );
  assert_eq!(pool.free_list_len().unwrap(), 8);
}

#[test]
fn join_until_too_many_participants_then_reuse() {
  let pool = new_pool(64, 2, 3);
  let joined: Vec<Participant> = (1..=3)
    .map(|t| pool.join(t, t as u32 * 10).unwrap())
    .collect();
  assert_eq!(
    joined.iter().map(|p| p.0).collect::<HashSet<_>>(),
    HashSet::from([0, 1, 2])
  );
  assert_eq!(pool.join(4, 40), Err(Error::TooManyParticipants));
  assert_eq!(pool.join(5, 50), Err(Error::TooManyParticipants));
  assert_eq!(pool.stats().unwrap().participants, 3);
  for (i, p) in joined.iter().enumerate() {
    assert_eq!(
      pool.participant_info(p.0).unwrap(),
      (i as u64 + 1, (i as u32 + 1) * 10)
    );
  }
  assert!(matches!(pool.participant_info(3), Err(Error::BadTicket(_))));

  let _ = pool.leave(joined[1], 2).unwrap();
  assert_eq!(pool.stats().unwrap().participants, 2);
  let again = pool.join(6, 60).unwrap();
  assert_eq!(again, joined[1]);
  assert_eq!(pool.participant_info(again.0).unwrap(), (6, 60));
  assert_eq!(pool.join(7, 70), Err(Error::TooManyParticipants));
  // The old token no longer frees the recycled entry.
  assert_eq!(pool.leave(joined[1], 2).unwrap(), (0, Wake(false)));
  assert_eq!(pool.participant_info(again.0).unwrap(), (6, 60));
}

#[test]
fn owners_are_isolated_between_participants() {
  // A lease taken by one participant is not the other's, whatever the operation.
  let pool = new_pool(64, 3, 2);
  let a = pool.join(1, 1).unwrap();
  let b = pool.join(2, 2).unwrap();
  let lease = pool.try_acquire(a).unwrap().unwrap();
  assert_eq!(pool.release(b, lease), Err(Error::StaleLease));
  assert_eq!(pool.handoff(b, lease, 0), Err(Error::StaleLease));
  assert_eq!(pool.reclaim(b).unwrap().0, 0);
  assert_eq!(
    pool.slot_state(lease.slot).unwrap(),
    SlotWord::new(lease.generation, a.0 + 1, SlotState::Leased)
  );
  let _ = pool.release(a, lease).unwrap();
}

#[test]
fn release_and_reclaim_report_parked_waiters() {
  let pool = new_pool(64, 4, 2);
  let me = pool.join(1, 1).unwrap();
  let mem = pool.memory();
  let lease = pool.try_acquire(me).unwrap().unwrap();
  assert_eq!(pool.release(me, lease).unwrap(), Wake(false));
  assert_eq!(read32(mem, P_FREE_EPOCH), 0, "no waiter: epoch untouched");

  // Pretend a thread is parked for a free slot.
  write32(mem, P_FREE_WAITERS, 1);
  let lease = pool.try_acquire(me).unwrap().unwrap();
  assert_eq!(pool.release(me, lease).unwrap(), Wake(true));
  assert_eq!(
    read32(mem, P_FREE_EPOCH),
    1,
    "the epoch waiters park on moved"
  );
  let lease = pool.try_acquire(me).unwrap().unwrap();
  let (count, wake) = pool.reclaim(me).unwrap();
  assert_eq!((count, wake), (1, Wake(true)));
  assert_eq!(read32(mem, P_FREE_EPOCH), 2);
  assert_eq!(pool.release(me, lease), Err(Error::StaleLease));
  assert_eq!(
    read32(mem, P_FREE_EPOCH),
    2,
    "a failed release wakes nobody"
  );
  write32(mem, P_FREE_WAITERS, 0);
  assert_stats_add_up(&pool);
}

#[test]
fn stats_track_high_water_and_waits() {
  let pool = new_pool(64, 5, 2);
  let a = pool.join(1, 1).unwrap();
  let b = pool.join(2, 2).unwrap();
  let mut held = Vec::new();
  for _ in 0..4 {
    held.push(pool.try_acquire(a).unwrap().unwrap());
  }
  for lease in held.drain(..) {
    let _ = pool.release(a, lease).unwrap();
  }
  held.push(pool.try_acquire(b).unwrap().unwrap());
  pool.note_wait(b).unwrap();
  let s = pool.stats().unwrap();
  assert_eq!(
    s,
    PoolStats {
      slots: 5,
      in_use: 1,
      high_water: 4,
      acquired: 5,
      released: 4,
      reclaimed: 0,
      waits: 1,
      participants: 2,
      waiting: 0,
    }
  );
  let _ = pool.release(b, held[0]).unwrap();
  assert_stats_add_up(&pool);
}

#[test]
fn free_list_len_detects_cycles_and_foreign_slots() {
  let pool = new_pool(64, 4, 1);
  let mem = pool.memory();
  let layout = *pool.layout();
  assert_eq!(pool.free_list_len().unwrap(), 4);
  // Link the last slot back to the first: a cycle.
  write32(mem, layout.meta(3) + META_NEXT, 0);
  assert!(matches!(pool.free_list_len(), Err(Error::Corrupt(_))));
  write32(mem, layout.meta(3) + META_NEXT, NIL);
  assert_eq!(pool.free_list_len().unwrap(), 4);
  // A link out of range.
  write32(mem, layout.meta(1) + META_NEXT, 4);
  assert!(matches!(pool.free_list_len(), Err(Error::Corrupt(_))));
  write32(mem, layout.meta(1) + META_NEXT, 2);
  // A leased slot on the list.
  let me = pool.join(1, 1).unwrap();
  let lease = pool.try_acquire(me).unwrap().unwrap();
  assert_eq!(pool.free_list_len().unwrap(), 3);
  let head = read64(mem, P_FREE_HEAD);
  write64(mem, P_FREE_HEAD, (head & !0xffff_ffff) | lease.slot as u64);
  assert!(matches!(pool.free_list_len(), Err(Error::Corrupt(_))));
  // And acquiring from that corrupted list reports it instead of double-leasing the slot.
  assert!(matches!(pool.try_acquire(me), Err(Error::Corrupt(_))));
  assert_eq!(
    pool.slot_state(lease.slot).unwrap(),
    SlotWord::new(lease.generation, me.0 + 1, SlotState::Leased)
  );
}

#[test]
fn a_ticket_of_an_earlier_handoff_cannot_adopt_a_later_one() {
  let pool = new_pool(64, 2, 2);
  let a = pool.join(1, 1).unwrap();
  let b = pool.join(2, 2).unwrap();
  let lease = pool.try_acquire(a).unwrap().unwrap();
  let first = pool.handoff(a, lease, 1).unwrap();
  assert_eq!(first.generation, lease.generation.wrapping_add(1));
  pool.adopt(b, first).unwrap();
  // b hands the same slot on again: the first ticket must not be able to take it.
  let second = pool.handoff(b, first, 2).unwrap();
  assert_eq!(pool.adopt(a, first), Err(Error::StaleLease));
  assert_eq!(pool.adopt(a, second).unwrap(), 2);
  let _ = pool.release(a, second).unwrap();
  assert_stats_add_up(&pool);
}
