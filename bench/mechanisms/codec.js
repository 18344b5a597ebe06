'use strict'
// sabpool Channel carrying an object graph: the sender serializes it straight into a slot
// (`lease.writeValue`, V8's format, which structured clone uses; or `lease.writeJSON`), hands the
// slot off, and the receiver deserializes it from the slot (`readValue` / `readJSON`). This is
// what a user with objects (not bytes) gets: the serialization walk stays, the clone's transport
// (a message port, a copy per message, the receiver's event loop) goes.
//
// Round trip, as for the clone rows: main serializes and `sendSync`s; the worker `recvSync`s,
// deserializes, checks the tag, serializes the graph it got back into the same slot and sends it
// back; main deserializes and checks. "Sender blocked" = the serialization into the slot plus the
// send call (a postMessage call serializes too). Streaming: the worker deserializes, checks and
// releases. The library's default wake strategy (no options), like the `channel` row; the tuned
// variant passes `{ spin: 1e9 }` to every blocking call, so each side polls (and never parks)
// while the other serializes, like `channel-spin`.
//
// Slots are sized from the payload's serialized size (a tag in place of a double only shrinks it),
// and their number is capped at 256 MiB of pool (JSON of a 16 MiB {matrix} is ~2× its bytes).

const { SharedPool, Channel } = require('../..')
const { KINDS, check } = require('../payload.js')
const { nextPow2, drainPool, parkCounters, attachPair, detachPair, abortPair, detachWorkerPair } = require('./channel.js')

const CODECS = {
  value: {
    write: (lease, value) => lease.writeValue(value),
    read: (lease) => lease.readValue(),
    encode: (value) => require('node:v8').serialize(value),
    decode: (bytes) => require('node:v8').deserialize(bytes),
  },
  json: {
    write: (lease, value) => lease.writeJSON(value),
    read: (lease) => lease.readJSON(),
    encode: (value) => Buffer.from(JSON.stringify(value), 'utf8'),
    decode: (bytes) => JSON.parse(bytes.toString('utf8')),
  },
}

const POOL_BUDGET = 256 << 20

/**
 * Slot size and count for `payload` through `codec`, at most `window` slots. The worker writes
 * back the graph it read, which a runtime may encode larger than the original (Deno's V8 writes a
 * deserialized `Array(n).fill(x)` a quarter larger), so the slot fits both.
 */
function poolShape(codec, payload, window) {
  const C = CODECS[codec]
  const first = C.encode(payload)
  const needed = Math.max(first.length, C.encode(C.decode(first)).length)
  const slotSize = Math.ceil((needed + (needed >>> 4) + 256) / 64) * 64
  const slots = Math.max(2, Math.min(window, Math.floor(POOL_BUDGET / slotSize)))
  return { slotSize, slots }
}

function makeCodec({ id, label, short, kind, codec, spin }) {
  const P = KINDS[kind]
  const C = CODECS[codec]
  const OPTS = spin === undefined ? undefined : { spin }

  function streamDrain(st) {
    drainPool(st.pool, st.held, OPTS)
  }

  return {
    id,
    label,
    short,
    group: 'sabpool',
    sync: true,
    payloadKind: kind,
    codec,
    tuned: spin !== undefined,

    setup(size, window) {
      const p = P.make(size)
      const { slotSize, slots } = poolShape(codec, p, window)
      const pool = new SharedPool({ slotSize, slots })
      const capacity = nextPow2(slots)
      const toWorker = new Channel(pool, { capacity })
      const toMain = new Channel(pool, { capacity })
      const st = { pool, toWorker, toMain, p, msg: undefined, held: new Array(slots).fill(null), lease: null, seq: 0, tag: 0, mismatches: 0 }
      return { st, init: { toWorker: toWorker.handle, toMain: toMain.handle, kind, codec, spin } }
    },
    beginPhase(st, mode) {
      st.seq = 0
      if (mode === 'echo') st.lease = st.pool.tryAcquire()
    },
    prepare(st) {
      st.tag = st.seq
      st.seq = (st.seq + 1) & 255
      st.msg = P.stamp(st.p, st.tag)
    },
    send(st) {
      C.write(st.lease, st.msg)
      st.toWorker.sendSync(st.lease, undefined, OPTS)
    },
    wait(st) {
      const lease = st.toMain.recvSync(OPTS)
      if (lease === null) throw new Error('the worker closed the channel (it failed)')
      if (P.read(C.read(lease)) !== st.tag) st.mismatches++
      st.lease = lease
    },
    streamSend(st) {
      const lease = st.pool.acquireSync(OPTS)
      C.write(lease, P.stamp(st.p, st.seq))
      st.seq = (st.seq + 1) & 255
      st.toWorker.sendSync(lease, undefined, OPTS)
    },
    streamDrain,
    counters(st) {
      return parkCounters(st.pool, st.toWorker, st.toMain)
    },
    endPhase(st, mode) {
      if (mode === 'echo') {
        st.toWorker.sendSync(st.lease, 0, OPTS)
        const back = st.toMain.recvSync(OPTS)
        if (back === null) throw new Error('the worker closed the channel (it failed)')
        back.release()
        st.lease = null
      } else {
        st.toWorker.sendSync(st.pool.acquireSync(OPTS), 0, OPTS)
        streamDrain(st)
      }
    },
    teardown: detachPair,

    worker: {
      setup(init) {
        return {
          ...attachPair(init),
          P: KINDS[init.kind],
          C: CODECS[init.codec],
          opts: init.spin === undefined ? undefined : { spin: init.spin },
          mode: 'echo',
          expect: 0,
          mismatches: 0,
        }
      },
      run(w) {
        const { fromMain, toMain, P: kind, C: coder, opts } = w
        const echo = w.mode === 'echo'
        for (;;) {
          const lease = fromMain.recvSync(opts)
          if (lease.length === 0) {
            if (echo) toMain.sendSync(lease, 0, opts)
            else lease.release()
            return
          }
          const value = coder.read(lease)
          check(w, kind.read(value))
          if (echo) {
            coder.write(lease, value)
            toMain.sendSync(lease, undefined, opts)
          } else {
            lease.release()
          }
        }
      },
      abort: abortPair,
      teardown: detachWorkerPair,
    },
  }
}

module.exports = { makeCodec, poolShape, CODECS }
