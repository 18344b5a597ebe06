'use strict'
// The control protocol between the bench and the side that hosts a mechanism's `worker` part (a
// worker thread, worker.js, or a forked child, proc-child.js). Requests { cmd, arg }, one reply
// each, in order: setup → { ok }, phase → { ready } (a mechanism with a blocking loop then runs it
// and replies { done } when the end-of-phase message arrives), report → { report } (what the
// mechanism's report(w) returns: counts and CPU time of the phase just ended), teardown →
// { mismatches }. A failure is replied as { error, stack } after unblocking the bench side.
// serveMechanism() is the hosting side, ControlHost the bench side (host.js, proc-host.js).

/**
 * Over a process's IPC channel, control messages are plain objects; payload messages (the
 * process.send mechanisms') are strings, numbers or typed arrays.
 */
const isControl = (msg) => msg !== null && typeof msg === 'object' && !ArrayBuffer.isView(msg)

/**
 * Hosts `mechanism` (a mechanism's `worker` part): `port` is what its setup gets to send payload
 * messages, `reply(msg)` sends a control reply. Returns the handlers for the two kinds of message.
 */
function serveMechanism(mechanism, port, reply) {
  let w = null
  return {
    /** A control request { cmd, arg }. */
    control({ cmd, arg }) {
      try {
        switch (cmd) {
          case 'setup':
            if (typeof global.gc === 'function') global.gc()
            w = mechanism.setup(arg, port)
            reply({ ok: true })
            break
          case 'phase':
            w.mode = arg.mode
            w.expect = 0
            w.arg = arg // the whole request: event-loop mechanisms pass counts and modes in it
            if (mechanism.begin !== undefined) mechanism.begin(w)
            reply({ ready: true })
            if (mechanism.run !== undefined) {
              mechanism.run(w)
              reply({ done: true })
            }
            break
          case 'report':
            reply({ report: mechanism.report(w) })
            break
          case 'teardown': {
            const mismatches = w.mismatches
            mechanism.teardown(w)
            w = null
            if (typeof global.gc === 'function') global.gc()
            reply({ mismatches })
            break
          }
          default:
            throw new Error(`unknown command ${cmd}`)
        }
      } catch (err) {
        try {
          if (w !== null && mechanism.abort !== undefined) mechanism.abort(w)
        } finally {
          reply({ error: String(err && err.message), stack: err && err.stack })
        }
      }
    },
    /** A payload message (postMessage and process.send mechanisms). */
    payload(msg) {
      mechanism.onMessage(w, msg)
    },
  }
}

/**
 * The bench side's bookkeeping of control replies, shared by WorkerHost and ProcessHost: a
 * subclass passes each reply to reply() and each failure of its worker or child to fail().
 */
class ControlHost {
  /** `label` names the worker or child in error messages. */
  constructor(label) {
    this.label = label
    /** Set per cell: receives payload messages (postMessage and process.send mechanisms). */
    this.onMessage = null
    this.replies = []
    this.waiters = []
    this.failure = null
    this.closing = false
    /** Rejects when the worker or child fails; see guard(). */
    this.failed = new Promise((_, reject) => {
      this.rejectFailed = reject
    })
    this.failed.catch(() => {})
  }

  /** A control reply: a reported error fails the host, anything else goes to next(). */
  reply(msg) {
    if (msg.error !== undefined) return this.fail(Object.assign(new Error(`${this.label}: ${msg.error}`), { stack: msg.stack }))
    const waiter = this.waiters.shift()
    if (waiter) waiter.resolve(msg)
    else this.replies.push(msg)
  }

  /** Records the first failure and rejects every pending and future wait. */
  fail(err) {
    if (this.failure === null) this.failure = err
    this.rejectFailed(err)
    for (const w of this.waiters.splice(0)) w.reject(err)
  }

  /** The next control reply. */
  next() {
    if (this.failure !== null) return Promise.reject(this.failure)
    if (this.replies.length > 0) return Promise.resolve(this.replies.shift())
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }))
  }

  /** `promise`, or the failure if that comes first (a reply that will never arrive). */
  guard(promise) {
    return Promise.race([promise, this.failed])
  }
}

module.exports = { isControl, serveMechanism, ControlHost }
