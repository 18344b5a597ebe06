'use strict'
// Cold-start probe: posts as soon as it is ready. With workerData.pool it first loads sabpool and
// attaches the pool, which is what a sabpool worker pays before its first task, and posts how
// long each step took (ms; `bootstrap` is from `new Worker` on the main thread to this file's first
// line; both threads' performance.timeOrigin + now() are on one clock).
const { workerData, parentPort } = require('node:worker_threads')
if (workerData && workerData.pool) {
  const t0 = performance.now()
  const { SharedPool } = require('..')
  const t1 = performance.now()
  SharedPool.attach(workerData.pool)
  const t2 = performance.now()
  const bootstrap = performance.timeOrigin + t0 - workerData.startedAt
  parentPort.postMessage({ bootstrap, require: t1 - t0, attach: t2 - t1 })
} else {
  parentPort.postMessage(0)
}
