'use strict'

// sabpool: a preallocated shared-memory buffer pool for worker_threads and processes.
//
// Rust (the native binding) owns the region layout, validation and every ownership transition;
// this file adds ergonomics: option checking, Lease objects, typed errors and waiting. Pools in a
// SharedArrayBuffer park in JS, because only JS `Atomics.wait`/`waitAsync`/`notify` can park and
// wake JS threads (V8 keeps its own wait list). Pools in a mapped file are shared with other
// processes, which V8's wait list cannot reach: those park on futexes, natively.

const binding = require('./binding.js')
const { randomInt } = require('node:crypto')
const diagnostics = require('node:diagnostics_channel')
const fs = require('node:fs')
const os = require('node:os')

const {
  poolAcquire,
  poolRelease,
  poolHandoff,
  poolAdopt,
  channelSend,
  channelRecv,
} = binding

/** Constants shared with the native side, defined there once. */
const PROTOCOL = binding.protocol()
const OFFSETS = PROTOCOL.offsets
const STATUS = new Map(PROTOCOL.statuses.map((s) => [s.status, s]))
/** Fast-call result: nothing to take (empty, full, no free slot). */
const NONE = PROTOCOL.statusNone
/** An id no registry entry has: calls with it fail with ERR_SABPOOL_DETACHED. */
const DETACHED_ID = PROTOCOL.detachedId

/** How long one park lasts at most before re-checking. Bounds the delay when a wake-up cannot be
 * delivered, e.g. a worker torn down while its slots are reclaimed (no JS runs then to notify). */
const PARK_SLICE_MS = 50
/** Default number of non-blocking retries before parking in the blocking (worker) waits. */
const DEFAULT_SPIN = 4000

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

/** Stands in for an absent options object, so calls without options allocate nothing. */
const NO_OPTIONS = Object.freeze({})

function checkOptionsObject(name, options) {
  if (options === undefined) return NO_OPTIONS
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

// ---- spinning ----------------------------------------------------------------------------------
//
// Before parking, a blocking call polls one shared word with `Atomics.load` (a few ns, no native
// call, no write to the contended line) until it says the call may now succeed, then retries.

const FREE_HEAD = OFFSETS.freeHead >>> 2 // low half of the tagged head: the first free slot
const NIL_INDEX = -1 // u32::MAX read through an Int32Array
const ENQUEUE = OFFSETS.enqueue >>> 2 // low halves of the ring positions
const DEQUEUE = OFFSETS.dequeue >>> 2
const CELLS = OFFSETS.cells >>> 2 // ring cells: sequence (u64), value (u64)
const CELL_WORDS = OFFSETS.cellSize >>> 2

/** Polls until the free list is non-empty, at most `spin` times. */
function spinForFree(i32, spin) {
  for (let i = 0; i < spin; i++) {
    if (Atomics.load(i32, FREE_HEAD) !== NIL_INDEX) return i + 1
  }
  return spin
}

/**
 * Polls until the cell at the dequeue position is published (its sequence, low half, becomes
 * position + 1), at most `spin` times. Polling the cell rather than the enqueue word means the
 * receiver only pulls in the cache line it has to read anyway. The closed flag (bit 63 of the
 * enqueue word: the sign of its high half) is checked every 64 polls.
 */
function spinForSent(i32, mask, spin) {
  const dequeued = Atomics.load(i32, DEQUEUE)
  const cell = CELLS + (dequeued & mask) * CELL_WORDS
  const published = (dequeued + 1) | 0
  for (let i = 0; i < spin; i++) {
    if (Atomics.load(i32, cell) === published) return i + 1
    if ((i & 63) === 63 && (Atomics.load(i32, ENQUEUE + 1) < 0 || Atomics.load(i32, DEQUEUE) !== dequeued)) return i + 1
  }
  return spin
}

/** Polls until the dequeue position moves away from `dequeued` (room was made), at most `spin` times. */
function spinForRoom(i32, dequeued, spin) {
  for (let i = 0; i < spin; i++) {
    if (Atomics.load(i32, DEQUEUE) !== dequeued || Atomics.load(i32, ENQUEUE + 1) < 0) return i + 1
  }
  return spin
}

/** Checks an optional `reuse` lease: it must be a Lease this thread no longer owns. */
function checkReuse(reuse) {
  if (reuse === undefined || reuse === null) return undefined
  if (!(reuse instanceof Lease)) {
    throw makeError(TypeError, 'ERR_INVALID_ARG_TYPE', `reuse must be a Lease, got ${describe(reuse)}`)
  }
  if (reuse.owned) {
    throw makeError(Error, 'ERR_SABPOOL_LEASE_IN_USE', `reuse must be a lease that was released, handed off or sent; slot ${reuse.slot} is still owned`)
  }
  return reuse
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
 * Where a kind of wait parks: the epoch word, and how to register a waiter. Registration goes
 * through the native side, which remembers this thread's registered waits so that a thread torn
 * down mid-wait (no JS runs then) does not leave the shared waiter count raised.
 */
class WaitSite {
  constructor(i32, epochIndex, register, noteWait, kind, id) {
    this.i32 = i32
    this.epochIndex = epochIndex
    this.register = register
    this.noteWait = noteWait
    /** 'pool' or 'channel', and that object's random id: what diagnostics report. */
    this.kind = kind
    this.id = id
  }

  /** Blocks while the epoch word still holds `epoch`, at most `ms`; true if the time ran out. */
  sleep(epoch, ms) {
    return Atomics.wait(this.i32, this.epochIndex, epoch, ms) === 'timed-out'
  }

  /** A promise settled once the epoch word no longer holds `epoch` or after about `ms` (the
   * caller also bounds it with a timer), or undefined when the word already moved on. */
  changed(epoch, ms) {
    const waited = Atomics.waitAsync(this.i32, this.epochIndex, epoch, ms)
    return waited.async ? waited.value : undefined
  }

  /** Called after a park slice ran out without a wake-up. */
  idle() {}
}

/**
 * Where a wait parks on a file-backed region: a futex on the epoch word, which wakes across
 * processes. Blocking waits sleep in the kernel; async waits arm a native watcher thread of this
 * attachment, which calls back once the word moves on.
 */
class FileWaitSite extends WaitSite {
  constructor(i32, epochIndex, register, noteWait, kind, id, attachmentId, siteKind, idle) {
    super(i32, epochIndex, register, noteWait, kind, id)
    this.attachmentId = attachmentId
    this.siteKind = siteKind
    this.onIdle = idle
    this.watching = false
    /** The async wait armed natively: `{ epoch, promise, resolve }`. */
    this.pending = undefined
  }

  sleep(epoch, ms) {
    const started = performance.now()
    binding.waitFile(this.attachmentId(), this.siteKind, epoch, ms)
    return performance.now() - started >= ms
  }

  changed(epoch, _ms) {
    if (Atomics.load(this.i32, this.epochIndex) !== epoch) return undefined
    const id = this.attachmentId()
    if (!this.watching) {
      binding.watchFile(id, this.siteKind, () => this.#fire())
      this.watching = true
    }
    const pending = this.pending
    if (pending !== undefined) {
      if (pending.epoch === epoch) return pending.promise
      // The word moved on since that wait was armed: its waiters may retry now.
      this.#fire()
    }
    let resolve
    const promise = new Promise((r) => { resolve = r })
    this.pending = { epoch, promise, resolve }
    binding.armFile(id, this.siteKind, epoch)
    return promise
  }

  #fire() {
    const pending = this.pending
    this.pending = undefined
    if (pending !== undefined) pending.resolve()
  }

  idle() {
    if (this.onIdle !== undefined) this.onIdle()
  }
}

/** Wait sites of a region: JS atomics in a SharedArrayBuffer, futexes in a mapped file. */
function waitSite(file, i32, epochOffset, register, noteWait, kind, id, attachmentId, siteKind, idle) {
  return file
    ? new FileWaitSite(i32, epochOffset >>> 2, register, noteWait, kind, id, attachmentId, siteKind, idle)
    : new WaitSite(i32, epochOffset >>> 2, register, noteWait, kind, id)
}
const SITE_FREE_SLOT = PROTOCOL.siteFreeSlot
const SITE_RECEIVED = PROTOCOL.siteReceived
const SITE_ROOM = PROTOCOL.siteRoom

/**
 * `diagnostics_channel` named 'sabpool:wait': one message per wait that had to go past the fast
 * path, `{ kind, id, op, ms, outcome }` (outcome: 'ok', 'timeout', 'abort' or 'error').
 * Publishing costs nothing while nobody subscribes.
 */
const waitChannel = diagnostics.channel('sabpool:wait')

function publishWait(site, op, started, error) {
  const outcome = error === undefined ? 'ok'
    : error.code === 'ERR_SABPOOL_TIMEOUT' ? 'timeout'
      : error.name === 'AbortError' ? 'abort' : 'error'
  waitChannel.publish({ kind: site.kind, id: site.id, op, ms: performance.now() - started, outcome })
}

/**
 * Blocking wait (workers). `attempt` returns a result, or undefined to keep waiting.
 * Throws ERR_SABPOOL_TIMEOUT at the deadline.
 */
function parkSync(site, attempt, timeout, what) {
  if (!waitChannel.hasSubscribers) return parkSyncLoop(site, attempt, timeout, what)
  const started = performance.now()
  try {
    const result = parkSyncLoop(site, attempt, timeout, what)
    publishWait(site, what, started)
    return result
  } catch (error) {
    publishWait(site, what, started, error)
    throw error
  }
}

function parkSyncLoop(site, attempt, timeout, what) {
  const deadline = performance.now() + timeout
  for (;;) {
    site.register(1)
    try {
      const epoch = Atomics.load(site.i32, site.epochIndex)
      const result = attempt()
      if (result !== undefined) return result
      const remaining = deadline - performance.now()
      if (remaining <= 0) throw timeoutError(what, timeout)
      site.noteWait()
      if (site.sleep(epoch, Math.min(remaining, PARK_SLICE_MS))) site.idle()
    } finally {
      site.register(-1)
    }
  }
}

/**
 * Non-blocking wait (any thread). While a park is pending, a ref'd timer keeps the event loop
 * alive: `Atomics.waitAsync` alone does not (nodejs/node#44729).
 */
async function parkAsync(site, attempt, timeout, signal, what) {
  if (!waitChannel.hasSubscribers) return parkAsyncLoop(site, attempt, timeout, signal, what)
  const started = performance.now()
  try {
    const result = await parkAsyncLoop(site, attempt, timeout, signal, what)
    publishWait(site, what, started)
    return result
  } catch (error) {
    publishWait(site, what, started, error)
    throw error
  }
}

const SLICE_ENDED = Symbol('slice ended')

async function parkAsyncLoop(site, attempt, timeout, signal, what) {
  const deadline = performance.now() + timeout
  for (;;) {
    if (signal !== undefined && signal.aborted) throw abortError(signal)
    site.register(1)
    // The slice timer also keeps the event loop alive while the park is pending.
    let slice
    let onAbort
    try {
      const epoch = Atomics.load(site.i32, site.epochIndex)
      const result = attempt()
      if (result !== undefined) return result
      const remaining = deadline - performance.now()
      if (remaining <= 0) throw timeoutError(what, timeout)
      site.noteWait()
      const ms = Math.min(remaining, PARK_SLICE_MS)
      const changed = site.changed(epoch, ms)
      if (changed !== undefined) {
        const outcome = await new Promise((resolve, reject) => {
          slice = setTimeout(resolve, ms, SLICE_ENDED)
          if (signal !== undefined) {
            onAbort = () => reject(abortError(signal))
            signal.addEventListener('abort', onAbort, { once: true })
          }
          changed.then(resolve)
        })
        if (outcome === SLICE_ENDED) site.idle()
      }
    } finally {
      if (slice !== undefined) clearTimeout(slice)
      if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
      site.register(-1)
    }
  }
}

// ---- pool ------------------------------------------------------------------------------------------

const HANDLE_KIND = 'sabpool.pool'
const LAYOUT_VERSION = PROTOCOL.layoutVersion
const OWNED = 0
const RELEASED = 1
const HANDED_OFF = 2
const SENT = 3

/** Everything a pool's hot paths need, as plain fields (shared by SharedPool and its leases). */
class PoolState {
  /** `file`: `{ name, dir }` for a pool in a mapped file (its buffer comes from the binding). */
  constructor(buffer, attachment, trackLeaks, file) {
    const info = binding.poolDescribe(attachment.id)
    this.attachment = attachment
    this.id = attachment.id
    this.file = file
    if (file !== undefined) buffer = binding.regionBuffer(attachment.id)
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
    // A file-backed pool starved for a whole slice checks whether a dead process holds slots.
    this.freeSite = waitSite(file !== undefined, this.i32, OFFSETS.freeEpoch,
      (delta) => binding.poolWaiting(this.id, delta), () => binding.poolNoteWait(this.id), 'pool', this.uid,
      () => this.id, SITE_FREE_SLOT, () => binding.poolReclaimDead(this.id))
    /** Set when leak tracking is on: finds leases garbage-collected while still owned. */
    this.leaks = trackLeaks ? new FinalizationRegistry((record) => this.reclaimLeaked(record)) : undefined
  }

  /** Leak tracking: remember where a lease was taken, until it is released, handed off or sent. */
  track(lease) {
    const where = new Error('acquired here').stack.split('\n').slice(1)
      .filter((frame) => !frame.includes(__filename)).join('\n')
    this.leaks.register(lease, { slot: lease.slot, generation: lease.generation, where }, lease)
  }

  untrack(lease) {
    this.leaks.unregister(lease)
  }

  /** A tracked lease was garbage-collected while this thread still owned its slot. */
  reclaimLeaked({ slot, generation, where }) {
    let wake
    try {
      wake = binding.poolReclaimLease(this.id, slot, generation)
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

  /** Generation of a slot this thread now owns (the high half of its state word). */
  generation(slot) {
    return this.u32[(this.metaOffset + slot * OFFSETS.metaSize + OFFSETS.metaWord + 4) >>> 2]
  }

  /** Length recorded for a slot this thread now owns. */
  recordedLength(slot) {
    return this.u32[(this.metaOffset + slot * OFFSETS.metaSize + OFFSETS.metaLength) >>> 2]
  }

  /** A Lease object for a slot this thread now owns: `reuse` re-armed, or a new one. */
  lease(slot, length, reuse) {
    const generation = this.generation(slot)
    let lease = reuse
    if (lease === undefined) lease = new Lease(this, slot, generation, length)
    else lease._rearm(this, slot, generation, length)
    if (this.leaks !== undefined) this.track(lease)
    return lease
  }

  tryAcquire(reuse) {
    const slot = poolAcquire(this.id)
    if (slot < 0) {
      if (slot === NONE) return undefined
      throw statusError(slot, 'acquire')
    }
    return this.lease(slot, 0, reuse)
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
    if (pool.leaks !== undefined) pool.untrack(this)
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
    if (pool.leaks !== undefined) pool.untrack(this)
    // A handoff moves the generation on (so tickets of earlier handoffs of this slot go stale);
    // nobody can adopt before the ticket leaves this thread, so the word is still ours to read.
    return { pool: pool.uid, slot: this.#slot, generation: pool.generation(this.#slot), length: this.#length }
  }

  /**
   * @internal Offers the lease to a channel's ring. Returns the native status: 0 or 1 (sent; 1 =
   * receivers must be woken) or NONE (full: the lease stays ours).
   */
  _sendTo(channelId, length) {
    this.#checkOwned('send')
    const pool = this.#pool
    const status = channelSend(channelId, pool.id, this.#slot, this.#generation, length)
    if (status >= 0) {
      this.#state = SENT
      this.#length = length
      if (pool.leaks !== undefined) pool.untrack(this)
    } else if (status !== NONE) {
      throw statusError(status, 'send')
    }
    return status
  }

  /**
   * @internal Points a lease this thread no longer owns at a newly owned slot (the caller checked
   * it with `checkReuse` before taking the slot, so this cannot fail and lose the slot).
   */
  _rearm(pool, slot, generation, length) {
    this.#pool = pool
    this.#slot = slot
    this.#generation = generation
    this.#length = length
    this.#state = OWNED
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

/** Leak tracking is on for a pool when asked for, or for every pool with SABPOOL_TRACK_LEAKS=1. */
function checkTrackLeaks(value) {
  if (value === undefined) return process.env.SABPOOL_TRACK_LEAKS === '1'
  if (typeof value !== 'boolean') {
    throw makeError(TypeError, 'ERR_INVALID_ARG_TYPE', `trackLeaks must be a boolean, got ${describe(value)}`)
  }
  return value
}

// ---- file-backed regions ---------------------------------------------------------------------------

/** Where region files go unless `dir` says otherwise: the RAM-backed /dev/shm where there is one. */
const DEFAULT_DIR = (() => {
  try {
    if (fs.statSync('/dev/shm').isDirectory()) return '/dev/shm'
  } catch {}
  return os.tmpdir()
})()
const DEFAULT_MODE = PROTOCOL.defaultFileMode

function checkName(name) {
  if (typeof name !== 'string') {
    throw makeError(TypeError, 'ERR_INVALID_ARG_TYPE', `name must be a string, got ${describe(name)}`)
  }
  return name
}

function checkDir(dir) {
  if (dir === undefined) return DEFAULT_DIR
  if (typeof dir !== 'string' || dir.length === 0) {
    throw makeError(TypeError, 'ERR_INVALID_ARG_TYPE', `dir must be a non-empty string, got ${describe(dir)}`)
  }
  return dir
}

function checkMode(mode) {
  if (mode === undefined) return DEFAULT_MODE
  checkInteger('mode', mode, 0, 0o777)
  if ((mode & 0o600) !== 0o600) {
    throw makeError(RangeError, 'ERR_OUT_OF_RANGE', `mode must let the owner read and write (0o600 set), got 0o${mode.toString(8)}`)
  }
  return mode
}

/**
 * File-backed attachments of this thread. `process.exit()` and uncaught exceptions end a process
 * without running the addon's environment cleanup, so on 'exit' they are detached here: other
 * processes get their slots back at once instead of at the next dead-process check.
 */
const fileAttachments = new Set()
/** Size of `fileAttachments` after it was last cleared of collected attachments. */
let fileAttachmentsKept = 0
let exitHooked = false

function detachAtExit(attachment) {
  if (!exitHooked) {
    exitHooked = true
    process.once('exit', () => {
      for (const ref of fileAttachments) ref.deref()?.detach()
      fileAttachments.clear()
    })
  }
  // A process that opens pools again and again must not accumulate references: drop those whose
  // attachment was collected whenever the set has doubled since the last time.
  if (fileAttachments.size >= 2 * Math.max(fileAttachmentsKept, 16)) {
    for (const ref of fileAttachments) if (ref.deref() === undefined) fileAttachments.delete(ref)
    fileAttachmentsKept = fileAttachments.size
  }
  fileAttachments.add(new WeakRef(attachment))
}

/** Runs a native file operation; a bad name or mode becomes a TypeError or RangeError, as for
 * other bad arguments. */
function fileCall(call) {
  try {
    return call()
  } catch (error) {
    const code = error !== null && typeof error === 'object' ? error.code : undefined
    if (code === 'ERR_SABPOOL_BAD_NAME') throw makeError(TypeError, code, error.message)
    if (code === 'ERR_OUT_OF_RANGE') throw makeError(RangeError, code, error.message)
    throw error
  }
}

/** A pool's `slotSize`, `slots` and `maxParticipants` options, checked. */
function checkGeometry(options) {
  return {
    slotSize: checkInteger('slotSize', options.slotSize, 1, OFFSETS.maxSlotSize),
    slots: checkInteger('slots', options.slots, 1, OFFSETS.maxSlots),
    maxParticipants: options.maxParticipants === undefined
      ? OFFSETS.defaultParticipants
      : checkInteger('maxParticipants', options.maxParticipants, 1, OFFSETS.maxParticipants),
  }
}

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
      const { slotSize, slots, maxParticipants } = checkGeometry(options)
      const trackLeaks = checkTrackLeaks(options.trackLeaks)
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
      this.#state = new PoolState(buffer, attachment, trackLeaks)
    }
    const file = this.#state.file
    this.#handle = Object.freeze(file === undefined
      ? { kind: HANDLE_KIND, version: LAYOUT_VERSION, buffer: this.#state.buffer }
      : { kind: HANDLE_KIND, version: LAYOUT_VERSION, name: file.name, dir: file.dir })
  }

  /**
   * Creates a pool in a memory-mapped file that other processes can open by name
   * (`<dir>/sabpool.<name>.pool`, dir defaulting to /dev/shm). A file of that name left over by
   * processes that are all gone is replaced; one still in use is not (ERR_SABPOOL_EXISTS).
   * @param {{ name: string, slotSize: number, slots: number, maxParticipants?: number,
   *   mode?: number, dir?: string, trackLeaks?: boolean }} options
   */
  static create(options) {
    options = checkOptionsObject('options', options)
    const name = checkName(options.name)
    const dir = checkDir(options.dir)
    const mode = checkMode(options.mode)
    const { slotSize, slots, maxParticipants } = checkGeometry(options)
    const trackLeaks = checkTrackLeaks(options.trackLeaks)
    const attachment = fileCall(() =>
      binding.poolCreateFile(dir, name, slotSize, slots, maxParticipants, randomInt(1, 0xffffffff), mode))
    detachAtExit(attachment)
    return new SharedPool(ATTACH, new PoolState(undefined, attachment, trackLeaks, { name, dir }))
  }

  /**
   * Opens a pool that a process created with `SharedPool.create`, validating the file exactly as
   * `attach` validates a handle. Reclaims the slots of participants whose process has died.
   * @param {string} name
   * @param {{ dir?: string, trackLeaks?: boolean }} [options]
   */
  static open(name, options) {
    checkName(name)
    options = checkOptionsObject('options', options)
    const dir = checkDir(options.dir)
    const trackLeaks = checkTrackLeaks(options.trackLeaks)
    const attachment = fileCall(() => binding.poolOpenFile(dir, name))
    detachAtExit(attachment)
    return new SharedPool(ATTACH, new PoolState(undefined, attachment, trackLeaks, { name, dir }))
  }

  /**
   * Attaches to a pool created in another thread, given its `handle`. Same memory, no copy.
   */
  static attach(handle, options) {
    options = checkOptionsObject('options', options)
    const trackLeaks = checkTrackLeaks(options.trackLeaks)
    if (handle === null || typeof handle !== 'object' || handle.kind !== HANDLE_KIND) {
      throw makeError(TypeError, 'ERR_SABPOOL_BAD_HANDLE', `SharedPool.attach needs a pool's handle (pool.handle), got ${describe(handle)}`)
    }
    if (handle.version !== LAYOUT_VERSION) {
      throw makeError(Error, 'ERR_SABPOOL_BAD_HANDLE', `this handle has layout version ${handle.version}; this sabpool reads version ${LAYOUT_VERSION}`)
    }
    if (typeof handle.name === 'string') return SharedPool.open(handle.name, { dir: handle.dir, trackLeaks })
    if (!(handle.buffer instanceof SharedArrayBuffer)) {
      throw makeError(TypeError, 'ERR_SABPOOL_BAD_HANDLE', 'handle.buffer must be the pool\'s SharedArrayBuffer')
    }
    const attachment = binding.poolAttach(new Uint8Array(handle.buffer))
    return new SharedPool(ATTACH, new PoolState(handle.buffer, attachment, trackLeaks))
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

  /** The name a file-backed pool was created or opened with; undefined for an in-process pool. */
  get name() {
    return this.#state.file?.name
  }

  /** Path of a file-backed pool's file; undefined for an in-process pool. */
  get path() {
    return this.#state.file === undefined ? undefined : binding.regionPath(this.#state.id)
  }

  /**
   * Removes a file-backed pool's name, so it can no longer be opened (or is free to be created
   * anew). Processes that have it open keep using it; its memory is freed when the last one
   * detaches or exits. Returns false if the name was already gone or now names another pool.
   */
  unlink() {
    if (this.#state.file === undefined) {
      throw makeError(Error, 'ERR_SABPOOL_NOT_FILE', 'unlink: this pool is not backed by a file (create it with SharedPool.create)')
    }
    return fileCall(() => binding.regionUnlink(this.#state.id))
  }

  /**
   * Returns the leased slots of participants whose process has died (killed, crashed, exited
   * without detaching) and frees their entries. Opening a pool and waiting a whole park slice
   * for a slot do this too. Returns how many participants and slots were reclaimed.
   * @returns {{ participants: number, slots: number }}
   */
  reclaimDead() {
    const r = binding.poolReclaimDead(this.#state.id)
    return { participants: r.participants, slots: r.slots }
  }

  /**
   * A free slot, or null when every slot is in use. Never waits.
   * @param {{ reuse?: Lease }} [options] `reuse`: re-arm this no-longer-owned Lease object instead
   *   of allocating a new one (allocation-free hot loops)
   */
  tryAcquire(options) {
    const reuse = options === undefined ? undefined : checkReuse(checkOptionsObject('options', options).reuse)
    return this.#state.tryAcquire(reuse) ?? null
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
    return parkAsync(state.freeSite, () => state.tryAcquire(), timeout, signal, 'acquire')
  }

  /**
   * Waits for a free slot, blocking this thread (meant for workers).
   * @param {{ timeout?: number, spin?: number }} [options]
   */
  acquireSync(options) {
    options = checkOptionsObject('options', options)
    const timeout = checkTimeout(options.timeout)
    const spin = checkSpin(options.spin)
    const reuse = checkReuse(options.reuse)
    const state = this.#state
    let lease = state.tryAcquire(reuse)
    for (let budget = spin; lease === undefined && budget > 0;) {
      budget -= spinForFree(state.i32, budget)
      lease = state.tryAcquire(reuse)
    }
    return lease ?? this.#parkForFree(timeout, reuse)
  }

  /** Kept apart from acquireSync so its closure is only allocated when the thread parks. */
  #parkForFree(timeout, reuse) {
    const state = this.#state
    return parkSync(state.freeSite, () => state.tryAcquire(reuse), timeout, 'acquireSync')
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
    return state.lease(ticket.slot, length, undefined)
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
      waiting: s.waiting,
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

// ---- channel ---------------------------------------------------------------------------------------

const CHANNEL_KIND = 'sabpool.channel'
const CLOSED = PROTOCOL.statusClosed

function checkCapacity(capacity) {
  checkInteger('capacity', capacity, 2, OFFSETS.maxCapacity)
  if ((capacity & (capacity - 1)) !== 0) {
    throw makeError(RangeError, 'ERR_OUT_OF_RANGE', `capacity must be a power of two, got ${capacity}`)
  }
  return capacity
}

function checkFilePool(pool, what) {
  if (!(pool instanceof SharedPool)) {
    throw makeError(TypeError, 'ERR_INVALID_ARG_TYPE', `${what} needs a SharedPool, got ${describe(pool)}`)
  }
  if (pool._state.file === undefined) {
    throw makeError(TypeError, 'ERR_SABPOOL_NOT_FILE', `${what} needs a pool made with SharedPool.create or SharedPool.open, so other processes can reach it`)
  }
}

class Channel {
  #pool
  #state
  #attachment
  #id
  #i32
  #handle
  #spin
  #recvSite
  #sendSite
  #mask
  #file

  /**
   * A bounded ring of slot handoffs in shared memory.
   * @param {SharedPool} pool the pool whose leases travel through the channel
   * @param {{ capacity: number, spin?: number }} options capacity: ring entries, a power of two
   */
  constructor(pool, options, attached) {
    let file
    if (pool === ATTACH) {
      ({ pool, buffer: this.#handle, attachment: this.#attachment, spin: this.#spin, file } = attached)
      this.#pool = pool
    } else {
      if (!(pool instanceof SharedPool)) {
        throw makeError(TypeError, 'ERR_INVALID_ARG_TYPE', `new Channel(pool, { capacity }) needs a SharedPool, got ${describe(pool)}`)
      }
      options = checkOptionsObject('options', options)
      const capacity = checkCapacity(options.capacity)
      this.#spin = checkSpin(options.spin)
      const buffer = new SharedArrayBuffer(binding.channelRegionSize(capacity))
      this.#pool = pool
      this.#attachment = binding.channelCreate(new Uint8Array(buffer), pool._state.id, capacity, randomInt(1, 0xffffffff))
      this.#handle = buffer
    }
    this.#id = this.#attachment.id
    const buffer = file === undefined ? this.#handle : binding.regionBuffer(this.#id)
    this.#state = this.#pool._state
    this.#file = file
    this.#i32 = new Int32Array(buffer)
    this.#mask = binding.channelStats(this.#id).capacity - 1
    this.#handle = Object.freeze(file === undefined
      ? { kind: CHANNEL_KIND, version: LAYOUT_VERSION, buffer, pool: this.#pool.handle }
      : { kind: CHANNEL_KIND, version: LAYOUT_VERSION, name: file.name, dir: file.dir, pool: this.#pool.handle })
    const uid = binding.channelUid(this.#id)
    const isFile = file !== undefined
    this.#recvSite = waitSite(isFile, this.#i32, OFFSETS.recvEpoch,
      (delta) => binding.channelWaiting(this.#id, true, delta), () => binding.channelNoteWait(this.#id, true), 'channel', uid,
      () => this.#id, SITE_RECEIVED)
    this.#sendSite = waitSite(isFile, this.#i32, OFFSETS.sendEpoch,
      (delta) => binding.channelWaiting(this.#id, false, delta), () => binding.channelNoteWait(this.#id, false), 'channel', uid,
      () => this.#id, SITE_ROOM)
  }

  /**
   * Creates a channel in a memory-mapped file (`<dir>/sabpool.<name>.channel`) for a pool made
   * with `SharedPool.create`, so other processes can open it by name. A channel file left over
   * from an earlier pool of the same name is replaced.
   * @param {SharedPool} pool a file-backed pool
   * @param {{ name: string, capacity: number, spin?: number, mode?: number, dir?: string }} options
   */
  static create(pool, options) {
    checkFilePool(pool, 'Channel.create')
    options = checkOptionsObject('options', options)
    const name = checkName(options.name)
    const dir = checkDir(options.dir)
    const mode = checkMode(options.mode)
    const capacity = checkCapacity(options.capacity)
    const spin = checkSpin(options.spin)
    const attachment = fileCall(() =>
      binding.channelCreateFile(dir, name, pool._state.id, capacity, randomInt(1, 0xffffffff), mode))
    return new Channel(ATTACH, undefined, { pool, attachment, spin, file: { name, dir } })
  }

  /**
   * Opens a channel that a process created with `Channel.create`; received leases belong to
   * `pool`, which must be the channel's pool (opened with `SharedPool.open`).
   * @param {string} name
   * @param {SharedPool} pool
   * @param {{ dir?: string, spin?: number }} [options]
   */
  static open(name, pool, options) {
    checkName(name)
    checkFilePool(pool, 'Channel.open')
    options = checkOptionsObject('options', options)
    const dir = checkDir(options.dir)
    const spin = checkSpin(options.spin)
    const attachment = fileCall(() => binding.channelOpenFile(dir, name, pool._state.id))
    return new Channel(ATTACH, undefined, { pool, attachment, spin, file: { name, dir } })
  }

  /**
   * Attaches to a channel created in another thread. The handle carries the pool's handle; pass an
   * already attached `pool` to have received leases belong to it (otherwise the pool is attached
   * anew and available as `channel.pool`). `options.spin` is this attachment's default spin.
   */
  static attach(handle, pool, options) {
    options = checkOptionsObject('options', options)
    const spin = checkSpin(options.spin)
    if (handle === null || typeof handle !== 'object' || handle.kind !== CHANNEL_KIND) {
      throw makeError(TypeError, 'ERR_SABPOOL_BAD_HANDLE', `Channel.attach needs a channel's handle (channel.handle), got ${describe(handle)}`)
    }
    if (handle.version !== LAYOUT_VERSION) {
      throw makeError(Error, 'ERR_SABPOOL_BAD_HANDLE', `this handle has layout version ${handle.version}; this sabpool reads version ${LAYOUT_VERSION}`)
    }
    const isFile = typeof handle.name === 'string'
    if (!isFile && !(handle.buffer instanceof SharedArrayBuffer)) {
      throw makeError(TypeError, 'ERR_SABPOOL_BAD_HANDLE', 'handle.buffer must be the channel\'s SharedArrayBuffer')
    }
    if (pool === undefined) {
      pool = SharedPool.attach(handle.pool)
    } else if (!(pool instanceof SharedPool)) {
      throw makeError(TypeError, 'ERR_INVALID_ARG_TYPE', `pool must be a SharedPool, got ${describe(pool)}`)
    }
    if (isFile) return Channel.open(handle.name, pool, { dir: handle.dir, spin })
    const attachment = binding.channelAttach(new Uint8Array(handle.buffer), pool._state.id)
    return new Channel(ATTACH, undefined, { pool, buffer: handle.buffer, attachment, spin })
  }

  /** The pool whose leases this channel carries (received leases belong to it). */
  get pool() {
    return this.#pool
  }

  /** Structured-cloneable description, carrying the pool's handle too. */
  get handle() {
    return this.#handle
  }

  #leaseLength(lease, length) {
    if (!(lease instanceof Lease)) {
      throw makeError(TypeError, 'ERR_INVALID_ARG_TYPE', `expected a Lease, got ${describe(lease)}`)
    }
    if (lease._poolUid !== this.#state.uid) {
      throw makeError(Error, 'ERR_SABPOOL_BAD_TICKET', 'this lease belongs to another pool than the channel\'s')
    }
    return length === undefined ? lease.length : checkLength(length, lease._slotSize)
  }

  /** Status of one send attempt; throws on errors (closed channel, stale lease). */
  #offer(lease, length) {
    const status = lease._sendTo(this.#id, length)
    if (status === 1) wakeAll(this.#i32, OFFSETS.recvEpoch >>> 2)
    return status
  }

  /**
   * Sends without waiting. On true the lease belongs to the channel; on false (full) it is still
   * yours.
   */
  trySend(lease, length) {
    return this.#offer(lease, this.#leaseLength(lease, length)) !== NONE
  }

  /**
   * Sends, waiting while the channel is full (backpressure), without blocking the event loop.
   * @param {{ timeout?: number, signal?: AbortSignal }} [options]
   */
  async send(lease, length, options) {
    length = this.#leaseLength(lease, length)
    options = checkOptionsObject('options', options)
    const timeout = checkTimeout(options.timeout)
    const signal = checkSignal(options.signal)
    if (signal !== undefined && signal.aborted) throw abortError(signal)
    if (this.#offer(lease, length) !== NONE) return
    await parkAsync(this.#sendSite, () => (this.#offer(lease, length) !== NONE ? true : undefined),
      timeout, signal, 'send')
  }

  /**
   * Sends, blocking this thread while the channel is full (meant for workers).
   * @param {{ timeout?: number, spin?: number }} [options]
   */
  sendSync(lease, length, options) {
    length = this.#leaseLength(lease, length)
    options = checkOptionsObject('options', options)
    const timeout = checkTimeout(options.timeout)
    const spin = options.spin === undefined ? this.#spin : checkSpin(options.spin)
    if (this.#offer(lease, length) !== NONE) return
    // Full means enqueue = dequeue + capacity: poll until the dequeue position moves.
    const i32 = this.#i32
    for (let budget = spin; budget > 0;) {
      budget -= spinForRoom(i32, Atomics.load(i32, DEQUEUE), budget)
      if (this.#offer(lease, length) !== NONE) return
    }
    this.#parkToSend(lease, length, timeout)
  }

  /** Kept apart from sendSync so its closure is only allocated when the thread parks. */
  #parkToSend(lease, length, timeout) {
    parkSync(this.#sendSite, () => (this.#offer(lease, length) !== NONE ? true : undefined),
      timeout, 'sendSync')
  }

  /** One receive attempt: a Lease, null when closed and drained, undefined when empty. */
  #take(reuse) {
    const state = this.#state
    const status = channelRecv(this.#id, state.id)
    if (status < 0) {
      if (status === NONE) return undefined
      if (status === CLOSED) return null
      throw statusError(status, 'receive')
    }
    const slot = status >>> 1
    if ((status & 1) === 1) wakeAll(this.#i32, OFFSETS.sendEpoch >>> 2)
    return state.lease(slot, state.recordedLength(slot), reuse)
  }

  /**
   * A lease if one is queued, else null (also null when closed and drained).
   * @param {{ reuse?: Lease }} [options] `reuse`: re-arm this no-longer-owned Lease object
   *   instead of allocating a new one
   */
  tryRecv(options) {
    const reuse = options === undefined ? undefined : checkReuse(checkOptionsObject('options', options).reuse)
    return this.#take(reuse) ?? null
  }

  /**
   * Waits for a lease without blocking the event loop; resolves null once the channel is closed
   * and drained. The process stays alive while this is pending.
   * @param {{ timeout?: number, signal?: AbortSignal, spin?: number }} [options]
   */
  async recv(options) {
    options = checkOptionsObject('options', options)
    const timeout = checkTimeout(options.timeout)
    const signal = checkSignal(options.signal)
    if (signal !== undefined && signal.aborted) throw abortError(signal)
    const reuse = checkReuse(options.reuse)
    const lease = this.#take(reuse)
    if (lease !== undefined) return lease
    return parkAsync(this.#recvSite, () => this.#take(reuse), timeout, signal, 'recv')
  }

  /**
   * Waits for a lease, blocking this thread (meant for workers); null once closed and drained.
   * @param {{ timeout?: number, spin?: number }} [options]
   */
  recvSync(options) {
    options = checkOptionsObject('options', options)
    const timeout = checkTimeout(options.timeout)
    const spin = options.spin === undefined ? this.#spin : checkSpin(options.spin)
    const reuse = checkReuse(options.reuse)
    let lease = this.#take(reuse)
    // Positions that differ can still mean "claimed, not yet published": keep polling then.
    for (let budget = spin; lease === undefined && budget > 0;) {
      budget -= spinForSent(this.#i32, this.#mask, budget)
      lease = this.#take(reuse)
    }
    return lease === undefined ? this.#parkToRecv(timeout, reuse) : lease
  }

  /** Kept apart from recvSync so its closure is only allocated when the thread parks. */
  #parkToRecv(timeout, reuse) {
    return parkSync(this.#recvSite, () => this.#take(reuse), timeout, 'recvSync')
  }

  /**
   * Sends as many of `leases` as fit, in order, without waiting; wakes receivers once.
   * @returns {number} how many were sent (the rest are still yours)
   */
  sendMany(leases) {
    if (!Array.isArray(leases)) {
      throw makeError(TypeError, 'ERR_INVALID_ARG_TYPE', `sendMany needs an array of leases, got ${describe(leases)}`)
    }
    let sent = 0
    let wake = false
    try {
      for (const lease of leases) {
        const length = this.#leaseLength(lease) // checks it is a Lease first
        const status = lease._sendTo(this.#id, length)
        if (status === NONE) break
        wake ||= status === 1
        sent++
      }
    } finally {
      // Even when a later lease throws, receivers must learn about the ones already sent.
      if (wake) wakeAll(this.#i32, OFFSETS.recvEpoch >>> 2)
    }
    return sent
  }

  /**
   * Receives up to `max` queued leases without waiting; wakes senders once. Returns null when the
   * channel is closed and drained.
   */
  recvMany(max) {
    checkInteger('max', max, 1, 0xffffffff)
    const state = this.#state
    const out = []
    let wake = false
    while (out.length < max) {
      const status = channelRecv(this.#id, state.id)
      if (status < 0) {
        if (status === NONE) break
        if (status === CLOSED) return out.length === 0 ? null : out
        if (wake) wakeAll(this.#i32, OFFSETS.sendEpoch >>> 2)
        throw statusError(status, 'receive')
      }
      const slot = status >>> 1
      wake ||= (status & 1) === 1
      out.push(state.lease(slot, state.recordedLength(slot), undefined))
    }
    if (wake) wakeAll(this.#i32, OFFSETS.sendEpoch >>> 2)
    return out
  }

  /** `for await (const lease of channel)`: ends when the channel is closed and drained. */
  async * [Symbol.asyncIterator]() {
    for (;;) {
      const lease = await this.recv()
      if (lease === null) return
      yield lease
    }
  }

  /**
   * Closes the channel for every thread: sends fail with ERR_SABPOOL_CLOSED from now on, waiting
   * senders are woken with that error, receivers drain what is queued and then get null.
   */
  close() {
    const wasOpen = binding.channelClose(this.#id)
    wakeAll(this.#i32, OFFSETS.recvEpoch >>> 2)
    wakeAll(this.#i32, OFFSETS.sendEpoch >>> 2)
    return wasOpen
  }

  get closed() {
    return binding.channelStats(this.#id).closed
  }

  stats() {
    const s = binding.channelStats(this.#id)
    return {
      capacity: s.capacity,
      queued: s.queued,
      sent: s.sent,
      received: s.received,
      sendWaits: s.sendWaits,
      recvWaits: s.recvWaits,
      closed: s.closed,
    }
  }

  /** The name a file-backed channel was created or opened with; undefined otherwise. */
  get name() {
    return this.#file?.name
  }

  /** Path of a file-backed channel's file; undefined for an in-process channel. */
  get path() {
    return this.#file === undefined ? undefined : binding.regionPath(this.#id)
  }

  /** Removes a file-backed channel's name (see `SharedPool#unlink`). */
  unlink() {
    if (this.#file === undefined) {
      throw makeError(Error, 'ERR_SABPOOL_NOT_FILE', 'unlink: this channel is not backed by a file (create it with Channel.create)')
    }
    return fileCall(() => binding.regionUnlink(this.#id))
  }

  /** Detaches this thread from the channel (the pool stays attached). */
  detach() {
    this.#attachment.detach()
    this.#id = DETACHED_ID
  }
}

module.exports = {
  SharedPool,
  Channel,
  Lease,
  AbortError,
  // Internal pieces the channel module builds on.
  _internal: { makeError, statusError, checkOptionsObject, checkTimeout, checkSignal, checkSpin, checkInteger, checkLength, parkSync, parkAsync, wakeAll, abortError, describe, OFFSETS, NONE, DETACHED_ID, binding },
}
