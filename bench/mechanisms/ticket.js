'use strict'
// sabpool ticket over postMessage: the payload stays in the pool's shared memory; only the ticket
// ({ pool, slot, generation, length }: four numbers) is cloned. Round trip: main `handoff()` →
// postMessage → worker `adopt()`, touch, `handoff()` → postMessage → main `adopt()`.
// Streaming: the worker releases the slot and acks; the pool's `window` slots bound what is in
// flight (the ack arrives after the release, so main's tryAcquire always finds a slot).

const { SharedPool } = require('../..')
const { stampBytes, readBytes, check } = require('../payload.js')

module.exports = {
  id: 'ticket',
  label: 'sabpool ticket over postMessage (handoff/adopt)',
  short: 'sabpool ticket',
  group: 'sabpool',
  sync: false,

  setup(size, window, port) {
    const pool = new SharedPool({ slotSize: size, slots: window })
    const st = { port, pool, size, lease: null, seq: 0, tag: 0, mode: 'echo', mismatches: 0, onReply: null, onAck: null }
    return { st, init: { pool: pool.handle, size } }
  },
  beginPhase(st, mode) {
    st.mode = mode
    st.seq = 0
    if (mode === 'echo') {
      st.lease = st.pool.tryAcquire()
      st.lease.length = st.size
    }
  },
  prepare(st) {
    st.tag = st.seq
    st.seq = (st.seq + 1) & 255
    stampBytes(st.lease.bytes, st.size, st.tag)
  },
  send(st) {
    st.port.postMessage(st.lease.handoff())
  },
  onMessage(st, msg) {
    if (st.mode === 'echo') {
      const lease = st.pool.adopt(msg)
      if (readBytes(lease.bytes, st.size) !== st.tag) st.mismatches++
      st.lease = lease
      st.onReply()
    } else {
      st.onAck()
    }
  },
  streamSend(st) {
    const lease = st.pool.tryAcquire()
    if (lease === null) throw new Error('bench bug: ticket stream found the pool empty')
    lease.length = st.size
    stampBytes(lease.bytes, st.size, st.seq)
    st.seq = (st.seq + 1) & 255
    st.port.postMessage(lease.handoff())
  },
  endPhase(st, mode) {
    if (mode === 'echo') {
      st.lease.release()
      st.lease = null
    }
  },
  teardown(st) {
    st.pool.detach()
  },

  worker: {
    setup(init, port) {
      return { port, pool: SharedPool.attach(init.pool), size: init.size, mode: 'echo', expect: 0, mismatches: 0 }
    },
    onMessage(w, msg) {
      const lease = w.pool.adopt(msg)
      check(w, readBytes(lease.bytes, w.size))
      if (w.mode === 'echo') {
        w.port.postMessage(lease.handoff())
      } else {
        lease.release()
        w.port.postMessage(0)
      }
    },
    teardown(w) {
      w.pool.detach()
    },
  },
}
