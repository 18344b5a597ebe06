'use strict'
// The notify bench's release case ends a phase by setting STOP and releasing one slot per acquirer;
// each acquirer must leave on exactly the slot it takes after STOP, or a released slot stays free
// in the pool and the teardown waits for a hand-back that never comes. Here the hand-back of the
// last sample's slot does not return before the main thread has set STOP (a worker preempted right
// after its trySend), the interleaving that made the bench stall about once in 20 runs.
const { it } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { Worker } = require('node:worker_threads')
const { SharedPool, Channel } = require('..')
const notify = require('../bench/eventloop/notify.js')

const STOP = 3 // notify.js's raw word that ends a phase

const workerSource = `
const { workerData, parentPort } = require('node:worker_threads')
const notify = require(${JSON.stringify(path.join(__dirname, '..', 'bench', 'eventloop', 'notify.js'))})
const impl = notify.workers.notify
const w = impl.setup(workerData, null)
const raw = w.raw
const pause = new Int32Array(new SharedArrayBuffer(4))
const send = w.back.trySend.bind(w.back)
w.back.trySend = (lease) => {
  const sent = send(lease)
  // A hand-back made before STOP returns only once the main thread has set STOP.
  const deadline = Date.now() + 5000
  while (Atomics.load(raw, ${STOP}) === 0 && Date.now() < deadline) Atomics.wait(pause, 0, 0, 1)
  return sent
}
w.mode = 'acquire'
impl.run(w)
impl.teardown(w)
parentPort.postMessage('done')
`

for (const k of [1, 2]) {
  it(`notify-release: ${k} acquirer(s) take back every slot released at the end of a phase`, { timeout: 30_000 }, async () => {
    const c = notify.rows.find((r) => r.id === 'notify-release')
    const poolC = new SharedPool({ slotSize: 1024, slots: 8 })
    const poolP = new SharedPool({ slotSize: 1024, slots: 2 })
    const st = {
      poolC,
      ch: new Channel(poolC, { capacity: 8 }),
      poolP,
      back: new Channel(poolP, { capacity: 4 }),
      raw: new Int32Array(new SharedArrayBuffer(16)),
      held: [],
    }
    for (let i = 0; i < poolP.slots; i++) st.held.push(poolP.tryAcquire())
    const init = { channel: st.ch.handle, back: st.back.handle, raw: st.raw.buffer }
    const workers = []
    const finished = []
    for (let i = 0; i < k; i++) {
      const wk = new Worker(workerSource, { eval: true, workerData: init })
      workers.push(wk)
      finished.push(new Promise((resolve, reject) => {
        wk.once('message', resolve)
        wk.once('error', reject)
      }))
    }
    try {
      const ms = c.sample(st, k, 1)
      assert.equal(typeof ms, 'number')
      c.end(st, k)
      await Promise.all(finished)
      // Every slot released by end() was taken by an acquirer and handed back before it left.
      assert.deepEqual(
        { free: poolP.stats().free, queued: st.back.stats().queued },
        { free: 0, queued: k },
        'an acquirer left before taking a slot released at the end of the phase',
      )
      await c.after(st, k)
      assert.equal(st.held.length, poolP.slots)
      assert.equal(Atomics.load(st.raw, STOP), 0)
    } finally {
      await Promise.all(workers.map((wk) => wk.terminate()))
      for (const lease of st.held) lease.release()
      st.ch.detach()
      st.back.detach()
      poolC.detach()
      poolP.detach()
    }
  })
}
