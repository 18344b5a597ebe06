#!/usr/bin/env node
'use strict'

// Runs the JS test suite under Bun and Deno, with the addon as built (Node-API: the same binary
// Node loads), the way scripts/node-matrix.js runs it on several Node versions.
//
// Each runtime comes from the npm registry, installed once into .runtime-matrix/<name>-<version>/
// (gitignored) and reused after that:
//   Bun   @oven/bun-linux-x64      (bin/bun)
//   Deno  @deno/linux-x64-glibc    (deno)
//
//   node scripts/runtime-matrix.js [--runtimes bun,deno] [--bun 1.4] [--deno 2.9] [--offline]
//                                  [--file-timeout S] [--list-skips] [test files...]
//
// --runtimes     which to run (default bun,deno)
// --bun, --deno  a release line (newest release of it, looked up with `npm view`: default 1.4 and
//                2.9) or an exact version; offline, the newest one of the line already cached
// --offline      do not ask the registry; use cached runtimes only
// --file-timeout S  kill a test file that runs longer than S seconds (default 240): it fails
// --list-skips   print what is skipped or tolerated under each runtime, and why, then exit
// test files     instead of __test__/*.test.js
//
// How the test files run, unchanged (they are node:test files):
//   Bun   `bun test --timeout=120000 FILE`: Bun's node:test is its own test runner underneath, so a
//         node:test file has to run under `bun test` (`bun FILE` refuses describe()); the per-test
//         timeout is raised from Bun's 5 s default, node:test has none.
//   Deno  `deno test -A --no-check --reporter=tap FILE`: Deno maps node:test onto Deno.test,
//         which only `deno test` runs (`deno run` registers the tests and exits). -A grants
//         what the suite uses (read/write files, env, ffi for the addon, run for child processes,
//         sys); package.json's "type": "commonjs" makes Deno load the .js files as CommonJS.
//
// SKIPS below name every file left out and every test skipped under a runtime, each with the
// reason (a Node-only API, or a difference of the runtime); scripts/runtime-skip.cjs, preloaded
// into each file, marks those tests skipped with their reason. Anything else that fails, fails
// the run.
//
// Prints a per-runtime table; exits 1 if a runtime failed. Full output of each run is in
// .runtime-matrix/logs/<name>-<version>.log. SABPOOL_RUNTIME_MATRIX_DIR moves the cache.

const fs = require('node:fs')
const path = require('node:path')
const { spawn, spawnSync } = require('node:child_process')

const ROOT = path.resolve(__dirname, '..')
const CACHE = path.resolve(process.env.SABPOOL_RUNTIME_MATRIX_DIR || path.join(ROOT, '.runtime-matrix'))
/** Marks the tests SKIPS names as skipped (see runtime-skip.cjs). */
const PRELOAD = path.join(__dirname, 'runtime-skip.cjs')

const RUNTIMES = {
  bun: {
    title: 'Bun',
    pkg: '@oven/bun-linux-x64',
    line: '1.4',
    bin: (dir) => path.join(dir, 'node_modules', '@oven', 'bun-linux-x64', 'bin', 'bun'),
    probe: ['--version'],
    args: (file) => ['test', '--timeout=120000', `--preload=${PRELOAD}`, file],
    parse: parseBun,
  },
  deno: {
    title: 'Deno',
    pkg: '@deno/linux-x64-glibc',
    line: '2.9',
    bin: (dir) => path.join(dir, 'node_modules', '@deno', 'linux-x64-glibc', 'deno'),
    probe: ['--version'],
    args: (file) => ['test', '-A', '--no-check', '--reporter=tap', `--preload=${PRELOAD}`, file],
    parse: parseDeno,
  },
}

// ---- what is left out, and why ------------------------------------------------------------------
//
// files: file → why it does not run at all under that runtime.
// tests: [file, part of the test's full name ('describe > test'), why]: matching tests are skipped
// (scripts/runtime-skip.cjs, preloaded, marks them skipped with the reason; the files stay
// unchanged). Each reason says what the runtime does differently from Node.

/** Differences both runtimes share. */
const NODE_ONLY = {
  codeCache: 'lib/ from V8 code caches is a Node-only path (lib/load.js: vm.Script cachedData and Module internals); under Bun and Deno lib/ loads by plain require, so no file comes from a cache',
  gc: "needs V8's gc() (node --expose-gc, or v8.setFlagsFromString('--expose-gc') then vm), which this runtime does not give",
  oom: 'worker resourceLimits are not enforced: the worker never runs out of memory, and the test waits 30 s for ERR_WORKER_OUT_OF_MEMORY',
}

/** Deno 2.9: worker.terminate() emits 'exit' at once but does not stop the worker's running JavaScript (a busy loop still counts seconds later); sabpool ends its own blocking waits then (ERR_SABPOOL_TERMINATED, lib/wait.js), not a loop of the test's own. */
const DENO_TERMINATE = "Deno's worker.terminate() does not stop a worker's running JavaScript, and this fixture spins or waits in a loop of its own (not a sabpool wait, which sabpool ends), so the worker never ends and what it holds never comes back"
/** Deno 2.9: its parentPort (the worker's global scope) has no close(). */
const DENO_PORT_CLOSE = "the fixture ends the worker with parentPort.close(), which Deno's parentPort does not have (TypeError: the worker exits with code 1, not 0)"
/** Deno 2.9: a child's process.send() is written out by its event loop. */
const DENO_IPC = "a Deno child's process.send() is written out by its event loop, so a message sent right before a blocking wait may not leave until the wait ends (seen every time for some of these fixtures, now and then for others); the fixture sends and then blocks in a sync wait for the parent's answer to that message, so neither side moves until the child's recvSync times out"

/** Both: a test that runs the bench itself, which starts a Node with --expose-gc (timings, as bench.test.js). */
const BENCH_RUN = 'runs the benchmark (which re-executes itself with --expose-gc for its GC-free heap windows): slow, and timings mean nothing across runtimes, as for bench.test.js'

const SKIPS = {
  bun: {
    files: {
      'bench.test.js': 'benchmarks: slow, and timings mean nothing across runtimes (the Node matrix leaves it out too)',
      'soak.test.js': NODE_ONLY.gc,
    },
    tests: [
      ['bench-codec.test.js', 'bench --only objects runs the codec rows', BENCH_RUN],
      ['channel.test.js', 'a consumer that leaves (throw) holding received leases', 'Bun reports exit code 0 for a worker ended by an uncaught exception (Node: 1), and the test asserts the code'],
      ['pool.test.js', 'a worker that exits while holding leases has them reclaimed > when it throws', 'Bun reports exit code 0 for a worker ended by an uncaught exception (Node: 1), and the test asserts the code'],
      ['pool.test.js', 'a pool object that is garbage-collected gives its leases back', NODE_ONLY.gc],
      ['dead.test.js', 'ERR_WORKER_OUT_OF_MEMORY', `Bun: ${NODE_ONLY.oom}`],
      ['esm.test.js', "'sabpool/package.json' is exported, internals are not", "Bun refuses a path the exports map hides with MODULE_NOT_FOUND, not Node's ERR_PACKAGE_PATH_NOT_EXPORTED, and the test checks the code"],
      ['load.test.js', 'lib/ from code caches >', NODE_ONLY.codeCache],
      ['piscina.test.js', 'aborted after the worker replied but before piscina delivered it', "piscina 5 under Bun does not emit the 'error' event this test waits for after aborting a run whose reply is in flight"],
    ],
  },
  deno: {
    files: {
      'bench.test.js': 'benchmarks: slow, and timings mean nothing across runtimes (the Node matrix leaves it out too)',
      'soak.test.js': NODE_ONLY.gc,
    },
    tests: [
      ['bench-codec.test.js', 'bench --only objects runs the codec rows', BENCH_RUN],
      ['channel.test.js', 'a consumer that leaves (return) holding received leases', DENO_PORT_CLOSE],
      ['channel.test.js', 'a producer that exits leaves its queued leases receivable', DENO_PORT_CLOSE],
      ['channel.test.js', 'a worker terminated while blocked in sendSync', "Deno's worker.terminate() lets the worker run on; sabpool ends its sendSync with ERR_SABPOOL_TERMINATED and the fixture, catching it, releases the lease itself: it comes back as released, not reclaimed, which the test counts (terminated.test.js checks this path)"],
      ['pool.test.js', 'keeps the event loop running while pending and is woken by a worker release', DENO_PORT_CLOSE],
      ['table.test.js', 'pool participant facts > poolDescribe gives', DENO_PORT_CLOSE],
      ['esm.test.js', 'a worker round trip with', DENO_PORT_CLOSE],
      ['package.test.js', 'installs offline without Rust and runs a worker round trip', DENO_PORT_CLOSE],
      ['esm.test.js', "import('sabpool') resolves to index.mjs", "Deno resolves the package importing itself by name (the test imports 'sabpool' from inside it) to index.js through its CommonJS interop (keys 'module.exports', '_internal'), not to the exports map's import entry; from a project's node_modules, import 'sabpool' does get index.mjs under Deno"],
      ['dead.test.js', 'ERR_WORKER_OUT_OF_MEMORY', `Deno: ${NODE_ONLY.oom}`],
      ['load.test.js', 'lib/ from code caches >', NODE_ONLY.codeCache],
      ['piscina.test.js', 'aborted while it runs: piscina terminates its thread', DENO_TERMINATE],
      ['piscina.test.js', 'aborted after the reply was announced, before its handoff', DENO_TERMINATE],
      ['piscina.test.js', 'destroy() while tasks run and wait', DENO_TERMINATE],
      ['service.test.js', 'a server that is terminated while handling', DENO_TERMINATE],
      ['topic.test.js', 'a subscriber thread that dies (terminate)', DENO_TERMINATE],
      ['processes.test.js', 'pending async waits do not occupy libuv pool threads', "Deno runs `process.execPath -e <code>` as an ES module, and the test's child script uses __filename"],
      ['processes.test.js', 'lease.bytes.buffer is a SharedArrayBuffer on Node >= 26.1', 'Deno says it is Node 26.3.0 (process.version) but its Node-API cannot make a SharedArrayBuffer over external memory: a file mapping is an ArrayBuffer there, as on Node 20 (it works; the test expects the SharedArrayBuffer)'],
      ['service.test.js', 'Service across processes (file-backed pools) >', DENO_IPC],
      ['topic.test.js', 'processes publish and subscribe by name', DENO_IPC],
      ['topic.test.js', 'a participant killed while retiring a dead subscriber', DENO_IPC],
      ['topic.test.js', 'a subscriber killed between clearing the last reference and releasing the slot', DENO_IPC],
    ],
  },
}

// ---- arguments, registry, installs --------------------------------------------------------------

function parseArgs(argv) {
  const args = { runtimes: ['bun', 'deno'], want: { bun: RUNTIMES.bun.line, deno: RUNTIMES.deno.line }, offline: false, fileTimeout: 240, listSkips: false, files: [] }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--runtimes') args.runtimes = argv[++i].split(',')
    else if (a === '--bun') args.want.bun = argv[++i]
    else if (a === '--deno') args.want.deno = argv[++i]
    else if (a === '--offline') args.offline = true
    else if (a === '--file-timeout') args.fileTimeout = Number(argv[++i])
    else if (a === '--list-skips') args.listSkips = true
    else if (a.startsWith('--')) throw new Error(`unknown option ${a}`)
    else args.files.push(a)
  }
  for (const r of args.runtimes) if (!RUNTIMES[r]) throw new Error(`unknown runtime ${r} (bun, deno)`)
  for (const r of Object.keys(args.want)) {
    if (!/^\d+\.\d+(\.\d+)?$/.test(args.want[r])) throw new Error(`--${r} takes a release line (1.4) or a version (1.4.5)`)
  }
  if (!(args.fileTimeout > 0)) throw new Error('--file-timeout takes a number of seconds')
  return args
}

function npm(args, options = {}) {
  const npmCli = process.env.npm_execpath
  return npmCli && /\.[cm]?js$/.test(npmCli)
    ? spawnSync(process.execPath, [npmCli, ...args], { encoding: 'utf8', ...options })
    : spawnSync('npm', args, { encoding: 'utf8', ...options })
}

function semverCompare(a, b) {
  const pa = a.split('.').map(Number)
  const pb = b.split('.').map(Number)
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i] - pb[i]
  return 0
}

function installDir(name, version) {
  return path.join(CACHE, `${name}-${version}`)
}

function cachedVersions(name) {
  if (!fs.existsSync(CACHE)) return []
  const prefix = `${name}-`
  return fs.readdirSync(CACHE)
    .filter((d) => d.startsWith(prefix) && /^\d+\.\d+\.\d+$/.test(d.slice(prefix.length)))
    .map((d) => d.slice(prefix.length))
    .filter((v) => fs.existsSync(RUNTIMES[name].bin(installDir(name, v))))
}

/** The newest release (no pre-releases) of the wanted line, or the exact version asked for. */
function resolveVersion(name, want, offline) {
  if (/^\d+\.\d+\.\d+$/.test(want)) return want
  const { pkg } = RUNTIMES[name]
  let available = null
  if (!offline) {
    const r = npm(['view', pkg, 'versions', '--json'])
    if (r.status === 0) available = [].concat(JSON.parse(r.stdout))
    else console.error(`runtime-matrix: npm view ${pkg} failed (${r.stderr.trim().split('\n').pop()}); using cached versions`)
  }
  if (!available) available = cachedVersions(name)
  const newest = available.filter((v) => /^\d+\.\d+\.\d+$/.test(v) && v.startsWith(`${want}.`)).sort(semverCompare).pop()
  if (!newest) throw new Error(`no ${pkg} release ${want}.x found${offline ? ' in the cache' : ''}`)
  return newest
}

function install(name, version) {
  const { pkg, bin } = RUNTIMES[name]
  const dir = installDir(name, version)
  const exe = bin(dir)
  if (fs.existsSync(exe)) return exe
  fs.mkdirSync(dir, { recursive: true })
  console.error(`runtime-matrix: installing ${pkg}@${version} into ${path.relative(ROOT, dir) || dir}`)
  // --ignore-scripts: the packages ship the binary itself; nothing to run.
  const r = npm(['install', '--prefix', dir, '--no-save', '--no-package-lock', '--ignore-scripts', '--no-audit', '--no-fund', `${pkg}@${version}`], { stdio: ['ignore', 'ignore', 'pipe'] })
  if (r.status !== 0 || !fs.existsSync(exe)) throw new Error(`installing ${pkg}@${version} failed:\n${r.stderr}`)
  return exe
}

// ---- output of one test file --------------------------------------------------------------------

/**
 * `bun test` output: a `(pass)`, `(fail)`, `(skip)` or `(todo)` line per test, named
 * 'describe > test' (failures are listed again at the end: deduplicated), and the totals.
 */
function parseBun(output) {
  const results = new Map()
  for (const line of output.split('\n')) {
    const m = line.match(/^\((pass|fail|skip|todo)\) (.*?)(?: \[[\d.]+m?s\])?$/)
    if (m && !results.has(m[2])) results.set(m[2], m[1])
  }
  return results
}

/**
 * `deno test --reporter=tap` output: nested TAP, a suite's subtests indented four spaces under
 * its `# Subtest:` line and closed by its plan (`1..N`) and its own `ok` line. Leaves only, named
 * 'describe > test'.
 */
function parseDeno(output) {
  const results = new Map()
  const stack = []
  const lines = output.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]
    const sub = line.match(/^( *)# Subtest: (.*)$/)
    if (sub) {
      const depth = sub[1].length / 4
      stack.length = depth
      stack[depth] = sub[2]
      continue
    }
    const m = line.match(/^( *)(not ok|ok) \d+ - (.*?)(?: # (SKIP|TODO)\b.*)?$/i)
    if (!m) continue
    const depth = m[1].length / 4
    // A suite's own line comes right after its plan, which is indented deeper.
    const prev = lines[i - 1] ?? ''
    const plan = prev.match(/^( *)1\.\.\d+$/)
    if (plan && plan[1].length > m[1].length) continue
    const name = [...stack.slice(0, depth), m[3]].join(' > ')
    const outcome = m[4] ? m[4].toLowerCase() : m[2] === 'ok' ? 'pass' : 'fail'
    if (!results.has(name)) results.set(name, outcome)
  }
  return results
}

/**
 * Runs one test file in its own process group, so that on a time-out the runtime, the file's
 * processes and anything they started are all killed.
 */
let running = null
function runFile(exe, args, env, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn(exe, args, { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    running = child
    let output = ''
    let timedOut = false
    child.stdout.setEncoding('utf8').on('data', (d) => (output += d))
    child.stderr.setEncoding('utf8').on('data', (d) => (output += d))
    const timer = setTimeout(() => {
      timedOut = true
      try {
        process.kill(-child.pid, 'SIGKILL')
      } catch {
        // the process group is gone already
      }
    }, timeoutMs)
    child.on('close', (status, signal) => {
      clearTimeout(timer)
      running = null
      resolve({ status, signal, output, timedOut })
    })
  })
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (running) {
      try {
        process.kill(-running.pid, 'SIGKILL')
      } catch {
        // the process group is gone already
      }
    }
    process.exit(130)
  })
}

// ---- the matrix ---------------------------------------------------------------------------------

const strip = (s) => s.replace(/\x1b\[[0-9;]*m/g, '') // eslint-disable-line no-control-regex

async function runRuntime(name, version, files, fileTimeout) {
  const rt = RUNTIMES[name]
  const exe = install(name, version)
  const env = { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' }
  delete env.NODE_OPTIONS
  const probe = spawnSync(exe, rt.probe, { encoding: 'utf8', env })
  const loadScript = "const { SharedPool } = require('./index.js'); const p = new SharedPool({ slotSize: 64, slots: 2 }); const l = p.acquireSync(); l.release(); if (p.stats().released !== 1) throw new Error('release not counted')"
  const load = name === 'bun'
    ? spawnSync(exe, ['-e', loadScript], { cwd: ROOT, encoding: 'utf8', env })
    : spawnSync(exe, ['eval', '--ext=cjs', loadScript], { cwd: ROOT, encoding: 'utf8', env })
  const total = { tests: 0, pass: 0, fail: 0, skipped: 0, failures: [] }
  const fileResults = []
  const logLines = [`${rt.title} ${strip(probe.stdout).trim().split('\n')[0]}`]
  const started = Date.now()
  for (const file of files) {
    const base = path.basename(file)
    const skipReason = SKIPS[name].files[base]
    if (skipReason) {
      fileResults.push({ file, ok: true, skipped: true, secs: 0 })
      logLines.push(`\n# ${file}: skipped (${skipReason})`)
      continue
    }
    const t0 = Date.now()
    const skip = SKIPS[name].tests.filter(([f]) => f === base).map(([, part, reason]) => [part, reason])
    const r = await runFile(exe, rt.args(file), { ...env, SABPOOL_RUNTIME_SKIP: JSON.stringify(skip) }, fileTimeout * 1000)
    const secs = (Date.now() - t0) / 1000
    const output = strip(r.output)
    const results = rt.parse(output)
    let unexpected = 0
    for (const [test, outcome] of results) {
      total.tests++
      if (outcome === 'skip' || outcome === 'todo') {
        total.skipped++
        continue
      }
      if (outcome === 'pass') {
        total.pass++
      } else {
        total.fail++
        unexpected++
        total.failures.push(`${base}: ${test}`)
      }
    }
    // A file that crashed, hung or failed outside any test (an exit status the tests do not
    // explain) fails by itself, once.
    const explained = r.status === 0 || (results.size > 0 && [...results.values()].some((o) => o === 'fail'))
    if (r.timedOut || !explained) {
      const why = r.timedOut ? `timed out after ${fileTimeout} s (killed)` : `exit ${r.status}${r.signal ? `, signal ${r.signal}` : ''} with no failing test`
      total.fail++
      unexpected++
      total.failures.push(`${base}: ${why}; last output: ${output.trim().split('\n').slice(-3).join(' | ')}`)
    }
    // A skip entry that matched nothing is stale (a renamed test): it fails, so the list stays true.
    for (const [part] of skip) {
      if (![...results.keys()].some((t) => t.includes(part))) {
        total.fail++
        unexpected++
        total.failures.push(`${base}: the skip entry '${part}' matches no test (renamed?)`)
      }
    }
    fileResults.push({ file, ok: unexpected === 0, secs })
    logLines.push(`\n$ ${exe} ${rt.args(file).join(' ')}   # ${unexpected === 0 ? 'ok' : 'FAILED'}, ${secs.toFixed(1)} s\n${output}`)
    console.log(`runtime-matrix: ${rt.title} ${version} ${file}: ${unexpected === 0 ? 'ok' : 'FAILED'} (${secs.toFixed(1)} s)`)
  }
  const log = path.join(CACHE, 'logs', `${name}-${version}.log`)
  fs.writeFileSync(log, logLines.join('\n'))
  const ok = load.status === 0 && fileResults.every((f) => f.ok)
  return {
    name,
    version,
    loads: load.status === 0,
    loadError: strip(`${load.stdout}\n${load.stderr}`).trim().split('\n').slice(0, 8).join('\n'),
    ...total,
    files: fileResults.filter((f) => !f.skipped).length,
    skippedFiles: fileResults.filter((f) => f.skipped).length,
    seconds: (Date.now() - started) / 1000,
    ok,
    log,
    fileResults,
  }
}

function listSkips() {
  for (const [name, s] of Object.entries(SKIPS)) {
    console.log(`${RUNTIMES[name].title}:`)
    for (const [file, reason] of Object.entries(s.files)) console.log(`  skipped file ${file}: ${reason}`)
    for (const [file, part, reason] of s.tests) console.log(`  skipped test in ${file} '${part}': ${reason}`)
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2))
  if (args.listSkips) return listSkips()
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`runtime-matrix installs the Linux x64 builds of Bun and Deno; this is ${process.platform}/${process.arch}`)
  }
  let files = args.files
  if (files.length === 0) {
    files = fs.readdirSync(path.join(ROOT, '__test__')).filter((f) => f.endsWith('.test.js')).sort().map((f) => path.join('__test__', f))
  }
  // `bun test` takes a bare name as a filter: a path must start with ./ or /.
  files = files.map((f) => (path.isAbsolute(f) || f.startsWith('./') ? f : `./${f}`))
  if (!fs.existsSync(path.join(ROOT, 'binding.js'))) throw new Error('binding.js is missing: run `npm install` (or `npm run build`) first')
  fs.mkdirSync(path.join(CACHE, 'logs'), { recursive: true })
  if (!fs.existsSync(path.join(CACHE, '.gitignore'))) fs.writeFileSync(path.join(CACHE, '.gitignore'), '*\n')

  const versions = Object.fromEntries(args.runtimes.map((r) => [r, resolveVersion(r, args.want[r], args.offline)]))
  console.log(`runtime-matrix: ${args.runtimes.map((r) => `${RUNTIMES[r].title} ${versions[r]}`).join(', ')}; ${files.length} test files`)
  const rows = []
  for (const name of args.runtimes) {
    const row = await runRuntime(name, versions[name], files, args.fileTimeout)
    rows.push(row)
    console.log(`runtime-matrix: ${RUNTIMES[name].title} ${row.version}: ${row.ok ? 'PASS' : 'FAIL'} (${row.pass}/${row.tests} passed, ${row.skipped} skipped, ${row.seconds.toFixed(0)} s)`)
  }

  const header = ['runtime', 'version', 'addon loads', 'files', 'skipped files', 'tests', 'pass', 'fail', 'skipped', 'time', 'result']
  const table = rows.map((r) => [
    RUNTIMES[r.name].title, r.version, r.loads ? 'yes' : 'NO', String(r.files), String(r.skippedFiles), String(r.tests),
    String(r.pass), String(r.fail), String(r.skipped), `${r.seconds.toFixed(0)} s`, r.ok ? 'PASS' : 'FAIL',
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i].length)))
  const fmt = (row) => row.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()
  console.log(`\n${fmt(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${table.map(fmt).join('\n')}`)

  for (const r of rows) {
    if (r.ok) continue
    const bad = r.fileResults.filter((f) => !f.ok).map((f) => f.file)
    console.log(`\n${RUNTIMES[r.name].title} ${r.version} failed in ${bad.join(', ') || 'loading the addon'}; log: ${path.relative(ROOT, r.log)}`)
    if (!r.loads) console.log(`  the addon did not load:\n${r.loadError.replace(/^/gm, '    ')}`)
    for (const f of r.failures) console.log(`  not ok: ${f}`)
  }
  const passed = rows.reduce((n, r) => n + r.pass, 0)
  const failed = rows.reduce((n, r) => n + r.fail + (r.loads ? 0 : 1), 0)
  console.log(`\nruntime-matrix: ${rows.map((r) => `${RUNTIMES[r.name].title} ${r.version} ${r.ok ? 'pass' : 'FAIL'}`).join(', ')}`)
  console.log(`runtime-matrix: ${passed} passed, ${failed} failed`)
  process.exitCode = rows.every((r) => r.ok) ? 0 : 1
}

main().catch((err) => {
  console.error(`runtime-matrix: ${err.message}`)
  process.exitCode = 1
})
