'use strict'

// sabpool/piscina: piscina tasks that carry a lease. The main side hands the slot off and posts
// only its ticket through `piscina.run`; the worker side adopts it, runs the user's function and
// hands the reply slot back the same way. piscina itself is never required here: it stays the
// user's dependency, and runLease takes anything with its `run(task, options)`.
//
// Every failure gives the slots back. The hard case is a run piscina rejects while the worker is
// still on it (an abort terminates that worker; destroy() and a crashing thread drop its reply):
// a reply ticket posted then reaches nobody, and a slot in flight has no owner to reclaim it when
// its thread dies. So each run has a cell, a small SharedArrayBuffer of its own, through which
// the two sides settle who takes the reply: the worker announces the slot and generation it will
// hand off before doing so (REPLYING), and runLease, giving up, marks the cell GIVEN_UP. Whoever
// comes second knows what to do: a worker finding GIVEN_UP releases its reply instead of handing
// it off; runLease finding REPLYING adopts that reply once it is in flight and releases it. The
// cell also carries a failing task's error `code`, which piscina's structured clone drops.

const { makeError, AbortError, describe } = require('./errors.js')
const { checkOptionsObject } = require('./options.js')
const { isLease } = require('./lease.js')
const { isPool } = require('./pool.js')

/** `kind` of the messages runLease posts and leaseTask functions take. */
const TASK_KIND = 'sabpool.leaseTask'

// The cell: Int32 words, then the code's bytes.
const STATE = 0
const REPLY_SLOT = 1
const REPLY_GENERATION = 2
const CODE_LENGTH = 3
const MESSAGE_HASH = 4
const CELL_WORDS = 8
const CODE_OFFSET = CELL_WORDS * 4
/** Longest error code the cell carries (sabpool's are under 40 characters). */
const MAX_CODE = 64
const CELL_BYTES = CODE_OFFSET + MAX_CODE

// Values of the cell's STATE word.
/** Nothing settled yet. */
const OPEN = 0
/** runLease has settled with an error: the worker must not hand a reply off. */
const GIVEN_UP = 1
/** The worker will hand off (or has handed off) the reply REPLY_SLOT at REPLY_GENERATION. */
const REPLYING = 2
/** The worker released what it held and failed; CODE_LENGTH and MESSAGE_HASH describe the error. */
const FAILED = 3

/** Longest pause between two looks for a reply whose worker is still handing it off or exiting. */
const MAX_COLLECT_DELAY_MS = 100

/** A 32-bit FNV-1a hash of a string's UTF-16 units: tells the error a cell describes from
 * another (say piscina's AbortError) that rejected the same run. */
function hash(text) {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193)
  return h | 0
}

/** The message of an error-like value, or '' (what a thrown non-object hashes as). */
function messageOf(error) {
  if (error === null || typeof error !== 'object') return ''
  const message = error.message
  return typeof message === 'string' ? message : ''
}

/** A `code` the cell can carry: 1 to MAX_CODE printable ASCII characters. */
function isCarriedCode(code) {
  return typeof code === 'string' && code.length > 0 && code.length <= MAX_CODE && /^[\x20-\x7e]+$/.test(code)
}

// ---- main side ----------------------------------------------------------------------------------

/**
 * Runs a piscina task on `lease`'s slot: hands the lease off, posts its ticket (with `task`) and
 * resolves with the reply as a Lease this thread owns. Rejects with the task's error otherwise,
 * every slot of the run back in the pool (or on its way there: see the README of
 * examples/piscina). Arguments it refuses leave the lease untouched and still the caller's.
 */
async function runLease(piscina, pool, lease, options) {
  const run = piscina !== null && typeof piscina === 'object' ? piscina.run : undefined
  if (typeof run !== 'function') {
    throw makeError('ERR_INVALID_ARG_TYPE', `runLease needs a Piscina (an object with a run() method), got ${describe(piscina)}`)
  }
  if (!isPool(pool)) throw makeError('ERR_INVALID_ARG_TYPE', `runLease needs the SharedPool of the lease, got ${describe(pool)}`)
  if (!isLease(lease)) throw makeError('ERR_INVALID_ARG_TYPE', `runLease needs a Lease, got ${describe(lease)}`)
  // Each option is read once; everything but task and length is piscina's.
  const { task, length: lengthOption, ...runOptions } = checkOptionsObject('options', options)
  const state = pool._state
  if (lease._poolUid !== state.uid) {
    throw makeError('ERR_SABPOOL_BAD_TICKET', 'runLease: this lease belongs to another pool than the one given')
  }
  if (!lease.owned) {
    throw makeError('ERR_SABPOOL_STALE_LEASE', `runLease: this lease is no longer owned (slot ${lease.slot})`)
  }
  if (lengthOption !== undefined) lease.length = lengthOption // checked by the setter, against the slot size

  const cell = new Int32Array(new SharedArrayBuffer(CELL_BYTES))
  const request = lease.handoff()
  let result
  try {
    result = await run.call(piscina, { kind: TASK_KIND, ticket: request, task, cell }, runOptions)
  } catch (error) {
    throw giveUp(pool, request, cell, error)
  }
  try {
    return pool.adopt(result)
  } catch (cause) {
    throw giveUp(pool, request, cell, makeError('ERR_SABPOOL_BAD_REPLY',
      `runLease: piscina.run resolved to ${describe(result)}, not a reply ticket of this pool (is the task function made with leaseTask()?)`, cause))
  }
}

/**
 * The run failed with `error`: gets back every slot still to be got back, gives `error` the code
 * the worker's failure had, and returns it.
 */
function giveUp(pool, request, cell, error) {
  const settled = Atomics.compareExchange(cell, STATE, OPEN, GIVEN_UP)
  // A request no worker adopted is still in flight: ours to release. (Adopted, it is the worker's
  // to release, or its thread's teardown's.)
  adoptAndRelease(pool, request)
  if (settled === FAILED) restoreCode(cell, error)
  else if (settled === REPLYING) collectReply(pool, cell)
  return error
}

/** Adopts and releases a slot in flight; false if the ticket adopts nothing (now or ever). */
function adoptAndRelease(pool, ticket) {
  let lease
  try {
    lease = pool.adopt(ticket)
  } catch {
    // Stale (someone else has the slot, or it never left its holder), or the pool was detached
    // here: nothing of ours to release. The run's own error is what the caller hears about.
    return false
  }
  lease.release()
  return true
}

/**
 * The worker announced a reply piscina will never deliver. Adopts and releases it once it is in
 * flight; stops when its slot is held at the generation before the handoff no more (the worker's
 * thread ended before the handoff, and its teardown returned the slot). Worker threads hand off
 * within microseconds of announcing, and a terminated one exits within milliseconds, so this
 * looks again on a short, growing, unref'd timer and never holds up the rejection.
 */
function collectReply(pool, cell) {
  const state = pool._state
  const slot = Atomics.load(cell, REPLY_SLOT)
  const generation = Atomics.load(cell, REPLY_GENERATION) >>> 0
  // The cell is shared memory a worker wrote: only a slot of this pool is looked at.
  if (slot < 0 || slot >= state.slots) return
  const ticket = { pool: state.uid, slot, generation }
  const before = (generation - 1) >>> 0
  let delay = 0
  const look = () => {
    if (adoptAndRelease(pool, ticket)) return
    // Not held at `before` any more, yet not adopted: either it was handed off since the try
    // above (one more try gets it) or it went back to the pool without a handoff.
    if (!state.heldAt(slot, before)) {
      adoptAndRelease(pool, ticket)
      return
    }
    delay = Math.min(MAX_COLLECT_DELAY_MS, delay * 2 + 1)
    setTimeout(look, delay).unref()
  }
  look()
}

/** Gives a cloned error the `code` the worker's error had (piscina's structured clone drops it),
 * if it is that error (same message) and has no code of its own. */
function restoreCode(cell, error) {
  if (error === null || typeof error !== 'object' || error.code !== undefined) return
  if (Atomics.load(cell, MESSAGE_HASH) !== hash(messageOf(error))) return
  const length = Atomics.load(cell, CODE_LENGTH)
  if (length <= 0 || length > MAX_CODE) return
  const bytes = new Uint8Array(cell.buffer, CODE_OFFSET, length)
  const code = String.fromCharCode(...bytes)
  if (!isCarriedCode(code)) return
  try {
    error.code = code
  } catch {
    // a frozen error keeps what it has
  }
}

// ---- worker side --------------------------------------------------------------------------------

/** The fields of a message runLease posted, checked: `{ ticket, task, cell }`. */
function readTask(message) {
  const kind = message !== null && typeof message === 'object' ? message.kind : undefined
  if (kind !== TASK_KIND) {
    throw makeError('ERR_INVALID_ARG_TYPE', `a leaseTask function takes the tasks runLease() posts, got ${describe(message)}`)
  }
  const cell = message.cell
  if (!(cell instanceof Int32Array) || !(cell.buffer instanceof SharedArrayBuffer) || cell.byteOffset !== 0 || cell.buffer.byteLength !== CELL_BYTES) {
    throw makeError('ERR_INVALID_ARG_TYPE', 'a leaseTask function takes the tasks runLease() posts, got one without its cell')
  }
  return { ticket: message.ticket, task: message.task, cell }
}

/** Records a failure in the cell (unless runLease has given up already) and returns `error`. */
function failed(cell, error) {
  const code = error !== null && typeof error === 'object' ? error.code : undefined
  if (isCarriedCode(code)) {
    const bytes = new Uint8Array(cell.buffer, CODE_OFFSET, code.length)
    for (let i = 0; i < code.length; i++) Atomics.store(bytes, i, code.charCodeAt(i))
    Atomics.store(cell, CODE_LENGTH, code.length)
  }
  Atomics.store(cell, MESSAGE_HASH, hash(messageOf(error)))
  Atomics.compareExchange(cell, STATE, OPEN, FAILED)
  return error
}

/** Releases `lease` if this thread still owns it. Never throws: it runs on failure paths, whose
 * own error is the one to report (a release fails only once the pool was detached here, which
 * returned the slot already). */
function releaseIfOwned(lease) {
  try {
    if (lease.owned) lease.release()
  } catch {
    // detached: nothing left to release
  }
}

/** A task whose caller gave up before it started or replied: nobody is waiting for its result. */
function givenUp() {
  return new AbortError('runLease gave up on this task (aborted, or its pool of threads destroyed)')
}

/**
 * The reply for `value`, what the user's function returned: the request lease with a new length,
 * or as it is, or another lease of the pool (the request slot is then released). Any other value
 * releases the slots and throws ERR_SABPOOL_BAD_REPLY.
 */
function replyLease(pool, lease, value) {
  let problem
  if (value === undefined || typeof value === 'number') {
    if (!lease.owned) {
      problem = `returned ${value === undefined ? 'undefined' : 'a length'} (a reply in the request slot), but the request lease is no longer owned`
    } else if (value !== undefined && (!Number.isInteger(value) || value < 0 || value > pool.slotSize)) {
      problem = `returned the length ${value}, not an integer from 0 to the slot size ${pool.slotSize}`
    } else {
      if (value !== undefined) lease.length = value
      return lease
    }
  } else if (isLease(value)) {
    if (!value.owned) {
      problem = `returned a Lease this thread no longer owns (slot ${value.slot})`
    } else if (value._poolUid !== pool.id) {
      problem = 'returned a Lease of another pool'
    } else {
      if (value !== lease) releaseIfOwned(lease)
      return value
    }
    releaseIfOwned(value)
  } else {
    problem = `returned ${describe(value)}`
  }
  releaseIfOwned(lease)
  throw makeError('ERR_SABPOOL_BAD_REPLY', `the leaseTask function ${problem}; it must return a length, undefined or a Lease of the pool it owns`)
}

/** Announces the reply in the cell and hands it off; returns its ticket, piscina's result. */
function handOffReply(reply, cell) {
  Atomics.store(cell, REPLY_SLOT, reply.slot)
  // A handoff moves the generation on by one: the ticket will name this one.
  Atomics.store(cell, REPLY_GENERATION, reply.generation + 1)
  if (Atomics.compareExchange(cell, STATE, OPEN, REPLYING) !== OPEN) {
    releaseIfOwned(reply)
    throw givenUp()
  }
  try {
    return reply.handoff()
  } catch (error) {
    // Owned a moment ago, so only a detached pool gets here (its slots are back already); should
    // the slot still be ours, it must not stay held, or runLease would wait for it in vain.
    releaseIfOwned(reply)
    throw error
  }
}

/**
 * Wraps `fn(lease, task)` into a piscina task function for the tasks runLease posts: adopts the
 * request slot from `pool` (attached once per piscina thread), calls `fn`, and hands the reply
 * back. `fn` returns (or resolves to) a length, undefined or another Lease of the pool; a throw
 * or rejection releases the request lease, if still owned, and fails the run with that error.
 */
function leaseTask(pool, fn) {
  if (!isPool(pool)) throw makeError('ERR_INVALID_ARG_TYPE', `leaseTask needs the SharedPool its tasks' leases come from, got ${describe(pool)}`)
  if (typeof fn !== 'function') throw makeError('ERR_INVALID_ARG_TYPE', `leaseTask needs a function (lease, task) => reply, got ${describe(fn)}`)
  const reply = (lease, value, cell) => {
    try {
      return handOffReply(replyLease(pool, lease, value), cell)
    } catch (error) {
      throw failed(cell, error)
    }
  }
  return function runLeaseTask(message) {
    const { ticket, task, cell } = readTask(message)
    if (Atomics.load(cell, STATE) !== OPEN) throw givenUp()
    let lease
    let value
    try {
      lease = pool.adopt(ticket)
    } catch (error) {
      throw failed(cell, error)
    }
    try {
      value = fn(lease, task)
    } catch (error) {
      releaseIfOwned(lease)
      throw failed(cell, error)
    }
    if (value !== null && typeof value === 'object' && typeof value.then === 'function') {
      return Promise.resolve(value).then((resolved) => reply(lease, resolved, cell), (error) => {
        releaseIfOwned(lease)
        throw failed(cell, error)
      })
    }
    return reply(lease, value, cell)
  }
}

module.exports = { runLease, leaseTask }
