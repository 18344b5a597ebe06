'use strict'
// sabpool Channel: a lock-free ring of slot handoffs in shared memory, no postMessage at all.
// Round trip over a pair of channels: main `sendSync` → worker `recvSync`, touch, `sendSync` →
// main `recvSync` (the main thread blocks in recvSync: spin, then park, like the floor).
// Streaming: main `acquireSync` + `sendSync`, the worker receives and releases; the pool's
// `window` slots bound what is in flight. A lease sent with length 0 ends a worker phase.
//
// Two variants: the library's defaults (the calls get no options argument at all, so this is the
// path users get), and tuned: spin-only (`{ spin: 1e9 }` on every blocking call: both threads poll
// and never park while the other side is running) plus lease reuse (`{ reuse }`: every acquire and
// receive re-arms a Lease object that is no longer owned instead of allocating one).

const { SharedPool, Channel } = require('../..')
const { stampBytes, readBytes, check } = require('../payload.js')

function nextPow2(n) {
  let p = 2
  while (p < n) p *= 2
  return p
}

/**
 * Waits until the other side has released every slot of `pool`: takes them all into `held` (one
 * entry per slot), then gives them back.
 */
function drainPool(pool, held, opts) {
  for (let i = 0; i < held.length; i++) held[i] = pool.acquireSync(opts)
  for (let i = 0; i < held.length; i++) {
    held[i].release()
    held[i] = null
  }
}

/** Park counters (the pool and both channels, all sides): how often a blocking call had to sleep. */
function parkCounters(pool, toWorker, toMain) {
  const there = toWorker.stats()
  const back = toMain.stats()
  return {
    workerRecvWaits: there.recvWaits,
    mainRecvWaits: back.recvWaits,
    sendWaits: there.sendWaits + back.sendWaits,
    poolWaits: pool.stats().waits,
  }
}

/** A worker's side of a channel pair: the pool and both channels attached from the main side's handles. */
function attachPair(init) {
  const pool = SharedPool.attach(init.toWorker.pool)
  return { pool, fromMain: Channel.attach(init.toWorker, pool), toMain: Channel.attach(init.toMain, pool) }
}

/** Main side's teardown of a channel pair and its pool. */
function detachPair(st) {
  st.toWorker.detach()
  st.toMain.detach()
  st.pool.detach()
}

/** A failing worker unblocks the main thread: its recvSync returns null, its sendSync throws ERR_SABPOOL_CLOSED. */
function abortPair(w) {
  w.toMain.close()
  w.fromMain.close()
}

/** A worker's teardown of its channel pair and pool. */
function detachWorkerPair(w) {
  w.fromMain.detach()
  w.toMain.detach()
  w.pool.detach()
}

function makeChannel({ id, label, short, spin }) {
  // `OPTS` is undefined for the default variant: recvSync(undefined) is exactly recvSync(). The
  // tuned variant's `reuse` is set to a lease we no longer own right before each acquire/receive.
  const OPTS = spin === undefined ? undefined : { spin, reuse: undefined }
  const reuse = (lease) => {
    if (OPTS !== undefined) OPTS.reuse = lease
  }

  function streamDrain(st) {
    reuse(undefined)
    st.spare = undefined
    drainPool(st.pool, st.held, OPTS)
  }

  return {
    id,
    label,
    short,
    group: 'sabpool',
    sync: true,

    setup(size, window) {
      const pool = new SharedPool({ slotSize: size, slots: window })
      const capacity = nextPow2(window)
      const toWorker = new Channel(pool, { capacity })
      const toMain = new Channel(pool, { capacity })
      const st = { pool, toWorker, toMain, size, window, held: new Array(window).fill(null), lease: null, seq: 0, tag: 0, mismatches: 0 }
      return { st, init: { toWorker: toWorker.handle, toMain: toMain.handle, size, spin } }
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
      st.toWorker.sendSync(st.lease, st.size, OPTS)
    },
    wait(st) {
      reuse(st.lease) // sent: no longer ours
      const lease = st.toMain.recvSync(OPTS)
      if (lease === null) throw new Error('the worker closed the channel (it failed)')
      if (readBytes(lease.bytes, st.size) !== st.tag) st.mismatches++
      st.lease = lease
    },
    streamSend(st) {
      reuse(st.spare)
      const lease = st.pool.acquireSync(OPTS)
      stampBytes(lease.bytes, st.size, st.seq)
      st.seq = (st.seq + 1) & 255
      st.toWorker.sendSync(lease, st.size, OPTS)
      st.spare = lease // sent: re-armed by the next acquire
    },
    streamDrain,
    counters(st) {
      return parkCounters(st.pool, st.toWorker, st.toMain)
    },
    endPhase(st, mode) {
      if (mode === 'echo') {
        st.toWorker.sendSync(st.lease, 0, OPTS)
        reuse(st.lease)
        const back = st.toMain.recvSync(OPTS)
        if (back === null) throw new Error('the worker closed the channel (it failed)')
        back.release()
        st.lease = null
      } else {
        reuse(st.spare)
        st.spare = undefined
        st.toWorker.sendSync(st.pool.acquireSync(OPTS), 0, OPTS)
        streamDrain(st)
      }
    },
    teardown: detachPair,

    worker: {
      setup(init) {
        return {
          ...attachPair(init),
          opts: init.spin === undefined ? undefined : { spin: init.spin, reuse: undefined },
          mode: 'echo',
          expect: 0,
          mismatches: 0,
        }
      },
      run(w) {
        const { fromMain, toMain, opts } = w
        const echo = w.mode === 'echo'
        for (;;) {
          const lease = fromMain.recvSync(opts)
          const length = lease.length
          if (length === 0) {
            if (echo) toMain.sendSync(lease, 0, opts)
            else lease.release()
            if (opts !== undefined) opts.reuse = undefined
            return
          }
          check(w, readBytes(lease.bytes, length))
          if (echo) toMain.sendSync(lease, length, opts)
          else lease.release()
          if (opts !== undefined) opts.reuse = lease // sent or released: re-armed by the next receive
        }
      },
      abort: abortPair,
      teardown: detachWorkerPair,
    },
  }
}

module.exports = { makeChannel, nextPow2, drainPool, parkCounters, attachPair, detachPair, abortPair, detachWorkerPair }
