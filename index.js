'use strict'

// sabpool: a preallocated shared-memory buffer pool for worker_threads.
//
// Rust (the native binding) owns the region layout, validation and every ownership transition;
// this file adds ergonomics: option checking, Lease objects, typed errors and waiting. Waiting
// happens here because only JS `Atomics.wait`/`waitAsync`/`notify` can park and wake JS threads
// (V8 keeps its own wait list; a futex wake from Rust would not reach them).

const binding = require('./binding.js')
const { randomInt } = require('node:crypto')

const {
  poolAcquire,
  poolRelease,
  poolHandoff,
  poolAdopt,
} = binding

const OFFSETS = binding.offsets()
const STATUS = new Map(binding.statusTable().map((s) => [s.status, s]))
const NONE = -1
/** An id no registry entry has: calls with it fail with ERR_SABPOOL_DETACHED. */
const DETACHED_ID = 0xffffffff

/** How long one park lasts at most before re-checking. Bounds the delay when a wake-up cannot be
 * delivered, e.g. a worker torn down while its slots are reclaimed (no JS runs then to notify). */
const PARK_SLICE_MS = 50
/** Default number of non-blocking retries before parking in the blocking (worker) waits. */
const DEFAULT_SPIN = 64

// ---- errors ----------------------------------------------------------------------------------

function makeError(Ctor, code, message, cause) {
  const err = cause === undefined ? new Ctor(message) : new Ctor(message, { cause })
  err.code = code
  return err
}

/** Error for a negative status returned by a native fast call. */
function statusError(status, what) {
  const info = STATUS.get(status)
  if (info === undefined) return makeError(Error, 'ERR_SABPOOL_INTERNAL', `${what}: unexpected status ${status}`)
  const Ctor = info.code === 'ERR_INVALID_ARG_TYPE' ? TypeError : Error
  return makeError(Ctor, info.code, `${what}: ${info.message}`)
}

class AbortError extends Error {
  constructor(message = 'The operation was aborted', options) {
    super(message, options)
    this.name = 'AbortError'
    this.code = 'ABORT_ERR'
  }
}

function abortError(signal) {
  return new AbortError(undefined, { cause: signal.reason })
}

function timeoutError(what, timeout) {
  return makeError(Error, 'ERR_SABPOOL_TIMEOUT', `${what} timed out after ${timeout} ms`)
}

// ---- option checking ---------------------------------------------------------------------------

function checkInteger(name, value, min, max) {
  if (typeof value !== 'number') {
    throw makeError(TypeError, 'ERR_INVALID_ARG_TYPE', `${name} must be a number, got ${describe(value)}`)
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    throw makeError(RangeError, 'ERR_OUT_OF_RANGE', `${name} must be an integer from ${min} to ${max}, got ${value}`)
  }
  return value
}

function describe(value) {
  if (value === null) return 'null'
  if (typeof value === 'object') return 'an object'
  if (typeof value === 'string') return `the string ${JSON.stringify(value.slice(0, 20))}`
  return `${typeof value} ${String(value)}`
}

function checkOptionsObject(name, options) {
  if (options === undefined) return {}
  if (options === null || typeof options !== 'object') {
    throw makeError(TypeError, 'ERR_INVALID_ARG_TYPE', `${name} must be an object, got ${describe(options)}`)
  }
  return options
}

/** `timeout` in ms: undefined or Infinity means no limit. */
function checkTimeout(timeout) {
  if (timeout === undefined) return Infinity
  if (typeof timeout !== 'number') {
    throw makeError(TypeError, 'ERR_INVALID_ARG_TYPE', `timeout must be a number of milliseconds, got ${describe(timeout)}`)
  }
  if (Number.isNaN(timeout) || timeout < 0) {
    throw makeError(RangeError, 'ERR_OUT_OF_RANGE', `timeout must be a non-negative number of milliseconds, got ${timeout}`)
  }
  return timeout
}

function checkSignal(signal) {
  if (signal === undefined) return undefined
  if (signal === null || typeof signal !== 'object' || typeof signal.aborted !== 'boolean' || typeof signal.addEventListener !== 'function') {
    throw makeError(TypeError, 'ERR_INVALID_ARG_TYPE', `signal must be an AbortSignal, got ${describe(signal)}`)
  }
  return signal
}

function checkSpin(spin) {
  if (spin === undefined) return DEFAULT_SPIN
  return checkInteger('spin', spin, 0, 1e9)
}

// ---- waiting -------------------------------------------------------------------------------------
//
// A waiter registers in a waiter count, reads the epoch word, retries, and parks on the epoch only
// if the retry failed. The native side bumps the epoch and reports "wake" whenever it frees a
// resource while the waiter count is non-zero; the JS caller then notifies. Both sides are
// sequentially consistent, so either the retry sees the resource or the freeing side sees the
// waiter: no wake-up is lost. Every park is bounded by PARK_SLICE_MS as a backstop.

/** Wakes every thread parked on an epoch word (stale async waiters may be among them, so waking
 * just one could wake the wrong one). */
function wakeAll(i32, epochIndex) {
  Atomics.notify(i32, epochIndex)
}

/**
 * Blocking wait (workers). `attempt` returns a result, or undefined to keep waiting.
 * Throws ERR_SABPOOL_TIMEOUT at the deadline.
 */
function parkSync(i32, waitersIndex, epochIndex, attempt, timeout, what, onPark) {
  const deadline = performance.now() + timeout
  for (;;) {
    Atomics.add(i32, waitersIndex, 1)
    try {
      const epoch = Atomics.load(i32, epochIndex)
      const result = attempt()
      if (result !== undefined) return result
      const remaining = deadline - performance.now()
      if (remaining <= 0) throw timeoutError(what, timeout)
      onPark()
      Atomics.wait(i32, epochIndex, epoch, Math.min(remaining, PARK_SLICE_MS))
    } finally {
      Atomics.sub(i32, waitersIndex, 1)
    }
  }
}

const noop = () => {}

/**
 * Non-blocking wait (any thread). While a park is pending, a ref'd timer keeps the event loop
 * alive: `Atomics.waitAsync` alone does not (nodejs/node#44729).
 */
async function parkAsync(i32, waitersIndex, epochIndex, attempt, timeout, signal, what, onPark) {
  const deadline = performance.now() + timeout
  for (;;) {
    if (signal !== undefined && signal.aborted) throw abortError(signal)
    Atomics.add(i32, waitersIndex, 1)
    let keepAlive
    let onAbort
    try {
      const epoch = Atomics.load(i32, epochIndex)
      const result = attempt()
      if (result !== undefined) return result
      const remaining = deadline - performance.now()
      if (remaining <= 0) throw timeoutError(what, timeout)
      onPark()
      const waited = Atomics.waitAsync(i32, epochIndex, epoch, Math.min(remaining, PARK_SLICE_MS))
      if (waited.async) {
        keepAlive = setInterval(noop, 1 << 30)
        if (signal === undefined) {
          await waited.value
        } else {
          await new Promise((resolve, reject) => {
            onAbort = () => reject(abortError(signal))
            signal.addEventListener('abort', onAbort, { once: true })
            waited.value.then(resolve)
          })
        }
      }
    } finally {
      if (keepAlive !== undefined) clearInterval(keepAlive)
      if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
      Atomics.sub(i32, waitersIndex, 1)
    }
  }
}

// ---- pool ------------------------------------------------------------------------------------------

const HANDLE_KIND = 'sabpool.pool'
const LAYOUT_VERSION = 1
const OWNED = 0
const RELEASED = 1
const HANDED_OFF = 2
const SENT = 3

/** Everything a pool's hot paths need, as plain fields (shared by SharedPool and its leases). */
class PoolState {
  constructor(buffer, attachment) {
    const info = binding.poolDescribe(attachment.id)
    this.attachment = attachment
    this.id = attachment.id
    this.buffer = buffer
    this.uid = info.uid
    this.slotSize = info.slotSize
    this.slots = info.slots
    this.stride = info.stride
    this.dataOffset = info.dataOffset
    this.metaOffset = info.metaOffset
    this.u32 = new Uint32Array(buffer, 0, info.dataOffset / 4)
    this.i32 = new Int32Array(buffer, 0, info.dataOffset / 4)
    /** Per-slot Uint8Array views, created on first use and reused: no allocation per lease. */
    this.views = new Array(info.slots).fill(undefined)
  }

  view(slot) {
    let view = this.views[slot]
    if (view === undefined) {
      view = new Uint8Array(this.buffer, this.dataOffset + slot * this.stride, this.slotSize)
      this.views[slot] = view
    }
    return view
  }

  /** Generation of a slot this thread now owns (the high half of its state word). */
  generation(slot) {
    return this.u32[(this.metaOffset + slot * OFFSETS.metaSize + OFFSETS.metaWord + 4) >>> 2]
  }

  /** Length recorded for a slot this thread now owns. */
  recordedLength(slot) {
    return this.u32[(this.metaOffset + slot * OFFSETS.metaSize + OFFSETS.metaLength) >>> 2]
  }

  tryAcquire() {
    const slot = poolAcquire(this.id)
    if (slot < 0) {
      if (slot === NONE) return undefined
      throw statusError(slot, 'acquire')
    }
    return new Lease(this, slot, this.generation(slot), 0)
  }

  notifyFree() {
    wakeAll(this.i32, OFFSETS.freeEpoch >>> 2)
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
  #state = OWNED

  /** @internal */
  constructor(pool, slot, generation, length) {
    this.#pool = pool
    this.#slot = slot
    this.#generation = generation
    this.#length = length
  }

  get slot() {
    return this.#slot
  }

  get generation() {
    return this.#generation
  }

  /** The whole slot (slotSize bytes) as a Uint8Array over the shared memory. */
  get bytes() {
    this.#checkOwned('bytes')
    return this.#pool.view(this.#slot)
  }

  /** Bytes in use, 0..slotSize. Travels with a handoff or a channel send. */
  get length() {
    return this.#length
  }

  set length(value) {
    this.#length = checkLength(value, this.#pool.slotSize)
  }

  /** True while this thread owns the slot. */
  get owned() {
    return this.#state === OWNED
  }

  #checkOwned(what) {
    if (this.#state !== OWNED) {
      const how = this.#state === RELEASED ? 'released' : this.#state === HANDED_OFF ? 'handed off' : 'sent'
      throw makeError(Error, 'ERR_SABPOOL_STALE_LEASE', `${what}: this lease was already ${how} (slot ${this.#slot})`)
    }
  }

  /** Returns the slot to the pool. */
  release() {
    this.#checkOwned('release')
    const pool = this.#pool
    const status = poolRelease(pool.id, this.#slot, this.#generation)
    if (status < 0) throw statusError(status, 'release')
    this.#state = RELEASED
    if (status === 1) pool.notifyFree()
  }

  /**
   * Gives up ownership and returns a ticket that another thread passes to `pool.adopt()`.
   * @returns {{ pool: number, slot: number, generation: number, length: number }}
   */
  handoff() {
    this.#checkOwned('handoff')
    const pool = this.#pool
    const status = poolHandoff(pool.id, this.#slot, this.#generation, this.#length)
    if (status < 0) throw statusError(status, 'handoff')
    this.#state = HANDED_OFF
    return { pool: pool.uid, slot: this.#slot, generation: this.#generation, length: this.#length }
  }

  /** @internal Marks the lease as given to a channel. */
  _markSent() {
    this.#state = SENT
  }

  /** @internal */
  _belongsTo(pool) {
    return this.#pool === pool
  }

  [Symbol.for('nodejs.util.inspect.custom')]() {
    const state = ['owned', 'released', 'handed off', 'sent'][this.#state]
    return `Lease { slot: ${this.#slot}, generation: ${this.#generation}, length: ${this.#length}, ${state} }`
  }
}

function checkLength(value, slotSize) {
  if (typeof value !== 'number') {
    throw makeError(TypeError, 'ERR_INVALID_ARG_TYPE', `length must be a number, got ${describe(value)}`)
  }
  if (!Number.isInteger(value) || value < 0 || value > slotSize) {
    throw makeError(RangeError, 'ERR_SABPOOL_BAD_LENGTH', `length must be an integer from 0 to the slot size ${slotSize}, got ${value}`)
  }
  return value
}

const ATTACH = Symbol('attach')

/** Largest SharedArrayBuffer a pool may ask for: V8's limit is 2^53 - 1 bytes on 64-bit. */
const MAX_REGION_BYTES = Number.MAX_SAFE_INTEGER

class SharedPool {
  #state
  #handle

  /**
   * @param {{ slotSize: number, slots: number, maxParticipants?: number }} options
   */
  constructor(options, attached) {
    if (options === ATTACH) {
      this.#state = attached
    } else {
      options = checkOptionsObject('options', options)
      if (options === undefined || (options.slotSize === undefined && options.slots === undefined)) {
        throw makeError(TypeError, 'ERR_INVALID_ARG_TYPE', 'new SharedPool({ slotSize, slots }) needs slotSize and slots')
      }
      const slotSize = checkInteger('slotSize', options.slotSize, 1, OFFSETS.maxSlotSize)
      const slots = checkInteger('slots', options.slots, 1, OFFSETS.maxSlots)
      const maxParticipants = options.maxParticipants === undefined
        ? OFFSETS.defaultParticipants
        : checkInteger('maxParticipants', options.maxParticipants, 1, OFFSETS.maxParticipants)
      const size = binding.poolRegionSize(slotSize, slots, maxParticipants)
      let buffer
      try {
        if (size > MAX_REGION_BYTES) throw new RangeError('Array buffer allocation failed')
        buffer = new SharedArrayBuffer(size)
      } catch (cause) {
        throw makeError(RangeError, 'ERR_SABPOOL_TOO_LARGE',
          `slots × slotSize (${slots} × ${slotSize}) needs a ${size}-byte SharedArrayBuffer, more than this Node can allocate`, cause)
      }
      const uid = randomInt(1, 0xffffffff)
      const attachment = binding.poolCreate(new Uint8Array(buffer), slotSize, slots, maxParticipants, uid)
      this.#state = new PoolState(buffer, attachment)
    }
    this.#handle = Object.freeze({ kind: HANDLE_KIND, version: LAYOUT_VERSION, buffer: this.#state.buffer })
  }

  /**
   * Attaches to a pool created in another thread, given its `handle`. Same memory, no copy.
   */
  static attach(handle) {
    if (handle === null || typeof handle !== 'object' || handle.kind !== HANDLE_KIND) {
      throw makeError(TypeError, 'ERR_SABPOOL_BAD_HANDLE', `SharedPool.attach needs a pool's handle (pool.handle), got ${describe(handle)}`)
    }
    if (handle.version !== LAYOUT_VERSION) {
      throw makeError(Error, 'ERR_SABPOOL_BAD_HANDLE', `this handle has layout version ${handle.version}; this sabpool reads version ${LAYOUT_VERSION}`)
    }
    if (!(handle.buffer instanceof SharedArrayBuffer)) {
      throw makeError(TypeError, 'ERR_SABPOOL_BAD_HANDLE', 'handle.buffer must be the pool\'s SharedArrayBuffer')
    }
    const attachment = binding.poolAttach(new Uint8Array(handle.buffer))
    return new SharedPool(ATTACH, new PoolState(handle.buffer, attachment))
  }

  /** @internal */
  get _state() {
    return this.#state
  }

  get slotSize() {
    return this.#state.slotSize
  }

  get slots() {
    return this.#state.slots
  }

  /** A random id of this pool, carried by tickets. */
  get id() {
    return this.#state.uid
  }

  /** Structured-cloneable description; pass it to workers (workerData or postMessage). */
  get handle() {
    return this.#handle
  }

  /** A free slot, or null when every slot is in use. Never waits. */
  tryAcquire() {
    return this.#state.tryAcquire() ?? null
  }

  /**
   * Waits for a free slot without blocking the event loop.
   * @param {{ timeout?: number, signal?: AbortSignal }} [options]
   */
  async acquire(options) {
    options = checkOptionsObject('options', options)
    const timeout = checkTimeout(options.timeout)
    const signal = checkSignal(options.signal)
    if (signal !== undefined && signal.aborted) throw abortError(signal)
    const state = this.#state
    const lease = state.tryAcquire()
    if (lease !== undefined) return lease
    return parkAsync(state.i32, OFFSETS.freeWaiters >>> 2, OFFSETS.freeEpoch >>> 2,
      () => state.tryAcquire(), timeout, signal, 'acquire', () => binding.poolNoteWait(state.id))
  }

  /**
   * Waits for a free slot, blocking this thread (meant for workers).
   * @param {{ timeout?: number, spin?: number }} [options]
   */
  acquireSync(options) {
    options = checkOptionsObject('options', options)
    const timeout = checkTimeout(options.timeout)
    const spin = checkSpin(options.spin)
    const state = this.#state
    for (let i = 0; i <= spin; i++) {
      const lease = state.tryAcquire()
      if (lease !== undefined) return lease
    }
    return parkSync(state.i32, OFFSETS.freeWaiters >>> 2, OFFSETS.freeEpoch >>> 2,
      () => state.tryAcquire(), timeout, 'acquireSync', () => binding.poolNoteWait(state.id))
  }

  /**
   * Takes ownership of a slot that another thread handed off with `lease.handoff()`.
   */
  adopt(ticket) {
    const state = this.#state
    if (ticket === null || typeof ticket !== 'object' ||
      !Number.isInteger(ticket.slot) || !Number.isInteger(ticket.generation) ||
      !Number.isInteger(ticket.pool) || (ticket.length !== undefined && !Number.isInteger(ticket.length))) {
      throw makeError(TypeError, 'ERR_SABPOOL_BAD_TICKET', `adopt needs a ticket from lease.handoff(), got ${describe(ticket)}`)
    }
    if (ticket.pool !== state.uid) {
      throw makeError(Error, 'ERR_SABPOOL_BAD_TICKET', `this ticket belongs to pool ${ticket.pool}, not to this pool (${state.uid})`)
    }
    if (ticket.slot < 0 || ticket.slot >= state.slots || ticket.generation < 0 || ticket.generation > 0xffffffff) {
      throw makeError(Error, 'ERR_SABPOOL_BAD_TICKET', `ticket names slot ${ticket.slot} generation ${ticket.generation}, which this pool does not have`)
    }
    const length = poolAdopt(state.id, ticket.slot, ticket.generation)
    if (length < 0) throw statusError(length, 'adopt')
    return new Lease(state, ticket.slot, ticket.generation, length)
  }

  /** Counters for the whole pool, summed over every thread attached to it. */
  stats() {
    const s = binding.poolStats(this.#state.id)
    return {
      slots: s.slots,
      inUse: s.inUse,
      free: s.free,
      highWater: s.highWater,
      acquired: s.acquired,
      released: s.released,
      reclaimed: s.reclaimed,
      waits: s.waits,
    }
  }

  /**
   * Detaches this thread now: every lease it still holds goes back to the pool. Happens on its
   * own when the thread exits or the pool object is garbage-collected.
   */
  detach() {
    const state = this.#state
    state.attachment.detach()
    // Registry ids are reused; make sure this object can never reach another pool's entry.
    state.id = DETACHED_ID
  }

  [Symbol.for('nodejs.util.inspect.custom')]() {
    return `SharedPool { id: ${this.id}, slots: ${this.slots}, slotSize: ${this.slotSize} }`
  }
}

module.exports = {
  SharedPool,
  Lease,
  AbortError,
  // Internal pieces the channel module builds on.
  _internal: { makeError, statusError, checkOptionsObject, checkTimeout, checkSignal, checkSpin, checkInteger, checkLength, parkSync, parkAsync, wakeAll, abortError, describe, OFFSETS, NONE, DETACHED_ID, binding },
}
