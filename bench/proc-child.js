'use strict'
// The child process of `--processes` (forked by proc-host.js): hosts the worker side of one
// process mechanism, like worker.js does for a thread. Control protocol over the IPC channel, in
// order: setup → { ok }, phase → { ready } (a mechanism with a blocking loop then runs it and
// sends { done } when the end-of-phase message arrives), teardown → { mismatches }. Control
// messages are plain objects; payload messages (process.send mechanisms) are strings, numbers or
// typed arrays. A failure is sent as { error } after unblocking the bench process.

const mechanism = require('./mechanisms/index.js').get(process.argv[2]).worker

const port = { postMessage: (msg) => process.send(msg) }
const isControl = (msg) => msg !== null && typeof msg === 'object' && !ArrayBuffer.isView(msg)

let w = null

function control({ cmd, arg }) {
  try {
    switch (cmd) {
      case 'setup':
        if (typeof global.gc === 'function') global.gc()
        w = mechanism.setup(arg, port)
        process.send({ ok: true })
        break
      case 'phase':
        w.mode = arg.mode
        w.expect = 0
        process.send({ ready: true })
        if (mechanism.run !== undefined) {
          mechanism.run(w)
          process.send({ done: true })
        }
        break
      case 'teardown': {
        const mismatches = w.mismatches
        mechanism.teardown(w)
        w = null
        if (typeof global.gc === 'function') global.gc()
        process.send({ mismatches })
        break
      }
      default:
        throw new Error(`unknown command ${cmd}`)
    }
  } catch (err) {
    try {
      if (w !== null && mechanism.abort !== undefined) mechanism.abort(w)
    } finally {
      process.send({ error: String(err && err.message), stack: err && err.stack })
    }
  }
}

process.on('message', (msg) => {
  if (isControl(msg)) control(msg)
  else mechanism.onMessage(w, msg)
})
// The bench process went away (it closes the channel when the cell is over, or it died).
process.on('disconnect', () => process.exit(0))

process.send({ hello: true })
