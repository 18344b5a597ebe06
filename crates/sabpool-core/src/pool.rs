//! The pool: a lock-free free list of slots, a per-slot ownership state machine, participants and
//! statistics, all stored in the shared region so every thread (or process) is an equal peer.
//!
//! Memory orderings, and why:
//! - The free-list head is a tagged word ([`FreeHead`]); the tag changes on every successful
//!   push or pop, so a stale compare-and-swap fails instead of corrupting the list (ABA).
//!   Pushes publish with `SeqCst` (at least `Release`: the pushed slot's `next` link and the
//!   releasing thread's payload writes must be visible to the next owner); pops read the head with
//!   `SeqCst` (at least `Acquire`, pairing with that release).
//! - Parked acquirers use a Dekker-style handshake with releasers: the waiter increments
//!   `FREE_WAITERS` then retries the pop; the releaser pushes then reads `FREE_WAITERS`. Both sides
//!   are `SeqCst`, so at least one of them sees the other and no wake-up is lost.
//! - Slot state transitions (release, handoff, adopt) are `AcqRel` compare-and-swaps on the slot's
//!   state word: the CAS both checks ownership and hands the payload from one owner to the next.
//! - Counters are `Relaxed`: they are statistics, not synchronisation.

use super::error::{Error, Result};
use super::layout::*;
use super::mem::Memory;
use super::sync::{spin_hint, Ordering::*};
pub use super::words::Lease;
use super::words::{FreeHead, SlotState, SlotWord};

/// Free-list terminator.
pub const NIL: u32 = u32::MAX;
/// How many times a lock-free loop retries before giving up with [`Error::Contended`]. Far above
/// what real contention needs; it only bounds loops over memory that something keeps scribbling on.
pub const MAX_RETRIES: u32 = 1 << 20;

/// A participant's index in the region's participant table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Participant(pub u32);

impl Participant {
  /// Owner field written into slot words: index + 1, so 0 means "nobody".
  pub(crate) fn owner(self) -> u32 {
    self.0 + 1
  }
}

/// Whether a parked thread must be woken after an operation (the caller does the wake, with the
/// mechanism its waiters use: JS `Atomics.notify` in-process, a futex across processes).
#[must_use]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wake(pub bool);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
  pub slots: u32,
  pub in_use: u32,
  pub high_water: u32,
  pub acquired: u64,
  pub released: u64,
  pub reclaimed: u64,
  pub waits: u64,
  pub participants: u32,
  /// Threads registered as waiting for a free slot right now.
  pub waiting: u32,
}

/// Which process a participant belongs to, as recorded in its entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessId {
  pub pid: u32,
  /// Start time of the process (0: unknown): tells a dead process from a new one with its pid.
  pub start: u64,
  /// Identity of the pid namespace the pid belongs to (0: unknown).
  pub namespace: u64,
}

impl ProcessId {
  pub fn new(pid: u32, start: u64) -> Self {
    ProcessId {
      pid,
      start,
      namespace: 0,
    }
  }
}

/// What [`Pool::reclaim_dead`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeadReclaim {
  /// Participants of dead processes torn down.
  pub participants: u32,
  /// Leased slots of theirs returned to the free list.
  pub slots: u32,
  pub wake: Wake,
}

/// A view of a pool region, validated.
pub struct Pool<M: Memory> {
  mem: M,
  layout: PoolLayout,
  uid: u32,
}

impl<M: Memory> Pool<M> {
  /// Writes a fresh pool into `mem` (which must be zeroed or otherwise unused) and returns a view.
  pub fn create(
    mem: M,
    slot_size: u32,
    slot_count: u32,
    max_participants: u32,
    uid: u32,
  ) -> Result<Self> {
    let layout = PoolLayout::new(slot_size, slot_count, max_participants)?;
    if mem.len() < layout.total_len {
      return Err(Error::BadHandle("region is smaller than the pool needs"));
    }
    let u32_at = |off| mem.u32_at(off);
    let u64_at = |off| mem.u64_at(off);
    u32_at(P_SLOT_SIZE)?.store(slot_size, Relaxed);
    u32_at(P_SLOT_COUNT)?.store(slot_count, Relaxed);
    u32_at(P_STRIDE)?.store(layout.stride, Relaxed);
    u32_at(P_MAX_PARTICIPANTS)?.store(max_participants, Relaxed);
    u64_at(P_DATA_OFFSET)?.store(layout.data_offset as u64, Relaxed);
    u64_at(H_TOTAL_LEN)?.store(layout.total_len as u64, Relaxed);
    u32_at(H_UID)?.store(uid, Relaxed);
    for slot in 0..slot_count {
      let meta = layout.meta(slot);
      u64_at(meta + META_WORD)?.store(SlotWord::new(0, 0, SlotState::Free).pack(), Relaxed);
      let next = if slot + 1 < slot_count { slot + 1 } else { NIL };
      u32_at(meta + META_NEXT)?.store(next, Relaxed);
      u32_at(meta + META_LENGTH)?.store(0, Relaxed);
    }
    u64_at(P_FREE_HEAD)?.store(FreeHead { index: 0, tag: 0 }.pack(), Relaxed);
    u32_at(H_VERSION)?.store(VERSION, Relaxed);
    // The magic goes last, with Release: whoever sees it (Acquire in `attach`) sees the rest.
    u32_at(H_MAGIC)?.store(POOL_MAGIC, Release);
    Ok(Pool { mem, layout, uid })
  }

  /// Validates an existing pool region and returns a view.
  pub fn attach(mem: M) -> Result<Self> {
    let (layout, uid) = PoolLayout::read(&mem)?;
    Ok(Pool { mem, layout, uid })
  }

  pub fn layout(&self) -> &PoolLayout {
    &self.layout
  }

  pub fn uid(&self) -> u32 {
    self.uid
  }

  pub fn memory(&self) -> &M {
    &self.mem
  }

  // ---- participants -------------------------------------------------------------------------

  /// Takes a free participant entry. `token` must be non-zero and unique among live participants.
  pub fn join(&self, token: u64, pid: u32) -> Result<Participant> {
    self.join_process(token, ProcessId::new(pid, 0))
  }

  /// As [`Pool::join`], recording the whole process identity, which lets [`Pool::reclaim_dead`]
  /// tell a dead process from a new one that got the same pid, or from one in another namespace.
  pub fn join_process(&self, token: u64, process: ProcessId) -> Result<Participant> {
    assert!(
      token != 0 && token != PART_RECLAIMING && token != PART_JOINING,
      "participant tokens are non-zero and not a marker"
    );
    for index in 0..self.layout.max_participants {
      let entry = self.layout.participant(index);
      let word = self.mem.u64_at(entry + PART_TOKEN)?;
      // Claim the entry first, fill in who we are, then publish the token (Release): whoever
      // sees the token (Acquire) sees our pid, never the pid of the entry's previous owner.
      if word.load(Relaxed) == 0
        && word
          .compare_exchange(0, PART_JOINING, AcqRel, Relaxed)
          .is_ok()
      {
        self
          .mem
          .u32_at(entry + PART_PID)?
          .store(process.pid, Relaxed);
        self
          .mem
          .u64_at(entry + PART_START)?
          .store(process.start, Relaxed);
        self
          .mem
          .u64_at(entry + PART_PID_NS)?
          .store(process.namespace, Relaxed);
        self.mem.u32_at(entry + PART_PARKED)?.store(0, Relaxed);
        word.store(token, Release);
        return Ok(Participant(index));
      }
    }
    Err(Error::TooManyParticipants)
  }

  /// Records how many waits of `who` are registered in the free-slot waiter count, so that a
  /// participant reclaiming `who` after its process died can withdraw them.
  pub fn set_parked(&self, who: Participant, parked: u32) -> Result<()> {
    let entry = self.participant_entry(who)?;
    self.mem.u32_at(entry + PART_PARKED)?.store(parked, Relaxed);
    Ok(())
  }

  /// The waits of `who` registered in the free-slot waiter count, as last recorded with
  /// [`Pool::set_parked`] (only `who` writes it while it lives).
  pub fn parked(&self, who: Participant) -> Result<u32> {
    let entry = self.participant_entry(who)?;
    Ok(self.mem.u32_at(entry + PART_PARKED)?.load(Relaxed))
  }

  fn participant_entry(&self, who: Participant) -> Result<usize> {
    if who.0 >= self.layout.max_participants {
      return Err(Error::BadTicket("participant index out of range"));
    }
    Ok(self.layout.participant(who.0))
  }

  /// Participants whose process `alive` says is still running (entries being reclaimed count as
  /// gone). A region with none is left over from processes that are all gone.
  pub fn live_participants(&self, alive: impl Fn(&ProcessId) -> bool) -> Result<u32> {
    let mut live = 0;
    for index in 0..self.layout.max_participants {
      let entry = self.layout.participant(index);
      let token = self.mem.u64_at(entry + PART_TOKEN)?.load(Acquire);
      if token == 0 || token == PART_RECLAIMING {
        continue;
      }
      if token == PART_JOINING {
        live += 1;
        continue;
      }
      if alive(&self.process_of(entry)?) {
        live += 1;
      }
    }
    Ok(live)
  }

  fn process_of(&self, entry: usize) -> Result<ProcessId> {
    Ok(ProcessId {
      pid: self.mem.u32_at(entry + PART_PID)?.load(Relaxed),
      start: self.mem.u64_at(entry + PART_START)?.load(Relaxed),
      namespace: self.mem.u64_at(entry + PART_PID_NS)?.load(Relaxed),
    })
  }

  /// Tears down every participant whose process `alive` says is gone (killed, crashed,
  /// exited without detaching): its leased slots go back to the free list, its registered waits
  /// are withdrawn, its counters are folded into the totals and its entry is freed. Safe to run
  /// from several processes at once: each entry is claimed (token → [`PART_RECLAIMING`]) by one.
  pub fn reclaim_dead(&self, alive: impl Fn(&ProcessId) -> bool) -> Result<DeadReclaim> {
    let mut out = DeadReclaim::default();
    for index in 0..self.layout.max_participants {
      let entry = self.layout.participant(index);
      let token_word = self.mem.u64_at(entry + PART_TOKEN)?;
      // Acquire: pairs with the Release that published the token after its pid and start time.
      let token = token_word.load(Acquire);
      if token == 0 || token == PART_RECLAIMING || token == PART_JOINING {
        continue;
      }
      if alive(&self.process_of(entry)?) {
        continue;
      }
      // AcqRel: we see the dead participant's last writes, and nobody else reclaims this entry.
      if token_word
        .compare_exchange(token, PART_RECLAIMING, AcqRel, Relaxed)
        .is_err()
      {
        continue;
      }
      let parked = self.mem.u32_at(entry + PART_PARKED)?.swap(0, Relaxed);
      let waiters = self.mem.u32_at(P_FREE_WAITERS)?;
      // Saturating: a scribbled count must not wrap to "everyone is waiting".
      let _ = waiters.fetch_update(SeqCst, SeqCst, |w| Some(w.saturating_sub(parked)));
      let (slots, wake) = self.reclaim(Participant(index))?;
      self.retire_counters(entry)?;
      // Release: the zeroed counters are visible to whoever claims the entry next.
      token_word.store(0, Release);
      out.participants += 1;
      out.slots += slots;
      out.wake.0 |= wake.0;
    }
    Ok(out)
  }

  /// Moves a participant's counters into the pool's retired totals.
  fn retire_counters(&self, entry: usize) -> Result<()> {
    for (from, to) in [
      (PART_ACQUIRED, P_RETIRED_ACQUIRED),
      (PART_RELEASED, P_RETIRED_RELEASED),
      (PART_WAITS, P_RETIRED_WAITS),
    ] {
      let counter = self.mem.u64_at(entry + from)?;
      self
        .mem
        .u64_at(to)?
        .fetch_add(counter.swap(0, Relaxed), Relaxed);
    }
    Ok(())
  }

  /// Token and pid of a participant entry (token 0: free).
  pub fn participant_info(&self, index: u32) -> Result<(u64, u32)> {
    if index >= self.layout.max_participants {
      return Err(Error::BadTicket("participant index out of range"));
    }
    let entry = self.layout.participant(index);
    Ok((
      self.mem.u64_at(entry + PART_TOKEN)?.load(Acquire),
      self.mem.u32_at(entry + PART_PID)?.load(Relaxed),
    ))
  }

  /// Reclaims every slot `who` still holds, folds its counters into the pool totals and frees its
  /// entry, but only if the entry still carries `token` (so a recycled entry is never torn down).
  /// Returns the number of slots reclaimed.
  pub fn leave(&self, who: Participant, token: u64) -> Result<(u32, Wake)> {
    let entry = self.layout.participant(who.0);
    let token_word = self.mem.u64_at(entry + PART_TOKEN)?;
    if token_word.load(Acquire) != token {
      return Ok((0, Wake(false)));
    }
    let (count, wake) = self.reclaim(who)?;
    self.retire_counters(entry)?;
    // Release: the zeroed counters are visible to whoever claims the entry next.
    let _ = token_word.compare_exchange(token, 0, Release, Relaxed);
    Ok((count, wake))
  }

  /// Returns to the free list every slot leased by `who`. Used when a participant goes away while
  /// holding leases. Slots handed off or queued in a channel are not touched: they belong to no one
  /// until adopted or received.
  pub fn reclaim(&self, who: Participant) -> Result<(u32, Wake)> {
    let mut count = 0;
    for slot in 0..self.layout.slot_count {
      let word = self.mem.u64_at(self.layout.meta(slot) + META_WORD)?;
      let current = word.load(Acquire);
      let seen = SlotWord::unpack(current);
      if seen.state == SlotState::Leased
        && seen.owner == who.owner()
        && word
          .compare_exchange(
            current,
            SlotWord::new(seen.generation, 0, SlotState::Free).pack(),
            AcqRel,
            Relaxed,
          )
          .is_ok()
      {
        // Count the slot out of use before it is back on the list (see `release`).
        self.mem.u32_at(P_IN_USE)?.fetch_sub(1, Relaxed);
        self.push(slot)?;
        count += 1;
      }
    }
    if count == 0 {
      return Ok((0, Wake(false)));
    }
    self
      .mem
      .u64_at(P_RECLAIMED)?
      .fetch_add(count as u64, Relaxed);
    Ok((count, self.wake_free_waiters()?))
  }

  // ---- free list ------------------------------------------------------------------------------

  fn pop(&self) -> Result<Option<u32>> {
    let head = self.mem.u64_at(P_FREE_HEAD)?;
    let mut current = head.load(SeqCst);
    for _ in 0..MAX_RETRIES {
      let seen = FreeHead::unpack(current);
      let index = seen.index;
      if index == NIL {
        return Ok(None);
      }
      if index >= self.layout.slot_count {
        return Err(Error::Corrupt("free-list head names no slot"));
      }
      // May be stale if another thread pops `index` meanwhile; the tagged CAS then fails.
      let next = self
        .mem
        .u32_at(self.layout.meta(index) + META_NEXT)?
        .load(Relaxed);
      let installed = seen.with_next(next);
      match head.compare_exchange_weak(current, installed.pack(), SeqCst, SeqCst) {
        Ok(_) => {
          if next != NIL && next >= self.layout.slot_count {
            // The link we installed is garbage; cut the list rather than let it point anywhere.
            head.store(installed.with_next(NIL).pack(), SeqCst);
            return Err(Error::Corrupt("free-list link names no slot"));
          }
          return Ok(Some(index));
        }
        Err(actual) => {
          current = actual;
          spin_hint();
        }
      }
    }
    Err(Error::Contended)
  }

  fn push(&self, slot: u32) -> Result<()> {
    let head = self.mem.u64_at(P_FREE_HEAD)?;
    let next = self.mem.u32_at(self.layout.meta(slot) + META_NEXT)?;
    let mut current = head.load(Relaxed);
    for _ in 0..MAX_RETRIES {
      let seen = FreeHead::unpack(current);
      next.store(seen.index, Relaxed);
      match head.compare_exchange_weak(current, seen.with_next(slot).pack(), SeqCst, Relaxed) {
        Ok(_) => return Ok(()),
        Err(actual) => {
          current = actual;
          spin_hint();
        }
      }
    }
    Err(Error::Contended)
  }

  /// After a slot went back on the free list: if someone is parked waiting for one, bump the epoch
  /// they park on and tell the caller to wake them.
  fn wake_free_waiters(&self) -> Result<Wake> {
    if self.mem.u32_at(P_FREE_WAITERS)?.load(SeqCst) == 0 {
      return Ok(Wake(false));
    }
    self.mem.u32_at(P_FREE_EPOCH)?.fetch_add(1, SeqCst);
    Ok(Wake(true))
  }

  // ---- leases ---------------------------------------------------------------------------------

  fn bump(&self, who: Participant, field: usize) -> Result<()> {
    // Only the participant itself writes its counters, so a load + store is enough.
    let counter = self.mem.u64_at(self.layout.participant(who.0) + field)?;
    counter.store(counter.load(Relaxed).wrapping_add(1), Relaxed);
    Ok(())
  }

  pub(crate) fn slot_word(&self, slot: u32) -> Result<&super::sync::AtomicU64> {
    if slot >= self.layout.slot_count {
      return Err(Error::BadTicket("slot index out of range"));
    }
    self.mem.u64_at(self.layout.meta(slot) + META_WORD)
  }

  /// Takes a free slot for `who`, or `None` when every slot is in use.
  pub fn try_acquire(&self, who: Participant) -> Result<Option<Lease>> {
    let Some(slot) = self.pop()? else {
      return Ok(None);
    };
    let word = self.slot_word(slot)?;
    let seen = SlotWord::unpack(word.load(Acquire));
    if seen.state != SlotState::Free {
      return Err(Error::Corrupt("a slot on the free list is not free"));
    }
    // The slot is ours alone once popped; a new generation makes every older lease and ticket
    // for it stale.
    let generation = seen.generation.wrapping_add(1);
    word.store(
      SlotWord::new(generation, who.owner(), SlotState::Leased).pack(),
      Release,
    );
    self
      .mem
      .u32_at(self.layout.meta(slot) + META_LENGTH)?
      .store(0, Relaxed);
    let in_use = self
      .mem
      .u32_at(P_IN_USE)?
      .fetch_add(1, Relaxed)
      .wrapping_add(1);
    let high_water = self.mem.u32_at(P_HIGH_WATER)?;
    if in_use > high_water.load(Relaxed) {
      high_water.fetch_max(in_use, Relaxed);
    }
    self.bump(who, PART_ACQUIRED)?;
    Ok(Some(Lease { slot, generation }))
  }

  /// Returns a leased slot to the free list.
  pub fn release(&self, who: Participant, lease: Lease) -> Result<Wake> {
    self.free_leased(who, lease)?;
    self.bump(who, PART_RELEASED)?;
    self.wake_free_waiters()
  }

  /// Returns a lease `who` still holds but lost track of (its JS object was garbage-collected
  /// unreleased); counted as reclaimed, not released. Stale leases are an error as in `release`.
  pub fn reclaim_lease(&self, who: Participant, lease: Lease) -> Result<Wake> {
    self.free_leased(who, lease)?;
    self.mem.u64_at(P_RECLAIMED)?.fetch_add(1, Relaxed);
    self.wake_free_waiters()
  }

  /// LEASED(generation, who) → FREE, then back on the free list.
  fn free_leased(&self, who: Participant, lease: Lease) -> Result<()> {
    let word = self.slot_word(lease.slot)?;
    word
      .compare_exchange(
        SlotWord::new(lease.generation, who.owner(), SlotState::Leased).pack(),
        SlotWord::new(lease.generation, 0, SlotState::Free).pack(),
        AcqRel,
        Relaxed,
      )
      .map_err(|_| Error::StaleLease)?;
    // Decrement before the push: once the slot is on the list another thread may pop it and
    // increment, and `in_use` (and the high-water mark taken from it) must never exceed the slot
    // count.
    self.mem.u32_at(P_IN_USE)?.fetch_sub(1, Relaxed);
    self.push(lease.slot)
  }

  /// Moves a lease from `who` to "in flight": no thread owns it until one adopts the ticket.
  /// The generation moves on, so a ticket from an earlier handoff of the same slot can never
  /// adopt this one; the returned lease (same slot, new generation) is what the ticket carries.
  pub fn handoff(&self, who: Participant, lease: Lease, length: u32) -> Result<Lease> {
    let next = Lease {
      slot: lease.slot,
      generation: lease.generation.wrapping_add(1),
    };
    self.transition_to(
      lease,
      (who.owner(), SlotState::Leased),
      next.generation,
      (0, SlotState::InFlight),
      Some(length),
    )?;
    Ok(next)
  }

  /// Takes ownership of an in-flight slot; returns the length its sender recorded.
  pub fn adopt(&self, who: Participant, lease: Lease) -> Result<u32> {
    self.transition(
      lease,
      (0, SlotState::InFlight),
      (who.owner(), SlotState::Leased),
      None,
    )?;
    self.length(lease.slot)
  }

  /// First step of a send: checks that `who` owns `lease` and records `length` (only the owner
  /// may set it). The state word does not change; the channel moves it once the lease is in the
  /// ring.
  pub(crate) fn prepare_send(&self, who: Participant, lease: Lease, length: u32) -> Result<()> {
    let word = self.slot_word(lease.slot)?;
    if length > self.layout.slot_size {
      return Err(Error::BadTicket("length exceeds the slot size"));
    }
    if word.load(Relaxed) != SlotWord::new(lease.generation, who.owner(), SlotState::Leased).pack()
    {
      return Err(Error::StaleLease);
    }
    self
      .mem
      .u32_at(self.layout.meta(lease.slot) + META_LENGTH)?
      .store(length, Relaxed);
    Ok(())
  }

  /// Number of slots (every slot index read from shared memory is checked against it).
  pub fn slot_count(&self) -> u32 {
    self.layout.slot_count
  }

  /// One ownership step on a slot: checks (generation, owner, state) and replaces owner and state.
  /// `length`, when given, is recorded before the step so the next owner sees it.
  pub(crate) fn transition(
    &self,
    lease: Lease,
    from: (u32, SlotState),
    to: (u32, SlotState),
    length: Option<u32>,
  ) -> Result<()> {
    self.transition_to(lease, from, lease.generation, to, length)
  }

  /// As `transition`, also replacing the generation with `generation`.
  fn transition_to(
    &self,
    lease: Lease,
    from: (u32, SlotState),
    generation: u32,
    to: (u32, SlotState),
    length: Option<u32>,
  ) -> Result<()> {
    let word = self.slot_word(lease.slot)?;
    if let Some(length) = length {
      if length > self.layout.slot_size {
        return Err(Error::BadTicket("length exceeds the slot size"));
      }
      // Checked before writing: only the current owner may set the length.
      if word.load(Relaxed) != SlotWord::new(lease.generation, from.0, from.1).pack() {
        return Err(Error::StaleLease);
      }
      self
        .mem
        .u32_at(self.layout.meta(lease.slot) + META_LENGTH)?
        .store(length, Relaxed);
    }
    word
      .compare_exchange(
        SlotWord::new(lease.generation, from.0, from.1).pack(),
        SlotWord::new(generation, to.0, to.1).pack(),
        AcqRel,
        Relaxed,
      )
      .map(|_| ())
      .map_err(|_| Error::StaleLease)
  }

  /// The length recorded for a slot, checked against the slot size.
  pub fn length(&self, slot: u32) -> Result<u32> {
    if slot >= self.layout.slot_count {
      return Err(Error::BadTicket("slot index out of range"));
    }
    let length = self
      .mem
      .u32_at(self.layout.meta(slot) + META_LENGTH)?
      .load(Relaxed);
    if length > self.layout.slot_size {
      return Err(Error::Corrupt("recorded length exceeds the slot size"));
    }
    Ok(length)
  }

  /// Current state word of a slot.
  pub fn slot_state(&self, slot: u32) -> Result<SlotWord> {
    Ok(SlotWord::unpack(self.slot_word(slot)?.load(Acquire)))
  }

  /// Adds `delta` to the count of threads waiting for a free slot (the waiter's side of the
  /// handshake described at the top of this file).
  pub fn add_waiters(&self, delta: i32) -> Result<()> {
    let waiters = self.mem.u32_at(P_FREE_WAITERS)?;
    waiters.fetch_add(delta as u32, SeqCst);
    Ok(())
  }

  pub fn note_wait(&self, who: Participant) -> Result<()> {
    self.bump(who, PART_WAITS)
  }

  pub fn stats(&self) -> Result<PoolStats> {
    let m = &self.mem;
    let mut stats = PoolStats {
      slots: self.layout.slot_count,
      in_use: m.u32_at(P_IN_USE)?.load(Relaxed),
      high_water: m.u32_at(P_HIGH_WATER)?.load(Relaxed),
      acquired: m.u64_at(P_RETIRED_ACQUIRED)?.load(Relaxed),
      released: m.u64_at(P_RETIRED_RELEASED)?.load(Relaxed),
      reclaimed: m.u64_at(P_RECLAIMED)?.load(Relaxed),
      waits: m.u64_at(P_RETIRED_WAITS)?.load(Relaxed),
      participants: 0,
      waiting: m.u32_at(P_FREE_WAITERS)?.load(Relaxed),
    };
    for index in 0..self.layout.max_participants {
      let entry = self.layout.participant(index);
      if m.u64_at(entry + PART_TOKEN)?.load(Relaxed) != 0 {
        stats.participants += 1;
      }
      // Wrapping, like the counters themselves: a scribbled counter must not panic (debug builds
      // check overflow).
      let counter = |field| m.u64_at(entry + field).map(|c| c.load(Relaxed));
      stats.acquired = stats.acquired.wrapping_add(counter(PART_ACQUIRED)?);
      stats.released = stats.released.wrapping_add(counter(PART_RELEASED)?);
      stats.waits = stats.waits.wrapping_add(counter(PART_WAITS)?);
    }
    // Clamp: a scribbled counter must not make the numbers nonsensical.
    stats.in_use = stats.in_use.min(stats.slots);
    Ok(stats)
  }

  /// Counts slots by state (index = [`SlotState::bits`]; 0 = invalid) by scanning every slot word.
  pub fn census(&self) -> Result<[u32; 5]> {
    let mut counts = [0u32; 5];
    for slot in 0..self.layout.slot_count {
      // Index 0 counts words in no valid state.
      let index = match self.slot_state(slot)?.state {
        SlotState::Invalid(_) => 0,
        valid => valid.bits() as usize,
      };
      counts[index] += 1;
    }
    Ok(counts)
  }

  /// Walks the free list (bounded by the slot count) and returns its length, or an error when it
  /// is cyclic or names a non-free slot. For tests and diagnostics; not safe to call concurrently
  /// with pops and pushes.
  pub fn free_list_len(&self) -> Result<u32> {
    let mut index = FreeHead::unpack(self.mem.u64_at(P_FREE_HEAD)?.load(Acquire)).index;
    let mut seen = 0u32;
    while index != NIL {
      if index >= self.layout.slot_count || seen >= self.layout.slot_count {
        return Err(Error::Corrupt("free list is cyclic or out of range"));
      }
      if self.slot_state(index)?.state != SlotState::Free {
        return Err(Error::Corrupt("free list holds a slot that is not free"));
      }
      seen += 1;
      index = self
        .mem
        .u32_at(self.layout.meta(index) + META_NEXT)?
        .load(Relaxed);
    }
    Ok(seen)
  }
}
