//! The channel: a bounded multi-producer multi-consumer ring of slot handoffs in shared memory
//! (Vyukov's bounded queue: every cell carries a sequence number saying whose turn it is).
//!
//! Memory orderings, and why:
//! - Producers claim a position with a CAS on the enqueue word and publish the cell with a `SeqCst`
//!   store of its sequence (`Release` is what hands the value and the slot's payload over; `SeqCst`
//!   also orders it before the producer's read of the receivers' waiter count, the Dekker
//!   handshake that guarantees a parked receiver is woken). Consumers read the sequence with
//!   `Acquire`, and give the cell back with a `Release` store of the next lap's sequence.
//! - Closing sets bit 63 of the enqueue word with `fetch_or`, so "sent before close" is exactly
//!   "claimed before the bit was set": a receiver that sees the bit and no claimed-but-unread
//!   position knows nothing more will arrive.
//! - The slot itself moves LEASED(sender) → QUEUED → LEASED(receiver) by CAS on its state word,
//!   so a lease that is not the sender's cannot be sent, and a forged ring entry cannot be adopted
//!   unless its slot really is queued with that generation.

use super::error::{Error, Result};
use super::layout::*;
use super::mem::Memory;
use super::pool::{Lease, Participant, Pool, Wake, MAX_RETRIES};
use super::sync::{spin_hint, Ordering::*};
use super::words::SlotState;

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

enum Enqueued {
  Done,
  Full,
  Closed,
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
      mem.u64_at(layout.cell(index))?.store(index, Relaxed);
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
    self.check_pool(pool)?;
    if self.mem.u64_at(C_ENQ)?.load(Relaxed) & CLOSED != 0 {
      return Err(Error::Closed);
    }
    let owner = who.0 + 1;
    pool.transition(
      lease,
      (owner, SlotState::Leased),
      (0, SlotState::Queued),
      Some(length),
    )?;
    let outcome = self.enqueue(lease.to_cell());
    let give_back = || {
      pool.transition(
        lease,
        (0, SlotState::Queued),
        (owner, SlotState::Leased),
        None,
      )
    };
    match outcome {
      Ok(Enqueued::Done) => Ok(Sent::Sent(self.wake(C_RECV_WAITERS, C_RECV_EPOCH)?)),
      Ok(Enqueued::Full) => give_back().map(|_| Sent::Full),
      Ok(Enqueued::Closed) => give_back().and(Err(Error::Closed)),
      Err(e) => {
        give_back()?;
        Err(e)
      }
    }
  }

  /// Receives a lease for `who`.
  pub fn try_recv<P: Memory>(&self, pool: &Pool<P>, who: Participant) -> Result<Received> {
    self.check_pool(pool)?;
    let Some(value) = self.dequeue()? else {
      let enq = self.mem.u64_at(C_ENQ)?.load(SeqCst);
      let deq = self.mem.u64_at(C_DEQ)?.load(SeqCst);
      // Closed, and every claimed position has been taken: nothing more will arrive.
      return Ok(if enq & CLOSED != 0 && enq & !CLOSED == deq {
        Received::Closed
      } else {
        Received::Empty
      });
    };
    let lease = Lease::from_cell(value);
    pool
      .transition(
        lease,
        (0, SlotState::Queued),
        (who.0 + 1, SlotState::Leased),
        None,
      )
      .map_err(|_| Error::Corrupt("a ring entry names a slot that is not queued"))?;
    let length = pool.length(lease.slot)?;
    let wake = self.wake(C_SEND_WAITERS, C_SEND_EPOCH)?;
    Ok(Received::Lease(lease, length, wake))
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
    let sent = enq & !CLOSED;
    Ok(ChannelStats {
      capacity: self.layout.capacity,
      queued: sent.saturating_sub(deq).min(self.layout.capacity as u64),
      sent,
      received: deq,
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

  fn enqueue(&self, value: u64) -> Result<Enqueued> {
    let enq = self.mem.u64_at(C_ENQ)?;
    let mut pos = enq.load(Relaxed);
    for _ in 0..MAX_RETRIES {
      if pos & CLOSED != 0 {
        return Ok(Enqueued::Closed);
      }
      let cell = self.layout.cell(pos);
      let seq = self.mem.u64_at(cell)?.load(Acquire);
      let lag = seq.wrapping_sub(pos) as i64;
      if lag == 0 {
        match enq.compare_exchange_weak(pos, pos.wrapping_add(1), SeqCst, Relaxed) {
          Ok(_) => {
            self.mem.u64_at(cell + 8)?.store(value, Relaxed);
            self.mem.u64_at(cell)?.store(pos.wrapping_add(1), SeqCst);
            return Ok(Enqueued::Done);
          }
          Err(actual) => pos = actual,
        }
      } else if lag < 0 {
        // The cell still holds last lap's value: full, unless our position is stale.
        let now = enq.load(Relaxed);
        if now == pos {
          return Ok(Enqueued::Full);
        }
        pos = now;
      } else {
        // The cell is a lap ahead: another producer filled it, so the enqueue position has moved
        // on (it was advanced before that cell was published, which our Acquire load saw). If
        // it has not, the sequence is garbage; fail now instead of spinning the retry budget.
        let now = enq.load(Relaxed);
        if now == pos {
          return Err(Error::Corrupt(
            "ring cell sequence is ahead of the enqueue position",
          ));
        }
        pos = now;
      }
      spin_hint();
    }
    Err(Error::Contended)
  }

  fn dequeue(&self) -> Result<Option<u64>> {
    let deq = self.mem.u64_at(C_DEQ)?;
    let capacity = self.layout.capacity as u64;
    let mut pos = deq.load(Relaxed);
    for _ in 0..MAX_RETRIES {
      let cell = self.layout.cell(pos);
      let seq = self.mem.u64_at(cell)?.load(Acquire);
      let lag = seq.wrapping_sub(pos.wrapping_add(1)) as i64;
      if lag == 0 {
        match deq.compare_exchange_weak(pos, pos.wrapping_add(1), Relaxed, Relaxed) {
          Ok(_) => {
            let value = self.mem.u64_at(cell + 8)?.load(Relaxed);
            self
              .mem
              .u64_at(cell)?
              .store(pos.wrapping_add(capacity), Release);
            return Ok(Some(value));
          }
          Err(actual) => pos = actual,
        }
      } else if lag < 0 {
        // Nothing published at our position. If a producer has claimed it, it is about to
        // publish: report empty and let the caller retry or park (the producer wakes parked
        // receivers after publishing).
        let now = deq.load(Relaxed);
        if now == pos {
          return Ok(None);
        }
        pos = now;
      } else {
        // The cell was already consumed at our position, so the dequeue position has moved on
        // (see `enqueue`); if it has not, the sequence is garbage.
        let now = deq.load(Relaxed);
        if now == pos {
          return Err(Error::Corrupt(
            "ring cell sequence is ahead of the dequeue position",
          ));
        }
        pos = now;
      }
      spin_hint();
    }
    Err(Error::Contended)
  }
}
