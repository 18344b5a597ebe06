'use strict'
// process.send() over the IPC channel of a child_process.fork()ed child: the payload is
// serialized by the sender, written through the kernel (a socket pair), read and parsed by the
// receiver's event loop. Two serializations, chosen at fork time:
//
//   'json' (Node's default): JSON can't carry bytes, so the payload goes the way it realistically
//     would: a base64 string of the bytes. The sender encodes (inside the timed send call, like a
//     structured clone's serialization), the receiver decodes with Buffer.from(s, 'base64') to get
//     at the bytes. The child "returns a result of the same size": it decodes, touches and
//     re-encodes, so both directions pay encode + JSON + pipe + parse + decode.
//   'advanced': structured clone (v8.serialize) of a Uint8Array; the child echoes what it got, as
//     the in-process `clone-bytes` row does.
//
// Streaming: the child touches each payload and answers with a tiny ack (the number 0).

const { stampBytes, readBytes, check } = require('../payload.js')

function makeMessage({ id, label, short, serialization }) {
  const json = serialization === 'json'
  return {
    id,
    label,
    short,
    group: 'process',
    sync: false,
    processes: true,
    serialization,

    setup(size, _window, port) {
      const u8 = new Uint8Array(size)
      const st = { port, size, u8, buf: Buffer.from(u8.buffer, 0, size), seq: 0, tag: 0, mode: 'echo', mismatches: 0, onReply: null, onAck: null }
      return { st, init: { size } }
    },
    beginPhase(st, mode) {
      st.mode = mode
      st.seq = 0
    },
    prepare(st) {
      st.tag = st.seq
      st.seq = (st.seq + 1) & 255
      stampBytes(st.u8, st.size, st.tag)
    },
    send: json
      ? (st) => st.port.postMessage(st.buf.toString('base64'))
      : (st) => st.port.postMessage(st.u8),
    onMessage(st, msg) {
      if (st.mode === 'echo') {
        const bytes = json ? Buffer.from(msg, 'base64') : msg
        if (bytes.length !== st.size || readBytes(bytes, st.size) !== st.tag) st.mismatches++
        st.onReply()
      } else {
        st.onAck()
      }
    },
    streamSend(st) {
      stampBytes(st.u8, st.size, st.seq)
      st.seq = (st.seq + 1) & 255
      st.port.postMessage(json ? st.buf.toString('base64') : st.u8)
    },
    endPhase() {},
    teardown() {},

    // Runs in the child process (bench/proc-child.js).
    worker: {
      setup(init, port) {
        return { port, size: init.size, mode: 'echo', expect: 0, mismatches: 0 }
      },
      onMessage(w, msg) {
        const bytes = json ? Buffer.from(msg, 'base64') : msg
        check(w, bytes.length === w.size ? readBytes(bytes, w.size) : -1)
        if (w.mode !== 'echo') w.port.postMessage(0)
        else w.port.postMessage(json ? bytes.toString('base64') : msg)
      },
      teardown() {},
    },
  }
}

module.exports = { makeMessage }
