'use strict'
// Workers let go of by their parent while parked in a blocking wait. Node and Bun stop a
// terminated worker's JavaScript at once; Deno lets it run on until it returns to its event loop,
// so sabpool ends such a wait itself (ERR_SABPOOL_TERMINATED) once the parent has seen the
// worker's 'exit' (lib/wait.js, src/binding/threads.rs). These tests drive that path directly,
// by marking a worker as its parent does on 'exit' without terminating it, so they exercise it on
// every runtime; the last ones terminate for real, which under Deno goes through the same path.

const { describe, it, afterEach } = require('node:test')
const assert = require('node:assert/strict')
const { setTimeout: sleep } = require('node:timers/promises')

const { SharedPool, Channel } = require('..')
const { binding } = require('../lib/load.js')
const { waitFor, spawnWorker, terminateWorkers, assertConsistent, throwsCode } = require('./helpers.js')

afterEach(terminateWorkers)

/** Parks a 'parked.js' worker in `op` on `pool`/`channel` and waits until it is registered as
 * waiting there (`waitingBefore`: waiters registered already). Returns the worker handle and
 * its threadId. */
async function park(pool, op, { channel, hold = 0, waitingBefore = 0 } = {}) {
  const w = spawnWorker('parked.js', { pool: pool.handle, channel: channel?.handle, op, hold })
  const { threadId } = await w.next('parking')
  assert.equal(threadId, w.worker.threadId, "the worker's threadId is the one its parent sees")
  const waiting = () => (op === 'acquire' ? pool.stats().waiting
    : op === 'recv' ? channel.stats().recvWaiting : channel.stats().sendWaiting)
  await waitFor(() => waiting() === waitingBefore + 1, 'the worker to park')
  return { w, threadId, waiting }
}

/** Takes `n` leases (every free one if n is undefined). */
function take(pool, n = Infinity) {
  const leases = []
  for (let l; leases.length < n && (l = pool.tryAcquire()) !== null;) leases.push(l)
  return leases
}

describe('a worker marked as let go of while parked', () => {
  for (const op of ['acquire', 'recv', 'send']) {
    const call = { acquire: 'acquireSync', recv: 'recvSync', send: 'sendSync' }[op]
    it(`leaves ${call} with ERR_SABPOOL_TERMINATED, fails the next blocking call at once, and its leases come back`, async () => {
      const pool = new SharedPool({ slotSize: 64, slots: 6 })
      const channel = op === 'acquire' ? undefined : new Channel(pool, { capacity: 2 })
      const hold = 2
      // acquire: every slot the worker does not hold is taken here; send: the channel is full.
      const mine = op === 'acquire' ? take(pool, pool.slots - hold) : []
      if (op === 'send') for (let i = 0; i < 2; i++) assert.equal(channel.trySend(pool.tryAcquire()), true)
      const { w, threadId, waiting } = await park(pool, op, { channel, hold })
      await sleep(120) // a few park slices: nothing ends the wait by itself
      assert.equal(w.queue.length, 0, 'the worker is still parked')
      assert.equal(waiting(), 1)
      const held = pool.stats().inUse

      assert.equal(binding.threadStopped(threadId), true, 'the parked worker is registered')
      const { first, second } = await w.next('left')
      assert.equal(first.outcome, 'threw')
      assert.equal(first.code, 'ERR_SABPOOL_TERMINATED')
      assert.equal(first.name, 'Error')
      assert.match(first.message, new RegExp(`^${call}: this worker was terminated while it waited`))
      assert.deepEqual({ outcome: second.outcome, code: second.code }, { outcome: 'threw', code: 'ERR_SABPOOL_TERMINATED' },
        'a marked worker does not park again')

      // It then returns to its event loop and ends; its cleanup gives back what it held.
      assert.equal(await w.exited, 0)
      assert.deepEqual(w.errors, [])
      const heldByWorker = hold + (op === 'send' ? 1 : 0)
      const after = await waitFor(() => {
        const s = pool.stats()
        return s.inUse === held - heldByWorker ? s : null
      }, "the worker's leases to come back")
      assert.equal(after.reclaimed, heldByWorker)
      assert.equal(after.waiting, 0, 'no waiter left registered')
      assert.equal(waiting(), 0, 'no waiter left registered where it parked')
      if (channel !== undefined) {
        const cs = channel.stats()
        assert.equal(cs.queued, op === 'send' ? 2 : 0, 'the queue is intact')
        for (let l; (l = channel.tryRecv()) !== null;) l.release()
      }
      mine.forEach((l) => l.release())
      const end = pool.stats()
      assert.equal(end.inUse, 0)
      assertConsistent(end)
      assert.equal(binding.threadStopped(threadId), false, 'the ended worker left the table')
    })
  }

  it('only the marked worker leaves: another one parked on the same pool goes on waiting and gets the next slot', async () => {
    const pool = new SharedPool({ slotSize: 64, slots: 2 })
    const mine = take(pool)
    const a = await park(pool, 'acquire')
    const b = await park(pool, 'acquire', { waitingBefore: 1 })
    binding.threadStopped(a.threadId)
    const left = await a.w.next('left')
    assert.equal(left.first.code, 'ERR_SABPOOL_TERMINATED')
    assert.equal(await a.w.exited, 0)
    await sleep(120)
    assert.equal(b.w.queue.length, 0, 'the other worker is still parked')
    assert.equal(pool.stats().waiting, 1)
    mine[0].release()
    const got = await b.w.next('left')
    assert.deepEqual(got, { type: 'left', first: { outcome: 'done' }, second: null })
    assert.equal(await b.w.exited, 0)
    mine[1].release()
    assert.equal(pool.stats().inUse, 0)
  })

  it('marks only registered worker threads: unknown ids are a no-op, and ids that are no threadId are refused', () => {
    assert.equal(binding.threadStopped(2 ** 40), false)
    assert.equal(binding.threadStopping(), false, 'the main thread is never marked')
    for (const bad of [0, -1, 1.5, NaN, Infinity, 2 ** 53 + 2]) {
      throwsCode(() => binding.threadStopped(bad), Error, 'ERR_OUT_OF_RANGE')
    }
  })
})

describe('worker.terminate() of a parked worker', () => {
  for (const op of ['acquire', 'recv', 'send']) {
    it(`gives back its leases (parked in ${op}Sync)`, async () => {
      const pool = new SharedPool({ slotSize: 64, slots: 6 })
      const channel = op === 'acquire' ? undefined : new Channel(pool, { capacity: 2 })
      const mine = op === 'acquire' ? take(pool, 4) : []
      if (op === 'send') for (let i = 0; i < 2; i++) assert.equal(channel.trySend(pool.tryAcquire()), true)
      const { w, waiting } = await park(pool, op, { channel, hold: 2 })
      const heldByWorker = op === 'send' ? 3 : 2
      const before = pool.stats()
      await w.worker.terminate()
      await w.exited
      const after = await waitFor(() => {
        const s = pool.stats()
        return s.inUse === before.inUse - heldByWorker ? s : null
      }, "the terminated worker's leases to come back")
      assert.equal(after.reclaimed, before.reclaimed + heldByWorker)
      assert.equal(after.waiting, 0)
      await waitFor(() => waiting() === 0, 'its wait to be withdrawn')
      if (channel !== undefined) for (let l; (l = channel.tryRecv()) !== null;) l.release()
      mine.forEach((l) => l.release())
      assert.equal(pool.stats().inUse, 0)
      assertConsistent(pool.stats())
    })
  }
})
