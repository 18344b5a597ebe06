'use strict'
// Command line: presets and option parsing.

const { ids, processIds } = require('./mechanisms/index.js')
const { FAMILY_IDS } = require('./eventloop/index.js')

const USAGE = `usage: node bench/index.js [options]

  --quick            smoke run (about two minutes): sizes 1 KiB and 1 MiB, short phases; every mechanism,
                     family and metric
  --full             adds 64 MiB payloads
  --sizes LIST       payload sizes, e.g. 1k,64k,1m,16m (suffixes k, m, g = KiB, MiB, GiB; bytes otherwise);
                     also the rpc family's sizes (64 B and 1 MiB without --sizes)
  --only LIST        mechanisms: ${ids.join(', ')}
                     (a prefix selects a family: clone, channel, codec; also: sabpool, floor, postMessage,
                     objects = the object-graph clones and the sabpool + codec rows)
                     and event-loop families: ${FAMILY_IDS.join(', ')} (all of them: eventloop)
  --processes        also measure across processes: the bench process and a child_process.fork()ed
                     child (a fresh one per cell), same sizes: sabpool file-backed Channel
                     (SharedPool.create / open, futex waits), process.send() JSON (base64 string),
                     process.send() with serialization 'advanced' (Uint8Array), and a raw socket
                     pair with length-prefixed frames (the floor). Adds up to about a minute
                     (about 5 s with --quick; with --full, 64 MiB adds another minute); --only
                     does not apply to these rows
  --json FILE        write every number and the run's metadata as JSON
  --svg FILE         write a latency-vs-size chart (log-log) as SVG
  -h, --help         this text

Progress goes to stderr, the report to stdout.`

const KIB = 1024
const MIB = 1024 * KIB

const PRESETS = {
  default: {
    sizes: [KIB, 64 * KIB, MIB, 16 * MIB],
    warmupMs: 100, // per cell, time-bounded (at least one round trip)
    phaseMs: 300, // round-trip phase and sender-blocked phase, each
    minIters: 5,
    maxIters: 20000,
    heapBudgetMs: 200,
    heapMaxIters: 5000,
    streamMs: 400,
    streamRepeats: 5,
    parkedIters: 200,
    pauseMs: 5,
    coldStartRepeats: 7,
    amortiseTasks: 1000,
    // event-loop families (eventloop/)
    serviceBlocks: 5, // hot round trips: blocks per row, rotating through the rows
    idleIters: 100, // idle round trips per row and size
    streamWarmCount: 20000, // messages of the calibration window (and the fewest per window)
    streamMaxCount: 2000000,
    fanoutSizes: [64 * 1024, 1024 * 1024],
    fanoutConsumers: [2, 4],
    fanoutSlots: 16,
    fanoutBytes: 256 * 1024 * 1024, // payload moved per cell, over fanoutRepeats windows
    fanoutRepeats: 4,
    notifyIters: 200, // samples per call and number of waiters
    notifyRounds: 4,
    notifySettleMs: 1,
    rpcSizes: [64, MIB], // replaced by --sizes
    rpcServers: [1, 2],
    rpcInFlight: 4, // calls in flight per server in the calls/s windows
    rpcPhaseMs: 250, // round trips (one call in flight) per row and cell
    rpcBlocks: 4, // round trips: blocks per row, rotating through the rows
    rpcWindows: 5, // calls/s windows per row and cell
    rpcWindowMs: 100,
    rpcLeadMs: 20, // untimed calls in flight before each window
    topicFanoutSizes: [64 * KIB, MIB],
    topicSubscribers: [1, 2, 4],
    topicWindow: 16, // samples in flight: the topic's capacity and its pool's slots
    topicAckEvery: 4, // the message rows' subscribers acknowledge every that many samples
    topicWarmBytes: 16 * MIB, // payload of the untimed first window of a row (at least 4 × topicWindow samples)
    topicWindowMs: 50, // fan-out and event-loop windows: samples for about this long, from the row's first window
    topicMaxItems: 200000,
    topicRepeats: 7, // fan-out and event-loop windows per row and cell
    topicCostSizes: [64, MIB],
    topicCostSubscribers: [0, 1, 2, 4],
    topicCostIters: 2000, // publishes (or k trySends) per pass
    topicCostRounds: 5, // passes per row and cell
    topicLoopSize: 64 * KIB,
  },
  quick: {
    sizes: [KIB, MIB],
    warmupMs: 20,
    phaseMs: 40,
    minIters: 3,
    maxIters: 3000,
    heapBudgetMs: 30,
    heapMaxIters: 1000,
    streamMs: 60,
    streamRepeats: 3,
    parkedIters: 30,
    pauseMs: 5,
    coldStartRepeats: 3,
    amortiseTasks: 1000,
    serviceBlocks: 3,
    idleIters: 20,
    streamWarmCount: 2000,
    streamMaxCount: 200000,
    fanoutSizes: [64 * 1024, 1024 * 1024],
    fanoutConsumers: [2, 4],
    fanoutSlots: 16,
    fanoutBytes: 32 * 1024 * 1024,
    fanoutRepeats: 2,
    notifyIters: 20,
    notifyRounds: 2,
    notifySettleMs: 1,
    rpcSizes: [64, MIB],
    rpcServers: [1, 2],
    rpcInFlight: 4,
    rpcPhaseMs: 30,
    rpcBlocks: 2,
    rpcWindows: 3,
    rpcWindowMs: 25,
    rpcLeadMs: 5,
    topicFanoutSizes: [64 * KIB, MIB],
    topicSubscribers: [1, 2, 4],
    topicWindow: 16,
    topicAckEvery: 4,
    topicWarmBytes: 2 * MIB,
    topicWindowMs: 8,
    topicMaxItems: 20000,
    topicRepeats: 2,
    topicCostSizes: [64, MIB],
    topicCostSubscribers: [0, 1, 2, 4],
    topicCostIters: 200,
    topicCostRounds: 2,
    topicLoopSize: 64 * KIB,
  },
}

/** '64k' → 65536, '1m' → 1048576, '1000' → 1000. */
function parseSize(text) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(k|kb|kib|m|mb|mib|g|gb|gib|b)?\s*$/i.exec(text)
  if (m === null) throw new Error(`bad size ${JSON.stringify(text)} (use e.g. 1k, 64k, 1m, 16m)`)
  const unit = (m[2] || 'b')[0].toLowerCase()
  const bytes = Math.round(Number(m[1]) * { b: 1, k: KIB, m: MIB, g: 1024 * MIB }[unit])
  if (!(bytes >= 64 && bytes <= 1024 * MIB)) throw new Error(`size ${text} out of range (64 bytes to 1 GiB)`)
  return bytes
}

const ALIASES = {
  sabpool: ['ticket', 'channel', 'channel-spin'],
  floor: ['ring'],
  postmessage: ['clone-bytes', 'clone-matrix', 'clone-objects', 'transfer'],
  objects: ['clone-matrix', 'clone-objects', 'codec-value-matrix', 'codec-value-spin-matrix', 'codec-json-matrix', 'codec-value-objects', 'codec-value-spin-objects', 'codec-json-objects'],
}

/** `--only` → { mechanisms, families }, each in report order. */
function parseOnly(text) {
  const chosen = new Set()
  const families = new Set()
  for (const raw of text.split(',')) {
    const name = raw.trim().toLowerCase()
    if (name === '') continue
    if (name === 'eventloop' || FAMILY_IDS.includes(name)) {
      for (const f of name === 'eventloop' ? FAMILY_IDS : [name]) families.add(f)
      continue
    }
    const hits = ALIASES[name] ?? ids.filter((id) => id === name || id.startsWith(`${name}-`))
    if (hits.length === 0) throw new Error(`unknown mechanism ${JSON.stringify(raw)}; known: ${ids.join(', ')}; families: ${FAMILY_IDS.join(', ')}, eventloop`)
    for (const id of hits) chosen.add(id)
  }
  if (chosen.size === 0 && families.size === 0) throw new Error('--only needs at least one mechanism or family')
  return { mechanisms: ids.filter((id) => chosen.has(id)), families: FAMILY_IDS.filter((f) => families.has(f)) }
}

function parseArgs(argv) {
  const opts = { quick: false, full: false, processes: false, sizes: null, only: null, json: null, svg: null, help: false }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined]
    const value = () => {
      if (inline !== undefined) return inline
      const v = argv[++i]
      if (v === undefined || v.startsWith('--')) throw new Error(`${flag} needs a value`)
      return v
    }
    switch (flag) {
      case '--quick': opts.quick = true; break
      case '--full': opts.full = true; break
      case '--processes': opts.processes = true; break
      case '--sizes': opts.sizes = [...new Set(value().split(',').filter((s) => s.trim() !== '').map(parseSize))].sort((a, b) => a - b); break
      case '--only': opts.only = parseOnly(value()); break
      case '--json': opts.json = value(); break
      case '--svg': opts.svg = value(); break
      case '-h': case '--help': opts.help = true; break
      default: throw new Error(`unknown option ${arg}`)
    }
  }
  if (opts.quick && opts.full) throw new Error('--quick and --full exclude each other')
  if (opts.sizes !== null && opts.sizes.length === 0) throw new Error('--sizes needs at least one size')
  return opts
}

/** The run's configuration: a preset, then the options. */
function configure(opts) {
  const preset = opts.quick ? 'quick' : opts.full ? 'full' : 'default'
  const cfg = { preset, ...(opts.quick ? PRESETS.quick : PRESETS.default) }
  cfg.sizes = opts.sizes ?? (opts.full ? [...cfg.sizes, 64 * MIB] : cfg.sizes)
  cfg.rpcSizes = opts.sizes ?? cfg.rpcSizes
  cfg.mechanisms = opts.only?.mechanisms ?? ids
  cfg.families = opts.only?.families ?? FAMILY_IDS
  cfg.parkedSize = KIB
  // The process cells use the same sizes and phase budgets: the slowest (JSON of 16 MiB, about
  // 0.4 s per round trip) run their minimum iterations, and the section takes 40–60 s (~5 s quick).
  cfg.processes = opts.processes ? { mechanisms: processIds, sizes: cfg.sizes, parkedSize: KIB } : null
  return cfg
}

module.exports = { USAGE, parseArgs, parseSize, configure }
