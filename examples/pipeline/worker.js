'use strict'
// One pipeline stage: take a filled slot from `work`, transform its pixels in place, pass the
// same slot on through `done`. No bytes are copied or cloned on the way.
const { workerData } = require('node:worker_threads')
const { SharedPool, Channel } = require('sabpool')
const transforms = require('./transforms.js')

const HEADER = workerData.header
const transform = transforms[workerData.op]
// One attachment for both channels, so a lease received on `work` can be sent on `done`.
const pool = SharedPool.attach(workerData.pool)
const work = Channel.attach(workerData.work, pool)
const done = Channel.attach(workerData.done, pool)

let lease = null
let chunks = 0
// recvSync blocks this worker (never the main thread) and returns null once `work` is closed
// and drained. `reuse` re-arms the previous Lease object: nothing is allocated per chunk.
while ((lease = work.recvSync({ reuse: lease ?? undefined })) !== null) {
  transform(lease.bytes.subarray(HEADER, lease.length))
  done.sendSync(lease)
  chunks++
}
require('node:worker_threads').parentPort.postMessage({ chunks })
