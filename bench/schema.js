'use strict'
// The JSON report's required numbers (shared by index.js and check-json.js).

const SCHEMA = 'sabpool-bench/3' // 2: event-loop families, break-even from the service rows, targets with goals; 3: object-graph rows (sabpool + a codec), ×graph from them only

/** Per (mechanism, size) cell: dotted paths that must hold finite numbers. */
const CELL_METRICS = [
  'rt.p10', 'rt.p50', 'rt.p90', 'rt.p99',
  'send.p10', 'send.p50', 'send.p90', 'send.p99',
  'throughput.msgsPerSec.p10', 'throughput.msgsPerSec.p50', 'throughput.msgsPerSec.p90', 'throughput.gbPerSec',
  'heap.bytesPerRoundTrip', 'heap.arrayBufferBytesPerRoundTrip',
  'rss.growthBytes',
  'verify.main', 'verify.worker',
]

/** Ratios of the byte rows (sabpool and floor): key → the mechanism(s) it needs in the same run. */
const RATIOS = {
  vsClone: ['clone-bytes'],
  vsTransfer: ['transfer'],
  vsFloor: ['ring'],
}

/**
 * Ratios of the object-graph rows (sabpool + a codec, a cell with `payloadKind` 'matrix' or
 * 'objects'), each against the postMessage clone of the same graph (`clone-<kind>`): round trip
 * and sender blocked, "times faster".
 */
const GRAPH_RATIOS = ['vsGraph', 'sendVsGraph']
const graphPeer = (kind) => `clone-${kind}`

const PARKED_METRICS = ['busy.rt.p50', 'busy.rt.p10', 'busy.rt.p90', 'busy.rt.p99', 'busy.send.p50',
  'parked.rt.p50', 'parked.rt.p10', 'parked.rt.p90', 'parked.rt.p99', 'parked.send.p50']

/** `--processes` (res.processes): ratios every process cell and parked row must have. */
const PROCESS_RATIOS = ['ratios.vsSabpool', 'ratios.streamVsSabpool']
const PROCESS_PARKED_RATIOS = ['ratios.busyVsSabpool', 'ratios.parkedVsSabpool']

const COLD_START_METRICS = ['plain.p50', 'plain.p10', 'plain.p90', 'sabpool.p50', 'sabpool.p10', 'sabpool.p90']

// ---- event-loop families (res.eventLoop.<family>): per cell, and per row of `notify` ---------------

const summaryOf = (prefix) => ['p10', 'p50', 'p90', 'p99'].map((k) => `${prefix}.${k}`)
const callsOf = (prefix) => [`${prefix}.all.p50`, `${prefix}.all.p99`, `${prefix}.all.max`]

/** Per family: dotted paths every cell (notify: every row) must hold as finite numbers. */
const EVENT_LOOP_METRICS = {
  service: [
    ...summaryOf('hot.rt'), ...callsOf('hot.calls'), 'hot.loopDelay.p99', 'hot.loopDelay.max',
    ...summaryOf('idle.rt'), ...callsOf('idle.calls'),
    'ratios.vsSync', 'ratios.vsPostMessage', 'ratios.p99VsPostMessageP50', 'ratios.idleVsPostMessage',
    'verify.main', 'verify.worker',
  ],
  stream: [
    'throughput.msgsPerSec.p10', 'throughput.msgsPerSec.p50', 'throughput.msgsPerSec.p90', 'throughput.messages',
    ...callsOf('calls'), 'loopDelay.p99', 'loopDelay.max', 'ratios.vsSync', 'verify.main', 'verify.worker',
  ],
  fanout: [
    'throughput.mbPerSec.p10', 'throughput.mbPerSec.p50', 'throughput.mbPerSec.p90', 'throughput.items',
    'cpuPerItem.process', ...callsOf('calls'), 'loopDelay.p99', 'loopDelay.max', 'verify.main', 'verify.worker',
  ],
  notify: ['verify.main', 'verify.worker'],
  rpc: [
    ...summaryOf('rt'), 'throughput.callsPerSec.p10', 'throughput.callsPerSec.p50', 'throughput.callsPerSec.p90', 'throughput.calls',
    'cpuPerCall.process', 'ratios.rtVsService', 'ratios.rateVsService', 'verify.main', 'verify.worker',
  ],
  topic: ['verify.main', 'verify.worker'], // and TOPIC_PARTS per part
}

/** Fan-out: the sabpool rows' ratios to recycled transfer; per-thread CPU where Linux provides it. */
const FANOUT_RATIOS = ['ratios.vsTransfer', 'ratios.cpuVsTransfer']
const FANOUT_THREAD_CPU = ['cpuPerItem.main', 'cpuPerItem.consumers']

/** Request/response: the svc.call rows' ratios to the peers their goals name; per-thread CPU where Linux provides it. */
const RPC_SERVICE_RATIOS = ['ratios.vsPiscina', 'ratios.rtVsChannels', 'ratios.rateVsChannels']
const RPC_THREAD_CPU = ['cpuPerCall.main']

/**
 * Publish/subscribe, per part of the family (a cell's `part`): `all` for every row of the part,
 * `topic` for its Topic rows (the publishSync rows of the cost part), `cpu` where Linux provides
 * per-thread CPU time. The cost part's ratios depend on the cell (see check-json.js).
 */
const rateOf = (prefix) => ['p10', 'p50', 'p90'].map((k) => `${prefix}.${k}`)
const TOPIC_PARTS = {
  fanout: {
    all: [...rateOf('throughput.samplesPerSec'), 'throughput.items', 'cpuPerSample.process'],
    topic: ['ratios.vsPostMessage', 'ratios.vsBroadcast', 'ratios.vsChannels'],
    cpu: ['cpuPerSample.main', 'cpuPerSample.subscribers'],
  },
  cost: { all: summaryOf('call'), topic: [], cpu: [] },
  loop: {
    all: [...rateOf('throughput.samplesPerSec'), 'throughput.items', 'cpuPerSample.process'],
    topic: ['ratios.vsPostMessage'],
    cpu: ['cpuPerSample.main'],
  },
}

function getPath(obj, dotted) {
  let v = obj
  for (const k of dotted.split('.')) {
    if (v === null || typeof v !== 'object') return undefined
    v = v[k]
  }
  return v
}

module.exports = { SCHEMA, CELL_METRICS, RATIOS, GRAPH_RATIOS, graphPeer, PARKED_METRICS, PROCESS_RATIOS, PROCESS_PARKED_RATIOS, COLD_START_METRICS, EVENT_LOOP_METRICS, FANOUT_RATIOS, FANOUT_THREAD_CPU, RPC_SERVICE_RATIOS, RPC_THREAD_CPU, TOPIC_PARTS, getPath }
