'use strict'
// Cold-start probe: posts as soon as it is ready. With workerData.pool it first loads sabpool and
// attaches the pool, which is what a sabpool worker pays before its first task.
const { workerData, parentPort } = require('node:worker_threads')
if (workerData && workerData.pool) require('..').SharedPool.attach(workerData.pool)
parentPort.postMessage(0)
