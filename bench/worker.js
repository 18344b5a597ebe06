'use strict'
// The benchmark's worker: hosts the worker side of one mechanism (see mechanisms/index.js) or of
// an event-loop family (eventloop/index.js). Control requests come from host.js over the worker's
// own port (protocol: control.js); payload messages over the MessageChannel port in workerData.

const { workerData, parentPort } = require('node:worker_threads')
const { serveMechanism } = require('./control.js')
const { WORKERS } = require('./eventloop/index.js')
const mechanism = WORKERS[workerData.mechanism] ?? require('./mechanisms/index.js').get(workerData.mechanism).worker
const port = workerData.port

const served = serveMechanism(mechanism, port, (msg) => parentPort.postMessage(msg))
port.on('message', served.payload)
parentPort.on('message', served.control)

parentPort.postMessage({ hello: true })
