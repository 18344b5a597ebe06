'use strict'
// Smoke test of `npm run bench`: the quick preset runs every mechanism end to end (each message's
// payload is checked by the bench itself) and its JSON has every cell. Timings are never asserted.
const { it } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const os = require('node:os')
const fs = require('node:fs')
const { spawnSync } = require('node:child_process')

const root = path.join(__dirname, '..')

it('bench --quick runs every mechanism and writes a complete JSON report and chart', { timeout: 300_000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sabpool-bench-'))
  const json = path.join(dir, 'bench.json')
  const svg = path.join(dir, 'bench.svg')
  const run = spawnSync(process.execPath, ['bench/index.js', '--quick', '--json', json, '--svg', svg], {
    cwd: root, encoding: 'utf8', timeout: 290_000,
  })
  assert.equal(run.status, 0, `bench failed:\n${run.stderr.slice(-2000)}`)
  assert.match(run.stdout, /sabpool channel/)
  assert.match(run.stdout, /hand-rolled ring/)
  const check = spawnSync(process.execPath, ['bench/check-json.js', json, '--all'], { cwd: root, encoding: 'utf8' })
  assert.equal(check.status, 0, `incomplete JSON report:\n${check.stdout}${check.stderr}`)
  const report = JSON.parse(fs.readFileSync(json, 'utf8'))
  assert.equal(typeof report, 'object')
  assert.match(fs.readFileSync(svg, 'utf8'), /^<svg[\s\S]*<\/svg>\s*$/)
  // The event-loop families ran every row, and check-json notices a missing number in them.
  const { validate } = require('../bench/check-json.js')
  const E = report.eventLoop
  const sizes = report.config.sizes.length
  assert.equal(E.service.cells.length, 4 * sizes)
  assert.equal(E.stream.cells.length, 3 * sizes)
  assert.equal(E.fanout.cells.length, 2 * report.config.fanoutSizes.length * report.config.fanoutConsumers.length)
  assert.deepEqual(E.notify.rows.map((r) => r.mechanism), ['notify-trySend', 'notify-release', 'notify-raw-all', 'notify-raw-one', 'notify-postMessage'])
  const rpcRows = ['rpc-service', 'rpc-channels', 'rpc-transfer', 'rpc-clone', 'rpc-piscina-move', 'rpc-piscina-clone', 'rpc-piscina-lease']
  assert.deepEqual(report.config.rpcSizes, [64, 1 << 20])
  assert.deepEqual([...new Set(E.rpc.cells.map((c) => c.mechanism))], rpcRows)
  assert.equal(E.rpc.cells.length, rpcRows.length * report.config.rpcSizes.length * report.config.rpcServers.length)
  // Publish/subscribe: every row of each part, for every size and subscriber count.
  const C = report.config
  const topicPart = (part) => E.topic.cells.filter((c) => c.part === part)
  assert.deepEqual([...new Set(topicPart('fanout').map((c) => c.mechanism))], ['topic-await', 'topic-sync', 'topic-channels', 'topic-postMessage', 'topic-broadcast'])
  assert.equal(topicPart('fanout').length, 5 * C.topicFanoutSizes.length * C.topicSubscribers.length)
  assert.deepEqual(C.topicCostSubscribers, [0, 1, 2, 4])
  assert.equal(topicPart('cost').length, C.topicCostSizes.length * (4 + 3)) // no trySend row without subscribers
  assert.deepEqual(topicPart('loop').map((c) => c.mechanism), ['topic-loop-await', 'topic-loop-postMessage'])
  for (const c of [...E.service.cells, ...E.stream.cells, ...E.fanout.cells, ...E.rpc.cells, ...E.topic.cells]) assert.deepEqual(c.verify, { main: 0, worker: 0 }, `${c.mechanism} @ ${c.size}`)
  assert.ok(report.targets.some((t) => t.name.startsWith('service: await recv()')))
  assert.ok(report.targets.some((t) => t.name.startsWith('rpc at 64 B: svc.call calls/s')))
  for (const start of ['topic: fan-out 1 MiB × 4 subscribers', 'topic: publishSync cost 1 MiB / 64 B', 'topic: publishSync to k subscribers']) {
    assert.ok(report.targets.some((t) => t.name.startsWith(start)), start)
  }
  assert.match(run.stdout, /PUBLISH\/SUBSCRIBE FAN-OUT/)
  // Object graphs: the codec rows, compared with the clone of the same graph (bench-codec.test.js).
  assert.match(run.stdout, /OBJECT GRAPHS/)
  assert.ok(report.targets.some((t) => t.name.startsWith('objects: sabpool + writeValue/readValue round trip')))
  for (const b of report.breakEven) for (const k of ['graph', 'graphValue', 'graphJSON']) assert.equal(typeof b[k].reused, 'number', `breakEven ${k} @ ${b.size}`)
  delete E.fanout.cells[0].throughput.mbPerSec.p50
  delete E.rpc.cells[0].ratios.vsPiscina
  delete topicPart('fanout').find((c) => c.mechanism === 'topic-await').ratios.vsPostMessage
  delete topicPart('cost').find((c) => c.mechanism === 'topic-publishSync' && c.subscribers === 2).ratios.vsChannel
  const problems = validate(report, { all: true })
  assert.ok(Array.isArray(problems) && problems.some((p) => p.includes('throughput.mbPerSec.p50')), JSON.stringify(problems))
  assert.ok(problems.some((p) => p.startsWith('rpc rpc-service') && p.includes('ratios.vsPiscina')), JSON.stringify(problems))
  assert.ok(problems.some((p) => p.startsWith('topic topic-await') && p.includes('ratios.vsPostMessage')), JSON.stringify(problems))
  assert.ok(problems.some((p) => p.startsWith('topic topic-publishSync') && p.includes('× 2') && p.includes('ratios.vsChannel')), JSON.stringify(problems))
  fs.rmSync(dir, { recursive: true, force: true })
})

// --processes: the cross-process rows (a forked child per cell), on the quick preset with one thread
// mechanism to keep it cheap. Each payload is checked by the bench; the run must leave no files.
it('bench --quick --processes measures every process mechanism and cleans up its files', { timeout: 120_000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sabpool-bench-'))
  const json = path.join(dir, 'bench.json')
  const svg = path.join(dir, 'bench.svg')
  const shm = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir()
  const ours = () => new Set(fs.readdirSync(shm).filter((f) => f.startsWith('sabpool.sabpool-bench-')))
  const before = ours()
  const run = spawnSync(process.execPath, ['bench/index.js', '--quick', '--processes', '--only', 'channel', '--json', json, '--svg', svg], {
    cwd: root, encoding: 'utf8', timeout: 110_000,
  })
  assert.equal(run.status, 0, `bench failed:\n${run.stderr.slice(-2000)}`)
  assert.match(run.stdout, /ACROSS PROCESSES/)
  const check = spawnSync(process.execPath, ['bench/check-json.js', json, '--processes'], { cwd: root, encoding: 'utf8' })
  assert.equal(check.status, 0, `incomplete JSON report:\n${check.stdout}${check.stderr}`)
  const report = JSON.parse(fs.readFileSync(json, 'utf8'))
  const { processIds } = require('../bench/mechanisms/index.js')
  assert.deepEqual(report.config.processes.mechanisms, processIds)
  assert.deepEqual(report.config.processes.sizes, report.config.sizes)
  assert.equal(report.processes.cells.length, processIds.length * report.config.sizes.length)
  assert.deepEqual(report.processes.parked.map((p) => p.mechanism), processIds)
  for (const c of report.processes.cells) assert.deepEqual(c.verify, { main: 0, worker: 0 }, `${c.mechanism} @ ${c.size}`)
  assert.match(fs.readFileSync(svg, 'utf8'), /sabpool channel \(process\)/)
  const left = [...ours()].filter((f) => !before.has(f))
  assert.deepEqual(left, [], 'the bench left sabpool files behind')
  fs.rmSync(dir, { recursive: true, force: true })
})
