'use strict'

// SharedPool: a preallocated pool of fixed-size slots in shared memory, in-process (a
// SharedArrayBuffer) or in a mapped file that other processes open by name.

const { constants: bufferConstants } = require('node:buffer')
const { binding, DETACHED_ID, LAYOUT_VERSION, poolAdopt } = require('./native.js')
const { makeError, statusError, abortError, invalidThis, describe } = require('./errors.js')
const {
  checkOptionsObject, checkTimeout, checkSignal, checkSpin, checkTrackLeaks, checkGeometry,
  checkName, checkDir, checkFileOptions, checkAllowForeignOwner,
} = require('./options.js')
const { spinForFree, spinBriefly, parkSync, parkAsync } = require('./wait.js')
const { PoolState, checkReuse, reserved } = require('./lease.js')
const { MemoryRegion, FileRegion, nativeCall } = require('./region.js')

const HANDLE_KIND = 'sabpool.pool'

/** Constructor token: the object is made from an existing attachment, not from options. */
const ATTACH = Symbol('attach')

/** Largest SharedArrayBuffer a pool may ask for: V8's limit is 2^53 - 1 bytes on 64-bit. */
const MAX_REGION_BYTES = Number.MAX_SAFE_INTEGER

/** node:crypto's randomInt, loaded by the first create: attaching never needs it, and loading
 * node:crypto in a worker cost about a fifth of what loading sabpool did. */
let randomInt = null

/** A random uid for a new pool or channel (0 is never used). */
function newUid() {
  randomInt ??= require('node:crypto').randomInt
  return randomInt(1, 0xffffffff)
}

/**
 * Reads a handle (untrusted: each field once, only those it needs) and checks its kind and layout
 * version. Returns `{ name, dir }` for a file region, else `{ buffer }` (checked to be a
 * SharedArrayBuffer), plus `pool` (the nested pool handle) when `withPool`.
 * `api` and `noun` name the caller in messages ('SharedPool.attach', 'pool').
 */
function readHandle(handle, kind, api, noun, withPool) {
  if (handle === null || typeof handle !== 'object') {
    throw makeError('ERR_SABPOOL_BAD_HANDLE', `${api} needs a ${noun}'s handle (${noun}.handle), got ${describe(handle)}`)
  }
  if (handle.kind !== kind) {
    throw makeError('ERR_SABPOOL_BAD_HANDLE', `${api} needs a ${noun}'s handle (${noun}.handle), got an object of another kind`)
  }
  const version = handle.version
  if (version !== LAYOUT_VERSION) {
    throw makeError('ERR_SABPOOL_BAD_HANDLE', `this handle has layout version ${version}; this sabpool reads version ${LAYOUT_VERSION}`)
  }
  const name = handle.name
  let fields
  if (typeof name === 'string') {
    fields = { name, dir: handle.dir, buffer: undefined }
  } else {
    const buffer = handle.buffer
    if (!(buffer instanceof SharedArrayBuffer)) {
      throw makeError('ERR_SABPOOL_BAD_HANDLE', `handle.buffer must be the ${noun}'s SharedArrayBuffer`)
    }
    fields = { name: undefined, dir: undefined, buffer }
  }
  if (withPool) fields.pool = handle.pool
  return fields
}

/**
 * A pool in a region file this thread just created (`created`) or opened. If its memory cannot be
 * exposed to JS (ERR_SABPOOL_TOO_LARGE), nothing of it is kept: the participant leaves at once,
 * and a file this thread just created is removed again.
 */
function filePool(attachment, name, dir, trackLeaks, created) {
  let region
  try {
    region = new FileRegion(attachment, name, dir)
  } catch (error) {
    if (created) {
      try {
        binding.regionUnlink(attachment.id)
      } catch {
        // already gone: nothing to undo
      }
    }
    attachment.detach()
    throw error
  }
  region.detachAtExit(attachment)
  return new SharedPool(ATTACH, new PoolState(region, attachment, trackLeaks))
}

/** True for a real SharedPool (not merely `instanceof`); set in SharedPool's static block. */
let isPool

class SharedPool {
  #state
  /** `budget => polls made` on the free list, for the brief spin of an async acquire. */
  #pollFree
  #handle

  static {
    isPool = (value) => value !== null && typeof value === 'object' && #state in value
  }

  /**
   * @param {{ slotSize: number, slots: number, maxParticipants?: number }} options
   */
  constructor(options, attached) {
    if (options === ATTACH) {
      this.#state = attached
    } else {
      options = checkOptionsObject('options', options)
      const given = { slotSize: options.slotSize, slots: options.slots, maxParticipants: options.maxParticipants, trackLeaks: options.trackLeaks }
      if (given.slotSize === undefined && given.slots === undefined) {
        throw makeError('ERR_INVALID_ARG_TYPE', 'new SharedPool({ slotSize, slots }) needs slotSize and slots')
      }
      const { slotSize, slots, maxParticipants } = checkGeometry(given.slotSize, given.slots, given.maxParticipants)
      const trackLeaks = checkTrackLeaks(given.trackLeaks)
      const size = nativeCall(() => binding.poolRegionSize(slotSize, slots, maxParticipants))
      let buffer
      let view
      try {
        if (size > MAX_REGION_BYTES) throw new RangeError('Array buffer allocation failed')
        buffer = new SharedArrayBuffer(size)
        // The binding adopts the memory through a view of all of it, which typed-array limits
        // can refuse (Node 20: 2^32 bytes) even where the buffer itself was allocated.
        view = new Uint8Array(buffer)
      } catch (cause) {
        throw makeError('ERR_SABPOOL_TOO_LARGE',
          `slots × slotSize (${slots} × ${slotSize}) needs a ${size}-byte SharedArrayBuffer, more than this Node can allocate or view as one typed array`, cause)
      }
      const uid = newUid()
      const attachment = nativeCall(() => binding.poolCreate(view, slotSize, slots, maxParticipants, uid))
      this.#state = new PoolState(new MemoryRegion(buffer, 'pool'), attachment, trackLeaks)
    }
    this.#handle = this.#state.region.handle(HANDLE_KIND)
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
    const { name, dir, mode } = checkFileOptions(options)
    const { slotSize, slots, maxParticipants } = checkGeometry(options.slotSize, options.slots, options.maxParticipants)
    const trackLeaks = checkTrackLeaks(options.trackLeaks)
    // Refused before any file is made (its space would be reserved for nothing): a region this
    // Node cannot expose to JS as one buffer (Node 20: more than 2^32 bytes).
    const size = nativeCall(() => binding.poolRegionSize(slotSize, slots, maxParticipants))
    if (size > bufferConstants.MAX_LENGTH) {
      throw makeError('ERR_SABPOOL_TOO_LARGE',
        `slots × slotSize (${slots} × ${slotSize}) needs a ${size}-byte region, more than this Node can expose to JavaScript as one buffer (buffer.constants.MAX_LENGTH is ${bufferConstants.MAX_LENGTH})`)
    }
    const attachment = nativeCall(() =>
      binding.poolCreateFile(dir, name, slotSize, slots, maxParticipants, newUid(), mode))
    return filePool(attachment, name, dir, trackLeaks, true)
  }

  /**
   * Opens a pool that a process created with `SharedPool.create`, validating the file exactly as
   * `attach` validates a handle. Reclaims the slots of participants whose process has died. A
   * pool file owned by another user is refused (ERR_SABPOOL_ACCESS) unless `allowForeignOwner`
   * is true: its owner could read every payload and truncate the file under the mapping.
   * @param {string} name
   * @param {{ dir?: string, trackLeaks?: boolean, allowForeignOwner?: boolean }} [options]
   */
  static open(name, options) {
    checkName(name)
    options = checkOptionsObject('options', options)
    const dir = checkDir(options.dir)
    const trackLeaks = checkTrackLeaks(options.trackLeaks)
    const allowForeignOwner = checkAllowForeignOwner(options.allowForeignOwner)
    const attachment = nativeCall(() => binding.poolOpenFile(dir, name, allowForeignOwner))
    return filePool(attachment, name, dir, trackLeaks, false)
  }

  /**
   * Attaches to a pool created in another thread, given its `handle`. Same memory, no copy.
   */
  static attach(handle, options) {
    options = checkOptionsObject('options', options)
    const trackLeaks = checkTrackLeaks(options.trackLeaks)
    const allowForeignOwner = checkAllowForeignOwner(options.allowForeignOwner)
    const { name, dir, buffer } = readHandle(handle, HANDLE_KIND, 'SharedPool.attach', 'pool', false)
    if (name !== undefined) return SharedPool.open(name, { dir, trackLeaks, allowForeignOwner })
    const attachment = nativeCall(() => binding.poolAttach(new Uint8Array(buffer)))
    return new SharedPool(ATTACH, new PoolState(new MemoryRegion(buffer, 'pool'), attachment, trackLeaks))
  }

  /** @internal */
  get _state() {
    if (!isPool(this)) throw invalidThis('SharedPool', '_state', this)
    return this.#state
  }

  get slotSize() {
    if (!isPool(this)) throw invalidThis('SharedPool', 'slotSize', this)
    return this.#state.slotSize
  }

  get slots() {
    if (!isPool(this)) throw invalidThis('SharedPool', 'slots', this)
    return this.#state.slots
  }

  /** A random id of this pool, carried by tickets. */
  get id() {
    if (!isPool(this)) throw invalidThis('SharedPool', 'id', this)
    return this.#state.uid
  }

  /** Structured-cloneable description; pass it to workers (workerData or postMessage). */
  get handle() {
    if (!isPool(this)) throw invalidThis('SharedPool', 'handle', this)
    return this.#handle
  }

  /** The name a file-backed pool was created or opened with; undefined for an in-process pool. */
  get name() {
    if (!isPool(this)) throw invalidThis('SharedPool', 'name', this)
    return this.#state.region.name
  }

  /** Path of a file-backed pool's file; undefined for an in-process pool. */
  get path() {
    if (!isPool(this)) throw invalidThis('SharedPool', 'path', this)
    return this.#state.region.path(this.#state.ref)
  }

  /**
   * Removes a file-backed pool's name, so it can no longer be opened (or is free to be created
   * anew). Processes that have it open keep using it; its memory is freed when the last one
   * detaches or exits. Returns false if the name was already gone or now names another pool.
   */
  unlink() {
    if (!isPool(this)) throw invalidThis('SharedPool', 'unlink', this)
    return this.#state.region.unlink(this.#state.ref)
  }

  /**
   * Returns the leased slots of participants whose process has died (killed, crashed, exited
   * without detaching) and frees their entries. Opening a pool and waiting a whole park slice
   * for a slot do this too. Returns how many participants and slots were reclaimed.
   * @returns {{ participants: number, slots: number }}
   */
  reclaimDead() {
    if (!isPool(this)) throw invalidThis('SharedPool', 'reclaimDead', this)
    const r = binding.poolReclaimDead(this.#state.ref)
    return { participants: r.participants, slots: r.slots }
  }

  /**
   * A free slot, or null when every slot is in use. Never waits.
   * @param {{ reuse?: Lease }} [options] `reuse`: re-arm this no-longer-owned Lease object instead
   *   of allocating a new one (allocation-free hot loops)
   */
  tryAcquire(options) {
    // The read of #state is the brand check: it throws on anything but a SharedPool (see Lease).
    let state
    try {
      state = this.#state
    } catch {
      throw invalidThis('SharedPool', 'tryAcquire', this)
    }
    const reuse = options === undefined ? undefined : checkReuse(checkOptionsObject('options', options).reuse)
    return state.tryAcquire(reuse) ?? null
  }

  /**
   * Waits for a free slot without blocking the event loop.
   * @param {{ timeout?: number, signal?: AbortSignal, reuse?: Lease }} [options] `reuse`: re-arm
   *   this no-longer-owned Lease object instead of allocating a new one; reserved until the call
   *   settles
   */
  async acquire(options) {
    if (!isPool(this)) throw invalidThis('SharedPool', 'acquire', this)
    options = checkOptionsObject('options', options)
    // Every option is read before any is checked (see Channel#recv).
    const timeoutOption = options.timeout
    const signalOption = options.signal
    const reuseOption = options.reuse
    const timeout = checkTimeout(timeoutOption)
    const signal = checkSignal(signalOption)
    const reuse = checkReuse(reuseOption)
    if (signal !== undefined && signal.aborted) throw abortError(signal.target)
    const state = this.#state
    let lease = state.tryAcquire(reuse)
    if (lease !== undefined) return lease
    // A brief spin while such spins have been paying off, then a park.
    const policy = state.freeSite.spin
    if (policy.spinAsync()) {
      const i32 = state.i32
      const poll = this.#pollFree ??= (budget) => spinForFree(i32, budget)
      lease = spinBriefly(poll) ? state.tryAcquire(reuse) : undefined
      policy.spun(lease !== undefined)
      if (lease !== undefined) return lease
    }
    return reserved(reuse, () => parkAsync(state.freeSite, () => state.tryAcquire(reuse), timeout, signal, 'acquire'))
  }

  /**
   * Waits for a free slot, blocking this thread (meant for workers).
   * @param {{ timeout?: number, spin?: number }} [options]
   */
  acquireSync(options) {
    if (!isPool(this)) throw invalidThis('SharedPool', 'acquireSync', this)
    options = checkOptionsObject('options', options)
    const timeout = checkTimeout(options.timeout)
    const spin = checkSpin(options.spin)
    const reuse = checkReuse(options.reuse)
    const state = this.#state
    let lease = state.tryAcquire(reuse)
    const policy = state.freeSite.spin
    for (let budget = policy.budget(spin); lease === undefined && budget > 0;) {
      budget -= spinForFree(state.i32, budget)
      lease = state.tryAcquire(reuse)
    }
    if (lease === undefined) return this.#parkForFree(timeout, reuse)
    policy.parked = false
    return lease
  }

  /** Kept apart from acquireSync so its closure is only allocated when the thread parks. */
  #parkForFree(timeout, reuse) {
    const state = this.#state
    return reserved(reuse, () => parkSync(state.freeSite, () => state.tryAcquire(reuse), timeout, 'acquireSync'))
  }

  /**
   * Takes ownership of a slot that another thread handed off with `lease.handoff()`.
   */
  adopt(ticket) {
    if (!isPool(this)) throw invalidThis('SharedPool', 'adopt', this)
    const state = this.#state
    if (ticket === null || typeof ticket !== 'object') {
      throw makeError('ERR_SABPOOL_BAD_TICKET', `adopt needs a ticket from lease.handoff(), got ${describe(ticket)}`)
    }
    // Untrusted: each field is read once, and only these locals are checked and used.
    const pool = ticket.pool
    const slot = ticket.slot
    const generation = ticket.generation
    const length = ticket.length
    if (!Number.isInteger(slot) || !Number.isInteger(generation) || !Number.isInteger(pool) ||
      (length !== undefined && !Number.isInteger(length))) {
      throw makeError('ERR_SABPOOL_BAD_TICKET', 'adopt needs a ticket from lease.handoff(), got an object whose pool, slot, generation or length is not an integer')
    }
    if (pool !== state.uid) {
      throw makeError('ERR_SABPOOL_BAD_TICKET', `this ticket belongs to pool ${pool}, not to this pool (${state.uid})`)
    }
    if (slot < 0 || slot >= state.slots || generation < 0 || generation > 0xffffffff) {
      throw makeError('ERR_SABPOOL_BAD_TICKET', `ticket names slot ${slot} generation ${generation}, which this pool does not have`)
    }
    const recorded = poolAdopt(state.ref, slot, generation)
    if (recorded < 0) throw statusError(recorded, 'adopt')
    return state.lease(slot, recorded, undefined)
  }

  /** Counters for the whole pool, summed over every thread attached to it. */
  stats() {
    if (!isPool(this)) throw invalidThis('SharedPool', 'stats', this)
    const s = binding.poolStats(this.#state.ref)
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
    if (!isPool(this)) throw invalidThis('SharedPool', 'detach', this)
    const state = this.#state
    state.attachment.detach()
    // Registry ids are reused; make sure this object can never reach another pool's entry.
    state.ref = DETACHED_ID
  }

  [Symbol.for('nodejs.util.inspect.custom')]() {
    if (!isPool(this)) return 'SharedPool <not a pool>'
    return `SharedPool { id: ${this.id}, slots: ${this.slots}, slotSize: ${this.slotSize} }`
  }
}

module.exports = { SharedPool, ATTACH, isPool, readHandle, newUid }
