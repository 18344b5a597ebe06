'use strict'
// Assertions, polling and fixture workers shared by the JS test files (not a test file itself).
const assert = require('node:assert/strict')
const path = require('node:path')
const { Worker } = require('node:worker_threads')
const { setTimeout: sleep } = require('node:timers/promises')

/** Where the worker scripts of the tests live. */
const FIXTURES = path.join(__dirname, 'fixtures')

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

/** Workers started by `spawnWorker` that have not exited yet. */
const liveWorkers = new Set()

/**
 * Starts the fixture worker `file` (a name in __test__/fixtures/) with `workerData`. `options`
 * are passed to the Worker constructor (`transferList`, `resourceLimits`, ...), except
 * `nextTimeout`: how long `next(type)` waits by default, in ms (10 s unless given).
 *
 * Messages are queued so none is missed. Returns { worker, errors (its 'error' events), exited
 * (resolves with the exit code), queue (messages not taken yet), post(msg), has(type) (a message
 * of `type` is queued), next(type, timeout) (the next message of `type`; rejects if the worker
 * exits first or nothing comes within `timeout` ms) }.
 */
function spawnWorker(file, workerData, options = {}) {
  const { nextTimeout = 10_000, ...workerOptions } = options
  const worker = new Worker(path.join(FIXTURES, file), { ...workerOptions, workerData })
  liveWorkers.add(worker)
  const queue = []
  const waiting = []
  const errors = []
  let exitCode
  worker.on('message', (msg) => {
    const i = waiting.findIndex((w) => w.type === msg.type)
    if (i >= 0) waiting.splice(i, 1)[0].resolve(msg)
    else queue.push(msg)
  })
  worker.on('error', (err) => errors.push(err))
  const exited = new Promise((resolve) => {
    worker.once('exit', (code) => {
      exitCode = code
      liveWorkers.delete(worker)
      for (const w of waiting.splice(0)) {
        w.reject(new Error(`worker ${file} exited (code ${code}) before sending '${w.type}'${errors.length ? `: ${errors[0].stack}` : ''}`))
      }
      resolve(code)
    })
  })
  return {
    worker,
    errors,
    exited,
    queue,
    post: (msg) => worker.postMessage(msg),
    /** True if a message of `type` has arrived and not been taken yet. */
    has: (type) => queue.some((m) => m.type === type),
    /** Next message of `type`. */
    next(type, timeout = nextTimeout) {
      const i = queue.findIndex((m) => m.type === type)
      if (i >= 0) return Promise.resolve(queue.splice(i, 1)[0])
      if (exitCode !== undefined) return Promise.reject(new Error(`worker ${file} already exited (code ${exitCode})`))
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no '${type}' message from ${file} within ${timeout} ms`)), timeout)
        waiting.push({
          type,
          resolve: (m) => { clearTimeout(timer); resolve(m) },
          reject: (e) => { clearTimeout(timer); reject(e) },
        })
      })
    },
  }
}

/** Terminates every worker `spawnWorker` started that is still running (for afterEach: a failed
 * test must not leave workers running into the next one). */
async function terminateWorkers() {
  await Promise.all([...liveWorkers].map((w) => w.terminate()))
}

/** Channels made by tests, closed after each test so that no wait of a failed test lingers (a
 * pending recv() keeps the process alive by design). */
const openChannels = new Set()

/** Remembers `channel` for `closeChannels()`; returns it. */
function trackChannel(channel) {
  openChannels.add(channel)
  return channel
}

/** Closes every channel `trackChannel` remembered (for afterEach). */
function closeChannels() {
  for (const channel of openChannels) {
    try { channel.close() } catch { /* detached already: nothing to close */ }
  }
  openChannels.clear()
}

module.exports = {
  FIXTURES,
  trackChannel,
  closeChannels,
  throwsCode,
  rejectsCode,
  waitFor,
  assertConsistent,
  assertAllFreeOnce,
  spawnWorker,
  terminateWorkers,
}
