'use strict'
// No lost wake-ups: producers and consumers, sync and async, on one channel and its pool, with
// random sleeps on both sides, random timeouts, and aborts racing the wake-ups. A freed resource
// wakes exactly one waiter, so a wake-up swallowed by a waiter that then leaves (aborted, timed
// out, or an async park that already ended) would strand the others. The run happens in a child
// process whose park slice (the backstop that bounds every park) is ten minutes: a lost wake-up
// is then a stall, which the parent detects as no progress for STALL_MS.

const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { fork } = require('node:child_process')
const { isMainThread } = require('node:worker_threads')

const STALL_MS = 5000

if (process.env.SABPOOL_WAKE_STRESS_CHILD === '1' && isMainThread) {
  const options = JSON.parse(process.env.SABPOOL_WAKE_STRESS_OPTIONS)
  if (options.scenario === 'forward') runForwarding()
  else runChild(options)
} else {
  describe('no lost wake-ups (wake one waiter per item)', () => {
    it('3 producers and 6 consumers (sync and async; racers with timeouts and aborts) move every item exactly once and never stall', { timeout: 120_000 }, async () => {
      const result = await runInChild({ producers: 3, consumers: 6, count: 4000, seed: 0x5eed })
      assert.equal(result.stalled, undefined, `stalled: ${JSON.stringify(result.stalled)}`)
      assert.equal(result.error, undefined, result.error)
      assert.equal(result.missing, 0, 'every item was received')
      assert.equal(result.duplicated, 0, 'no item was received twice')
      assert.equal(result.received, 3 * 4000)
      assert.equal(result.inUse, 0, 'every slot is back in the pool')
      assert.deepEqual(result.waiting, { pool: 0, send: 0, recv: 0 }, 'no waiter left registered')
      assert.ok(result.recvWaits > 100 && result.sendWaits > 10 && result.poolWaits > 10,
        `the waits really parked: ${JSON.stringify(result)}`)
    })

    it('a wake-up that reaches a waiter which already left (aborted, or aborted as it was woken) is passed on to the next waiter', { timeout: 60_000 }, async () => {
      const result = await runInChild({ scenario: 'forward' })
      assert.equal(result.error, undefined, result.error)
      assert.deepEqual(result.outcomes, {
        'recv: aborted before the send': 'got it',
        'recv: aborted right after the send': 'got it',
        'acquire: aborted before the release': 'got it',
        'recvSync in a worker, behind an aborted recv': 'got it',
      })
    })

    it('detects a lost wake-up (planted: half of the notify calls dropped)', { timeout: 120_000 }, async () => {
      const result = await runInChild({ producers: 2, consumers: 4, count: 4000, seed: 0xbad, sabotage: 'drop-wakes' })
      assert.notEqual(result.stalled, undefined, 'the dropped wake-ups went unnoticed')
    })
  })
}

function runInChild(options) {
  return new Promise((resolve, reject) => {
    const child = fork(__filename, [], {
      env: {
        ...process.env,
        SABPOOL_PARK_SLICE_MS: '600000',
        SABPOOL_WAKE_STRESS_CHILD: '1',
        SABPOOL_WAKE_STRESS_OPTIONS: JSON.stringify(options),
      },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    let result
    child.on('message', (message) => { result = message })
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      if (result !== undefined) resolve(result)
      else reject(new Error(`the stress child exited (${code ?? signal}) without a result`))
    })
  })
}

async function runChild({ producers, consumers, count, seed, sabotage }) {
  const { SharedPool, Channel } = require('..')
  const { Worker } = require('node:worker_threads')
  const pool = new SharedPool({ slotSize: 16, slots: 6 })
  const channel = new Channel(pool, { capacity: 4 })
  const seen = new SharedArrayBuffer(4 * producers * count)
  const file = path.join(__dirname, 'fixtures', 'wake-racer.js')
  const threads = []
  const start = (role, mode, racer, id) => {
    const worker = new Worker(file, {
      workerData: {
        role, mode, racer, racerCalls: count, id, count, seen, sabotage, channelHandle: channel.handle,
        seed: seed + id * 7919 + (role === 'producer' ? 0 : 104729),
      },
    })
    const done = new Promise((resolve, reject) => {
      worker.on('message', (m) => (m.type === 'done' ? resolve(m) : reject(new Error(m.message))))
      worker.on('error', reject)
    })
    threads.push({ worker, done })
    return done
  }
  const finish = (result) => {
    process.send(result, () => process.exit(0))
  }
  // Producers: sync, async, then a sync racer (it retries, never leaves). Consumers: by fours, a sync and an async one that wait
  // without limit and a sync and an async racer (timeouts, aborts) that leave part-way.
  const produced = []
  for (let i = 0; i < producers; i++) produced.push(start('producer', i % 2 === 0 ? 'sync' : 'async', i >= 2, i))
  const consumed = []
  for (let i = 0; i < consumers; i++) consumed.push(start('consumer', i % 2 === 0 ? 'sync' : 'async', i % 4 >= 2, i))
  // Progress watch: received must move at least once per STALL_MS until every item is in.
  let last = -1
  let lastChange = performance.now()
  const watch = setInterval(() => {
    const s = channel.stats()
    if (s.received !== last) {
      last = s.received
      lastChange = performance.now()
    } else if (s.received < producers * count && performance.now() - lastChange > STALL_MS) {
      const p = pool.stats()
      finish({ stalled: { received: s.received, queued: s.queued, recvWaiting: s.recvWaiting, sendWaiting: s.sendWaiting, free: p.free, poolWaiting: p.waiting } })
    }
  }, 50)
  try {
    await Promise.all(produced)
    await channelDrained(channel, producers * count)
    channel.close()
    const received = (await Promise.all(consumed)).reduce((sum, m) => sum + m.received, 0)
    clearInterval(watch)
    const counts = new Int32Array(seen)
    let missing = 0
    let duplicated = 0
    for (const c of counts) {
      if (c === 0) missing++
      else if (c > 1) duplicated++
    }
    const s = channel.stats()
    const p = pool.stats()
    finish({
      received, missing, duplicated, inUse: p.inUse,
      waiting: { pool: p.waiting, send: s.sendWaiting, recv: s.recvWaiting },
      recvWaits: s.recvWaits, sendWaits: s.sendWaits, poolWaits: p.waits,
    })
  } catch (error) {
    finish({ error: String(error && error.stack) })
  }
}

/**
 * Each case parks waiter A (which will leave) before waiter B, in V8's FIFO wait list, makes A
 * leave, then frees one resource: its single wake-up goes to A's abandoned park, which must pass
 * it on to B. With a ten-minute park slice, B is reached in time only through that hand-on.
 */
async function runForwarding() {
  const { SharedPool, Channel } = require('..')
  const { Worker } = require('node:worker_threads')
  const outcomes = {}
  const report = (result) => process.send(result, () => process.exit(0))
  /** 'got it' once `promise` settles within `ms`; otherwise reports at once (B would wait for the
   * ten-minute slice). */
  const within = async (what, promise, ms) => {
    outcomes[what] = await Promise.race([
      promise.then(() => 'got it'),
      new Promise((resolve) => setTimeout(resolve, ms, `still waiting after ${ms} ms`).unref()),
    ])
    if (outcomes[what] !== 'got it') report({ outcomes })
  }
  const parked = async (check) => {
    while (!check()) await new Promise((resolve) => setTimeout(resolve, 1))
  }
  try {
    const pool = new SharedPool({ slotSize: 16, slots: 2 })
    for (const when of ['before', 'right after']) {
      const channel = new Channel(pool, { capacity: 2 })
      const leaving = new AbortController()
      const a = channel.recv({ signal: leaving.signal }).catch((error) => error)
      await parked(() => channel.stats().recvWaiting === 1)
      const b = channel.recv()
      await parked(() => channel.stats().recvWaiting === 2)
      if (when === 'before') leaving.abort()
      channel.trySend(pool.tryAcquire())
      if (when === 'right after') leaving.abort() // before A's wake-up is delivered (a later task)
      await within(`recv: aborted ${when} the send`, b, 3000)
      assert.equal((await a).name, 'AbortError')
      ;(await b).release()
    }
    {
      const held = [pool.tryAcquire(), pool.tryAcquire()]
      const leaving = new AbortController()
      const a = pool.acquire({ signal: leaving.signal }).catch((error) => error)
      await parked(() => pool.stats().waiting === 1)
      const b = pool.acquire()
      await parked(() => pool.stats().waiting === 2)
      leaving.abort()
      held[0].release()
      await within('acquire: aborted before the release', b, 3000)
      assert.equal((await a).name, 'AbortError')
      ;(await b).release()
      held[1].release()
    }
    {
      const channel = new Channel(pool, { capacity: 2 })
      const leaving = new AbortController()
      const a = channel.recv({ signal: leaving.signal }).catch((error) => error)
      await parked(() => channel.stats().recvWaiting === 1)
      const worker = new Worker(`
        const { workerData, parentPort } = require('node:worker_threads')
        const { Channel } = require(workerData.sabpool)
        const lease = Channel.attach(workerData.channel).recvSync()
        lease.release()
        parentPort.postMessage('received')
      `, { eval: true, workerData: { sabpool: path.join(__dirname, '..'), channel: channel.handle } })
      const received = new Promise((resolve) => worker.once('message', resolve))
      await parked(() => channel.stats().recvWaiting === 2)
      leaving.abort()
      await a
      // Let the worker's park begin after its registration: it spins first.
      await new Promise((resolve) => setTimeout(resolve, 20))
      channel.trySend(pool.tryAcquire())
      await within('recvSync in a worker, behind an aborted recv', received, 3000)
      await worker.terminate()
    }
    report({ outcomes })
  } catch (error) {
    report({ error: String(error && error.stack) })
  }
}

async function channelDrained(channel, total) {
  while (channel.stats().received < total) await new Promise((resolve) => setTimeout(resolve, 5))
}
