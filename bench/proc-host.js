'use strict'
// `--processes`: one child_process.fork()ed child (proc-child.js) per cell, with the same
// interface as WorkerHost (host.js), so runner.js drives processes and threads alike. Control
// messages and the process.send mechanisms' payloads share the child's IPC channel (in order);
// control messages are plain objects, payloads are strings, numbers or typed arrays.

const path = require('node:path')
const { fork } = require('node:child_process')
const { isControl, ControlHost } = require('./control.js')

const CHILD_FILE = path.join(__dirname, 'proc-child.js')

class ProcessHost extends ControlHost {
  /** Forks the child for mechanism `m` (its serialization, and fd 4 as a pipe if `m.pipe`). */
  constructor(m) {
    super(`child process (${m.id})`)
    this.id = m.id
    this.deferred = []
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
    child.on('message', (msg) => (isControl(msg) ? this.reply(msg) : this.onMessage(msg)))
    child.on('error', (err) => this.fail(err))
    if (m.pipe) child.stdio[4].on('error', (err) => this.fail(err))
    child.on('exit', (code, signal) => {
      if (!this.closing) this.fail(new Error(`${this.label} exited with ${signal ?? `code ${code}`}`))
    })
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
