'use strict'

// Topic: publish/subscribe over a pool. A published slot is read in place by every subscriber
// subscribed when it was published, and goes back to the pool when the last of them releases it.
//
// Shared state, in the topic's table (a SharedArrayBuffer, or a mapped table file next to a
// file-backed pool), 32-bit words:
//   - a ring of `ringSize` entries (a power of two ≥ 2 × capacity): [position, slot, generation,
//     length] of each published sample, and HEAD, the next position (positions are 30-bit and wrap);
//   - per subscriber: its cursor (the next position it reads) and the participant it belongs to;
//   - per pool slot, a record [generation, mask]: the mask has a bit per subscriber still holding
//     a reference to the slot's sample (and the HISTORY bit while the topic keeps it for late
//     joiners). Whoever clears the last bit returns the slot to the pool;
//   - per pool participant entry, the token and a claim count (how participants are told apart);
//   - a lock serializing publishes, subscribes and unsubscribes, and its journal.
//
// A published slot is handed off (pool state "in flight", generation g+1): no participant owns it,
// so no death returns it to the pool behind the topic's back; only a mask emptied by its last
// holder does, by adopting and releasing it.
//
// Ownership of a subscriber's reference to the sample at position c is settled by one
// compare-and-swap of that subscriber's cursor from c: the subscriber taking it, or a drop-oldest
// publisher dropping it (which sets the PENDING bit with the swap; whoever finds PENDING, holding
// the lock, clears the subscriber's bit for that sample, at most once because the bit is cleared
// with an atomic AND, and then clears PENDING).
//
// Death at any instruction:
//   - a publisher dying inside the lock leaves the lock naming it: the next participant that
//     needs the lock finds the holder dead (its participant entry holds another token or claim),
//     takes the lock over and repairs from the journal: an uncommitted publish (HEAD not moved)
//     is undone (its slot adopted and released if it was handed off), a committed one has its
//     history step redone (idempotent);
//   - a subscriber dying (thread exit, terminate(), a killed process) is retired by whoever finds
//     it dead (a blocked publisher, a drop, subscribe, stats, close): its bit is cleared from
//     every record, freeing the slots it was the last holder of. Retiring is idempotent, so a
//     retirer dying half-way leaves work the next one redoes;
//   - a slot whose mask is empty but that is still in flight at its record's generation (its last
//     holder died between clearing its bit and releasing the slot) is released by that retiring.
//
// Nothing read from the table is trusted: every index is bounds-checked, and a record or entry
// that does not match what the reader expects is skipped (counted as stray), never followed.

const { binding, OFFSETS, LAYOUT_VERSION, SITE_TABLE_WAIT, TABLE_WAIT_WORD, poolAdopt, poolRelease } = require('./native.js')
const { makeError, abortError, invalidThis, describe } = require('./errors.js')
const {
  checkInteger, checkOptionsObject, checkTimeout, checkSignal, checkSpin, checkLength,
  checkName, checkDir, checkFileOptions, checkAllowForeignOwner,
} = require('./options.js')
const { isLease } = require('./lease.js')
const { nativeCall } = require('./region.js')
const { SharedPool, isPool, newUid } = require('./pool.js')
const { WaitSite, FileWaitSite, parkSync, parkAsync, spinBriefly } = require('./wait.js')
const { Table, readPair, addPair, describePool, Participants, createTableFile, openTableFile } = require('./table.js')
const codec = require('./codec.js')

const TOPIC_KIND = 'sabpool.topic'
/** 'TPC1': the table of a topic of this format. */
const TABLE_FORMAT = 0x31435054

// ---- table layout (word indexes) ------------------------------------------------------------
const T_FORMAT = 0
const T_SLOTS = 1
const T_PARTICIPANTS = 2
const T_CAPACITY = 3
const T_MAX_SUBS = 4
const T_HISTORY = 5
const T_FLAGS = 6
const T_UID = 7
/** Wait words: the first two of a table file's native wait sites (table words 8 and 9). */
const W_PUBLISHED = TABLE_WAIT_WORD
const W_ROOM = TABLE_WAIT_WORD + 1
/** Random id of the pool the topic belongs to (words 10 and 11 stay free for two more wait words). */
const T_POOL_UID = 12
const T_HEAD = 16
const T_CLOSED = 17
const T_ACTIVE = 18
const T_SUB_WAITERS = 19
const T_PUB_WAITERS = 20
const T_LOCK = 21
const T_J_KIND = 22
const T_J_POS = 23
const T_J_SLOT = 24
const T_J_GEN = 25
const T_RING = 26
/** Counters from word 32: a word pair each. `delivered`/`dropped` hold retired subscribers' counts. */
const STATS_WORD = 32
const STAT_NAMES = ['published', 'delivered', 'dropped', 'stray', 'retired']
const S = Object.fromEntries(STAT_NAMES.map((name, i) => [name, i]))
/** Per pool participant entry: [token low, token high, claim count, unused]. */
const PART_WORD = 64
const PART_WORDS = 4
/** Per subscriber (a 64-byte line each): */
const SUB_WORDS = 16
const S_STATE = 0
const S_CURSOR = 1
const S_PART = 2
const S_CLAIM = 3
const S_DELIVERED = 4 // word pair
const S_DROPPED = 6 // word pair
const S_SERIAL = 8
/** Per ring entry: */
const RING_WORDS = 4
const E_POS = 0
const E_SLOT = 1
const E_GEN = 2
const E_LENGTH = 3
/** Per pool slot: [generation, mask, checksum, unused]. */
const RECORD_WORDS = 4
const R_GEN = 0
const R_MASK = 1
const R_SUM = 2

const SUB_FREE = 0
const SUB_ACTIVE = 1
const FLAG_DROP_OLDEST = 1
const FLAG_CHECK_WRITES = 2
const J_NONE = 0
const J_PUBLISH = 1

const POS_MASK = 0x3fffffff
/** Set in a cursor by a drop-oldest publisher that took the subscriber's oldest sample. */
const PENDING = 0x40000000
/** The mask bit of the topic's own reference to the samples it keeps for late joiners. */
const HISTORY_BIT = 1 << 31
const MAX_SUBSCRIBERS = 31
/** A lock value: participant index + 1 (13 bits) and the entry's claim count (19 bits). */
const LOCK_INDEX_BITS = 13
const CLAIM_MASK = 0x7ffff

// Slot states (the low byte of a slot's state word; see the core's words.rs).
const STATE_IN_FLIGHT = 3

/** How often, at most, a waiting or dropping participant looks for dead subscribers. */
const CHECK_MS = 50
/** Native site numbers of those two wait words. */
const SITE_PUBLISHED = SITE_TABLE_WAIT
const SITE_ROOM = SITE_TABLE_WAIT + 1

/** Tests of death at every step (child processes only): SABPOOL_TEST_TOPIC_DIE_AT names the step
 * at which this process kills itself, after SABPOOL_TEST_TOPIC_DIE_SKIP earlier passes of it. */
const DIE_AT = process.env.SABPOOL_TEST_TOPIC_DIE_AT
let dieSkip = Number(process.env.SABPOOL_TEST_TOPIC_DIE_SKIP) || 0

function crashPoint(step) {
  if (DIE_AT === step && dieSkip-- <= 0) process.kill(process.pid, 'SIGKILL')
}

function ceilPow2(n) {
  return n <= 2 ? 2 : 2 ** Math.ceil(Math.log2(n))
}

function layoutOf(slots, participants, maxSubs, ringSize) {
  const subsWord = PART_WORD + alignLine(PART_WORDS * participants)
  const ringWord = subsWord + SUB_WORDS * maxSubs
  const recordsWord = ringWord + RING_WORDS * ringSize
  return { subsWord, ringWord, recordsWord, words: recordsWord + RECORD_WORDS * slots }
}

function alignLine(words) {
  return Math.ceil(words / 16) * 16
}

/** FNV-1a over bytes [0, length): the checksum `checkWrites` compares. */
function checksum(bytes, length) {
  let h = 0x811c9dc5
  for (let i = 0; i < length; i++) h = Math.imul(h ^ bytes[i], 0x01000193)
  return h | 0
}

// ---- the shared core of a topic in this thread -------------------------------------------------

/**
 * Everything the operations need, for one topic as attached in this thread: the table, the pool,
 * the geometry read once from the table header (and checked), and this thread's participant.
 */
class TopicCore {
  constructor(pool, table, info, file) {
    const i32 = table.i32
    this.pool = pool
    this.state = pool._state
    this.table = table
    this.i32 = i32
    this.slots = info.slots
    this.participantCount = info.maxParticipants
    this.me = info.participant
    this.participants = new Participants(pool, info)
    this.capacity = Atomics.load(i32, T_CAPACITY)
    this.maxSubs = Atomics.load(i32, T_MAX_SUBS)
    this.history = Atomics.load(i32, T_HISTORY)
    const flags = Atomics.load(i32, T_FLAGS)
    this.dropOldest = (flags & FLAG_DROP_OLDEST) !== 0
    this.checkWrites = (flags & FLAG_CHECK_WRITES) !== 0
    this.ringSize = Atomics.load(i32, T_RING)
    this.ringMask = this.ringSize - 1
    const layout = layoutOf(this.slots, this.participantCount, this.maxSubs, this.ringSize)
    this.subsWord = layout.subsWord
    this.ringWord = layout.ringWord
    this.recordsWord = layout.recordsWord
    this.uid = Atomics.load(i32, T_UID) >>> 0
    this.poolI32 = new Int32Array(this.state.buffer)
    this.metaOffset = this.state.metaOffset
    this.isFile = file !== undefined
    this.tableRef = file?.ref
    this.attachment = file?.attachment
    this.name = file?.name
    this.dir = file?.dir
    this.claim = 0
    this.lockValue = 0
    this.checkedAt = -Infinity
    this.sleeper = undefined
    this.publishedSite = this.site(W_PUBLISHED, T_SUB_WAITERS, SITE_PUBLISHED)
    this.roomSite = this.site(W_ROOM, T_PUB_WAITERS, SITE_ROOM)
    this.claimEntry()
  }

  site(word, waiters, siteNumber) {
    const i32 = this.i32
    const spec = {
      i32,
      epochOffset: word * 4,
      register: (delta) => { Atomics.add(i32, waiters, delta) },
      noteWait: () => {},
      kind: 'topic',
      uid: this.uid,
      ref: () => this.tableRef,
      site: siteNumber,
      idle: () => this.checkDead(true),
    }
    return this.isFile ? new FileWaitSite(spec) : new WaitSite(spec)
  }

  /** Wakes every thread parked on wait word `word` (each subscriber needs each sample). */
  wakeAll(word, siteNumber) {
    Atomics.add(this.i32, word, 1)
    if (this.isFile) {
      try {
        binding.tableWake(this.tableRef, siteNumber)
      } catch {
        // detached: nobody of this thread waits any more
      }
    } else {
      Atomics.notify(this.i32, word)
    }
  }

  /**
   * Records this thread's participant token in the table (once per participant): the claim count
   * moves on whenever another participant takes over the entry, so a lock or subscription of an
   * earlier, dead one of the same entry is told apart from ours.
   */
  claimEntry() {
    const i32 = this.i32
    const [low, high] = this.participants.token(this.me)
    const at = PART_WORD + PART_WORDS * this.me
    if (Atomics.load(i32, at) !== low || Atomics.load(i32, at + 1) !== high) {
      // Token first, then the claim: a checker that sees our token with the old claim believes
      // the old holder alive for a moment, never the other way round.
      Atomics.store(i32, at, low)
      Atomics.store(i32, at + 1, high)
      Atomics.add(i32, at + 2, 1)
    }
    this.claim = Atomics.load(i32, at + 2) & CLAIM_MASK
    this.lockValue = ((this.claim << LOCK_INDEX_BITS) | (this.me + 1)) | 0
  }

  /** Whether the participant of entry `index` that made claim `claim` is still alive. */
  alive(index, claim) {
    if (index < 0 || index >= this.participantCount) return false
    const i32 = this.i32
    const at = PART_WORD + PART_WORDS * index
    if ((Atomics.load(i32, at + 2) & CLAIM_MASK) !== claim) return false
    return this.participants.holds(index, Atomics.load(i32, at), Atomics.load(i32, at + 1))
  }

  /** File-backed: tears down participants of dead processes first (their entries look alive). */
  reclaimDeadProcesses() {
    if (!this.isFile) return
    try {
      binding.poolReclaimDead(this.state.ref)
    } catch {
      // detached meanwhile: the calls that follow fail on their own
    }
  }

  // ---- the lock ----

  /** Takes the lock if it is free or its holder is dead; false if a live participant holds it. */
  tryLock() {
    const i32 = this.i32
    const mine = this.lockValue
    const held = Atomics.compareExchange(i32, T_LOCK, 0, mine)
    if (held === 0) {
      if (Atomics.load(i32, T_J_KIND) !== J_NONE) this.repair()
      return true
    }
    if (held === mine) return false // never re-entered: only a scribble, or our own dead claim
    const index = (held & ((1 << LOCK_INDEX_BITS) - 1)) - 1
    const claim = (held >>> LOCK_INDEX_BITS) & CLAIM_MASK
    if (this.alive(index, claim)) return false
    if (Atomics.compareExchange(i32, T_LOCK, held, mine) !== held) return false
    // The dead holder may have been anywhere: in a publish (the journal says), or freeing a slot.
    this.repair()
    this.sweep(0)
    return true
  }

  /** Takes the lock, spinning and then sleeping briefly (it is held for a few microseconds). */
  lockSync() {
    for (let i = 0; ; i++) {
      if (this.tryLock()) return
      if (i === 64 || (i > 64 && (i & 63) === 0)) this.reclaimDeadProcesses()
      if (i > 32) this.nap()
    }
  }

  /** Sleeps about 50 µs without a wake-up (a lock holder runs a handful of stores). */
  nap() {
    this.sleeper ??= new Int32Array(new SharedArrayBuffer(4))
    Atomics.wait(this.sleeper, 0, 0, 0.05)
  }

  unlock() {
    Atomics.store(this.i32, T_LOCK, 0)
  }

  /** Under the lock: finishes or undoes what a dead holder left half-done. */
  repair() {
    const i32 = this.i32
    const kind = Atomics.load(i32, T_J_KIND)
    if (kind === J_PUBLISH) {
      const pos = Atomics.load(i32, T_J_POS) & POS_MASK
      const slot = Atomics.load(i32, T_J_SLOT)
      const generation = Atomics.load(i32, T_J_GEN) >>> 0
      const head = Atomics.load(i32, T_HEAD) & POS_MASK
      if (head === pos) {
        // Not committed: undo. The slot was still the publisher's (its death returns it) or handed off.
        if (slot >= 0 && slot < this.slots) {
          const rec = this.recordsWord + RECORD_WORDS * slot
          if ((Atomics.load(i32, rec + R_GEN) >>> 0) === generation) Atomics.store(i32, rec + R_MASK, 0)
          if (this.inFlightAt(slot, generation)) this.freeSlot(slot, generation)
        }
      } else if (((head - pos) & POS_MASK) === 1) {
        this.dropHistoryBefore(head)
      }
    }
    Atomics.store(i32, T_J_KIND, J_NONE)
  }

  // ---- slots and references ----

  /** Whether pool slot `slot` is in flight at `generation` (handed off, adopted by nobody yet). */
  inFlightAt(slot, generation) {
    const at = (this.metaOffset + slot * OFFSETS.metaSize + OFFSETS.metaWord) >>> 2
    return (Atomics.load(this.poolI32, at) & 0xff) === STATE_IN_FLIGHT &&
      (Atomics.load(this.poolI32, at + 1) >>> 0) === generation
  }

  /** Returns an in-flight slot to the pool (adopt, then release); false if it moved on already. */
  freeSlot(slot, generation) {
    const ref = this.state.ref
    if (poolAdopt(ref, slot, generation) < 0) return false
    const status = poolRelease(ref, slot, generation)
    if (status === 1) this.state.notifyFree()
    return status >= 0
  }

  /**
   * Drops reference `bit` to the sample in `slot` at `generation`. Returns 0 if that reference
   * was not held (dropped already, or the record moved on), 1 if dropped, 2 if it was the last
   * one and the slot went back to the pool.
   */
  dropRef(slot, generation, bit) {
    const i32 = this.i32
    const rec = this.recordsWord + RECORD_WORDS * slot
    if ((Atomics.load(i32, rec + R_GEN) >>> 0) !== generation) return 0
    const before = Atomics.and(i32, rec + R_MASK, ~bit)
    if ((before & bit) === 0) return 0
    if ((before & ~bit) !== 0) return 1
    if (DIE_AT !== undefined) crashPoint('release:last')
    this.freeSlot(slot, generation)
    return 2
  }

  /** Under the lock, after the publish of position `head - 1` committed: the topic lets go of
   * the sample that fell out of its history. Idempotent (a repair may run it again). */
  dropHistoryBefore(head) {
    if (this.history === 0) return
    const old = (head - 1 - this.history) & POS_MASK
    const e = this.ringWord + RING_WORDS * (old & this.ringMask)
    const i32 = this.i32
    if ((Atomics.load(i32, e + E_POS) & POS_MASK) !== old) return
    const slot = Atomics.load(i32, e + E_SLOT)
    if (slot < 0 || slot >= this.slots) return
    this.dropRef(slot, Atomics.load(i32, e + E_GEN) >>> 0, HISTORY_BIT)
  }

  // ---- subscribers ----

  subAt(index) {
    return this.subsWord + SUB_WORDS * index
  }

  /**
   * Under the lock: finishes a drop a publisher began on subscriber `index` (the PENDING bit of
   * its cursor): the subscriber's reference to the dropped sample is cleared and counted, then
   * PENDING. (Without the lock, a finisher stalled between checking the record's generation and
   * clearing the bit could clear it on a later sample of the same slot: the loom model of take
   * against drop-oldest finds that interleaving.)
   */
  finishDrop(index) {
    const i32 = this.i32
    const at = this.subAt(index)
    const word = Atomics.load(i32, at + S_CURSOR)
    if ((word & PENDING) === 0) return
    const dropped = ((word & POS_MASK) - 1) & POS_MASK
    const e = this.ringWord + RING_WORDS * (dropped & this.ringMask)
    if ((Atomics.load(i32, e + E_POS) & POS_MASK) === dropped) {
      const slot = Atomics.load(i32, e + E_SLOT)
      if (slot >= 0 && slot < this.slots && this.dropRef(slot, Atomics.load(i32, e + E_GEN) >>> 0, 1 << index) !== 0) {
        addPair(i32, at + S_DROPPED, 1)
      }
    }
    Atomics.compareExchange(i32, at + S_CURSOR, word, word & ~PENDING)
  }

  /**
   * Under the lock: retires subscriber `index` (unsubscribed, or found dead): no publish counts it
   * any more, and its reference to every sample it held or had queued is dropped. Idempotent.
   */
  retire(index) {
    const i32 = this.i32
    const bit = 1 << index
    const at = this.subAt(index)
    Atomics.and(i32, T_ACTIVE, ~bit)
    this.sweep(bit)
    // Its counts move to the topic's, so the totals survive the entry's reuse.
    this.table.count(S.delivered, readPair(i32, at + S_DELIVERED))
    this.table.count(S.dropped, readPair(i32, at + S_DROPPED))
    for (let w = 1; w < SUB_WORDS; w++) Atomics.store(i32, at + w, 0)
    this.table.count(S.retired)
    Atomics.store(i32, at + S_STATE, SUB_FREE)
    // A publisher waiting for this subscriber's room may go on.
    if (Atomics.load(i32, T_PUB_WAITERS) > 0) this.wakeAll(W_ROOM, SITE_ROOM)
  }

  /**
   * Drops reference `bit` (0: none) from every sample, and returns to the pool every sample slot
   * nobody references any more that is still in flight: its last holder died between clearing its
   * bit and releasing the slot. (A slot being published has its mask set before its handoff, so
   * an empty mask on an in-flight slot of this record's generation is always such an orphan; a
   * holder releasing it right now loses the race harmlessly, its adopt finding the slot moved on.)
   */
  sweep(bit) {
    const i32 = this.i32
    for (let slot = 0; slot < this.slots; slot++) {
      const rec = this.recordsWord + RECORD_WORDS * slot
      const mask = Atomics.load(i32, rec + R_MASK)
      if (mask !== 0 && (mask & bit) === 0) continue
      const generation = Atomics.load(i32, rec + R_GEN) >>> 0
      if (!this.inFlightAt(slot, generation)) continue
      if (mask === 0) this.freeSlot(slot, generation)
      else this.dropRef(slot, generation, bit)
      if (DIE_AT !== undefined) crashPoint('retire:sweep')
    }
  }

  /** Whether subscriber `index` is active and its participant alive. */
  subscriberAlive(index) {
    const i32 = this.i32
    const at = this.subAt(index)
    return Atomics.load(i32, at + S_STATE) === SUB_ACTIVE &&
      (Atomics.load(i32, T_ACTIVE) & (1 << index)) !== 0 &&
      this.alive(Atomics.load(i32, at + S_PART), Atomics.load(i32, at + S_CLAIM))
  }

  /** Under the lock: retires every subscriber whose participant is gone (or half-retired). */
  retireDead() {
    const i32 = this.i32
    for (let i = 0; i < this.maxSubs; i++) {
      if (Atomics.load(i32, this.subAt(i) + S_STATE) === SUB_FREE) continue
      if (!this.subscriberAlive(i)) this.retire(i)
    }
  }

  /**
   * Looks for dead subscribers, at most every CHECK_MS unless `force`d by a park slice that ran
   * out. Takes the lock only if it is free (or its holder dead): whoever holds it is busy with a
   * publish or a subscription, and the next check comes soon.
   */
  checkDead(force) {
    const now = performance.now()
    if (!force && now - this.checkedAt < CHECK_MS) return
    this.checkedAt = now
    this.reclaimDeadProcesses()
    if (!this.tryLock()) return
    try {
      this.retireDead()
    } finally {
      this.unlock()
    }
  }

  // ---- publishing ----

  /**
   * Under the lock: makes room at position `head` for every active subscriber. Returns false if
   * one of them has `capacity` unread samples (block mode). Drop-oldest mode drops their oldest.
   */
  makeRoom(head) {
    const i32 = this.i32
    const capacity = this.capacity
    let active = Atomics.load(i32, T_ACTIVE) & ((2 ** this.maxSubs) - 1)
    while (active !== 0) {
      const bit = active & -active
      active ^= bit
      const index = 31 - Math.clz32(bit)
      const at = this.subAt(index)
      for (let tries = 0; ; tries++) {
        const word = Atomics.load(i32, at + S_CURSOR)
        if ((word & PENDING) !== 0) {
          this.finishDrop(index)
          continue
        }
        if (((head - word) & POS_MASK) < capacity) break
        if (tries === 0 && performance.now() - this.checkedAt >= CHECK_MS) {
          // A full subscriber may be a dead one: look before waiting for (or dropping on) it.
          this.checkedAt = performance.now()
          this.reclaimDeadProcesses()
          if (!this.subscriberAlive(index)) {
            this.retire(index)
            break
          }
        }
        if (!this.dropOldest) return false
        // Take the oldest sample from the subscriber, or lose the race to its own take and look again.
        if (Atomics.compareExchange(i32, at + S_CURSOR, word, ((word + 1) & POS_MASK) | PENDING) === word) {
          if (DIE_AT !== undefined) crashPoint('drop:cursor')
          this.finishDrop(index)
        }
        if (tries > 1 << 20) throw makeError('ERR_SABPOOL_CONTENDED', 'publish: a subscriber cursor kept changing (shared memory is being scribbled on)')
      }
    }
    return true
  }

  /**
   * One publish attempt: the lease's slot becomes sample HEAD, with a reference for every active
   * subscriber (and the history). Returns how many subscribers it reached, or -1 when a
   * subscriber is full (block mode; the lease stays the caller's).
   */
  tryPublish(lease, length) {
    const i32 = this.i32
    this.lockSync()
    try {
      if (Atomics.load(i32, T_CLOSED) !== 0) throw closedError('publish')
      const head = i32[T_HEAD] & POS_MASK // only lock holders write it
      if (!this.makeRoom(head)) return -1
      const active = Atomics.load(i32, T_ACTIVE) & ((2 ** this.maxSubs) - 1)
      const mask = active | (this.history > 0 ? HISTORY_BIT : 0)
      const slot = lease.slot
      if (mask === 0) {
        // Nobody to deliver to and nothing to keep: the slot goes straight back.
        lease.release()
        this.countPublished()
        return 0
      }
      const generation = (lease.generation + 1) >>> 0 // what the handoff below moves it to
      const rec = this.recordsWord + RECORD_WORDS * slot
      // Plain stores, no fences: the record and the ring entry are published to subscribers by
      // the sequentially consistent store of HEAD, and to the next lock holder by the unlock. The
      // journal is read by a participant that takes the lock over from this one only once this
      // participant is seen gone: its entry's token changed (written with release ordering after
      // everything this thread did, when it is torn down) or its process died (the kernel makes
      // a dead process's stores visible). A JS Atomics.store is a full fence each.
      i32[T_J_POS] = head
      i32[T_J_SLOT] = slot
      i32[T_J_GEN] = generation
      i32[T_J_KIND] = J_PUBLISH
      if (DIE_AT !== undefined) crashPoint('publish:journal')
      i32[rec + R_GEN] = generation
      if (this.checkWrites) i32[rec + R_SUM] = checksum(lease.bytes, length)
      i32[rec + R_MASK] = mask // the slot is ours: nobody else touches its record now
      if (DIE_AT !== undefined) crashPoint('publish:record')
      let moved
      try {
        moved = lease._handoffQuiet(length)
      } catch (error) {
        i32[rec + R_MASK] = 0
        i32[T_J_KIND] = J_NONE
        throw error
      }
      if (moved !== generation) {
        // Only a scribble on the slot's word could do this: give the slot back, publish nothing.
        i32[rec + R_MASK] = 0
        i32[T_J_KIND] = J_NONE
        this.freeSlot(slot, moved)
        throw makeError('ERR_SABPOOL_CORRUPT', 'publish: the slot moved to an unexpected generation (shared memory was scribbled on)')
      }
      if (DIE_AT !== undefined) crashPoint('publish:handoff')
      const e = this.ringWord + RING_WORDS * (head & this.ringMask)
      i32[e + E_SLOT] = slot
      i32[e + E_GEN] = generation
      i32[e + E_LENGTH] = length
      i32[e + E_POS] = head
      const next = (head + 1) & POS_MASK
      Atomics.store(i32, T_HEAD, next) // the commit
      if (DIE_AT !== undefined) crashPoint('publish:commit')
      this.dropHistoryBefore(next)
      i32[T_J_KIND] = J_NONE
      this.countPublished()
      if (Atomics.load(i32, T_SUB_WAITERS) > 0) this.wakeAll(W_PUBLISHED, SITE_PUBLISHED)
      return popcount(active)
    } finally {
      this.unlock()
    }
  }

  /** Under the lock: one more sample published (only lock holders write the counter). */
  countPublished() {
    const i32 = this.i32
    const at = STATS_WORD + 2 * S.published
    const low = (i32[at] + 1) | 0
    i32[at] = low
    if (low === 0) i32[at + 1] = (i32[at + 1] + 1) | 0
  }

  // ---- closing ----

  close() {
    const i32 = this.i32
    this.lockSync()
    let wasOpen
    try {
      wasOpen = Atomics.exchange(i32, T_CLOSED, 1) === 0
      if (wasOpen && this.history > 0) {
        // The samples kept for late joiners: nobody can join any more.
        const head = Atomics.load(i32, T_HEAD) & POS_MASK
        for (let k = 1; k <= this.history; k++) this.dropHistoryBefore((head + this.history - k + 1) & POS_MASK)
      }
      this.retireDead()
    } finally {
      this.unlock()
    }
    this.wakeAll(W_PUBLISHED, SITE_PUBLISHED)
    this.wakeAll(W_ROOM, SITE_ROOM)
    return wasOpen
  }

  get closed() {
    return Atomics.load(this.i32, T_CLOSED) !== 0
  }
}

function popcount(x) {
  x -= (x >>> 1) & 0x55555555
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333)
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24)
}

function closedError(what) {
  return makeError('ERR_SABPOOL_CLOSED', `${what}: the topic is closed`)
}

// ---- samples ---------------------------------------------------------------------------------

let isSample
/** The pool state of a sample still held; ERR_INVALID_THIS on anything but a Sample,
 * ERR_SABPOOL_STALE_LEASE once released (`what` names the member in the error). */
let heldState

/**
 * One published sample as a subscriber sees it: `bytes` is the slot's memory, shared with every
 * other subscriber of it. Read it, never write it; `release()` when done.
 */
class Sample {
  #sub
  #slot
  #generation
  #length
  #seq
  #released = false

  static {
    isSample = (value) => value !== null && typeof value === 'object' && #released in value
    heldState = (sample, what) => {
      if (!isSample(sample)) throw invalidThis('Sample', what, sample)
      if (sample.#released || !sample.#sub._holds()) {
        throw makeError('ERR_SABPOOL_STALE_LEASE', `${what}: this sample was already released (slot ${sample.#slot})`)
      }
      return sample.#sub._core.state
    }
  }

  /** @internal */
  constructor(sub, slot, generation, length, seq) {
    this.#sub = sub
    this.#slot = slot
    this.#generation = generation
    this.#length = length
    this.#seq = seq
  }

  /** The slot's bytes (slotSize of them; the sample is the first `length`). Read only. */
  get bytes() {
    return heldState(this, 'bytes').view(this.#slot)
  }

  get length() {
    if (!isSample(this)) throw invalidThis('Sample', 'length', this)
    return this.#length
  }

  /** As `lease.readString`: UTF-8 from `offset`, `length` bytes (default: to the end of the sample). */
  readString(offset, length) {
    const state = heldState(this, 'readString')
    return codec.readString(state.bufferView(this.#slot), state.slotSize, this.#length, offset, length)
  }

  /** As `lease.readJSON`. */
  readJSON() {
    const state = heldState(this, 'readJSON')
    return codec.parseJSON(codec.readString(state.bufferView(this.#slot), state.slotSize, this.#length, 0, this.#length, 'readJSON'), 'readJSON')
  }

  /** As `lease.readValue`. */
  readValue() {
    const state = heldState(this, 'readValue')
    return codec.deserialize(state.view(this.#slot), this.#length, 'readValue')
  }

  /** As `lease.view`: a typed array over the sample's slot. Shared with the other subscribers: read only. */
  view(Ctor, byteOffset, length) {
    const state = heldState(this, 'view')
    return codec.view(state.buffer, state.slotByteOffset(this.#slot), state.slotSize, Ctor, byteOffset, length)
  }

  /** Position of the sample in the topic (30 bits, wrapping): consecutive samples differ by 1. */
  get seq() {
    if (!isSample(this)) throw invalidThis('Sample', 'seq', this)
    return this.#seq
  }

  get slot() {
    if (!isSample(this)) throw invalidThis('Sample', 'slot', this)
    return this.#slot
  }

  get released() {
    if (!isSample(this)) throw invalidThis('Sample', 'released', this)
    return this.#released
  }

  /**
   * Lets go of the sample; the last subscriber to do so returns the slot to the pool. With the
   * topic's `checkWrites`, throws ERR_SABPOOL_SAMPLE_WRITTEN (after releasing) if the bytes
   * changed since they were published.
   */
  release() {
    let released
    try {
      released = this.#released
    } catch {
      throw invalidThis('Sample', 'release', this)
    }
    if (released) throw makeError('ERR_SABPOOL_STALE_LEASE', `release: this sample was already released (slot ${this.#slot})`)
    this.#released = true
    const sub = this.#sub
    if (!sub._holds()) return // unsubscribed: its references were dropped then
    const core = sub._core
    let written = false
    if (core.checkWrites) {
      const rec = core.recordsWord + RECORD_WORDS * this.#slot
      written = Atomics.load(core.i32, rec + R_SUM) !== checksum(core.state.view(this.#slot), this.#length)
    }
    core.dropRef(this.#slot, this.#generation, 1 << sub._index)
    if (written) {
      throw makeError('ERR_SABPOOL_SAMPLE_WRITTEN', `release: the bytes of sample ${this.#seq} (slot ${this.#slot}) changed after it was published; subscribers must only read samples`)
    }
  }

  [Symbol.for('nodejs.util.inspect.custom')]() {
    if (!isSample(this)) return 'Sample <not a sample>'
    return `Sample { seq: ${this.#seq}, slot: ${this.#slot}, length: ${this.#length}${this.#released ? ', released' : ''} }`
  }
}

// ---- subscriptions -----------------------------------------------------------------------------

/** Retires subscriptions that were garbage-collected without unsubscribe(). */
const abandoned = new FinalizationRegistry(({ core, index, serial }) => {
  try {
    core.lockSync()
    try {
      const at = core.subAt(index)
      if (Atomics.load(core.i32, at + S_STATE) === SUB_ACTIVE && Atomics.load(core.i32, at + S_SERIAL) === serial &&
        Atomics.load(core.i32, at + S_PART) === core.me && Atomics.load(core.i32, at + S_CLAIM) === core.claim) {
        core.retire(index)
      }
    } finally {
      core.unlock()
    }
  } catch {
    // detached: the participant left, and the next check retires the subscriber
  }
})

let nextSerial = 1
let isSubscription

/**
 * One subscriber's view of a topic: a bounded queue of the samples published since it subscribed
 * (plus the history it joined with), read in order.
 */
class Subscription {
  #core
  #index
  #serial
  #active = true
  #token

  static {
    isSubscription = (value) => value !== null && typeof value === 'object' && #core in value
  }

  /** @internal */
  constructor(core, index, serial) {
    this.#core = core
    this.#index = index
    this.#serial = serial
    this.#token = {}
    abandoned.register(this, { core, index, serial }, this.#token)
  }

  /** @internal */
  get _core() {
    if (!isSubscription(this)) throw invalidThis('Subscription', '_core', this)
    return this.#core
  }

  /** @internal */
  get _index() {
    if (!isSubscription(this)) throw invalidThis('Subscription', '_index', this)
    return this.#index
  }

  /** @internal Whether this subscription still holds its references (not unsubscribed, not retired). */
  _holds() {
    if (!isSubscription(this)) throw invalidThis('Subscription', '_holds', this)
    if (!this.#active) return false
    const core = this.#core
    const at = core.subAt(this.#index)
    if (Atomics.load(core.i32, at + S_SERIAL) !== this.#serial || Atomics.load(core.i32, at + S_STATE) !== SUB_ACTIVE) {
      this.#active = false // retired by someone else (only a scribble or a false death verdict does that)
      return false
    }
    return true
  }

  /** The next sample, or undefined if none is queued. */
  #take() {
    const core = this.#core
    const i32 = core.i32
    const at = core.subAt(this.#index)
    for (;;) {
      const word = Atomics.load(i32, at + S_CURSOR)
      if ((word & PENDING) !== 0) {
        // A drop of our oldest sample is half done (its publisher died, or is finishing it now).
        // Only under the lock: records and ring entries change only there, so the slot of the
        // dropped sample cannot be republished between checking its record and clearing our bit.
        core.lockSync()
        try {
          core.finishDrop(this.#index)
        } finally {
          core.unlock()
        }
        continue
      }
      if (word === (Atomics.load(i32, T_HEAD) & POS_MASK)) return undefined
      const e = core.ringWord + RING_WORDS * (word & core.ringMask)
      const pos = Atomics.load(i32, e + E_POS) & POS_MASK
      const slot = Atomics.load(i32, e + E_SLOT)
      const generation = Atomics.load(i32, e + E_GEN) >>> 0
      const length = Atomics.load(i32, e + E_LENGTH)
      if (Atomics.compareExchange(i32, at + S_CURSOR, word, (word + 1) & POS_MASK) !== word) continue
      if (Atomics.load(i32, T_PUB_WAITERS) > 0) core.wakeAll(W_ROOM, SITE_ROOM)
      if (pos !== word || slot < 0 || slot >= core.slots || length < 0 || length > core.state.slotSize ||
        (Atomics.load(i32, core.recordsWord + RECORD_WORDS * slot + R_GEN) >>> 0) !== generation) {
        core.table.count(S.stray) // an entry no publisher wrote: nothing to release
        continue
      }
      addPair(i32, at + S_DELIVERED, 1)
      return new Sample(this, slot, generation, length, word)
    }
  }


  /** The next queued sample, or null if there is none now (or the subscription ended). */
  tryRecv() {
    if (!isSubscription(this)) throw invalidThis('Subscription', 'tryRecv', this)
    if (!this._holds()) return null
    return this.#take() ?? null
  }

  /**
   * Waits for the next sample, blocking this thread (meant for workers). Returns null once the
   * topic is closed and every sample queued for this subscription was read, or after unsubscribe().
   * @param {{ timeout?: number, spin?: number }} [options]
   */
  recvSync(options) {
    if (!isSubscription(this)) throw invalidThis('Subscription', 'recvSync', this)
    options = checkOptionsObject('options', options)
    const timeout = checkTimeout(options.timeout)
    const spin = checkSpin(options.spin)
    let sample = this.#attempt()
    if (sample !== undefined) return sample
    const core = this.#core
    const site = core.publishedSite
    const i32 = core.i32
    const at = core.subAt(this.#index) + S_CURSOR
    for (let budget = site.spin.budget(spin); budget > 0; budget--) {
      if (Atomics.load(i32, T_HEAD) !== Atomics.load(i32, at) || (budget & 63) === 0) {
        sample = this.#attempt()
        if (sample !== undefined) {
          site.spin.parked = false
          return sample
        }
      }
    }
    return this.#parkSync(timeout)
  }

  /** Kept apart so that its closure is only made when the thread parks. */
  #parkSync(timeout) {
    return parkSync(this.#core.publishedSite, () => this.#attempt(), timeout, 'recvSync')
  }

  /** A sample, null when the subscription has ended (closed and drained, or unsubscribed), or
   * undefined to keep waiting. */
  #attempt() {
    if (!this._holds()) return null
    const sample = this.#take()
    if (sample !== undefined) return sample
    if (this.#core.closed) return this.#take() ?? null
    return undefined
  }

  /**
   * Waits for the next sample without blocking the event loop; resolves null once the topic is
   * closed and drained, or after unsubscribe().
   * @param {{ timeout?: number, signal?: AbortSignal }} [options]
   */
  async recv(options) {
    if (!isSubscription(this)) throw invalidThis('Subscription', 'recv', this)
    options = checkOptionsObject('options', options)
    const timeoutOption = options.timeout
    const signalOption = options.signal
    const timeout = checkTimeout(timeoutOption)
    const signal = checkSignal(signalOption)
    if (signal !== undefined && signal.aborted) throw abortError(signal.target)
    const sample = this.#attempt()
    if (sample !== undefined) return sample
    return this.#parkAsync(timeout, signal)
  }

  /** The rest of `recv` once nothing was queued: a brief spin while such spins have been paying
   * off, then a park. */
  #parkAsync(timeout, signal) {
    const core = this.#core
    const site = core.publishedSite
    const policy = site.spin
    if (policy.spinAsync()) {
      this.#poll ??= this.#poller()
      const sample = spinBriefly(this.#poll) ? this.#attempt() : undefined
      policy.spun(sample !== undefined && sample !== null)
      if (sample !== undefined) return sample
    }
    return parkAsync(site, () => this.#attempt(), timeout, signal, 'recv')
  }

  #poll = undefined

  /** Polls until HEAD is no longer this subscription's cursor, at most `budget` times. */
  #poller() {
    const i32 = this.#core.i32
    const at = this.#core.subAt(this.#index) + S_CURSOR
    return (budget) => {
      for (let i = 0; i < budget; i++) if (Atomics.load(i32, T_HEAD) !== Atomics.load(i32, at)) return i + 1
      return budget
    }
  }

  /**
   * `for await (const sample of sub)`: ends when the subscription ends (the topic closed and
   * drained, or unsubscribe()) or the loop is left. A queued sample is taken at once, with no wait
   * and no promise beyond the one the protocol requires; only an empty queue waits.
   */
  [Symbol.asyncIterator]() {
    if (!isSubscription(this)) throw invalidThis('Subscription', '[Symbol.asyncIterator]', this)
    let finished = false
    const end = (sample) => {
      if (sample !== null) return { value: sample, done: false }
      finished = true
      return { value: undefined, done: true }
    }
    const next = () => {
      if (finished) return Promise.resolve({ value: undefined, done: true })
      let sample
      try {
        sample = this.#attempt()
      } catch (error) {
        return Promise.reject(error)
      }
      if (sample === undefined) return this.recv().then(end)
      return Promise.resolve(end(sample))
    }
    const stop = () => {
      finished = true
      return Promise.resolve({ value: undefined, done: true })
    }
    return { next, return: stop, [Symbol.asyncIterator]() { return this } }
  }

  /**
   * Ends the subscription: the samples still queued for it and those it holds are let go (held
   * Sample objects become stale; their release() does nothing more). False if it had ended.
   */
  unsubscribe() {
    if (!isSubscription(this)) throw invalidThis('Subscription', 'unsubscribe', this)
    if (!this._holds()) return false
    const core = this.#core
    this.#active = false
    abandoned.unregister(this.#token)
    core.lockSync()
    try {
      const at = core.subAt(this.#index)
      if (Atomics.load(core.i32, at + S_SERIAL) === this.#serial && Atomics.load(core.i32, at + S_STATE) === SUB_ACTIVE) core.retire(this.#index)
    } finally {
      core.unlock()
    }
    // A recv of this subscription parked in this thread learns it at once.
    core.wakeAll(W_PUBLISHED, SITE_PUBLISHED)
    return true
  }

  /** `{ lag, delivered, dropped }`: samples queued unread, taken, and dropped for this subscriber. */
  stats() {
    if (!isSubscription(this)) throw invalidThis('Subscription', 'stats', this)
    const core = this.#core
    const at = core.subAt(this.#index)
    if (!this._holds()) return { lag: 0, delivered: 0, dropped: 0, active: false }
    return { ...subscriberStats(core, at), active: true }
  }

  get active() {
    if (!isSubscription(this)) throw invalidThis('Subscription', 'active', this)
    return this._holds()
  }
}

function subscriberStats(core, at) {
  const i32 = core.i32
  const cursor = Atomics.load(i32, at + S_CURSOR) & POS_MASK
  return {
    lag: (Atomics.load(i32, T_HEAD) - cursor) & POS_MASK,
    delivered: readPair(i32, at + S_DELIVERED),
    dropped: readPair(i32, at + S_DROPPED),
  }
}

// ---- the topic ---------------------------------------------------------------------------------

const ATTACHED = Symbol('attached')
let isTopic

class Topic {
  static {
    isTopic = (value) => value !== null && typeof value === 'object' && #core in value
  }

  #core
  #handle

  /**
   * Publish/subscribe between threads over `pool`.
   * @param {SharedPool} pool
   * @param {{ capacity: number, maxSubscribers?: number, history?: number,
   *   onFull?: 'block' | 'drop-oldest', checkWrites?: boolean }} options
   */
  constructor(pool, options, attached) {
    if (pool === ATTACHED) {
      this.#core = attached.core
      this.#handle = attached.handle
      return
    }
    if (!isPool(pool)) throw makeError('ERR_INVALID_ARG_TYPE', `new Topic(pool, { capacity }) needs a SharedPool, got ${describe(pool)}`)
    if (pool._state.region.isFile) {
      throw makeError('ERR_SABPOOL_BAD_HANDLE', 'new Topic() is for in-process pools; use Topic.create(pool, { name }) for a file-backed pool')
    }
    const settings = topicSettings(options)
    const info = describePool(pool)
    const layout = layoutOf(info.slots, info.maxParticipants, settings.maxSubscribers, settings.ringSize)
    const buffer = new SharedArrayBuffer(layout.words * 4)
    const table = new Table(buffer, 0, layout.words, STATS_WORD)
    initTable(table.i32, info, settings)
    this.#core = new TopicCore(pool, table, info, undefined)
    this.#handle = Object.freeze({ kind: TOPIC_KIND, version: LAYOUT_VERSION, table: buffer, pool: pool.handle })
  }

  /**
   * Attaches to a topic made in another thread (`topic.handle`); `pool` is the topic's pool
   * attached in this thread (attached from the handle when omitted).
   */
  static attach(handle, pool, options) {
    options = checkOptionsObject('options', options)
    if (handle === null || typeof handle !== 'object' || handle.kind !== TOPIC_KIND) {
      throw makeError('ERR_SABPOOL_BAD_HANDLE', `Topic.attach needs a topic's handle (topic.handle), got ${describe(handle)}`)
    }
    const version = handle.version
    if (version !== LAYOUT_VERSION) {
      throw makeError('ERR_SABPOOL_BAD_HANDLE', `this handle has layout version ${version}; this sabpool reads version ${LAYOUT_VERSION}`)
    }
    const name = handle.name
    const buffer = handle.table
    const poolHandle = handle.pool
    if (pool === undefined || pool === null) pool = SharedPool.attach(poolHandle)
    else if (!isPool(pool)) throw makeError('ERR_INVALID_ARG_TYPE', `Topic.attach needs the topic's SharedPool, got ${describe(pool)}`)
    if (typeof name === 'string') return Topic.open(name, pool, { dir: handle.dir, allowForeignOwner: options.allowForeignOwner })
    if (!(buffer instanceof SharedArrayBuffer)) throw makeError('ERR_SABPOOL_BAD_HANDLE', "handle.table must be the topic's SharedArrayBuffer")
    if (pool._state.region.isFile) throw makeError('ERR_SABPOOL_BAD_HANDLE', 'this topic is in-process; its pool cannot be a file-backed one')
    const info = describePool(pool)
    const table = checkedTable(buffer, 0, buffer.byteLength >>> 2, info)
    const core = new TopicCore(pool, table, info, undefined)
    return new Topic(ATTACHED, undefined, { core, handle: Object.freeze({ kind: TOPIC_KIND, version: LAYOUT_VERSION, table: buffer, pool: pool.handle }) })
  }

  /**
   * Creates a topic for a file-backed pool (`SharedPool.create`), in a table file next to it, so
   * other processes can open it by name.
   * @param {{ name: string, capacity: number, maxSubscribers?: number, history?: number,
   *   onFull?: 'block' | 'drop-oldest', checkWrites?: boolean, dir?: string, mode?: number }} options
   */
  static create(pool, options) {
    checkFileTopicPool(pool, 'Topic.create')
    options = checkOptionsObject('options', options)
    const { name, dir, mode } = checkFileOptions(options)
    checkTopicName(name)
    const settings = topicSettings(options)
    const info = describePool(pool)
    const layout = layoutOf(info.slots, info.maxParticipants, settings.maxSubscribers, settings.ringSize)
    return createTableFile(pool, dir, tableName(name), layout.words, mode, (attachment, memory) => {
      const table = new Table(memory.buffer, memory.dataOffset, layout.words, STATS_WORD)
      initTable(table.i32, info, settings)
      return fileTopic(pool, name, dir, attachment, table, info)
    })
  }

  /**
   * Opens a topic a process made with `Topic.create`, for `pool` (the same pool, opened with
   * `SharedPool.open`).
   * @param {{ dir?: string, allowForeignOwner?: boolean }} [options]
   */
  static open(name, pool, options) {
    checkName(name)
    checkFileTopicPool(pool, 'Topic.open')
    options = checkOptionsObject('options', options)
    const dir = checkDir(options.dir)
    const allowForeignOwner = checkAllowForeignOwner(options.allowForeignOwner)
    checkTopicName(name)
    const info = describePool(pool)
    return openTableFile(pool, dir, tableName(name), allowForeignOwner, (attachment, memory) =>
      fileTopic(pool, name, dir, attachment, checkedTable(memory.buffer, memory.dataOffset, memory.words, info), info))
  }

  /** Structured-cloneable description of the topic, for `Topic.attach` in another thread. */
  get handle() {
    if (!isTopic(this)) throw invalidThis('Topic', 'handle', this)
    return this.#handle
  }

  get pool() {
    if (!isTopic(this)) throw invalidThis('Topic', 'pool', this)
    return this.#core.pool
  }

  get closed() {
    if (!isTopic(this)) throw invalidThis('Topic', 'closed', this)
    return this.#core.closed
  }

  /** `{ capacity, maxSubscribers, history, onFull, checkWrites }` as the topic was made. */
  get options() {
    if (!isTopic(this)) throw invalidThis('Topic', 'options', this)
    const core = this.#core
    return {
      capacity: core.capacity,
      maxSubscribers: core.maxSubs,
      history: core.history,
      onFull: core.dropOldest ? 'drop-oldest' : 'block',
      checkWrites: core.checkWrites,
    }
  }

  /**
   * A new subscription in this thread: it receives every sample published from now on (and the
   * last `history` ones kept). ERR_SABPOOL_TOO_MANY_SUBSCRIBERS when `maxSubscribers` are live.
   */
  subscribe() {
    if (!isTopic(this)) throw invalidThis('Topic', 'subscribe', this)
    const core = this.#core
    const i32 = core.i32
    core.claimEntry()
    core.reclaimDeadProcesses()
    core.lockSync()
    let index = -1
    let serial
    try {
      if (Atomics.load(i32, T_CLOSED) !== 0) throw closedError('subscribe')
      core.retireDead()
      for (let i = 0; i < core.maxSubs; i++) {
        if (Atomics.load(i32, core.subAt(i) + S_STATE) === SUB_FREE) {
          index = i
          break
        }
      }
      if (index < 0) {
        throw makeError('ERR_SABPOOL_TOO_MANY_SUBSCRIBERS', `subscribe: the topic has ${core.maxSubs} live subscribers already (its maxSubscribers)`)
      }
      const bit = 1 << index
      const head = Atomics.load(i32, T_HEAD) & POS_MASK
      // The entry names its participant before any sample carries its bit: if this thread dies
      // half-way, the entry is found (active, not yet in ACTIVE, its participant gone) and retired,
      // which clears the bits it had put on history samples.
      const at = core.subAt(index)
      serial = nextSerial++ | 0
      Atomics.store(i32, at + S_PART, core.me)
      Atomics.store(i32, at + S_CLAIM, core.claim)
      Atomics.store(i32, at + S_CURSOR, head)
      Atomics.store(i32, at + S_SERIAL, serial)
      Atomics.store(i32, at + S_STATE, SUB_ACTIVE)
      // History: the newest samples the topic still keeps, oldest first.
      let start = head
      for (let k = 1; k <= core.history; k++) {
        const pos = (head - k) & POS_MASK
        const e = core.ringWord + RING_WORDS * (pos & core.ringMask)
        if ((Atomics.load(i32, e + E_POS) & POS_MASK) !== pos) break
        const slot = Atomics.load(i32, e + E_SLOT)
        if (slot < 0 || slot >= core.slots) break
        const rec = core.recordsWord + RECORD_WORDS * slot
        if ((Atomics.load(i32, rec + R_GEN) >>> 0) !== (Atomics.load(i32, e + E_GEN) >>> 0)) break
        if ((Atomics.load(i32, rec + R_MASK) & HISTORY_BIT) === 0) break
        Atomics.or(i32, rec + R_MASK, bit)
        if (DIE_AT !== undefined) crashPoint('subscribe:history')
        start = pos
      }
      Atomics.store(i32, at + S_CURSOR, start)
      Atomics.or(i32, T_ACTIVE, bit)
    } finally {
      core.unlock()
    }
    return new Subscription(core, index, serial)
  }

  /**
   * Publishes `lease` (its first `length` bytes; default `lease.length`) to every subscriber, or
   * returns false without waiting if a subscriber's queue is full (onFull 'block'; the lease
   * stays yours). The lease is no longer yours once published.
   */
  tryPublish(lease, length) {
    if (!isTopic(this)) throw invalidThis('Topic', 'tryPublish', this)
    const core = this.#core
    length = publishLength(core, lease, length)
    return core.tryPublish(lease, length) >= 0
  }

  /**
   * Publishes `lease`, blocking this thread while a subscriber's queue is full (onFull 'block').
   * Returns how many subscribers it reached.
   * @param {{ timeout?: number }} [options]
   */
  publishSync(lease, length, options) {
    if (!isTopic(this)) throw invalidThis('Topic', 'publishSync', this)
    const core = this.#core
    length = publishLength(core, lease, length)
    options = checkOptionsObject('options', options)
    const timeout = checkTimeout(options.timeout)
    const reached = core.tryPublish(lease, length)
    if (reached >= 0) return reached
    return parkSync(core.roomSite, () => {
      const n = core.tryPublish(lease, length)
      return n >= 0 ? n : undefined
    }, timeout, 'publishSync')
  }

  /**
   * Publishes `lease` without blocking the event loop, waiting while a subscriber's queue is full
   * (onFull 'block'). Resolves with how many subscribers it reached. On a rejection (timeout,
   * abort, closed) the lease is still yours.
   * @param {{ timeout?: number, signal?: AbortSignal }} [options]
   */
  async publish(lease, length, options) {
    if (!isTopic(this)) throw invalidThis('Topic', 'publish', this)
    const core = this.#core
    length = publishLength(core, lease, length)
    options = checkOptionsObject('options', options)
    const timeoutOption = options.timeout
    const signalOption = options.signal
    const timeout = checkTimeout(timeoutOption)
    const signal = checkSignal(signalOption)
    if (signal !== undefined && signal.aborted) throw abortError(signal.target)
    const reached = core.tryPublish(lease, length)
    if (reached >= 0) return reached
    return parkAsync(core.roomSite, () => {
      const n = core.tryPublish(lease, length)
      return n >= 0 ? n : undefined
    }, timeout, signal, 'publish')
  }

  /**
   * Closes the topic for every thread and process: publishes throw ERR_SABPOOL_CLOSED (the lease
   * stays the caller's), subscribers read what is queued for them and then get null. The samples
   * kept as history are let go. False if it was closed already.
   */
  close() {
    if (!isTopic(this)) throw invalidThis('Topic', 'close', this)
    return this.#core.close()
  }

  /**
   * Counters of the whole topic: live subscribers, samples published, delivered (taken by a
   * subscriber) and dropped (drop-oldest), and per live subscriber `{ lag, delivered, dropped }`.
   * Dead subscribers are retired first. Read under the lock: a retirement (under the lock too)
   * moves a subscriber's counts into the totals, and a read overlapping it would count them
   * twice or not at all.
   */
  stats() {
    if (!isTopic(this)) throw invalidThis('Topic', 'stats', this)
    const core = this.#core
    core.reclaimDeadProcesses()
    core.lockSync()
    try {
      core.retireDead()
      const i32 = core.i32
      const t = core.table
      let delivered = t.read(S.delivered)
      let dropped = t.read(S.dropped)
      const subscriptions = []
      for (let i = 0; i < core.maxSubs; i++) {
        const at = core.subAt(i)
        if (Atomics.load(i32, at + S_STATE) !== SUB_ACTIVE) continue
        const s = subscriberStats(core, at)
        delivered += s.delivered
        dropped += s.dropped
        subscriptions.push(s)
      }
      return {
        subscribers: subscriptions.length,
        published: t.read(S.published),
        delivered,
        dropped,
        stray: t.read(S.stray),
        subscriptions,
      }
    } finally {
      core.unlock()
    }
  }

  /** File-backed: removes the topic's table file; false when its name no longer named it. */
  unlink() {
    if (!isTopic(this)) throw invalidThis('Topic', 'unlink', this)
    const core = this.#core
    if (!core.isFile) throw makeError('ERR_SABPOOL_NOT_FILE', 'unlink: this topic is not backed by a file (create it with Topic.create)')
    return nativeCall(() => binding.regionUnlink(core.tableRef))
  }
}

// ---- construction helpers ----------------------------------------------------------------------

function topicSettings(options) {
  options = checkOptionsObject('options', options)
  // Every option is read once, before any is checked.
  const capacityOption = options.capacity
  const maxOption = options.maxSubscribers
  const historyOption = options.history
  const onFullOption = options.onFull
  const checkWritesOption = options.checkWrites
  const capacity = checkInteger('capacity', capacityOption, 1, 1 << 16)
  const maxSubscribers = maxOption === undefined ? 8 : checkInteger('maxSubscribers', maxOption, 1, MAX_SUBSCRIBERS)
  const history = historyOption === undefined ? 0 : checkInteger('history', historyOption, 0, capacity)
  let dropOldest = false
  if (onFullOption !== undefined && onFullOption !== 'block') {
    if (onFullOption !== 'drop-oldest') {
      throw makeError('ERR_INVALID_ARG_TYPE', `onFull must be 'block' or 'drop-oldest', got ${describe(onFullOption)}`)
    }
    dropOldest = true
  }
  if (checkWritesOption !== undefined && typeof checkWritesOption !== 'boolean') {
    throw makeError('ERR_INVALID_ARG_TYPE', `checkWrites must be a boolean, got ${describe(checkWritesOption)}`)
  }
  return { capacity, maxSubscribers, history, dropOldest, checkWrites: checkWritesOption === true, ringSize: ceilPow2(2 * capacity) }
}

function initTable(i32, info, settings) {
  Atomics.store(i32, T_SLOTS, info.slots)
  Atomics.store(i32, T_PARTICIPANTS, info.maxParticipants)
  Atomics.store(i32, T_CAPACITY, settings.capacity)
  Atomics.store(i32, T_MAX_SUBS, settings.maxSubscribers)
  Atomics.store(i32, T_HISTORY, settings.history)
  Atomics.store(i32, T_FLAGS, (settings.dropOldest ? FLAG_DROP_OLDEST : 0) | (settings.checkWrites ? FLAG_CHECK_WRITES : 0))
  Atomics.store(i32, T_RING, settings.ringSize)
  Atomics.store(i32, T_UID, newUid())
  Atomics.store(i32, T_POOL_UID, info.uid)
  Atomics.store(i32, T_FORMAT, TABLE_FORMAT)
}

/** The table in `buffer`, its header checked against the pool it is used with. */
function checkedTable(buffer, byteOffset, words, info) {
  if (words < PART_WORD) throw makeError('ERR_SABPOOL_BAD_HANDLE', 'the topic table is too small')
  const i32 = new Int32Array(buffer, byteOffset, words)
  if (Atomics.load(i32, T_FORMAT) !== TABLE_FORMAT) throw makeError('ERR_SABPOOL_BAD_HANDLE', 'this is not a topic table of this version')
  if ((Atomics.load(i32, T_POOL_UID) >>> 0) !== info.uid || Atomics.load(i32, T_SLOTS) !== info.slots ||
    Atomics.load(i32, T_PARTICIPANTS) !== info.maxParticipants) {
    throw makeError('ERR_SABPOOL_BAD_HANDLE', 'the topic table was made for another pool than this one')
  }
  const capacity = Atomics.load(i32, T_CAPACITY)
  const maxSubs = Atomics.load(i32, T_MAX_SUBS)
  const history = Atomics.load(i32, T_HISTORY)
  const ringSize = Atomics.load(i32, T_RING)
  if (capacity < 1 || capacity > 1 << 16 || maxSubs < 1 || maxSubs > MAX_SUBSCRIBERS || history < 0 || history > capacity ||
    ringSize !== ceilPow2(2 * capacity)) {
    throw makeError('ERR_SABPOOL_BAD_HANDLE', 'the topic table header holds values no topic has (it was scribbled on)')
  }
  if (layoutOf(info.slots, info.maxParticipants, maxSubs, ringSize).words > words) {
    throw makeError('ERR_SABPOOL_BAD_HANDLE', 'the topic table is too small for its pool')
  }
  return new Table(buffer, byteOffset, words, STATS_WORD)
}

function checkFileTopicPool(pool, what) {
  if (!isPool(pool)) throw makeError('ERR_INVALID_ARG_TYPE', `${what} needs the topic's SharedPool, got ${describe(pool)}`)
  if (!pool._state.region.isFile) {
    throw makeError('ERR_SABPOOL_NOT_FILE', `${what} needs a pool made with SharedPool.create or SharedPool.open, so other processes can reach it`)
  }
}

function checkTopicName(name) {
  if (name.length > 190) throw makeError('ERR_SABPOOL_BAD_NAME', `topic names are at most 190 characters (the topic's file adds a suffix), got ${name.length}`)
}

function tableName(name) {
  return `${name}.topic`
}

function fileTopic(pool, name, dir, attachment, table, info) {
  const core = new TopicCore(pool, table, info, { ref: attachment.id, attachment, name, dir })
  pool._state.region.detachAtExit(attachment)
  const handle = Object.freeze({ kind: TOPIC_KIND, version: LAYOUT_VERSION, name, dir, pool: pool.handle })
  return new Topic(ATTACHED, undefined, { core, handle })
}

function publishLength(core, lease, length) {
  if (!isLease(lease)) throw makeError('ERR_INVALID_ARG_TYPE', `expected a Lease, got ${describe(lease)}`)
  if (lease._poolUid !== core.state.uid) throw makeError('ERR_SABPOOL_BAD_TICKET', "this lease belongs to another pool than the topic's")
  if (!lease.owned) throw makeError('ERR_SABPOOL_STALE_LEASE', 'publish: this lease is no longer owned by this thread')
  return length === undefined ? lease.length : checkLength(length, lease._slotSize)
}

module.exports = { Topic, Subscription, Sample }
