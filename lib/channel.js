'use strict'

// Channel: a bounded lock-free MPMC ring of leases in shared memory, in-process or in a mapped
// file next to a file-backed pool.

const { binding, OFFSETS, NONE, CLOSED, DETACHED_ID, SITE_RECEIVED, SITE_ROOM, channelRecv } = require('./native.js')
const { makeError, statusError, abortError, invalidThis, describe } = require('./errors.js')
const {
  checkInteger, checkOptionsObject, checkTimeout, checkSignal, checkSpin, checkLength, checkCapacity,
  checkName, checkDir, checkFileOptions, checkAllowForeignOwner,
} = require('./options.js')
const {
  DEQUEUE, spinForSent, spinForRoom, filledAtDequeue, isClosed, wake, wakeAll, spinBriefly, parkSync, parkAsync,
} = require('./wait.js')
const { isLease, checkReuse, reserved } = require('./lease.js')
const { MemoryRegion, FileRegion, nativeCall } = require('./region.js')
const { SharedPool, ATTACH, isPool, readHandle, newUid } = require('./pool.js')

const CHANNEL_KIND = 'sabpool.channel'
const RECV_EPOCH = OFFSETS.recvEpoch >>> 2
const SEND_EPOCH = OFFSETS.sendEpoch >>> 2
const RECV_WAITERS = OFFSETS.recvWaiters >>> 2
const SEND_WAITERS = OFFSETS.sendWaiters >>> 2

function checkFilePool(pool, what) {
  if (!isPool(pool)) {
    throw makeError('ERR_INVALID_ARG_TYPE', `${what} needs a SharedPool, got ${describe(pool)}`)
  }
  if (!pool._state.region.isFile) {
    throw makeError('ERR_SABPOOL_NOT_FILE', `${what} needs a pool made with SharedPool.create or SharedPool.open, so other processes can reach it`)
  }
}

/** True for a real Channel (not merely `instanceof`); set in Channel's static block. */
let isChannel

class Channel {
  static {
    isChannel = (value) => value !== null && typeof value === 'object' && #ref in value
  }

  #pool
  #state
  #region
  #attachment
  /** This thread's attachment in the native registry (DETACHED_ID once detached). */
  #ref
  #i32
  #handle
  #spin
  #recvSite
  #sendSite
  #mask
  /** `budget => polls made`: spins of async receives and sends (made once, not per call). */
  #pollSent
  #pollRoom

  /**
   * A bounded ring of slot handoffs in shared memory.
   * @param {SharedPool} pool the pool whose leases travel through the channel
   * @param {{ capacity: number, spin?: number }} options capacity: ring entries, a power of two
   */
  constructor(pool, options, attached) {
    let region
    if (pool === ATTACH) {
      ({ pool, attachment: this.#attachment, spin: this.#spin, region } = attached)
    } else {
      if (!isPool(pool)) {
        throw makeError('ERR_INVALID_ARG_TYPE', `new Channel(pool, { capacity }) needs a SharedPool, got ${describe(pool)}`)
      }
      options = checkOptionsObject('options', options)
      const capacity = checkCapacity(options.capacity)
      this.#spin = checkSpin(options.spin)
      const buffer = new SharedArrayBuffer(nativeCall(() => binding.channelRegionSize(capacity)))
      this.#attachment = nativeCall(() =>
        binding.channelCreate(new Uint8Array(buffer), pool._state.ref, capacity, newUid()))
      region = new MemoryRegion(buffer, 'channel')
    }
    this.#pool = pool
    this.#state = pool._state
    this.#region = region
    this.#ref = this.#attachment.id
    this.#i32 = new Int32Array(region.buffer)
    this.#mask = binding.channelStats(this.#ref).capacity - 1
    this.#handle = region.handle(CHANNEL_KIND, pool.handle)
    const uid = binding.channelUid(this.#ref)
    this.#recvSite = this.#waitSite(region, uid, true)
    this.#sendSite = this.#waitSite(region, uid, false)
    const i32 = this.#i32
    const mask = this.#mask
    this.#pollSent = (budget) => spinForSent(i32, mask, budget)
    this.#pollRoom = (budget) => spinForRoom(i32, Atomics.load(i32, DEQUEUE), budget)
  }

  /** Where receivers (`receivers` true) or senders of this channel park. */
  #waitSite(region, uid, receivers) {
    return region.waitSite({
      i32: this.#i32,
      epochOffset: receivers ? OFFSETS.recvEpoch : OFFSETS.sendEpoch,
      register: (delta) => binding.channelWaiting(this.#ref, receivers, delta),
      noteWait: () => binding.channelNoteWait(this.#ref, receivers),
      kind: 'channel',
      uid,
      ref: () => this.#ref,
      site: receivers ? SITE_RECEIVED : SITE_ROOM,
      // File-backed: a wait that went a whole slice without a wake-up may be stuck behind the cell
      // of a process killed in the middle of a send or receive (a receiver finds the cell at its
      // position filled but nothing to take; a sender finds the ring full). Reclaiming dead
      // processes returns that slot to the pool, and the next attempt steps over the cell.
      idle: () => {
        if (!receivers || filledAtDequeue(this.#i32, this.#mask)) binding.poolReclaimDead(this.#state.ref)
      },
    })
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
    const { name, dir, mode } = checkFileOptions(options)
    const capacity = checkCapacity(options.capacity)
    const spin = checkSpin(options.spin)
    const attachment = nativeCall(() =>
      binding.channelCreateFile(dir, name, pool._state.ref, capacity, newUid(), mode))
    return new Channel(ATTACH, undefined, { pool, attachment, spin, region: new FileRegion(attachment, name, dir) })
  }

  /**
   * Opens a channel that a process created with `Channel.create`; received leases belong to
   * `pool`, which must be the channel's pool (opened with `SharedPool.open`).
   * @param {string} name
   * @param {SharedPool} pool
   * A channel file owned by another user is refused (ERR_SABPOOL_ACCESS) unless
   * `allowForeignOwner` is true: its owner could read every payload and truncate the file.
   * @param {{ dir?: string, spin?: number, allowForeignOwner?: boolean }} [options]
   */
  static open(name, pool, options) {
    checkName(name)
    checkFilePool(pool, 'Channel.open')
    options = checkOptionsObject('options', options)
    const dir = checkDir(options.dir)
    const spin = checkSpin(options.spin)
    const allowForeignOwner = checkAllowForeignOwner(options.allowForeignOwner)
    const attachment = nativeCall(() => binding.channelOpenFile(dir, name, pool._state.ref, allowForeignOwner))
    return new Channel(ATTACH, undefined, { pool, attachment, spin, region: new FileRegion(attachment, name, dir) })
  }

  /**
   * Attaches to a channel created in another thread. The handle carries the pool's handle; pass an
   * already attached `pool` to have received leases belong to it (otherwise the pool is attached
   * anew and available as `channel.pool`). `options.spin` is this attachment's default spin.
   */
  static attach(handle, pool, options) {
    options = checkOptionsObject('options', options)
    const spin = checkSpin(options.spin)
    const allowForeignOwner = checkAllowForeignOwner(options.allowForeignOwner)
    if (pool !== undefined && !isPool(pool)) {
      throw makeError('ERR_INVALID_ARG_TYPE', `pool must be a SharedPool, got ${describe(pool)}`)
    }
    const { name, dir, buffer, pool: poolHandle } = readHandle(handle, CHANNEL_KIND, 'Channel.attach', 'channel', pool === undefined)
    if (pool === undefined) pool = SharedPool.attach(poolHandle, { allowForeignOwner })
    if (name !== undefined) return Channel.open(name, pool, { dir, spin, allowForeignOwner })
    const attachment = nativeCall(() => binding.channelAttach(new Uint8Array(buffer), pool._state.ref))
    return new Channel(ATTACH, undefined, { pool, attachment, spin, region: new MemoryRegion(buffer, 'channel') })
  }

  /** The pool whose leases this channel carries (received leases belong to it). */
  get pool() {
    if (!isChannel(this)) throw invalidThis('Channel', 'pool', this)
    return this.#pool
  }

  /** Structured-cloneable description, carrying the pool's handle too. */
  get handle() {
    if (!isChannel(this)) throw invalidThis('Channel', 'handle', this)
    return this.#handle
  }

  #leaseLength(lease, length) {
    if (!isLease(lease)) {
      throw makeError('ERR_INVALID_ARG_TYPE', `expected a Lease, got ${describe(lease)}`)
    }
    if (lease._poolUid !== this.#state.uid) {
      throw makeError('ERR_SABPOOL_BAD_TICKET', 'this lease belongs to another pool than the channel\'s')
    }
    return length === undefined ? lease.length : checkLength(length, lease._slotSize)
  }

  /** Status of one send attempt; throws on errors (closed channel, stale lease). */
  #offer(lease, length) {
    const status = lease._sendTo(this.#ref, length)
    if (status === 1) wake(this.#i32, RECV_EPOCH, 1)
    return status
  }

  /**
   * Sends without waiting. On true the lease belongs to the channel; on false (full) it is still
   * yours.
   */
  trySend(lease, length) {
    // The read of #ref is the brand check: it throws on anything but a Channel (see Lease).
    try {
      this.#ref
    } catch {
      throw invalidThis('Channel', 'trySend', this)
    }
    return this.#offer(lease, this.#leaseLength(lease, length)) !== NONE
  }

  /** `trySend` for a caller inside the library that has already checked the lease (a Lease of
   * this channel's pool) and the length. */
  _trySendChecked(lease, length) {
    return this.#offer(lease, length) !== NONE
  }

  /**
   * Sends, waiting while the channel is full (backpressure), without blocking the event loop.
   * @param {{ timeout?: number, signal?: AbortSignal }} [options]
   */
  async send(lease, length, options) {
    if (!isChannel(this)) throw invalidThis('Channel', 'send', this)
    length = this.#leaseLength(lease, length)
    options = checkOptionsObject('options', options)
    const timeout = checkTimeout(options.timeout)
    const signal = checkSignal(options.signal)
    if (signal !== undefined && signal.aborted) throw abortError(signal.target)
    if (this.#offer(lease, length) !== NONE) return
    const policy = this.#sendSite.spin
    if (policy.spinAsync()) {
      const found = spinBriefly(this.#pollRoom) && this.#offer(lease, length) !== NONE
      policy.spun(found)
      if (found) return
    }
    await parkAsync(this.#sendSite, () => (this.#offer(lease, length) !== NONE ? true : undefined),
      timeout, signal, 'send')
  }

  /**
   * Sends, blocking this thread while the channel is full (meant for workers).
   * @param {{ timeout?: number, spin?: number }} [options]
   */
  sendSync(lease, length, options) {
    if (!isChannel(this)) throw invalidThis('Channel', 'sendSync', this)
    length = this.#leaseLength(lease, length)
    options = checkOptionsObject('options', options)
    const timeout = checkTimeout(options.timeout)
    const spinOption = options.spin
    const spin = spinOption === undefined ? this.#spin : checkSpin(spinOption)
    if (this.#offer(lease, length) !== NONE) return
    // Full means enqueue = dequeue + capacity: poll until the dequeue position moves.
    const i32 = this.#i32
    const policy = this.#sendSite.spin
    for (let budget = policy.budget(spin); budget > 0;) {
      budget -= spinForRoom(i32, Atomics.load(i32, DEQUEUE), budget)
      if (this.#offer(lease, length) !== NONE) {
        policy.parked = false
        return
      }
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
    const status = channelRecv(this.#ref, state.ref)
    if (status < 0) {
      if (status === NONE) return undefined
      if (status === CLOSED) return null
      throw statusError(status, 'receive')
    }
    const slot = status >>> 1
    if ((status & 1) === 1) wake(this.#i32, SEND_EPOCH, 1)
    return state.lease(slot, state.recordedLength(slot), reuse)
  }

  /**
   * A lease if one is queued, else null (also null when closed and drained).
   * @param {{ reuse?: Lease }} [options] `reuse`: re-arm this no-longer-owned Lease object
   *   instead of allocating a new one
   */
  tryRecv(options) {
    try {
      this.#ref
    } catch {
      throw invalidThis('Channel', 'tryRecv', this)
    }
    const reuse = options === undefined ? undefined : checkReuse(checkOptionsObject('options', options).reuse)
    return this.#take(reuse) ?? null
  }

  /**
   * Waits for a lease without blocking the event loop; resolves null once the channel is closed
   * and drained. The process stays alive while this is pending.
   * @param {{ timeout?: number, signal?: AbortSignal, spin?: number }} [options]
   */
  async recv(options) {
    if (!isChannel(this)) throw invalidThis('Channel', 'recv', this)
    options = checkOptionsObject('options', options)
    // Every option is read before any is checked: a getter that runs code (aborting the signal,
    // say) runs before the signal's state is taken.
    const timeoutOption = options.timeout
    const signalOption = options.signal
    const reuseOption = options.reuse
    const timeout = checkTimeout(timeoutOption)
    const signal = checkSignal(signalOption)
    const reuse = checkReuse(reuseOption)
    if (signal !== undefined && signal.aborted) throw abortError(signal.target)
    const lease = this.#take(reuse)
    if (lease !== undefined) return lease
    return this.#parkToRecvAsync(timeout, signal, reuse)
  }

  /** The rest of `recv` once nothing was queued: a brief spin while spins have been paying off,
   * then a park. */
  #parkToRecvAsync(timeout, signal, reuse) {
    const policy = this.#recvSite.spin
    if (policy.spinAsync()) {
      const lease = spinBriefly(this.#pollSent) ? this.#take(reuse) : undefined
      policy.spun(lease !== undefined)
      if (lease !== undefined) return lease
    }
    return reserved(reuse, () => parkAsync(this.#recvSite, () => this.#take(reuse), timeout, signal, 'recv'))
  }

  /**
   * Waits for a lease, blocking this thread (meant for workers); null once closed and drained.
   * @param {{ timeout?: number, spin?: number }} [options]
   */
  recvSync(options) {
    if (!isChannel(this)) throw invalidThis('Channel', 'recvSync', this)
    options = checkOptionsObject('options', options)
    const timeout = checkTimeout(options.timeout)
    const spinOption = options.spin
    const spin = spinOption === undefined ? this.#spin : checkSpin(spinOption)
    const reuse = checkReuse(options.reuse)
    let lease = this.#take(reuse)
    // A filled cell whose lease is not queued yet (still being sent) reads as empty: keep polling.
    const policy = this.#recvSite.spin
    for (let budget = policy.budget(spin); lease === undefined && budget > 0;) {
      budget -= spinForSent(this.#i32, this.#mask, budget)
      lease = this.#take(reuse)
    }
    if (lease === undefined) return this.#parkToRecv(timeout, reuse)
    policy.parked = false
    return lease
  }

  /** Kept apart from recvSync so its closure is only allocated when the thread parks. */
  #parkToRecv(timeout, reuse) {
    return reserved(reuse, () => parkSync(this.#recvSite, () => this.#take(reuse), timeout, 'recvSync'))
  }

  /**
   * Sends as many of `leases` as fit, in order, without waiting; wakes receivers once.
   * @returns {number} how many were sent (the rest are still yours)
   */
  sendMany(leases) {
    if (!isChannel(this)) throw invalidThis('Channel', 'sendMany', this)
    if (!Array.isArray(leases)) {
      throw makeError('ERR_INVALID_ARG_TYPE', `sendMany needs an array of leases, got ${describe(leases)}`)
    }
    let sent = 0
    let mustWake = false
    try {
      for (const lease of leases) {
        const length = this.#leaseLength(lease) // checks it is a Lease first
        const status = lease._sendTo(this.#ref, length)
        if (status === NONE) break
        mustWake ||= status === 1
        sent++
      }
    } finally {
      // Even when a later lease throws, receivers must learn about the ones already sent: one
      // wake-up per lease sent.
      if (mustWake) wake(this.#i32, RECV_EPOCH, sent)
    }
    return sent
  }

  /**
   * Receives up to `max` queued leases without waiting; wakes senders once. Returns null when the
   * channel is closed and drained.
   */
  recvMany(max) {
    if (!isChannel(this)) throw invalidThis('Channel', 'recvMany', this)
    checkInteger('max', max, 1, 0xffffffff)
    const state = this.#state
    const out = []
    let mustWake = false
    while (out.length < max) {
      const status = channelRecv(this.#ref, state.ref)
      if (status < 0) {
        if (status === NONE) break
        if (status === CLOSED) return out.length === 0 ? null : out
        if (mustWake) wake(this.#i32, SEND_EPOCH, out.length)
        throw statusError(status, 'receive')
      }
      const slot = status >>> 1
      mustWake ||= (status & 1) === 1
      out.push(state.lease(slot, state.recordedLength(slot), undefined))
    }
    // One wake-up per cell freed.
    if (mustWake) wake(this.#i32, SEND_EPOCH, out.length)
    return out
  }

  /**
   * `for await (const lease of channel)`: ends when the channel is closed and drained, or when
   * the loop is left (`break`, `return`, a throw). A lease already queued is taken at once, with
   * no wait and no promise beyond the one the protocol requires; only an empty channel waits (as
   * `recv()` does).
   */
  [Symbol.asyncIterator]() {
    if (!isChannel(this)) throw invalidThis('Channel', '[Symbol.asyncIterator]', this)
    let finished = false
    const end = (lease) => {
      if (lease !== null) return { value: lease, done: false }
      finished = true
      return { value: undefined, done: true }
    }
    const next = () => {
      if (finished) return Promise.resolve({ value: undefined, done: true })
      let lease
      try {
        lease = this.#take(undefined)
      } catch (error) {
        return Promise.reject(error)
      }
      if (lease === undefined) return this.recv().then(end)
      return Promise.resolve(end(lease))
    }
    const stop = () => {
      finished = true
      return Promise.resolve({ value: undefined, done: true })
    }
    return { next, return: stop, [Symbol.asyncIterator]() { return this } }
  }

  /**
   * Closes the channel for every thread: sends fail with ERR_SABPOOL_CLOSED from now on, waiting
   * senders are woken with that error, receivers drain what is queued and then get null.
   */
  close() {
    if (!isChannel(this)) throw invalidThis('Channel', 'close', this)
    const wasOpen = binding.channelClose(this.#ref)
    wakeAll(this.#i32, RECV_EPOCH)
    wakeAll(this.#i32, SEND_EPOCH)
    return wasOpen
  }

  /** True once any thread closed the channel: one read of the shared closed flag. */
  get closed() {
    if (!isChannel(this)) throw invalidThis('Channel', 'closed', this)
    if (this.#ref === DETACHED_ID) {
      throw makeError('ERR_SABPOOL_DETACHED', 'this pool or channel has been detached in this thread')
    }
    return isClosed(this.#i32)
  }

  /** Counters of the channel, over every thread attached to it, and the waits parked now. */
  stats() {
    if (!isChannel(this)) throw invalidThis('Channel', 'stats', this)
    const s = binding.channelStats(this.#ref)
    return {
      capacity: s.capacity,
      queued: s.queued,
      sent: s.sent,
      received: s.received,
      sendWaits: s.sendWaits,
      recvWaits: s.recvWaits,
      sendWaiting: Atomics.load(this.#i32, SEND_WAITERS),
      recvWaiting: Atomics.load(this.#i32, RECV_WAITERS),
      closed: s.closed,
    }
  }

  /** The name a file-backed channel was created or opened with; undefined otherwise. */
  get name() {
    if (!isChannel(this)) throw invalidThis('Channel', 'name', this)
    return this.#region.name
  }

  /** Path of a file-backed channel's file; undefined for an in-process channel. */
  get path() {
    if (!isChannel(this)) throw invalidThis('Channel', 'path', this)
    return this.#region.path(this.#ref)
  }

  /** Removes a file-backed channel's name (see `SharedPool#unlink`). */
  unlink() {
    if (!isChannel(this)) throw invalidThis('Channel', 'unlink', this)
    return this.#region.unlink(this.#ref)
  }

  /** Detaches this thread from the channel (the pool stays attached). */
  detach() {
    if (!isChannel(this)) throw invalidThis('Channel', 'detach', this)
    this.#attachment.detach()
    this.#ref = DETACHED_ID
  }
}

module.exports = { Channel }
