'use strict'
// The registry of mechanisms, in report order.
//
// Every mechanism module has the same shape. Main thread side (`st` is its per-cell state):
//   setup(size, window, port) → { st, init }   `init` is posted to the worker's `worker.setup`
//   beginPhase(st, mode) / endPhase(st, mode)   mode 'echo' (round trips) or 'sink' (streaming);
//                                               a sync mechanism's endPhase ends the worker's loop
//   prepare(st)   stamp the payload (timed in round trips, not in "sender blocked")
//   send(st)      the send call itself: exactly what "sender blocked" times
//   wait(st)      sync mechanisms: block until the reply arrives and touch it
//   onMessage(st, msg)  async (postMessage) mechanisms: handle a reply, then call st.onReply()
//                       (echo) or st.onAck() (sink)
//   streamSend(st)      one streamed message (sync mechanisms may block for a free slot)
//   streamDrain(st)     sync mechanisms: block until the worker has consumed everything
//   teardown(st)
// Worker side (`worker`): setup(init, port) → w; onMessage(w, msg) (async) or run(w) (sync, a
// blocking loop until the end-of-phase message; w.mode says echo or sink, w.arg is the whole phase
// request); abort(w); teardown(w); optionally begin(w) (at each phase start) and report(w) (what the
// control 'report' request returns). The event-loop families (../eventloop/) use the same shape.
// Functions never use `this`, so the harness may call them unbound.
//
// PROCESS_MECHANISMS (`--processes`) have the same shape; their `worker` side runs in a
// child_process.fork()ed child (../proc-child.js) instead of a worker thread, `port` is the
// child's IPC channel (process.send), and they say how to fork it: `serialization` ('json' or
// 'advanced') and `pipe` (an extra stdio pipe as the child's fd 4). `attached(st)`, if present,
// runs once the child has set up; setup may register cleanups with `port.defer(fn)`, which run
// after the cell whether it succeeded or not.

const { makeClone } = require('./clone.js')
const { makeChannel } = require('./channel.js')
const { makeCodec } = require('./codec.js')
const { makeMessage } = require('./proc-message.js')

const MECHANISMS = [
  makeClone({ id: 'clone-bytes', label: 'postMessage clone of a Uint8Array', short: 'clone Uint8Array', kind: 'bytes' }),
  makeClone({ id: 'clone-matrix', label: 'postMessage clone of { matrix: Array(bytes/8) }', short: 'clone {matrix}', kind: 'matrix' }),
  makeClone({ id: 'clone-objects', label: 'postMessage clone of bytes/32 × { id, name, value }', short: 'clone [{id,name,value}]', kind: 'objects' }),
  require('./transfer.js'),
  require('./ticket.js'),
  makeChannel({ id: 'channel', label: 'sabpool Channel, default wake strategy', short: 'sabpool channel', spin: undefined }),
  makeChannel({ id: 'channel-spin', label: 'sabpool Channel, tuned: spin only and lease reuse ({ spin: 1e9, reuse })', short: 'sabpool channel tuned', spin: 1e9 }),
  makeCodec({ id: 'codec-value-matrix', label: 'sabpool Channel + writeValue/readValue of { matrix: Array(bytes/8) }', short: 'sabpool+value {matrix}', kind: 'matrix', codec: 'value' }),
  makeCodec({ id: 'codec-value-spin-matrix', label: 'sabpool Channel + writeValue/readValue of { matrix: Array(bytes/8) }, tuned: spin only ({ spin: 1e9 })', short: 'sabpool+value tuned {matrix}', kind: 'matrix', codec: 'value', spin: 1e9 }),
  makeCodec({ id: 'codec-json-matrix', label: 'sabpool Channel + writeJSON/readJSON of { matrix: Array(bytes/8) }', short: 'sabpool+JSON {matrix}', kind: 'matrix', codec: 'json' }),
  makeCodec({ id: 'codec-value-objects', label: 'sabpool Channel + writeValue/readValue of bytes/32 × { id, name, value }', short: 'sabpool+value [{…}]', kind: 'objects', codec: 'value' }),
  makeCodec({ id: 'codec-value-spin-objects', label: 'sabpool Channel + writeValue/readValue of bytes/32 × { id, name, value }, tuned: spin only ({ spin: 1e9 })', short: 'sabpool+value tuned [{…}]', kind: 'objects', codec: 'value', spin: 1e9 }),
  makeCodec({ id: 'codec-json-objects', label: 'sabpool Channel + writeJSON/readJSON of bytes/32 × { id, name, value }', short: 'sabpool+JSON [{…}]', kind: 'objects', codec: 'json' }),
  require('./ring.js'),
]

/** Only used by the parked-latency section: the smallest possible postMessage round trip. */
const TINY = makeClone({ id: 'tiny', label: 'postMessage of a number (tiny)', short: 'postMessage tiny', kind: 'tiny' })

/** `--processes`: between the bench process and a forked child. Ratios are taken to the first. */
const PROCESS_MECHANISMS = [
  require('./proc-channel.js'),
  makeMessage({ id: 'proc-json', label: 'process.send() JSON (default serialization) of a base64 string of the bytes', short: 'process.send JSON base64', serialization: 'json' }),
  makeMessage({ id: 'proc-advanced', label: "process.send() with serialization: 'advanced' (structured clone) of a Uint8Array", short: 'process.send advanced', serialization: 'advanced' }),
  require('./proc-pipe.js'),
]

const ALL = new Map([...MECHANISMS, TINY, ...PROCESS_MECHANISMS].map((m) => [m.id, m]))

function get(id) {
  const m = ALL.get(id)
  if (m === undefined) throw new Error(`unknown mechanism ${id}`)
  return m
}

module.exports = {
  MECHANISMS,
  TINY,
  PROCESS_MECHANISMS,
  get,
  ids: MECHANISMS.map((m) => m.id),
  processIds: PROCESS_MECHANISMS.map((m) => m.id),
}
