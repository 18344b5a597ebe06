'use strict'
// `--processes`: one child_process.fork()ed child (proc-child.js) per cell, with the same
// interface as WorkerHost (host.js), so runner.js drives processes and threads alike. Control
// messages and the process.send mechanisms' payloads share the child's IPC channel (in order);
// control messages are plain objects, payloads are strings, numbers or typed arrays.

const path = require('node:path')
const { fork } = require('node:child_process')

const CHILD_FILE = path.join(__dirname, 'proc-child.js')
const isControl = (msg) => msg !== null && typeof msg === 'object' && !ArrayBuffer.isView(msg)

class ProcessHost {
  /** Forks the child for mechanism `m` (its serialization, and fd 4 as a pipe if `m.pipe`). */
  constructor(m) {
    this.id = m.id
    this.onMessage = null
    this.replies = []
    this.waiters = []
    this.failure = null
    this.closing = false
    this.deferred = []
    this.failed = new Promise((_, reject) => {
      this.rejectFailed = reject
    })
    this.failed.catch(() => {})
    // stdout is the report's: the child never writes there. stderr shows a crashing child.
    const stdio = ['ignore', 'ignore', 'inherit', 'ipc']
    if (m.pipe) stdio.push('pipe')
    this.child = fork(CHILD_FILE, [m.id], { serialization: m.serialization ?? 'json', stdio })
    this.exited = new Promise((resolve) => this.child.once('exit', resolve))
    /** Processes whose CPU time is ours, not a neighbour's (cpuload.js). */
    this.pids = [this.child.pid]
    const child = this.child
    this.port = {
      postMessage: (msg) => child.send(msg),
      socket: m.pipe ? child.stdio[4] : null,
      /** Registers a cleanup that runs after the cell, whether it succeeded or failed. */
      defer: (fn) => this.deferred.push(fn),
    }
    child.on('message', (msg) => {
      if (!isControl(msg)) return this.onMessage(msg)
      if (msg.error !== undefined) return this.#fail(Object.assign(new Error(`child process (${m.id}): ${msg.error}`), { stack: msg.stack }))
      const waiter = this.waiters.shift()
      if (waiter) waiter.resolve(msg)
      else this.replies.push(msg)
    })
    child.on('error', (err) => this.#fail(err))
    if (m.pipe) child.stdio[4].on('error', (err) => this.#fail(err))
    child.on('exit', (code, signal) => {
      if (!this.closing) this.#fail(new Error(`child process (${m.id}) exited with ${signal ?? `code ${code}`}`))
    })
  }

  #fail(err) {
    if (this.failure === null) this.failure = err
    this.rejectFailed(err)
    for (const w of this.waiters.splice(0)) w.reject(err)
  }

  next() {
    if (this.failure !== null) return Promise.reject(this.failure)
    if (this.replies.length > 0) return Promise.resolve(this.replies.shift())
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }))
  }

  guard(promise) {
    return Promise.race([promise, this.failed])
  }

  call(cmd, arg) {
    this.child.send({ cmd, arg })
    return this.next()
  }

  /** Runs the registered cleanups (every one, even if some throw); returns the first error. */
  cleanUp() {
    let first = null
    for (const fn of this.deferred.splice(0).reverse()) {
      try {
        fn()
      } catch (err) {
        first ??= err
      }
    }
    return first
  }

  /**
   * Ends the child: disconnects (it exits by itself) and waits up to `graceMs`, then kills it.
   * `kill: true` kills it right away (after an error).
   */
  async close({ kill = false, graceMs = 2000 } = {}) {
    this.closing = true
    const child = this.child
    if (child.exitCode !== null || child.signalCode !== null) return
    if (!kill && child.connected) {
      child.disconnect()
      let timer
      const timedOut = await Promise.race([
        this.exited.then(() => false),
        new Promise((resolve) => { timer = setTimeout(resolve, graceMs, true) }),
      ])
      clearTimeout(timer)
      if (!timedOut) return
    }
    child.kill('SIGKILL')
    await this.exited
  }
}

module.exports = { ProcessHost }
