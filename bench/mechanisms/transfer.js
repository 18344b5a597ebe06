'use strict'
// postMessage with a transfer list: the ArrayBuffer's ownership moves (no copy) and the sender's
// view is detached. The worker transfers the buffer back, so ownership ping-pongs. In streaming
// mode `window` buffers circulate; the worker's transfer back is the ack.

const { stampBytes, readBytes, check } = require('../payload.js')

module.exports = {
  id: 'transfer',
  label: 'postMessage transfer ArrayBuffer (ping-pong)',
  short: 'transfer',
  group: 'postMessage',
  sync: false,

  setup(size, window, port) {
    const free = []
    for (let i = 0; i < window; i++) free.push(new Uint8Array(size))
    const st = { port, size, free, cur: null, seq: 0, tag: 0, mode: 'echo', mismatches: 0, onReply: null, onAck: null }
    return { st, init: { size } }
  },
  beginPhase(st, mode) {
    st.mode = mode
    st.seq = 0
    if (mode === 'echo') st.cur = st.free.pop()
  },
  prepare(st) {
    st.tag = st.seq
    st.seq = (st.seq + 1) & 255
    stampBytes(st.cur, st.size, st.tag)
  },
  send(st) {
    st.port.postMessage(st.cur, [st.cur.buffer])
  },
  onMessage(st, msg) {
    if (st.mode === 'echo') {
      if (readBytes(msg, st.size) !== st.tag) st.mismatches++
      st.cur = msg
      st.onReply()
    } else {
      st.free.push(msg)
      st.onAck()
    }
  },
  streamSend(st) {
    const u8 = st.free.pop()
    stampBytes(u8, st.size, st.seq)
    st.seq = (st.seq + 1) & 255
    st.port.postMessage(u8, [u8.buffer])
  },
  endPhase(st, mode) {
    if (mode === 'echo') {
      st.free.push(st.cur)
      st.cur = null
    }
  },
  teardown(st) {
    st.free.length = 0
  },

  worker: {
    setup(init, port) {
      return { port, size: init.size, mode: 'echo', expect: 0, mismatches: 0 }
    },
    onMessage(w, msg) {
      check(w, readBytes(msg, w.size))
      w.port.postMessage(msg, [msg.buffer])
    },
    teardown() {},
  },
}
