'use strict'
// postMessage with structured clone: the payload is copied on every send (serialized in the
// sender's postMessage call, deserialized by the receiver). The worker echoes what it received,
// so a round trip clones the payload twice, like a task that returns a result of the same size.
// In streaming mode the worker answers each message with a tiny ack (the number 0).

const { KINDS, check } = require('../payload.js')

function makeClone({ id, label, short, kind }) {
  const P = KINDS[kind]
  return {
    id,
    label,
    short,
    group: 'postMessage',
    sync: false,
    payloadKind: kind,

    setup(size, _window, port) {
      const st = { port, p: P.make(size), msg: undefined, seq: 0, tag: 0, mode: 'echo', mismatches: 0, onReply: null, onAck: null }
      return { st, init: { kind, size } }
    },
    beginPhase(st, mode) {
      st.mode = mode
      st.seq = 0
    },
    prepare(st) {
      st.tag = st.seq
      st.seq = (st.seq + 1) & 255
      st.msg = P.stamp(st.p, st.tag)
    },
    send(st) {
      st.port.postMessage(st.msg)
    },
    onMessage(st, msg) {
      if (st.mode === 'echo') {
        if (P.read(msg) !== st.tag) st.mismatches++
        st.onReply()
      } else {
        st.onAck()
      }
    },
    streamSend(st) {
      st.tag = st.seq
      st.seq = (st.seq + 1) & 255
      st.port.postMessage(P.stamp(st.p, st.tag))
    },
    endPhase() {},
    teardown() {},

    worker: {
      setup(init, port) {
        return { port, P: KINDS[init.kind], mode: 'echo', expect: 0, mismatches: 0 }
      },
      onMessage(w, msg) {
        check(w, w.P.read(msg))
        w.port.postMessage(w.mode === 'echo' ? msg : 0)
      },
      teardown() {},
    },
  }
}

module.exports = { makeClone }
