'use strict'
// Dead participants: workers that die while holding leases or while parked in a wait must give
// back exactly what they held, withdraw their waits, free their participant entry, and leave a
// pool that works. (pool.test.js covers exit/throw/process.exit/terminate-in-acquireSync one at a
// time, channel.test.js a lease-less worker terminated in recvSync; this adds a worker killed by
// V8 for running out of memory while others wait, and several parked workers terminated at once,
// one of them holding leases inside recvSync.)

const { describe, it, afterEach } = require('node:test')
const assert = require('node:assert/strict')
const { setTimeout: sleep } = require('node:timers/promises')

const { SharedPool, Channel, Lease } = require('..')
const { waitFor, assertConsistent, assertAllFreeOnce, spawnWorker, terminateWorkers, trackChannel, closeChannels } = require('./helpers.js')

/** Parked receivers/senders registered on a channel (its stats). */
function channelWaiters(channel) {
  const { recvWaiting, sendWaiting } = channel.stats()
  return { recv: recvWaiting, send: sendWaiting }
}

/** A channel closed after the test (see `closeChannels`). */
const chan = (pool, options) => trackChannel(new Channel(pool, options))

afterEach(async () => {
  await terminateWorkers()
  closeChannels()
})

describe('dead participants', () => {
  it('a worker killed for running out of memory (ERR_WORKER_OUT_OF_MEMORY) while holding leases and with async waits pending: exactly its leases are reclaimed, its waits withdrawn, and a waiting main-thread acquire() and a worker parked in acquireSync() are both served', { timeout: 30_000 }, async () => {
    // 3 participants at most: main, the dying worker, the waiting worker. The dying worker's
    // entry must be freed for the attach at the end.
    const pool = new SharedPool({ slotSize: 64, slots: 4, maxParticipants: 3 })
    const channel = chan(pool, { capacity: 4 })
    const idle = chan(pool, { capacity: 2 })
    const before = pool.stats()

    const victim = spawnWorker('dead-oom.js', { channel: channel.handle, idle: idle.handle }, {
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 },
    })
    const held = await victim.next('held')
    assert.equal(held.slots.length, 2)
    let s = pool.stats()
    assert.equal(s.inUse, 4, 'the victim took every slot')
    assert.equal(s.waiting, 1, 'its pending async acquire() is registered')
    assert.equal(channelWaiters(idle).recv, 1, 'its pending recv() is registered')
    assert.equal(pool.tryAcquire(), null)

    // Two more waiters: this thread (async) and a worker parked in acquireSync().
    const pending = pool.acquire({ timeout: 15_000 })
    let mainGot = null
    pending.then((lease) => { mainGot = lease }, () => {})
    const ctl = new Int32Array(new SharedArrayBuffer(4))
    const waiter = spawnWorker('dead-blocker.js', { channel: channel.handle, hold: 0, block: 'acquireSync', ctl: ctl.buffer, index: 0 })
    await waiter.next('held')
    waiter.post('block')
    await waitFor(() => pool.stats().waiting === 3, 'three registered waiters (victim, main, worker)')

    victim.post('go')
    const code = await victim.exited
    assert.equal(code, 1, 'a worker killed for memory exits with code 1')
    assert.equal(victim.errors.length, 1, `errors: ${victim.errors.map(String)}`)
    assert.equal(victim.errors[0].code, 'ERR_WORKER_OUT_OF_MEMORY')
    assert.deepEqual(victim.queue.filter((m) => m.type === 'unexpected'), [], 'its pending waits never completed')

    // Both waiters are served by the two reclaimed slots.
    const lease = await pending
    assert.ok(lease instanceof Lease && lease === mainGot)
    assert.ok(held.slots.includes(lease.slot), `main got slot ${lease.slot}, one of the victim's ${held.slots}`)
    // (The worker releases its slot right after reporting it, so main may get that same slot.)
    const returned = await waiter.next('returned')
    assert.ok(held.slots.includes(returned.slot), `worker got slot ${returned.slot}, one of the victim's ${held.slots}`)
    assert.equal(await waiter.exited, 0)

    s = await waitFor(() => {
      const st = pool.stats()
      return st.waiting === 0 && st.inUse === 3 ? st : null
    }, 'every wait to be withdrawn')
    assert.equal(s.reclaimed, before.reclaimed + 2, 'reclaimed grew by exactly the two leases it held')
    assert.equal(channelWaiters(idle).recv, 0, 'its pending recv() was withdrawn')
    assert.deepEqual(channelWaiters(channel), { recv: 0, send: 0 })
    assertConsistent(s)

    // What it handed off or queued was not reclaimed: still adoptable / receivable, intact.
    const adopted = pool.adopt(held.ticket)
    assert.equal(adopted.length, 7)
    assert.ok(adopted.bytes.subarray(0, 64).every((b) => b === 0xbb))
    const got = channel.tryRecv()
    assert.equal(got.slot, held.queued)
    assert.equal(got.length, 9)
    assert.ok(got.bytes.subarray(0, 64).every((b) => b === 0xcc))
    for (const l of [lease, adopted, got]) l.release()

    // The pool works, every slot is free exactly once, and the victim's participant entry is free.
    const again = SharedPool.attach(pool.handle)
    again.tryAcquire().release()
    again.detach()
    assertAllFreeOnce(pool)
    const end = pool.stats()
    assert.equal(end.reclaimed, 2)
    assert.equal(end.waiting, 0)
  })

  it('three workers parked at once (recvSync holding 2 leases, acquireSync holding 1, acquireSync holding none), terminated together: exactly 3 reclaimed, every wait withdrawn, and the next waiter is woken', { timeout: 30_000 }, async () => {
    const pool = new SharedPool({ slotSize: 32, slots: 6, maxParticipants: 5 })
    const channel = chan(pool, { capacity: 4 })
    const ctl = new Int32Array(new SharedArrayBuffer(16))
    const specs = [
      { hold: 2, block: 'recvSync' },
      { hold: 1, block: 'acquireSync' },
      { hold: 0, block: 'acquireSync' },
    ]
    const workers = []
    for (const [index, spec] of specs.entries()) {
      const w = spawnWorker('dead-blocker.js', { channel: channel.handle, ...spec, ctl: ctl.buffer, index })
      w.slots = (await w.next('held')).slots
      workers.push(w)
    }
    // This thread holds the rest, so the acquireSync calls park.
    const mine = []
    for (let lease; (lease = pool.tryAcquire()) !== null;) mine.push(lease)
    assert.equal(mine.length, 3)
    workers.forEach((w) => w.post('block'))
    await waitFor(() => pool.stats().waiting === 2 && channelWaiters(channel).recv === 1, 'two parked acquirers and a parked receiver')
    await waitFor(() => pool.stats().waits >= 2, 'the acquirers to park')
    await sleep(20)
    assert.equal(pool.stats().waiting, 2)
    const before = pool.stats()

    await Promise.all(workers.map((w) => w.worker.terminate()))
    for (const w of workers) {
      assert.equal(await w.exited, 1)
      assert.deepEqual(w.errors, [])
      assert.deepEqual(w.queue.filter((m) => m.type === 'returned'), [], 'no parked call returned')
    }
    const after = await waitFor(() => {
      const s = pool.stats()
      return s.inUse === 3 ? s : null
    }, 'the leases to come back')
    assert.equal(after.reclaimed, before.reclaimed + 3, 'reclaimed grew by exactly the 3 leases held')
    assert.equal(after.waiting, 0, 'no wait of a terminated worker stays registered')
    assert.deepEqual(channelWaiters(channel), { recv: 0, send: 0 })
    assertConsistent(after)

    // A new worker parked in acquireSync is woken by a release (the waiter count is exact, so the
    // release sees it and notifies), and a new receiver gets what is sent. First take the three
    // reclaimed slots, so that the new worker can only be served by a release.
    for (let lease; (lease = pool.tryAcquire()) !== null;) mine.push(lease)
    assert.equal(mine.length, 6)
    const next = spawnWorker('dead-blocker.js', { channel: channel.handle, hold: 0, block: 'acquireSync', ctl: ctl.buffer, index: 3 })
    await next.next('held')
    next.post('block')
    await waitFor(() => pool.stats().waiting === 1, 'the new acquirer to park')
    const freed = mine.shift()
    freed.release()
    const returned = await next.next('returned')
    assert.equal(returned.slot, freed.slot)
    assert.equal(await next.exited, 0)
    const receiver = spawnWorker('dead-blocker.js', { channel: channel.handle, hold: 0, block: 'recvSync', ctl: ctl.buffer, index: 3 })
    await receiver.next('held')
    receiver.post('block')
    const sent = pool.tryAcquire()
    assert.ok(channel.trySend(sent, 1))
    assert.equal(typeof (await receiver.next('returned')).slot, 'number')
    assert.equal(await receiver.exited, 0)
    mine.forEach((l) => l.release())
    assert.equal(pool.stats().waiting, 0)
    assertAllFreeOnce(pool)
    assert.equal(pool.stats().reclaimed, 3)
  })
})
