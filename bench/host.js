'use strict'
// One long-lived worker per mechanism (bench/worker.js), reused for every payload size. Control
// messages go over the worker's own port (request → one reply, in order); payload messages of
// the postMessage mechanisms go over a separate MessageChannel, so the two never mix.

const path = require('node:path')
const { Worker, MessageChannel } = require('node:worker_threads')

const WORKER_FILE = path.join(__dirname, 'worker.js')

class WorkerHost {
  constructor(mechanismId) {
    const { port1, port2 } = new MessageChannel()
    this.id = mechanismId
    this.port = port1
    /** Set per cell: receives payload-port messages (postMessage mechanisms). */
    this.onMessage = null
    this.replies = []
    this.waiters = []
    this.failure = null
    this.closing = false
    /** Rejects when the worker fails; see guard(). */
    this.failed = new Promise((_, reject) => {
      this.rejectFailed = reject
    })
    this.failed.catch(() => {})
    port1.on('message', (msg) => this.onMessage(msg))
    this.worker = new Worker(WORKER_FILE, { workerData: { mechanism: mechanismId, port: port2 }, transferList: [port2] })
    this.worker.on('message', (msg) => {
      if (msg && msg.error) return this.#fail(Object.assign(new Error(`worker (${mechanismId}): ${msg.error}`), { stack: msg.stack }))
      const waiter = this.waiters.shift()
      if (waiter) waiter.resolve(msg)
      else this.replies.push(msg)
    })
    this.worker.on('error', (err) => this.#fail(err))
    this.worker.on('exit', (code) => {
      if (!this.closing) this.#fail(new Error(`worker (${mechanismId}) exited with code ${code}`))
    })
  }

  #fail(err) {
    if (this.failure === null) this.failure = err
    this.rejectFailed(err)
    for (const w of this.waiters.splice(0)) w.reject(err)
  }

  /** The next control reply from the worker. */
  next() {
    if (this.failure !== null) return Promise.reject(this.failure)
    if (this.replies.length > 0) return Promise.resolve(this.replies.shift())
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }))
  }

  /** `promise`, or the worker's failure if that comes first (a reply that will never arrive). */
  guard(promise) {
    return Promise.race([promise, this.failed])
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
