#!/usr/bin/env node
'use strict'

// Packs what `npm publish` would publish, without publishing: the main package `sabpool` (JS,
// types, the generated loader binding.js, and the Rust sources for source builds; no binaries)
// and one `sabpool-<platform>` package per npm/<platform>/ directory whose binary
// `sabpool.<platform>.node` has been built into the repository root (`npm run build` builds the
// one for this machine; CI on other platforms builds the others). Directories without a binary
// are skipped and listed.
//
//   node scripts/pack.js [--out DIR] [--json] [--strict]
//
// --out DIR   where the tarballs go (default: the repository root; *.tgz is gitignored)
// --json      print a JSON summary on stdout (human-readable lines go to stderr)
// --strict    fail if a binary is older than the Rust sources (default: warn)

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')

const ROOT = path.resolve(__dirname, '..')

function parseArgs(argv) {
  const args = { out: ROOT, json: false, strict: false }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--out') args.out = path.resolve(argv[++i])
    else if (a === '--json') args.json = true
    else if (a === '--strict') args.strict = true
    else throw new Error(`unknown argument ${a}; usage: node scripts/pack.js [--out DIR] [--json] [--strict]`)
  }
  return args
}

function npm(args, cwd) {
  const npmCli = process.env.npm_execpath
  const r = npmCli && /\.[cm]?js$/.test(npmCli)
    ? spawnSync(process.execPath, [npmCli, ...args], { cwd, encoding: 'utf8' })
    : spawnSync('npm', args, { cwd, encoding: 'utf8', shell: process.platform === 'win32' })
  if (r.status !== 0) throw new Error(`npm ${args.join(' ')} failed in ${cwd} (exit ${r.status}):\n${r.stderr}`)
  return r.stdout
}

function pack(dir, out) {
  const [info] = JSON.parse(npm(['pack', '--json', '--ignore-scripts', '--pack-destination', out], dir))
  return { name: info.name, version: info.version, tarball: path.join(out, info.filename), size: info.size, files: info.files.map((f) => f.path).sort() }
}

function newestMtime(p) {
  const st = fs.statSync(p)
  if (!st.isDirectory()) return st.mtimeMs
  let newest = 0
  for (const e of fs.readdirSync(p)) newest = Math.max(newest, newestMtime(path.join(p, e)))
  return newest
}

function main() {
  const args = parseArgs(process.argv.slice(2))
  const say = (msg) => (args.json ? process.stderr : process.stdout).write(`${msg}\n`)
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
  fs.mkdirSync(args.out, { recursive: true })

  for (const f of ['binding.js', 'binding.d.ts']) {
    if (!fs.existsSync(path.join(ROOT, f))) throw new Error(`${f} is missing: run \`npm run build\` first (it generates the loader)`)
  }

  // The platform packages must match the main package's version and optionalDependencies.
  const npmDir = path.join(ROOT, 'npm')
  const platforms = fs.readdirSync(npmDir).filter((d) => fs.existsSync(path.join(npmDir, d, 'package.json'))).sort()
  const problems = []
  for (const d of platforms) {
    const p = JSON.parse(fs.readFileSync(path.join(npmDir, d, 'package.json'), 'utf8'))
    if (p.name !== `${pkg.name}-${d}`) problems.push(`npm/${d}: name is ${p.name}, expected ${pkg.name}-${d}`)
    if (p.version !== pkg.version) problems.push(`npm/${d}: version ${p.version} differs from ${pkg.version} (run \`napi version\`)`)
    if ((pkg.optionalDependencies || {})[p.name] !== pkg.version) problems.push(`package.json optionalDependencies lacks ${p.name}@${pkg.version}`)
  }
  if (problems.length) throw new Error(problems.join('\n'))

  const sourcesMtime = Math.max(...['src', 'crates', 'Cargo.toml', 'Cargo.lock', 'build.rs'].map((f) => newestMtime(path.join(ROOT, f))))
  const result = { main: pack(ROOT, args.out), platforms: [], skipped: [] }
  say(`${path.basename(result.main.tarball)}: ${result.main.files.length} files, ${result.main.size} bytes`)

  for (const d of platforms) {
    const p = JSON.parse(fs.readFileSync(path.join(npmDir, d, 'package.json'), 'utf8'))
    const binary = path.join(ROOT, p.main)
    if (!fs.existsSync(binary)) {
      result.skipped.push({ name: p.name, reason: `${p.main} not built on this machine` })
      say(`${p.name}: skipped (${p.main} is not built here; build it on ${d})`)
      continue
    }
    if (fs.statSync(binary).mtimeMs < sourcesMtime) {
      const msg = `${p.main} is older than the Rust sources: run \`npm run build\``
      if (args.strict) throw new Error(msg)
      say(`warning: ${msg}`)
    }
    // Stage a copy so the binary never lands in the work tree's npm/ directory.
    const stage = fs.mkdtempSync(path.join(os.tmpdir(), `sabpool-pack-${d}-`))
    try {
      for (const f of fs.readdirSync(path.join(npmDir, d))) fs.copyFileSync(path.join(npmDir, d, f), path.join(stage, f))
      fs.copyFileSync(binary, path.join(stage, p.main))
      const info = pack(stage, args.out)
      result.platforms.push(info)
      say(`${path.basename(info.tarball)}: ${info.files.join(', ')}, ${info.size} bytes`)
    } finally {
      fs.rmSync(stage, { recursive: true, force: true })
    }
  }
  if (args.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n')
}

try {
  main()
} catch (err) {
  process.stderr.write(`pack: ${err.message}\n`)
  process.exit(1)
}
