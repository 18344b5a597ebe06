//! Participants of a channel killed between any two steps of a send or a receive (the test hooks
//! `send_and_stop` / `recv_and_stop` stop for ever right after a step, as a `kill -9` there
//! would), then reclaimed as `reclaim_dead` reclaims a dead process: every slot must end up free
//! or delivered exactly once, the ring must keep working (in order, at every lap), and close must
//! still drain to `Closed`.
#![cfg(not(loom))]

mod common;

use common::*;
use sabpool_core::*;
use std::collections::{HashMap, HashSet};

const SEND_STEPS: [SendStep; 3] = [SendStep::Checked, SendStep::Filled, SendStep::Committed];
const RECV_STEPS: [RecvStep; 2] = [RecvStep::Took, RecvStep::Cleared];

struct Ring {
  pool: Pool<OwnedMemory>,
  channel: Channel<OwnedMemory>,
  me: Participant,
  next_token: u64,
}

impl Ring {
  fn new(slots: u32, capacity: u32) -> Ring {
    let pool = new_pool(64, slots, 64);
    let channel = new_channel(capacity, pool.uid());
    let me = pool.join(1, 1).unwrap();
    Ring {
      pool,
      channel,
      me,
      next_token: 2,
    }
  }

  /// A new participant (a process that is about to die), with its token.
  fn join(&mut self) -> (Participant, u64) {
    let token = self.next_token;
    self.next_token += 1;
    (self.pool.join(token, token as u32).unwrap(), token)
  }

  /// What `reclaim_dead` does for a dead participant: its leases go back, its entry is freed.
  fn bury(&self, who: Participant, token: u64) -> u32 {
    self.pool.leave(who, token).unwrap().0
  }

  fn acquire(&self, who: Participant) -> Lease {
    self.pool.try_acquire(who).unwrap().expect("a free slot")
  }

  fn send(&self, who: Participant, lease: Lease, length: u32) {
    assert!(matches!(
      self
        .channel
        .try_send(&self.pool, who, lease, length)
        .unwrap(),
      Sent::Sent(_)
    ));
  }

  fn recv(&self) -> Received {
    self.channel.try_recv(&self.pool, self.me).unwrap()
  }

  fn recv_lease(&self) -> (Lease, u32) {
    match self.recv() {
      Received::Lease(lease, length, _) => (lease, length),
      other => panic!("expected a lease, got {other:?}"),
    }
  }

  /// Sends and receives `rounds` leases one at a time, moving the ring on.
  fn spin(&self, rounds: u32) {
    for i in 0..rounds {
      let lease = self.acquire(self.me);
      self.send(self.me, lease, i % 60);
      assert_eq!(self.recv_lease(), (lease, i % 60));
      let _ = self.pool.release(self.me, lease).unwrap();
    }
  }

  /// With nobody else alive: every slot is free and on the free list exactly once, the ring takes
  /// and delivers 2 × capacity leases in order, and close drains to `Closed`.
  fn assert_recovered(&self) {
    let slots = self.pool.layout().slot_count;
    assert_eq!(self.recv(), Received::Empty, "nothing left queued");
    assert_eq!(self.pool.free_list_len().unwrap(), slots);
    assert_eq!(
      self.pool.census().unwrap()[SlotState::Free.bits() as usize],
      slots
    );
    let capacity = self.channel.layout().capacity;
    for _ in 0..2 {
      let leases: Vec<Lease> = (0..capacity).map(|_| self.acquire(self.me)).collect();
      for (i, lease) in leases.iter().enumerate() {
        self.send(self.me, *lease, i as u32);
      }
      let extra = self.acquire(self.me);
      assert_eq!(
        self
          .channel
          .try_send(&self.pool, self.me, extra, 0)
          .unwrap(),
        Sent::Full,
        "exactly capacity fits"
      );
      let _ = self.pool.release(self.me, extra).unwrap();
      for (i, lease) in leases.iter().enumerate() {
        assert_eq!(self.recv_lease(), (*lease, i as u32), "in order");
        let _ = self.pool.release(self.me, *lease).unwrap();
      }
    }
    assert_eq!(self.pool.stats().unwrap().in_use, 0);
  }

  fn assert_closes(&self) {
    let lease = self.acquire(self.me);
    self.send(self.me, lease, 7);
    assert!(self.channel.close().unwrap());
    let extra = self.acquire(self.me);
    assert_eq!(
      self.channel.try_send(&self.pool, self.me, extra, 0),
      Err(Error::Closed)
    );
    assert_eq!(self.recv_lease(), (lease, 7), "sent before close: drained");
    assert_eq!(self.recv(), Received::Closed);
    for l in [lease, extra] {
      let _ = self.pool.release(self.me, l).unwrap();
    }
    assert_eq!(
      self.pool.free_list_len().unwrap(),
      self.pool.layout().slot_count
    );
  }
}

#[test]
fn a_sender_killed_after_any_step_loses_nothing_and_blocks_no_one() {
  // At every offset of the ring (so every cell and the lap wrap are covered).
  for offset in 0..9 {
    for step in SEND_STEPS {
      let mut ring = Ring::new(8, 4);
      ring.spin(offset);
      let me = ring.me;
      let first = ring.acquire(me);
      ring.send(me, first, 1);
      let (dead, token) = ring.join();
      let half_sent = ring.acquire(dead);
      assert!(ring
        .channel
        .send_and_stop(&ring.pool, dead, half_sent, 5, step)
        .unwrap());
      // A live sender goes on after it (and helps the enqueue word past the dead one's cell).
      let second = ring.acquire(me);
      ring.send(me, second, 2);
      assert_eq!(ring.recv_lease(), (first, 1));
      if step == SendStep::Checked {
        // Nothing of the dead send reached the ring.
        assert_eq!(ring.recv_lease(), (second, 2));
      } else {
        // Its cell is in front of `second`: receivers wait (it might still be sent) ...
        assert_eq!(ring.recv(), Received::Empty, "{step:?} offset {offset}");
        assert_eq!(ring.recv(), Received::Empty);
        // ... until its process is found dead and reclaimed: the half-sent lease goes back to
        // the pool, the cell is skipped.
        assert_eq!(ring.bury(dead, token), 1);
        assert_eq!(
          ring.pool.slot_state(half_sent.slot).unwrap().state,
          SlotState::Free
        );
        assert_eq!(ring.recv_lease(), (second, 2));
      }
      if step == SendStep::Checked {
        assert_eq!(ring.bury(dead, token), 1);
      }
      for lease in [first, second] {
        let _ = ring.pool.release(me, lease).unwrap();
      }
      ring.assert_recovered();
      ring.assert_closes();
    }
  }
}

#[test]
fn a_half_sent_slot_caught_mid_reclaim_is_stepped_over_not_reported_corrupt() {
  // A sender dies after committing its cell; the process reclaiming it is itself stopped after
  // marking the slot Releasing (the first step of returning it to the pool). A receiver reaching
  // the cell then must treat it as stale, and the reclaim must still finish.
  let mut ring = Ring::new(8, 4);
  let me = ring.me;
  let (dead, dead_token) = ring.join();
  let (reclaimer, reclaimer_token) = ring.join();
  let half_sent = ring.acquire(dead);
  assert!(ring
    .channel
    .send_and_stop(&ring.pool, dead, half_sent, 5, SendStep::Committed)
    .unwrap());
  let next = ring.acquire(me);
  ring.send(me, next, 2);
  assert_eq!(
    ring.recv(),
    Received::Empty,
    "the dead send might still be in progress"
  );
  let releasing = SlotWord::new(half_sent.generation, reclaimer.0 + 1, SlotState::Releasing);
  write64(
    ring.pool.memory(),
    ring.pool.layout().meta(half_sent.slot) + layout::META_WORD,
    releasing.pack(),
  );
  assert_eq!(ring.recv_lease(), (next, 2));
  // The stopped reclaimer's own teardown finishes the release; the dead sender has nothing left.
  assert_eq!(ring.bury(reclaimer, reclaimer_token), 1);
  assert_eq!(ring.bury(dead, dead_token), 0);
  let _ = ring.pool.release(me, next).unwrap();
  ring.assert_recovered();
  ring.assert_closes();
}

#[test]
fn a_sender_killed_after_any_step_then_close_still_drains_to_closed() {
  for offset in 0..5 {
    for step in SEND_STEPS {
      for bury_first in [false, true] {
        let mut ring = Ring::new(8, 4);
        ring.spin(offset);
        let me = ring.me;
        let first = ring.acquire(me);
        ring.send(me, first, 1);
        let (dead, token) = ring.join();
        let half_sent = ring.acquire(dead);
        assert!(ring
          .channel
          .send_and_stop(&ring.pool, dead, half_sent, 5, step)
          .unwrap());
        if bury_first {
          assert_eq!(ring.bury(dead, token), 1);
        }
        ring.channel.close().unwrap();
        assert_eq!(ring.recv_lease(), (first, 1));
        if step == SendStep::Committed && !bury_first {
          // Committed before close: it might still be sent, so receivers wait for it.
          assert_eq!(ring.recv(), Received::Empty);
        } else {
          // Not committed (close froze the enqueue word at its cell), or reclaimed already.
          assert_eq!(ring.recv(), Received::Closed, "{step:?} {bury_first}");
        }
        if !bury_first {
          assert_eq!(ring.bury(dead, token), 1);
        }
        assert_eq!(ring.recv(), Received::Closed);
        assert_eq!(ring.recv(), Received::Closed);
        let _ = ring.pool.release(me, first).unwrap();
        assert_eq!(ring.pool.free_list_len().unwrap(), 8);
        let cs = ring.channel.stats().unwrap();
        assert!(cs.closed && cs.queued == 0, "{cs:?}");
      }
    }
  }
}

#[test]
fn a_receiver_killed_after_any_step_loses_nothing_and_blocks_no_one() {
  for offset in 0..9 {
    for step in RECV_STEPS {
      let mut ring = Ring::new(8, 4);
      ring.spin(offset);
      let me = ring.me;
      let leases: Vec<Lease> = (0..3).map(|_| ring.acquire(me)).collect();
      for (i, lease) in leases.iter().enumerate() {
        ring.send(me, *lease, i as u32);
      }
      let (dead, token) = ring.join();
      assert!(ring.channel.recv_and_stop(&ring.pool, dead, step).unwrap());
      // The dead receiver took the first lease: it is its own now (and is reclaimed with it).
      assert_eq!(
        ring.pool.slot_state(leases[0].slot).unwrap(),
        SlotWord::new(leases[0].generation, dead.0 + 1, SlotState::Leased)
      );
      if step == RecvStep::Took {
        // Its cell is not cleared yet: receivers wait, as for a receive in progress ...
        assert_eq!(ring.recv(), Received::Empty, "offset {offset}");
        // ... and a sender that laps the ring meanwhile finds it full, never overwrites it.
        assert_eq!(ring.bury(dead, token), 1);
      } else {
        assert_eq!(ring.bury(dead, token), 1);
      }
      for (i, lease) in leases.iter().enumerate().skip(1) {
        assert_eq!(ring.recv_lease(), (*lease, i as u32));
        let _ = ring.pool.release(me, *lease).unwrap();
      }
      ring.assert_recovered();
      ring.assert_closes();
    }
  }
}

#[test]
fn a_receiver_killed_before_clearing_is_stepped_over_once_its_slot_moved_on() {
  // A receiver killed between taking a lease and clearing its cell, reclaimed, and the slot
  // reused at once: the cell is stale and must not block or be delivered.
  let mut ring = Ring::new(4, 2);
  let me = ring.me;
  let a = ring.acquire(me);
  let b = ring.acquire(me);
  ring.send(me, a, 1);
  ring.send(me, b, 2);
  let (dead, token) = ring.join();
  assert!(ring
    .channel
    .recv_and_stop(&ring.pool, dead, RecvStep::Took)
    .unwrap());
  // The ring is full (the dead receiver's cell is not cleared): a sender is refused.
  let c = ring.acquire(me);
  assert_eq!(
    ring.channel.try_send(&ring.pool, me, c, 0).unwrap(),
    Sent::Full
  );
  assert_eq!(ring.bury(dead, token), 1);
  let _ = ring.pool.release(me, c).unwrap();
  assert_eq!(ring.recv_lease(), (b, 2));
  let _ = ring.pool.release(me, b).unwrap();
  ring.assert_recovered();
}

#[test]
fn a_sender_retried_after_its_own_death_in_another_process_is_not_confused() {
  // Two half-sent cells of dead senders in a row, then a live one: both are skipped once
  // reclaimed, in whichever order they are reclaimed.
  for reversed in [false, true] {
    let mut ring = Ring::new(8, 4);
    let me = ring.me;
    let (d1, t1) = ring.join();
    let (d2, t2) = ring.join();
    let l1 = ring.acquire(d1);
    let l2 = ring.acquire(d2);
    assert!(ring
      .channel
      .send_and_stop(&ring.pool, d1, l1, 1, SendStep::Filled)
      .unwrap());
    assert!(ring
      .channel
      .send_and_stop(&ring.pool, d2, l2, 2, SendStep::Committed)
      .unwrap());
    let live = ring.acquire(me);
    ring.send(me, live, 3);
    let (first, second) = if reversed {
      ((d2, t2), (d1, t1))
    } else {
      ((d1, t1), (d2, t2))
    };
    assert_eq!(ring.bury(first.0, first.1), 1);
    assert_eq!(ring.recv(), Received::Empty, "still behind the other one");
    assert_eq!(ring.bury(second.0, second.1), 1);
    assert_eq!(ring.recv_lease(), (live, 3));
    let _ = ring.pool.release(me, live).unwrap();
    ring.assert_recovered();
  }
}

/// Random sequences of live and killed sends and receives over several senders, reclaiming the
/// dead at random later moments. Checks after every step that each slot is in exactly one place
/// (free list, held by a live test participant, held by a dead one not yet reclaimed, or queued),
/// and at the end that every lease a live sender sent was delivered exactly once (to the live
/// receiver, in per-sender order, or to a receiver killed after taking it), and nothing else was.
#[test]
fn random_deaths_at_every_step_keep_every_slot_exactly_once() {
  for seed in 0..40u64 {
    let mut rng = Rng::new(0xdea7_0000 + seed);
    let slots = 12;
    let capacity = [2, 4, 8][seed as usize % 3];
    let mut ring = Ring::new(slots, capacity);
    let senders: Vec<Participant> = (0..3).map(|_| ring.join().0).collect();
    // Live holdings: slot -> (sender index, sequence number) for leases being sent, and leases
    // the receiver holds.
    let mut sent: Vec<Vec<u32>> = vec![Vec::new(); senders.len()];
    let mut label: HashMap<u32, (usize, u32)> = HashMap::new();
    let mut next_seq = vec![0u32; senders.len()];
    let mut delivered: Vec<Vec<u32>> = vec![Vec::new(); senders.len()];
    let mut dead: Vec<(Participant, u64)> = Vec::new();
    let mut queued_by_live = 0u32;
    // Per sender, the last sequence number the live receiver got: they must increase.
    let mut last: Vec<Option<u32>> = vec![None; senders.len()];
    for _ in 0..400 {
      match rng.below(10) {
        // A live sender sends (its sequence number goes in the length).
        0..=3 => {
          let s = rng.below(senders.len() as u64) as usize;
          let Some(lease) = ring.pool.try_acquire(senders[s]).unwrap() else {
            continue;
          };
          let seq = next_seq[s];
          match ring
            .channel
            .try_send(&ring.pool, senders[s], lease, seq)
            .unwrap()
          {
            Sent::Sent(_) => {
              next_seq[s] += 1;
              sent[s].push(seq);
              label.insert(lease.slot, (s, seq));
              queued_by_live += 1;
            }
            Sent::Full => {
              let _ = ring.pool.release(senders[s], lease).unwrap();
            }
          }
        }
        // The receiver receives and releases.
        4..=6 => match ring.recv() {
          Received::Lease(lease, length, _) => {
            let (s, seq) = label
              .remove(&lease.slot)
              .expect("a lease a live sender sent");
            assert_eq!(length, seq);
            delivered[s].push(seq);
            queued_by_live -= 1;
            let _ = ring.pool.release(ring.me, lease).unwrap();
          }
          Received::Empty => {}
          Received::Closed => unreachable!(),
        },
        // A sender dies after a random step.
        7 if dead.len() < 32 => {
          let (who, token) = ring.join();
          let Some(lease) = ring.pool.try_acquire(who).unwrap() else {
            ring.bury(who, token);
            continue;
          };
          let step = SEND_STEPS[rng.below(3) as usize];
          let _ = ring
            .channel
            .send_and_stop(&ring.pool, who, lease, 0, step)
            .unwrap();
          dead.push((who, token));
        }
        // A receiver dies after a random step (what it took is lost to the live senders' count).
        8 if dead.len() < 32 => {
          let (who, token) = ring.join();
          let step = RECV_STEPS[rng.below(2) as usize];
          // Peek at what it will take: the first live-queued lease at the dequeue position.
          let before: HashSet<u32> = (0..slots)
            .filter(|&s| ring.pool.slot_state(s).unwrap().state == SlotState::Queued)
            .collect();
          let _ = ring.channel.recv_and_stop(&ring.pool, who, step).unwrap();
          for slot in before {
            let w = ring.pool.slot_state(slot).unwrap();
            if w.state == SlotState::Leased && w.owner == who.0 + 1 {
              // Taken by the dying receiver: delivered (to it), so not to us.
              let (s, seq) = label.remove(&slot).unwrap();
              delivered[s].push(seq);
              queued_by_live -= 1;
            }
          }
          dead.push((who, token));
        }
        // The dead are found and reclaimed.
        _ => {
          // (Also where deaths go once 32 are waiting to be reclaimed.)
          if !dead.is_empty() {
            let i = rng.below(dead.len() as u64) as usize;
            let (who, token) = dead.swap_remove(i);
            ring.bury(who, token);
          }
        }
      }
      // Every slot in exactly one place.
      let census = ring.pool.census().unwrap();
      let free = ring.pool.free_list_len().unwrap();
      assert_eq!(census[SlotState::Free.bits() as usize], free);
      assert_eq!(census[SlotState::Queued.bits() as usize], queued_by_live);
      assert_eq!(census[0] + census[SlotState::InFlight.bits() as usize], 0);
      assert_eq!(
        free + census[SlotState::Leased.bits() as usize] + queued_by_live,
        slots
      );
    }
    for (who, token) in dead.drain(..) {
      ring.bury(who, token);
    }
    loop {
      match ring.recv() {
        Received::Lease(lease, length, _) => {
          let (s, seq) = label.remove(&lease.slot).unwrap();
          assert_eq!(length, seq);
          assert!(last[s].is_none_or(|l| l < seq), "seed {seed}: order");
          last[s] = Some(seq);
          delivered[s].push(seq);
          let _ = ring.pool.release(ring.me, lease).unwrap();
        }
        Received::Empty => break,
        Received::Closed => unreachable!(),
      }
    }
    assert!(label.is_empty(), "seed {seed}: never delivered: {label:?}");
    for s in 0..senders.len() {
      let mut got = delivered[s].clone();
      got.sort_unstable();
      assert_eq!(
        got, sent[s],
        "seed {seed}: sender {s} delivered exactly once"
      );
    }
    ring.assert_recovered();
    ring.assert_closes();
  }
}
