'use strict'
// The child process of `--processes` (forked by proc-host.js): hosts the worker side of one
// process mechanism, like worker.js does for a thread. Control requests and replies (protocol:
// control.js) and the process.send mechanisms' payloads share the IPC channel.

const { isControl, serveMechanism } = require('./control.js')
const mechanism = require('./mechanisms/index.js').get(process.argv[2]).worker

const send = (msg) => process.send(msg)
const served = serveMechanism(mechanism, { postMessage: send }, send)

process.on('message', (msg) => {
  if (isControl(msg)) served.control(msg)
  else served.payload(msg)
})
// The bench process went away (it closes the channel when the cell is over, or it died).
process.on('disconnect', () => process.exit(0))

process.send({ hello: true })
