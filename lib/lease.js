'use strict'

// A pool's per-thread state (PoolState: the plain fields its hot paths read) and Lease, the
// borrowed slot. Both are shared by SharedPool and Channel.

const path = require('node:path')
const {
  binding, OFFSETS, NONE, SITE_FREE_SLOT, poolAcquire, poolRelease, poolHandoff, channelSend,
} = require('./native.js')
const { makeError, statusError, invalidThis, describe } = require('./errors.js')
const { checkLength } = require('./options.js')
const { wake } = require('./wait.js')
const codec = require('./codec.js')

const OWNED = 0
const RELEASED = 1
const HANDED_OFF = 2
const SENT = 3
/** Added to the state of a lease that is no longer owned while a pending call will re-arm it
 * (`reuse`); the low bits keep how it stopped being owned. */
const RESERVED = 4
const HOW = 3

const FREE_EPOCH = OFFSETS.freeEpoch >>> 2

/** Stack frames from sabpool's own files, left out of where a leaked lease was acquired. */
const OWN_FRAMES = path.join(__dirname, path.sep)

// Set in Lease's static block, where the private fields are in reach:
/** True for a real Lease (not merely `instanceof`: `Object.create(Lease.prototype)` is not one). */
let isLease
/** Checks an optional `reuse` lease: a Lease this thread no longer owns, not reserved by a
 * pending call; returns it (undefined when absent). */
let checkReuse
/** Marks (or unmarks) a checked `reuse` lease as reserved for a call that is about to wait. */
let reserve
/** Points a lease this thread no longer owns at a newly owned slot; false (nothing changed) if
 * it is owned. */
let rearm
/** The pool state of a lease this thread owns, for the codecs; ERR_INVALID_THIS on anything but a
 * Lease, ERR_SABPOOL_STALE_LEASE once not owned (`what` names the member in the error). */
let ownedPool

/**
 * Runs `wait()`, a wait that will re-arm `reuse` when it succeeds, with `reuse` reserved until it
 * settles: a second pending call, or `tryAcquire({ reuse })` meanwhile, is refused with
 * ERR_SABPOOL_LEASE_IN_USE instead of re-arming the same object (which would drop the slot it held).
 */
function reserved(reuse, wait) {
  if (reuse === undefined) return wait()
  reserve(reuse, true)
  let result
  try {
    result = wait()
  } catch (error) {
    reserve(reuse, false)
    throw error
  }
  if (!(result instanceof Promise)) {
    reserve(reuse, false)
    return result
  }
  return result.finally(() => reserve(reuse, false))
}

/**
 * Everything a pool's hot paths need, as plain fields (shared by SharedPool and its leases).
 * `ref` is this thread's attachment in the native registry (what every native call takes;
 * DETACHED_ID once detached); `uid` is the pool's random id, the same in every thread and process.
 */
class PoolState {
  /** `region`: the pool's backend (lib/region.js), which holds its memory. */
  constructor(region, attachment, trackLeaks) {
    const ref = attachment.id
    const info = binding.poolDescribe(ref)
    this.region = region
    this.attachment = attachment
    this.ref = ref
    this.buffer = region.buffer
    this.uid = info.uid
    this.slotSize = info.slotSize
    this.slots = info.slots
    this.stride = info.stride
    this.dataOffset = info.dataOffset
    this.metaOffset = info.metaOffset
    this.u32 = new Uint32Array(this.buffer, 0, info.dataOffset / 4)
    this.i32 = new Int32Array(this.buffer, 0, info.dataOffset / 4)
    /** Per-slot Uint8Array views, created on first use and reused: no allocation per lease. */
    this.views = new Array(info.slots).fill(undefined)
    this.buffers = new Array(info.slots).fill(undefined)
    this.freeSite = region.waitSite({
      i32: this.i32,
      epochOffset: OFFSETS.freeEpoch,
      register: (delta) => binding.poolWaiting(this.ref, delta),
      noteWait: () => binding.poolNoteWait(this.ref),
      kind: 'pool',
      uid: this.uid,
      ref: () => this.ref,
      site: SITE_FREE_SLOT,
      // A file-backed pool starved for a whole slice checks whether a dead process holds slots.
      idle: () => binding.poolReclaimDead(this.ref),
    })
    /** Set when leak tracking is on: finds leases garbage-collected while still owned. */
    this.leaks = trackLeaks ? new FinalizationRegistry((record) => this.reclaimLeaked(record)) : undefined
  }

  /** Leak tracking: remember where a lease was taken, until it is released, handed off or sent. */
  track(lease) {
    const where = new Error('acquired here').stack.split('\n').slice(1)
      .filter((frame) => !frame.includes(OWN_FRAMES)).join('\n')
    this.leaks.register(lease, { slot: lease.slot, generation: lease.generation, where }, lease)
  }

  untrack(lease) {
    this.leaks.unregister(lease)
  }

  /** A tracked lease was garbage-collected while this thread still owned its slot. */
  reclaimLeaked({ slot, generation, where }) {
    let wake
    try {
      wake = binding.poolReclaimLease(this.ref, slot, generation)
    } catch {
      return // detached, or the slot moved on in a way only a scribble could cause: nothing to reclaim
    }
    if (wake) this.notifyFree()
    process.emitWarning(
      `a lease of slot ${slot} (generation ${generation}) of pool ${this.uid} was garbage-collected without ` +
      `release(); its slot has been reclaimed. Acquired at:\n${where}`,
      { type: 'SabpoolWarning', code: 'SABPOOL_LEAKED_LEASE' })
  }

  view(slot) {
    let view = this.views[slot]
    if (view === undefined) {
      view = new Uint8Array(this.buffer, this.dataOffset + slot * this.stride, this.slotSize)
      this.views[slot] = view
    }
    return view
  }

  /** A Buffer over the slot (for Node's UTF-8 decoder), created on first use and reused. */
  bufferView(slot) {
    let view = this.buffers[slot]
    if (view === undefined) {
      view = Buffer.from(this.buffer, this.dataOffset + slot * this.stride, this.slotSize)
      this.buffers[slot] = view
    }
    return view
  }

  /** Where the slot starts in the pool's buffer: a multiple of 64 bytes. */
  slotByteOffset(slot) {
    return this.dataOffset + slot * this.stride
  }

  /** Generation of a slot this thread now owns (the high half of its state word). */
  generation(slot) {
    return this.u32[(this.metaOffset + slot * OFFSETS.metaSize + OFFSETS.metaWord + 4) >>> 2]
  }

  /**
   * Whether some participant holds `slot` (an index below `slots`) at `generation`: it is leased,
   * or its release has not finished. Read from the slot's state word, `generation << 32 |
   * owner << 8 | state` (owner 0: nobody, as when free, in flight or queued), half by half: a
   * hint for a wait that settles by adopting, not a proof.
   */
  heldAt(slot, generation) {
    const word = (this.metaOffset + slot * OFFSETS.metaSize + OFFSETS.metaWord) >>> 2
    return Atomics.load(this.u32, word + 1) === generation && (Atomics.load(this.u32, word) >>> 8) !== 0
  }

  /** Length recorded for a slot this thread now owns. */
  recordedLength(slot) {
    return this.u32[(this.metaOffset + slot * OFFSETS.metaSize + OFFSETS.metaLength) >>> 2]
  }

  /**
   * A Lease object for a slot this thread now owns: `reuse` re-armed, or a new one. (`reuse` was
   * checked by `checkReuse` and, across a wait, reserved; should it be owned anyway, a new object
   * is made: a slot this thread took is never left without one.)
   */
  lease(slot, length, reuse) {
    const generation = this.generation(slot)
    let lease = reuse
    if (lease === undefined || !rearm(lease, this, slot, generation, length)) lease = new Lease(this, slot, generation, length)
    if (this.leaks !== undefined) this.track(lease)
    return lease
  }

  tryAcquire(reuse) {
    const slot = poolAcquire(this.ref)
    if (slot < 0) {
      if (slot === NONE) return undefined
      throw statusError(slot, 'acquire')
    }
    return this.lease(slot, 0, reuse)
  }

  /** One slot was freed: wakes one waiter for it. */
  notifyFree() {
    wake(this.i32, FREE_EPOCH, 1)
  }
}

/**
 * A borrowed slot: `bytes` is a view into shared memory that this thread may read and write until
 * it calls `release()` or `handoff()` (or sends the lease through a channel).
 */
class Lease {
  #pool
  #slot
  #generation
  #length
  /** OWNED, RELEASED, HANDED_OFF or SENT; plus RESERVED while a pending receive or acquire
   * waits to re-arm this object (`reuse`). */
  #state = OWNED

  static {
    // Module-private helpers with access to the private fields (see their declarations below).
    isLease = (value) => value !== null && typeof value === 'object' && #state in value
    checkReuse = (reuse) => {
      if (reuse === undefined || reuse === null) return undefined
      if (!isLease(reuse)) {
        throw makeError('ERR_INVALID_ARG_TYPE', `reuse must be a Lease, got ${describe(reuse)}`)
      }
      if (reuse.#state === OWNED) {
        throw makeError('ERR_SABPOOL_LEASE_IN_USE', `reuse must be a lease that was released, handed off or sent; slot ${reuse.#slot} is still owned`)
      }
      if ((reuse.#state & RESERVED) !== 0) {
        throw makeError('ERR_SABPOOL_LEASE_IN_USE', 'reuse: this Lease is reserved by a pending receive or acquire that will re-arm it; pass another one, or wait for that call to settle')
      }
      return reuse
    }
    reserve = (lease, reserved) => {
      // Unreserving a lease that was re-armed (owned) meanwhile leaves it owned.
      lease.#state = reserved ? lease.#state | RESERVED : lease.#state & ~RESERVED
    }
    ownedPool = (lease, what) => {
      if (!isLease(lease)) throw invalidThis('Lease', what, lease)
      if (lease.#state !== OWNED) throw lease.#stale(what)
      return lease.#pool
    }
    rearm = (lease, pool, slot, generation, length) => {
      if (lease.#state === OWNED) return false
      lease.#pool = pool
      lease.#slot = slot
      lease.#generation = generation
      lease.#length = length
      lease.#state = OWNED
      return true
    }
  }

  /** @internal */
  constructor(pool, slot, generation, length) {
    this.#pool = pool
    this.#slot = slot
    this.#generation = generation
    this.#length = length
  }

  // Every public member starts by reading a private field inside try/catch: on anything but a
  // Lease that read throws, and the catch turns it into ERR_INVALID_THIS. On a Lease it is the
  // read the member needs anyway, so the check costs nothing on the hot path.

  get slot() {
    try {
      return this.#slot
    } catch {
      throw invalidThis('Lease', 'slot', this)
    }
  }

  get generation() {
    try {
      return this.#generation
    } catch {
      throw invalidThis('Lease', 'generation', this)
    }
  }

  /** The whole slot (slotSize bytes) as a Uint8Array over the shared memory. */
  get bytes() {
    let state
    try {
      state = this.#state
    } catch {
      throw invalidThis('Lease', 'bytes', this)
    }
    if (state !== OWNED) throw this.#stale('bytes')
    return this.#pool.view(this.#slot)
  }

  /** Bytes in use, 0..slotSize. Travels with a handoff or a channel send. */
  get length() {
    try {
      return this.#length
    } catch {
      throw invalidThis('Lease', 'length', this)
    }
  }

  set length(value) {
    let pool
    try {
      pool = this.#pool
    } catch {
      throw invalidThis('Lease', 'length', this)
    }
    this.#length = checkLength(value, pool.slotSize)
  }

  // ---- payload codecs (lib/codec.js): straight into the slot and out of it ----


  /**
   * Writes `text` as UTF-8 at `offset` (default 0) straight into the slot and sets `length` to
   * the end of it. Returns the bytes written. ERR_SABPOOL_DOES_NOT_FIT (a RangeError with
   * `needed`) if it does not fit; then nothing changed.
   */
  writeString(text, offset) {
    const pool = ownedPool(this, 'writeString')
    const written = codec.writeString(pool.view(this.#slot), text, offset)
    this.#length = (offset ?? 0) + written
    return written
  }

  /** Decodes UTF-8 from `offset` (default 0), `length` bytes (default: to `lease.length`). */
  readString(offset, length) {
    const pool = ownedPool(this, 'readString')
    return codec.readString(pool.bufferView(this.#slot), pool.slotSize, this.#length, offset, length)
  }

  /** Writes `JSON.stringify(value)` at offset 0 and sets `length`; returns the bytes written. */
  writeJSON(value) {
    const pool = ownedPool(this, 'writeJSON')
    const written = codec.writeString(pool.view(this.#slot), codec.jsonText(value, 'writeJSON'), 0, 'writeJSON')
    this.#length = written
    return written
  }

  /** Parses the payload (`length` bytes) as JSON; ERR_SABPOOL_BAD_PAYLOAD if it is not. */
  readJSON() {
    const pool = ownedPool(this, 'readJSON')
    return codec.parseJSON(codec.readString(pool.bufferView(this.#slot), pool.slotSize, this.#length, 0, this.#length, 'readJSON'), 'readJSON')
  }

  /**
   * Writes `value` in the V8 serialization format (structured clone's: Map, Set, Date, BigInt,
   * typed arrays, ...) at offset 0 and sets `length`; returns the bytes written. Node serializes
   * into a buffer of its own, which is copied into the slot once.
   */
  writeValue(value) {
    const pool = ownedPool(this, 'writeValue')
    const serialized = codec.serialize(value, 'writeValue')
    if (serialized.length > pool.slotSize) throw codec.doesNotFit('writeValue', serialized.length, pool.slotSize)
    pool.view(this.#slot).set(serialized)
    this.#length = serialized.length
    return serialized.length
  }

  /** Deserializes the payload (`length` bytes, read in place); ERR_SABPOOL_BAD_PAYLOAD if it is not a serialized value. */
  readValue() {
    const pool = ownedPool(this, 'readValue')
    return codec.deserialize(pool.view(this.#slot), this.#length, 'readValue')
  }

  /**
   * A typed array or DataView of `Ctor` over the slot, from `byteOffset` (default 0; a multiple
   * of the element size, else ERR_SABPOOL_MISALIGNED), `length` elements (default: all that fit).
   * Valid while the lease is owned, like `bytes`.
   */
  view(Ctor, byteOffset, length) {
    const pool = ownedPool(this, 'view')
    return codec.view(pool.buffer, pool.slotByteOffset(this.#slot), pool.slotSize, Ctor, byteOffset, length)
  }

  /** True while this thread owns the slot. */
  get owned() {
    try {
      return this.#state === OWNED
    } catch {
      throw invalidThis('Lease', 'owned', this)
    }
  }

  /** The error for using a lease this thread no longer owns. */
  #stale(what) {
    const stopped = this.#state & HOW
    const how = stopped === RELEASED ? 'released' : stopped === HANDED_OFF ? 'handed off' : 'sent'
    return makeError('ERR_SABPOOL_STALE_LEASE', `${what}: this lease was already ${how} (slot ${this.#slot})`)
  }

  /** Returns the slot to the pool. */
  release() {
    let state
    try {
      state = this.#state
    } catch {
      throw invalidThis('Lease', 'release', this)
    }
    if (state !== OWNED) throw this.#stale('release')
    const pool = this.#pool
    const status = poolRelease(pool.ref, this.#slot, this.#generation)
    if (status < 0) throw statusError(status, 'release')
    this.#state = RELEASED
    if (pool.leaks !== undefined) pool.untrack(this)
    if (status === 1) pool.notifyFree()
  }

  /**
   * Gives up ownership and returns a ticket that another thread passes to `pool.adopt()`.
   * @returns {{ pool: number, slot: number, generation: number, length: number }}
   */
  handoff() {
    let state
    try {
      state = this.#state
    } catch {
      throw invalidThis('Lease', 'handoff', this)
    }
    if (state !== OWNED) throw this.#stale('handoff')
    const pool = this.#pool
    const status = poolHandoff(pool.ref, this.#slot, this.#generation, this.#length)
    if (status < 0) throw statusError(status, 'handoff')
    this.#state = HANDED_OFF
    if (pool.leaks !== undefined) pool.untrack(this)
    // A handoff moves the generation on (so tickets of earlier handoffs of this slot go stale);
    // nobody can adopt before the ticket leaves this thread, so the word is still ours to read.
    return { pool: pool.uid, slot: this.#slot, generation: pool.generation(this.#slot), length: this.#length }
  }

  /**
   * @internal `handoff()` without the ticket object, for a topic's publish (which knows the slot
   * and the generation the handoff moves to). Returns the slot's new generation.
   */
  _handoffQuiet(length) {
    if (this.#state !== OWNED) throw this.#stale('publish')
    const pool = this.#pool
    const status = poolHandoff(pool.ref, this.#slot, this.#generation, length)
    if (status < 0) throw statusError(status, 'publish')
    this.#state = HANDED_OFF
    this.#length = length
    if (pool.leaks !== undefined) pool.untrack(this)
    return pool.generation(this.#slot)
  }

  /**
   * @internal Offers the lease to a channel's ring. Returns the native status: 0 or 1 (sent; 1 =
   * receivers must be woken) or NONE (full: the lease stays ours).
   */
  _sendTo(channelRef, length) {
    if (this.#state !== OWNED) throw this.#stale('send')
    const pool = this.#pool
    const status = channelSend(channelRef, pool.ref, this.#slot, this.#generation, length)
    if (status >= 0) {
      this.#state = SENT
      this.#length = length
      if (pool.leaks !== undefined) pool.untrack(this)
    } else if (status !== NONE) {
      throw statusError(status, 'send')
    }
    return status
  }

  /** @internal */
  get _poolUid() {
    return this.#pool.uid
  }

  /** @internal */
  get _slotSize() {
    return this.#pool.slotSize
  }

  [Symbol.for('nodejs.util.inspect.custom')]() {
    if (!isLease(this)) return 'Lease <not a lease>'
    const state = ['owned', 'released', 'handed off', 'sent'][this.#state & HOW] + ((this.#state & RESERVED) !== 0 ? ', reserved' : '')
    return `Lease { slot: ${this.#slot}, generation: ${this.#generation}, length: ${this.#length}, ${state} }`
  }
}

module.exports = { PoolState, Lease, isLease, checkReuse, reserved }
