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
use super::sync::{crash_point, spin_hint, Ordering::*};
pub use super::words::Lease;
use super::words::{FreeHead, SlotState, SlotWord};

pub use super::words::NIL;
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
      // On the list, the length word counts the slots from this one down.
      u32_at(meta + META_LENGTH)?.store(slot_count - slot, Relaxed);
    }
    u64_at(P_FREE_HEAD)?.store(
      FreeHead {
        index: 0,
        claimer: 0,
        tag: 0,
      }
      .pack(),
      Relaxed,
    );
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
    Self::check_token(token);
    for index in 0..self.layout.max_participants {
      let entry = self.layout.participant(index);
      let word = self.mem.u64_at(entry + PART_TOKEN)?;
      if word.load(Relaxed) == 0
        && word
          .compare_exchange(0, PART_JOINING, AcqRel, Relaxed)
          .is_ok()
      {
        self.take_entry(entry, token, process)?;
        return Ok(Participant(index));
      }
    }
    Err(Error::TooManyParticipants)
  }

  /// As [`Pool::join_process`], but when every entry is taken, takes over the entry of a
  /// participant whose process `alive` says is dead (or an entry whose reclaimer died), and first
  /// finishes what that participant left: its slots go back to the free list and its counters to
  /// the totals, as [`Pool::reclaim_dead`] would. If this process dies while doing so, the entry
  /// already names it, so the next reclaimer finishes the job.
  pub fn join_reclaiming(
    &self,
    token: u64,
    process: ProcessId,
    alive: impl Fn(&ProcessId) -> bool,
  ) -> Result<(Participant, DeadReclaim)> {
    match self.join_process(token, process) {
      Err(Error::TooManyParticipants) => {}
      other => return other.map(|me| (me, DeadReclaim::default())),
    }
    for index in 0..self.layout.max_participants {
      let entry = self.layout.participant(index);
      let word = self.mem.u64_at(entry + PART_TOKEN)?;
      let seen = word.load(Acquire);
      if !self.abandoned(index, seen, &alive)? {
        continue;
      }
      // AcqRel: we see the dead owner's last writes, and nobody else takes the entry over.
      if word
        .compare_exchange(seen, PART_JOINING, AcqRel, Relaxed)
        .is_err()
      {
        continue;
      }
      // The dead owner's registered waits go before the entry is ours (it starts with none).
      self.withdraw_parked(entry)?;
      self.take_entry(entry, token, process)?;
      let me = Participant(index);
      // Whatever the previous owner (or its reclaimer) left now looks like ours; return it.
      let (slots, wake) = self.tear_down(me, me)?;
      return Ok((
        me,
        DeadReclaim {
          participants: 1,
          slots,
          wake,
        },
      ));
    }
    Err(Error::TooManyParticipants)
  }

  fn check_token(token: u64) {
    assert!(
      token != 0 && token & PART_RECLAIM_BIT == 0,
      "participant tokens are non-zero and below 2^63 (markers use the top bit)"
    );
  }

  /// Fills in a claimed entry (token [`PART_JOINING`]) for `process`, with no registered waits,
  /// then publishes `token` (Release): whoever sees the token (Acquire) sees our identity, never
  /// the previous owner's.
  fn take_entry(&self, entry: usize, token: u64, process: ProcessId) -> Result<()> {
    self.mem.u32_at(entry + PART_PARKED)?.store(0, Relaxed);
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
    self.mem.u64_at(entry + PART_TOKEN)?.store(token, Release);
    Ok(())
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
      if token == 0 || (token & PART_RECLAIM_BIT != 0 && token != PART_JOINING) {
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

  /// The token `reclaimer` writes into the entries it tears down: it names the reclaimer's entry
  /// and the low half of its token, so that anyone can tell whether the reclaimer still runs.
  fn reclaim_marker(&self, reclaimer: Participant) -> Result<u64> {
    let entry = self.participant_entry(reclaimer)?;
    let token = self.mem.u64_at(entry + PART_TOKEN)?.load(Relaxed);
    if token == 0 || token & PART_RECLAIM_BIT != 0 {
      return Err(Error::BadTicket("the reclaimer is not a participant"));
    }
    Ok(PART_RECLAIM_BIT | (reclaimer.0 as u64) << 32 | (token & 0xffff_ffff))
  }

  /// Whether the entry `index`, whose token was seen as `token`, belongs to nobody alive: a
  /// participant whose process is dead, or an entry being torn down by a reclaimer that is no
  /// longer a live participant (killed mid-way: the teardown must be taken over and finished).
  /// Errs on the side of "alive". Free and joining entries are not abandoned.
  fn abandoned(&self, index: u32, token: u64, alive: &impl Fn(&ProcessId) -> bool) -> Result<bool> {
    if token == 0 || token == PART_JOINING {
      return Ok(false);
    }
    let entry = self.layout.participant(index);
    if token & PART_RECLAIM_BIT == 0 {
      return Ok(!alive(&self.process_of(entry)?));
    }
    if token == PART_RECLAIMING {
      return Ok(true);
    }
    let reclaimer = ((token >> 32) & 0x7fff_ffff) as u32;
    if reclaimer >= self.layout.max_participants || reclaimer == index {
      return Ok(true); // no entry can be reclaiming this one: a scribble, or garbage
    }
    let theirs = self.layout.participant(reclaimer);
    let their_token = self.mem.u64_at(theirs + PART_TOKEN)?.load(Acquire);
    if their_token == 0
      || their_token & PART_RECLAIM_BIT != 0
      || their_token & 0xffff_ffff != token & 0xffff_ffff
    {
      return Ok(true); // the reclaimer left, or its own entry is being torn down
    }
    Ok(!alive(&self.process_of(theirs)?))
  }

  /// Tears down every participant whose process `alive` says is gone (killed, crashed,
  /// exited without detaching): its leased slots go back to the free list, its registered waits
  /// are withdrawn, its counters are folded into the totals and its entry is freed. `me` is the
  /// caller's own participant: each entry torn down is first marked as being reclaimed by `me`
  /// (token → [`Pool::reclaim_marker`]), so that if this process dies mid-way, the next reclaimer
  /// sees the marker's owner is gone and takes the teardown over; every step of it can be redone.
  /// Safe to run from several processes at once: each entry is claimed by one.
  pub fn reclaim_dead(
    &self,
    me: Participant,
    alive: impl Fn(&ProcessId) -> bool,
  ) -> Result<DeadReclaim> {
    let marker = self.reclaim_marker(me)?;
    let mut out = DeadReclaim::default();
    for index in 0..self.layout.max_participants {
      if index == me.0 {
        continue;
      }
      let entry = self.layout.participant(index);
      let token_word = self.mem.u64_at(entry + PART_TOKEN)?;
      // Acquire: pairs with the Release that published the token after its pid and start time.
      let token = token_word.load(Acquire);
      // Our own marker: an earlier call of ours stopped with an error; finish it.
      if token != marker {
        if !self.abandoned(index, token, &alive)? {
          continue;
        }
        // AcqRel: we see the dead participant's (or dead reclaimer's) last writes, and nobody
        // else tears this entry down while our marker is there.
        if token_word
          .compare_exchange(token, marker, AcqRel, Relaxed)
          .is_err()
        {
          continue;
        }
        crash_point()?;
      }
      let (slots, wake) = self.tear_down(Participant(index), me)?;
      // Release: the zeroed counters are visible to whoever claims the entry next. A CAS, not a
      // store: if we were wrongly judged dead and overtaken, the entry is no longer ours to free.
      let _ = token_word.compare_exchange(marker, 0, Release, Relaxed);
      out.participants += 1;
      out.slots += slots;
      out.wake.0 |= wake.0;
    }
    Ok(out)
  }

  /// Returns everything the participant of entry `dead` left (its registered waits, its claimed,
  /// leased and half-released slots, its counters), acting as participant `me`. Every step can
  /// be redone by a later reclaimer if `me` dies mid-way: counters and waits move with swaps,
  /// slots with compare-and-swaps on their state words.
  fn tear_down(&self, dead: Participant, me: Participant) -> Result<(u32, Wake)> {
    let entry = self.participant_entry(dead)?;
    self.withdraw_parked(entry)?;
    crash_point()?;
    let (slots, wake) = self.reclaim_as(dead, me)?;
    self.retire_counters(entry)?;
    Ok((slots, wake))
  }

  /// Withdraws the waits the participant of `entry` registered in the free-slot waiter count.
  /// Can be redone: the entry's count is taken with a swap.
  fn withdraw_parked(&self, entry: usize) -> Result<()> {
    let parked = self.mem.u32_at(entry + PART_PARKED)?.swap(0, Relaxed);
    let waiters = self.mem.u32_at(P_FREE_WAITERS)?;
    // Saturating: a scribbled count must not wrap to "everyone is waiting".
    let _ = waiters.fetch_update(SeqCst, SeqCst, |w| Some(w.saturating_sub(parked)));
    Ok(())
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
    let entry = self.participant_entry(who)?;
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
    self.reclaim_as(who, who)
  }

  /// As [`Pool::reclaim`], done by participant `me` (who may be `who`): also completes a pop
  /// `who` claimed and finishes releases `who` started. Slots `me` returns are marked as being
  /// released by `me`, so if `me` dies mid-way, reclaiming `me` finishes them.
  fn reclaim_as(&self, who: Participant, me: Participant) -> Result<(u32, Wake)> {
    // A pop `who` claimed completes at the head of the list: settle it first, so the slot is
    // leased by `who` before the scan below looks at it. Nobody can claim for `who` later (it is
    // gone, or it is us and we are not popping).
    self.settle_head()?;
    let mut count = 0;
    for slot in 0..self.layout.slot_count {
      let word = self.slot_word(slot)?;
      let seen = SlotWord::unpack(word.load(Acquire));
      if seen.owner != who.owner() {
        continue;
      }
      let returned = match seen.state {
        // Ours to return once marked as being released by us (fails if it moved on meanwhile).
        SlotState::Leased => {
          let marked = word
            .compare_exchange(
              seen.pack(),
              SlotWord::new(seen.generation, me.owner(), SlotState::Releasing).pack(),
              AcqRel,
              Relaxed,
            )
            .is_ok();
          if marked {
            self.count_reclaimed()?;
            crash_point()?;
            self.push(slot, seen.generation, me)?;
          }
          marked
        }
        SlotState::Releasing => self.finish_release(slot, seen, me)?,
        _ => false,
      };
      count += returned as u32;
    }
    if count == 0 {
      return Ok((0, Wake(false)));
    }
    Ok((count, self.wake_free_waiters()?))
  }

  /// Counts one slot as reclaimed: right after the compare-and-swap that made it ours to return,
  /// so that a reclaimer taking over from a dead one neither misses nor repeats it.
  fn count_reclaimed(&self) -> Result<()> {
    self.mem.u64_at(P_RECLAIMED)?.fetch_add(1, Relaxed);
    Ok(())
  }

  /// A slot `seen` as `Releasing` by a participant that stopped (died) before finishing: if it
  /// is the head of the free list, it was pushed, and settling the head makes it free. Otherwise
  /// it was not pushed: only the first slot of the list can still be `Releasing` (whoever moves
  /// the head first settles it), so `me` takes the release over and pushes it. Returns whether it
  /// pushed the slot.
  fn finish_release(&self, slot: u32, seen: SlotWord, me: Participant) -> Result<bool> {
    let head = FreeHead::unpack(self.head()?.load(SeqCst));
    if head.index == slot {
      self.settle_head()?;
      return Ok(false);
    }
    let word = self.slot_word(slot)?;
    // Fails if the slot moved on meanwhile (someone settled it at the head after all).
    if word
      .compare_exchange(
        seen.pack(),
        SlotWord::new(seen.generation, me.owner(), SlotState::Releasing).pack(),
        AcqRel,
        Relaxed,
      )
      .is_err()
    {
      return Ok(false);
    }
    // The one who made it `Releasing` counted it (as released or reclaimed) already.
    crash_point()?;
    self.push(slot, seen.generation, me)?;
    Ok(true)
  }

  // ---- free list ------------------------------------------------------------------------------
  //
  // A lock-free stack of slot indices whose every step leaves a state from which anyone can go
  // on, so that a participant stopping for ever (its process killed) between two steps loses no
  // slot:
  // - Pop = claim, then complete. The claim is one CAS of the head that records the claimer in it
  //   ([`FreeHead::claimer`]). From then on the pop is decided: whoever sees a claimed head
  //   (the claimer, or anyone about to change the head) completes it, first making the slot
  //   leased by the claimer (CAS on its state word), then moving the head past it (CAS on the
  //   head). A claimer that dies after its claim thus owns the slot, and reclaiming it returns it.
  // - Push = mark, link, settle. The releaser first makes its slot `Releasing` (CAS: it is no
  //   longer leased), links it above the head (CAS on the head), then makes it `Free` (CAS). The
  //   head is never moved past a `Releasing` slot without making it `Free` first, so a
  //   `Releasing` slot on the list is always the first one, and a reclaimer can tell a pushed one
  //   (at the head) from one that never was (anywhere else) and push it then.
  // - The free count: each slot on the list records, in its length word, how many slots are on
  //   the list from it down; written before the push that publishes it and never changed while it
  //   is there. So the head says how many slots are free, with no counter to update separately.
  //
  // Orderings: every head and state-word access here is `SeqCst`. Pushes must at least release
  // (the slot's link, its count and the releaser's payload writes are visible to the next owner;
  // link and count are plain stores made before the push's CAS, which publishes them) and pops
  // acquire; helpers read a state word and then re-read the head, and must not see the
  // head newer than the word they read (both `SeqCst`: a single total order). The Dekker-style
  // handshake with parked acquirers (see the top of this file) needs `SeqCst` anyway.

  fn head(&self) -> Result<&super::sync::AtomicU64> {
    self.mem.u64_at(P_FREE_HEAD)
  }

  fn next_of(&self, slot: u32) -> Result<&super::sync::AtomicU32> {
    self.mem.u32_at(self.layout.meta(slot) + META_NEXT)
  }

  fn count_of(&self, slot: u32) -> Result<&super::sync::AtomicU32> {
    self.mem.u32_at(self.layout.meta(slot) + META_LENGTH)
  }

  /// Completes whatever step the head shows half done (a claimed pop, a pushed slot still
  /// `Releasing`) until it shows none, and returns that head: unclaimed, and naming a `Free`
  /// slot or nothing. Errors if the head or a slot on it holds a value no correct participant
  /// writes.
  fn settle_head(&self) -> Result<u64> {
    self.settle_head_and_first().map(|(current, _)| current)
  }

  /// As [`Pool::settle_head`], also returning the state word of the head's first slot as read
  /// while the head was that value (0 for an empty list).
  fn settle_head_and_first(&self) -> Result<(u64, u64)> {
    let head = self.head()?;
    for _ in 0..MAX_RETRIES {
      let current = head.load(SeqCst);
      if let Some(first) = self.settle_step(current)? {
        return Ok((current, first));
      }
      spin_hint();
    }
    Err(Error::Contended)
  }

  /// One step of [`Pool::settle_head`] on the head value `current`: if it is settled already,
  /// the state word of its first slot (0 for an empty list); else does (or finds done by
  /// someone else) the next step of what it shows, and returns `None`.
  fn settle_step(&self, current: u64) -> Result<Option<u64>> {
    let head = self.head()?;
    let seen = FreeHead::unpack(current);
    if seen.index == NIL {
      if seen.claimer != 0 {
        return Err(Error::Corrupt("the free-list head claims an empty list"));
      }
      return Ok(Some(0));
    }
    if seen.index >= self.layout.slot_count {
      return Err(Error::Corrupt("free-list head names no slot"));
    }
    let word = self.slot_word(seen.index)?;
    let state = word.load(SeqCst);
    let slot = SlotWord::unpack(state);
    // The word we read belongs to the head we read only if the head has not moved since (a
    // slot's word can change only once it is off the list, which moves the head).
    let still = || head.load(SeqCst) == current;
    match (seen.claimer, slot.state) {
      (0, SlotState::Free) if slot.owner == 0 => return Ok(Some(state)),
      (0, SlotState::Releasing) => {
        if still() {
          let _ = word.compare_exchange(
            state,
            SlotWord::new(slot.generation, 0, SlotState::Free).pack(),
            SeqCst,
            SeqCst,
          );
        }
      }
      (claimer, _) if claimer > self.layout.max_participants => {
        if still() {
          return Err(Error::Corrupt("the free-list head names no participant"));
        }
      }
      (claimer, SlotState::Free) if claimer != 0 && slot.owner == 0 => {
        // Step 1 of completing a claimed pop: the slot becomes the claimer's. The generation
        // the slot had on the list is this claim's own (it moves on with every acquire), so a
        // helper that read the word for an older claim fails here.
        if still() {
          let _ = word.compare_exchange(
            state,
            SlotWord::new(slot.generation.wrapping_add(1), claimer, SlotState::Leased).pack(),
            SeqCst,
            SeqCst,
          );
          crash_point()?;
        }
      }
      (claimer, SlotState::Leased) if claimer != 0 && slot.owner == claimer => {
        // Step 2: move the head past the slot. Its link cannot change while it is the head.
        let next = self.next_of(seen.index)?.load(SeqCst);
        if next != NIL && next >= self.layout.slot_count {
          if still() {
            // The link is garbage; cut the list rather than let it point anywhere.
            let _ = head.compare_exchange(current, seen.with_next(NIL).pack(), SeqCst, SeqCst);
            return Err(Error::Corrupt("free-list link names no slot"));
          }
        } else {
          let _ = head.compare_exchange(current, seen.with_next(next).pack(), SeqCst, SeqCst);
          crash_point()?;
        }
      }
      _ => {
        if still() {
          return Err(Error::Corrupt("a slot on the free list is not free"));
        }
      }
    }
    Ok(None)
  }

  /// Claims the first free slot for `who` and completes the pop; `None` when the list is empty.
  fn pop(&self, who: Participant) -> Result<Option<Lease>> {
    let head = self.head()?;
    for _ in 0..MAX_RETRIES {
      let (current, first) = self.settle_head_and_first()?;
      let seen = FreeHead::unpack(current);
      if seen.index == NIL {
        return Ok(None);
      }
      let claim = seen.claimed_by(who.owner());
      if head
        .compare_exchange(current, claim.pack(), SeqCst, SeqCst)
        .is_err()
      {
        spin_hint();
        continue;
      }
      // Counted when decided: from here the slot is ours, whoever completes the pop.
      self.bump(who, PART_ACQUIRED)?;
      crash_point()?;
      if let Some(lease) = self.complete_own_claim(seen.index, first, claim, who)? {
        return Ok(Some(lease));
      }
      // A helper got to a step first: complete our claim (or find that a helper did: the head
      // has moved past it) the general way.
      let mut done = false;
      for _ in 0..MAX_RETRIES {
        if head.load(SeqCst) != claim.pack() {
          done = true;
          break;
        }
        self.settle_step(claim.pack())?;
      }
      if !done {
        return Err(Error::Contended);
      }
      let word = SlotWord::unpack(self.slot_word(seen.index)?.load(SeqCst));
      if word.state != SlotState::Leased || word.owner != who.owner() {
        return Err(Error::Corrupt(
          "a claimed slot was not leased to its claimer",
        ));
      }
      return Ok(Some(Lease {
        slot: seen.index,
        generation: word.generation,
      }));
    }
    Err(Error::Contended)
  }

  /// The claimer's own completion of its pop of `slot`: the two steps [`Pool::settle_step`]
  /// takes on a claimed head, without reading again what the claim fixed. `first` is the slot's
  /// state word as read while the head was still the value the claim replaced; the slot was then
  /// the unclaimed first free slot, whose word only the completion of this claim changes, so a
  /// compare-and-swap from `first` either makes the slot ours (step 1) or fails because a helper
  /// did. Returns the lease once step 1 is ours (step 2, moving the head past the slot, is then
  /// done by us or was done by a helper: either way the head has moved on). `None` when a helper
  /// did step 1 or the slot's link names no slot: the general loop of `pop` takes over (and
  /// reports the bad link).
  fn complete_own_claim(
    &self,
    slot: u32,
    first: u64,
    claim: FreeHead,
    who: Participant,
  ) -> Result<Option<Lease>> {
    let generation = SlotWord::unpack(first).generation.wrapping_add(1);
    let leased = SlotWord::new(generation, who.owner(), SlotState::Leased).pack();
    if self
      .slot_word(slot)?
      .compare_exchange(first, leased, SeqCst, SeqCst)
      .is_err()
    {
      return Ok(None);
    }
    crash_point()?;
    // The link cannot change while the slot is the head's (claimed) first.
    let next = self.next_of(slot)?.load(SeqCst);
    if next != NIL && next >= self.layout.slot_count {
      return Ok(None);
    }
    if self
      .head()?
      .compare_exchange(claim.pack(), claim.with_next(next).pack(), SeqCst, SeqCst)
      .is_ok()
    {
      crash_point()?;
    }
    Ok(Some(Lease { slot, generation }))
  }

  /// Links `slot`, which `who` has made `Releasing` at `generation`, above the head, then makes
  /// it `Free` (unless someone settled it first).
  fn push(&self, slot: u32, generation: u32, who: Participant) -> Result<()> {
    let head = self.head()?;
    let next = self.next_of(slot)?;
    let count = self.count_of(slot)?;
    for _ in 0..MAX_RETRIES {
      let current = self.settle_head()?;
      let seen = FreeHead::unpack(current);
      let below = if seen.index == NIL {
        0
      } else {
        self.count_of(seen.index)?.load(SeqCst)
      };
      // Plain stores: the slot is ours (`Releasing`) and off the list until the CAS below, which
      // publishes them (a release, like the payload); whoever reads them has read a head naming
      // the slot, so it synchronises with that CAS or a later one (every head change is a
      // read-modify-write, all of them in its release sequence). A `SeqCst` store would cost a
      // locked instruction on x86 for nothing.
      next.store(seen.index, Relaxed);
      count.store(below.wrapping_add(1), Relaxed);
      if head
        .compare_exchange(current, seen.with_next(slot).pack(), SeqCst, SeqCst)
        .is_ok()
      {
        crash_point()?;
        let _ = self.slot_word(slot)?.compare_exchange(
          SlotWord::new(generation, who.owner(), SlotState::Releasing).pack(),
          SlotWord::new(generation, 0, SlotState::Free).pack(),
          SeqCst,
          SeqCst,
        );
        return Ok(());
      }
      spin_hint();
    }
    Err(Error::Contended)
  }

  /// Slots on the free list right now (a snapshot: exact whenever no pop or push is half done).
  fn free_count(&self) -> Result<u32> {
    let head = self.head()?;
    let mut count = 0;
    for _ in 0..64 {
      let current = head.load(SeqCst);
      let seen = FreeHead::unpack(current);
      if seen.index == NIL {
        return Ok(0);
      }
      if seen.index >= self.layout.slot_count {
        return Err(Error::Corrupt("free-list head names no slot"));
      }
      count = self.count_of(seen.index)?.load(SeqCst);
      // A claimed first slot is as good as taken.
      count = count.saturating_sub((seen.claimer != 0) as u32);
      if head.load(SeqCst) == current {
        break;
      }
    }
    Ok(count.min(self.layout.slot_count))
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
    let counter = self.mem.u64_at(self.participant_entry(who)? + field)?;
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
    self.participant_entry(who)?;
    let Some(lease) = self.pop(who)? else {
      return Ok(None);
    };
    // The slot is ours now (its new generation makes every older lease and ticket for it
    // stale); its length word held the list's count and is ours to reset. That count (written
    // before the slot was pushed, unchanged while it was on the list) is how many slots were free
    // when we popped it, this one included: the slots in use right after our pop follow from it.
    let count = self.count_of(lease.slot)?;
    let free_at_pop = count.load(Relaxed).min(self.layout.slot_count);
    count.store(0, Relaxed);
    let in_use = (self.layout.slot_count - free_at_pop + 1).min(self.layout.slot_count);
    let high_water = self.mem.u32_at(P_HIGH_WATER)?;
    if in_use > high_water.load(Relaxed) {
      high_water.fetch_max(in_use, Relaxed);
    }
    Ok(Some(lease))
  }

  /// Returns a leased slot to the free list.
  pub fn release(&self, who: Participant, lease: Lease) -> Result<Wake> {
    self.free_leased(who, lease, || self.bump(who, PART_RELEASED))?;
    self.wake_free_waiters()
  }

  /// Returns a lease `who` still holds but lost track of (its JS object was garbage-collected
  /// unreleased); counted as reclaimed, not released. Stale leases are an error as in `release`.
  pub fn reclaim_lease(&self, who: Participant, lease: Lease) -> Result<Wake> {
    self.free_leased(who, lease, || self.count_reclaimed())?;
    self.wake_free_waiters()
  }

  /// LEASED(generation, who) → RELEASING(generation, who), counted (by `count`, right after that
  /// step, so that a release finished by a reclaimer is counted once), then onto the free list
  /// (see the free-list notes: if `who` dies in between, reclaiming it finishes the push).
  fn free_leased(
    &self,
    who: Participant,
    lease: Lease,
    count: impl FnOnce() -> Result<()>,
  ) -> Result<()> {
    self.participant_entry(who)?;
    let word = self.slot_word(lease.slot)?;
    word
      .compare_exchange(
        SlotWord::new(lease.generation, who.owner(), SlotState::Leased).pack(),
        SlotWord::new(lease.generation, who.owner(), SlotState::Releasing).pack(),
        SeqCst,
        Relaxed,
      )
      .map_err(|_| Error::StaleLease)?;
    count()?;
    crash_point()?;
    self.push(lease.slot, lease.generation, who)
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
      in_use: self.layout.slot_count - self.free_count()?,
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
  /// A slot being released (`Releasing`) counts as free.
  pub fn census(&self) -> Result<[u32; 5]> {
    let mut counts = [0u32; 5];
    for slot in 0..self.layout.slot_count {
      // Index 0 counts words in no valid state.
      let index = match self.slot_state(slot)?.state {
        SlotState::Invalid(_) => 0,
        SlotState::Releasing => SlotState::Free.bits() as usize,
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
      if !matches!(
        self.slot_state(index)?.state,
        SlotState::Free | SlotState::Releasing
      ) {
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
