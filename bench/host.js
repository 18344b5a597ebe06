'use strict'
// One long-lived worker per mechanism (bench/worker.js), reused for every payload size. Control
// messages go over the worker's own port (request → one reply, in order; see control.js); payload
// messages of the postMessage mechanisms go over a separate MessageChannel, so the two never mix.

const path = require('node:path')
const { Worker, MessageChannel } = require('node:worker_threads')
const { ControlHost } = require('./control.js')

const WORKER_FILE = path.join(__dirname, 'worker.js')

class WorkerHost extends ControlHost {
  constructor(mechanismId) {
    super(`worker (${mechanismId})`)
    const { port1, port2 } = new MessageChannel()
    this.id = mechanismId
    this.port = port1
    port1.on('message', (msg) => this.onMessage(msg))
    this.worker = new Worker(WORKER_FILE, { workerData: { mechanism: mechanismId, port: port2 }, transferList: [port2] })
    this.worker.on('message', (msg) => this.reply(msg))
    this.worker.on('error', (err) => this.fail(err))
    this.worker.on('exit', (code) => {
      if (!this.closing) this.fail(new Error(`${this.label} exited with code ${code}`))
    })
  }

  call(cmd, arg) {
    this.worker.postMessage({ cmd, arg })
    return this.next()
  }

  async close() {
    this.closing = true
    this.port.close()
    await this.worker.terminate()
  }
}

module.exports = { WorkerHost }
