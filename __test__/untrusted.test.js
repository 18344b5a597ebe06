'use strict'
// Untrusted input to the JS wrapper (issue #12, items 8–10): a `reuse` lease shared between a
// pending receive and another call, objects whose getters change between reads (tickets, handles,
// options), methods called with the wrong `this`, objects that pass `instanceof` without being
// sabpool objects, and AbortSignal look-alikes. Every misuse must give a coded error, and no
// misuse may drop a slot or leave a waiter registered.

const { describe, it, afterEach } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { setTimeout: sleep } = require('node:timers/promises')

const { SharedPool, Channel, Lease } = require('..')
const { throwsCode, rejectsCode, assertAllFreeOnce, assertConsistent, trackChannel, closeChannels } = require('./helpers.js')

afterEach(() => closeChannels())

const chan = (pool, options) => trackChannel(new Channel(pool, options))

/** Parked receivers/senders registered on a channel (its stats). */
function channelWaiters(channel) {
  const { recvWaiting, sendWaiting } = channel.stats()
  return { recv: recvWaiting, send: sendWaiting }
}

/** A lease object this thread no longer owns (released), for `reuse`. */
function spentLease(pool) {
  const lease = pool.tryAcquire()
  lease.release()
  return lease
}

/**
 * Wraps `target` in a Proxy that counts every read (get, has, getOwnPropertyDescriptor) per key.
 * `reads` maps key → count.
 */
function counting(target) {
  const reads = new Map()
  const note = (key) => reads.set(key, (reads.get(key) ?? 0) + 1)
  const proxy = new Proxy(target, {
    get(t, key, receiver) { note(key); return Reflect.get(t, key, receiver) },
    has(t, key) { note(key); return Reflect.has(t, key) },
    getOwnPropertyDescriptor(t, key) { note(key); return Reflect.getOwnPropertyDescriptor(t, key) },
  })
  return { proxy, reads }
}

/** Asserts that no key of a `counting` proxy was read more than once. */
function assertReadOnce(reads, what) {
  const twice = [...reads].filter(([, count]) => count > 1).map(([key, count]) => `${String(key)} ×${count}`)
  assert.deepEqual(twice, [], `${what} read these fields more than once: ${twice.join(', ')}`)
}

// ---- item 8: recv({ reuse }) ---------------------------------------------------------------------

describe('reuse: a lease object reserved by a pending receive', () => {
  it('while recv({ reuse }) is pending, tryAcquire({ reuse }) and a second recv({ reuse }) with the same object throw ERR_SABPOOL_LEASE_IN_USE, and no slot is dropped', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 4 })
    const channel = chan(pool, { capacity: 2 })
    const carrier = spentLease(pool)
    const pending = channel.recv({ reuse: carrier, timeout: 5000 })
    // Before the fix, this re-armed `carrier` with a new slot, which the pending recv then
    // overwrote when a lease arrived: that slot was lost for good (leased, no object).
    throwsCode(() => pool.tryAcquire({ reuse: carrier }), Error, 'ERR_SABPOOL_LEASE_IN_USE', /pending/)
    throwsCode(() => pool.acquireSync({ reuse: carrier, timeout: 0 }), Error, 'ERR_SABPOOL_LEASE_IN_USE')
    throwsCode(() => channel.tryRecv({ reuse: carrier }), Error, 'ERR_SABPOOL_LEASE_IN_USE')
    throwsCode(() => channel.recvSync({ reuse: carrier, timeout: 0 }), Error, 'ERR_SABPOOL_LEASE_IN_USE')
    await rejectsCode(channel.recv({ reuse: carrier, timeout: 10 }), Error, 'ERR_SABPOOL_LEASE_IN_USE')
    assert.equal(carrier.owned, false)
    assert.equal(pool.stats().inUse, 0, 'none of the refused calls took a slot')

    const sent = pool.tryAcquire()
    sent.bytes[0] = 42
    const slot = sent.slot
    assert.equal(channel.trySend(sent, 1), true)
    const got = await pending
    assert.equal(got, carrier, 'the pending recv re-armed its reuse object')
    assert.equal(got.slot, slot)
    assert.equal(got.bytes[0], 42)
    got.release()
    assertAllFreeOnce(pool)
    assertConsistent(pool.stats())
  })

  it('the reservation ends with the pending call (timeout, abort, error): the object can be reused again, and an aborted recv leaves no waiter', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 4 })
    const channel = chan(pool, { capacity: 2 })
    const carrier = spentLease(pool)
    await rejectsCode(channel.recv({ reuse: carrier, timeout: 5 }), Error, 'ERR_SABPOOL_TIMEOUT')
    const again = pool.tryAcquire({ reuse: carrier })
    assert.equal(again, carrier)
    again.release()

    const controller = new AbortController()
    const aborted = channel.recv({ reuse: carrier, signal: controller.signal })
    throwsCode(() => pool.tryAcquire({ reuse: carrier }), Error, 'ERR_SABPOOL_LEASE_IN_USE')
    controller.abort()
    await assert.rejects(aborted, { name: 'AbortError' })
    assert.deepEqual(channelWaiters(channel), { recv: 0, send: 0 })
    pool.tryAcquire({ reuse: carrier }).release()

    // Closed while pending: resolves null, and the object is free again.
    const closing = channel.recv({ reuse: carrier })
    channel.close()
    assert.equal(await closing, null)
    pool.tryAcquire({ reuse: carrier }).release()
    assertAllFreeOnce(pool)
  })

  it('two pending recv({ reuse }) on different channels cannot share the object: each lease that arrives gets its own object, none is dropped', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 4 })
    const a = chan(pool, { capacity: 2 })
    const b = chan(pool, { capacity: 2 })
    const carrier = spentLease(pool)
    const first = a.recv({ reuse: carrier, timeout: 5000 })
    await rejectsCode(b.recv({ reuse: carrier, timeout: 5000 }), Error, 'ERR_SABPOOL_LEASE_IN_USE')
    const second = b.recv({ timeout: 5000 })
    const x = pool.tryAcquire()
    const y = pool.tryAcquire()
    const slots = [x.slot, y.slot]
    b.trySend(y)
    a.trySend(x)
    const [gotA, gotB] = await Promise.all([first, second])
    assert.equal(gotA, carrier)
    assert.notEqual(gotB, carrier)
    assert.deepEqual([gotA.slot, gotB.slot], slots)
    gotA.release()
    gotB.release()
    assertAllFreeOnce(pool)
  })
})

// ---- item 9: every field of an untrusted object is read once --------------------------------------

describe('untrusted objects: every field is read once', () => {
  it('adopt() reads each ticket field once: a slot getter that changes after the first read adopts and returns that first slot', () => {
    const pool = new SharedPool({ slotSize: 16, slots: 4 })
    const lease = pool.tryAcquire()
    lease.bytes[0] = 7
    const ticket = lease.handoff()
    const other = pool.tryAcquire() // a slot another lease owns: the getter's second answer
    const calls = { pool: 0, slot: 0, generation: 0, length: 0 }
    const shifty = {
      get pool() { calls.pool++; return ticket.pool },
      get slot() { return calls.slot++ === 0 ? ticket.slot : other.slot },
      get generation() { calls.generation++; return ticket.generation },
      get length() { calls.length++; return ticket.length },
    }
    const adopted = pool.adopt(shifty)
    assert.equal(adopted.slot, ticket.slot, 'the lease is for the slot that was adopted')
    assert.equal(adopted.bytes[0], 7)
    assert.deepEqual(calls, { pool: 1, slot: 1, generation: 1, length: 1 })
    adopted.release()
    assert.equal(other.owned, true, 'the other lease still owns its slot')
    other.release()
    assertAllFreeOnce(pool)
  })

  it('adopt(): a slot getter that turns out of range after the first read cannot make lease.bytes throw an uncoded RangeError', () => {
    const pool = new SharedPool({ slotSize: 16, slots: 4 })
    const ticket = pool.tryAcquire().handoff()
    let reads = 0
    const shifty = { ...ticket, get slot() { return reads++ === 0 ? ticket.slot : 1e6 } }
    const adopted = pool.adopt(shifty)
    assert.equal(adopted.slot, ticket.slot)
    assert.equal(adopted.bytes.length, 16)
    assert.equal(reads, 1)
    adopted.release()
    assertAllFreeOnce(pool)
  })

  it('adopt(): a getter that throws propagates its error and adopts nothing', () => {
    const pool = new SharedPool({ slotSize: 16, slots: 2 })
    const ticket = pool.tryAcquire().handoff()
    const boom = new Error('boom')
    assert.throws(() => pool.adopt({ ...ticket, get generation() { throw boom } }), (e) => e === boom)
    pool.adopt(ticket).release()
    assertAllFreeOnce(pool)
  })

  it('options, tickets and handles are read once per field by every call that takes them', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 8 })
    const channel = chan(pool, { capacity: 2 })
    const check = (what, target, call) => {
      const { proxy, reads } = counting(target)
      call(proxy)
      assertReadOnce(reads, what)
      return reads
    }
    const checkAsync = async (what, target, call) => {
      const { proxy, reads } = counting(target)
      await call(proxy)
      assertReadOnce(reads, what)
      return reads
    }
    check('new SharedPool(options)', { slotSize: 16, slots: 2, maxParticipants: 4, trackLeaks: false }, (o) => new SharedPool(o).detach())
    check('SharedPool.attach(handle)', { ...pool.handle }, (h) => SharedPool.attach(h).detach())
    check('SharedPool.attach(handle, options)', { trackLeaks: false }, (o) => SharedPool.attach(pool.handle, o).detach())
    check('pool.tryAcquire(options)', { reuse: spentLease(pool) }, (o) => pool.tryAcquire(o).release())
    check('pool.acquireSync(options)', { reuse: spentLease(pool), timeout: 100, spin: 10 }, (o) => pool.acquireSync(o).release())
    await checkAsync('pool.acquire(options)', { timeout: 100, signal: new AbortController().signal }, async (o) => (await pool.acquire(o)).release())
    check('pool.adopt(ticket)', { ...pool.tryAcquire().handoff() }, (t) => pool.adopt(t).release())
    check('new Channel(pool, options)', { capacity: 2, spin: 5 }, (o) => chan(pool, o).detach())
    check('Channel.attach(handle)', { ...channel.handle }, (h) => Channel.attach(h, pool).detach())
    check('Channel.attach(handle, pool, options)', { spin: 3 }, (o) => Channel.attach(channel.handle, pool, o).detach())
    check('channel.sendSync(lease, length, options)', { timeout: 100, spin: 10 }, (o) => channel.sendSync(pool.tryAcquire(), 0, o))
    check('channel.tryRecv(options)', { reuse: spentLease(pool) }, (o) => channel.tryRecv(o).release())
    await checkAsync('channel.send(lease, length, options)', { timeout: 100, signal: new AbortController().signal }, (o) => channel.send(pool.tryAcquire(), 0, o))
    check('channel.recvSync(options)', { reuse: spentLease(pool), timeout: 100, spin: 10 }, (o) => channel.recvSync(o).release())
    channel.trySend(pool.tryAcquire())
    await checkAsync('channel.recv(options)', { reuse: spentLease(pool), timeout: 100, signal: new AbortController().signal }, async (o) => (await channel.recv(o)).release())
    // A nested handle (the channel handle's pool handle) is read once as well.
    const inner = counting({ ...pool.handle })
    check('Channel.attach(handle) without a pool', { ...channel.handle, pool: inner.proxy }, (h) => {
      const attached = Channel.attach(h)
      attached.detach()
      attached.pool.detach()
    })
    assertReadOnce(inner.reads, 'Channel.attach(handle).pool')
    assertAllFreeOnce(pool)
  })

  it('file-backed: SharedPool.create/open, Channel.create/open and attach by a file handle read each option once', (t) => {
    if (process.platform === 'win32') return t.skip('no file-backed pools on Windows')
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sabpool-untrusted-'))
    try {
      const check = (what, target, call) => {
        const { proxy, reads } = counting(target)
        const result = call(proxy)
        assertReadOnce(reads, what)
        return result
      }
      const pool = check('SharedPool.create(options)', { name: 'u', dir, slotSize: 16, slots: 4, maxParticipants: 4, mode: 0o600, trackLeaks: false }, (o) => SharedPool.create(o))
      check('SharedPool.open(name, options)', { dir, trackLeaks: false }, (o) => SharedPool.open('u', o).detach())
      check('SharedPool.attach(file handle)', { ...pool.handle }, (h) => SharedPool.attach(h).detach())
      const channel = check('Channel.create(pool, options)', { name: 'uc', dir, capacity: 2, spin: 3, mode: 0o600 }, (o) => Channel.create(pool, o))
      check('Channel.open(name, pool, options)', { dir, spin: 3 }, (o) => Channel.open('uc', pool, o).detach())
      check('Channel.attach(file handle)', { ...channel.handle }, (h) => Channel.attach(h, pool).detach())
      channel.close()
      channel.unlink()
      channel.detach()
      pool.unlink()
      pool.detach()
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a handle whose fields change between reads attaches what its first reads said, or fails with a coded error', () => {
    const pool = new SharedPool({ slotSize: 16, slots: 2 })
    const other = new SharedPool({ slotSize: 16, slots: 2 })
    let kinds = 0
    let buffers = 0
    const shifty = {
      get kind() { return kinds++ === 0 ? pool.handle.kind : 'nope' },
      version: pool.handle.version,
      get buffer() { return buffers++ === 0 ? pool.handle.buffer : other.handle.buffer },
    }
    const attached = SharedPool.attach(shifty)
    assert.equal(attached.id, pool.id, 'attached the pool the first read named')
    assert.deepEqual([kinds, buffers], [1, 1])
    attached.detach()
    // A name that is a string at the first read and something else later.
    let names = 0
    throwsCode(() => SharedPool.attach({ kind: pool.handle.kind, version: pool.handle.version, get name() { return names++ === 0 ? 'no-such-pool-here' : 5 }, dir: os.tmpdir() }), Error, 'ERR_SABPOOL_NOT_FOUND')
    assert.equal(names, 1)
  })
})

// ---- item 10: wrong `this`, forged instances, signal look-alikes --------------------------------

/** Every method and accessor of a class's prototype, as [name, call(thisValue)] pairs. */
function members(Class) {
  const out = []
  for (const key of Reflect.ownKeys(Class.prototype)) {
    // Internal members (a leading underscore) are not API; util.inspect hooks must not throw.
    if (key === 'constructor' || (typeof key === 'string' && key.startsWith('_')) || key === Symbol.for('nodejs.util.inspect.custom')) continue
    const d = Object.getOwnPropertyDescriptor(Class.prototype, key)
    const name = `${Class.name}.prototype.${String(key)}`
    if (typeof d.value === 'function') out.push([name, (self) => Reflect.apply(d.value, self, [])])
    if (typeof d.get === 'function') out.push([`get ${name}`, (self) => Reflect.apply(d.get, self, [])])
    if (typeof d.set === 'function') out.push([`set ${name}`, (self) => Reflect.apply(d.set, self, [0])])
  }
  return out
}

/** Calls `call`; returns the error it threw, or the rejection of the promise (or of the first
 * step of the async iterator) it returned; fails if it did neither. */
async function failure(call, what) {
  let result
  try {
    result = call()
  } catch (error) {
    return error
  }
  try {
    if (result instanceof Promise) await result
    else if (result !== null && typeof result === 'object' && typeof result.next === 'function') await result.next()
  } catch (error) {
    return error
  }
  assert.fail(`${what} did not fail`)
}

describe('wrong this and forged objects', () => {
  it('every method and accessor of SharedPool, Channel and Lease called with a wrong `this` fails with a TypeError coded ERR_INVALID_THIS', async () => {
    // (util.inspect of such an object must not throw either.)
    for (const Class of [SharedPool, Channel, Lease]) require('node:util').inspect(Object.create(Class.prototype))
    const pool = new SharedPool({ slotSize: 16, slots: 2 })
    const channel = chan(pool, { capacity: 2 })
    const lease = pool.tryAcquire()
    const wrong = [undefined, null, 42, {}, Object.create(SharedPool.prototype), Object.create(Channel.prototype), Object.create(Lease.prototype)]
    const own = { SharedPool: pool, Channel: channel, Lease: lease }
    let checked = 0
    for (const Class of [SharedPool, Channel, Lease]) {
      for (const [name, call] of members(Class)) {
        for (const self of wrong) {
          const error = await failure(() => call(self), `${name} with this = ${String(self)}`)
          assert.ok(error instanceof TypeError, `${name} with this = ${describeThis(self)}: expected a TypeError, got ${error}`)
          assert.equal(error.code, 'ERR_INVALID_THIS', `${name} with this = ${describeThis(self)}: ${error.message}`)
          assert.match(error.message, new RegExp(`must be an? ${Class.name}`), `${name}: ${error.message}`)
          checked++
        }
        // Another class's real instance is a wrong `this` as well.
        for (const [otherName, other] of Object.entries(own)) {
          if (otherName === Class.name) continue
          const error = await failure(() => call(other), `${name} with a ${otherName}`)
          assert.equal(error.code, 'ERR_INVALID_THIS', `${name} with this = a ${otherName}: ${error.message}`)
        }
      }
    }
    assert.ok(checked > 100, `checked ${checked} calls`)
    // Destructured methods, as in the issue.
    const { tryAcquire } = pool
    throwsCode(() => tryAcquire(), TypeError, 'ERR_INVALID_THIS')
    const { release } = lease
    throwsCode(() => release(), TypeError, 'ERR_INVALID_THIS')
    const { trySend } = channel
    throwsCode(() => trySend(lease), TypeError, 'ERR_INVALID_THIS')
    assert.equal(lease.owned, true, 'nothing happened to the lease')
    lease.release()
    assertAllFreeOnce(pool)
  })

  it('objects made with Object.create(Lease.prototype) or Object.create(SharedPool.prototype) are refused as arguments with ERR_INVALID_ARG_TYPE', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 2 })
    const channel = chan(pool, { capacity: 2 })
    const fakeLease = Object.create(Lease.prototype)
    const fakePool = Object.create(SharedPool.prototype)
    throwsCode(() => pool.tryAcquire({ reuse: fakeLease }), TypeError, 'ERR_INVALID_ARG_TYPE', /reuse must be a Lease/)
    throwsCode(() => pool.acquireSync({ reuse: fakeLease }), TypeError, 'ERR_INVALID_ARG_TYPE')
    throwsCode(() => channel.tryRecv({ reuse: fakeLease }), TypeError, 'ERR_INVALID_ARG_TYPE')
    throwsCode(() => channel.recvSync({ reuse: fakeLease }), TypeError, 'ERR_INVALID_ARG_TYPE')
    await rejectsCode(channel.recv({ reuse: fakeLease }), TypeError, 'ERR_INVALID_ARG_TYPE')
    throwsCode(() => channel.trySend(fakeLease), TypeError, 'ERR_INVALID_ARG_TYPE')
    throwsCode(() => channel.sendSync(fakeLease), TypeError, 'ERR_INVALID_ARG_TYPE')
    await rejectsCode(channel.send(fakeLease), TypeError, 'ERR_INVALID_ARG_TYPE')
    throwsCode(() => channel.sendMany([fakeLease]), TypeError, 'ERR_INVALID_ARG_TYPE')
    throwsCode(() => new Channel(fakePool, { capacity: 2 }), TypeError, 'ERR_INVALID_ARG_TYPE')
    throwsCode(() => Channel.attach(channel.handle, fakePool), TypeError, 'ERR_INVALID_ARG_TYPE')
    if (process.platform !== 'win32') {
      throwsCode(() => Channel.create(fakePool, { name: 'x', capacity: 2 }), TypeError, 'ERR_INVALID_ARG_TYPE')
      throwsCode(() => Channel.open('x', fakePool), TypeError, 'ERR_INVALID_ARG_TYPE')
    }
    assert.equal(pool.stats().inUse, 0)
    assertAllFreeOnce(pool)
  })

  it('a signal without removeEventListener (or whose listener methods are not functions) is refused up front and registers no waiter', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 1 })
    const channel = chan(pool, { capacity: 2 })
    const held = pool.tryAcquire()
    const lookalikes = [
      { aborted: false, addEventListener() {} },
      { aborted: false, removeEventListener() {} },
      { aborted: false, addEventListener() {}, removeEventListener: 5 },
      { aborted: 'no', addEventListener() {}, removeEventListener() {} },
    ]
    for (const signal of lookalikes) {
      await rejectsCode(pool.acquire({ signal, timeout: 20 }), TypeError, 'ERR_INVALID_ARG_TYPE', /signal/)
      await rejectsCode(channel.recv({ signal, timeout: 20 }), TypeError, 'ERR_INVALID_ARG_TYPE', /signal/)
      assert.equal(pool.stats().waiting, 0, 'no waiter stays registered')
      assert.deepEqual(channelWaiters(channel), { recv: 0, send: 0 })
    }
    held.release()
    assertAllFreeOnce(pool)
  })

  it('a signal whose addEventListener or removeEventListener throws: the wait fails with that error and withdraws its waiter (acquire, recv, send)', async () => {
    const pool = new SharedPool({ slotSize: 16, slots: 3 })
    const channel = chan(pool, { capacity: 2 })
    const boom = new Error('boom')
    const throwing = [
      { aborted: false, addEventListener() { throw boom }, removeEventListener() {} },
      { aborted: false, addEventListener() {}, removeEventListener() { throw boom } },
    ]
    const held = [pool.tryAcquire(), pool.tryAcquire(), pool.tryAcquire()]
    for (const signal of throwing) {
      await assert.rejects(pool.acquire({ signal, timeout: 20 }), (e) => e === boom)
      assert.equal(pool.stats().waiting, 0, 'the pool waiter was withdrawn')
      await assert.rejects(channel.recv({ signal, timeout: 20 }), (e) => e === boom)
      assert.deepEqual(channelWaiters(channel), { recv: 0, send: 0 }, 'the receive waiter was withdrawn')
    }
    // A full channel: the third send waits.
    assert.equal(channel.trySend(held[0]), true)
    assert.equal(channel.trySend(held[1]), true)
    for (const signal of throwing) {
      await assert.rejects(channel.send(held[2], 0, { signal, timeout: 20 }), (e) => e === boom)
      assert.deepEqual(channelWaiters(channel), { recv: 0, send: 0 }, 'the send waiter was withdrawn')
      assert.equal(held[2].owned, true, 'the lease was not sent')
    }
    held[2].release()
    channel.tryRecv().release()
    channel.tryRecv().release()
    assertAllFreeOnce(pool)
  })

  it('an AbortSignal look-alike with the whole shape (an EventTarget with aborted and reason) works: aborting it rejects with AbortError and withdraws the waiter', async () => {
    class Signal extends EventTarget {
      aborted = false
      reason = undefined
      abort(reason) {
        this.aborted = true
        this.reason = reason
        this.dispatchEvent(new Event('abort'))
      }
    }
    const pool = new SharedPool({ slotSize: 16, slots: 1 })
    const held = pool.tryAcquire()
    const signal = new Signal()
    const pending = pool.acquire({ signal })
    await sleep(5)
    assert.equal(pool.stats().waiting, 1)
    signal.abort('stop')
    await assert.rejects(pending, (e) => e.name === 'AbortError' && e.code === 'ABORT_ERR' && e.cause === 'stop')
    assert.equal(pool.stats().waiting, 0)
    held.release()
    assertAllFreeOnce(pool)
  })
})

function describeThis(self) {
  if (self === null || typeof self !== 'object') return String(self)
  const proto = Object.getPrototypeOf(self)
  return proto === Object.prototype ? '{}' : `Object.create(${proto.constructor.name}.prototype)`
}
