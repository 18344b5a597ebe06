'use strict'
// Assertions and polling shared by the JS test files (not a test file itself).
const assert = require('node:assert/strict')
const { setTimeout: sleep } = require('node:timers/promises')

/** Asserts that `fn` throws an instance of `Ctor` with `code` (and a message matching `message`). */
function throwsCode(fn, Ctor, code, message) {
  assert.throws(fn, (err) => checkError(err, Ctor, code, message))
}

/** As `throwsCode`, for a promise that must reject. */
async function rejectsCode(promise, Ctor, code, message) {
  assert.ok(promise instanceof Promise, 'expected a Promise')
  await assert.rejects(promise, (err) => checkError(err, Ctor, code, message))
}

function checkError(err, Ctor, code, message) {
  assert.ok(err instanceof Ctor, `expected ${Ctor.name}, got ${err && err.name}: ${err && err.message}`)
  assert.equal(err.code, code, `wrong code; message: ${err.message}`)
  if (message !== undefined) assert.match(err.message, message)
  return true
}

/** The invariants of a pool's counters while nothing is acquired or released concurrently. */
function assertConsistent(stats) {
  assert.equal(stats.free, stats.slots - stats.inUse, 'free === slots - inUse')
  assert.equal(stats.acquired, stats.released + stats.reclaimed + stats.inUse, 'acquired === released + reclaimed + inUse')
  assert.ok(stats.highWater <= stats.slots)
}

/** Every slot is free exactly once: tryAcquire hands out `slots` distinct slots, then null. */
function assertAllFreeOnce(pool) {
  const leases = []
  for (let lease; (lease = pool.tryAcquire()) !== null;) leases.push(lease)
  assert.deepEqual(leases.map((l) => l.slot).sort((a, b) => a - b), [...Array(pool.slots).keys()])
  leases.forEach((l) => l.release())
  const s = pool.stats()
  assert.equal(s.inUse, 0)
  assertConsistent(s)
}

/** Polls `predicate` until it returns a truthy value or `timeout` ms pass; returns that value. */
async function waitFor(predicate, what, timeout = 5000) {
  const deadline = performance.now() + timeout
  for (;;) {
    const value = predicate()
    if (value) return value
    if (performance.now() > deadline) assert.fail(`timed out waiting for ${what}`)
    await sleep(2)
  }
}

module.exports = { throwsCode, rejectsCode, waitFor, assertConsistent, assertAllFreeOnce }
