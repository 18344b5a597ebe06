'use strict'
// Tests of the public JS API of sabpool (index.js): SharedPool, Lease, tickets, waiting, workers.
// Run with `node --test __test__/`. Worker scripts live in __test__/fixtures/.

const { describe, it, afterEach } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const crypto = require('node:crypto')
const { spawnSync } = require('node:child_process')
const { getEventListeners } = require('node:events')
const { MessageChannel } = require('node:worker_threads')
const { setTimeout: sleep } = require('node:timers/promises')

const { SharedPool, Lease, AbortError } = require('..')
const { FIXTURES, throwsCode, rejectsCode, waitFor, spawnWorker, terminateWorkers } = require('./helpers.js')
const { now } = require('./fixtures/common.js')

const MAX_SLOT_SIZE = 2 ** 30
const MAX_SLOTS = 2 ** 24
const MAX_PARTICIPANTS = 4096

// ---- helpers ------------------------------------------------------------------------------------

/** Asserts `fn` throws an error of class `Ctor` with `code` (and a message matching `message`). */

/** The invariants every quiescent pool's stats must satisfy. */
function assertConsistent(stats) {
  assert.equal(stats.free, stats.slots - stats.inUse, 'free === slots - inUse')
  assert.ok(stats.inUse >= 0 && stats.inUse <= stats.slots, 'inUse within 0..slots')
  assert.ok(stats.highWater >= stats.inUse, 'highWater >= inUse')
  assert.ok(stats.highWater <= stats.slots, `highWater ${stats.highWater} <= slots ${stats.slots}`)
  // Handed-off (in-flight) slots still count as in use.
  assert.equal(stats.acquired, stats.released + stats.reclaimed + stats.inUse, 'acquired === released + reclaimed + inUse')
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

// A failed test must not leave workers running into the next one.
afterEach(terminateWorkers)

/** Takes every free slot of `pool`. */
function drain(pool) {
  const leases = []
  for (let lease; (lease = pool.tryAcquire()) !== null;) leases.push(lease)
  return leases
}

// ---- construction and options -------------------------------------------------------------------

describe('new SharedPool(options)', () => {
  it('creates a pool with the requested geometry, a numeric id and a plain handle', () => {
    const pool = new SharedPool({ slotSize: 100, slots: 5 })
    assert.equal(pool.slotSize, 100)
    assert.equal(pool.slots, 5)
    assert.ok(Number.isInteger(pool.id) && pool.id > 0, `id ${pool.id}`)
    const handle = pool.handle
    assert.deepEqual(Object.keys(handle).sort(), ['buffer', 'kind', 'version'])
    assert.equal(typeof handle.kind, 'string')
    assert.equal(typeof handle.version, 'number')
    assert.ok(handle.buffer instanceof SharedArrayBuffer)
    assert.ok(handle.buffer.byteLength >= 5 * 100, 'the buffer holds at least the slots')
    assert.equal(pool.handle, handle, 'the handle is stable')
    // Structured-cloneable: survives structuredClone and keeps the same memory.
    const clone = structuredClone(handle)
    assert.equal(clone.kind, handle.kind)
    assert.equal(clone.version, handle.version)
    assert.ok(clone.buffer instanceof SharedArrayBuffer)
    assert.deepEqual(pool.stats(), { slots: 5, inUse: 0, free: 5, highWater: 0, acquired: 0, released: 0, reclaimed: 0, waits: 0, waiting: 0 })
    assert.notEqual(new SharedPool({ slotSize: 100, slots: 5 }).id, pool.id, 'two pools have different ids')
  })

  it('accepts the smallest pool (1 slot of 1 byte) and a pool of 65,536 slots', () => {
    const tiny = new SharedPool({ slotSize: 1, slots: 1, maxParticipants: 1 })
    assert.equal(tiny.tryAcquire().bytes.length, 1)
    const big = new SharedPool({ slotSize: 1, slots: 1 << 16 })
    assert.equal(big.slots, 1 << 16)
    assert.equal(drain(big).length, 1 << 16)
  })

  it('rejects a missing or non-object options argument', () => {
    throwsCode(() => new SharedPool(), TypeError, 'ERR_INVALID_ARG_TYPE')
    throwsCode(() => new SharedPool(null), TypeError, 'ERR_INVALID_ARG_TYPE')
    throwsCode(() => new SharedPool(5), TypeError, 'ERR_INVALID_ARG_TYPE')
    throwsCode(() => new SharedPool('slots'), TypeError, 'ERR_INVALID_ARG_TYPE')
    throwsCode(() => new SharedPool({}), TypeError, 'ERR_INVALID_ARG_TYPE')
  })

  const limits = { slotSize: MAX_SLOT_SIZE, slots: MAX_SLOTS, maxParticipants: MAX_PARTICIPANTS }
  for (const option of ['slotSize', 'slots', 'maxParticipants']) {
    const base = { slotSize: 16, slots: 2 }
    const name = new RegExp(`\\b${option}\\b`)
    it(`rejects bad ${option} values with RangeError/TypeError naming ${option}`, () => {
      for (const value of [0, -1, -16, 1.5, NaN, Infinity, -Infinity, limits[option] + 1, 2 ** 32 + 2]) {
        throwsCode(() => new SharedPool({ ...base, [option]: value }), RangeError, 'ERR_OUT_OF_RANGE', name)
      }
      for (const value of ['8', null, {}, [4], true, 8n]) {
        throwsCode(() => new SharedPool({ ...base, [option]: value }), TypeError, 'ERR_INVALID_ARG_TYPE', name)
      }
      if (option !== 'maxParticipants') {
        const missing = { ...base }
        delete missing[option]
        throwsCode(() => new SharedPool(missing), TypeError, 'ERR_INVALID_ARG_TYPE', name)
      }
    })
  }

  it('rejects slots × slotSize past what can be allocated with a RangeError', () => {
    for (const options of [
      { slotSize: MAX_SLOT_SIZE, slots: MAX_SLOTS }, // 2^54 bytes: past Number.MAX_SAFE_INTEGER
      { slotSize: MAX_SLOT_SIZE, slots: 2 ** 20 }, // 1 PiB: past any address space
    ]) {
      assert.throws(() => new SharedPool(options), (err) => {
        assert.ok(err instanceof RangeError, `${err.name}: ${err.message}`)
        assert.ok(['ERR_SABPOOL_TOO_LARGE', 'ERR_OUT_OF_RANGE'].includes(err.code), err.code)
        assert.match(err.message, /\bslots\b|\bslotSize\b/)
        return true
      })
    }
  })

  it('maxParticipants bounds how many threads attach at once; detaching frees an entry', () => {
    const pool = new SharedPool({ slotSize: 8, slots: 2, maxParticipants: 2 })
    const second = SharedPool.attach(pool.handle)
    assert.throws(() => SharedPool.attach(pool.handle), { code: 'ERR_SABPOOL_TOO_MANY_PARTICIPANTS' })
    second.detach()
    const third = SharedPool.attach(pool.handle)
    assert.ok(third.tryAcquire())
    third.detach()
  })
})

// ---- leases --------------------------------------------------------------------------------------

describe('leases', () => {
  it('tryAcquire hands out every slot once, then returns null; stats follow', () => {
    const pool = new SharedPool({ slotSize: 32, slots: 4 })
    const leases = drain(pool)
    assert.equal(leases.length, 4)
    assert.deepEqual(leases.map((l) => l.slot).sort(), [0, 1, 2, 3])
    assert.equal(pool.tryAcquire(), null)
    let s = pool.stats()
    assert.equal(s.inUse, 4)
    assert.equal(s.free, 0)
    assert.equal(s.highWater, 4)
    assert.equal(s.acquired, 4)
    assertConsistent(s)
    leases[0].release()
    leases[1].release()
    s = pool.stats()
    assert.deepEqual(s, { slots: 4, inUse: 2, free: 2, highWater: 4, acquired: 4, released: 2, reclaimed: 0, waits: 0, waiting: 0 })
    const again = pool.tryAcquire()
    assert.ok(again instanceof Lease)
    assert.ok([leases[0].slot, leases[1].slot].includes(again.slot))
    for (const l of [again, leases[2], leases[3]]) l.release()
    s = pool.stats()
    assert.deepEqual(s, { slots: 4, inUse: 0, free: 4, highWater: 4, acquired: 5, released: 5, reclaimed: 0, waits: 0, waiting: 0 })
  })

  it('a lease exposes slot, generation, bytes over the shared buffer, length and owned', () => {
    const pool = new SharedPool({ slotSize: 100, slots: 3 })
    const lease = pool.tryAcquire()
    assert.ok(Number.isInteger(lease.slot) && lease.slot >= 0 && lease.slot < 3)
    assert.ok(Number.isInteger(lease.generation) && lease.generation > 0)
    assert.equal(lease.length, 0)
    assert.equal(lease.owned, true)
    const bytes = lease.bytes
    assert.ok(bytes instanceof Uint8Array)
    assert.equal(bytes.length, 100)
    assert.equal(bytes.buffer, pool.handle.buffer, 'bytes is a view of the pool buffer, not a copy')
    bytes[0] = 42
    assert.equal(lease.bytes[0], 42)
    assert.equal(new Uint8Array(pool.handle.buffer, bytes.byteOffset, 1)[0], 42)
    lease.release()
    assert.equal(lease.owned, false)
    throwsCode(() => lease.bytes, Error, 'ERR_SABPOOL_STALE_LEASE')
  })

  it('the slots do not overlap', () => {
    const pool = new SharedPool({ slotSize: 33, slots: 5 })
    const leases = drain(pool)
    leases.forEach((l, i) => l.bytes.fill(i + 1))
    leases.forEach((l, i) => assert.ok(l.bytes.every((b) => b === i + 1), `slot ${l.slot} intact`))
    const ranges = leases.map((l) => [l.bytes.byteOffset, l.bytes.byteOffset + l.bytes.byteLength]).sort((a, b) => a[0] - b[0])
    for (let i = 1; i < ranges.length; i++) assert.ok(ranges[i][0] >= ranges[i - 1][1])
  })

  it('a reused slot gets a new generation', () => {
    const pool = new SharedPool({ slotSize: 8, slots: 1 })
    const seen = []
    for (let i = 0; i < 5; i++) {
      const lease = pool.tryAcquire()
      assert.equal(lease.slot, 0)
      seen.push(lease.generation)
      lease.release()
    }
    assert.equal(new Set(seen).size, 5, `generations ${seen}`)
  })

  it('lease.length accepts 0..slotSize and rejects anything else', () => {
    const pool = new SharedPool({ slotSize: 16, slots: 1 })
    const lease = pool.tryAcquire()
    lease.length = 16
    assert.equal(lease.length, 16)
    lease.length = 0
    assert.equal(lease.length, 0)
    lease.length = 7
    for (const bad of [-1, 17, 1.5, NaN, Infinity, 2 ** 32]) {
      throwsCode(() => { lease.length = bad }, RangeError, 'ERR_SABPOOL_BAD_LENGTH')
    }
    for (const bad of ['3', null, undefined, {}, 3n]) {
      throwsCode(() => { lease.length = bad }, TypeError, 'ERR_INVALID_ARG_TYPE')
    }
    assert.equal(lease.length, 7, 'a rejected value leaves the length unchanged')
    lease.release()
  })

  it('double release, release/handoff after handoff and handoff after release are stale', () => {
    const pool = new SharedPool({ slotSize: 16, slots: 2 })
    const a = pool.tryAcquire()
    a.release()
    throwsCode(() => a.release(), Error, 'ERR_SABPOOL_STALE_LEASE')
    throwsCode(() => a.handoff(), Error, 'ERR_SABPOOL_STALE_LEASE')
    const b = pool.tryAcquire()
    const ticket = b.handoff()
    assert.equal(b.owned, false)
    throwsCode(() => b.release(), Error, 'ERR_SABPOOL_STALE_LEASE')
    throwsCode(() => b.handoff(), Error, 'ERR_SABPOOL_STALE_LEASE')
    throwsCode(() => b.bytes, Error, 'ERR_SABPOOL_STALE_LEASE')
    pool.adopt(ticket).release()
    const s = pool.stats()
    assert.equal(s.inUse, 0)
    assert.equal(s.released, 2, 'stale calls did not count as releases')
    assertConsistent(s)
  })

  it('handoff gives a small plain ticket; adopt gets the same slot, bytes and length', () => {
    const pool = new SharedPool({ slotSize: 64, slots: 2 })
    const lease = pool.tryAcquire()
    lease.bytes.set([1, 2, 3, 4, 5])
    lease.length = 5
    const ticket = lease.handoff()
    assert.deepEqual(ticket, { pool: pool.id, slot: lease.slot, generation: lease.generation + 1, length: 5 }, "a handoff moves the generation on")
    assert.deepEqual(structuredClone(ticket), ticket)
    assert.equal(pool.stats().inUse, 1, 'an in-flight slot is still in use')
    const adopted = pool.adopt(structuredClone(ticket))
    assert.equal(adopted.slot, ticket.slot)
    assert.equal(adopted.generation, ticket.generation)
    assert.equal(adopted.length, 5)
    assert.equal(adopted.owned, true)
    assert.deepEqual([...adopted.bytes.subarray(0, 5)], [1, 2, 3, 4, 5])
    // The adopter may hand it on again.
    adopted.length = 3
    const again = pool.adopt(adopted.handoff())
    assert.equal(again.length, 3)
    again.release()
    throwsCode(() => pool.adopt(ticket), Error, 'ERR_SABPOOL_STALE_LEASE')
    assertConsistent(pool.stats())
    assert.equal(pool.stats().inUse, 0)
  })

  it('adopting the same ticket twice is stale', () => {
    const pool = new SharedPool({ slotSize: 8, slots: 2 })
    const ticket = pool.tryAcquire().handoff()
    const first = pool.adopt(ticket)
    throwsCode(() => pool.adopt(ticket), Error, 'ERR_SABPOOL_STALE_LEASE')
    assert.equal(first.owned, true)
    first.release()
    throwsCode(() => pool.adopt(ticket), Error, 'ERR_SABPOOL_STALE_LEASE')
  })

  it('a ticket of an older generation is stale once the slot was reused', () => {
    const pool = new SharedPool({ slotSize: 8, slots: 1 })
    const old = pool.tryAcquire().handoff()
    pool.adopt(old).release()
    const fresh = pool.tryAcquire()
    assert.equal(fresh.slot, old.slot)
    assert.notEqual(fresh.generation, old.generation)
    throwsCode(() => pool.adopt(old), Error, 'ERR_SABPOOL_STALE_LEASE', /./)
    assert.equal(fresh.owned, true)
    // A leased (not handed off) slot cannot be taken with a ticket naming it, even with the right generation.
    throwsCode(() => pool.adopt({ pool: pool.id, slot: fresh.slot, generation: fresh.generation, length: 0 }), Error, 'ERR_SABPOOL_STALE_LEASE')
    const freshTicket = fresh.handoff()
    // A forged ticket with a newer generation does not take the in-flight slot either.
    throwsCode(() => pool.adopt({ ...freshTicket, generation: freshTicket.generation + 1 }), Error, 'ERR_SABPOOL_STALE_LEASE')
    throwsCode(() => pool.adopt(old), Error, 'ERR_SABPOOL_STALE_LEASE')
    pool.adopt(freshTicket).release()
    assertConsistent(pool.stats())
  })

  it('rejects forged tickets: wrong shape, other pool, slot out of range, bad generation', () => {
    const pool = new SharedPool({ slotSize: 8, slots: 4 })
    const other = new SharedPool({ slotSize: 8, slots: 8 })
    const ticket = pool.tryAcquire().handoff()
    const badShapes = [
      undefined, null, 0, 'ticket', [], {},
      { pool: pool.id, slot: ticket.slot },
      { pool: pool.id, generation: ticket.generation },
      { slot: ticket.slot, generation: ticket.generation },
      { ...ticket, slot: String(ticket.slot) },
      { ...ticket, slot: 0.5 },
      { ...ticket, generation: NaN },
      { ...ticket, pool: String(pool.id) },
      { ...ticket, length: 'x' },
      { ...ticket, length: 1.5 },
    ]
    for (const bad of badShapes) {
      assert.throws(() => pool.adopt(bad), { code: 'ERR_SABPOOL_BAD_TICKET' }, `adopt(${JSON.stringify(bad)})`)
    }
    // Another pool's ticket, with a slot index valid in both pools.
    const otherTicket = other.tryAcquire().handoff()
    throwsCode(() => pool.adopt(otherTicket), Error, 'ERR_SABPOOL_BAD_TICKET')
    throwsCode(() => other.adopt(ticket), Error, 'ERR_SABPOOL_BAD_TICKET')
    for (const slot of [4, 7, -1, 2 ** 31, 2 ** 32]) {
      throwsCode(() => pool.adopt({ ...ticket, slot }), Error, 'ERR_SABPOOL_BAD_TICKET')
    }
    for (const generation of [-1, 2 ** 32, 2 ** 40]) {
      throwsCode(() => pool.adopt({ ...ticket, generation }), Error, 'ERR_SABPOOL_BAD_TICKET')
    }
    // None of that disturbed the real tickets.
    pool.adopt(ticket).release()
    other.adopt(otherTicket).release()
    assert.equal(pool.stats().inUse, 0)
    assert.equal(other.stats().inUse, 0)
  })
})

// ---- attach and detach ---------------------------------------------------------------------------

describe('SharedPool.attach and detach', () => {
  it('attach(handle) joins the same pool: same id, geometry, memory and stats', () => {
    const pool = new SharedPool({ slotSize: 24, slots: 3 })
    const peer = SharedPool.attach(structuredClone(pool.handle))
    assert.equal(peer.id, pool.id)
    assert.equal(peer.slots, 3)
    assert.equal(peer.slotSize, 24)
    const lease = pool.tryAcquire()
    lease.bytes.set([9, 8, 7])
    lease.length = 3
    const adopted = peer.adopt(lease.handoff())
    assert.deepEqual([...adopted.bytes.subarray(0, adopted.length)], [9, 8, 7])
    const peerLease = peer.tryAcquire()
    assert.notEqual(peerLease.slot, adopted.slot)
    assert.deepEqual(pool.stats(), peer.stats())
    assert.equal(pool.stats().inUse, 2)
    adopted.release()
    peerLease.release()
    peer.detach()
  })

  it('rejects things that are not pool handles with ERR_SABPOOL_BAD_HANDLE', () => {
    const pool = new SharedPool({ slotSize: 8, slots: 2 })
    const { kind, version, buffer } = pool.handle
    const notHandles = [
      undefined, null, 0, 'sabpool.pool', [], {}, pool, buffer,
      new Uint8Array(buffer),
      { kind },
      { kind, version },
      { kind: 'something.else', version, buffer },
      { kind, version: version + 1, buffer },
      { kind, version: String(version), buffer },
      { kind, version, buffer: new ArrayBuffer(buffer.byteLength) },
      { kind, version, buffer: new Uint8Array(buffer) },
      { kind, version, buffer: null },
    ]
    for (const bad of notHandles) {
      assert.throws(() => SharedPool.attach(bad), { code: 'ERR_SABPOOL_BAD_HANDLE' })
    }
  })

  it('rejects a SharedArrayBuffer that is too short, garbage or an inconsistent pool image', () => {
    const pool = new SharedPool({ slotSize: 64, slots: 4 })
    const { kind, version, buffer } = pool.handle
    const image = new Uint8Array(buffer)
    const sab = (bytes) => {
      const out = new SharedArrayBuffer(bytes.length)
      new Uint8Array(out).set(bytes)
      return out
    }
    const withWord = (offset, value) => {
      const copy = sab(image)
      new DataView(copy).setUint32(offset, value, true)
      return copy
    }
    const random = (n) => crypto.randomBytes(n)
    const badBuffers = {
      empty: new SharedArrayBuffer(0),
      tiny: new SharedArrayBuffer(10),
      'header only': sab(image.subarray(0, 64)),
      zeros: new SharedArrayBuffer(buffer.byteLength),
      garbage: sab(random(buffer.byteLength)),
      'garbage after a valid magic': sab(Buffer.concat([image.subarray(0, 8), random(buffer.byteLength - 8)])),
      truncated: sab(image.subarray(0, buffer.byteLength - 64)),
      'half a pool': sab(image.subarray(0, buffer.byteLength >> 1)),
      'wrong magic': withWord(0, 0x12345678),
      'wrong version': withWord(4, 99),
      'slot size changed': withWord(24, 128),
      'slot count changed': withWord(28, 1000),
      'slot count zero': withWord(28, 0),
      'stride changed': withWord(32, 1),
    }
    for (const [what, bad] of Object.entries(badBuffers)) {
      assert.throws(() => SharedPool.attach({ kind, version, buffer: bad }), { code: 'ERR_SABPOOL_BAD_HANDLE' }, what)
    }
    // The pristine image still attaches (the checks above are not rejecting everything).
    SharedPool.attach({ kind, version, buffer: sab(image) }).detach()
  })

  it('after detach every operation fails with ERR_SABPOOL_DETACHED and held leases are reclaimed', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 4 })
    const observer = SharedPool.attach(pool.handle)
    const held = [pool.tryAcquire(), pool.tryAcquire()]
    const inFlight = pool.tryAcquire()
    inFlight.length = 4
    const ticket = inFlight.handoff()
    const before = observer.stats()
    assert.equal(before.inUse, 3)
    pool.detach()

    const after = observer.stats()
    assert.equal(after.reclaimed, before.reclaimed + 2, 'the two leases held by the detached thread came back')
    assert.equal(after.inUse, 1, 'the handed-off slot stays in flight')

    throwsCode(() => pool.tryAcquire(), Error, 'ERR_SABPOOL_DETACHED')
    await rejectsCode(pool.acquire(), Error, 'ERR_SABPOOL_DETACHED')
    throwsCode(() => pool.acquireSync({ timeout: 10 }), Error, 'ERR_SABPOOL_DETACHED')
    throwsCode(() => pool.adopt(ticket), Error, 'ERR_SABPOOL_DETACHED')
    throwsCode(() => held[0].release(), Error, 'ERR_SABPOOL_DETACHED')
    throwsCode(() => held[1].handoff(), Error, 'ERR_SABPOOL_DETACHED')

    // The in-flight slot is still adoptable by a live participant.
    const adopted = observer.adopt(ticket)
    assert.equal(adopted.length, 4)
    adopted.release()
    const end = observer.stats()
    assert.equal(end.inUse, 0)
    assertConsistent(end)
    observer.detach()
  })

  it('stats() after detach fails with ERR_SABPOOL_DETACHED', () => {
    const pool = new SharedPool({ slotSize: 16, slots: 2 })
    pool.detach()
    throwsCode(() => pool.stats(), Error, 'ERR_SABPOOL_DETACHED')
  })
})

// ---- waiting: acquire() -----------------------------------------------------------------------------

describe('pool.acquire() (async, never blocks the event loop)', () => {
  it('resolves at once when a slot is free, even with timeout 0', async () => {
    const pool = new SharedPool({ slotSize: 8, slots: 2 })
    const p = pool.acquire()
    assert.ok(p instanceof Promise)
    const a = await p
    assert.ok(a instanceof Lease)
    const b = await pool.acquire({ timeout: 0 })
    assert.notEqual(a.slot, b.slot)
    a.release()
    b.release()
    assert.equal(pool.stats().waits, 0)
  })

  it('rejects bad options (as a rejected promise) and takes no slot', async () => {
    const pool = new SharedPool({ slotSize: 8, slots: 2 })
    for (const options of [null, 5, 'fast', true]) {
      await rejectsCode(pool.acquire(options), TypeError, 'ERR_INVALID_ARG_TYPE')
    }
    for (const timeout of [-1, -Infinity, NaN]) {
      await rejectsCode(pool.acquire({ timeout }), RangeError, 'ERR_OUT_OF_RANGE', /timeout/)
    }
    for (const timeout of ['10', null, {}, 10n, true]) {
      await rejectsCode(pool.acquire({ timeout }), TypeError, 'ERR_INVALID_ARG_TYPE', /timeout/)
    }
    for (const signal of [{}, 'abort', null, { aborted: false }, 1]) {
      await rejectsCode(pool.acquire({ signal }), TypeError, 'ERR_INVALID_ARG_TYPE', /signal/)
    }
    assert.equal(pool.stats().inUse, 0)
    assert.equal(pool.stats().acquired, 0)
  })

  it('keeps the event loop running while pending and is woken by a worker release', async () => {
    const pool = new SharedPool({ slotSize: 8, slots: 2 })
    const mine = pool.tryAcquire()
    const given = pool.tryAcquire()
    const w = spawnWorker('releaser.js', { handle: pool.handle })
    await w.next('ready')
    const latencies = []
    let lease = given
    for (let round = 0; round < 5; round++) {
      lease.length = round
      w.post({ op: 'adopt', ticket: lease.handoff() })
      assert.equal((await w.next('adopted')).length, round)
      assert.equal(pool.tryAcquire(), null, 'the pool is exhausted')

      let settled = false
      const pending = pool.acquire()
      pending.then(() => { settled = true }, () => { settled = true })
      if (round === 0) {
        // While the acquire is pending, immediates and timers keep firing.
        let immediates = 0
        let timers = 0
        let maxGap = 0
        let last = performance.now()
        let stop = false
        const spinImmediates = () => {
          const t = performance.now()
          maxGap = Math.max(maxGap, t - last)
          last = t
          immediates++
          if (!stop) setImmediate(spinImmediates)
        }
        setImmediate(spinImmediates)
        const interval = setInterval(() => { timers++ }, 10)
        await sleep(200)
        stop = true
        clearInterval(interval)
        assert.equal(settled, false, 'still pending: nothing was released')
        assert.ok(immediates > 50, `setImmediate ran ${immediates} times in 200 ms`)
        assert.ok(timers >= 5, `a 10 ms interval ran ${timers} times in 200 ms`)
        assert.ok(maxGap < 45, `the event loop stalled for ${maxGap.toFixed(1)} ms`)
        assert.ok(pool.stats().waits > 0, 'the parked wait is counted')
      } else {
        await sleep(20)
        assert.equal(settled, false)
      }
      w.post({ op: 'release' })
      const { t } = await w.next('released')
      lease = await pending
      latencies.push(now() - t)
      assert.ok(lease instanceof Lease)
    }
    assert.ok(median(latencies) < 15, `wake-up latencies ${latencies.map((x) => x.toFixed(2))} ms`)
    w.post({ op: 'exit' })
    assert.equal(await w.exited, 0)
    lease.release()
    mine.release()
    const s = pool.stats()
    assert.equal(s.inUse, 0)
    assert.equal(s.reclaimed, 0)
    assertConsistent(s)
  })

  it('is woken by a release on the same thread (timer) and serves several waiters', async () => {
    const pool = new SharedPool({ slotSize: 8, slots: 3 })
    const held = drain(pool)
    const waiters = [pool.acquire(), pool.acquire({ timeout: 5000 }), pool.acquire({ signal: new AbortController().signal })]
    await sleep(20)
    const t0 = performance.now()
    setTimeout(() => held.forEach((l) => l.release()), 30)
    const got = await Promise.all(waiters)
    assert.ok(performance.now() - t0 >= 25)
    assert.deepEqual(got.map((l) => l.slot).sort(), held.map((l) => l.slot).sort())
    got.forEach((l) => l.release())
    assertConsistent(pool.stats())
    assert.equal(pool.stats().inUse, 0)
  })

  it('rejects with ERR_SABPOOL_TIMEOUT after the timeout and leaks no slot', async () => {
    const pool = new SharedPool({ slotSize: 8, slots: 2 })
    const held = drain(pool)
    await rejectsCode(pool.acquire({ timeout: 0 }), Error, 'ERR_SABPOOL_TIMEOUT')
    const t0 = performance.now()
    await rejectsCode(pool.acquire({ timeout: 80 }), Error, 'ERR_SABPOOL_TIMEOUT', /80/)
    const elapsed = performance.now() - t0
    assert.ok(elapsed >= 75 && elapsed < 1000, `timed out after ${elapsed} ms`)
    held.forEach((l) => l.release())
    await sleep(60) // a leaked waiter would grab a slot when woken
    const s = pool.stats()
    assert.equal(s.inUse, 0)
    assert.equal(s.acquired, 2)
    assertConsistent(s)
    assert.equal(drain(pool).length, 2)
  })

  it('rejects with AbortError when the signal is aborted before the call', async () => {
    const pool = new SharedPool({ slotSize: 8, slots: 1 })
    const reason = new Error('not needed any more')
    const isAbort = (err) => {
      assert.equal(err.name, 'AbortError')
      assert.equal(err.code, 'ABORT_ERR')
      assert.ok(err instanceof AbortError)
      return true
    }
    // Even with a free slot, an aborted signal wins and no slot is taken.
    await assert.rejects(pool.acquire({ signal: AbortSignal.abort(reason) }), isAbort)
    assert.equal(pool.stats().inUse, 0)
    const held = pool.tryAcquire()
    const ac = new AbortController()
    ac.abort()
    await assert.rejects(pool.acquire({ signal: ac.signal, timeout: 1000 }), isAbort)
    held.release()
    assert.equal(pool.stats().acquired, 1)
  })

  it('rejects with AbortError when aborted while waiting, removes its listener and leaks no slot', async () => {
    const pool = new SharedPool({ slotSize: 8, slots: 2 })
    const held = drain(pool)
    const ac = new AbortController()
    const reason = new Error('cancelled')
    const pending = pool.acquire({ signal: ac.signal })
    let settled = false
    pending.then(() => { settled = true }, () => { settled = true })
    await sleep(30)
    assert.equal(settled, false)
    const t0 = performance.now()
    ac.abort(reason)
    await assert.rejects(pending, (err) => {
      assert.equal(err.name, 'AbortError')
      assert.equal(err.code, 'ABORT_ERR')
      assert.equal(err.cause, reason)
      return true
    })
    assert.ok(performance.now() - t0 < 40, 'abort takes effect promptly, not at the next park slice')
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0, 'no abort listener left behind')
    held.forEach((l) => l.release())
    await sleep(60)
    const s = pool.stats()
    assert.equal(s.inUse, 0)
    assert.equal(s.acquired, 2)
    assertConsistent(s)

    // A signal that is never aborted leaves no listener behind after a successful wait either.
    const keep = new AbortController()
    const one = pool.tryAcquire()
    const two = pool.tryAcquire()
    const waiting = pool.acquire({ signal: keep.signal })
    await sleep(10)
    one.release()
    const got = await waiting
    assert.equal(getEventListeners(keep.signal, 'abort').length, 0)
    got.release()
    two.release()
  })
})

// ---- waiting: acquireSync() -----------------------------------------------------------------------------

describe('pool.acquireSync() (blocking, for workers)', () => {
  it('returns at once when a slot is free and validates its options', () => {
    const pool = new SharedPool({ slotSize: 8, slots: 1 })
    const lease = pool.acquireSync()
    assert.ok(lease instanceof Lease)
    lease.release()
    pool.acquireSync({ timeout: 0, spin: 0 }).release()
    for (const options of [null, 5, 'x']) throwsCode(() => pool.acquireSync(options), TypeError, 'ERR_INVALID_ARG_TYPE')
    for (const timeout of [-1, NaN, -Infinity]) throwsCode(() => pool.acquireSync({ timeout }), RangeError, 'ERR_OUT_OF_RANGE', /timeout/)
    for (const timeout of ['1', null, {}]) throwsCode(() => pool.acquireSync({ timeout }), TypeError, 'ERR_INVALID_ARG_TYPE', /timeout/)
    for (const spin of [-1, 1.5, NaN]) throwsCode(() => pool.acquireSync({ spin }), RangeError, 'ERR_OUT_OF_RANGE', /spin/)
    for (const spin of ['1', null]) throwsCode(() => pool.acquireSync({ spin }), TypeError, 'ERR_INVALID_ARG_TYPE', /spin/)
    assert.equal(pool.stats().inUse, 0)
  })

  it('throws ERR_SABPOOL_TIMEOUT when nothing is released in time', () => {
    const pool = new SharedPool({ slotSize: 8, slots: 1 })
    const held = pool.tryAcquire()
    throwsCode(() => pool.acquireSync({ timeout: 0 }), Error, 'ERR_SABPOOL_TIMEOUT')
    const t0 = performance.now()
    throwsCode(() => pool.acquireSync({ timeout: 40, spin: 3 }), Error, 'ERR_SABPOOL_TIMEOUT')
    const elapsed = performance.now() - t0
    assert.ok(elapsed >= 35 && elapsed < 1000, `timed out after ${elapsed} ms`)
    held.release()
    const s = pool.stats()
    assert.equal(s.inUse, 0)
    assert.ok(s.waits >= 1)
    assertConsistent(s)
  })

  it('parks in a worker and is woken when the main thread releases; times out in a worker', async () => {
    const pool = new SharedPool({ slotSize: 8, slots: 1 })
    const ctl = new SharedArrayBuffer(8)
    const ctl32 = new Int32Array(ctl)
    const rounds = 5
    const w = spawnWorker('sync-waiter.js', { handle: pool.handle, ctl, rounds, timeout: 60 })
    let held = pool.tryAcquire()
    const latencies = []
    for (let round = 0; round < rounds; round++) {
      const waitsBefore = pool.stats().waits
      Atomics.store(ctl32, 0, round + 1)
      Atomics.notify(ctl32, 0)
      // The worker counts a wait right before it parks.
      await waitFor(() => pool.stats().waits > waitsBefore, 'the worker to park in acquireSync')
      await sleep(round === 0 ? 100 : 5) // it stays parked while the slot is held
      assert.equal(pool.stats().inUse, 1)
      const t0 = now()
      held.release()
      const msg = await w.next('acquired')
      assert.equal(msg.round, round)
      latencies.push(msg.t - t0)
      held = await waitFor(() => pool.tryAcquire(), 'the worker to release the slot')
    }
    assert.ok(median(latencies) < 15, `wake-up latencies ${latencies.map((x) => x.toFixed(2))} ms`)
    // Timeout: the main thread keeps the only slot.
    Atomics.store(ctl32, 0, rounds + 1)
    Atomics.notify(ctl32, 0)
    const result = await w.next('timeout-result')
    assert.deepEqual(result.error && result.error.code, 'ERR_SABPOOL_TIMEOUT')
    assert.ok(result.elapsed >= 55, `worker timed out after ${result.elapsed} ms`)
    assert.equal(result.zero, 'ERR_SABPOOL_TIMEOUT')
    assert.equal(await w.exited, 0)
    held.release()
    const s = pool.stats()
    assert.equal(s.inUse, 0)
    assert.equal(s.acquired, rounds + rounds + 1)
    assert.equal(s.reclaimed, 0)
    assertConsistent(s)
  })
})

// ---- shared memory across threads ------------------------------------------------------------------

describe('lease.bytes is shared memory', () => {
  it('a worker attached by handle sees what the main thread wrote, live, and vice versa', async () => {
    const pool = new SharedPool({ slotSize: 512, slots: 2 })
    const ctl = new SharedArrayBuffer(8)
    const ctl32 = new Int32Array(ctl)
    const lease = pool.tryAcquire()
    const view = lease.bytes // kept: the same memory the worker will see
    const text = new TextEncoder().encode('hello from the main thread')
    view.set(text)
    for (let i = 0; i < 16; i++) view[text.length + i] = i * 7
    lease.length = text.length
    const w = spawnWorker('mirror.js', { handle: pool.handle, ticket: lease.handoff(), ctl })

    const adopted = await w.next('adopted')
    assert.equal(adopted.slot, lease.slot)
    assert.equal(adopted.length, text.length)
    assert.equal(adopted.text, 'hello from the main thread')
    assert.deepEqual(adopted.pattern, Array.from({ length: 16 }, (_, i) => i * 7))
    assert.equal(adopted.sameBuffer, true, "the worker's bytes view the handle's buffer")
    assert.equal(adopted.byteOffset, view.byteOffset)
    assert.equal(adopted.byteLength, 512)

    // Written here after the handoff: the worker reads it from its own view (no message carries it).
    Atomics.store(view, 200, 0x5a)
    Atomics.store(ctl32, 0, 1)
    Atomics.notify(ctl32, 0)
    // The worker writes [300..316) and flags ctl[1]; read it through the old view.
    const waited = Atomics.waitAsync(ctl32, 1, 0, 5000)
    if (waited.async) await waited.value
    assert.equal(Atomics.load(ctl32, 1), 1)
    assert.deepEqual(Array.from(view.subarray(300, 316)), Array.from({ length: 16 }, (_, i) => 0xa0 + i))

    const done = await w.next('done')
    assert.equal(done.seenLive, 0x5a)
    const back = pool.adopt(done.ticket)
    assert.equal(back.length, 'reply from worker'.length)
    assert.equal(new TextDecoder().decode(back.bytes.subarray(0, back.length)), 'reply from worker')
    assert.equal(back.bytes.byteOffset, view.byteOffset)
    assert.equal(await w.exited, 0)
    back.release()
    const s = pool.stats()
    assert.equal(s.inUse, 0)
    assert.equal(s.reclaimed, 0)
    assertConsistent(s)
  })
})

// ---- many slots between workers ------------------------------------------------------------------

describe('workers exchanging slots through tickets', () => {
  it('two producers and a consumer move 100,000 checksummed payloads', { timeout: 30000 }, async () => {
    const PER_PRODUCER = 50000
    const pool = new SharedPool({ slotSize: 256, slots: 32 })
    const seeds = [0x1234567, 0x7654321]
    const channels = seeds.map(() => new MessageChannel())
    const consumer = spawnWorker('consumer.js', { handle: pool.handle, ports: channels.map((c) => c.port2), seeds }, { transferList: channels.map((c) => c.port2) })
    const producers = channels.map((c, producer) =>
      spawnWorker('producer.js', { handle: pool.handle, port: c.port1, producer, count: PER_PRODUCER, seed: seeds[producer] }, { transferList: [c.port1] }))
    const report = await consumer.next('report', 25000)
    assert.deepEqual(report.errors, [])
    assert.equal(report.sent, 2 * PER_PRODUCER)
    assert.equal(report.received, 2 * PER_PRODUCER)
    assert.equal(report.badSeq, 0, 'tickets arrive in order, none lost')
    assert.equal(report.badLength, 0, 'lengths travel with the ticket')
    assert.equal(report.badSum, 0, 'payload checksums match')
    assert.equal(report.badPattern, 0, 'payloads match the seeded pattern')
    for (const w of [consumer, ...producers]) {
      assert.equal(await w.exited, 0)
      assert.deepEqual(w.errors, [])
    }
    const s = pool.stats()
    assert.equal(s.inUse, 0)
    assert.equal(s.free, 32)
    assert.equal(s.acquired, 2 * PER_PRODUCER)
    assert.equal(s.acquired, s.released + s.reclaimed)
    assert.equal(s.reclaimed, 0)
    // highWater <= slots is checked in the contention test below.
    // The free list is intact: every slot comes out exactly once.
    const all = drain(pool)
    assert.deepEqual(all.map((l) => l.slot).sort((a, b) => a - b), Array.from({ length: 32 }, (_, i) => i))
    all.forEach((l) => l.release())
  })

  it('stats stay within bounds under contention (highWater <= slots)', async () => {
    // Two workers hammer tryAcquire/release on a 1-slot pool for up to 3 s (stopped early once a
    // violation is seen): at most one slot can ever be in use.
    const pool = new SharedPool({ slotSize: 8, slots: 1 })
    const go = new SharedArrayBuffer(8)
    const go32 = new Int32Array(go)
    const workers = [0, 1].map(() => spawnWorker('churn.js', { handle: pool.handle, ms: 3000, go }))
    await waitFor(() => Atomics.load(go32, 0) === workers.length, 'the churners to start')
    Atomics.store(go32, 1, 1)
    Atomics.notify(go32, 1)
    const t0 = performance.now()
    while (performance.now() - t0 < 3000 && pool.stats().highWater <= 1) await sleep(10)
    Atomics.store(go32, 1, 2)
    const done = await Promise.all(workers.map((w) => w.next('done')))
    await Promise.all(workers.map((w) => w.exited))
    const cycles = done.reduce((n, d) => n + d.cycles, 0)
    const s = pool.stats()
    assert.equal(s.inUse, 0)
    assert.equal(s.acquired, cycles)
    assert.equal(s.released, cycles)
    assert.ok(s.highWater <= s.slots,
      `highWater ${s.highWater} exceeds slots ${s.slots} after ${Math.round(performance.now() - t0)} ms, ${cycles} cycles (a 1-slot pool never has 2 slots in use)`)
  })
})

// ---- leases of threads that go away ------------------------------------------------------------

describe('a worker that exits while holding leases has them reclaimed', () => {
  const ACQUIRED = 2
  const ADOPTED = 1
  const HELD = ACQUIRED + ADOPTED
  for (const [mode, expectedCode] of [['return', 0], ['throw', 1], ['exit', 3], ['block', 1]]) {
    const how = {
      return: 'returns normally',
      throw: 'throws',
      exit: 'calls process.exit()',
      block: 'is terminated while blocked in acquireSync()',
    }[mode]
    it(`when it ${how}`, async () => {
      // maxParticipants 2: the worker's entry must be freed for the attach at the end to work.
      const pool = new SharedPool({ slotSize: 64, slots: HELD + 1, maxParticipants: 2 })
      const mine = pool.tryAcquire()
      const given = pool.tryAcquire()
      given.length = 5
      const w = spawnWorker('hold.js', { handle: pool.handle, count: ACQUIRED, tickets: [given.handoff()], mode })
      const held = await w.next('held')
      assert.equal(held.slots.length, HELD)
      assert.ok(held.slots.includes(given.slot))
      const before = pool.stats()
      assert.equal(before.inUse, HELD + 1)
      assert.equal(pool.tryAcquire(), null, 'the pool is exhausted')
      w.post('go')
      if (mode === 'block') {
        await w.next('blocking')
        await waitFor(() => pool.stats().waits > before.waits, 'the worker to park')
        await sleep(20)
        assert.equal(pool.stats().waiting, 1, 'the parked worker is registered as waiting')
        await w.worker.terminate()
      }
      const code = await w.exited
      assert.equal(code, expectedCode)
      if (mode === 'throw') assert.match(String(w.errors[0]), /on purpose/)
      else assert.deepEqual(w.errors, [])
      const after = await waitFor(() => {
        const s = pool.stats()
        return s.inUse <= before.inUse - HELD ? s : null
      }, 'the leases to come back')
      assert.equal(after.reclaimed, before.reclaimed + HELD, 'reclaimed grew by exactly the number held')
      assert.equal(after.waiting, 0, 'a thread torn down mid-wait leaves no waiter registered')
      assert.equal(after.inUse, 1)
      assertConsistent(after)
      // The reclaimed slots are usable, and the worker's participant entry was freed.
      const got = drain(pool)
      assert.deepEqual(got.map((l) => l.slot).sort(), [...held.slots].sort())
      got.forEach((l) => l.release())
      SharedPool.attach(pool.handle).detach()
      mine.release()
      assert.equal(pool.stats().inUse, 0)
    })
  }

  it('slots it handed off are not reclaimed and stay adoptable after it exits', async () => {
    const pool = new SharedPool({ slotSize: 64, slots: 4 })
    const w = spawnWorker('hold.js', { handle: pool.handle, count: 1, inFlight: 2, mode: 'return' })
    const { handedOff } = await w.next('held')
    assert.equal(handedOff.length, 2)
    w.post('go')
    assert.equal(await w.exited, 0)
    const s = await waitFor(() => (pool.stats().reclaimed === 1 ? pool.stats() : null), 'the held lease to come back')
    assert.equal(s.inUse, 2, 'the two in-flight slots are still in use')
    handedOff.forEach((ticket, i) => {
      const lease = pool.adopt(ticket)
      assert.equal(lease.length, 10 + i)
      assert.ok(lease.bytes.subarray(0, lease.length).every((b) => b === 0x11))
      lease.release()
    })
    const end = pool.stats()
    assert.equal(end.inUse, 0)
    assert.equal(end.reclaimed, 1)
    assertConsistent(end)
  })

  it('a pool object that is garbage-collected gives its leases back', async () => {
    const v8 = require('node:v8')
    const vm = require('node:vm')
    v8.setFlagsFromString('--expose-gc')
    const gc = vm.runInNewContext('gc')
    const pool = new SharedPool({ slotSize: 8, slots: 4 })
    ;(() => {
      const peer = SharedPool.attach(pool.handle)
      peer.tryAcquire()
      peer.tryAcquire()
    })()
    assert.equal(pool.stats().inUse, 2)
    const s = await waitFor(() => {
      gc()
      return pool.stats().inUse === 0 ? pool.stats() : null
    }, 'the collected pool to give its leases back')
    assert.equal(s.reclaimed, 2)
    assertConsistent(s)
  })

  it('a pending acquire() is served when a worker holding every slot exits', async () => {
    const pool = new SharedPool({ slotSize: 64, slots: 2 })
    const w = spawnWorker('hold.js', { handle: pool.handle, count: 2, mode: 'return' })
    await w.next('held')
    const pending = pool.acquire({ timeout: 5000 })
    await sleep(20)
    w.post('go')
    assert.equal(await w.exited, 0)
    const lease = await pending
    assert.ok(lease instanceof Lease)
    lease.release()
    const s = pool.stats()
    assert.equal(s.reclaimed, 2)
    assert.equal(s.inUse, 0)
    assertConsistent(s)
  })
})

// ---- process lifetime ---------------------------------------------------------------------------

describe('a pending acquire() keeps the process alive', () => {
  const child = path.join(FIXTURES, 'keepalive-child.js')
  const run = (mode) => spawnSync(process.execPath, [child, mode], { encoding: 'utf8', timeout: 15000 })

  it('until an (unref\'d) worker releases the slot, then exits cleanly', () => {
    const r = run('release')
    assert.equal(r.signal, null, `child was killed (hung?); stderr: ${r.stderr}`)
    assert.equal(r.status, 0, r.stderr)
    const m = /^acquired slot=0 after=(\d+) reclaimed=0\n$/.exec(r.stdout)
    assert.ok(m, `unexpected output ${JSON.stringify(r.stdout)} (stderr ${r.stderr})`)
    assert.ok(Number(m[1]) >= 250, `acquired after ${m[1]} ms, before the worker released`)
  })

  it('until its timeout, then exits cleanly', () => {
    const r = run('timeout')
    assert.equal(r.signal, null, `child was killed (hung?); stderr: ${r.stderr}`)
    assert.equal(r.status, 0, r.stderr)
    const m = /^rejected ERR_SABPOOL_TIMEOUT after=(\d+)\n$/.exec(r.stdout)
    assert.ok(m, `unexpected output ${JSON.stringify(r.stdout)} (stderr ${r.stderr})`)
    assert.ok(Number(m[1]) >= 280, `timed out after ${m[1]} ms`)
  })
})

// ---- untrusted shared memory ----------------------------------------------------------------------

describe('a scribbled region', () => {
  it('gives coded errors, never a crash or out-of-range slot', () => {
    for (let trial = 0; trial < 30; trial++) {
      const pool = new SharedPool({ slotSize: 32, slots: 8 })
      const all = drain(pool)
      const dataStart = Math.min(...all.map((l) => l.bytes.byteOffset))
      const held = all.slice(0, 2)
      all.slice(2).forEach((l) => l.release())
      // Overwrite everything between the first header line and the slot data: free list, counters,
      // participant entries and slot metadata.
      crypto.randomFillSync(new Uint8Array(pool.handle.buffer, 64, dataStart - 64))
      const attempt = (fn) => {
        try {
          fn()
        } catch (err) {
          assert.match(String(err.code), /^ERR_SABPOOL_/, err.stack)
        }
      }
      for (let i = 0; i < 20; i++) {
        attempt(() => {
          const lease = pool.tryAcquire()
          if (lease !== null) {
            assert.ok(lease.slot >= 0 && lease.slot < 8)
            assert.equal(lease.bytes.length, 32)
            lease.release()
          }
        })
      }
      attempt(() => assert.ok(pool.stats().inUse <= 8))
      for (const l of held) attempt(() => l.release())
      attempt(() => pool.adopt({ pool: pool.id, slot: 3, generation: trial }))
      attempt(() => SharedPool.attach(pool.handle).detach())
      pool.detach()
    }
  })
})

// ---- allocation-free hot loops ---------------------------------------------------------------------

describe('reuse: re-arming a lease object that is no longer owned', () => {
  it('tryAcquire and acquireSync re-arm a released lease instead of allocating', () => {
    const pool = new SharedPool({ slotSize: 32, slots: 2 })
    const first = pool.tryAcquire()
    const { slot, generation } = first
    first.bytes[0] = 42
    first.release()
    const again = pool.tryAcquire({ reuse: first })
    assert.equal(again, first, 'the same object comes back')
    assert.equal(again.owned, true)
    assert.equal(again.slot, slot, 'LIFO free list: the same slot')
    assert.equal(again.generation, generation + 1, 'with a new generation')
    assert.equal(again.bytes[0], 42)
    again.release()
    const synced = pool.acquireSync({ reuse: again })
    assert.equal(synced, first)
    assert.equal(synced.owned, true)
    synced.release()
    assert.equal(pool.stats().inUse, 0)
  })

  it('acquire({ reuse }) re-arms a released lease, also after waiting, and reserves it while pending', async () => {
    const pool = new SharedPool({ slotSize: 32, slots: 1 })
    const first = await pool.acquire()
    first.release()
    const again = await pool.acquire({ reuse: first })
    assert.equal(again, first, 'a free slot: the same object comes back at once')
    const spare = pool.tryAcquire() // none left: null
    assert.equal(spare, null)
    const carrier = pool.tryAcquire({ reuse: null })
    assert.equal(carrier, null)
    // Wait with a lease object that is no longer owned: it is reserved until the wait settles.
    const done = again.handoff() // again is no longer owned; the ticket keeps the slot in flight
    const pending = pool.acquire({ reuse: again, timeout: 5000 })
    assert.throws(() => pool.tryAcquire({ reuse: again }), { code: 'ERR_SABPOOL_LEASE_IN_USE' })
    await assert.rejects(pool.acquire({ reuse: again }), { code: 'ERR_SABPOOL_LEASE_IN_USE' })
    pool.adopt(done).release()
    const got = await pending
    assert.equal(got, again, 'the waiting acquire re-armed the reserved object')
    assert.equal(got.owned, true)
    await assert.rejects(pool.acquire({ reuse: got }), { code: 'ERR_SABPOOL_LEASE_IN_USE' })
    await assert.rejects(pool.acquire({ reuse: 5 }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
    got.release()
    assert.equal(pool.stats().inUse, 0)
  })

  it('refuses a lease that is still owned, before taking any slot', () => {
    const pool = new SharedPool({ slotSize: 32, slots: 2 })
    const held = pool.tryAcquire()
    assert.throws(() => pool.tryAcquire({ reuse: held }), { code: 'ERR_SABPOOL_LEASE_IN_USE' })
    assert.throws(() => pool.acquireSync({ reuse: held }), { code: 'ERR_SABPOOL_LEASE_IN_USE' })
    assert.throws(() => pool.tryAcquire({ reuse: { slot: 0 } }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
    assert.equal(pool.stats().inUse, 1, 'no slot was taken by the refused calls')
    held.release()
  })

  it('a sent lease can be re-armed by the receive that gets it back', () => {
    const { Channel } = require('..')
    const pool = new SharedPool({ slotSize: 32, slots: 2 })
    const channel = new Channel(pool, { capacity: 2 })
    const lease = pool.tryAcquire()
    lease.bytes[1] = 7
    assert.equal(channel.trySend(lease, 3), true)
    assert.equal(lease.owned, false)
    const got = channel.tryRecv({ reuse: lease })
    assert.equal(got, lease)
    assert.equal(got.owned, true)
    assert.equal(got.length, 3)
    assert.equal(got.bytes[1], 7)
    assert.throws(() => channel.tryRecv({ reuse: lease }), { code: 'ERR_SABPOOL_LEASE_IN_USE' })
    got.release()
    assert.equal(channel.tryRecv({ reuse: got }), null, 'empty: nothing to re-arm for')
    assert.equal(got.owned, false, 'an empty receive leaves the lease as it was')
    assert.equal(pool.stats().inUse, 0)
  })
})

describe('two copies of sabpool loaded in one thread', () => {
  it('both work, interleaved, each with its own pools, leases and errors', () => {
    const root = path.join(__dirname, '..')
    // A second copy of the wrapper and of the binding's exports (the addon's init runs again in
    // this thread), as a duplicated dependency or a cleared require cache gives.
    const ours = (file) => file.startsWith(path.join(root, 'lib') + path.sep) ||
      file === path.join(root, 'index.js') || file === path.join(root, 'binding.js') || file.endsWith('.node')
    const saved = Object.keys(require.cache).filter(ours).map((file) => [file, require.cache[file]])
    for (const [file] of saved) delete require.cache[file]
    let other
    try {
      other = require('..')
    } finally {
      for (const file of Object.keys(require.cache).filter(ours)) delete require.cache[file]
      for (const [file, module] of saved) require.cache[file] = module
    }
    assert.notEqual(other.SharedPool, SharedPool, 'a second copy of the classes')
    const { Channel } = require('..')
    const a = new SharedPool({ slotSize: 16, slots: 4 })
    const b = new other.SharedPool({ slotSize: 16, slots: 4 })
    const ca = new Channel(a, { capacity: 4 })
    const cb = new other.Channel(b, { capacity: 4 })
    for (let round = 0; round < 3; round++) {
      const la = a.tryAcquire()
      const lb = b.tryAcquire()
      const lb2 = b.tryAcquire()
      assert.equal(ca.trySend(la, 5), true)
      assert.equal(cb.trySend(lb, 7), true)
      const ga = ca.tryRecv()
      const gb = cb.tryRecv()
      assert.equal(ga.length, 5)
      assert.equal(gb.length, 7)
      assert.equal(gb.slot, lb.slot)
      assert.deepEqual([a.stats().inUse, b.stats().inUse], [1, 2])
      ga.release()
      assert.throws(() => ga.release(), { code: 'ERR_SABPOOL_STALE_LEASE' })
      assert.throws(() => lb.release(), { code: 'ERR_SABPOOL_STALE_LEASE' }, 'sent: no longer the sender\'s')
      const ticket = lb2.handoff()
      b.adopt(ticket).release()
      gb.release()
      assert.deepEqual([a.stats().inUse, b.stats().inUse], [0, 0])
    }
    b.detach()
    assert.throws(() => b.tryAcquire(), { code: 'ERR_SABPOOL_DETACHED' })
    a.tryAcquire().release()
  })
})
