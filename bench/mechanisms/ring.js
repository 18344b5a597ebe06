'use strict'
// The floor: a hand-rolled SharedArrayBuffer + Atomics design (see ../ring.js), no library.
// Payload slots live in one SharedArrayBuffer; two SPSC rings carry slot indices: `req` main →
// worker, `resp` worker → main (the echo in round trips, the free-slot return path in streaming).
// Index -1 ends a worker phase; -2 means the worker failed.

const { Ring } = require('../ring.js')
const { stampBytes, readBytes, check } = require('../payload.js')
const { nextPow2 } = require('./channel.js')

const END = -1
const FAILED = -2

function views(data, size, window) {
  const out = []
  for (let i = 0; i < window; i++) out.push(new Uint8Array(data, i * size, size))
  return out
}

module.exports = {
  id: 'ring',
  label: 'hand-rolled SAB + Atomics ring (floor)',
  short: 'hand-rolled ring',
  group: 'floor',
  sync: true,

  setup(size, window) {
    const capacity = nextPow2(window)
    const data = new SharedArrayBuffer(size * window)
    const reqBuf = new SharedArrayBuffer(Ring.byteLength(capacity))
    const respBuf = new SharedArrayBuffer(Ring.byteLength(capacity))
    const free = []
    for (let i = window - 1; i >= 0; i--) free.push(i)
    const st = {
      req: new Ring(reqBuf, capacity),
      resp: new Ring(respBuf, capacity),
      views: views(data, size, window),
      free,
      size,
      window,
      idx: -1,
      seq: 0,
      tag: 0,
      mismatches: 0,
    }
    return { st, init: { data, reqBuf, respBuf, capacity, size, window } }
  },
  beginPhase(st, mode) {
    st.seq = 0
    if (mode === 'echo') st.idx = st.free.pop()
  },
  prepare(st) {
    st.tag = st.seq
    st.seq = (st.seq + 1) & 255
    stampBytes(st.views[st.idx], st.size, st.tag)
  },
  send(st) {
    st.req.push(st.idx)
  },
  wait(st) {
    const idx = st.resp.pop()
    if (idx < 0) throw new Error('the worker failed')
    if (readBytes(st.views[idx], st.size) !== st.tag) st.mismatches++
    st.idx = idx
  },
  streamSend(st) {
    const idx = st.free.length > 0 ? st.free.pop() : st.resp.pop()
    if (idx < 0) throw new Error('the worker failed')
    stampBytes(st.views[idx], st.size, st.seq)
    st.seq = (st.seq + 1) & 255
    st.req.push(idx)
  },
  streamDrain(st) {
    while (st.free.length < st.window) {
      const idx = st.resp.pop()
      if (idx < 0) throw new Error('the worker failed')
      st.free.push(idx)
    }
  },
  endPhase(st, mode) {
    if (mode === 'echo') {
      st.free.push(st.idx)
      st.idx = -1
    }
    st.req.push(END)
    const last = st.resp.pop()
    if (last !== END) throw new Error(`bench bug: ring phase ended with ${last}`)
  },
  teardown(st) {
    st.views.length = 0
  },

  worker: {
    setup(init) {
      return {
        req: new Ring(init.reqBuf, init.capacity),
        resp: new Ring(init.respBuf, init.capacity),
        views: views(init.data, init.size, init.window),
        size: init.size,
        mode: 'echo',
        expect: 0,
        mismatches: 0,
      }
    },
    run(w) {
      const { req, resp, views, size } = w
      for (;;) {
        const idx = req.pop()
        if (idx === END) {
          resp.push(END)
          return
        }
        check(w, readBytes(views[idx], size))
        resp.push(idx)
      }
    },
    abort(w) {
      w.resp.push(FAILED)
    },
    teardown(w) {
      w.views.length = 0
    },
  },
}
