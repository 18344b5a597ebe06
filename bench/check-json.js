#!/usr/bin/env node
'use strict'
// Validates a `node bench/index.js --json FILE` report: every (mechanism, size, metric) cell is
// present and a finite number, and so are the parked, cold-start and break-even numbers, every
// cell of each event-loop family the run selected (service, stream, fan-out: rows × sizes ×
// consumer counts; notify: every call × number of waiters; rpc: rows × sizes × server counts;
// topic: its fan-out rows × sizes × subscriber counts, publish-cost rows × sizes × subscriber
// counts, and its event-loop rows),
// the targets, and, for a `--processes` run, every process (mechanism, size) cell, its ratios and
// the process parked rows.
// It never judges timings; it does fail on payload mismatches (a correctness failure, not a timing).
//
//   node bench/check-json.js FILE [--all] [--processes]
//     --all         also require every known mechanism and event-loop family (not just those the
//                   run was configured with)
//     --processes   require the --processes section (with --all: every process mechanism too)
// Exit status: 0 valid, 1 invalid (each problem on stderr), 2 usage or unreadable file.

const fs = require('node:fs')
const { ids, processIds } = require('./mechanisms/index.js')
const { FAMILIES, FAMILY_IDS } = require('./eventloop/index.js')
const {
  SCHEMA, CELL_METRICS, RATIOS, GRAPH_RATIOS, graphPeer, PARKED_METRICS, PROCESS_RATIOS, PROCESS_PARKED_RATIOS, COLD_START_METRICS,
  EVENT_LOOP_METRICS, FANOUT_RATIOS, FANOUT_THREAD_CPU, RPC_SERVICE_RATIOS, RPC_THREAD_CPU, TOPIC_PARTS, getPath,
} = require('./schema.js')

const rowIds = (family) => FAMILIES.find((f) => f.id === family).rows.map((r) => r.id)

/** The event-loop families the run selected: returns how many cells and rows were checked. */
function validateEventLoop(res, all, need, problems) {
  const families = res.config.families
  if (!Array.isArray(families)) {
    problems.push('config.families missing')
    return 0
  }
  if (all) for (const f of FAMILY_IDS) if (!families.includes(f)) problems.push(`event-loop family ${f} was not run (--all)`)
  const E = res.eventLoop ?? {}
  const bad = (x) => (x.verify?.main ?? 0) + (x.verify?.worker ?? 0)
  let checked = 0
  /** `expected`: [where, find(entry) → bool, extra paths] per cell the family must have. */
  const check = (family, list, expected) => {
    for (const [where, match, extra] of expected) {
      const c = list.find(match)
      if (c === undefined) {
        problems.push(`${where}: missing`)
        continue
      }
      for (const path of [...EVENT_LOOP_METRICS[family], ...extra]) need(c, path, where)
      if (bad(c) > 0) problems.push(`${where}: ${bad(c)} payload mismatches`)
      checked++
    }
  }
  for (const family of families) {
    const r = E[family]
    const list = r?.cells ?? r?.rows
    if (!Array.isArray(list)) {
      problems.push(`eventLoop.${family}: section missing`)
      continue
    }
    const expected = []
    if (family === 'service' || family === 'stream') {
      for (const id of rowIds(family)) for (const size of res.config.sizes) expected.push([`${family} ${id} @ ${size} B`, (c) => c.mechanism === id && c.size === size, []])
    } else if (family === 'fanout') {
      const linux = res.meta?.platform === 'linux'
      for (const id of rowIds(family)) {
        for (const size of res.config.fanoutSizes ?? []) {
          for (const k of res.config.fanoutConsumers ?? []) {
            const extra = [...(id === 'fanout-channel' ? FANOUT_RATIOS : []), ...(linux ? FANOUT_THREAD_CPU : [])]
            expected.push([`fanout ${id} @ ${size} B × ${k}`, (c) => c.mechanism === id && c.size === size && c.consumers === k, extra])
          }
        }
      }
    } else if (family === 'rpc') {
      const linux = res.meta?.platform === 'linux'
      const sizes = res.config.rpcSizes
      const servers = res.config.rpcServers
      if (!Array.isArray(sizes) || sizes.length === 0 || !Array.isArray(servers) || servers.length === 0) problems.push('config.rpcSizes or config.rpcServers missing')
      for (const id of rowIds(family)) {
        for (const size of sizes ?? []) {
          for (const k of servers ?? []) {
            const extra = [...(id === 'rpc-service' ? RPC_SERVICE_RATIOS : []), ...(linux ? RPC_THREAD_CPU : [])]
            expected.push([`rpc ${id} @ ${size} B × ${k}`, (c) => c.mechanism === id && c.size === size && c.servers === k, extra])
          }
        }
      }
    } else if (family === 'topic') {
      const linux = res.meta?.platform === 'linux'
      const c = res.config
      const rowsOf = (part) => FAMILIES.find((f) => f.id === family).rows.filter((r) => r.part === part).map((r) => r.id)
      const paths = (part, isTopic) => [...TOPIC_PARTS[part].all, ...(isTopic ? TOPIC_PARTS[part].topic : []), ...(linux ? TOPIC_PARTS[part].cpu : [])]
      const lists = ['topicFanoutSizes', 'topicSubscribers', 'topicCostSizes', 'topicCostSubscribers']
      for (const key of lists) if (!Array.isArray(c[key]) || c[key].length === 0) problems.push(`config.${key} missing`)
      if (typeof c.topicLoopSize !== 'number') problems.push('config.topicLoopSize missing')
      for (const id of rowsOf('fanout')) {
        for (const size of c.topicFanoutSizes ?? []) {
          for (const k of c.topicSubscribers ?? []) {
            expected.push([`topic ${id} @ ${size} B × ${k}`, (x) => x.part === 'fanout' && x.mechanism === id && x.size === size && x.subscribers === k, paths('fanout', id === 'topic-await' || id === 'topic-sync')])
          }
        }
      }
      const smallest = Math.min(...(c.topicCostSizes ?? []))
      for (const id of rowsOf('cost')) {
        for (const size of c.topicCostSizes ?? []) {
          for (const k of c.topicCostSubscribers ?? []) {
            if (k === 0 && id !== 'topic-publishSync') continue // nothing to send to
            const extra = [...paths('cost', false), ...(k > 0 ? ['perSubscriber'] : [])]
            if (id === 'topic-publishSync') {
              if (k > 0) extra.push('ratios.vsChannel')
              if (size !== smallest) extra.push('ratios.vsSmallest')
            }
            expected.push([`topic ${id} @ ${size} B × ${k}`, (x) => x.part === 'cost' && x.mechanism === id && x.size === size && x.subscribers === k, extra])
          }
        }
      }
      for (const id of rowsOf('loop')) {
        expected.push([`topic ${id} @ ${c.topicLoopSize} B`, (x) => x.part === 'loop' && x.mechanism === id && x.size === c.topicLoopSize, paths('loop', id === 'topic-loop-await')])
      }
    } else if (family === 'notify') {
      for (const id of rowIds(family)) {
        const waiters = id === 'notify-postMessage' ? [1] : [0, 1, 2]
        expected.push([`notify ${id}`, (c) => c.mechanism === id, waiters.flatMap((k) => [`waiters.${k}.p10`, `waiters.${k}.p50`, `waiters.${k}.p90`])])
      }
    }
    check(family, list, expected)
  }
  return checked
}

/** The `--processes` section: `need(obj, path, where)` records a missing number. */
function validateProcesses(res, all, need, problems) {
  const pc = res.config.processes
  const sizes = pc?.sizes
  const mechanisms = pc?.mechanisms
  const P = res.processes
  const missing = []
  if (!Array.isArray(sizes) || sizes.length === 0 || !sizes.every((v) => typeof v === 'number' && Number.isFinite(v))) missing.push('config.processes.sizes missing or not numbers')
  if (!Array.isArray(mechanisms) || mechanisms.length === 0) missing.push('config.processes.mechanisms missing')
  if (P === null || typeof P !== 'object' || !Array.isArray(P.cells) || !Array.isArray(P.parked)) missing.push('processes: section missing (cells, parked)')
  if (missing.length > 0) {
    problems.push(...missing)
    return 0
  }
  if (typeof pc.parkedSize !== 'number') problems.push('config.processes.parkedSize missing')
  if (all) for (const id of processIds) if (!mechanisms.includes(id)) problems.push(`process mechanism ${id} was not run (--all)`)
  const bad = (x) => (x.verify?.main ?? 0) + (x.verify?.worker ?? 0)
  let checked = 0
  for (const id of mechanisms) {
    for (const size of sizes) {
      const where = `process ${id} @ ${size} B`
      const cell = P.cells.find((c) => c.mechanism === id && c.size === size)
      if (cell === undefined) {
        problems.push(`${where}: cell missing`)
        continue
      }
      for (const path of [...CELL_METRICS, ...PROCESS_RATIOS]) need(cell, path, where)
      if (bad(cell) > 0) problems.push(`${where}: ${bad(cell)} payload mismatches`)
      checked++
    }
    const p = P.parked.find((x) => x.mechanism === id)
    if (p === undefined) {
      problems.push(`process parked ${id}: missing`)
    } else {
      for (const path of [...PARKED_METRICS, ...PROCESS_PARKED_RATIOS]) need(p, path, `process parked ${id}`)
      if (bad(p) > 0) problems.push(`process parked ${id}: ${bad(p)} payload mismatches`)
    }
  }
  return checked
}

function validate(res, { all = false, processes = false } = {}) {
  const problems = []
  const num = (v) => typeof v === 'number' && Number.isFinite(v)
  const need = (obj, path, where) => {
    if (!num(getPath(obj, path))) problems.push(`${where}: ${path} is ${JSON.stringify(getPath(obj, path))}, not a finite number`)
  }
  if (res === null || typeof res !== 'object') return ['not a JSON object']
  if (res.schema !== SCHEMA) problems.push(`schema is ${JSON.stringify(res.schema)}, expected ${SCHEMA}`)
  for (const k of ['date', 'node', 'v8', 'cpu', 'os']) if (typeof res.meta?.[k] !== 'string' || res.meta[k] === '') problems.push(`meta.${k} missing`)
  if (!num(res.meta?.cores)) problems.push('meta.cores missing')
  const sizes = res.config?.sizes
  const mechanisms = res.config?.mechanisms
  if (!Array.isArray(sizes) || sizes.length === 0 || !sizes.every(num)) return [...problems, 'config.sizes missing or not numbers']
  if (!Array.isArray(mechanisms)) return [...problems, 'config.mechanisms missing']
  if (mechanisms.length === 0 && !(res.config.families?.length > 0)) return [...problems, 'config.mechanisms and config.families are both empty']
  if (all) for (const id of ids) if (!mechanisms.includes(id)) problems.push(`mechanism ${id} was not run (--all)`)
  if (!Array.isArray(res.cells)) return [...problems, 'cells missing']

  let checked = 0
  for (const id of mechanisms) {
    for (const size of sizes) {
      const where = `${id} @ ${size} B`
      const cell = res.cells.find((c) => c.mechanism === id && c.size === size)
      if (cell === undefined) {
        problems.push(`${where}: cell missing`)
        continue
      }
      for (const path of CELL_METRICS) need(cell, path, where)
      if (cell.group !== 'postMessage' && cell.payloadKind !== undefined && cell.payloadKind !== 'bytes') {
        // An object-graph row (sabpool + a codec): its ratios are to the clone of the same graph.
        if (mechanisms.includes(graphPeer(cell.payloadKind))) for (const key of GRAPH_RATIOS) need(cell, `ratios.${key}`, where)
      } else if (cell.group !== 'postMessage') {
        for (const [key, refs] of Object.entries(RATIOS)) {
          if (refs.some((r) => mechanisms.includes(r))) need(cell, `ratios.${key}`, where)
        }
      }
      if ((cell.verify?.main ?? 0) + (cell.verify?.worker ?? 0) > 0) problems.push(`${where}: ${cell.verify.main + cell.verify.worker} payload mismatches`)
      checked++
    }
  }

  const parkedIds = ['channel', 'ring'].filter((id) => mechanisms.includes(id))
  if (parkedIds.length > 0) {
    for (const id of [...parkedIds, 'tiny']) {
      const p = (res.parked ?? []).find((x) => x.mechanism === id)
      if (p === undefined) problems.push(`parked ${id}: missing`)
      else for (const path of PARKED_METRICS) need(p, path, `parked ${id}`)
    }
  }
  for (const path of COLD_START_METRICS) need(res.coldStart, path, 'coldStart')
  const eventLoopCells = validateEventLoop(res, all, need, problems)
  if (res.config.families?.includes('service')) {
    for (const size of sizes) {
      const b = (res.breakEven ?? []).find((x) => x.size === size)
      if (b === undefined) {
        problems.push(`breakEven @ ${size} B: missing`)
        continue
      }
      const graphs = [['graph', 'clone-matrix'], ['graphValue', 'codec-value-matrix'], ['graphJSON', 'codec-json-matrix']].filter(([, id]) => mechanisms.includes(id)).map(([k]) => k)
      for (const k of ['clone', 'cloneIdle', 'serviceBusy', 'serviceIdle', ...graphs]) for (const f of ['roundTrip', 'transfer', 'reused', 'oneShot']) need(b, `${k}.${f}`, `breakEven @ ${size} B`)
    }
  }
  if (!Array.isArray(res.targets)) problems.push('targets missing')
  else {
    for (const [i, t] of res.targets.entries()) {
      const where = `targets[${i}] (${t?.name})`
      for (const path of ['measured', 'goal']) need(t, path, where)
      if (typeof t?.name !== 'string' || !['≤', '<', '≥'].includes(t?.op) || typeof t?.pass !== 'boolean' || typeof t?.noisy !== 'boolean') problems.push(`${where}: needs name, op, pass and noisy`)
    }
  }
  let processCells = 0
  if (res.config.processes) processCells = validateProcesses(res, all, need, problems)
  else if (processes) problems.push('config.processes is not set: the run had no --processes section')
  else if (res.processes != null) problems.push('processes section present but config.processes is not set')
  return problems.length ? problems : { cells: checked, metrics: CELL_METRICS.length, eventLoopCells, processCells }
}

function main(argv) {
  const files = argv.filter((a) => !a.startsWith('--'))
  const all = argv.includes('--all')
  const processes = argv.includes('--processes')
  if (files.length !== 1 || argv.some((a) => a.startsWith('--') && a !== '--all' && a !== '--processes')) {
    process.stderr.write('usage: node bench/check-json.js FILE [--all] [--processes]\n')
    return 2
  }
  let res
  try {
    res = JSON.parse(fs.readFileSync(files[0], 'utf8'))
  } catch (err) {
    process.stderr.write(`cannot read ${files[0]}: ${err.message}\n`)
    return 2
  }
  const out = validate(res, { all, processes })
  if (Array.isArray(out)) {
    for (const p of out) process.stderr.write(`${p}\n`)
    process.stderr.write(`${files[0]}: ${out.length} problem(s)\n`)
    return 1
  }
  const procs = out.processCells > 0 ? `, ${out.processCells} process cells` : ''
  process.stdout.write(`${files[0]}: ok (${out.cells} cells × ${out.metrics} metrics, ${out.eventLoopCells} event-loop cells${procs}, plus parked, cold start, break-even, targets)\n`)
  return 0
}

if (require.main === module) process.exitCode = main(process.argv.slice(2))

module.exports = { validate }
