'use strict'
// The benchmark's worker: hosts the worker side of one mechanism (see mechanisms/index.js).
// Control protocol (from host.js): setup → { ok }, phase → { ready } (a sync mechanism then
// blocks in its loop and posts { done } when the end-of-phase message arrives), teardown →
// { mismatches }. A failure is posted as { error } after unblocking the main thread.

const { workerData, parentPort } = require('node:worker_threads')
const mechanism = require('./mechanisms/index.js').get(workerData.mechanism).worker
const port = workerData.port

let w = null

port.on('message', (msg) => mechanism.onMessage(w, msg))

parentPort.on('message', ({ cmd, arg }) => {
  try {
    switch (cmd) {
      case 'setup':
        if (typeof global.gc === 'function') global.gc()
        w = mechanism.setup(arg, port)
        parentPort.postMessage({ ok: true })
        break
      case 'phase':
        w.mode = arg.mode
        w.expect = 0
        parentPort.postMessage({ ready: true })
        if (mechanism.run !== undefined) {
          mechanism.run(w)
          parentPort.postMessage({ done: true })
        }
        break
      case 'teardown': {
        const mismatches = w.mismatches
        mechanism.teardown(w)
        w = null
        if (typeof global.gc === 'function') global.gc()
        parentPort.postMessage({ mismatches })
        break
      }
      default:
        throw new Error(`unknown command ${cmd}`)
    }
  } catch (err) {
    try {
      if (w !== null && mechanism.abort !== undefined) mechanism.abort(w)
    } finally {
      parentPort.postMessage({ error: String(err && err.message), stack: err && err.stack })
    }
  }
})

parentPort.postMessage({ hello: true })
