'use strict'
// A piscina task function that works on tickets instead of buffers.
//
// The pool is attached once per piscina worker thread, at module level: piscina loads this file
// once per thread, so every task that thread runs reuses the attachment.
const { workerData } = require('piscina')
const { SharedPool } = require('sabpool')

const pool = SharedPool.attach(workerData.pool)

const ops = {
  invert(bytes) {
    for (let i = 0; i < bytes.length; i++) bytes[i] = 255 - bytes[i]
  },
  /** Adds `amount` to every byte, saturating at 255. */
  brighten(bytes, amount = 16) {
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.min(255, bytes[i] + amount)
  },
  /** For the example's error path: a task that fails after adopting its slot. */
  fail() {
    throw new Error('this task fails on purpose')
  },
}

/**
 * task: { ticket, op, amount? }. Adopts the slot the ticket names (this thread now owns it),
 * transforms its `length` bytes in place and hands it back: the result is a ticket too, so
 * neither the task nor the result carries the payload.
 */
module.exports = function transform({ ticket, op, amount }) {
  const lease = pool.adopt(ticket)
  try {
    const fn = ops[op]
    if (!fn) throw new Error(`unknown op ${op}`)
    fn(lease.bytes.subarray(0, lease.length), amount)
    return lease.handoff()
  } catch (err) {
    // The slot is this thread's now: give it back to the pool before failing the task.
    if (lease.owned) lease.release()
    throw err
  }
}
