'use strict'
// Tests of sabpool's Channel (index.js): a bounded MPMC ring of leases in shared memory.
// Run with `node --test __test__/`. Worker scripts live in __test__/fixtures/ (ch-*.js).

const { describe, it, afterEach } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { spawn: spawnProcess } = require('node:child_process')
const { setTimeout: sleep } = require('node:timers/promises')

const { SharedPool, Channel, Lease, AbortError, _internal } = require('..')
const { FIXTURES, throwsCode, rejectsCode, waitFor, spawnWorker, terminateWorkers, trackChannel, closeChannels } = require('./helpers.js')
const { writeText, readText, prng } = require('./fixtures/ch-common.js')

const MAX_CAPACITY = 2 ** 24

// ---- helpers ------------------------------------------------------------------------------------

/** Asserts `fn` throws an error of class `Ctor` with `code` (and a message matching `message`). */

/** Tracks whether a promise has settled, without handling its rejection for the caller. */
function track(promise) {
  const state = { settled: false, value: undefined, error: undefined }
  state.promise = promise.then(
    (value) => { state.settled = true; state.value = value; return value },
    (error) => { state.settled = true; state.error = error; throw error },
  )
  state.promise.catch(() => {}) // observed later through state.promise
  return state
}

/**
 * The registered parked receivers and senders of a channel (from its stats). Every wait must
 * withdraw its registration when it ends, however it ends.
 */
function waiters(channel) {
  const { recvWaiting, sendWaiting } = channel.stats()
  return { recv: recvWaiting, send: sendWaiting }
}

/**
 * White-box: an extra async waiter on a channel's receivers' (`kind` 'recv') or senders' ('send')
 * wake word. It resolves 'ok' only if someone calls Atomics.notify on that word within 500 ms (a
 * parked thread's own periodic re-checks never notify), else 'timed-out'. Tells whether an
 * operation really woke the parked threads rather than leaving them to their 50 ms re-check.
 */
function wakeProbe(channel, kind) {
  const i32 = new Int32Array(channel.handle.buffer, 0, (_internal.OFFSETS.sendEpoch >>> 2) + 1)
  const index = _internal.OFFSETS[kind === 'send' ? 'sendEpoch' : 'recvEpoch'] >>> 2
  const waited = Atomics.waitAsync(i32, index, Atomics.load(i32, index), 500)
  assert.equal(waited.async, true)
  // Atomics.waitAsync alone does not keep the event loop alive.
  const keepAlive = setTimeout(() => {}, 1000)
  return waited.value.finally(() => clearTimeout(keepAlive))
}

/**
 * Records this thread's `Atomics.notify` calls on a channel's 'send' or 'recv' epoch word until
 * `stop()`, which returns how many waiters they asked to wake (Infinity for "all"): how a test sees
 * that a call woke its parked waiters, one per item, rather than leaving them to the park slice.
 */
function notifyRecorder(channel, kind) {
  const buffer = channel.handle.buffer
  const index = _internal.OFFSETS[kind === 'send' ? 'sendEpoch' : 'recvEpoch'] >>> 2
  const original = Atomics.notify
  let asked = 0
  Atomics.notify = function notify(typedArray, at, count) {
    if (typedArray.buffer === buffer && at === index) asked += count === undefined ? Infinity : count
    return Reflect.apply(original, Atomics, arguments)
  }
  return {
    stop() {
      Atomics.notify = original
      return asked
    },
  }
}

/** The invariant of a quiescent pool's counters. */
function assertPoolConsistent(stats) {
  assert.equal(stats.free, stats.slots - stats.inUse, 'free === slots - inUse')
  assert.equal(stats.acquired, stats.released + stats.reclaimed + stats.inUse, 'acquired === released + reclaimed + inUse')
}

/** Acquires a lease and writes `text` into it (length = its byte length). */
function leaseWith(pool, text) {
  const lease = pool.tryAcquire()
  assert.ok(lease !== null, 'pool exhausted')
  return writeText(lease, text)
}

/** Receives everything queued now (tryRecv until null) and releases it; returns the texts. */
function drainTexts(channel) {
  const texts = []
  for (let lease; (lease = channel.tryRecv()) !== null;) {
    texts.push(readText(lease))
    lease.release()
  }
  return texts
}

/** A channel closed after the test (see `closeChannels`). */
const chan = (pool, options) => trackChannel(new Channel(pool, options))

/** Starts a channel fixture worker; `next(type)` waits 15 s by default (not 10 s). */
const spawn = (file, workerData) => spawnWorker(file, workerData, { nextTimeout: 15_000 })

/** A scripted channel worker (fixtures/ch-worker.js) and its ctl words. */
async function scripted(channel) {
  const ctlBuffer = new SharedArrayBuffer(8)
  const w = spawn('ch-worker.js', { handle: channel.handle, ctl: ctlBuffer })
  w.ctl = new Int32Array(ctlBuffer)
  await w.next('ready')
  return w
}

/** Resolves once `w` is inside its n-th blocking call (ctl[0]) and parked in it. */
async function blockedIn(w, channel, n, kind) {
  await waitFor(() => Atomics.load(w.ctl, 0) >= n, 'the worker to enter its blocking call')
  const key = kind === 'send' ? 'send' : 'recv'
  // A thread registers as a waiter only just before it parks.
  await waitFor(() => waiters(channel)[key] >= 1, `a parked ${kind}er`)
  await sleep(50)
}

afterEach(async () => {
  // A failed test must not leave workers running into the next one.
  await terminateWorkers()
  closeChannels()
})

// ---- construction -------------------------------------------------------------------------------

describe('new Channel(pool, options)', () => {
  it('creates a channel with a plain, cloneable handle that carries the pool handle', () => {
    const pool = new SharedPool({ slotSize: 32, slots: 4 })
    const channel = new Channel(pool, { capacity: 8 })
    assert.equal(channel.pool, pool)
    assert.equal(channel.closed, false)
    const handle = channel.handle
    assert.equal(channel.handle, handle, 'the handle is stable')
    assert.deepEqual(Object.keys(handle).sort(), ['buffer', 'kind', 'pool', 'version'])
    assert.equal(handle.kind, 'sabpool.channel')
    assert.equal(typeof handle.version, 'number')
    assert.ok(handle.buffer instanceof SharedArrayBuffer)
    assert.notEqual(handle.buffer, pool.handle.buffer)
    assert.equal(handle.pool, pool.handle)
    const clone = structuredClone(handle)
    assert.equal(clone.kind, handle.kind)
    assert.ok(clone.buffer instanceof SharedArrayBuffer)
    assert.equal(clone.pool.kind, pool.handle.kind)
    assert.deepEqual(channel.stats(), { capacity: 8, queued: 0, sent: 0, received: 0, sendWaits: 0, recvWaits: 0, sendWaiting: 0, recvWaiting: 0, closed: false })
  })

  it('accepts every power of two it was asked for, and a spin option', () => {
    const pool = new SharedPool({ slotSize: 8, slots: 2 })
    for (const capacity of [2, 4, 64, 1 << 16]) {
      assert.equal(new Channel(pool, { capacity }).stats().capacity, capacity)
    }
    assert.equal(new Channel(pool, { capacity: 2, spin: 0 }).stats().capacity, 2)
    assert.equal(new Channel(pool, { capacity: 2, spin: 100000 }).stats().capacity, 2)
  })

  it('rejects a capacity that is not a power of two from 2 to 2^24 (RangeError) or not a number (TypeError)', () => {
    const pool = new SharedPool({ slotSize: 8, slots: 2 })
    for (const capacity of [0, 1, 3, 6, 12, 1000, 1.5, 2.5, -2, -4, NaN, Infinity, -Infinity, MAX_CAPACITY * 2, MAX_CAPACITY + 1, 2 ** 32, 2 ** 40]) {
      throwsCode(() => new Channel(pool, { capacity }), RangeError, 'ERR_OUT_OF_RANGE', /capacity/)
    }
    for (const capacity of ['8', null, {}, [8], true, 8n, undefined]) {
      throwsCode(() => new Channel(pool, { capacity }), TypeError, 'ERR_INVALID_ARG_TYPE', /capacity/)
    }
    throwsCode(() => new Channel(pool), TypeError, 'ERR_INVALID_ARG_TYPE')
    throwsCode(() => new Channel(pool, {}), TypeError, 'ERR_INVALID_ARG_TYPE')
  })

  it('rejects a missing pool, a non-object options argument and a bad spin', () => {
    const pool = new SharedPool({ slotSize: 8, slots: 2 })
    throwsCode(() => new Channel(), TypeError, 'ERR_INVALID_ARG_TYPE')
    throwsCode(() => new Channel({}, { capacity: 2 }), TypeError, 'ERR_INVALID_ARG_TYPE')
    throwsCode(() => new Channel(pool.handle, { capacity: 2 }), TypeError, 'ERR_INVALID_ARG_TYPE')
    throwsCode(() => new Channel(pool, null), TypeError, 'ERR_INVALID_ARG_TYPE')
    throwsCode(() => new Channel(pool, 4), TypeError, 'ERR_INVALID_ARG_TYPE')
    throwsCode(() => new Channel(pool, { capacity: 2, spin: -1 }), RangeError, 'ERR_OUT_OF_RANGE', /spin/)
    throwsCode(() => new Channel(pool, { capacity: 2, spin: 1.5 }), RangeError, 'ERR_OUT_OF_RANGE', /spin/)
    throwsCode(() => new Channel(pool, { capacity: 2, spin: '10' }), TypeError, 'ERR_INVALID_ARG_TYPE', /spin/)
  })
})

// ---- one thread ---------------------------------------------------------------------------------

describe('send and receive in one thread', () => {
  it('trySend/tryRecv are FIFO, also across many laps of the ring', () => {
    const pool = new SharedPool({ slotSize: 16, slots: 8 })
    const channel = chan(pool, { capacity: 4 })
    assert.equal(channel.tryRecv(), null, 'empty channel')
    let sent = 0
    let received = 0
    // Varying fill levels: 1..4 queued at a time, 25 rounds (many wrap-arounds of the 4-cell ring).
    for (let round = 0; round < 25; round++) {
      const burst = 1 + (round % 4)
      for (let i = 0; i < burst; i++) {
        assert.equal(channel.trySend(leaseWith(pool, `item ${sent}`)), true)
        sent++
      }
      assert.equal(channel.stats().queued, burst)
      for (let i = 0; i < burst; i++) {
        const lease = channel.tryRecv()
        assert.ok(lease instanceof Lease)
        assert.equal(readText(lease), `item ${received}`)
        lease.release()
        received++
      }
      assert.equal(channel.tryRecv(), null)
    }
    assert.deepEqual(channel.stats(), { capacity: 4, queued: 0, sent, received, sendWaits: 0, recvWaits: 0, sendWaiting: 0, recvWaiting: 0, closed: false })
    const stats = pool.stats()
    assert.equal(stats.inUse, 0)
    assert.equal(stats.acquired, sent)
    assert.equal(stats.released, sent)
  })

  it('moves ownership: the sent lease is no longer owned, the received one is, same slot and generation, same bytes', () => {
    const pool = new SharedPool({ slotSize: 64, slots: 4 })
    const channel = chan(pool, { capacity: 2 })
    const lease = leaseWith(pool, 'payload written by the sender')
    const { slot, generation } = lease
    const view = lease.bytes
    assert.equal(channel.trySend(lease), true)
    assert.equal(lease.owned, false)
    throwsCode(() => lease.bytes, Error, 'ERR_SABPOOL_STALE_LEASE')
    throwsCode(() => lease.release(), Error, 'ERR_SABPOOL_STALE_LEASE')
    throwsCode(() => lease.handoff(), Error, 'ERR_SABPOOL_STALE_LEASE')
    assert.equal(pool.stats().inUse, 1, 'a queued slot is still in use')
    const got = channel.tryRecv()
    assert.notEqual(got, lease, 'a new Lease object')
    assert.equal(got.owned, true)
    assert.equal(got.slot, slot)
    assert.equal(got.generation, generation)
    assert.equal(readText(got), 'payload written by the sender')
    assert.equal(got.bytes.buffer, view.buffer, 'the same shared memory, no copy')
    assert.equal(got.bytes.byteOffset, view.byteOffset)
    // The receiver can write and re-send it.
    got.bytes[0] = 'P'.charCodeAt(0) + 1
    assert.equal(channel.trySend(got), true)
    const again = channel.tryRecv()
    assert.equal(readText(again), 'Qayload written by the sender')
    again.release()
    assert.equal(pool.stats().inUse, 0)
  })

  it('lease.length travels: the explicit length argument, else lease.length (trySend, send, sendSync, sendMany)', async () => {
    const pool = new SharedPool({ slotSize: 100, slots: 16 })
    const channel = chan(pool, { capacity: 16 })
    const cases = []
    const add = (how, length, expected, fn) => cases.push({ how, length, expected, fn })
    add('trySend explicit', 7, 7, (l) => channel.trySend(l, 7))
    add('trySend explicit 0', 33, 0, (l) => channel.trySend(l, 0))
    add('trySend explicit slotSize', 3, 100, (l) => channel.trySend(l, 100))
    add('trySend default', 42, 42, (l) => channel.trySend(l))
    add('trySend undefined', 43, 43, (l) => channel.trySend(l, undefined))
    add('trySend default 0', 0, 0, (l) => channel.trySend(l))
    add('send explicit', 9, 11, (l) => channel.send(l, 11))
    add('send default', 55, 55, (l) => channel.send(l))
    add('sendSync explicit', 1, 99, (l) => channel.sendSync(l, 99))
    add('sendSync default', 100, 100, (l) => channel.sendSync(l))
    add('sendMany', 61, 61, (l) => assert.equal(channel.sendMany([l]), 1))
    for (const c of cases) {
      const lease = pool.tryAcquire()
      lease.bytes.fill(c.expected & 0xff)
      lease.length = c.length
      await c.fn(lease)
      assert.equal(lease.owned, false, c.how)
      assert.equal(lease.length, c.expected, `${c.how}: the sender's lease.length after the send`)
    }
    for (const c of cases) {
      const got = channel.tryRecv()
      assert.equal(got.length, c.expected, `${c.how}: received length`)
      assert.equal(got.bytes[0], c.expected & 0xff, `${c.how}: bytes`)
      got.release()
    }
    assert.equal(pool.stats().inUse, 0)
  })

  it('trySend returns false when full and the lease stays the sender\'s, usable and releasable', () => {
    const pool = new SharedPool({ slotSize: 16, slots: 8 })
    const channel = chan(pool, { capacity: 2 })
    assert.equal(channel.trySend(leaseWith(pool, 'a')), true)
    assert.equal(channel.trySend(leaseWith(pool, 'b')), true)
    const extra = leaseWith(pool, 'c')
    assert.equal(channel.trySend(extra, 1), false)
    assert.equal(channel.trySend(extra), false)
    assert.equal(extra.owned, true)
    assert.equal(readText(extra), 'c')
    assert.deepEqual(channel.stats(), { capacity: 2, queued: 2, sent: 2, received: 0, sendWaits: 0, recvWaits: 0, sendWaiting: 0, recvWaiting: 0, closed: false })
    assert.equal(pool.stats().inUse, 3)
    assert.deepEqual(drainTexts(channel), ['a', 'b'])
    assert.equal(channel.trySend(extra), true, 'room again')
    assert.deepEqual(drainTexts(channel), ['c'])
    assert.equal(pool.stats().inUse, 0)
  })

  it('stats add up: sent, received and queued over a mix of calls', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 16 })
    const channel = chan(pool, { capacity: 8 })
    const r = prng(7)
    let sent = 0
    let received = 0
    for (let step = 0; step < 400; step++) {
      const queued = sent - received
      if (r() % 2 === 0 && queued < 8) {
        const lease = leaseWith(pool, `${sent}`)
        switch (r() % 3) {
          case 0: assert.equal(channel.trySend(lease), true); break
          case 1: await channel.send(lease); break
          default: channel.sendSync(lease)
        }
        sent++
      } else if (queued > 0) {
        const lease = r() % 2 === 0 ? channel.tryRecv() : await channel.recv()
        assert.equal(readText(lease), `${received}`)
        lease.release()
        received++
      }
      const s = channel.stats()
      assert.equal(s.sent, sent)
      assert.equal(s.received, received)
      assert.equal(s.queued, sent - received)
      assert.equal(pool.stats().inUse, sent - received)
    }
  })

  it('recv() resolves at once when a lease is queued, and otherwise waits without blocking the event loop', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 4 })
    const channel = chan(pool, { capacity: 2 })
    channel.trySend(leaseWith(pool, 'ready'))
    const first = await channel.recv()
    assert.equal(readText(first), 'ready')
    first.release()

    const pending = track(channel.recv())
    let ticks = 0
    const interval = setInterval(() => ticks++, 5)
    await sleep(60)
    clearInterval(interval)
    // The 5 ms interval expires before the 60 ms sleep, so it has run unless the loop was blocked.
    assert.ok(ticks >= 1, `the event loop kept running while recv() was pending (${ticks} ticks)`)
    assert.equal(pending.settled, false)
    assert.equal(waiters(channel).recv, 1, 'one parked receiver')
    const notified = notifyRecorder(channel, 'recv')
    await new Promise((resolve) => setTimeout(() => resolve(channel.trySend(leaseWith(pool, 'later'))), 10))
    assert.equal(notified.stop(), 1, 'trySend woke the parked receiver: one wake-up for one lease')
    const got = await pending.promise
    assert.equal(readText(got), 'later')
    got.release()
    assert.ok(channel.stats().recvWaits >= 1)
    assert.deepEqual(waiters(channel), { recv: 0, send: 0 })
    assert.equal(pool.stats().inUse, 0)
  })

  it('sendSync/recvSync work on the main thread when they need not wait', () => {
    const pool = new SharedPool({ slotSize: 16, slots: 4 })
    const channel = chan(pool, { capacity: 2 })
    channel.sendSync(leaseWith(pool, 'x'))
    channel.sendSync(leaseWith(pool, 'y'), 1, { spin: 0 })
    const x = channel.recvSync()
    const y = channel.recvSync({ spin: 0, timeout: 0 })
    assert.equal(readText(x), 'x')
    assert.equal(readText(y), 'y')
    x.release()
    y.release()
  })

  it('tryRecv/recv/recvSync({ reuse }) re-arm a lease object this thread is done with', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 8 })
    const channel = chan(pool, { capacity: 4 })
    const carrier = leaseWith(pool, 'one')
    channel.trySend(leaseWith(pool, 'two'))
    channel.trySend(carrier) // sent: no longer owned, so it may be re-armed
    const first = channel.tryRecv({ reuse: carrier })
    assert.equal(first, carrier, 'the same object')
    assert.equal(first.owned, true)
    assert.equal(readText(first), 'two')
    // Reusing a lease that is still owned is refused and receives nothing.
    throwsCode(() => channel.tryRecv({ reuse: first }), Error, 'ERR_SABPOOL_LEASE_IN_USE')
    await rejectsCode(channel.recv({ reuse: first }), Error, 'ERR_SABPOOL_LEASE_IN_USE')
    throwsCode(() => channel.recvSync({ reuse: first }), Error, 'ERR_SABPOOL_LEASE_IN_USE')
    throwsCode(() => channel.tryRecv({ reuse: 5 }), TypeError, 'ERR_INVALID_ARG_TYPE')
    throwsCode(() => channel.tryRecv({ reuse: pool.handle }), TypeError, 'ERR_INVALID_ARG_TYPE')
    assert.equal(channel.stats().queued, 1)
    const slotOfTwo = first.slot
    first.release()
    const second = await channel.recv({ reuse: first })
    assert.equal(second, first)
    assert.equal(readText(second), 'one')
    assert.notEqual(second.slot, slotOfTwo)
    second.release()
    assert.equal(channel.tryRecv({ reuse: second }), null, 'empty')
    assert.equal(second.owned, false, 'an empty receive leaves the reuse lease alone')
    channel.trySend(leaseWith(pool, 'three'))
    const third = channel.recvSync({ reuse: second, timeout: 1000 })
    assert.equal(third, second)
    assert.equal(readText(third), 'three')
    assert.equal(channel.tryRecv({ reuse: null }), null)
    third.release()
    assert.equal(pool.stats().inUse, 0)
  })

  it('Channel.attach: leases go through either attachment; received leases belong to `pool` or channel.pool', () => {
    const pool = new SharedPool({ slotSize: 16, slots: 8 })
    const channel = chan(pool, { capacity: 4 })
    const same = Channel.attach(channel.handle, pool)
    assert.equal(same.pool, pool)
    const fresh = Channel.attach(structuredClone(channel.handle))
    assert.ok(fresh.pool instanceof SharedPool)
    assert.notEqual(fresh.pool, pool)
    assert.equal(fresh.pool.id, pool.id)
    assert.equal(fresh.handle.kind, 'sabpool.channel')

    // A lease of another attachment of the same pool may be sent on any attachment of the channel.
    assert.equal(fresh.trySend(leaseWith(pool, 'from pool')), true)
    assert.equal(channel.trySend(leaseWith(fresh.pool, 'from fresh.pool')), true)
    assert.equal(same.stats().queued, 2)
    const a = fresh.tryRecv()
    const b = same.tryRecv()
    assert.equal(readText(a), 'from pool')
    assert.equal(readText(b), 'from fresh.pool')
    assert.equal(pool.stats().inUse, 2)
    // Detaching fresh.pool reclaims what it holds: the lease received through `fresh`.
    fresh.detach()
    fresh.pool.detach()
    assert.equal(a.owned, true, 'the JS object does not know')
    assert.equal(pool.stats().inUse, 1, 'the lease received through the fresh attachment came back to the pool')
    assert.equal(pool.stats().reclaimed, 1)
    b.release()
    assert.equal(pool.stats().inUse, 0)
    // The other attachments still work.
    assert.equal(same.trySend(leaseWith(pool, 'still')), true)
    assert.deepEqual(drainTexts(channel), ['still'])
  })
})

// ---- errors -------------------------------------------------------------------------------------

describe('channel errors', () => {
  it('ERR_SABPOOL_STALE_LEASE: sending a released, handed-off or already sent lease', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 16 })
    const channel = chan(pool, { capacity: 8 })
    const released = leaseWith(pool, 'r')
    released.release()
    const handedOff = leaseWith(pool, 'h')
    const ticket = handedOff.handoff()
    const sent = leaseWith(pool, 's')
    assert.equal(channel.trySend(sent), true)
    for (const lease of [released, handedOff, sent]) {
      throwsCode(() => channel.trySend(lease), Error, 'ERR_SABPOOL_STALE_LEASE')
      throwsCode(() => channel.trySend(lease, 1), Error, 'ERR_SABPOOL_STALE_LEASE')
      throwsCode(() => channel.sendSync(lease), Error, 'ERR_SABPOOL_STALE_LEASE')
      await rejectsCode(channel.send(lease), Error, 'ERR_SABPOOL_STALE_LEASE')
      throwsCode(() => channel.sendMany([lease]), Error, 'ERR_SABPOOL_STALE_LEASE')
    }
    // Also when the channel is full: ownership is checked, not "full".
    for (let lease = leaseWith(pool, 'fill'); channel.trySend(lease); lease = leaseWith(pool, 'fill'));
    throwsCode(() => channel.trySend(released), Error, 'ERR_SABPOOL_STALE_LEASE')
    assert.equal(channel.stats().sent, 8, 'nothing stale was enqueued')
    assert.equal(readText(channel.tryRecv()), 's')
    pool.adopt(ticket).release()
  })

  it('ERR_SABPOOL_BAD_TICKET: sending a lease of another pool; the lease stays its owner\'s', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 4 })
    const other = new SharedPool({ slotSize: 16, slots: 4 })
    const channel = chan(pool, { capacity: 4 })
    const foreign = leaseWith(other, 'foreign')
    throwsCode(() => channel.trySend(foreign), Error, 'ERR_SABPOOL_BAD_TICKET')
    throwsCode(() => channel.trySend(foreign, 1), Error, 'ERR_SABPOOL_BAD_TICKET')
    throwsCode(() => channel.sendSync(foreign), Error, 'ERR_SABPOOL_BAD_TICKET')
    await rejectsCode(channel.send(foreign), Error, 'ERR_SABPOOL_BAD_TICKET')
    throwsCode(() => channel.sendMany([foreign]), Error, 'ERR_SABPOOL_BAD_TICKET')
    assert.equal(foreign.owned, true)
    assert.equal(readText(foreign), 'foreign')
    assert.equal(channel.stats().sent, 0)
    foreign.release()
    assert.equal(other.stats().inUse, 0)
  })

  it('ERR_SABPOOL_BAD_LENGTH for a length outside 0..slotSize, TypeError for a non-number; nothing is sent', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 4 })
    const channel = chan(pool, { capacity: 4 })
    const lease = leaseWith(pool, 'len')
    for (const length of [17, -1, 1.5, 2 ** 32, NaN, Infinity]) {
      throwsCode(() => channel.trySend(lease, length), RangeError, 'ERR_SABPOOL_BAD_LENGTH')
      throwsCode(() => channel.sendSync(lease, length), RangeError, 'ERR_SABPOOL_BAD_LENGTH')
      await rejectsCode(channel.send(lease, length), RangeError, 'ERR_SABPOOL_BAD_LENGTH')
    }
    for (const length of ['3', null, {}, 3n]) {
      throwsCode(() => channel.trySend(lease, length), TypeError, 'ERR_INVALID_ARG_TYPE')
    }
    assert.equal(lease.owned, true)
    assert.equal(lease.length, 3)
    assert.equal(channel.stats().sent, 0)
    assert.equal(channel.trySend(lease, 16), true)
    assert.equal(channel.tryRecv().length, 16)
  })

  it('ERR_SABPOOL_BAD_HANDLE: attaching something that is not this channel of this pool', () => {
    const pool = new SharedPool({ slotSize: 16, slots: 4 })
    const other = new SharedPool({ slotSize: 16, slots: 4 })
    const channel = chan(pool, { capacity: 4 })
    const h = channel.handle
    const bad = [
      undefined, null, 5, 'sabpool.channel', {},
      pool.handle, // a pool's handle
      { ...h, kind: 'sabpool.pool' },
      { ...h, version: h.version + 1 },
      { ...h, buffer: new ArrayBuffer(h.buffer.byteLength) },
      { ...h, buffer: new Uint8Array(h.buffer) },
      { ...h, buffer: new SharedArrayBuffer(16) }, // too short
      { ...h, buffer: new SharedArrayBuffer(h.buffer.byteLength) }, // zeroes: no channel header
      { ...h, buffer: pool.handle.buffer }, // a pool's memory
    ]
    for (const handle of bad) {
      assert.throws(() => Channel.attach(handle), (err) => {
        assert.equal(err.code, 'ERR_SABPOOL_BAD_HANDLE', `${err.name}: ${err.message}`)
        assert.ok(err instanceof Error)
        return true
      })
    }
    // The channel's pool is not `other`: by argument, or by the handle's pool.
    throwsCode(() => Channel.attach(h, other), Error, 'ERR_SABPOOL_BAD_HANDLE')
    throwsCode(() => Channel.attach({ ...h, pool: other.handle }), Error, 'ERR_SABPOOL_BAD_HANDLE')
    throwsCode(() => Channel.attach(h, pool.handle), TypeError, 'ERR_INVALID_ARG_TYPE')
    // The channel is unharmed.
    assert.equal(channel.trySend(leaseWith(pool, 'ok')), true)
    assert.deepEqual(drainTexts(Channel.attach(h, pool)), ['ok'])
  })

  it('ERR_SABPOOL_CLOSED: every kind of send on a closed channel; the lease stays the sender\'s', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 4 })
    const channel = chan(pool, { capacity: 4 })
    const other = Channel.attach(channel.handle)
    assert.equal(channel.close(), true)
    assert.equal(channel.close(), false, 'already closed')
    assert.equal(other.close(), false, 'already closed, seen from another attachment')
    assert.equal(channel.closed, true)
    assert.equal(other.closed, true)
    assert.equal(channel.stats().closed, true)
    const lease = leaseWith(pool, 'late')
    throwsCode(() => channel.trySend(lease), Error, 'ERR_SABPOOL_CLOSED')
    throwsCode(() => other.trySend(lease, 2), Error, 'ERR_SABPOOL_CLOSED')
    throwsCode(() => channel.sendSync(lease), Error, 'ERR_SABPOOL_CLOSED')
    await rejectsCode(channel.send(lease), Error, 'ERR_SABPOOL_CLOSED')
    throwsCode(() => channel.sendMany([lease]), Error, 'ERR_SABPOOL_CLOSED')
    assert.equal(lease.owned, true)
    assert.equal(readText(lease), 'late')
    assert.equal(channel.stats().sent, 0)
    lease.release()
    assert.equal(pool.stats().inUse, 0)
  })

  it('TypeError/RangeError for bad arguments and options of the send and receive calls', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 4 })
    const channel = chan(pool, { capacity: 4 })
    for (const notLease of [undefined, null, 1, {}, pool.handle, { slot: 0, generation: 0 }]) {
      throwsCode(() => channel.trySend(notLease), TypeError, 'ERR_INVALID_ARG_TYPE')
      throwsCode(() => channel.sendSync(notLease), TypeError, 'ERR_INVALID_ARG_TYPE')
      await rejectsCode(channel.send(notLease), TypeError, 'ERR_INVALID_ARG_TYPE')
    }
    const lease = leaseWith(pool, 'x')
    for (const options of [null, 5, 'fast']) {
      await rejectsCode(channel.recv(options), TypeError, 'ERR_INVALID_ARG_TYPE')
      throwsCode(() => channel.recvSync(options), TypeError, 'ERR_INVALID_ARG_TYPE')
      await rejectsCode(channel.send(lease, undefined, options), TypeError, 'ERR_INVALID_ARG_TYPE')
      throwsCode(() => channel.sendSync(lease, undefined, options), TypeError, 'ERR_INVALID_ARG_TYPE')
    }
    await rejectsCode(channel.recv({ timeout: -1 }), RangeError, 'ERR_OUT_OF_RANGE', /timeout/)
    await rejectsCode(channel.recv({ timeout: NaN }), RangeError, 'ERR_OUT_OF_RANGE', /timeout/)
    await rejectsCode(channel.recv({ timeout: '10' }), TypeError, 'ERR_INVALID_ARG_TYPE', /timeout/)
    await rejectsCode(channel.recv({ signal: {} }), TypeError, 'ERR_INVALID_ARG_TYPE', /signal/)
    await rejectsCode(channel.recv({ signal: 'abort' }), TypeError, 'ERR_INVALID_ARG_TYPE', /signal/)
    await rejectsCode(channel.send(lease, undefined, { timeout: -5 }), RangeError, 'ERR_OUT_OF_RANGE', /timeout/)
    await rejectsCode(channel.send(lease, undefined, { signal: null }), TypeError, 'ERR_INVALID_ARG_TYPE', /signal/)
    throwsCode(() => channel.recvSync({ spin: -1 }), RangeError, 'ERR_OUT_OF_RANGE', /spin/)
    throwsCode(() => channel.recvSync({ timeout: -1 }), RangeError, 'ERR_OUT_OF_RANGE', /timeout/)
    throwsCode(() => channel.sendSync(lease, undefined, { spin: 'lots' }), TypeError, 'ERR_INVALID_ARG_TYPE', /spin/)
    for (const max of [0, -1, 1.5, NaN, 2 ** 32]) throwsCode(() => channel.recvMany(max), RangeError, 'ERR_OUT_OF_RANGE', /max/)
    for (const max of [undefined, '2', null]) throwsCode(() => channel.recvMany(max), TypeError, 'ERR_INVALID_ARG_TYPE', /max/)
    for (const leases of [undefined, null, lease, 'x', new Set([lease])]) {
      throwsCode(() => channel.sendMany(leases), TypeError, 'ERR_INVALID_ARG_TYPE')
    }
    assert.equal(lease.owned, true, 'no failed call took the lease')
    assert.equal(channel.stats().sent, 0)
    assert.deepEqual(waiters(channel), { recv: 0, send: 0 })
  })

  it('sendMany rejects array elements that are not leases with ERR_INVALID_ARG_TYPE', () => {
    const pool = new SharedPool({ slotSize: 16, slots: 4 })
    const channel = chan(pool, { capacity: 4 })
    for (const notLease of [null, undefined, 1, 'lease', {}]) {
      throwsCode(() => channel.sendMany([notLease]), TypeError, 'ERR_INVALID_ARG_TYPE')
    }
    assert.equal(channel.stats().sent, 0)
  })

  it('ERR_SABPOOL_DETACHED after detach(); the pool and other attachments keep working', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 4 })
    const channel = chan(pool, { capacity: 4 })
    const attached = Channel.attach(channel.handle, pool)
    channel.trySend(leaseWith(pool, 'kept'))
    attached.detach()
    const lease = leaseWith(pool, 'x')
    throwsCode(() => attached.tryRecv(), Error, 'ERR_SABPOOL_DETACHED')
    throwsCode(() => attached.trySend(lease), Error, 'ERR_SABPOOL_DETACHED')
    throwsCode(() => attached.stats(), Error, 'ERR_SABPOOL_DETACHED')
    throwsCode(() => attached.close(), Error, 'ERR_SABPOOL_DETACHED')
    await rejectsCode(attached.recv(), Error, 'ERR_SABPOOL_DETACHED')
    assert.equal(lease.owned, true)
    lease.release()
    assert.equal(channel.closed, false)
    assert.deepEqual(drainTexts(channel), ['kept'])
    assert.equal(pool.stats().inUse, 0)
  })
})

// ---- close ----------------------------------------------------------------------------------------

describe('close()', () => {
  it('receivers drain what was queued before the close, then get null (tryRecv, recv, recvSync, recvMany, iterator)', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 8 })
    const channel = chan(pool, { capacity: 8 })
    for (let i = 0; i < 6; i++) channel.trySend(leaseWith(pool, `q${i}`))
    channel.close()
    assert.equal(channel.stats().queued, 6)
    const got = []
    const take = (lease) => { got.push(readText(lease)); lease.release() }
    take(channel.tryRecv())
    take(await channel.recv())
    take(channel.recvSync())
    const many = channel.recvMany(2)
    assert.equal(many.length, 2)
    many.forEach(take)
    for await (const lease of channel) take(lease)
    assert.deepEqual(got, ['q0', 'q1', 'q2', 'q3', 'q4', 'q5'])
    assert.equal(channel.tryRecv(), null)
    assert.equal(await channel.recv(), null)
    assert.equal(await channel.recv({ timeout: 0 }), null, 'closed and drained wins over a timeout')
    assert.equal(channel.recvSync(), null)
    assert.equal(channel.recvSync({ timeout: 0 }), null)
    assert.equal(channel.recvMany(4), null)
    assert.deepEqual(channel.stats(), { capacity: 8, queued: 0, sent: 6, received: 6, sendWaits: 0, recvWaits: 0, sendWaiting: 0, recvWaiting: 0, closed: true })
    assert.equal(pool.stats().inUse, 0)
  })

  it('wakes a pending main-thread recv() with null (close from this thread and from a worker)', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 4 })
    const here = chan(pool, { capacity: 2 })
    const pending = track(here.recv())
    await waitFor(() => waiters(here).recv === 1, 'recv() to park')
    await sleep(20)
    assert.equal(pending.settled, false)
    const wokeReceivers = wakeProbe(here, 'recv')
    const wokeSenders = wakeProbe(here, 'send')
    here.close()
    assert.equal(await wokeReceivers, 'ok', 'close() notified parked receivers')
    assert.equal(await wokeSenders, 'ok', 'close() notified parked senders')
    assert.equal(await pending.promise, null)

    const remote = chan(pool, { capacity: 2 })
    const w = await scripted(remote)
    const pendingRemote = track(remote.recv())
    const pendingSecond = track(remote.recv())
    await waitFor(() => waiters(remote).recv === 2, 'both recv() calls to park')
    const wokeByWorker = wakeProbe(remote, 'recv')
    w.post({ op: 'close' })
    assert.deepEqual(await w.next('closed'), { type: 'closed', result: true })
    assert.equal(await wokeByWorker, 'ok', 'the worker\'s close() notified this thread')
    assert.equal(await pendingRemote.promise, null)
    assert.equal(await pendingSecond.promise, null)
    assert.deepEqual(waiters(remote), { recv: 0, send: 0 })
  })

  it('several pending recv() calls each get a different lease; the one left over gets null on close', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 4 })
    const channel = chan(pool, { capacity: 4 })
    const pending = [0, 1, 2].map(() => track(channel.recv()))
    await waitFor(() => waiters(channel).recv === 3, 'three parked recv() calls')
    channel.sendMany([leaseWith(pool, 'p0'), leaseWith(pool, 'p1')])
    await waitFor(() => pending.filter((p) => p.settled).length === 2, 'two recv() calls to resolve')
    await sleep(60)
    assert.equal(pending.filter((p) => p.settled).length, 2, 'the third stays pending')
    const got = pending.filter((p) => p.settled).map((p) => p.value)
    assert.deepEqual(got.map(readText).sort(), ['p0', 'p1'])
    assert.notEqual(got[0].slot, got[1].slot)
    got.forEach((l) => l.release())
    channel.close()
    const last = pending.find((p) => !p.settled)
    assert.equal(await last.promise, null)
    assert.deepEqual(waiters(channel), { recv: 0, send: 0 })
    assert.equal(pool.stats().inUse, 0)
  })

  it('wakes workers parked in recvSync: they get null, after draining what was sent just before the close', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 8 })
    const channel = chan(pool, { capacity: 8 })
    const a = await scripted(channel)
    const b = await scripted(channel)
    a.post({ op: 'recvAll' })
    b.post({ op: 'recvAll' })
    await waitFor(() => waiters(channel).recv === 2, 'both workers to park in recvSync')
    await sleep(50)
    assert.equal(Atomics.load(a.ctl, 1) + Atomics.load(b.ctl, 1), 0, 'neither returned from recvSync')
    const leases = [0, 1, 2, 3, 4].map((i) => leaseWith(pool, `c${i}`))
    assert.equal(channel.sendMany(leases), 5)
    channel.close()
    const [da, db] = await Promise.all([a.next('drained'), b.next('drained')])
    const texts = [...da.leases, ...db.leases].map((l) => l.text).sort()
    assert.deepEqual(texts, ['c0', 'c1', 'c2', 'c3', 'c4'], 'each lease received exactly once')
    for (const d of [da, db]) {
      const order = d.leases.map((l) => Number(l.text.slice(1)))
      assert.deepEqual(order, [...order].sort((x, y) => x - y), 'FIFO per receiver')
    }
    assert.deepEqual(waiters(channel), { recv: 0, send: 0 })
    assert.equal(pool.stats().inUse, 0)

    // Parked with nothing queued at all: null.
    const channel2 = chan(pool, { capacity: 2 })
    const c = await scripted(channel2)
    c.post({ op: 'recvSync' })
    await blockedIn(c, channel2, 1, 'recv')
    channel2.close()
    const res = await c.next('recv')
    assert.deepEqual(res, { type: 'recv', lease: null, error: null })
  })

  it('wakes a worker blocked in sendSync on a full channel: ERR_SABPOOL_CLOSED, and its lease is still owned and releasable', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 8 })
    const channel = chan(pool, { capacity: 2 })
    const w = await scripted(channel)
    w.post({ op: 'fill', text: 'f' })
    assert.equal((await w.next('filled')).sent, 2)
    w.post({ op: 'sendSync', text: 'blocked' })
    await blockedIn(w, channel, 1, 'send')
    assert.equal(Atomics.load(w.ctl, 1), 0, 'sendSync has not returned')
    assert.equal(pool.stats().inUse, 3)
    channel.close()
    const res = await w.next('send')
    assert.equal(res.ok, false)
    assert.equal(res.error.code, 'ERR_SABPOOL_CLOSED', res.error.message)
    assert.equal(res.owned, true, 'the lease is still the worker\'s')
    assert.equal(res.released, true)
    assert.equal(pool.stats().inUse, 2, 'only the queued leases are in use')
    assert.deepEqual(drainTexts(channel), ['f0', 'f1'], 'queued leases still drain after the close')
    assert.equal(channel.tryRecv(), null)
    assert.deepEqual(waiters(channel), { recv: 0, send: 0 })
    const stats = pool.stats()
    assert.equal(stats.inUse, 0)
    assertPoolConsistent(stats)
  })

  it('rejects a pending async send() with ERR_SABPOOL_CLOSED; the lease is still owned', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 8 })
    const channel = chan(pool, { capacity: 2 })
    channel.trySend(leaseWith(pool, 'a'))
    channel.trySend(leaseWith(pool, 'b'))
    const lease = leaseWith(pool, 'c')
    const pending = track(channel.send(lease))
    await waitFor(() => waiters(channel).send === 1, 'send() to park')
    assert.equal(pending.settled, false)
    channel.close()
    await rejectsCode(pending.promise, Error, 'ERR_SABPOOL_CLOSED')
    assert.equal(lease.owned, true)
    assert.equal(readText(lease), 'c')
    lease.release()
    assert.deepEqual(drainTexts(channel), ['a', 'b'])
    assert.deepEqual(waiters(channel), { recv: 0, send: 0 })
    assert.equal(pool.stats().inUse, 0)
  })
})

// ---- timeouts and abort -----------------------------------------------------------------------------

describe('timeouts and AbortSignal', () => {
  it('recv({ timeout }) rejects with ERR_SABPOOL_TIMEOUT; nothing leaks and a later lease is still receivable', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 4 })
    const channel = chan(pool, { capacity: 2 })
    await rejectsCode(channel.recv({ timeout: 0 }), Error, 'ERR_SABPOOL_TIMEOUT')
    const t0 = performance.now()
    await rejectsCode(channel.recv({ timeout: 40 }), Error, 'ERR_SABPOOL_TIMEOUT', /recv/)
    assert.ok(performance.now() - t0 >= 35, 'did not time out early')
    assert.deepEqual(waiters(channel), { recv: 0, send: 0 })
    channel.trySend(leaseWith(pool, 'after'))
    await sleep(80) // a stale wait, if any were left, would wake and could take it
    assert.equal(channel.stats().queued, 1)
    const got = await channel.recv({ timeout: 1000 })
    assert.equal(readText(got), 'after')
    got.release()
    assert.equal(pool.stats().inUse, 0)
  })

  it('recv({ signal }): aborted before (even with a lease queued) and during the wait; the lease is not consumed', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 4 })
    const channel = chan(pool, { capacity: 2 })
    const reason = new Error('stop')
    const ac = new AbortController()
    ac.abort(reason)
    await rejectsCode(channel.recv({ signal: ac.signal }), AbortError, 'ABORT_ERR')
    channel.trySend(leaseWith(pool, 'queued'))
    await assert.rejects(channel.recv({ signal: ac.signal }), (err) => {
      assert.ok(err instanceof AbortError)
      assert.equal(err.name, 'AbortError')
      assert.equal(err.code, 'ABORT_ERR')
      assert.equal(err.cause, reason)
      return true
    })
    assert.equal(channel.stats().queued, 1, 'an aborted recv took nothing')
    assert.deepEqual(drainTexts(channel), ['queued'])

    const ac2 = new AbortController()
    const pending = track(channel.recv({ signal: ac2.signal, timeout: 60000 }))
    await waitFor(() => waiters(channel).recv === 1, 'recv() to park')
    await sleep(20)
    assert.equal(pending.settled, false)
    ac2.abort('changed my mind')
    // The abort settles the wait at once: by the next turn of the event loop, not at a re-check.
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(pending.settled, true, 'recv() rejected as soon as the signal was aborted')
    await assert.rejects(pending.promise, (err) => {
      assert.ok(err instanceof AbortError)
      assert.equal(err.cause, 'changed my mind')
      return true
    })
    assert.deepEqual(waiters(channel), { recv: 0, send: 0 })
    channel.trySend(leaseWith(pool, 'after abort'))
    await sleep(80)
    assert.equal(channel.stats().queued, 1, 'the aborted recv did not take a lease sent afterwards')
    const got = await channel.recv({ signal: new AbortController().signal })
    assert.equal(readText(got), 'after abort')
    got.release()
    assert.equal(pool.stats().inUse, 0)
  })

  it('send({ timeout }) and send({ signal }) on a full channel: rejected, the lease stays owned, no slot leaks', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 8 })
    const channel = chan(pool, { capacity: 2 })
    channel.trySend(leaseWith(pool, 'a'))
    channel.trySend(leaseWith(pool, 'b'))
    const lease = leaseWith(pool, 'c')
    await rejectsCode(channel.send(lease, undefined, { timeout: 0 }), Error, 'ERR_SABPOOL_TIMEOUT')
    await rejectsCode(channel.send(lease, 0, { timeout: 30 }), Error, 'ERR_SABPOOL_TIMEOUT', /send/)
    assert.equal(lease.owned, true)
    const ac = new AbortController()
    ac.abort()
    await rejectsCode(channel.send(lease, undefined, { signal: ac.signal }), AbortError, 'ABORT_ERR')
    const ac2 = new AbortController()
    const pending = track(channel.send(lease, undefined, { signal: ac2.signal }))
    await waitFor(() => waiters(channel).send === 1, 'send() to park')
    ac2.abort()
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(pending.settled, true, 'send() rejected as soon as the signal was aborted')
    await rejectsCode(pending.promise, AbortError, 'ABORT_ERR')
    assert.equal(lease.owned, true)
    assert.equal(lease.length, 1, 'a failed send leaves lease.length as it was')
    assert.deepEqual(waiters(channel), { recv: 0, send: 0 })
    assert.equal(pool.stats().inUse, 3)
    assert.deepEqual(drainTexts(channel), ['a', 'b'])
    await sleep(80)
    assert.equal(channel.stats().queued, 0, 'no aborted send went through later')
    lease.release()
    assert.equal(pool.stats().inUse, 0)
    // Aborted before, even when there is room: nothing is sent.
    const fresh = leaseWith(pool, 'd')
    await rejectsCode(channel.send(fresh, undefined, { signal: ac.signal }), AbortError, 'ABORT_ERR')
    assert.equal(fresh.owned, true)
    assert.equal(channel.stats().queued, 0)
    fresh.release()
  })

  it('recvSync/sendSync({ timeout }) throw ERR_SABPOOL_TIMEOUT, on the main thread and in a worker', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 8 })
    const channel = chan(pool, { capacity: 2 })
    throwsCode(() => channel.recvSync({ timeout: 0 }), Error, 'ERR_SABPOOL_TIMEOUT')
    throwsCode(() => channel.recvSync({ timeout: 20, spin: 10 }), Error, 'ERR_SABPOOL_TIMEOUT', /recvSync/)
    channel.trySend(leaseWith(pool, 'a'))
    channel.trySend(leaseWith(pool, 'b'))
    const lease = leaseWith(pool, 'c')
    throwsCode(() => channel.sendSync(lease, undefined, { timeout: 0 }), Error, 'ERR_SABPOOL_TIMEOUT')
    throwsCode(() => channel.sendSync(lease, undefined, { timeout: 20 }), Error, 'ERR_SABPOOL_TIMEOUT', /sendSync/)
    assert.equal(lease.owned, true)
    lease.release()
    assert.deepEqual(waiters(channel), { recv: 0, send: 0 })

    const w = await scripted(channel)
    w.post({ op: 'sendSync', text: 'w', timeout: 50 })
    const sent = await w.next('send')
    assert.equal(sent.error && sent.error.code, 'ERR_SABPOOL_TIMEOUT')
    assert.equal(sent.owned, true)
    assert.equal(sent.released, true)
    assert.deepEqual(drainTexts(channel), ['a', 'b'])
    w.post({ op: 'recvSync', timeout: 50 })
    const got = await w.next('recv')
    assert.equal(got.lease, null)
    assert.equal(got.error && got.error.code, 'ERR_SABPOOL_TIMEOUT')
    assert.deepEqual(waiters(channel), { recv: 0, send: 0 })
    assert.equal(pool.stats().inUse, 0)
    assert.ok(channel.stats().sendWaits >= 1)
    assert.ok(channel.stats().recvWaits >= 1)
  })
})

// ---- backpressure -------------------------------------------------------------------------------------

describe('backpressure', () => {
  it('send() on a full channel stays pending until a receiver takes one, then the lease follows in FIFO order', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 8 })
    const channel = chan(pool, { capacity: 2 })
    assert.equal(channel.trySend(leaseWith(pool, 'a')), true)
    assert.equal(channel.trySend(leaseWith(pool, 'b')), true)
    const lease = leaseWith(pool, 'c')
    assert.equal(channel.trySend(lease), false)
    const pending = track(channel.send(lease))
    await sleep(120)
    assert.equal(pending.settled, false, 'send() waits while the channel is full')
    assert.equal(lease.owned, true, 'the waiting lease is still the sender\'s')
    assert.equal(channel.stats().queued, 2)
    assert.ok(channel.stats().sendWaits >= 1)
    const notified = notifyRecorder(channel, 'send')
    const first = channel.tryRecv()
    assert.equal(notified.stop(), 1, 'tryRecv woke the parked sender: one wake-up for one cell')
    assert.equal(readText(first), 'a')
    first.release()
    await pending.promise
    assert.equal(lease.owned, false)
    assert.deepEqual(drainTexts(channel), ['b', 'c'])
    assert.deepEqual(waiters(channel), { recv: 0, send: 0 })
    assert.equal(pool.stats().inUse, 0)
  })

  it('sendSync in a worker blocks until the main thread receives', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 8 })
    const channel = chan(pool, { capacity: 4 })
    const w = await scripted(channel)
    w.post({ op: 'fill', text: 'f' })
    assert.equal((await w.next('filled')).sent, 4)
    w.post({ op: 'sendSync', text: 'late' })
    await blockedIn(w, channel, 1, 'send')
    await sleep(100)
    assert.equal(Atomics.load(w.ctl, 1), 0, 'sendSync is still blocked')
    assert.equal(w.has('send'), false)
    assert.equal(channel.stats().queued, 4)
    const first = await channel.recv()
    assert.equal(readText(first), 'f0')
    first.release()
    const res = await w.next('send')
    assert.deepEqual(res, { type: 'send', ok: true, error: null, owned: false, released: false })
    assert.deepEqual(drainTexts(channel), ['f1', 'f2', 'f3', 'late'])
    assert.ok(channel.stats().sendWaits >= 1)
    assert.deepEqual(waiters(channel), { recv: 0, send: 0 })
    assert.equal(pool.stats().inUse, 0)
  })
})

// ---- iteration and batches ------------------------------------------------------------------------------

describe('async iteration, sendMany, recvMany', () => {
  it('for await receives in order and ends when the channel is closed and drained', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 8 })
    const channel = chan(pool, { capacity: 4 })
    channel.trySend(leaseWith(pool, 'i0'))
    channel.trySend(leaseWith(pool, 'i1'))
    let next = 2
    const timer = setInterval(() => {
      if (next < 8) {
        const lease = leaseWith(pool, `i${next}`)
        if (channel.trySend(lease)) next++
        else lease.release()
      } else {
        clearInterval(timer)
        channel.close()
      }
    }, 5)
    const got = []
    for await (const lease of channel) {
      assert.ok(lease instanceof Lease)
      got.push(readText(lease))
      lease.release()
    }
    assert.deepEqual(got, ['i0', 'i1', 'i2', 'i3', 'i4', 'i5', 'i6', 'i7'])
    assert.equal(pool.stats().inUse, 0)
    // Already closed and drained: no iteration at all.
    for await (const lease of channel) assert.fail(`unexpected ${lease}`)
    // Breaking out early leaves the rest queued.
    const open = chan(pool, { capacity: 4 })
    for (let i = 0; i < 3; i++) open.trySend(leaseWith(pool, `o${i}`))
    for await (const lease of open) {
      lease.release()
      break
    }
    assert.equal(open.stats().queued, 2)
    assert.deepEqual(drainTexts(open), ['o1', 'o2'])
  })

  it('sendMany sends what fits, in order, and returns the count; the rest stay owned', () => {
    const pool = new SharedPool({ slotSize: 16, slots: 8 })
    const channel = chan(pool, { capacity: 4 })
    assert.equal(channel.sendMany([]), 0)
    const leases = [0, 1, 2, 3, 4, 5].map((i) => leaseWith(pool, `m${i}`))
    assert.equal(channel.sendMany(leases), 4)
    assert.deepEqual(leases.map((l) => l.owned), [false, false, false, false, true, true])
    assert.equal(channel.stats().queued, 4)
    assert.equal(channel.sendMany(leases.slice(4)), 0, 'full')
    assert.equal(readText(leases[4]), 'm4')
    const first = channel.tryRecv()
    assert.equal(readText(first), 'm0')
    first.release()
    assert.equal(channel.sendMany(leases.slice(4)), 1)
    assert.deepEqual([leases[4].owned, leases[5].owned], [false, true])
    assert.deepEqual(drainTexts(channel), ['m1', 'm2', 'm3', 'm4'])
    assert.equal(channel.sendMany([leases[5]]), 1)
    assert.deepEqual(drainTexts(channel), ['m5'])
    assert.equal(channel.stats().sent, 6)
    assert.equal(pool.stats().inUse, 0)
  })

  it('sendMany that throws part-way (a stale lease after good ones) still wakes receivers parked for the ones it sent', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 8 })
    const channel = chan(pool, { capacity: 4 })
    for (const withStale of [false, true]) {
      const pending = track(channel.recv())
      await waitFor(() => waiters(channel).recv === 1, 'recv() to park')
      const notified = notifyRecorder(channel, 'recv')
      const good = leaseWith(pool, `good ${withStale}`)
      if (withStale) {
        const stale = leaseWith(pool, 'stale')
        stale.release()
        throwsCode(() => channel.sendMany([good, stale]), Error, 'ERR_SABPOOL_STALE_LEASE')
      } else {
        assert.equal(channel.sendMany([good]), 1)
      }
      assert.equal(good.owned, false, 'the good lease was sent')
      assert.equal(notified.stop(), 1, `the parked receiver was woken for the one lease sent (${withStale ? 'sendMany threw part-way' : 'control'})`)
      const got = await pending.promise
      assert.equal(readText(got), `good ${withStale}`)
      got.release()
    }
    assert.equal(pool.stats().inUse, 0)
  })

  it('recvMany returns at most max leases in order, [] when empty, null once closed and drained', () => {
    const pool = new SharedPool({ slotSize: 16, slots: 8 })
    const channel = chan(pool, { capacity: 8 })
    assert.deepEqual(channel.recvMany(4), [])
    for (let i = 0; i < 7; i++) channel.trySend(leaseWith(pool, `r${i}`))
    const a = channel.recvMany(3)
    assert.equal(a.length, 3)
    assert.ok(a.every((l) => l instanceof Lease && l.owned))
    assert.deepEqual(a.map(readText), ['r0', 'r1', 'r2'])
    const b = channel.recvMany(1)
    assert.deepEqual(b.map(readText), ['r3'])
    channel.close()
    const c = channel.recvMany(100)
    assert.deepEqual(c.map(readText), ['r4', 'r5', 'r6'], 'closed but not drained: the rest')
    assert.equal(channel.recvMany(100), null)
    assert.equal(channel.recvMany(1), null)
    for (const l of [...a, ...b, ...c]) l.release()
    assert.equal(channel.stats().received, 7)
    assert.equal(pool.stats().inUse, 0)
  })

  it('recvMany frees room for blocked senders (one notify call for the batch)', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 8 })
    const channel = chan(pool, { capacity: 2 })
    channel.sendMany([leaseWith(pool, 'a'), leaseWith(pool, 'b')])
    const c = leaseWith(pool, 'c')
    const d = leaseWith(pool, 'd')
    const pc = track(channel.send(c))
    const pd = track(channel.send(d))
    await waitFor(() => waiters(channel).send === 2, 'both sends to park')
    const notified = notifyRecorder(channel, 'send')
    const batch = channel.recvMany(2)
    assert.equal(notified.stop(), 2, 'recvMany woke both parked senders: one wake-up per cell freed, in one call')
    assert.deepEqual(batch.map(readText), ['a', 'b'])
    batch.forEach((l) => l.release())
    await Promise.all([pc.promise, pd.promise])
    assert.deepEqual(drainTexts(channel).sort(), ['c', 'd'])
    assert.equal(pool.stats().inUse, 0)
  })
})

// ---- workers -----------------------------------------------------------------------------------------

describe('channels across worker threads', () => {
  it('2 producers × 2 consumers, 200,000 stamped leases: each received exactly once, intact, FIFO per producer', { timeout: 120000 }, async () => {
    const PRODUCERS = 2
    const PER_PRODUCER = 100000
    const TOTAL = PRODUCERS * PER_PRODUCER
    const pool = new SharedPool({ slotSize: 128, slots: 48 })
    const channel = chan(pool, { capacity: 32 })
    const t0 = performance.now()
    const consumers = [0, 1].map((consumer) => spawn('ch-consumer.js', {
      handle: channel.handle, consumer, producers: PRODUCERS, count: PER_PRODUCER,
      batch: consumer === 1 ? 16 : 0, ownPool: consumer === 1,
    }))
    const producers = [0, 1].map((producer) => spawn('ch-producer.js', {
      handle: channel.handle, producer, count: PER_PRODUCER, seed: 0x1234 + producer * 977,
    }))
    for (const p of producers) {
      const done = await p.next('done', 60000)
      assert.equal(done.sent, PER_PRODUCER)
      assert.equal(await p.exited, 0, p.errors.map(String).join('\n'))
    }
    channel.close()
    const results = await Promise.all(consumers.map((c) => c.next('result', 60000)))
    const elapsed = performance.now() - t0
    const seen = Array.from({ length: PRODUCERS }, () => new Uint8Array(PER_PRODUCER))
    let received = 0
    for (const r of results) {
      assert.deepEqual(r.errors, [], `consumer ${r.consumer}`)
      assert.equal(r.badSum, 0, `consumer ${r.consumer}: bad checksums`)
      assert.equal(r.badOrder, 0, `consumer ${r.consumer}: out of order`)
      assert.equal(r.badProducer, 0)
      assert.ok(r.received > 0, `consumer ${r.consumer} received something`)
      received += r.received
      r.seqs.forEach((seqs, producer) => {
        for (const seq of seqs) {
          assert.ok(seq < PER_PRODUCER, `seq ${seq} in range`)
          seen[producer][seq]++
        }
      })
    }
    assert.equal(received, TOTAL)
    for (let p = 0; p < PRODUCERS; p++) {
      const missing = seen[p].indexOf(0)
      const duplicate = seen[p].findIndex((n) => n > 1)
      assert.equal(missing, -1, `producer ${p}: seq ${missing} never received`)
      assert.equal(duplicate, -1, `producer ${p}: seq ${duplicate} received ${seen[p][duplicate]} times`)
    }
    await Promise.all(consumers.map((c) => c.exited))
    const stats = channel.stats()
    assert.equal(stats.sent, TOTAL)
    assert.equal(stats.received, TOTAL)
    assert.equal(stats.queued, 0)
    assert.equal(stats.closed, true)
    const ps = pool.stats()
    assert.equal(ps.inUse, 0)
    assert.equal(ps.acquired, TOTAL)
    assert.equal(ps.acquired, ps.released + ps.reclaimed)
    assertPoolConsistent(ps)
    assert.deepEqual(waiters(channel), { recv: 0, send: 0 })
    console.log(`# 2x2 stress: ${TOTAL} leases in ${Math.round(elapsed)} ms; consumers got ${results.map((r) => r.received).join(' + ')}; sendWaits ${stats.sendWaits}, recvWaits ${stats.recvWaits}`)
  })

  it('close() racing with 2 busy producers and 2 consumers: exactly the sends that succeeded are received, once each', { timeout: 120000 }, async () => {
    const PRODUCERS = 2
    const MAX = 1 << 19
    const pool = new SharedPool({ slotSize: 64, slots: 24 })
    const channel = chan(pool, { capacity: 8 })
    const go = new Int32Array(new SharedArrayBuffer(8))
    const consumers = [0, 1].map((consumer) => spawn('ch-consumer.js', {
      handle: channel.handle, consumer, producers: PRODUCERS, count: MAX, batch: consumer === 0 ? 4 : 0, ownPool: consumer === 0,
    }))
    const producers = [0, 1].map((producer) => spawn('ch-racer.js', {
      handle: channel.handle, producer, max: MAX, seed: 0xbeef + producer, go: go.buffer,
    }))
    await waitFor(() => Atomics.load(go, 0) === PRODUCERS, 'the producers to start', 15000)
    Atomics.store(go, 1, 1)
    Atomics.notify(go, 1)
    // Close in the middle of the stream, while both producers are sending.
    await waitFor(() => channel.stats().sent >= 30000, '30,000 sends', 60000)
    assert.equal(channel.close(), true)
    const reports = await Promise.all(producers.map((p) => p.next('done', 60000)))
    const results = await Promise.all(consumers.map((c) => c.next('result', 60000)))
    const sentBy = []
    for (const r of reports) {
      assert.ok(r.sent < MAX, `producer ${r.producer} was stopped by the close`)
      assert.equal(r.error && r.error.code, 'ERR_SABPOOL_CLOSED', JSON.stringify(r.error))
      assert.equal(r.failedOwned, true, 'the lease of the failed send is still the producer\'s')
      assert.equal(r.failedReleased, true)
      sentBy[r.producer] = r.sent
    }
    const seen = sentBy.map((n) => new Uint8Array(n))
    let received = 0
    for (const r of results) {
      assert.deepEqual(r.errors, [], `consumer ${r.consumer}`)
      assert.equal(r.badSum + r.badOrder + r.badProducer, 0, `consumer ${r.consumer}: ${JSON.stringify(r)}`)
      received += r.received
      r.seqs.forEach((seqs, producer) => {
        for (const seq of seqs) {
          assert.ok(seq < sentBy[producer], `producer ${producer} seq ${seq} received, but only ${sentBy[producer]} sends succeeded`)
          seen[producer][seq]++
        }
      })
    }
    const total = sentBy[0] + sentBy[1]
    assert.equal(received, total, `received ${received}, successful sends ${sentBy.join(' + ')}`)
    seen.forEach((counts, producer) => {
      const missing = counts.indexOf(0)
      assert.equal(missing, -1, `producer ${producer}: seq ${missing} was sent but never received`)
      assert.equal(counts.findIndex((n) => n > 1), -1, `producer ${producer}: a seq received twice`)
    })
    await Promise.all([...consumers, ...producers].map((w) => w.exited))
    const stats = channel.stats()
    assert.equal(stats.sent, total)
    assert.equal(stats.received, total)
    assert.equal(stats.queued, 0)
    const ps = pool.stats()
    assert.equal(ps.inUse, 0)
    assert.equal(ps.acquired, total + PRODUCERS, 'every successful send plus each producer\'s failed one')
    assert.equal(ps.acquired, ps.released + ps.reclaimed)
    assert.deepEqual(waiters(channel), { recv: 0, send: 0 })
    console.log(`# close race: ${sentBy.join(' + ')} sent before the close, all received`)
  })

  it('pipeline worker A → channel → worker B (modifies in place) → channel → main: the same lease all the way, 10,000 times', { timeout: 120000 }, async () => {
    const N = 10000
    const pool = new SharedPool({ slotSize: 64, slots: 12 })
    const first = chan(pool, { capacity: 4 })
    const second = chan(pool, { capacity: 4 })
    const relay = spawn('ch-stage.js', { role: 'relay', input: first.handle, output: second.handle })
    const source = spawn('ch-stage.js', { role: 'source', output: first.handle, count: N })
    const u32 = (b, at) => (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0
    let expect = 0
    const errors = []
    const fail = (msg) => { if (errors.length < 5) errors.push(msg) }
    for await (const lease of second) {
      const b = lease.bytes
      const i = u32(b, 0)
      if (i !== expect) fail(`got item ${i}, expected ${expect}`)
      expect = i + 1
      if (u32(b, 4) !== lease.slot) fail(`item ${i}: source wrote from slot ${u32(b, 4)}, main got slot ${lease.slot}`)
      if (u32(b, 8) !== lease.slot) fail(`item ${i}: relay saw slot ${u32(b, 8)}, main got slot ${lease.slot}`)
      const length = 16 + (i % (pool.slotSize - 15))
      if (lease.length !== length) fail(`item ${i}: length ${lease.length}, expected ${length}`)
      for (let j = 12; j < length; j++) {
        if (b[j] !== (~(i + j) & 0xff)) { fail(`item ${i}: byte ${j} is ${b[j]}, not the relay's inversion`); break }
      }
      lease.release()
    }
    assert.deepEqual(errors, [])
    assert.equal(expect, N)
    const [s, r] = await Promise.all([source.next('done'), relay.next('done')])
    assert.deepEqual(s.errors, [])
    assert.deepEqual(r.errors, [])
    assert.equal(s.forwarded, N)
    assert.equal(r.forwarded, N)
    assert.equal(await source.exited, 0)
    assert.equal(await relay.exited, 0)
    for (const ch of [first, second]) {
      const st = ch.stats()
      assert.equal(st.sent, N)
      assert.equal(st.received, N)
      assert.equal(st.closed, true)
    }
    const ps = pool.stats()
    assert.equal(ps.inUse, 0)
    assert.equal(ps.acquired, N, 'one acquire per item: the lease was forwarded, not copied')
    assert.equal(ps.released, N)
    assert.equal(ps.reclaimed, 0)
  })

  for (const mode of ['return', 'throw', 'exit', 'terminate']) {
    it(`a consumer that leaves (${mode}) holding received leases: they are reclaimed, the queued ones stay receivable`, async () => {
      const pool = new SharedPool({ slotSize: 16, slots: 8 })
      const channel = chan(pool, { capacity: 8 })
      for (let i = 0; i < 6; i++) assert.equal(channel.trySend(leaseWith(pool, `e${i}`)), true)
      const w = await scripted(channel)
      w.post({ op: 'hold', n: 2 })
      const held = await w.next('held')
      assert.deepEqual(held.leases.map((l) => l.text), ['e0', 'e1'])
      assert.equal(pool.stats().inUse, 6)
      assert.equal(channel.stats().queued, 4)
      if (mode === 'terminate') await w.worker.terminate()
      else w.post({ op: 'leave', mode })
      const code = await w.exited
      if (mode === 'return') assert.equal(code, 0)
      if (mode === 'throw') assert.equal(code, 1)
      await waitFor(() => pool.stats().reclaimed === 2, 'the held leases to be reclaimed')
      const stats = pool.stats()
      assert.equal(stats.inUse, 4, 'the 4 queued leases are still in use')
      assertPoolConsistent(stats)
      assert.equal(channel.stats().queued, 4)
      // Another consumer (a worker) takes two, this thread the rest.
      const next = await scripted(channel)
      next.post({ op: 'recvSync' })
      next.post({ op: 'recvSync' })
      const r1 = await next.next('recv')
      const r2 = await next.next('recv')
      assert.deepEqual([r1.lease.text, r2.lease.text], ['e2', 'e3'])
      assert.deepEqual(drainTexts(channel), ['e4', 'e5'])
      assert.deepEqual(waiters(channel), { recv: 0, send: 0 })
      const end = pool.stats()
      assert.equal(end.inUse, 0)
      assert.equal(end.reclaimed, 2)
      assert.equal(end.acquired, end.released + end.reclaimed)
    })
  }

  it('a producer that exits leaves its queued leases receivable; only the lease it still held is reclaimed', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 8 })
    const channel = chan(pool, { capacity: 4 })
    const w = await scripted(channel)
    w.post({ op: 'fill', text: 'x' })
    assert.equal((await w.next('filled')).sent, 4)
    w.post({ op: 'leave', mode: 'return' })
    assert.equal(await w.exited, 0)
    await waitFor(() => pool.stats().reclaimed === 1, 'the spare lease to be reclaimed')
    assert.equal(pool.stats().inUse, 4)
    assert.deepEqual(drainTexts(channel), ['x0', 'x1', 'x2', 'x3'])
    const stats = pool.stats()
    assert.equal(stats.inUse, 0)
    assert.equal(stats.reclaimed, 1)
    assertPoolConsistent(stats)
  })

  it('a worker terminated while blocked in sendSync: its lease is reclaimed, its wait withdrawn, the queue intact', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 8 })
    const channel = chan(pool, { capacity: 2 })
    const w = await scripted(channel)
    w.post({ op: 'fill', text: 'y' })
    assert.equal((await w.next('filled')).sent, 2)
    w.post({ op: 'sendSync', text: 'never' })
    await blockedIn(w, channel, 1, 'send')
    await w.worker.terminate()
    await waitFor(() => pool.stats().reclaimed === 1, 'the blocked sender\'s lease to be reclaimed')
    await waitFor(() => waiters(channel).send === 0, 'the terminated sender\'s wait to be withdrawn')
    assert.equal(channel.stats().queued, 2)
    assert.deepEqual(drainTexts(channel), ['y0', 'y1'])
    assert.equal(channel.trySend(leaseWith(pool, 'z')), true)
    assert.deepEqual(drainTexts(channel), ['z'])
    const stats = pool.stats()
    assert.equal(stats.inUse, 0)
    assertPoolConsistent(stats)
  })

  it('a worker terminated while parked in recvSync withdraws its wait; later leases go to other receivers', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 4 })
    const channel = chan(pool, { capacity: 2 })
    const w = await scripted(channel)
    w.post({ op: 'recvSync' })
    await blockedIn(w, channel, 1, 'recv')
    await w.worker.terminate()
    await waitFor(() => waiters(channel).recv === 0, 'the terminated worker\'s wait to be withdrawn')
    channel.trySend(leaseWith(pool, 'for someone else'))
    const got = await channel.recv({ timeout: 5000 })
    assert.equal(readText(got), 'for someone else')
    got.release()
    assert.equal(pool.stats().inUse, 0)
    assert.equal(pool.stats().reclaimed, 0)
  })
})

// ---- process lifetime -------------------------------------------------------------------------------------

describe('process lifetime (child process)', () => {
  const child = path.join(FIXTURES, 'ch-keepalive-child.js')

  /** Runs the fixture in a child node; resolves { code, signal, stdout, stderr, wall }. */
  function run(mode) {
    return new Promise((resolve, reject) => {
      const t0 = performance.now()
      const proc = spawnProcess(process.execPath, [child, mode], { stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      proc.stdout.on('data', (d) => { stdout += d })
      proc.stderr.on('data', (d) => { stderr += d })
      const killer = setTimeout(() => proc.kill('SIGKILL'), 20000)
      proc.on('error', reject)
      proc.on('close', (code, signal) => {
        clearTimeout(killer)
        resolve({ code, signal, stdout, stderr, wall: performance.now() - t0 })
      })
    })
  }

  function parse(stdout) {
    const lines = stdout.trim().split('\n')
    const field = (line, name) => {
      const m = new RegExp(`\\b${name}=(\\S+)`).exec(line)
      return m && m[1]
    }
    return { lines, field }
  }

  for (const mode of ['unref', 'ref']) {
    it(`a pending recv() alone keeps the process alive until a worker (${mode}) sends; then it exits on its own`, { timeout: 30000 }, async () => {
      const res = await run(mode)
      assert.equal(res.signal, null, `the child was killed: it did not exit on its own\n${res.stdout}${res.stderr}`)
      assert.equal(res.code, 0, res.stderr)
      const { lines, field } = parse(res.stdout)
      assert.equal(lines.length, 2, res.stdout)
      assert.match(lines[0], /^received text=hello from worker after=\d+ inUse=0$/)
      assert.ok(Number(field(lines[0], 'after')) >= 290, `did not settle before the worker sent: ${lines[0]}`)
      assert.match(lines[1], /^exit code=0 after-settle=\d+$/)
      assert.ok(Number(field(lines[1], 'after-settle')) < 2000, `exited promptly once recv settled: ${lines[1]}`)
    })
  }

  it('a pending recv() resolves null when a worker closes the channel, and the process exits on its own', { timeout: 30000 }, async () => {
    const res = await run('close')
    assert.equal(res.signal, null, `the child was killed\n${res.stdout}${res.stderr}`)
    assert.equal(res.code, 0, res.stderr)
    const { lines, field } = parse(res.stdout)
    assert.match(lines[0], /^null after=\d+ closed=true$/)
    assert.ok(Number(field(lines[0], 'after')) >= 290, lines[0])
    assert.match(lines[1], /^exit code=0 after-settle=\d+$/)
    assert.ok(Number(field(lines[1], 'after-settle')) < 2000, lines[1])
  })

  it('a recv({ timeout }) alone keeps the process alive until it rejects, then the process exits', { timeout: 30000 }, async () => {
    const res = await run('timeout')
    assert.equal(res.signal, null, `the child was killed\n${res.stdout}${res.stderr}`)
    assert.equal(res.code, 0, res.stderr)
    const { lines, field } = parse(res.stdout)
    assert.match(lines[0], /^rejected ERR_SABPOOL_TIMEOUT after=\d+$/)
    assert.ok(Number(field(lines[0], 'after')) >= 290, lines[0])
    assert.ok(Number(field(lines[1], 'after-settle')) < 2000, lines[1])
  })
})
