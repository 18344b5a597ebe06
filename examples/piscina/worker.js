'use strict'
// The piscina task function: transforms a slot in place. leaseTask adopts the slot each task
// carries and hands the reply back; a throw releases the slot and fails the run.
//
// The pool is attached once per piscina worker thread, at module level: piscina loads this file
// once per thread, so every task that thread runs reuses the attachment.
const { workerData } = require('piscina')
const { SharedPool } = require('sabpool')
const { leaseTask } = require('sabpool/piscina')

const pool = SharedPool.attach(workerData.pool)

const ops = {
  invert(bytes) {
    for (let i = 0; i < bytes.length; i++) bytes[i] = 255 - bytes[i]
  },
  /** Adds `amount` to every byte, saturating at 255. */
  brighten(bytes, amount = 16) {
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.min(255, bytes[i] + amount)
  },
  /** For the example's error path: a task that fails after its slot was adopted. */
  fail() {
    throw new Error('this task fails on purpose')
  },
}

/** task: { op, amount? }. Transforms the lease's `length` bytes in place; the reply is the same
 * slot with the same length (the function returns undefined). */
module.exports = leaseTask(pool, (lease, { op, amount }) => {
  const fn = ops[op]
  if (!fn) throw new Error(`unknown op ${op}`)
  fn(lease.bytes.subarray(0, lease.length), amount)
})
