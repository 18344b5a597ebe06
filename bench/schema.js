'use strict'
// The JSON report's required numbers (shared by index.js and check-json.js).

const SCHEMA = 'sabpool-bench/1'

/** Per (mechanism, size) cell: dotted paths that must hold finite numbers. */
const CELL_METRICS = [
  'rt.p10', 'rt.p50', 'rt.p90', 'rt.p99',
  'send.p10', 'send.p50', 'send.p90', 'send.p99',
  'throughput.msgsPerSec.p10', 'throughput.msgsPerSec.p50', 'throughput.msgsPerSec.p90', 'throughput.gbPerSec',
  'heap.bytesPerRoundTrip', 'heap.arrayBufferBytesPerRoundTrip',
  'rss.growthBytes',
  'verify.main', 'verify.worker',
]

/** Ratios of sabpool and floor rows: key → the mechanism(s) it needs in the same run. */
const RATIOS = {
  vsClone: ['clone-bytes'],
  vsGraph: ['clone-matrix', 'clone-objects'],
  vsTransfer: ['transfer'],
  vsFloor: ['ring'],
}

const PARKED_METRICS = ['busy.rt.p50', 'busy.rt.p10', 'busy.rt.p90', 'busy.rt.p99', 'busy.send.p50',
  'parked.rt.p50', 'parked.rt.p10', 'parked.rt.p90', 'parked.rt.p99', 'parked.send.p50']

/** `--processes` (res.processes): ratios every process cell and parked row must have. */
const PROCESS_RATIOS = ['ratios.vsSabpool', 'ratios.streamVsSabpool']
const PROCESS_PARKED_RATIOS = ['ratios.busyVsSabpool', 'ratios.parkedVsSabpool']

const COLD_START_METRICS = ['plain.p50', 'plain.p10', 'plain.p90', 'sabpool.p50', 'sabpool.p10', 'sabpool.p90']

function getPath(obj, dotted) {
  let v = obj
  for (const k of dotted.split('.')) {
    if (v === null || typeof v !== 'object') return undefined
    v = v[k]
  }
  return v
}

module.exports = { SCHEMA, CELL_METRICS, RATIOS, PARKED_METRICS, PROCESS_RATIOS, PROCESS_PARKED_RATIOS, COLD_START_METRICS, getPath }
