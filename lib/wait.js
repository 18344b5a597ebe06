'use strict'

// Spinning and parking. Before parking, a blocking call polls one shared word with `Atomics.load`
// (a few ns, no native call, no write to the contended line) until it says the call may now
// succeed, then retries.
//
// A waiter registers in a waiter count, reads the epoch word, retries, and parks on the epoch only
// if the retry failed. The native side bumps the epoch and reports "wake" whenever it frees a
// resource while the waiter count is non-zero; the JS caller then notifies. Both sides are
// sequentially consistent, so either the retry sees the resource or the freeing side sees the
// waiter: no wake-up is lost. Every park is bounded by PARK_SLICE_MS as a backstop.

const diagnostics = require('node:diagnostics_channel')
const { binding, OFFSETS } = require('./native.js')
const { reclass, abortError, timeoutError } = require('./errors.js')

/** How long one park lasts at most before re-checking. Bounds the delay when a wake-up cannot be
 * delivered, e.g. a worker torn down while its slots are reclaimed (no JS runs then to notify). */
const PARK_SLICE_MS = 50

// ---- spinning -----------------------------------------------------------------------------------

const FREE_HEAD = OFFSETS.freeHead >>> 2 // low half of the tagged head: the first free slot
const FREE_EMPTY = OFFSETS.freeEmpty // that low half when the list is empty
const ENQUEUE = OFFSETS.enqueue >>> 2 // low halves of the ring positions
const DEQUEUE = OFFSETS.dequeue >>> 2
const CELLS = OFFSETS.cells >>> 2 // ring cells: one u64 each (kind, lap tag, slot, generation)
const CELL_WORDS = OFFSETS.cellSize >>> 2
// An empty cell holds nothing but the tag of its position's lap (lap modulo cellLapTags, at bit
// cellLapShift of the cell); anything else in its high half means it was filled.
const CELL_TAG_MASK = OFFSETS.cellLapTags - 1
const CELL_TAG_SHIFT = OFFSETS.cellLapShift - 32

/** Polls until the free list is non-empty, at most `spin` times. */
function spinForFree(i32, spin) {
  for (let i = 0; i < spin; i++) {
    if (Atomics.load(i32, FREE_HEAD) !== FREE_EMPTY) return i + 1
  }
  return spin
}

/** Index of the high half of the ring cell of position `pos` (the low half of a position). */
function cellHigh(pos, mask) {
  return CELLS + (pos & mask) * CELL_WORDS + 1
}

/** The high half of that cell while it is empty for the position's lap. */
function emptyCell(pos, mask) {
  // mask = capacity - 1, so the lap is pos >>> log2(capacity) = pos >>> (32 - clz32(mask)).
  return ((pos >>> (32 - Math.clz32(mask))) & CELL_TAG_MASK) << CELL_TAG_SHIFT
}

/**
 * Polls until the cell at the dequeue position is no longer empty for its lap (a sender filled
 * it, or it holds something a receive steps over), at most `spin` times. Polling the cell rather
 * than the enqueue word means the receiver only pulls in the cache line it has to read anyway.
 * The closed flag (bit 63 of the enqueue word: the sign of its high half) and the dequeue
 * position are checked every 64 polls.
 */
function spinForSent(i32, mask, spin) {
  const dequeued = Atomics.load(i32, DEQUEUE)
  const cell = cellHigh(dequeued, mask)
  const empty = emptyCell(dequeued, mask)
  for (let i = 0; i < spin; i++) {
    if (Atomics.load(i32, cell) !== empty) return i + 1
    if ((i & 63) === 63 && (Atomics.load(i32, ENQUEUE + 1) < 0 || Atomics.load(i32, DEQUEUE) !== dequeued)) return i + 1
  }
  return spin
}

/** Whether the cell at the dequeue position holds anything: sent, being sent, or to step over. */
function filledAtDequeue(i32, mask) {
  const dequeued = Atomics.load(i32, DEQUEUE)
  return Atomics.load(i32, cellHigh(dequeued, mask)) !== emptyCell(dequeued, mask)
}

/** Polls until the dequeue position moves away from `dequeued` (room was made), at most `spin` times. */
function spinForRoom(i32, dequeued, spin) {
  for (let i = 0; i < spin; i++) {
    if (Atomics.load(i32, DEQUEUE) !== dequeued || Atomics.load(i32, ENQUEUE + 1) < 0) return i + 1
  }
  return spin
}

/** True once a channel is closed: the closed flag is bit 63 of the enqueue word. */
function isClosed(i32) {
  return Atomics.load(i32, ENQUEUE + 1) < 0
}

// ---- wait sites ---------------------------------------------------------------------------------

/** Wakes every thread parked on an epoch word (stale async waiters may be among them, so waking
 * just one could wake the wrong one). */
function wakeAll(i32, epochIndex) {
  Atomics.notify(i32, epochIndex)
}

/**
 * Where a kind of wait parks: the epoch word, and how to register a waiter. Registration goes
 * through the native side, which remembers this thread's registered waits so that a thread torn
 * down mid-wait (no JS runs then) does not leave the shared waiter count raised.
 *
 * Built once per pool or channel from one spec object:
 * `{ i32, epochOffset, register(delta), noteWait(), kind, uid, ref(), site, idle() }`:
 * the region's words, the byte offset of the epoch word, how to (un)register a waiter and count a
 * wait, what diagnostics report ('pool' or 'channel' and its random uid); file regions also use
 * `ref` (the attachment's current registry id), `site` (the native wait-site number) and `idle`
 * (called when a park slice ran out without a wake-up; optional).
 */
class WaitSite {
  constructor(spec) {
    this.i32 = spec.i32
    this.epochIndex = spec.epochOffset >>> 2
    this.register = spec.register
    this.noteWait = spec.noteWait
    this.kind = spec.kind
    this.uid = spec.uid
  }

  /** Blocks while the epoch word still holds `epoch`, at most `ms`; true if the time ran out. */
  sleep(epoch, ms) {
    return Atomics.wait(this.i32, this.epochIndex, epoch, ms) === 'timed-out'
  }

  /** A promise settled once the epoch word no longer holds `epoch` or after about `ms` (the
   * caller also bounds it with a timer), or undefined when the word already moved on. */
  changed(epoch, ms) {
    const waited = Atomics.waitAsync(this.i32, this.epochIndex, epoch, ms)
    return waited.async ? waited.value : undefined
  }

  /** Called after a park slice ran out without a wake-up. */
  idle() {}
}

/**
 * Where a wait parks on a file-backed region: a futex on the epoch word, which wakes across
 * processes. Blocking waits sleep in the kernel; async waits arm a native watcher thread of this
 * attachment, which calls back once the word moves on.
 */
class FileWaitSite extends WaitSite {
  constructor(spec) {
    super(spec)
    this.ref = spec.ref
    this.site = spec.site
    this.onIdle = spec.idle
    this.watching = false
    /** The async wait armed natively: `{ epoch, promise, resolve }`. */
    this.pending = undefined
  }

  sleep(epoch, ms) {
    const started = performance.now()
    try {
      binding.waitFile(this.ref(), this.site, epoch, ms)
    } catch (error) {
      throw reclass(error)
    }
    return performance.now() - started >= ms
  }

  changed(epoch, _ms) {
    if (Atomics.load(this.i32, this.epochIndex) !== epoch) return undefined
    const ref = this.ref()
    try {
      if (!this.watching) {
        binding.watchFile(ref, this.site, () => this.#fire())
        this.watching = true
      }
      const pending = this.pending
      if (pending !== undefined) {
        if (pending.epoch === epoch) return pending.promise
        // The word moved on since that wait was armed: its waiters may retry now.
        this.#fire()
      }
      let resolve
      const promise = new Promise((r) => { resolve = r })
      this.pending = { epoch, promise, resolve }
      binding.armFile(ref, this.site, epoch)
      return promise
    } catch (error) {
      throw reclass(error)
    }
  }

  #fire() {
    const pending = this.pending
    this.pending = undefined
    if (pending !== undefined) pending.resolve()
  }

  idle() {
    if (this.onIdle !== undefined) this.onIdle()
  }
}

// ---- parking ------------------------------------------------------------------------------------

/**
 * `diagnostics_channel` named 'sabpool:wait': one message per wait that had to go past the fast
 * path, `{ kind, id, op, ms, outcome }` (id: the pool's or channel's uid; outcome: 'ok',
 * 'timeout', 'abort' or 'error'). Publishing costs nothing while nobody subscribes.
 */
const waitChannel = diagnostics.channel('sabpool:wait')

function publishWait(site, op, started, error) {
  const outcome = error === undefined ? 'ok'
    : error.code === 'ERR_SABPOOL_TIMEOUT' ? 'timeout'
      : error.name === 'AbortError' ? 'abort' : 'error'
  waitChannel.publish({ kind: site.kind, id: site.uid, op, ms: performance.now() - started, outcome })
}

/**
 * Blocking wait (workers). `attempt` returns a result, or undefined to keep waiting.
 * Throws ERR_SABPOOL_TIMEOUT at the deadline.
 */
function parkSync(site, attempt, timeout, what) {
  if (!waitChannel.hasSubscribers) return parkSyncLoop(site, attempt, timeout, what)
  const started = performance.now()
  try {
    const result = parkSyncLoop(site, attempt, timeout, what)
    publishWait(site, what, started)
    return result
  } catch (error) {
    publishWait(site, what, started, error)
    throw error
  }
}

/** How long the next park may last; throws ERR_SABPOOL_TIMEOUT once the deadline has passed.
 * Counts the park as a wait. */
function nextSlice(site, deadline, timeout, what) {
  const remaining = deadline - performance.now()
  if (remaining <= 0) throw timeoutError(what, timeout)
  site.noteWait()
  return Math.min(remaining, PARK_SLICE_MS)
}

function parkSyncLoop(site, attempt, timeout, what) {
  const deadline = performance.now() + timeout
  for (;;) {
    site.register(1)
    try {
      const epoch = Atomics.load(site.i32, site.epochIndex)
      const result = attempt()
      if (result !== undefined) return result
      if (site.sleep(epoch, nextSlice(site, deadline, timeout, what))) site.idle()
    } finally {
      site.register(-1)
    }
  }
}

/**
 * Non-blocking wait (any thread). While a park is pending, a ref'd timer keeps the event loop
 * alive: `Atomics.waitAsync` alone does not (nodejs/node#44729).
 */
async function parkAsync(site, attempt, timeout, signal, what) {
  if (!waitChannel.hasSubscribers) return parkAsyncLoop(site, attempt, timeout, signal, what)
  const started = performance.now()
  try {
    const result = await parkAsyncLoop(site, attempt, timeout, signal, what)
    publishWait(site, what, started)
    return result
  } catch (error) {
    publishWait(site, what, started, error)
    throw error
  }
}

const SLICE_ENDED = Symbol('slice ended')

/**
 * `signal` is undefined or what `checkSignal` returned (`{ target, aborted, add, remove }`): its
 * abort listener is added once for the whole wait and removed when the wait settles. Every park
 * registers as a waiter and withdraws in a `finally` that runs no user code, so no outcome (a
 * result, a timeout, an abort, a throwing signal method) leaves the waiter count raised.
 */
async function parkAsyncLoop(site, attempt, timeout, signal, what) {
  const deadline = performance.now() + timeout
  /** Set by the abort listener; `interrupt` rejects the park in progress, if any. */
  let abortedError
  let interrupt
  const onAbort = signal === undefined ? undefined : () => {
    abortedError ??= abortError(signal.target)
    if (interrupt !== undefined) interrupt(abortedError)
  }
  let listening = false
  let result
  try {
    if (signal !== undefined) {
      Reflect.apply(signal.add, signal.target, ['abort', onAbort, { once: true }])
      listening = true
    }
    for (;;) {
      if (abortedError !== undefined) throw abortedError
      site.register(1)
      // The slice timer also keeps the event loop alive while the park is pending.
      let slice
      try {
        const epoch = Atomics.load(site.i32, site.epochIndex)
        result = attempt()
        if (result !== undefined) return result
        const ms = nextSlice(site, deadline, timeout, what)
        const changed = site.changed(epoch, ms)
        if (changed !== undefined) {
          const outcome = await new Promise((resolve, reject) => {
            slice = setTimeout(resolve, ms, SLICE_ENDED)
            interrupt = reject
            changed.then(resolve)
          })
          if (outcome === SLICE_ENDED) site.idle()
        }
      } finally {
        interrupt = undefined
        if (slice !== undefined) clearTimeout(slice)
        site.register(-1)
      }
    }
  } finally {
    if (listening) {
      try {
        Reflect.apply(signal.remove, signal.target, ['abort', onAbort])
      } catch (error) {
        // A wait that got its lease returns it (losing it to the signal's error would leak the
        // slot); otherwise the signal's own error is what the caller sees.
        if (result === undefined) throw error // eslint-disable-line no-unsafe-finally
      }
    }
  }
}

module.exports = {
  DEQUEUE,
  spinForFree,
  spinForSent,
  filledAtDequeue,
  spinForRoom,
  isClosed,
  wakeAll,
  WaitSite,
  FileWaitSite,
  parkSync,
  parkAsync,
}
