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
//
// In-process, a freed resource wakes one waiter, not all of them: `Atomics.notify(word, index, 1)`
// per item. A waiter that took a wake-up and then leaves without retrying (aborted, or an
// `Atomics.waitAsync` whose park already ended) passes it on to the next one (`forward`), so a
// wake-up meant for a waiter that can use it is never swallowed.
//
// How long to spin depends on how recent waits ended (SpinPolicy): a thread just woken from a park
// is likely running on its waker's CPU, so it does not spin there before parking again; an async
// wait (the event loop's thread) spins for a few microseconds only while such spins have been
// paying off.

const diagnostics = require('node:diagnostics_channel')
const { binding, OFFSETS } = require('./native.js')
const { makeError, reclass, abortError, timeoutError } = require('./errors.js')

/** How long one park lasts at most before re-checking. Bounds the delay when a wake-up cannot be
 * delivered, e.g. a worker torn down while its slots are reclaimed (no JS runs then to notify). */
const PARK_SLICE_MS = parkSliceMs(process.env.SABPOOL_PARK_SLICE_MS)

/** 50 ms, or the integer milliseconds (1 to 3 600 000) of `SABPOOL_PARK_SLICE_MS`: tests set it
 * high so that a lost wake-up shows as a stall instead of a 50 ms delay. */
function parkSliceMs(setting) {
  const ms = Number(setting)
  return Number.isInteger(ms) && ms >= 1 && ms <= 3_600_000 ? ms : 50
}

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

/** Wakes up to `count` threads parked on an epoch word of an in-process region: one per item
 * made available. A woken waiter that cannot use its wake-up passes it on (see `forward`). */
function wake(i32, epochIndex, count) {
  Atomics.notify(i32, epochIndex, count)
}

/** Wakes every thread parked on an epoch word (a channel closing: every waiter must learn it). */
function wakeAll(i32, epochIndex) {
  Atomics.notify(i32, epochIndex)
}

// ---- adaptive spinning --------------------------------------------------------------------------

/** Polls a blocking call makes right after a call of this thread that ended in a park: a woken
 * thread often runs on its waker's CPU, and spinning there only delays the waker (measured: the
 * notifying call takes 38 µs with 4000 polls, 14 µs with 400). Enough for a peer that answers at
 * once on the other CPU. */
const WOKEN_SPIN = 256

/** How long an async wait may spin on the event loop's thread before it parks. */
const ASYNC_SPIN_MS = 0.01
/** Polls between two clock reads while spinning on the event loop's thread. */
const ASYNC_SPIN_CHUNK = 64
/** Async spin credit: a spin that found the resource adds 2, one that ran out takes 1; no spin at
 * 0 (then one probe spin every ASYNC_PROBE_EVERY waits, so a peer that became quick is noticed). */
const ASYNC_CREDIT_MAX = 8
const ASYNC_PROBE_EVERY = 16

/**
 * How one thread spins at one wait site, from how its recent waits there ended. Per thread and
 * site, plain fields: no shared state.
 */
class SpinPolicy {
  constructor() {
    /** The last blocking call here ended in a park (it was woken, or timed out). */
    this.parked = false
    this.credit = ASYNC_CREDIT_MAX
    this.skipped = 0
  }

  /** The spin budget (polls) of a blocking call, given the caller's `spin`. */
  budget(spin) {
    return this.parked && spin > WOKEN_SPIN ? WOKEN_SPIN : spin
  }

  /** Whether an async wait should spin before parking now. */
  spinAsync() {
    if (this.credit > 0) return true
    if (++this.skipped < ASYNC_PROBE_EVERY) return false
    this.skipped = 0
    return true
  }

  /** An async spin found the resource (`true`) or ran out (`false`). */
  spun(found) {
    this.credit = found ? Math.min(ASYNC_CREDIT_MAX, this.credit + 2) : Math.max(0, this.credit - 1)
  }
}

/**
 * Spins on this thread for at most ASYNC_SPIN_MS: `poll(budget)` polls up to `budget` times and
 * returns how many polls it made (fewer than `budget`, or exactly `budget` on the last, when it
 * saw the condition). Returns true once the condition was seen.
 */
function spinBriefly(poll) {
  const end = performance.now() + ASYNC_SPIN_MS
  do {
    if (poll(ASYNC_SPIN_CHUNK) < ASYNC_SPIN_CHUNK) return true
  } while (performance.now() < end)
  return false
}

/**
 * Where a kind of wait parks: the epoch word, and how to register a waiter. Registration goes
 * through the native side, which remembers this thread's registered waits so that a thread torn
 * down mid-wait (no JS runs then) does not leave the shared waiter count raised.
 *
 * Built once per pool, channel or table wait word from one spec object:
 * `{ i32, epochOffset, register(delta), noteWait(), kind, uid, ref(), site, idle() }`:
 * the region's words, the byte offset of the epoch word, how to (un)register a waiter and count a
 * wait, what diagnostics report ('pool', 'channel' or 'table' and its random uid); file regions
 * also use `ref` (the attachment's current registry id), `site` (the native wait-site number) and
 * `idle` (called when a park slice ran out without a wake-up; optional).
 */
class WaitSite {
  constructor(spec) {
    this.i32 = spec.i32
    this.epochIndex = spec.epochOffset >>> 2
    this.register = spec.register
    this.noteWait = spec.noteWait
    this.kind = spec.kind
    this.uid = spec.uid
    this.spin = new SpinPolicy()
    /** `changed` promises settle by themselves within their `ms` (V8's `waitAsync` timeout). */
    this.settlesItself = true
  }

  /** Passes on a wake-up this thread took but will not use, to the next parked waiter. */
  forward() {
    Atomics.notify(this.i32, this.epochIndex, 1)
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
 * Where a wait parks on a file-backed region: a futex on the epoch word (for a table, one of its
 * wait words: `site` SITE_TABLE_WAIT + k, word TABLE_WAIT_WORD + k), which wakes across
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
    /** The watcher's promise settles on a wake-up only: the caller bounds the park with a timer. */
    this.settlesItself = false
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

  /** Futex wake-ups of a file-backed region wake every waiter: nothing to pass on. */
  forward() {}

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

// ---- workers let go of while parked -------------------------------------------------------------
//
// A worker whose parent called `worker.terminate()` must not stay parked: Node and Bun stop its
// JavaScript right away (its env cleanup then reclaims its leases), but Deno lets it run on until
// it returns to its event loop, and a blocking wait without a timeout never does. So a worker
// registers its threadId natively before its first blocking park; every thread that loaded
// sabpool marks the workers it starts once they emit 'exit' (Deno emits it from terminate(), while
// the worker still runs); and a marked worker's blocking wait throws ERR_SABPOOL_TERMINATED
// before its next park slice, which unwinds it to the event loop. Where the parent's 'exit' comes
// after the worker's teardown (Node), the mark finds nothing registered and does nothing.
// The parent must have loaded sabpool before it created the worker (the 'worker' event is how it
// sees new workers).

process.on('worker', (worker) => {
  const id = worker.threadId // read now: Node answers -1 once the worker has exited
  if (Number.isSafeInteger(id) && id > 0) worker.once('exit', () => binding.threadStopped(id))
})

/** 0 until this thread's first blocking park; then its threadId, or -1 on the main thread. */
let watchedAs = 0

/** Throws ERR_SABPOOL_TERMINATED if this worker's parent has let it go. */
function checkStopping(what) {
  if (watchedAs === 0) {
    const { threadId } = require('node:worker_threads')
    watchedAs = Number.isSafeInteger(threadId) && threadId > 0 ? threadId : -1
    if (watchedAs > 0) binding.threadWatch(watchedAs)
  }
  if (watchedAs > 0 && binding.threadStopping()) throw terminatedError(what)
}

function terminatedError(what) {
  return makeError('ERR_SABPOOL_TERMINATED', `${what}: this worker was terminated while it waited ` +
    '(its JavaScript kept running, as a terminated Deno worker does); returning to its event loop ends it ' +
    'and gives its leases back')
}

/**
 * A wait that took a wake-up (`woken`) and leaves by throwing, without using it, passes it on.
 * Marks the site's spin policy: the call ended in a park.
 */
function parkSyncLoop(site, attempt, timeout, what) {
  const deadline = performance.now() + timeout
  let woken = false
  try {
    for (;;) {
      site.register(1)
      try {
        const epoch = Atomics.load(site.i32, site.epochIndex)
        const result = attempt()
        if (result !== undefined) return result
        woken = false
        checkStopping(what)
        const timedOut = site.sleep(epoch, nextSlice(site, deadline, timeout, what))
        site.spin.parked = true
        if (timedOut) site.idle()
        else woken = true
      } finally {
        site.register(-1)
      }
    }
  } catch (error) {
    if (woken) site.forward()
    throw error
  }
}

/**
 * Non-blocking wait (any thread). While a park is pending, a ref'd timer keeps the event loop
 * alive: `Atomics.waitAsync` alone does not (nodejs/node#44729).
 */
function parkAsync(site, attempt, timeout, signal, what) {
  const loop = signal === undefined && site.settlesItself ? parkAsyncPlain : parkAsyncLoop
  if (!waitChannel.hasSubscribers) return loop(site, attempt, timeout, signal, what)
  return parkAsyncPublished(loop, site, attempt, timeout, signal, what)
}

async function parkAsyncPublished(loop, site, attempt, timeout, signal, what) {
  const started = performance.now()
  try {
    const result = await loop(site, attempt, timeout, signal, what)
    publishWait(site, what, started)
    return result
  } catch (error) {
    publishWait(site, what, started, error)
    throw error
  }
}

const SLICE_ENDED = Symbol('slice ended')

/**
 * Keeps this thread's event loop alive while any async park is pending: `Atomics.waitAsync` alone
 * does not (nodejs/node#44729). One interval timer per thread, ref'd while the count of pending
 * parks is non-zero: a park costs two counter updates instead of a timer of its own.
 */
let keepAliveTimer
let pendingParks = 0

function parkStarted() {
  if (pendingParks++ === 0) {
    keepAliveTimer ??= setInterval(() => {}, 0x7fffffff)
    keepAliveTimer.ref()
  }
}

function parkEnded() {
  if (--pendingParks === 0) keepAliveTimer.unref()
}

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
  /** The last park ended with a wake-up that no attempt has used yet. */
  let woken = false
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
      /** Whether this park is still the one waiting; a wake-up that reaches it later is passed on. */
      const park = { live: true }
      try {
        const epoch = Atomics.load(site.i32, site.epochIndex)
        result = attempt()
        if (result !== undefined) return result
        woken = false
        const ms = nextSlice(site, deadline, timeout, what)
        const changed = site.changed(epoch, ms)
        if (changed !== undefined) {
          const outcome = await new Promise((resolve, reject) => {
            slice = setTimeout(resolve, ms, SLICE_ENDED)
            interrupt = reject
            changed.then((value) => {
              if (park.live) resolve(value)
              else if (value === 'ok') site.forward()
            })
          })
          if (outcome === SLICE_ENDED) site.idle()
          else if (outcome === 'ok') woken = true
        }
      } finally {
        park.live = false
        interrupt = undefined
        if (slice !== undefined) clearTimeout(slice)
        site.register(-1)
      }
    }
  } catch (error) {
    if (woken) site.forward()
    throw error
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

/**
 * The async wait without a signal, on a site whose `changed` promise settles by itself within the
 * slice (in-process regions: V8's `waitAsync` timeout). No abort can interrupt a park, so every
 * park ends through its own promise: a wake-up it takes is always seen here, and passed on only
 * when the wait leaves by throwing (the deadline passed, or `attempt` threw).
 */
async function parkAsyncPlain(site, attempt, timeout, _signal, what) {
  const deadline = performance.now() + timeout
  let woken = false
  try {
    for (;;) {
      site.register(1)
      try {
        const epoch = Atomics.load(site.i32, site.epochIndex)
        const result = attempt()
        if (result !== undefined) return result
        woken = false
        // Awaiting V8's own promise allocates no timer, closure or promise of ours per park.
        const changed = site.changed(epoch, nextSlice(site, deadline, timeout, what))
        if (changed !== undefined) {
          parkStarted()
          let outcome
          try {
            outcome = await changed
          } finally {
            parkEnded()
          }
          if (outcome === 'timed-out') site.idle()
          else if (outcome === 'ok') woken = true
        }
      } finally {
        site.register(-1)
      }
    }
  } catch (error) {
    if (woken) site.forward()
    throw error
  }
}

module.exports = {
  DEQUEUE,
  spinForFree,
  spinForSent,
  filledAtDequeue,
  spinForRoom,
  isClosed,
  wake,
  wakeAll,
  spinBriefly,
  WaitSite,
  FileWaitSite,
  parkSync,
  parkAsync,
}
