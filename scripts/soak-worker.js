'use strict'
// A worker of the soak run (scripts/soak.js): takes leases from the main thread (through the
// `down` channel, or as tickets on its MessagePort), checks them, transforms them in place and
// sends them back (through the `up` channel, or as a ticket posted to the main thread), until
// the main thread closes `down`.
//
// Memory reports through shared words (Float64Array `mem`, 3 per worker): heapUsed and
// heapTotal every 250 ms, and heapUsed right after a full GC, which it runs whenever the main
// thread bumps ctl[0] (it then stores the new value in ctl[1 + index]). `gc` is there because
// the main thread set --expose-gc before starting the workers.

const { workerData, parentPort, receiveMessageOnPort } = require('node:worker_threads')
const { Channel } = require('..')
const P = require('./soak-payload.js')

const { index, downHandle, upHandle, port } = workerData
const mem = new Float64Array(workerData.mem)
const ctl = new Int32Array(workerData.ctl)
const down = Channel.attach(downHandle)
const up = Channel.attach(upHandle, down.pool)
const pool = down.pool

let x = (0x9e3779b9 ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0 || 1
function rand() {
  x ^= x << 13
  x ^= x >>> 17
  x ^= x << 5
  return x >>> 0
}

let bad = 0
let handled = 0
let lastReport = 0
let gcEpoch = 0

function handle(lease) {
  if (P.check(lease) !== null) bad++
  P.transform(lease)
  handled++
  if ((rand() & 7) === 0) {
    parentPort.postMessage({ type: 'ticket', ticket: lease.handoff() })
  } else {
    up.sendSync(lease, undefined, { timeout: 10_000 })
  }
}

function housekeeping() {
  const epoch = Atomics.load(ctl, 0)
  if (epoch !== gcEpoch && typeof globalThis.gc === 'function') {
    gcEpoch = epoch
    globalThis.gc()
    const m = process.memoryUsage()
    mem[3 * index] = m.heapUsed
    mem[3 * index + 1] = m.heapTotal
    mem[3 * index + 2] = m.heapUsed
    Atomics.store(ctl, 1 + index, epoch)
    return
  }
  const now = performance.now()
  if (now - lastReport > 250) {
    lastReport = now
    const m = process.memoryUsage()
    mem[3 * index] = m.heapUsed
    mem[3 * index + 1] = m.heapTotal
  }
}

for (;;) {
  for (let got; (got = receiveMessageOnPort(port)) !== undefined;) handle(pool.adopt(got.message))
  housekeeping()
  let lease
  try {
    lease = down.recvSync({ timeout: 5 })
  } catch (err) {
    if (err.code !== 'ERR_SABPOOL_TIMEOUT') throw err
    continue
  }
  if (lease === null) break // closed and drained
  handle(lease)
}
// Tickets the main thread posted before it closed `down` are still ours to return.
for (let got; (got = receiveMessageOnPort(port)) !== undefined;) handle(pool.adopt(got.message))
parentPort.postMessage({ type: 'done', handled, bad })
port.close()
