//! Loom models of the topic protocol (lib/topic.js): the per-slot reference count (model 1), a
//! subscriber's take racing a drop-oldest publisher (model 2), and subscribe racing a publish
//! whose publisher dies inside the lock (model 3).
//!
//! The models are Rust transcriptions of the JS steps that touch shared memory, on a world of a
//! few slots: the pool's slot state words (`generation << 8 | owner << 4 | state`, with the
//! pool's adopt, release, handoff and reclaim as compare-and-swaps on them), the topic's records
//! `[generation, mask]`, ring entries `[position, slot, generation]`, HEAD, ACTIVE, one
//! subscriber's cursor, the lock word and its journal. JS `Atomics` are sequentially consistent,
//! and so is every access here (see `Word`). Dying is a thread stopping for ever at its
//! `stop`-th crash point (`Life`; each model runs once per crash point the thread can reach);
//! what others do about a death (the pool reclaiming the dead participant's leases, the next
//! participant taking its lock over, a retirer sweeping a dead subscriber's bit) runs as steps
//! after the stop, concurrently with the live threads.
//!
//! Besides each model's assertions, ghost state (a `std` mutex, invisible to loom's scheduler, so
//! it adds no interleavings) checks on every free of a slot that nobody is reading that sample and
//! that it was not freed before, and counts the clears of each subscriber bit and the deliveries
//! and drops of each position.
//!
//! Every model can fail: `Mutation` lists plausible changes of the protocol, and a test per
//! mutation checks that the model catches it. The first version of lib/topic.js is one of them
//! (`Proto::UNLOCKED_FINISH`): a subscriber that finishes a drop-oldest publisher's PENDING drop
//! without the lock can clear its bit on a later sample of the same slot, which then goes back to
//! the pool while the subscriber reads it (see
//! `model_2_an_unlocked_finish_of_a_drop_loses_a_bit_on_a_reused_slot`). The models run the
//! protocol lib/topic.js now has, `Proto::FIXED`: a subscriber finishes a drop under the lock.
//!
//! Run with `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release -p
//! sabpool-core --test loom_topic` (part of `npm run test:loom`). With LOOM_TOPIC_TRACE set, a
//! failing model prints the steps of the interleaving that failed.
#![cfg(loom)]

use loom::sync::atomic::{AtomicU32, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;
use std::cell::{Cell, RefCell};
use std::sync::Mutex;
use std::time::Instant;

// ---- tracing a failing interleaving -----------------------------------------------------------

thread_local! {
  /// The steps of the current execution, when LOOM_TOPIC_TRACE is set (loom runs all threads of
  /// a model on the test's own thread, so one buffer sees them all in schedule order).
  static TRACE: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

fn trace_on() -> bool {
  std::env::var_os("LOOM_TOPIC_TRACE").is_some()
}

/// Records a step of participant `$who` in the trace (nothing when tracing is off).
macro_rules! note {
  ($who:expr, $($arg:tt)*) => {
    TRACE.with(|t| {
      if let Some(steps) = t.borrow_mut().as_mut() {
        steps.push(format!("{:>8}: {}", name($who), format!($($arg)*)));
      }
    })
  };
}

fn name(who: u32) -> &'static str {
  match who {
    P => "P",
    S1 => "S1",
    S2 => "S2",
    RETIRER => "retirer",
    LAST => "last",
    _ => "?",
  }
}

/// Starts the trace of an execution; the first time, installs a panic hook that prints the
/// trace of the execution that panicked (at the panic, before loom tears the execution down).
fn trace_reset() {
  static HOOK: std::sync::Once = std::sync::Once::new();
  if !trace_on() {
    return;
  }
  HOOK.call_once(|| {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
      // Only a model's own failures (the generators loom runs threads in unwind with other
      // payloads when an execution is torn down).
      let payload = info.payload();
      let message = payload.is::<String>() || payload.is::<&str>();
      if let Some(steps) = TRACE.with(|t| t.borrow_mut().take_if(|_| message)) {
        eprintln!("the failing interleaving:\n{}", steps.join("\n"));
      }
      previous(info);
    }));
  });
  TRACE.with(|t| *t.borrow_mut() = Some(Vec::new()));
}

// ---- the protocol and its mutations -----------------------------------------------------------

/// A change of the protocol that a model must catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mutation {
  /// A reference is dropped with a load and a store of the mask instead of an atomic AND.
  PlainClear,
  /// A holder decides it was the last one by loading the mask after its AND ("the mask is zero")
  /// instead of from the AND's result ("the mask became zero"). Harmless: see its test.
  LastByReload,
  /// The sweep skips records whose mask is empty (it only drops the retired bit).
  NoOrphanSweep,
  /// The sweep frees an orphan by storing FREE after seeing it in flight, not by adopting it.
  SweepFreesByStore,
  /// A drop clears the subscriber's bit first, then moves the cursor (no PENDING).
  ClearBeforeCursorCas,
  /// A take reads the ring entry after its cursor compare-and-swap instead of before.
  EntryAfterCas,
  /// A take moves the cursor with a store instead of a compare-and-swap.
  TakeByStore,
  /// subscribe() reads HEAD before taking the lock.
  HeadBeforeLock,
  /// A publish reads ACTIVE (the mask of its sample) before taking the lock.
  ActiveBeforeLock,
  /// A publish stores HEAD before writing the ring entry.
  CommitBeforeEntry,
  /// repair() judges a publish committed by its ring entry instead of HEAD.
  RepairByEntry,
  /// repair() does not redo a committed publish's history drop.
  NoHistoryRedo,
  /// Taking over a dead holder's lock runs repair() but not the orphan sweep.
  NoTakeoverSweep,
}

#[derive(Debug, Clone, Copy)]
struct Proto {
  /// A subscriber finishing a PENDING drop does it under the lock (as lib/topic.js's `#take`
  /// does), or lock-free (as its first version did).
  finish_under_lock: bool,
  mutation: Option<Mutation>,
}

impl Proto {
  const FIXED: Proto = Proto {
    finish_under_lock: true,
    mutation: None,
  };
  const UNLOCKED_FINISH: Proto = Proto {
    finish_under_lock: false,
    mutation: None,
  };

  const fn with(mutation: Mutation) -> Proto {
    Proto {
      finish_under_lock: true,
      mutation: Some(mutation),
    }
  }

  fn has(&self, mutation: Mutation) -> bool {
    self.mutation == Some(mutation)
  }
}

// ---- death ------------------------------------------------------------------------------------

/// A thread that stopped for ever at a crash point.
struct Died;

/// How many crash points a thread passes before it dies.
struct Life(Cell<u32>);

impl Life {
  fn immortal() -> Life {
    Life(Cell::new(u32::MAX))
  }

  fn dies_after(steps: u32) -> Life {
    Life(Cell::new(steps))
  }

  /// A crash point: the thread dies here once its steps are used up.
  fn step(&self) -> Result<(), Died> {
    match self.0.get() {
      0 => Err(Died),
      u32::MAX => Ok(()),
      left => {
        self.0.set(left - 1);
        Ok(())
      }
    }
  }
}

// ---- the world --------------------------------------------------------------------------------

/// A shared 32-bit word with JS `Atomics` semantics: sequentially consistent, every read sees
/// the last write of the schedule. Loom treats `SeqCst` as acquire/release and orders a word's
/// stores by happens-before only, so a plain load (and even a read-modify-write racing a plain
/// store) may read an older value: JS never does, and for these models that is a false alarm (a
/// waiter missing the death it should see, a reader never seeing a flag). When every access of a
/// word is a read-modify-write, each one reads the newest store and its own store comes after
/// it, a total order: so a load here is a `fetch_add(0)` and a store a `swap`.
struct Word(AtomicU32);

impl Word {
  fn new(value: u32) -> Word {
    Word(AtomicU32::new(value))
  }

  fn load(&self) -> u32 {
    self.0.fetch_add(0, SeqCst)
  }

  fn store(&self, value: u32) {
    self.0.swap(value, SeqCst);
  }

  fn cas(&self, current: u32, new: u32) -> Result<u32, u32> {
    self.0.compare_exchange(current, new, SeqCst, SeqCst)
  }

  fn and(&self, value: u32) -> u32 {
    self.0.fetch_and(value, SeqCst)
  }

  fn or(&self, value: u32) -> u32 {
    self.0.fetch_or(value, SeqCst)
  }
}

const FREE: u32 = 0;
const LEASED: u32 = 1;
const IN_FLIGHT: u32 = 3;

const fn state_word(generation: u32, owner: u32, state: u32) -> u32 {
  (generation << 8) | (owner << 4) | state
}

const POS_MASK: u32 = 0x3fff_ffff;
const PENDING: u32 = 0x4000_0000;
const HISTORY_BIT: u32 = 1 << 31;
const J_NONE: u32 = 0;
const J_PUBLISH: u32 = 1;

/// Participants (pool owner values; the lock holds one of them).
const P: u32 = 1; // the publisher
const S1: u32 = 2; // subscriber 1 (the subscriber of models 2 and 3)
const S2: u32 = 3; // subscriber 2 (model 1)
const RETIRER: u32 = 4; // a participant retiring dead subscribers
const LAST: u32 = 5; // the next participant to take the lock once the others are done

/// What a model checks behind the scheduler's back.
#[derive(Default)]
struct Ghost {
  /// (slot, generation, participant) of every sample being read.
  readers: Vec<(u32, u32, u32)>,
  /// (slot, generation) of every free.
  freed: Vec<(u32, u32)>,
  /// ((slot, generation, bit), count): clears of a set bit, by the sample the clearer meant.
  clears: Vec<((u32, u32, u32), u32)>,
  /// (position, slot, generation) of every committed sample.
  committed: Vec<(u32, u32, u32)>,
  delivered: [u32; 4],
  dropped: [u32; 4],
  stray: u32,
}

impl Ghost {
  fn clears(&self, key: (u32, u32, u32)) -> u32 {
    self
      .clears
      .iter()
      .find(|(k, _)| *k == key)
      .map_or(0, |(_, n)| *n)
  }
}

struct World {
  proto: Proto,
  capacity: u32,
  history: u32,
  /// Pool slot state words.
  pool: Vec<Word>,
  /// Topic records, per slot.
  rec_gen: Vec<Word>,
  rec_mask: Vec<Word>,
  ring_pos: Vec<Word>,
  ring_slot: Vec<Word>,
  ring_gen: Vec<Word>,
  head: Word,
  active: Word,
  /// The cursor of subscriber S1 (subscriber index 0, mask bit 1).
  cursor: Word,
  lock: Word,
  j_kind: Word,
  j_pos: Word,
  j_slot: Word,
  j_gen: Word,
  /// Bit `1 << participant` of every participant seen dead.
  dead: Word,
  /// The publisher made its last step (finished, or died and was reclaimed).
  publisher_done: Word,
  /// The threads waiting for the lock.
  waiters: Mutex<Vec<thread::Thread>>,
  ghost: Mutex<Ghost>,
}

/// Subscriber S1's mask bit (subscriber index 0), S2's, and the dead subscriber's of model 1.
const S1_BIT: u32 = 1 << 0;
const S2_BIT: u32 = 1 << 1;
const DEAD_BIT: u32 = 1 << 2;

fn atomics(n: usize) -> Vec<Word> {
  (0..n).map(|_| Word::new(0)).collect()
}

impl World {
  fn new(proto: Proto, slots: usize, ring: usize, capacity: u32, history: u32) -> World {
    World {
      proto,
      capacity,
      history,
      pool: atomics(slots),
      rec_gen: atomics(slots),
      rec_mask: atomics(slots),
      ring_pos: atomics(ring),
      ring_slot: atomics(ring),
      ring_gen: atomics(ring),
      head: Word::new(0),
      active: Word::new(0),
      cursor: Word::new(0),
      lock: Word::new(0),
      j_kind: Word::new(J_NONE),
      j_pos: Word::new(0),
      j_slot: Word::new(0),
      j_gen: Word::new(0),
      dead: Word::new(0),
      publisher_done: Word::new(0),
      waiters: Mutex::new(Vec::new()),
      ghost: Mutex::new(Ghost::default()),
    }
  }

  fn slots(&self) -> u32 {
    self.pool.len() as u32
  }

  fn ring_index(&self, pos: u32) -> usize {
    (pos as usize) & (self.ring_pos.len() - 1)
  }

  fn ghost(&self) -> std::sync::MutexGuard<'_, Ghost> {
    self.ghost.lock().unwrap()
  }

  /// A published sample at `pos` already in the ring (the models' starting state).
  fn put_sample(&self, pos: u32, slot: u32, generation: u32, mask: u32) {
    let s = slot as usize;
    self.pool[s].store(state_word(generation, 0, IN_FLIGHT));
    self.rec_gen[s].store(generation);
    self.rec_mask[s].store(mask);
    let e = self.ring_index(pos);
    self.ring_pos[e].store(pos);
    self.ring_slot[e].store(slot);
    self.ring_gen[e].store(generation);
    self.ghost().committed.push((pos, slot, generation));
  }

  // ---- the pool ----

  fn in_flight_at(&self, slot: u32, generation: u32) -> bool {
    self.pool[slot as usize].load() == state_word(generation, 0, IN_FLIGHT)
  }

  fn adopt(&self, slot: u32, generation: u32, who: u32) -> bool {
    self.pool[slot as usize]
      .cas(
        state_word(generation, 0, IN_FLIGHT),
        state_word(generation, who, LEASED),
      )
      .is_ok()
  }

  fn release(&self, slot: u32, generation: u32, who: u32) -> bool {
    let done = self.pool[slot as usize]
      .cas(
        state_word(generation, who, LEASED),
        state_word(generation, 0, FREE),
      )
      .is_ok();
    note!(who, "release slot {slot} gen {generation}: {done}");
    if done {
      self.freed(slot, generation);
    }
    done
  }

  /// Ghost check of every free: nobody reads the sample, and it was not freed before.
  fn freed(&self, slot: u32, generation: u32) {
    let mut g = self.ghost();
    if let Some((_, _, who)) = g
      .readers
      .iter()
      .find(|(s, gen, _)| (*s, *gen) == (slot, generation))
    {
      panic!("slot {slot} (generation {generation}) freed while participant {who} reads it");
    }
    assert!(
      !g.freed.contains(&(slot, generation)),
      "slot {slot} (generation {generation}) freed twice"
    );
    g.freed.push((slot, generation));
  }

  /// freeSlot: adopt, then release; false if the slot moved on already.
  fn free_slot(&self, slot: u32, generation: u32, who: u32, life: &Life) -> Result<bool, Died> {
    if !self.adopt(slot, generation, who) {
      note!(who, "adopt slot {slot} gen {generation}: it moved on");
      return Ok(false);
    }
    life.step()?; // died owning the adopted slot: the pool's reclaim returns it
    Ok(self.release(slot, generation, who))
  }

  /// The pool's reclaim of a dead participant: every slot it leased goes back.
  fn reclaim(&self, who: u32) {
    for (slot, word) in self.pool.iter().enumerate() {
      let w = word.load();
      if w & 0xf == LEASED && (w >> 4) & 0xf == who {
        let generation = w >> 8;
        if word.cas(w, state_word(generation, 0, FREE)).is_ok() {
          self.freed(slot as u32, generation);
        }
      }
    }
  }

  /// A lease on the first free slot (the generation moves on with the acquire).
  fn acquire(&self, who: u32) -> Option<(u32, u32)> {
    for (slot, word) in self.pool.iter().enumerate() {
      let w = word.load();
      if w & 0xf == FREE {
        let generation = (w >> 8) + 1;
        if word.cas(w, state_word(generation, who, LEASED)).is_ok() {
          note!(who, "acquire slot {slot} gen {generation}");
          return Some((slot as u32, generation));
        }
      }
    }
    None
  }

  fn handoff(&self, slot: u32, generation: u32, who: u32) -> bool {
    self.pool[slot as usize]
      .cas(
        state_word(generation, who, LEASED),
        state_word(generation + 1, 0, IN_FLIGHT),
      )
      .is_ok()
  }

  fn alive(&self, who: u32) -> bool {
    self.dead.load() & (1 << who) == 0
  }

  /// A participant stops for ever: it is seen dead, then the pool reclaims its leases.
  fn die(&self, who: u32) {
    note!(who, "dies");
    self.dead.or(1 << who);
    self.ghost().readers.retain(|(_, _, reader)| *reader != who);
    self.wake_waiters();
    self.reclaim(who);
  }

  // ---- references ----

  /// dropRef: 0 if reference `bit` to the sample in `slot` at `generation` was not held, 1 if
  /// dropped, 2 if it was the last one (and the slot was freed, unless it moved on).
  fn drop_ref(
    &self,
    slot: u32,
    generation: u32,
    bit: u32,
    who: u32,
    life: &Life,
  ) -> Result<u32, Died> {
    let s = slot as usize;
    if self.rec_gen[s].load() != generation {
      note!(
        who,
        "dropRef {bit:#x} slot {slot} gen {generation}: the record moved on"
      );
      return Ok(0);
    }
    note!(
      who,
      "dropRef {bit:#x} slot {slot} gen {generation}: the record's generation matches"
    );
    let before = if self.proto.has(Mutation::PlainClear) {
      let mask = self.rec_mask[s].load();
      self.rec_mask[s].store(mask & !bit);
      mask
    } else {
      self.rec_mask[s].and(!bit)
    };
    note!(
      who,
      "dropRef {bit:#x} slot {slot}: mask {before:#x} -> {:#x}",
      before & !bit
    );
    if before & bit == 0 {
      return Ok(0);
    }
    {
      let mut g = self.ghost();
      let key = (slot, generation, bit);
      match g.clears.iter_mut().find(|(k, _)| *k == key) {
        Some((_, n)) => *n += 1,
        None => g.clears.push((key, 1)),
      }
    }
    let last = if self.proto.has(Mutation::LastByReload) {
      self.rec_mask[s].load() == 0
    } else {
      before & !bit == 0
    };
    if !last {
      return Ok(1);
    }
    life.step()?; // died right after clearing the last bit: a sweep frees the orphan
    self.free_slot(slot, generation, who, life)?;
    Ok(2)
  }

  /// A subscriber lets go of the sample it took: Sample.release().
  fn release_sample(
    &self,
    slot: u32,
    generation: u32,
    bit: u32,
    who: u32,
    life: &Life,
  ) -> Result<u32, Died> {
    self
      .ghost()
      .readers
      .retain(|r| *r != (slot, generation, who));
    self.drop_ref(slot, generation, bit, who, life)
  }

  /// sweep(bit): drops `bit` from every in-flight sample, and frees in-flight samples nobody
  /// references (their last holder died between clearing its bit and freeing the slot).
  fn sweep(&self, bit: u32, who: u32) {
    for slot in 0..self.slots() {
      let s = slot as usize;
      let mask = self.rec_mask[s].load();
      if mask != 0 && mask & bit == 0 {
        continue;
      }
      if mask == 0 && self.proto.has(Mutation::NoOrphanSweep) {
        continue;
      }
      let generation = self.rec_gen[s].load();
      if !self.in_flight_at(slot, generation) {
        continue;
      }
      if mask != 0 {
        let _ = self.drop_ref(slot, generation, bit, who, &Life::immortal());
      } else if self.proto.has(Mutation::SweepFreesByStore) {
        self.pool[s].store(state_word(generation, 0, FREE));
        self.freed(slot, generation);
      } else {
        let _ = self.free_slot(slot, generation, who, &Life::immortal());
      }
    }
  }

  /// retire(): a subscriber's bit leaves ACTIVE and every record (its counts and entry reset
  /// are not shared-state steps the models look at).
  fn retire(&self, bit: u32, who: u32) {
    self.active.and(!bit);
    self.sweep(bit, who);
  }

  // ---- the lock ----

  /// lockSync/tryLock: takes the lock when free (repairing a journal left by a holder that gave
  /// it up mid-publish) or when its holder is dead (repair, then the orphan sweep). A participant
  /// that finds it held by a live one waits until the lock word is stored or its holder dies (the
  /// JS naps and looks again; spinning threads that only wait on each other would make loom
  /// explore schedules that never end).
  fn lock(&self, who: u32) {
    loop {
      self.waiters.lock().unwrap().push(thread::current());
      match self.lock.cas(0, who) {
        Ok(_) => {
          note!(who, "lock");
          self.stop_waiting();
          if self.j_kind.load() != J_NONE {
            self.repair(who);
          }
          return;
        }
        Err(held) => {
          if held != who && !self.alive(held) && self.lock.cas(held, who).is_ok() {
            note!(who, "takes the lock over from dead {}", name(held));
            self.stop_waiting();
            self.repair(who);
            if !self.proto.has(Mutation::NoTakeoverSweep) {
              self.sweep(0, who);
            }
            return;
          }
        }
      }
      thread::park();
    }
  }

  fn stop_waiting(&self) {
    let me = thread::current().id();
    self.waiters.lock().unwrap().retain(|t| t.id() != me);
  }

  /// Wakes the participants waiting for the lock: it was stored, or a participant died.
  fn wake_waiters(&self) {
    let waiters = std::mem::take(&mut *self.waiters.lock().unwrap());
    for t in waiters {
      t.unpark();
    }
  }

  fn unlock(&self, who: u32) {
    note!(who, "unlock");
    self.lock.store(0);
    self.wake_waiters();
  }

  /// repair(): under the lock, undoes an uncommitted publish or redoes a committed one's history
  /// drop.
  fn repair(&self, who: u32) {
    if self.j_kind.load() == J_PUBLISH {
      let pos = self.j_pos.load() & POS_MASK;
      let slot = self.j_slot.load();
      let generation = self.j_gen.load();
      let head = self.head.load() & POS_MASK;
      let (undo, redo_at) = if self.proto.has(Mutation::RepairByEntry) {
        let written = self.ring_pos[self.ring_index(pos)].load() & POS_MASK == pos;
        (!written, (pos + 1) & POS_MASK)
      } else {
        (
          head == pos,
          if head.wrapping_sub(pos) & POS_MASK == 1 {
            head
          } else {
            u32::MAX
          },
        )
      };
      if undo {
        if slot < self.slots() {
          let s = slot as usize;
          if self.rec_gen[s].load() == generation {
            self.rec_mask[s].store(0);
          }
          if self.in_flight_at(slot, generation) {
            let _ = self.free_slot(slot, generation, who, &Life::immortal());
          }
        }
      } else if redo_at != u32::MAX && !self.proto.has(Mutation::NoHistoryRedo) {
        let _ = self.drop_history_before(redo_at, who, &Life::immortal());
      }
    }
    self.j_kind.store(J_NONE);
  }

  /// dropHistoryBefore(head): the topic lets go of the sample that fell out of its history.
  fn drop_history_before(&self, head: u32, who: u32, life: &Life) -> Result<(), Died> {
    if self.history == 0 {
      return Ok(());
    }
    let old = head.wrapping_sub(1 + self.history) & POS_MASK;
    let e = self.ring_index(old);
    if self.ring_pos[e].load() & POS_MASK != old {
      return Ok(());
    }
    let slot = self.ring_slot[e].load();
    if slot >= self.slots() {
      return Ok(());
    }
    let generation = self.ring_gen[e].load();
    self.drop_ref(slot, generation, HISTORY_BIT, who, life)?;
    Ok(())
  }

  // ---- drop-oldest ----

  /// finishDrop(S1): clears S1's reference to the sample its PENDING cursor dropped, counts it,
  /// then clears PENDING.
  fn finish_drop(&self, who: u32) {
    let word = self.cursor.load();
    note!(who, "finishDrop: cursor {word:#x}");
    if word & PENDING == 0 {
      return;
    }
    let dropped = (word & POS_MASK).wrapping_sub(1) & POS_MASK;
    let e = self.ring_index(dropped);
    if self.ring_pos[e].load() & POS_MASK == dropped {
      let slot = self.ring_slot[e].load();
      if slot < self.slots() {
        let generation = self.ring_gen[e].load();
        if let Ok(n) = self.drop_ref(slot, generation, S1_BIT, who, &Life::immortal()) {
          if n != 0 {
            self.ghost().dropped[dropped as usize] += 1;
          }
        }
      }
    }
    let cleared = self.cursor.cas(word, word & !PENDING).is_ok();
    note!(who, "finishDrop: clear PENDING: {cleared}");
  }

  /// makeRoom(head) for subscriber S1 if active: drops its oldest sample while it has
  /// `capacity` unread (the models' topics are drop-oldest, or never full).
  fn make_room(&self, head: u32, who: u32, life: &Life) -> Result<(), Died> {
    if self.active.load() & S1_BIT == 0 {
      return Ok(());
    }
    loop {
      let word = self.cursor.load();
      if word & PENDING != 0 {
        self.finish_drop(who);
        continue;
      }
      if head.wrapping_sub(word) & POS_MASK < self.capacity {
        return Ok(());
      }
      if self.proto.has(Mutation::ClearBeforeCursorCas) {
        let e = self.ring_index(word);
        let slot = self.ring_slot[e].load();
        let generation = self.ring_gen[e].load();
        if self.drop_ref(slot, generation, S1_BIT, who, life)? != 0 {
          self.ghost().dropped[word as usize] += 1;
        }
        let _ = self.cursor.cas(word, (word + 1) & POS_MASK);
        continue;
      }
      let next = ((word + 1) & POS_MASK) | PENDING;
      if self.cursor.cas(word, next).is_ok() {
        note!(who, "drop: cursor {word} -> {next:#x}");
        life.step()?; // died right after the PENDING swap: the next finisher completes the drop
        self.finish_drop(who);
      }
    }
  }

  // ---- publish and subscribe ----

  /// tryPublish of lease (`slot`, `generation`): the slot becomes sample HEAD, referenced by every
  /// active subscriber and the history.
  fn publish(&self, slot: u32, generation: u32, who: u32, life: &Life) -> Result<(), Died> {
    let early_active = self
      .proto
      .has(Mutation::ActiveBeforeLock)
      .then(|| self.active.load());
    self.lock(who);
    life.step()?; // holds the lock, nothing written
    let head = self.head.load() & POS_MASK;
    self.make_room(head, who, life)?;
    let active = early_active.unwrap_or_else(|| self.active.load());
    let mask = active | if self.history > 0 { HISTORY_BIT } else { 0 };
    assert_ne!(mask, 0, "the models always publish to someone");
    let next_gen = generation + 1; // what the handoff moves the slot to
    let s = slot as usize;
    self.j_pos.store(head);
    self.j_slot.store(slot);
    self.j_gen.store(next_gen);
    self.j_kind.store(J_PUBLISH);
    life.step()?; // journal written
    self.rec_gen[s].store(next_gen);
    self.rec_mask[s].store(mask);
    note!(who, "record slot {slot}: gen {next_gen} mask {mask:#x}");
    life.step()?; // record written
    assert!(
      self.handoff(slot, generation, who),
      "the publisher's lease was taken from it"
    );
    life.step()?; // handed off
    let e = self.ring_index(head);
    let next = (head + 1) & POS_MASK;
    let write_entry = || {
      self.ring_slot[e].store(slot);
      self.ring_gen[e].store(next_gen);
      self.ring_pos[e].store(head);
    };
    let commit = || {
      note!(
        who,
        "commit: sample {head} (slot {slot} gen {next_gen}), HEAD {next}"
      );
      self.ghost().committed.push((head, slot, next_gen));
      self.head.store(next);
    };
    if self.proto.has(Mutation::CommitBeforeEntry) {
      commit();
      life.step()?;
      write_entry();
    } else {
      write_entry();
      life.step()?; // ring entry written
      commit();
    }
    life.step()?; // committed
    self.drop_history_before(next, who, life)?;
    life.step()?; // history dropped
    self.j_kind.store(J_NONE);
    life.step()?; // journal cleared
    self.unlock(who);
    Ok(())
  }

  /// Topic.subscribe() of subscriber S1 (index 0): under the lock, its cursor starts at HEAD
  /// minus the history samples it takes a reference to, then it joins ACTIVE.
  fn subscribe(&self, who: u32) {
    let early_head = self
      .proto
      .has(Mutation::HeadBeforeLock)
      .then(|| self.head.load() & POS_MASK);
    self.lock(who);
    // (retireDead: no other subscriber exists in these models.)
    let head = early_head.unwrap_or_else(|| self.head.load() & POS_MASK);
    let mut start = head;
    for k in 1..=self.history {
      let pos = head.wrapping_sub(k) & POS_MASK;
      let e = self.ring_index(pos);
      if self.ring_pos[e].load() & POS_MASK != pos {
        break;
      }
      let slot = self.ring_slot[e].load();
      if slot >= self.slots() {
        break;
      }
      let s = slot as usize;
      if self.rec_gen[s].load() != self.ring_gen[e].load() {
        break;
      }
      if self.rec_mask[s].load() & HISTORY_BIT == 0 {
        break;
      }
      self.rec_mask[s].or(S1_BIT);
      start = pos;
    }
    self.cursor.store(start);
    self.active.or(S1_BIT);
    self.unlock(who);
  }

  /// #take of subscriber S1: the next sample as (position, slot, generation), None when none is
  /// queued. Finishes a PENDING drop it finds first.
  fn take(&self, who: u32) -> Option<(u32, u32, u32)> {
    loop {
      let word = self.cursor.load();
      if word & PENDING != 0 {
        if self.proto.finish_under_lock {
          self.lock(who);
          self.finish_drop(who);
          self.unlock(who);
        } else {
          self.finish_drop(who);
        }
        continue;
      }
      if word == self.head.load() & POS_MASK {
        return None;
      }
      let e = self.ring_index(word);
      let read_entry = || {
        (
          self.ring_pos[e].load() & POS_MASK,
          self.ring_slot[e].load(),
          self.ring_gen[e].load(),
        )
      };
      let entry = (!self.proto.has(Mutation::EntryAfterCas)).then(read_entry);
      if let Some(entry) = entry {
        note!(who, "take {word}: entry (pos, slot, gen) {entry:?}");
      }
      let next = (word + 1) & POS_MASK;
      if self.proto.has(Mutation::TakeByStore) {
        self.cursor.store(next);
      } else if self.cursor.cas(word, next).is_err() {
        note!(who, "take {word}: the cursor moved");
        continue;
      }
      note!(who, "take {word}: cursor -> {next}");
      let (pos, slot, generation) = entry.unwrap_or_else(|| {
        let entry = read_entry();
        note!(who, "take {word}: entry (pos, slot, gen) {entry:?}");
        entry
      });
      if pos != word || slot >= self.slots() || self.rec_gen[slot as usize].load() != generation {
        note!(who, "take {word}: stray");
        self.ghost().stray += 1; // an entry no publisher wrote: nothing to release
        continue;
      }
      self.ghost().readers.push((slot, generation, who));
      return Some((word, slot, generation));
    }
  }

  /// A subscriber holds what it took: its bit is on the sample's record and the slot is in
  /// flight at that generation (nobody could have freed it).
  fn check_held(&self, pos: u32, slot: u32, generation: u32, bit: u32) {
    let s = slot as usize;
    let mask = self.rec_mask[s].load();
    assert!(
      mask & bit != 0,
      "sample {pos} (slot {slot}, generation {generation}) taken without the taker's bit in its mask {mask:#x}"
    );
    assert!(
      self.in_flight_at(slot, generation),
      "sample {pos} (slot {slot}, generation {generation}) taken but its slot is not in flight"
    );
  }

  /// Subscriber S1 takes and releases every sample until the publisher is done and nothing is
  /// queued.
  fn consume(&self, who: u32) {
    loop {
      let done = self.publisher_done.load() != 0;
      match self.take(who) {
        Some((pos, slot, generation)) => {
          self.check_held(pos, slot, generation, S1_BIT);
          self.ghost().delivered[pos as usize] += 1;
          let _ = self.release_sample(slot, generation, S1_BIT, who, &Life::immortal());
        }
        None if done => return,
        None => thread::yield_now(),
      }
    }
  }
}

// ---- running models ---------------------------------------------------------------------------

fn builder(bound: Option<usize>) -> loom::model::Builder {
  let mut builder = loom::model::Builder::new();
  // An explicit LOOM_MAX_PREEMPTIONS in the environment wins over the model's default.
  if builder.preemption_bound.is_none() {
    builder.preemption_bound = bound;
  }
  builder
}

/// Runs a model (returning whether a thread died in that execution) and prints how long it took;
/// returns whether any execution had a death.
fn model(name: &str, bound: Option<usize>, f: impl Fn() -> bool + Sync + Send + 'static) -> bool {
  let started = Instant::now();
  let runs = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
  let died = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
  let (runs2, died2) = (runs.clone(), died.clone());
  let b = builder(bound);
  b.check(move || {
    runs2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    trace_reset();
    if f() {
      died2.store(true, std::sync::atomic::Ordering::Relaxed);
    }
  });
  println!(
    "loom model {name}: {} interleavings in {:.1?} (preemption bound {:?})",
    runs.load(std::sync::atomic::Ordering::Relaxed),
    started.elapsed(),
    b.preemption_bound
  );
  died.load(std::sync::atomic::Ordering::Relaxed)
}

/// Runs `f(stop)` for stop = 0, 1, ... until the thread that `stop` kills no longer dies in any
/// interleaving (it got past all its crash points).
fn for_each_stop(
  name: &str,
  bound: Option<usize>,
  f: impl Fn(u32) -> bool + Sync + Send + 'static,
) {
  let f = std::sync::Arc::new(f);
  for stop in 0.. {
    let g = f.clone();
    if !model(&format!("{name}, stop at {stop}"), bound, move || g(stop)) {
      break;
    }
    assert!(
      stop < 64,
      "{name}: a thread never gets past its crash points"
    );
  }
}

/// Runs a model that must fail; returns its panic message.
fn fails(name: &str, bound: Option<usize>, f: impl Fn() -> bool + Sync + Send + 'static) -> String {
  let name = name.to_string();
  let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
    model(&name, bound, f);
  }));
  match result {
    Ok(()) => panic!("model {name}: the mutated protocol passed"),
    Err(payload) => payload
      .downcast_ref::<String>()
      .cloned()
      .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
      .unwrap_or_default(),
  }
}

fn assert_fails(
  name: &str,
  bound: Option<usize>,
  expected: &str,
  f: impl Fn() -> bool + Sync + Send + 'static,
) {
  let message = fails(name, bound, f);
  println!("{name}: failed as expected: {message}");
  assert!(
    message.contains(expected),
    "{name}: failed, but not with {expected:?}: {message}"
  );
}

// ---- model 1: the reference count -------------------------------------------------------------

/// Who holds the sample besides S1 and the dead subscriber.
#[derive(Debug, Clone, Copy)]
enum Other {
  /// Subscriber S2, releasing lock-free.
  Subscriber,
  /// The topic's history, dropped by a publisher under the lock.
  History,
}

/// The generation of the samples the models start with (acquired at 1, handed off to 2).
const G0: u32 = 2;
/// A dead subscriber that never held the sample (its retiring sweeps every record).
const OTHER_DEAD_BIT: u32 = 1 << 3;

/// One sample (slot 0, generation G0) referenced by S1, `other` and a dead subscriber. S1
/// releases it lock-free and dies at its `stop`-th crash point (then the pool reclaims it and a
/// participant retires it, under the lock); `other` releases it; a retirer retires, under the
/// lock, the dead subscriber and another dead one that held nothing. Claim: the slot is freed
/// exactly once (ghost check), never while a live holder reads it (ghost check), and always by
/// the end.
fn refcount(proto: Proto, other: Other, stop: u32) -> bool {
  let w = Arc::new(World::new(proto, 1, 1, 1, 0));
  let other_bit = match other {
    Other::Subscriber => S2_BIT,
    Other::History => HISTORY_BIT,
  };
  w.put_sample(0, 0, G0, S1_BIT | other_bit | DEAD_BIT);
  w.active.store(S1_BIT | S2_BIT);
  w.ghost().readers.push((0, G0, S1));
  if let Other::Subscriber = other {
    w.ghost().readers.push((0, G0, S2));
  }
  let s1 = {
    let w = w.clone();
    thread::spawn(move || {
      let life = Life::dies_after(stop);
      let released = life
        .step() // died holding the sample
        .and_then(|()| w.release_sample(0, G0, S1_BIT, S1, &life));
      if released.is_ok() {
        return false;
      }
      w.die(S1);
      w.lock(LAST);
      w.retire(S1_BIT, LAST);
      w.unlock(LAST);
      true
    })
  };
  let o = {
    let w = w.clone();
    thread::spawn(move || match other {
      Other::Subscriber => {
        let _ = w.release_sample(0, G0, S2_BIT, S2, &Life::immortal());
      }
      Other::History => {
        w.lock(P);
        let _ = w.drop_ref(0, G0, HISTORY_BIT, P, &Life::immortal());
        w.unlock(P);
      }
    })
  };
  w.lock(RETIRER);
  w.retire(DEAD_BIT, RETIRER);
  w.retire(OTHER_DEAD_BIT, RETIRER);
  w.unlock(RETIRER);
  let died = s1.join().unwrap();
  o.join().unwrap();
  let word = w.pool[0].load();
  assert_eq!(
    word,
    state_word(G0, 0, FREE),
    "the sample's slot never went back to the pool (state {word:#x}, mask {:#x})",
    w.rec_mask[0].load()
  );
  assert_eq!(w.rec_mask[0].load(), 0, "a reference outlived its holder");
  died
}

// ---- model 2: take vs drop-oldest -------------------------------------------------------------

/// Model 2's slots: A holds sample 0, B is the publisher's lease for sample 1, C is free.
const A: u32 = 0;
const B: u32 = 1;

/// Subscriber S1 (capacity 1, so every publish drops its oldest unread sample) takes and
/// releases samples while the publisher publishes `publishes` samples (the second in the first
/// free slot: A again when sample 0 went back to the pool), dying at its `stop`-th crash point.
/// Then the next participant takes the lock (over, if the publisher died holding it). Claims:
/// each position is delivered or dropped, exactly one of the two; S1's bit on each sample is
/// cleared exactly once overall (by its release or by the drop); no stray entry; every slot is
/// back in the pool at the end, none freed twice or while S1 reads it (ghost checks), and S1
/// never takes a sample without its bit.
fn take_vs_drop(proto: Proto, publishes: u32, stop: u32) -> bool {
  let w = Arc::new(World::new(proto, 3, 2, 1, 0));
  w.put_sample(0, A, G0, S1_BIT);
  w.head.store(1);
  w.active.store(S1_BIT);
  w.pool[B as usize].store(state_word(1, P, LEASED));
  let publisher = {
    let w = w.clone();
    thread::spawn(move || {
      let life = Life::dies_after(stop);
      let run = || -> Result<(), Died> {
        w.publish(B, 1, P, &life)?;
        for _ in 1..publishes {
          let (slot, generation) = w.acquire(P).expect("a free slot");
          w.publish(slot, generation, P, &life)?;
        }
        Ok(())
      };
      let died = run().is_err();
      if died {
        w.die(P);
      }
      w.publisher_done.store(1);
      died
    })
  };
  let subscriber = {
    let w = w.clone();
    thread::spawn(move || w.consume(S1))
  };
  let died = publisher.join().unwrap();
  subscriber.join().unwrap();
  w.lock(LAST);
  w.unlock(LAST);
  let head = w.head.load();
  let g = w.ghost();
  for pos in 0..head as usize {
    assert_eq!(
      g.delivered[pos] + g.dropped[pos],
      1,
      "sample {pos}: delivered {} times, dropped {} times",
      g.delivered[pos],
      g.dropped[pos]
    );
  }
  for &(pos, slot, generation) in &g.committed {
    let n = g.clears((slot, generation, S1_BIT));
    assert_eq!(
      n, 1,
      "S1's bit on sample {pos} (slot {slot}) cleared {n} times"
    );
  }
  assert_eq!(g.stray, 0, "S1 met an entry no publisher wrote");
  for (slot, word) in w.pool.iter().enumerate() {
    let word = word.load();
    assert_eq!(
      word & 0xf,
      FREE,
      "slot {slot} never went back to the pool (state {word:#x})"
    );
  }
  assert_eq!(w.lock.load(), 0);
  assert_eq!(w.j_kind.load(), J_NONE);
  died
}

// ---- model 3: subscribe vs publish, and the lock holder's death --------------------------------

/// Subscriber S1 subscribes (history 1, so it also takes a reference to the newest kept sample)
/// and then takes and releases what it is given, while the publisher publishes sample 1 (lease
/// B) and dies at its `stop`-th crash point; sample 0 (slot A) is the history the publish lets
/// go of. A dead publisher's lock is taken over by S1 if it needs it, and at the end by the next
/// participant; the pool reclaims the dead publisher's leases. Claims: S1 takes a sample only
/// with its bit in the mask, and every sample with its bit it takes (no record keeps its bit); it
/// receives sample 1 exactly when the publish committed; then the history holds exactly the
/// newest sample, the other slot is back in the pool, and none was freed twice or while read.
fn join_vs_publish(proto: Proto, stop: u32) -> bool {
  let w = Arc::new(World::new(proto, 2, 4, 2, 1));
  w.put_sample(0, A, G0, HISTORY_BIT);
  w.head.store(1);
  w.pool[B as usize].store(state_word(1, P, LEASED));
  let publisher = {
    let w = w.clone();
    thread::spawn(move || {
      let life = Life::dies_after(stop);
      let died = w.publish(B, 1, P, &life).is_err();
      if died {
        w.die(P);
      }
      w.publisher_done.store(1);
      died
    })
  };
  let joiner = {
    let w = w.clone();
    thread::spawn(move || {
      w.subscribe(S1);
      w.consume(S1);
    })
  };
  let died = publisher.join().unwrap();
  joiner.join().unwrap();
  w.lock(LAST);
  w.unlock(LAST);
  assert_eq!(w.lock.load(), 0);
  assert_eq!(w.j_kind.load(), J_NONE);
  let committed = w.head.load() == 2;
  for slot in [A, B] {
    let mask = w.rec_mask[slot as usize].load();
    assert_eq!(
      mask & S1_BIT,
      0,
      "slot {slot}: S1 never took a sample whose mask holds its bit ({mask:#x})"
    );
  }
  let g = w.ghost();
  assert_eq!(g.stray, 0, "S1 met an entry no publisher wrote");
  assert!(g.delivered[0] <= 1, "sample 0 delivered twice");
  assert_eq!(
    g.delivered[1], committed as u32,
    "S1 received sample 1 {} times (committed: {committed})",
    g.delivered[1]
  );
  let (kept, gone) = if committed { (B, A) } else { (A, B) };
  let word = w.pool[kept as usize].load();
  assert_eq!(
    word,
    state_word(G0, 0, IN_FLIGHT),
    "the history sample's slot {kept} is not in flight ({word:#x})"
  );
  let mask = w.rec_mask[kept as usize].load();
  assert_eq!(mask, HISTORY_BIT, "the history sample's mask is {mask:#x}");
  let word = w.pool[gone as usize].load();
  assert_eq!(word & 0xf, FREE, "slot {gone} leaked (state {word:#x})");
  died
}

// ---- the models, on the fixed protocol ------------------------------------------------------------

const NEVER: u32 = u32::MAX;

#[test]
fn model_1_a_sample_is_freed_once_by_its_last_holder_or_a_sweep() {
  for other in [Other::Subscriber, Other::History] {
    for_each_stop(&format!("model 1 ({other:?})"), Some(4), move |stop| {
      refcount(Proto::FIXED, other, stop)
    });
  }
}

#[test]
fn model_2_a_position_is_taken_or_dropped_never_both() {
  for_each_stop("model 2 (one publish)", Some(4), |stop| {
    take_vs_drop(Proto::FIXED, 1, stop)
  });
}

#[test]
fn model_2_a_drop_finished_late_never_touches_a_reused_slot() {
  for_each_stop("model 2 (two publishes)", Some(3), |stop| {
    take_vs_drop(Proto::FIXED, 2, stop)
  });
}

#[test]
fn model_3_a_joiner_receives_exactly_what_it_is_given() {
  for_each_stop("model 3", Some(4), |stop| {
    join_vs_publish(Proto::FIXED, stop)
  });
}
// ---- each model fails on a broken protocol ------------------------------------------------------

#[test]
fn model_1_fails_when_a_reference_is_cleared_with_a_plain_store() {
  assert_fails("model 1, plain clear", Some(3), "never went back", || {
    refcount(Proto::with(Mutation::PlainClear), Other::Subscriber, NEVER)
  });
}

#[test]
fn model_1_fails_when_the_sweep_skips_orphans() {
  // S1 dies right after clearing the last bit.
  assert_fails(
    "model 1, no orphan sweep",
    Some(3),
    "never went back",
    || refcount(Proto::with(Mutation::NoOrphanSweep), Other::Subscriber, 1),
  );
}

#[test]
fn model_1_fails_when_the_sweep_frees_an_orphan_without_adopting_it() {
  assert_fails(
    "model 1, sweep frees by store",
    Some(3),
    "freed twice",
    || {
      refcount(
        Proto::with(Mutation::SweepFreesByStore),
        Other::Subscriber,
        NEVER,
      )
    },
  );
}

/// Deciding "I was the last" from a reload of the mask ("the mask is zero") instead of from the
/// AND ("the mask became zero") lets two holders both try to free the slot; the pool's adopt, a
/// compare-and-swap from in flight at the record's generation, lets only one of them do it. So
/// this mutation is harmless, and the model says so.
#[test]
fn model_1_deciding_last_from_a_reload_of_the_mask_is_absorbed_by_the_adopt() {
  for_each_stop("model 1, last by reload", Some(4), |stop| {
    refcount(Proto::with(Mutation::LastByReload), Other::Subscriber, stop)
  });
}

#[test]
fn model_2_an_unlocked_finish_of_a_drop_loses_a_bit_on_a_reused_slot() {
  assert_fails(
    "model 2, unlocked finish",
    Some(2),
    "without the taker's bit",
    || take_vs_drop(Proto::UNLOCKED_FINISH, 2, NEVER),
  );
}

#[test]
fn model_2_fails_when_a_drop_clears_the_bit_before_moving_the_cursor() {
  assert_fails(
    "model 2, clear before cursor CAS",
    Some(3),
    "without the taker's bit",
    || take_vs_drop(Proto::with(Mutation::ClearBeforeCursorCas), 1, NEVER),
  );
}

#[test]
fn model_2_fails_when_a_take_reads_the_entry_after_its_cas() {
  assert_fails(
    "model 2, entry after CAS",
    Some(2),
    "without the taker's bit",
    || take_vs_drop(Proto::with(Mutation::EntryAfterCas), 2, NEVER),
  );
}

#[test]
fn model_2_fails_when_a_take_moves_the_cursor_with_a_store() {
  assert_fails(
    "model 2, take by store",
    Some(3),
    "without the taker\'s bit",
    || take_vs_drop(Proto::with(Mutation::TakeByStore), 1, NEVER),
  );
}

#[test]
fn model_3_fails_when_subscribe_reads_head_before_the_lock() {
  assert_fails(
    "model 3, head before lock",
    Some(2),
    "without the taker's bit",
    || join_vs_publish(Proto::with(Mutation::HeadBeforeLock), NEVER),
  );
}

#[test]
fn model_3_fails_when_publish_reads_active_before_the_lock() {
  assert_fails(
    "model 3, active before lock",
    Some(2),
    "without the taker's bit",
    || join_vs_publish(Proto::with(Mutation::ActiveBeforeLock), NEVER),
  );
}

#[test]
fn model_3_fails_when_head_is_stored_before_the_ring_entry() {
  assert_fails(
    "model 3, commit before entry",
    Some(2),
    "never took a sample",
    || join_vs_publish(Proto::with(Mutation::CommitBeforeEntry), NEVER),
  );
}

#[test]
fn model_3_fails_when_repair_trusts_the_ring_entry_over_head() {
  // The publisher dies right after writing the ring entry.
  assert_fails(
    "model 3, repair by entry",
    Some(2),
    "is not in flight",
    || join_vs_publish(Proto::with(Mutation::RepairByEntry), 4),
  );
}

#[test]
fn model_3_fails_when_repair_skips_the_history_redo() {
  // The publisher dies right after storing HEAD.
  assert_fails("model 3, no history redo", Some(2), "leaked", || {
    join_vs_publish(Proto::with(Mutation::NoHistoryRedo), 5)
  });
}

#[test]
fn model_3_fails_when_a_takeover_skips_the_orphan_sweep() {
  // The publisher dies right after clearing the history bit, the last reference.
  assert_fails("model 3, no takeover sweep", Some(2), "leaked", || {
    join_vs_publish(Proto::with(Mutation::NoTakeoverSweep), 6)
  });
}
