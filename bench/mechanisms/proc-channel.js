'use strict'
// sabpool across processes: a pool and two channels in memory-mapped files (SharedPool.create /
// Channel.create under /dev/shm), opened by name in a child_process.fork()ed child
// (SharedPool.open / Channel.open). Blocked calls spin (the library's default budget), then park
// on a futex, which wakes across processes. The same protocol as the in-process `channel` row
// (./channel.js): round trip main `sendSync` → child `recvSync`, touch, `sendSync` → main
// `recvSync`; streaming: main `acquireSync` + `sendSync`, the child receives and releases (the
// pool's `window` slots bound what is in flight). A lease sent with length 0 ends a child phase.
//
// Every blocking call on both sides passes `{ timeout }` and nothing else (default spin, no lease
// reuse): a process that dies cannot wake the other one, so the survivor must find out by itself
// instead of hanging the benchmark (the bench process gives up, the child exits once it has been
// orphaned). The option only matters on the park path; the extra options object costs nothing
// measurable next to a cross-process round trip.
//
// The files are named sabpool-bench-<pid>-<n> (unique per run and cell). They are unlinked as soon
// as the child has opened them (the mappings live on; nothing is left in /dev/shm if either
// process is killed) and again, with close + detach, in the cell's cleanup, which the harness
// runs in a `finally`.

const { SharedPool, Channel } = require('../..')
const { stampBytes, readBytes, check } = require('../payload.js')
const { nextPow2, drainPool, parkCounters } = require('./channel.js')

/** The main (bench) process gives up on a reply after this long: the child has died. */
const MAIN_TIMEOUT_MS = 10_000
/** After this long without a message the child checks that the bench process is still there. */
const CHILD_TIMEOUT_MS = 2_000

const OPTS = Object.freeze({ timeout: MAIN_TIMEOUT_MS })

let serial = 0

/** Unlinks, closes and detaches whatever of the cell's regions exist; the second call does nothing. */
function cleanup(st) {
  if (st.detached) return
  st.detached = true
  const errors = []
  const attempt = (fn) => {
    try {
      fn()
    } catch (err) {
      errors.push(err)
    }
  }
  for (const ch of [st.toChild, st.toMain]) {
    if (ch === null) continue
    attempt(() => ch.unlink())
  }
  if (st.pool !== null) attempt(() => st.pool.unlink())
  for (const ch of [st.toChild, st.toMain]) {
    if (ch === null) continue
    attempt(() => ch.close())
    attempt(() => ch.detach())
  }
  if (st.pool !== null) attempt(() => st.pool.detach())
  if (errors.length > 0) throw errors[0]
}

function streamDrain(st) {
  drainPool(st.pool, st.held, OPTS)
}

/** Child: the next lease from the bench process; throws once the bench process has gone away. */
function recv(w) {
  for (;;) {
    try {
      return w.fromMain.recvSync(w.opts)
    } catch (err) {
      // Timed out: keep waiting while the bench process lives (an orphan gets a new parent).
      if (err.code !== 'ERR_SABPOOL_TIMEOUT' || process.ppid !== w.ppid) throw err
    }
  }
}

module.exports = {
  id: 'proc-channel',
  label: 'sabpool Channel across processes (file-backed pool + 2 channels, futex waits, default spin)',
  short: 'sabpool channel',
  group: 'sabpool',
  sync: true,
  processes: true,
  serialization: 'json', // only the control messages use the IPC channel

  setup(size, window, port) {
    const name = `sabpool-bench-${process.pid}-${++serial}`
    const st = {
      name,
      pool: null,
      toChild: null,
      toMain: null,
      detached: false,
      size,
      window,
      held: new Array(window).fill(null),
      lease: null,
      seq: 0,
      tag: 0,
      mismatches: 0,
    }
    port.defer(() => cleanup(st))
    st.pool = SharedPool.create({ name, slotSize: size, slots: window })
    const capacity = nextPow2(window)
    st.toChild = Channel.create(st.pool, { name: `${name}-to-child`, capacity })
    st.toMain = Channel.create(st.pool, { name: `${name}-to-main`, capacity })
    return { st, init: { pool: name, toChild: `${name}-to-child`, toMain: `${name}-to-main`, size } }
  },
  /** The child has opened every file: remove the names now (see the top). */
  attached(st) {
    st.toChild.unlink()
    st.toMain.unlink()
    st.pool.unlink()
  },
  beginPhase(st, mode) {
    st.seq = 0
    if (mode === 'echo') st.lease = st.pool.tryAcquire()
  },
  prepare(st) {
    st.tag = st.seq
    st.seq = (st.seq + 1) & 255
    stampBytes(st.lease.bytes, st.size, st.tag)
  },
  send(st) {
    st.toChild.sendSync(st.lease, st.size, OPTS)
  },
  wait(st) {
    const lease = st.toMain.recvSync(OPTS)
    if (lease === null) throw new Error('the child closed the channel (it failed)')
    if (readBytes(lease.bytes, st.size) !== st.tag) st.mismatches++
    st.lease = lease
  },
  streamSend(st) {
    const lease = st.pool.acquireSync(OPTS)
    stampBytes(lease.bytes, st.size, st.seq)
    st.seq = (st.seq + 1) & 255
    st.toChild.sendSync(lease, st.size, OPTS)
  },
  streamDrain,
  counters(st) {
    return parkCounters(st.pool, st.toChild, st.toMain)
  },
  endPhase(st, mode) {
    if (mode === 'echo') {
      st.toChild.sendSync(st.lease, 0, OPTS)
      const back = st.toMain.recvSync(OPTS)
      if (back === null) throw new Error('the child closed the channel (it failed)')
      back.release()
      st.lease = null
    } else {
      st.toChild.sendSync(st.pool.acquireSync(OPTS), 0, OPTS)
      streamDrain(st)
    }
  },
  teardown(st) {
    cleanup(st)
  },

  // Runs in the child process (bench/proc-child.js).
  worker: {
    setup(init) {
      const w = { pool: null, fromMain: null, toMain: null, opts: Object.freeze({ timeout: CHILD_TIMEOUT_MS }), ppid: process.ppid, mode: 'echo', expect: 0, mismatches: 0 }
      try {
        w.pool = SharedPool.open(init.pool)
        w.fromMain = Channel.open(init.toChild, w.pool)
        w.toMain = Channel.open(init.toMain, w.pool)
      } catch (err) {
        module.exports.worker.teardown(w)
        throw err
      }
      return w
    },
    run(w) {
      const { toMain, opts } = w
      const echo = w.mode === 'echo'
      for (;;) {
        const lease = recv(w)
        if (lease === null) throw new Error('the bench process closed the channel')
        const length = lease.length
        if (length === 0) {
          if (echo) toMain.sendSync(lease, 0, opts)
          else lease.release()
          return
        }
        check(w, readBytes(lease.bytes, length))
        if (echo) toMain.sendSync(lease, length, opts)
        else lease.release()
      }
    },
    /** Unblocks the bench process if this child fails mid-phase. */
    abort(w) {
      if (w.toMain !== null) w.toMain.close() // main's recvSync returns null
      if (w.fromMain !== null) w.fromMain.close() // main's sendSync throws ERR_SABPOOL_CLOSED
    },
    teardown(w) {
      for (const x of [w.fromMain, w.toMain, w.pool]) {
        if (x === null) continue
        try {
          x.detach()
        } catch {
          // detached already
        }
      }
      w.fromMain = w.toMain = w.pool = null
    },
  },
}
