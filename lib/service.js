'use strict'

// Service: request/response over a pool. A call sends its request lease into the service's
// request channel; a server receives it, runs the handler, and sends the reply lease (the same
// slot, or another one) into the reply port of the caller; the caller's port pump hands it to
// the call that is waiting for it.
//
// Shared state, in the service's table (a SharedArrayBuffer, or a mapped file next to a
// file-backed pool), 32-bit words:
//   - a record per pool slot, written only by the slot's current owner before the slot is sent:
//     the call's sequence number, the caller's port, the low half of the caller's participant
//     token and what the slot carries (request, reply, error reply);
//   - per pool participant entry: how many serve loops it runs, and its token (so a dead
//     server's count is not counted);
//   - statistics.
// A reply port is a channel per pool participant entry (the caller's index in the pool), with
// room for every slot of the pool, so a reply never waits for room.
//
// Nothing read from the table is trusted: a record that names no port, another caller or a call
// this thread does not wait for makes the lease go back to the pool.
//
// Death: a server's leases go back to the pool when it dies (thread teardown, or the reclaim of a
// dead process). A caller whose request slot no longer holds its request (another generation, or
// not queued or leased any more) and whose port holds no reply for it knows that no reply will
// come: the server sends the reply before it releases the request, so the check cannot race.

const fs = require('node:fs')
const nodePath = require('node:path')
const { binding, OFFSETS, LAYOUT_VERSION } = require('./native.js')
const { makeError, abortError, timeoutError, invalidThis, describe } = require('./errors.js')
const {
  checkInteger, checkOptionsObject, checkTimeout, checkSignal, checkLength, checkCapacity,
  checkName, checkDir, checkFileOptions, checkAllowForeignOwner,
} = require('./options.js')
const { isLease } = require('./lease.js')
const { nativeCall } = require('./region.js')
const { isPool, newUid } = require('./pool.js')
const { Channel } = require('./channel.js')
const { Table, describePool, createTableFile, openTableFile } = require('./table.js')

const SERVICE_KIND = 'sabpool.service'
/** 'SVC1': the table of a service of this format. */
const TABLE_FORMAT = 0x31435653

// ---- table layout (word indexes) ------------------------------------------------------------
const T_FORMAT = 0
const T_SLOTS = 1
const T_PORTS = 2
const T_CAPACITY = 3
/** Random id of the service: tells its ports apart from another service's in this thread. */
const T_UID = 4
/** Statistics from byte 64: a 64-bit counter each, as two 32-bit words (low first). */
const STATS_BYTE = 64
const STAT_NAMES = ['calls', 'replies', 'errors', 'timeouts', 'aborts', 'lost', 'late', 'stray']
const S = Object.fromEntries(STAT_NAMES.map((name, i) => [name, i]))
/** Per participant entry: [serve loops, their token low, high, unused, the port's owner token low,
 * high, unused, unused]. */
const SERVERS_WORD = 64
const SERVER_WORDS = 8
const E_OWNER = 4
/** Per slot: [seq, port, caller token low, kind]. */
const RECORD_WORDS = 4
const R_SEQ = 0
const R_PORT = 1
const R_TOKEN = 2
const R_KIND = 3
const KIND_REQUEST = 1
const KIND_REPLY = 2
const KIND_ERROR = 3

function tableWords(slots, ports) {
  return SERVERS_WORD + SERVER_WORDS * ports + RECORD_WORDS * slots
}
function recordIndex(ports, slot) {
  return SERVERS_WORD + SERVER_WORDS * ports + RECORD_WORDS * slot
}

// Slot states (the low byte of a slot's state word; see the core's words.rs).
const STATE_LEASED = 2
const STATE_IN_FLIGHT = 3
const STATE_QUEUED = 4

/** How often a caller with calls pending checks for requests whose server died, at most. */
const CHECK_MS = 50
const RECV_SLICE = Object.freeze({ timeout: CHECK_MS })

/** Code of a handler's error that has no string `code` of its own. */
const HANDLER_ERROR_CODE = 'ERR_SABPOOL_HANDLER'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** A reply port's capacity: a power of two of at least twice the pool's slots (at most 2^24). */
function portCapacityFor(slots) {
  return Math.min(ceilPow2(2 * slots), OFFSETS.maxCapacity)
}

/** Smallest power of two ≥ n (n ≥ 2). */
function ceilPow2(n) {
  return n <= 2 ? 2 : 2 ** Math.ceil(Math.log2(n))
}

// ---- error replies --------------------------------------------------------------------------

/** Writes `{ code, message }` into `bytes` as [u32 code length][code][u32 message length][message],
 * each cut to fit; returns the bytes written. */
function writeError(bytes, code, message) {
  let at = 0
  for (const text of [code, message]) {
    if (bytes.length - at < 4) break
    const { written } = encoder.encodeInto(text, bytes.subarray(at + 4))
    bytes[at] = written & 0xff
    bytes[at + 1] = (written >>> 8) & 0xff
    bytes[at + 2] = (written >>> 16) & 0xff
    bytes[at + 3] = written >>> 24
    at += 4 + written
  }
  return at
}

/** The error an error reply of `length` bytes carries (anything malformed reads as a default). */
function readError(bytes, length) {
  const texts = []
  let at = 0
  const end = Math.min(length, bytes.length)
  for (let i = 0; i < 2; i++) {
    if (end - at < 4) break
    const n = (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0
    if (n > end - at - 4) break
    texts.push(decoder.decode(bytes.subarray(at + 4, at + 4 + n)))
    at += 4 + n
  }
  const code = texts[0] || HANDLER_ERROR_CODE
  const message = texts[1] ?? 'the service handler failed'
  const error = new Error(message)
  error.code = code
  return error
}

/** `{ code, message }` of anything a handler threw, read defensively (getters may throw). */
function describeThrown(thrown) {
  let code = HANDLER_ERROR_CODE
  let message
  try {
    if (thrown !== null && typeof thrown === 'object') {
      const c = thrown.code
      if (typeof c === 'string' && c.length > 0) code = c
      const m = thrown.message
      message = typeof m === 'string' ? m : String(thrown)
    } else {
      message = String(thrown)
    }
  } catch {
    message = 'the service handler threw a value that cannot be described'
  }
  return { code: code.slice(0, 200), message }
}

// ---- reply ports: one per pool participant entry ------------------------------------------------

/**
 * This thread's side of one port: the calls waiting on it and the pump that delivers their
 * replies. Shared by every Service object of this thread that uses the same service through the
 * same pool attachment (they are the same participant, hence the same port).
 */
class Port {
  constructor(service, channel, index, tokenLow) {
    this.service = service
    this.channel = channel
    this.index = index
    this.tokenLow = tokenLow
    /** seq → pending call */
    this.pending = new Map()
    /** seq → { slot, generation } of calls given up (timeout, abort) whose reply may still come. */
    this.orphans = new Map()
    this.seq = 0
    this.pumping = false
    this.sweeper = undefined
    this.checkedAt = performance.now()
    this.delivered = 0
  }

  nextSeq() {
    this.seq = (this.seq + 1) >>> 0
    if (this.seq === 0) this.seq = 1
    return this.seq
  }

  /** Settles the call its reply (a lease this thread now owns) answers, or returns the lease. */
  deliver(lease) {
    const core = this.service
    const at = recordIndex(core.ports, lease.slot)
    const i32 = core.table.i32
    const seq = Atomics.load(i32, at + R_SEQ) >>> 0
    const token = Atomics.load(i32, at + R_TOKEN)
    const kind = Atomics.load(i32, at + R_KIND)
    const call = token === this.tokenLow ? this.pending.get(seq) : undefined
    if (call === undefined || (kind !== KIND_REPLY && kind !== KIND_ERROR)) {
      // A reply to a call given up, one meant for an earlier owner of this port, or a scribble.
      if (token === this.tokenLow) this.orphans.delete(seq)
      core.table.count(S.late)
      lease.release()
      return
    }
    this.pending.delete(seq)
    if (kind === KIND_REPLY) {
      core.table.count(S.replies)
      call.settle(lease, undefined)
    } else {
      core.table.count(S.errors)
      const error = readError(lease.bytes, lease.length)
      lease.release()
      call.settle(undefined, error)
    }
  }

  /** Delivers every reply queued in the port without waiting. */
  drain() {
    for (let lease = this.channel.tryRecv(); lease !== null; lease = this.channel.tryRecv()) this.deliver(lease)
  }

  /**
   * Rejects the calls whose request is gone without a reply (its server died, or dropped it), and
   * forgets given-up calls whose request is gone. For a file-backed pool, first reclaims dead
   * processes, whose leases would otherwise look held.
   */
  checkGone() {
    this.checkedAt = performance.now()
    const core = this.service
    if (core.isFile) {
      try {
        binding.poolReclaimDead(core.pool._state.ref)
      } catch {
        // detached meanwhile: the calls below fail on their own
      }
    }
    sweepPorts(core, this.index)
    let gone
    for (const [seq, call] of this.pending) {
      if (call.sent && !core.holds(call.slot, call.generation)) (gone ??= []).push(seq)
    }
    for (const [seq, orphan] of this.orphans) {
      if (!core.holds(orphan.slot, orphan.generation)) (gone ??= []).push(seq)
    }
    if (gone === undefined) return
    // The reply is sent before the request is released: any reply for these is in the port now.
    this.drain()
    for (const seq of gone) {
      this.orphans.delete(seq)
      const call = this.pending.get(seq)
      if (call === undefined) continue
      this.pending.delete(seq)
      core.table.count(S.lost)
      call.settle(undefined, makeError('ERR_SABPOOL_NO_REPLY',
        'the service request ended without a reply: the server handling it died (or gave the request lease away without replying)'))
    }
  }

  /** Receives replies in the event loop while calls are pending. */
  async pump() {
    this.pumping = true
    try {
      while (this.pending.size > 0) {
        // A reply already queued is taken without a promise; only an empty port waits.
        let lease = this.channel.tryRecv()
        if (lease === null) {
          try {
            lease = await this.channel.recv(RECV_SLICE)
          } catch (error) {
            if (error.code !== 'ERR_SABPOOL_TIMEOUT') throw error
            this.checkGone()
            continue
          }
          if (lease === null) break // a port is never closed; only a scribble says so
        }
        this.deliver(lease)
        // While replies keep coming, look for calls whose server died every so often (a clock
        // read per reply would cost more than the delivery).
        if ((++this.delivered & 63) === 0 && performance.now() - this.checkedAt > CHECK_MS) this.checkGone()
      }
    } catch (error) {
      this.failAll(error)
    } finally {
      this.pumping = false
      this.sweepOrphans()
    }
  }

  /** While only given-up calls remain, an unref'd timer returns their replies as they come. */
  sweepOrphans() {
    if (this.orphans.size === 0 || this.sweeper !== undefined || this.pumping) return
    this.sweeper = setInterval(() => {
      try {
        this.drain()
        this.checkGone()
      } catch {
        // detached: nothing left to return from this thread
        this.orphans.clear()
      }
      if (this.orphans.size === 0 || this.pumping) {
        clearInterval(this.sweeper)
        this.sweeper = undefined
      }
    }, CHECK_MS)
    this.sweeper.unref()
  }

  failAll(error) {
    for (const call of this.pending.values()) call.settle(undefined, error)
    this.pending.clear()
  }

  ensurePump() {
    if (!this.pumping) this.pump()
  }
}

/** A call waiting for its reply. */
class PendingCall {
  constructor(slot, generation) {
    this.slot = slot
    this.generation = generation
    this.sent = false
    this.resolve = undefined
    this.reject = undefined
    this.lease = undefined
    this.error = undefined
    this.done = false
    this.cleanup = undefined
  }

  settle(lease, error) {
    if (this.done) {
      if (lease !== undefined) lease.release()
      return
    }
    this.done = true
    this.lease = lease
    this.error = error
    if (this.cleanup !== undefined) this.cleanup()
    if (this.resolve !== undefined) {
      if (error === undefined) this.resolve(lease)
      else this.reject(error)
    }
  }
}

/** This thread's ports, by service uid and pool attachment. */
const ports = new Map()

// ---- the service --------------------------------------------------------------------------

let isService

class Service {
  static {
    isService = (value) => value !== null && typeof value === 'object' && #core in value
  }

  /** What every method needs: `{ pool, table, requests, ports, slots, isFile, ... }`. */
  #core
  #handle

  /**
   * Request/response between threads over `pool`: calls send a lease, servers reply with one.
   * @param {SharedPool} pool
   * @param {{ capacity: number }} options capacity: how many requests may wait to be served (a
   *   power of two)
   */
  constructor(pool, options, attached) {
    if (pool === ATTACHED) {
      this.#core = attached.core
      this.#handle = attached.handle
      return
    }
    if (!isPool(pool)) {
      throw makeError('ERR_INVALID_ARG_TYPE', `new Service(pool, { capacity }) needs a SharedPool, got ${describe(pool)}`)
    }
    if (pool._state.region.isFile) {
      throw makeError('ERR_SABPOOL_BAD_HANDLE', 'new Service() is for in-process pools; use Service.create(pool, { name }) for a file-backed pool')
    }
    options = checkOptionsObject('options', options)
    const capacity = checkCapacity(options.capacity)
    const info = describePool(pool)
    const portCount = info.maxParticipants
    const slots = info.slots
    const words = tableWords(slots, portCount)
    const buffer = new SharedArrayBuffer(words * 4)
    const table = new Table(buffer, 0, words, STATS_BYTE >>> 2)
    initTable(table.i32, slots, portCount, capacity)
    const requests = new Channel(pool, { capacity })
    // Room for twice every slot of the pool: a reply does not wait for room in its port.
    const portCapacity = portCapacityFor(slots)
    const portHandles = []
    for (let i = 0; i < portCount; i++) portHandles.push(new Channel(pool, { capacity: portCapacity }).handle)
    this.#handle = Object.freeze({
      kind: SERVICE_KIND,
      version: LAYOUT_VERSION,
      table: buffer,
      requests: requests.handle,
      ports: Object.freeze(portHandles),
    })
    this.#core = makeCore(pool, table, requests, info, {
      isFile: false,
      portChannel: (index) => Channel.attach(portHandles[index], pool),
    })
  }

  /**
   * Attaches to a service made in another thread (`service.handle`), with `pool` the service's
   * pool attached in this thread (`SharedPool.attach(poolHandle)`).
   */
  static attach(handle, pool, options) {
    checkServicePool(pool, 'Service.attach')
    options = checkOptionsObject('options', options)
    if (handle === null || typeof handle !== 'object' || handle.kind !== SERVICE_KIND) {
      throw makeError('ERR_SABPOOL_BAD_HANDLE', `Service.attach needs a service's handle (service.handle), got ${describe(handle)}`)
    }
    const version = handle.version
    if (version !== LAYOUT_VERSION) {
      throw makeError('ERR_SABPOOL_BAD_HANDLE', `this handle has layout version ${version}; this sabpool reads version ${LAYOUT_VERSION}`)
    }
    const name = handle.name
    if (typeof name === 'string') return Service.open(name, pool, { dir: handle.dir, allowForeignOwner: options.allowForeignOwner })
    const buffer = handle.table
    const requestsHandle = handle.requests
    const portHandles = handle.ports
    if (!(buffer instanceof SharedArrayBuffer)) {
      throw makeError('ERR_SABPOOL_BAD_HANDLE', "handle.table must be the service's SharedArrayBuffer")
    }
    if (!Array.isArray(portHandles)) throw makeError('ERR_SABPOOL_BAD_HANDLE', 'handle.ports must be an array of channel handles')
    const info = describePool(pool)
    const table = checkedTable(buffer, 0, buffer.byteLength >>> 2, info)
    if (portHandles.length !== info.maxParticipants) {
      throw makeError('ERR_SABPOOL_BAD_HANDLE', `handle.ports has ${portHandles.length} entries; the pool has ${info.maxParticipants} participant entries`)
    }
    const ports = Object.freeze([...portHandles])
    const requests = Channel.attach(requestsHandle, pool)
    const core = makeCore(pool, table, requests, info, {
      isFile: false,
      portChannel: (index) => Channel.attach(ports[index], pool),
    })
    const frozen = Object.freeze({ kind: SERVICE_KIND, version: LAYOUT_VERSION, table: buffer, requests: requests.handle, ports })
    return new Service(ATTACHED, undefined, { core, handle: frozen })
  }

  /**
   * Creates a service for a file-backed pool (`SharedPool.create`), in files next to it, so
   * other processes can open it by name.
   * @param {SharedPool} pool
   * @param {{ name: string, capacity: number, dir?: string, mode?: number }} options
   */
  static create(pool, options) {
    checkFileServicePool(pool, 'Service.create')
    options = checkOptionsObject('options', options)
    const { name, dir, mode } = checkFileOptions(options)
    const capacity = checkCapacity(options.capacity)
    checkServiceName(name)
    const info = describePool(pool)
    const words = tableWords(info.slots, info.maxParticipants)
    return createTableFile(pool, dir, name, words, mode, (attachment, memory) => {
      const view = new Table(memory.buffer, memory.dataOffset, words, STATS_BYTE >>> 2)
      initTable(view.i32, info.slots, info.maxParticipants, capacity)
      const requests = Channel.create(pool, { name: requestsName(name), capacity, dir, mode })
      return fileService(pool, name, dir, mode, attachment, view, requests, info)
    })
  }

  /**
   * Opens a service a process made with `Service.create`, for `pool` (the same pool, opened with
   * `SharedPool.open`).
   * @param {{ dir?: string, allowForeignOwner?: boolean }} [options]
   */
  static open(name, pool, options) {
    checkName(name)
    checkFileServicePool(pool, 'Service.open')
    options = checkOptionsObject('options', options)
    const dir = checkDir(options.dir)
    const allowForeignOwner = checkAllowForeignOwner(options.allowForeignOwner)
    checkServiceName(name)
    const info = describePool(pool)
    return openTableFile(pool, dir, name, allowForeignOwner, (attachment, memory) => {
      const view = checkedTable(memory.buffer, memory.dataOffset, memory.words, info)
      const requests = Channel.open(requestsName(name), pool, { dir, allowForeignOwner })
      return fileService(pool, name, dir, undefined, attachment, view, requests, info, allowForeignOwner)
    })
  }

  /** Structured-cloneable description of the service, for `Service.attach` in another thread. */
  get handle() {
    if (!isService(this)) throw invalidThis('Service', 'handle', this)
    return this.#handle
  }

  /** The pool whose leases carry requests and replies. */
  get pool() {
    if (!isService(this)) throw invalidThis('Service', 'pool', this)
    return this.#core.pool
  }

  /** True once any thread or process closed the service. */
  get closed() {
    if (!isService(this)) throw invalidThis('Service', 'closed', this)
    return this.#core.requests.closed
  }

  /**
   * Sends `lease` (its first `length` bytes; default `lease.length`) as a request and resolves
   * with the reply lease, now yours; or rejects with the handler's error (the request slot went
   * back to the pool), ERR_SABPOOL_TIMEOUT, ABORT_ERR, ERR_SABPOOL_CLOSED or ERR_SABPOOL_NO_REPLY.
   * While the request channel is full the call waits (backpressure); a call that fails before its
   * request was sent (full until the timeout, aborted, closed) leaves the lease yours.
   * @param {{ timeout?: number, signal?: AbortSignal }} [options]
   */
  call(lease, length, options) {
    // Not an async function: the reply's promise is returned as it is, without wrapping it in
    // another one (two fewer microtask turns per call). Every error is still a rejection.
    try {
      if (!isService(this)) throw invalidThis('Service', 'call', this)
      const core = this.#core
      length = requestLength(core, lease, length)
      options = checkOptionsObject('options', options)
      const timeoutOption = options.timeout
      const signalOption = options.signal
      const timeout = checkTimeout(timeoutOption)
      const signal = checkSignal(signalOption)
      if (signal !== undefined && signal.aborted) throw abortError(signal.target)
      const deadline = timeout === Infinity ? Infinity : performance.now() + timeout
      const port = portOf(core)
      const call = begin(core, port, lease)
      let sent
      try {
        sent = core.requests._trySendChecked(lease, length)
      } catch (error) {
        port.pending.delete(call.seq) // not sent: the lease is still the caller's
        throw error
      }
      if (!sent) return sendThenWait(core, port, call, lease, length, deadline, timeout, signal, signalOption)
      call.sent = true
      core.table.count(S.calls)
      return waitReply(core, port, call, deadline, timeout, signal)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /**
   * The blocking form of `call`, for workers: blocks this thread until the reply comes.
   * @param {{ timeout?: number }} [options]
   */
  callSync(lease, length, options) {
    if (!isService(this)) throw invalidThis('Service', 'callSync', this)
    const core = this.#core
    length = requestLength(core, lease, length)
    options = checkOptionsObject('options', options)
    const timeout = checkTimeout(options.timeout)
    const deadline = performance.now() + timeout
    const port = portOf(core)
    const call = begin(core, port, lease)
    try {
      core.requests.sendSync(lease, length, { timeout })
    } catch (error) {
      port.pending.delete(call.seq)
      throw error
    }
    call.sent = true
    core.table.count(S.calls)
    while (!call.done) {
      const remaining = deadline - performance.now()
      if (remaining <= 0) giveUp(core, port, call, S.timeouts, timeoutError('callSync', timeout))
      if (call.done) break
      let reply
      try {
        reply = port.channel.recvSync({ timeout: Math.min(remaining, CHECK_MS) })
      } catch (error) {
        if (error.code !== 'ERR_SABPOOL_TIMEOUT') throw error
        port.checkGone()
        continue
      }
      if (reply !== null) port.deliver(reply)
      if (!call.done && performance.now() - port.checkedAt > CHECK_MS) port.checkGone()
    }
    if (call.error !== undefined) throw call.error
    return call.lease
  }

  /**
   * Serves requests on this thread, blocking it (meant for workers), until the service is closed
   * and every queued request has been served. `handler(request)` gets the request lease and
   * returns the reply: a length (the request slot, with that many bytes), undefined (the request
   * slot as it is) or another Lease this thread owns (the request slot then goes back to the
   * pool). A handler that throws makes that call reject with the error's message and code.
   * @returns {number} how many requests this loop served
   */
  serveSync(handler) {
    if (!isService(this)) throw invalidThis('Service', 'serveSync', this)
    checkHandler(handler)
    const core = this.#core
    const entry = enterServer(core)
    let served = 0
    try {
      for (let request = core.requests.recvSync(); request !== null; request = core.requests.recvSync()) {
        const record = takeRecord(core, request)
        if (record === undefined) continue
        let outcome
        let failed = false
        try {
          outcome = handler(request)
        } catch (error) {
          outcome = error
          failed = true
        }
        reply(core, request, record, outcome, failed)
        served++
      }
    } finally {
      leaveServer(core, entry)
    }
    return served
  }

  /**
   * Serves requests in the event loop: `handler(request)` may return a promise of what
   * `serveSync`'s handler returns. Up to `concurrency` requests are handled at a time (default 1).
   * Resolves with how many were served once the service is closed and drained.
   * @param {{ concurrency?: number }} [options]
   */
  async serve(handler, options) {
    if (!isService(this)) throw invalidThis('Service', 'serve', this)
    checkHandler(handler)
    options = checkOptionsObject('options', options)
    const concurrencyOption = options.concurrency
    const concurrency = concurrencyOption === undefined ? 1 : checkInteger('concurrency', concurrencyOption, 1, 65536)
    const core = this.#core
    const entry = enterServer(core)
    let served = 0
    const lane = async () => {
      for (;;) {
        const request = await core.requests.recv()
        if (request === null) return
        const record = takeRecord(core, request)
        if (record === undefined) continue
        let outcome
        let failed = false
        try {
          outcome = await handler(request)
        } catch (error) {
          outcome = error
          failed = true
        }
        reply(core, request, record, outcome, failed)
        served++
      }
    }
    try {
      const lanes = []
      for (let i = 0; i < concurrency; i++) lanes.push(lane())
      await Promise.all(lanes)
    } finally {
      leaveServer(core, entry)
    }
    return served
  }

  /**
   * Closes the service for every thread and process: new calls reject with ERR_SABPOOL_CLOSED
   * (the caller keeps its lease), serve loops return once the requests already queued are served.
   * With no server attached, those queued requests are answered here with ERR_SABPOOL_CLOSED.
   * Returns false if it was closed already.
   */
  close() {
    if (!isService(this)) throw invalidThis('Service', 'close', this)
    const core = this.#core
    const wasOpen = core.requests.close()
    sweepPorts(core, -1)
    if (liveServers(core) === 0) {
      for (let request = core.requests.tryRecv(); request !== null; request = core.requests.tryRecv()) {
        const record = takeRecord(core, request)
        if (record === undefined) continue
        reply(core, request, record, makeError('ERR_SABPOOL_CLOSED', 'the service was closed before a server took this request'), true)
      }
    }
    return wasOpen
  }

  /**
   * Counters of the whole service (every thread and process): calls sent, in flight (sent, not
   * answered and not given up), replies, errors (handler errors), timeouts and aborts (calls given
   * up after their request was sent), lost (requests whose server died), late (replies that came
   * after their call gave up: returned to the pool), stray (leases found in the request channel
   * that no call sent: returned to the pool), and how many serve loops run in live participants.
   */
  stats() {
    if (!isService(this)) throw invalidThis('Service', 'stats', this)
    const core = this.#core
    const t = core.table
    const calls = t.read(S.calls)
    const replies = t.read(S.replies)
    const errors = t.read(S.errors)
    const lost = t.read(S.lost)
    const timeouts = t.read(S.timeouts)
    const aborts = t.read(S.aborts)
    return {
      calls,
      inFlight: Math.max(0, calls - replies - errors - lost - timeouts - aborts),
      replies,
      errors,
      timeouts,
      aborts,
      lost,
      late: t.read(S.late),
      stray: t.read(S.stray),
      servers: liveServers(core),
    }
  }

  /** File-backed: removes the service's files (table, request channel, ports); false when the
   * table's name no longer named it. ERR_SABPOOL_NOT_FILE in-process. */
  unlink() {
    if (!isService(this)) throw invalidThis('Service', 'unlink', this)
    const core = this.#core
    if (!core.isFile) throw makeError('ERR_SABPOOL_NOT_FILE', 'unlink: this service is not backed by files (create it with Service.create)')
    const removed = nativeCall(() => binding.regionUnlink(core.tableRef))
    try {
      core.requests.unlink()
    } catch {
      // removed already
    }
    const prefix = `sabpool.${portPrefix(core.name)}`
    let names = []
    try {
      names = fs.readdirSync(core.dir)
    } catch {
      // the directory is gone: nothing to remove
    }
    for (const file of names) {
      if (file.startsWith(prefix) && file.endsWith('.channel')) {
        try {
          fs.unlinkSync(nodePath.join(core.dir, file))
        } catch {
          // removed meanwhile
        }
      }
    }
    return removed
  }
}

const ATTACHED = Symbol('attached')

// ---- construction helpers -------------------------------------------------------------------

function checkServicePool(pool, what) {
  if (!isPool(pool)) throw makeError('ERR_INVALID_ARG_TYPE', `${what} needs the service's SharedPool, got ${describe(pool)}`)
}

function checkFileServicePool(pool, what) {
  checkServicePool(pool, what)
  if (!pool._state.region.isFile) {
    throw makeError('ERR_SABPOOL_NOT_FILE', `${what} needs a pool made with SharedPool.create or SharedPool.open, so other processes can reach it`)
  }
}

/** Service names leave room for the suffixes of the service's channel files. */
function checkServiceName(name) {
  if (name.length > 160) {
    throw makeError('ERR_SABPOOL_BAD_NAME', `service names are at most 160 characters (the service's files add suffixes), got ${name.length}`)
  }
}

function requestsName(name) {
  return `${name}.requests`
}

function portPrefix(name) {
  return `${name}.port-`
}

function initTable(i32, slots, portCount, capacity) {
  Atomics.store(i32, T_SLOTS, slots)
  Atomics.store(i32, T_PORTS, portCount)
  Atomics.store(i32, T_CAPACITY, capacity)
  Atomics.store(i32, T_UID, newUid())
  Atomics.store(i32, T_FORMAT, TABLE_FORMAT)
}

/** The table in `buffer`, checked against the pool it is used with. */
function checkedTable(buffer, byteOffset, words, info) {
  if (words < SERVERS_WORD) throw makeError('ERR_SABPOOL_BAD_HANDLE', 'the service table is too small')
  const i32 = new Int32Array(buffer, byteOffset, words)
  if (Atomics.load(i32, T_FORMAT) !== TABLE_FORMAT) throw makeError('ERR_SABPOOL_BAD_HANDLE', 'this is not a service table of this version')
  const slots = Atomics.load(i32, T_SLOTS)
  const portCount = Atomics.load(i32, T_PORTS)
  if (slots !== info.slots || portCount !== info.maxParticipants) {
    throw makeError('ERR_SABPOOL_BAD_HANDLE', "the service table was made for another pool than this one (its slots or participant entries differ)")
  }
  if (tableWords(slots, portCount) > words) throw makeError('ERR_SABPOOL_BAD_HANDLE', 'the service table is too small for its pool')
  return new Table(buffer, byteOffset, words, STATS_BYTE >>> 2)
}

function fileService(pool, name, dir, mode, attachment, table, requests, info, allowForeignOwner = false) {
  const portCapacity = portCapacityFor(info.slots)
  const core = makeCore(pool, table, requests, info, {
    isFile: true,
    name,
    dir,
    tableRef: attachment.id,
    portChannel: (index) => openPort(pool, `${portPrefix(name)}${index}`, dir, mode, portCapacity, allowForeignOwner),
  })
  const handle = Object.freeze({ kind: SERVICE_KIND, version: LAYOUT_VERSION, name, dir, pool: pool.handle })
  const svc = new Service(ATTACHED, undefined, { core, handle })
  core.attachment = attachment
  pool._state.region.detachAtExit(attachment)
  return svc
}

/** A port's channel file: opened, or created by the port's first caller. */
function openPort(pool, name, dir, mode, capacity, allowForeignOwner) {
  for (let attempt = 0; ; attempt++) {
    try {
      return Channel.open(name, pool, { dir, allowForeignOwner })
    } catch (error) {
      if (error.code !== 'ERR_SABPOOL_NOT_FOUND' || attempt > 2) throw error
    }
    try {
      return Channel.create(pool, { name, capacity, dir, mode })
    } catch (error) {
      if (error.code !== 'ERR_SABPOOL_EXISTS') throw error // another opener created it meanwhile
    }
  }
}

function makeCore(pool, table, requests, info, extra) {
  const state = pool._state
  return {
    pool,
    table,
    requests,
    slots: info.slots,
    ports: info.maxParticipants,
    participant: info.participant,
    participantsOffset: info.participantsOffset,
    participantSize: info.participantSize,
    poolI32: new Int32Array(state.buffer),
    metaOffset: state.metaOffset,
    /** Attached port channels of this thread, by index (servers reply into them). */
    portChannels: new Map(),
    /** Whether the pool slot still holds the request `generation` (queued, leased, in flight). */
    holds(slot, generation) {
      const at = (this.metaOffset + slot * OFFSETS.metaSize + OFFSETS.metaWord) >>> 2
      const low = Atomics.load(this.poolI32, at)
      const high = Atomics.load(this.poolI32, at + 1) >>> 0
      const kind = low & 0xff
      return high === generation && (kind === STATE_QUEUED || kind === STATE_LEASED || kind === STATE_IN_FLIGHT)
    },
    ...extra,
  }
}

// ---- calls ------------------------------------------------------------------------------------

function requestLength(core, lease, length) {
  if (!isLease(lease)) throw makeError('ERR_INVALID_ARG_TYPE', `expected a Lease, got ${describe(lease)}`)
  if (lease._poolUid !== core.pool._state.uid) {
    throw makeError('ERR_SABPOOL_BAD_TICKET', "this lease belongs to another pool than the service's")
  }
  if (!lease.owned) throw makeError('ERR_SABPOOL_STALE_LEASE', 'call: this lease is no longer owned by this thread')
  return length === undefined ? lease.length : checkLength(length, lease._slotSize)
}

/** The token of participant entry `index` of the pool (its low and high halves). */
function participantToken(core, index) {
  const at = (core.participantsOffset + index * core.participantSize + OFFSETS.participantToken) >>> 2
  return [Atomics.load(core.poolI32, at), Atomics.load(core.poolI32, at + 1)]
}

/** The low half of participant entry `index`'s token (what records carry). */
function participantTokenLow(core, index) {
  return Atomics.load(core.poolI32, (core.participantsOffset + index * core.participantSize + OFFSETS.participantToken) >>> 2)
}

/** This thread's port of the service (attached, and emptied of what an earlier owner left). */
function portOf(core) {
  if (core.port !== undefined) return core.port
  const state = core.pool._state
  const key = `${Atomics.load(core.table.i32, T_UID)}:${state.ref}`
  let port = ports.get(key)
  if (port === undefined) {
    const channel = core.portChannel(core.participant)
    const [tokenLow] = participantToken(core, core.participant)
    port = new Port(core, channel, core.participant, tokenLow)
    // Whatever is queued here was sent to an earlier participant of this entry: return it.
    for (let lease = channel.tryRecv(); lease !== null; lease = channel.tryRecv()) lease.release()
    const [, tokenHigh] = participantToken(core, core.participant)
    const at = SERVERS_WORD + core.participant * SERVER_WORDS + E_OWNER
    Atomics.store(core.table.i32, at, tokenLow)
    Atomics.store(core.table.i32, at + 1, tokenHigh)
    ports.set(key, port)
  }
  core.port = port
  return port
}

/** Registers a call of `lease`: its record in the table, and the port's pending entry. */
function begin(core, port, lease) {
  const seq = port.nextSeq()
  const at = recordIndex(core.ports, lease.slot)
  const i32 = core.table.i32
  Atomics.store(i32, at + R_SEQ, seq)
  // A slot that comes back to the same caller (a reply reused as the next request) already names
  // its port and token: a load is cheaper than a store to a line another thread will read.
  if (Atomics.load(i32, at + R_PORT) !== port.index) Atomics.store(i32, at + R_PORT, port.index)
  if (Atomics.load(i32, at + R_TOKEN) !== port.tokenLow) Atomics.store(i32, at + R_TOKEN, port.tokenLow)
  Atomics.store(i32, at + R_KIND, KIND_REQUEST)
  const call = new PendingCall(lease.slot, lease.generation)
  call.seq = seq
  port.pending.set(seq, call)
  return call
}

/** The rest of `call` while the request ring is full: waits for room (backpressure), then for the reply. */
async function sendThenWait(core, port, call, lease, length, deadline, timeout, signal, signalOption) {
  try {
    await core.requests.send(lease, length, { timeout, signal: signalOption })
  } catch (error) {
    port.pending.delete(call.seq) // not sent: the lease is still the caller's
    throw error
  }
  call.sent = true
  core.table.count(S.calls)
  return waitReply(core, port, call, deadline, timeout, signal)
}

/** Gives up on a sent call (timeout, abort): its reply, when it comes, goes back to the pool. */
function giveUp(core, port, call, stat, error) {
  if (call.done) return
  port.pending.delete(call.seq)
  port.orphans.set(call.seq, { slot: call.slot, generation: call.generation })
  core.table.count(stat)
  call.settle(undefined, error)
  port.sweepOrphans()
}

function waitReply(core, port, call, deadline, timeout, signal) {
  if (call.done) return call.error === undefined ? call.lease : Promise.reject(call.error)
  const promise = new Promise((resolve, reject) => {
    call.resolve = resolve
    call.reject = reject
  })
  let timer
  let onAbort
  if (timeout !== Infinity) {
    timer = setTimeout(() => giveUp(core, port, call, S.timeouts, timeoutError('call', timeout)),
      Math.max(0, deadline - performance.now()))
  }
  if (signal !== undefined) {
    onAbort = () => giveUp(core, port, call, S.aborts, abortError(signal.target))
    Reflect.apply(signal.add, signal.target, ['abort', onAbort, { once: true }])
  }
  if (timer !== undefined || onAbort !== undefined) {
    call.cleanup = () => {
      if (timer !== undefined) clearTimeout(timer)
      if (onAbort !== undefined) {
        try {
          Reflect.apply(signal.remove, signal.target, ['abort', onAbort])
        } catch {
          // a signal whose removeEventListener throws: the listener stays, and finds the call done
        }
      }
    }
  }
  port.ensurePump()
  return promise
}

// ---- serving ----------------------------------------------------------------------------------

function checkHandler(handler) {
  if (typeof handler !== 'function') throw makeError('ERR_INVALID_ARG_TYPE', `the handler must be a function, got ${describe(handler)}`)
}

/** The request's record (read once), or undefined after returning a request that has none. */
function takeRecord(core, request) {
  const at = recordIndex(core.ports, request.slot)
  const i32 = core.table.i32
  const seq = Atomics.load(i32, at + R_SEQ)
  const port = Atomics.load(i32, at + R_PORT)
  const token = Atomics.load(i32, at + R_TOKEN)
  const kind = Atomics.load(i32, at + R_KIND)
  if (kind !== KIND_REQUEST || port < 0 || port >= core.ports) {
    // Not sent by a call (a lease sent into the request channel by hand, or a scribble).
    core.table.count(S.stray)
    request.release()
    return undefined
  }
  return { seq, port, token }
}

/** Sends the outcome of a handler (or the error it threw, when `failed`) to the caller's port. */
function reply(core, request, record, outcome, failed) {
  let answer = request
  let length
  let kind = KIND_REPLY
  if (!failed) {
    if (outcome === undefined) {
      length = undefined
    } else if (typeof outcome === 'number') {
      try {
        length = checkLength(outcome, request._slotSize)
      } catch (error) {
        outcome = error
        failed = true
      }
    } else if (isLease(outcome) && outcome._poolUid === core.pool._state.uid && outcome.owned) {
      answer = outcome
    } else {
      outcome = makeError('ERR_SABPOOL_BAD_REPLY',
        'a service handler must return a length, undefined, or a Lease of the service\'s pool that this thread owns')
      failed = true
    }
  }
  if (failed) {
    // The error travels in the request slot, or in a free one if the handler gave the request away.
    answer = request.owned ? request : core.pool.tryAcquire()
    if (answer === null) return // no slot to carry it: the caller learns that no reply comes
    const { code, message } = describeThrown(outcome)
    length = writeError(answer.bytes, code, message)
    kind = KIND_ERROR
  } else if (!answer.owned) {
    // The handler released or sent the request and returned nothing else: nothing to reply with.
    return
  }
  const at = recordIndex(core.ports, answer.slot)
  const i32 = core.table.i32
  Atomics.store(i32, at + R_SEQ, record.seq)
  Atomics.store(i32, at + R_PORT, record.port)
  Atomics.store(i32, at + R_TOKEN, record.token)
  Atomics.store(i32, at + R_KIND, kind)
  let sent = false
  // A caller that left (its participant entry holds another token now) gets nothing: the reply
  // would only wait in its port.
  if (participantTokenLow(core, record.port) === record.token) {
    try {
      const port = portChannel(core, record.port)
      // A port has room for twice the pool's slots, but a cell a sender had to skip (its fill
      // landed a lap late) takes a position until a receive steps over it: if the port reads
      // full, wait a moment for that rather than drop the reply.
      sent = port.trySend(answer, length)
      if (!sent) {
        port.sendSync(answer, length, { timeout: CHECK_MS })
        sent = true
      }
    } catch {
      // the port cannot be reached, or stayed full: the reply goes back to the pool below
    }
  }
  if (!sent && answer.owned) {
    core.table.count(S.late)
    answer.release()
  }
  // The reply is in the port before the request goes back: see checkGone.
  if (answer !== request && request.owned) request.release()
}

function portChannel(core, index) {
  let channel = core.portChannels.get(index)
  if (channel === undefined) {
    channel = core.portChannel(index)
    core.portChannels.set(index, channel)
  }
  return channel
}

/** Counts a serve loop of this participant in the table; returns its entry's word index. */
function enterServer(core) {
  const at = SERVERS_WORD + core.participant * SERVER_WORDS
  const i32 = core.table.i32
  const [low, high] = participantToken(core, core.participant)
  if (Atomics.load(i32, at + 1) !== low || Atomics.load(i32, at + 2) !== high) {
    // The entry was an earlier participant's: its count is not ours.
    Atomics.store(i32, at, 0)
    Atomics.store(i32, at + 1, low)
    Atomics.store(i32, at + 2, high)
  }
  Atomics.add(i32, at, 1)
  return at
}

function leaveServer(core, at) {
  Atomics.sub(core.table.i32, at, 1)
}

/**
 * Returns the replies waiting in ports whose owner is gone (its participant entry holds another
 * token now: the thread left, or its dead process was reclaimed) — a reply sent in the instant
 * its caller died. A lease recorded for the entry's current participant (which may be taking the
 * port over right now) is sent back into the port instead. `except`: this thread's own port.
 */
function sweepPorts(core, except) {
  const i32 = core.table.i32
  for (let p = 0; p < core.ports; p++) {
    if (p === except) continue
    const at = SERVERS_WORD + p * SERVER_WORDS + E_OWNER
    const ownerLow = Atomics.load(i32, at)
    const ownerHigh = Atomics.load(i32, at + 1)
    if (ownerLow === 0 && ownerHigh === 0) continue
    const [low, high] = participantToken(core, p)
    if (low === ownerLow && high === ownerHigh) continue
    let channel
    try {
      channel = portChannel(core, p)
    } catch {
      continue // a port file that cannot be opened holds nothing we could return
    }
    const keep = []
    for (let lease = channel.tryRecv(); lease !== null; lease = channel.tryRecv()) {
      const token = Atomics.load(i32, recordIndex(core.ports, lease.slot) + R_TOKEN)
      if (token === low && (low !== 0 || high !== 0)) keep.push(lease)
      else {
        core.table.count(S.late)
        lease.release()
      }
    }
    for (const lease of keep) if (!channel.trySend(lease)) lease.release()
    // Forget the gone owner, unless the entry's new participant claimed the port meanwhile.
    if (Atomics.compareExchange(i32, at, ownerLow, 0) === ownerLow) Atomics.compareExchange(i32, at + 1, ownerHigh, 0)
  }
}

/** Serve loops of participants that are still the ones their entry names. */
function liveServers(core) {
  const i32 = core.table.i32
  let live = 0
  for (let i = 0; i < core.ports; i++) {
    const at = SERVERS_WORD + i * SERVER_WORDS
    const count = Atomics.load(i32, at)
    if (count <= 0) continue
    const [low, high] = participantToken(core, i)
    if (Atomics.load(i32, at + 1) === low && Atomics.load(i32, at + 2) === high && (low !== 0 || high !== 0)) live += count
  }
  return live
}

module.exports = { Service }
