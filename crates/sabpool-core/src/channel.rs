//! The channel: a bounded multi-producer multi-consumer ring of slot handoffs in shared memory,
//! built so that a participant may die (`kill -9`) between any two of its instructions without
//! wedging the ring, losing a slot or delivering one twice.
//!
//! Every ring cell is ONE 64-bit word ([`RingCell`]): `Empty(lap)`, `Full(lap, slot,
//! generation)` or `Skip(lap, slot, generation)`. The compare-and-swap on the cell is the only step
//! of a send or a receive that decides anything; the enqueue and dequeue words are hints that any
//! participant may move on ("helping"), and the slot's own state word (in the pool) says whether a
//! full cell is really sent:
//!
//! - **Send** of `lease = (slot, g)` by `p`: check the slot is `LEASED(p, g)` and record the
//!   length; CAS the cell at the enqueue position `pos` from `Empty(lap)` to `Full(lap, slot, g)`
//!   (*fill*); move the enqueue word past `pos` (*commit*: done by us or by any helper that saw
//!   the full cell); CAS the slot `LEASED(p, g)` → `QUEUED(g, pos)` (*queue*; the owner field of a
//!   queued slot holds the low 24 bits of its position). Only a queued slot can be received.
//! - **Receive** by `r` at the dequeue position `pos`, cell `Full(lap, slot, g)`: the slot word
//!   decides. `QUEUED(g, pos)`: CAS it to `LEASED(r, g)` (*take*: the lease is `r`'s from here on),
//!   then CAS the cell to `Empty(lap + 1)` (*clear*) and move the dequeue word on. `LEASED(·, g)`:
//!   a sender between fill and queue, or a receiver between take and clear; it finishes in a
//!   moment, or it died and reclaiming it turns the slot `FREE(g)`: report empty meanwhile.
//!   `QUEUED(g)` at another position: our reading of the cell is out of date (it was received and
//!   the lease sent on meanwhile; a lease keeps its generation through a channel): read again
//!   (if neither the cell nor the dequeue word moved meanwhile, that is corruption).
//!   `FREE(g)` or any newer generation means the cell is stale: its sender died and the slot was
//!   reclaimed, or its receiver took the slot and then released or passed it on; clear it and go
//!   on. A stale cell can never look live again: when a tenure at `g` ends (release, reclaim,
//!   handoff) the slot leaves `LEASED(·, g)` for `FREE(g)`, whose next acquire is `g + 1`, or for
//!   `g + 1` directly; a lease passed on through a channel keeps `g` but is queued under its new
//!   position. Older generations, or states no participant writes, are corruption: the cell is
//!   skipped the same way and the receive reports [`Error::Corrupt`].
//! - So after a death at any instruction: before *fill* nothing happened; between *fill* and
//!   *queue* the slot is still `LEASED` by the dead sender, `reclaim_dead` returns it to the free
//!   list and receivers skip the cell; after *take* the lease is the dead receiver's and is
//!   reclaimed the same way, while its cell, if not cleared yet, reads as a receive in progress
//!   until then and as stale after. Nothing is lost (a slot is always free, leased, or queued in
//!   one live cell) and nothing is delivered twice (only the CAS out of `QUEUED(g, pos)` delivers,
//!   and it succeeds once). Skipping a stale cell needs nobody's help: the next receive does it.
//!   A receiver parked behind the cell of a dead sender or receiver gets past it once the dead
//!   process is reclaimed: by `SharedPool.open`, `reclaimDead()`, or the receiver itself (the JS
//!   wrapper runs `reclaim_dead` when a wait slice ends without a wake-up and the cell at the
//!   dequeue position is filled). Each repair is one CAS that anyone may repeat.
//! - **Close** sets bit 63 of the enqueue word; the enqueue word never moves after that, and no
//!   receiver moves the dequeue word past it, so "sent before close" is exactly "committed before
//!   the bit was set". A sender whose fill raced with close (the enqueue word froze at its own
//!   position) takes its cell back to `Empty` and fails with [`Error::Closed`]: its slot was never
//!   queued, so no receiver can have taken it, and the lease stays with the sender. A receiver at
//!   the frozen position reports `Closed`.
//! - **Lap tags** are 6 bits, so a stale sender could CAS a cell it read 64 laps ago. That is made
//!   harmless: after its fill a sender reads the enqueue word; if it is more than a capacity past
//!   the position it filled, the fill landed laps later than it meant (a fill at the intended lap
//!   blocks receivers at that cell, so the enqueue word cannot get further than one capacity
//!   ahead), and the sender turns its cell into `Skip` (receivers step over it) and retries.
//!   Receivers re-read the dequeue word after reading a cell, so they never judge a cell by the
//!   wrong lap. A receiver delayed between reading a queued slot and taking it cannot keep a later
//!   sending of the same lease. In this channel the queued word names the position (its low 24
//!   bits), so the take itself fails unless 2^24 positions passed meanwhile; but another channel
//!   of the pool can queue the lease at a position with the same low bits (a request channel and
//!   a reply channel advance in step), and then the take succeeds. So the taker checks its clear:
//!   only the receiver that took a cell's sending clears that cell, so a clear that fails means
//!   the cell's own sending was received by someone else and the take matched a later one; the
//!   taker puts the slot word back as it found it and reads again. The owner of that later
//!   sending sees a receive in progress meanwhile (a receiver parked on it is woken by its park
//!   slice, not by a notify); if the taker dies in between, the slot is reclaimed to the pool and
//!   that sending reads as stale, as after any receiver's death.
//! - **Per-producer order**: a sender fills only at the enqueue position, after its previous send
//!   was committed, and receivers never move past a cell that is still being sent, so one
//!   sender's leases are received in the order they were sent.
//!
//! Memory orderings, and why: every load, store and CAS of a cell, of the enqueue and dequeue
//! words and of a slot word on these paths is `SeqCst`.
//! - The payload and the recorded length go from sender to receiver through the slot word: the
//!   sender writes them, then queues the slot with a (at least `Release`) CAS; the receiver's take
//!   is a (at least `Acquire`) CAS that reads that value.
//! - Parked receivers and senders use the Dekker handshake with the waiter counts: a sender queues
//!   the slot, then reads the receivers' waiter count; a receiver registers, then re-reads the
//!   dequeue word, the cell and the slot word. Likewise a receiver clears the cell, then reads the
//!   senders' count. Both sides must be `SeqCst` so that at least one sees the other.
//! - The decisions above combine several words read one after the other (dequeue word, cell,
//!   dequeue word again, slot word, enqueue word); a single total order over all of them is what
//!   the arguments ("the dequeue word did not move while the cell was read", "the enqueue word was
//!   not past the position") rely on.
//!
//! On x86 a `SeqCst` load is a plain load and every read-modify-write is a locked instruction
//! anyway, so this costs nothing there.

use super::error::{Error, Result};
use super::layout::*;
use super::mem::Memory;
use super::pool::{Lease, Participant, Pool, Wake, MAX_RETRIES};
use super::sync::{spin_hint, AtomicU64, Ordering::*};
use super::words::{RingCell, SlotState, SlotWord};

pub const CLOSED: u64 = 1 << 63;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
  /// The lease now belongs to the channel; wake parked receivers if the flag says so.
  Sent(Wake),
  /// The ring is full; the lease is still the sender's.
  Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
  /// The receiver now owns the lease; `length` is what the sender recorded.
  Lease(Lease, u32, Wake),
  /// Nothing to receive right now.
  Empty,
  /// Closed and drained: nothing will ever arrive.
  Closed,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelStats {
  pub capacity: u32,
  pub queued: u64,
  pub sent: u64,
  pub received: u64,
  pub send_waits: u64,
  pub recv_waits: u64,
  pub closed: bool,
}

/// Where a test stops a send for ever, as if the sender were killed right after that step.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStep {
  /// Ownership checked and length recorded; nothing in the ring yet.
  Checked,
  /// The cell is full; the enqueue word may not be past it yet.
  Filled,
  /// The enqueue word is past the cell; the slot is still leased by the sender.
  Committed,
}

/// Where a test stops a receive for ever, as if the receiver were killed right after that step.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvStep {
  /// The slot is the receiver's; the cell is still full.
  Took,
  /// The cell is empty again; the dequeue word has not moved yet.
  Cleared,
}

// Steps after which the `*_steps` functions stop (0: never).
const RUN: u8 = 0;
const AFTER_CHECK: u8 = 1;
const AFTER_FILL: u8 = 2;
const AFTER_COMMIT: u8 = 3;
const AFTER_TAKE: u8 = 1;
const AFTER_CLEAR: u8 = 2;

enum Enqueued {
  /// Filled and committed at this position.
  Done(u64),
  Full,
  Closed,
  /// Stopped by a test.
  Stopped,
}

enum Commit {
  Done,
  Closed,
  /// The fill landed laps after the position meant; the cell was turned into `Skip`.
  Lapped,
  Stopped,
}

/// The owner field of a queued slot word: the low 24 bits of the position its cell is at.
#[inline]
fn queued_tag(pos: u64) -> u32 {
  (pos as u32) & SlotWord::MAX_OWNER
}

pub struct Channel<M: Memory> {
  mem: M,
  layout: ChannelLayout,
  uid: u32,
  pool_uid: u32,
}

impl<M: Memory> Channel<M> {
  pub fn create(mem: M, capacity: u32, uid: u32, pool_uid: u32) -> Result<Self> {
    let layout = ChannelLayout::new(capacity)?;
    if mem.len() < layout.total_len {
      return Err(Error::BadHandle("region is smaller than the channel needs"));
    }
    for index in 0..capacity as u64 {
      mem
        .u64_at(layout.cell(index))?
        .store(RingCell::Empty { tag: 0 }.pack(), Relaxed);
    }
    mem.u32_at(C_CAPACITY)?.store(capacity, Relaxed);
    mem.u32_at(C_POOL_UID)?.store(pool_uid, Relaxed);
    mem.u32_at(H_UID)?.store(uid, Relaxed);
    mem
      .u64_at(H_TOTAL_LEN)?
      .store(layout.total_len as u64, Relaxed);
    mem.u32_at(H_VERSION)?.store(VERSION, Relaxed);
    mem.u32_at(H_MAGIC)?.store(CHANNEL_MAGIC, Release);
    Ok(Channel {
      mem,
      layout,
      uid,
      pool_uid,
    })
  }

  pub fn memory(&self) -> &M {
    &self.mem
  }

  pub fn attach(mem: M) -> Result<Self> {
    let (layout, uid, pool_uid) = ChannelLayout::read(&mem)?;
    Ok(Channel {
      mem,
      layout,
      uid,
      pool_uid,
    })
  }

  /// As [`Channel::attach`], also checking that the channel carries slots of the pool `pool_uid`.
  pub fn attach_to_pool(mem: M, pool_uid: u32) -> Result<Self> {
    let channel = Self::attach(mem)?;
    if channel.pool_uid != pool_uid {
      return Err(Error::BadHandle(
        "the channel carries slots of another pool",
      ));
    }
    Ok(channel)
  }

  pub fn uid(&self) -> u32 {
    self.uid
  }

  pub fn pool_uid(&self) -> u32 {
    self.pool_uid
  }

  pub fn layout(&self) -> &ChannelLayout {
    &self.layout
  }

  fn check_pool<P: Memory>(&self, pool: &Pool<P>) -> Result<()> {
    if pool.uid() != self.pool_uid {
      return Err(Error::BadTicket("the lease belongs to another pool"));
    }
    Ok(())
  }

  /// Sends `lease` (owned by `who`) with `length` bytes in use.
  pub fn try_send<P: Memory>(
    &self,
    pool: &Pool<P>,
    who: Participant,
    lease: Lease,
    length: u32,
  ) -> Result<Sent> {
    // `RUN` never stops, so there is always an outcome.
    Ok(
      self
        .send_steps::<RUN, P>(pool, who, lease, length)?
        .unwrap_or(Sent::Full),
    )
  }

  /// Receives a lease for `who`.
  pub fn try_recv<P: Memory>(&self, pool: &Pool<P>, who: Participant) -> Result<Received> {
    Ok(
      self
        .recv_steps::<RUN, P>(pool, who)?
        .unwrap_or(Received::Empty),
    )
  }

  /// Test hook: a send that stops for ever after `step`, as if its process were killed there.
  /// Returns `Ok(true)` if it got that far (`Ok(false)`: it ended earlier, e.g. the ring was full).
  #[doc(hidden)]
  pub fn send_and_stop<P: Memory>(
    &self,
    pool: &Pool<P>,
    who: Participant,
    lease: Lease,
    length: u32,
    step: SendStep,
  ) -> Result<bool> {
    let outcome = match step {
      SendStep::Checked => self.send_steps::<AFTER_CHECK, P>(pool, who, lease, length),
      SendStep::Filled => self.send_steps::<AFTER_FILL, P>(pool, who, lease, length),
      SendStep::Committed => self.send_steps::<AFTER_COMMIT, P>(pool, who, lease, length),
    };
    Ok(outcome?.is_none())
  }

  /// Test hook: a receive that stops for ever after `step`, as if its process were killed there.
  /// Returns `Ok(true)` if it got that far (`Ok(false)`: there was nothing to take).
  #[doc(hidden)]
  pub fn recv_and_stop<P: Memory>(
    &self,
    pool: &Pool<P>,
    who: Participant,
    step: RecvStep,
  ) -> Result<bool> {
    let outcome = match step {
      RecvStep::Took => self.recv_steps::<AFTER_TAKE, P>(pool, who),
      RecvStep::Cleared => self.recv_steps::<AFTER_CLEAR, P>(pool, who),
    };
    Ok(outcome?.is_none())
  }

  fn word(&self, offset: usize) -> Result<&AtomicU64> {
    self.mem.u64_at(offset)
  }

  fn lap(&self, pos: u64) -> u64 {
    pos >> self.layout.capacity.trailing_zeros()
  }

  /// A send, stopping after step `STOP` (`None` then).
  fn send_steps<const STOP: u8, P: Memory>(
    &self,
    pool: &Pool<P>,
    who: Participant,
    lease: Lease,
    length: u32,
  ) -> Result<Option<Sent>> {
    self.check_pool(pool)?;
    if self.word(C_ENQ)?.load(Relaxed) & CLOSED != 0 {
      return Err(Error::Closed);
    }
    pool.prepare_send(who, lease, length)?;
    if STOP == AFTER_CHECK {
      return Ok(None);
    }
    let pos = match self.enqueue::<STOP>(lease)? {
      Enqueued::Done(pos) => pos,
      Enqueued::Full => return Ok(Some(Sent::Full)),
      Enqueued::Closed => return Err(Error::Closed),
      Enqueued::Stopped => return Ok(None),
    };
    // Queue: from here on a receiver may take it. Only a corrupted slot word makes this fail; the
    // committed cell is then stale and receivers skip it.
    pool
      .slot_word(lease.slot)?
      .compare_exchange(
        SlotWord::new(lease.generation, who.owner(), SlotState::Leased).pack(),
        SlotWord::new(lease.generation, queued_tag(pos), SlotState::Queued).pack(),
        SeqCst,
        Relaxed,
      )
      .map_err(|_| Error::StaleLease)?;
    Ok(Some(Sent::Sent(self.wake(C_RECV_WAITERS, C_RECV_EPOCH)?)))
  }

  /// Fills the cell at the enqueue position with `lease` and commits it.
  fn enqueue<const STOP: u8>(&self, lease: Lease) -> Result<Enqueued> {
    let enq = self.word(C_ENQ)?;
    for _ in 0..MAX_RETRIES {
      let pos = enq.load(SeqCst);
      if pos & CLOSED != 0 {
        return Ok(Enqueued::Closed);
      }
      let lap = self.lap(pos);
      let tag = RingCell::tag_of(lap);
      let cell = self.word(self.layout.cell(pos))?;
      let seen = cell.load(SeqCst);
      match RingCell::unpack(seen) {
        RingCell::Empty { tag: t } if t == tag => {
          let full = RingCell::Full { tag, lease }.pack();
          if cell.compare_exchange(seen, full, SeqCst, Relaxed).is_err() {
            spin_hint();
            continue;
          }
          if STOP == AFTER_FILL {
            return Ok(Enqueued::Stopped);
          }
          match self.commit::<STOP>(pos, cell, full, tag, lease)? {
            Commit::Done => return Ok(Enqueued::Done(pos)),
            Commit::Closed => return Ok(Enqueued::Closed),
            Commit::Stopped => return Ok(Enqueued::Stopped),
            Commit::Lapped => continue,
          }
        }
        // Filled (or skipped) by another sender for this lap: help the enqueue word past it.
        RingCell::Full { tag: t, .. } | RingCell::Skip { tag: t, .. } if t == tag => {
          let _ = enq.compare_exchange(pos, pos.wrapping_add(1), SeqCst, Relaxed);
          continue;
        }
        // Still holds the previous lap's entry: full, unless our position is stale.
        RingCell::Full { tag: t, .. } | RingCell::Skip { tag: t, .. }
          if t == RingCell::tag_of(lap.wrapping_sub(1)) =>
        {
          if enq.load(SeqCst) == pos {
            return Ok(Enqueued::Full);
          }
        }
        // Nothing a correct participant leaves at the enqueue position; fail now (instead of
        // spinning the retry budget) unless the position moved meanwhile.
        _ => {
          if enq.load(SeqCst) == pos {
            return Err(Error::Corrupt(
              "ring cell does not belong to the enqueue position's lap",
            ));
          }
        }
      }
      spin_hint();
    }
    Err(Error::Contended)
  }

  /// After filling the cell at `pos`: moves the enqueue word past it (unless someone did), or
  /// takes the cell back if close froze the enqueue word at `pos`, or turns it into `Skip` if the
  /// fill landed laps later than `pos` (see the module notes).
  fn commit<const STOP: u8>(
    &self,
    pos: u64,
    cell: &AtomicU64,
    full: u64,
    tag: u32,
    lease: Lease,
  ) -> Result<Commit> {
    let enq = self.word(C_ENQ)?;
    let capacity = self.layout.capacity as u64;
    for _ in 0..MAX_RETRIES {
      let now = enq.load(SeqCst);
      let at = now & !CLOSED;
      if at == pos {
        if now & CLOSED != 0 {
          // Nobody reads at or past the frozen enqueue position, and the slot was never queued:
          // give the cell back for good.
          let _ = cell.compare_exchange(full, RingCell::Empty { tag }.pack(), SeqCst, Relaxed);
          return Ok(Commit::Closed);
        }
        if enq
          .compare_exchange(pos, pos.wrapping_add(1), SeqCst, Relaxed)
          .is_err()
        {
          continue;
        }
      } else if at.wrapping_sub(pos) > capacity {
        if cell
          .compare_exchange(full, RingCell::Skip { tag, lease }.pack(), SeqCst, Relaxed)
          .is_ok()
        {
          // Statistics only (a death right here leaves them one off): Relaxed.
          self.mem.u64_at(C_SKIPPED)?.fetch_add(1, Relaxed);
        }
        return Ok(Commit::Lapped);
      }
      if STOP == AFTER_COMMIT {
        return Ok(Commit::Stopped);
      }
      return Ok(Commit::Done);
    }
    Err(Error::Contended)
  }

  /// `Closed` if the channel is closed with its enqueue word at `pos` (nothing at or after `pos`
  /// was sent before close), else `Empty`.
  fn nothing_at(&self, pos: u64) -> Result<Received> {
    let now = self.word(C_ENQ)?.load(SeqCst);
    let closed = now & CLOSED != 0 && ((now & !CLOSED).wrapping_sub(pos) as i64) <= 0;
    Ok(if closed {
      Received::Closed
    } else {
      Received::Empty
    })
  }

  /// Steps over the cell at `pos` (which held `seen`, nothing to deliver): moves the enqueue word
  /// past `pos` first if it is not (so the dequeue word never passes it), then clears the cell and
  /// moves the dequeue word on. Returns false, doing nothing, when close froze the enqueue word at
  /// `pos`: the cell is past the end of what was sent.
  fn skip(&self, pos: u64, cell: &AtomicU64, seen: u64, next: u32) -> Result<bool> {
    let enq = self.word(C_ENQ)?;
    for _ in 0..MAX_RETRIES {
      let now = enq.load(SeqCst);
      let ahead = (now & !CLOSED).wrapping_sub(pos) as i64;
      if ahead > 0 {
        let _ = cell.compare_exchange(seen, RingCell::Empty { tag: next }.pack(), SeqCst, Relaxed);
        let _ = self
          .word(C_DEQ)?
          .compare_exchange(pos, pos.wrapping_add(1), SeqCst, Relaxed);
        return Ok(true);
      }
      if ahead < 0 {
        return Err(Error::Corrupt(
          "the dequeue position is past the enqueue position",
        ));
      }
      if now & CLOSED != 0 {
        return Ok(false);
      }
      let _ = enq.compare_exchange(now, now.wrapping_add(1), SeqCst, Relaxed);
    }
    Err(Error::Contended)
  }

  /// A receive, stopping after step `STOP` (`None` then).
  fn recv_steps<const STOP: u8, P: Memory>(
    &self,
    pool: &Pool<P>,
    who: Participant,
  ) -> Result<Option<Received>> {
    self.check_pool(pool)?;
    let deq = self.word(C_DEQ)?;
    for _ in 0..MAX_RETRIES {
      let pos = deq.load(SeqCst);
      let cell = self.word(self.layout.cell(pos))?;
      let seen = cell.load(SeqCst);
      // The dequeue word did not move while we read the cell, so the cell is at its lap or,
      // cleared already, at the next one.
      if deq.load(SeqCst) != pos {
        continue;
      }
      let lap = self.lap(pos);
      let tag = RingCell::tag_of(lap);
      let next = RingCell::tag_of(lap.wrapping_add(1));
      let entry = RingCell::unpack(seen);
      // `Some(error)`: a corrupted entry, stepped over like a stale one, then reported.
      let corrupt = match entry {
        RingCell::Empty { tag: t } if t == tag => {
          return self.nothing_at(pos).map(Some);
        }
        // Cleared (perhaps even refilled for the next lap): help the dequeue word on.
        _ if entry.tag() == Some(next) => {
          let _ = deq.compare_exchange(pos, pos.wrapping_add(1), SeqCst, Relaxed);
          continue;
        }
        RingCell::Skip { tag: t, .. } if t == tag => None,
        RingCell::Full { tag: t, lease } if t == tag => {
          if lease.slot >= pool.slot_count() {
            Some(Error::Corrupt("a ring entry names no slot"))
          } else {
            let word = pool.slot_word(lease.slot)?;
            let current = word.load(SeqCst);
            let slot = SlotWord::unpack(current);
            let newer = slot.generation.wrapping_sub(lease.generation) as i32;
            match slot.state {
              SlotState::Queued if newer == 0 && slot.owner == queued_tag(pos) => {
                let taken = SlotWord::new(lease.generation, who.owner(), SlotState::Leased).pack();
                if word
                  .compare_exchange(current, taken, SeqCst, Relaxed)
                  .is_err()
                {
                  spin_hint();
                  continue;
                }
                if STOP == AFTER_TAKE {
                  return Ok(None);
                }
                // Only the receiver that took a cell's sending clears it, so a cell that moved
                // since we read it was received by someone else, and the queued word we matched
                // is a later sending of the same lease that looks the same: queued in another
                // channel at a position with the same low 24 bits. It is not ours: put it back.
                if cell
                  .compare_exchange(seen, RingCell::Empty { tag: next }.pack(), SeqCst, Relaxed)
                  .is_err()
                {
                  let _ = word.compare_exchange(taken, current, SeqCst, Relaxed);
                  spin_hint();
                  continue;
                }
                if STOP == AFTER_CLEAR {
                  return Ok(None);
                }
                let _ = deq.compare_exchange(pos, pos.wrapping_add(1), SeqCst, Relaxed);
                let length = pool.length(lease.slot)?;
                let wake = self.wake(C_SEND_WAITERS, C_SEND_EPOCH)?;
                return Ok(Some(Received::Lease(lease, length, wake)));
              }
              // Queued at another position: what we read of the cell is out of date (it was
              // received and the lease sent on meanwhile): read again. Unless neither the cell
              // nor the dequeue word moved since: the lease left this cell only through a receive
              // that cleared it, and the cell cannot come back to this value with the dequeue
              // word still here, so the words are scribbled on.
              SlotState::Queued if newer == 0 => {
                if cell.load(SeqCst) != seen || deq.load(SeqCst) != pos {
                  spin_hint();
                  continue;
                }
                Some(Error::Corrupt(
                  "a ring entry names a slot queued at another position",
                ))
              }
              // Being sent, or being received: finished in a moment, or reclaimed (then stale).
              SlotState::Leased if newer == 0 => {
                return self.nothing_at(pos).map(Some);
              }
              SlotState::Invalid(_) => Some(Error::Corrupt(
                "a ring entry names a slot in no valid state",
              )),
              // Being returned to the pool (a release, or the reclaim of a dead sender or
              // receiver): it will never be delivered from this cell, so the entry is stale.
              SlotState::Free | SlotState::Releasing if newer == 0 => None,
              _ if newer > 0 => None,
              _ => Some(Error::Corrupt(
                "a ring entry names a slot that is not queued",
              )),
            }
          }
        }
        // Garbage: step over it if it is behind the enqueue position, and report it.
        _ => Some(Error::Corrupt(
          "ring cell does not belong to the dequeue position's lap",
        )),
      };
      let skipped = self.skip(pos, cell, seen, next)?;
      if let Some(e) = corrupt {
        return Err(e);
      }
      if !skipped {
        return Ok(Some(Received::Closed));
      }
    }
    Err(Error::Contended)
  }

  /// Closes the channel: sends fail from now on, receivers drain what is queued and then see
  /// `Closed`. Bumps both wait epochs; the caller must wake every parked sender and receiver.
  pub fn close(&self) -> Result<bool> {
    let was_open = self.mem.u64_at(C_ENQ)?.fetch_or(CLOSED, SeqCst) & CLOSED == 0;
    self.mem.u32_at(C_RECV_EPOCH)?.fetch_add(1, SeqCst);
    self.mem.u32_at(C_SEND_EPOCH)?.fetch_add(1, SeqCst);
    Ok(was_open)
  }

  pub fn is_closed(&self) -> Result<bool> {
    Ok(self.mem.u64_at(C_ENQ)?.load(Acquire) & CLOSED != 0)
  }

  /// Adds `delta` to the count of parked receivers (`receiver == true`) or senders.
  pub fn add_waiters(&self, receiver: bool, delta: i32) -> Result<()> {
    let field = if receiver {
      C_RECV_WAITERS
    } else {
      C_SEND_WAITERS
    };
    self.mem.u32_at(field)?.fetch_add(delta as u32, SeqCst);
    Ok(())
  }

  /// Counts one parked wait of a receiver (`receiver == true`) or a sender.
  pub fn note_wait(&self, receiver: bool) -> Result<()> {
    let field = if receiver { C_RECV_WAITS } else { C_SEND_WAITS };
    self.mem.u64_at(field)?.fetch_add(1, Relaxed);
    Ok(())
  }

  pub fn stats(&self) -> Result<ChannelStats> {
    let enq = self.mem.u64_at(C_ENQ)?.load(Relaxed);
    let deq = self.mem.u64_at(C_DEQ)?.load(Relaxed);
    // Positions filled and passed, less the ones that carried no lease (while a skipped cell is
    // still ahead of the dequeue position, `queued` counts it and `received` is one short).
    let skipped = self.mem.u64_at(C_SKIPPED)?.load(Relaxed);
    let filled = enq & !CLOSED;
    let sent = filled.saturating_sub(skipped);
    Ok(ChannelStats {
      capacity: self.layout.capacity,
      queued: filled.saturating_sub(deq).min(self.layout.capacity as u64),
      sent,
      received: deq.saturating_sub(skipped).min(sent),
      send_waits: self.mem.u64_at(C_SEND_WAITS)?.load(Relaxed),
      recv_waits: self.mem.u64_at(C_RECV_WAITS)?.load(Relaxed),
      closed: enq & CLOSED != 0,
    })
  }

  fn wake(&self, waiters: usize, epoch: usize) -> Result<Wake> {
    if self.mem.u32_at(waiters)?.load(SeqCst) == 0 {
      return Ok(Wake(false));
    }
    self.mem.u32_at(epoch)?.fetch_add(1, SeqCst);
    Ok(Wake(true))
  }
}
