#!/usr/bin/env node
'use strict'

// `npm install` hook of sabpool: make sure a native addon for this platform is there.
//
// 1. Source checkout (Cargo.toml and src/lib.rs here, and this directory is not inside a
//    node_modules folder: a git clone, `npm link`, a `file:` dependency): always rebuild from
//    source with `npm run build` (napi build), so a developer never runs a stale binary.
// 2. Installed package (inside node_modules): if a prebuilt binary loads (the optional package
//    `sabpool-<platform>` or a local `sabpool.<platform>.node`), do nothing.
// 3. Otherwise, if `cargo` is available, build from the Rust sources shipped in the package with
//    `cargo build --release` and put the result next to binding.js as `sabpool.<platform>.node`.
// 4. Otherwise fail with a message saying which platform, what is missing and how to fix it.
//
// SABPOOL_BUILD (or `npm install --sabpool-build=...`): `auto` (default) as above; `source` to
// build from source even when a prebuilt binary loads; `skip` to do nothing at all.
// CARGO: the cargo command to run (default `cargo`). CARGO_TARGET_DIR is honoured by the
// installed-package build; without it, a temporary target directory is used and removed.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')

const ROOT = path.resolve(__dirname, '..')
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
const BINARY_NAME = (PKG.napi && PKG.napi.binaryName) || PKG.name
const LIB_NAME = BINARY_NAME.replace(/-/g, '_')
const BUILD_HINT = 'set SABPOOL_BUILD=source to force a build from source, SABPOOL_BUILD=skip to skip this step'

function log(msg) {
  process.stderr.write(`sabpool: ${msg}\n`)
}

function fail(lines) {
  process.stderr.write(`\nsabpool: cannot install the native addon\n${lines.map((l) => `  ${l}`).join('\n')}\n\n`)
  process.exit(1)
}

// ---- platform ------------------------------------------------------------------------------

function isMusl() {
  if (process.platform !== 'linux') return false
  try {
    return fs.readFileSync('/usr/bin/ldd', 'utf8').includes('musl')
  } catch {
    // no readable ldd: ask the process report below
  }
  const report = process.report && typeof process.report.getReport === 'function' ? process.report.getReport() : null
  if (report && report.header && report.header.glibcVersionRuntime) return false
  if (report && Array.isArray(report.sharedObjects)) return report.sharedObjects.some((f) => f.includes('libc.musl-') || f.includes('ld-musl-'))
  return false
}

/** The `<platform>` part of `sabpool.<platform>.node` / `sabpool-<platform>` that binding.js looks for. */
function platformSuffix() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const musl = isMusl()
    if (arch === 'arm') return musl ? 'linux-arm-musleabihf' : 'linux-arm-gnueabihf'
    return `linux-${arch}-${musl ? 'musl' : 'gnu'}`
  }
  if (platform === 'win32') {
    const v = (process.config && process.config.variables) || {}
    const gnu = arch === 'x64' && (v.shlib_suffix === 'dll.a' || v.node_target_type === 'shared_library')
    return `win32-${arch}-${gnu ? 'gnu' : 'msvc'}`
  }
  if (platform === 'android' && arch === 'arm') return 'android-arm-eabi'
  return `${platform}-${arch}`
}

const SUFFIX = platformSuffix()
const LOCAL_BINARY = path.join(ROOT, `${BINARY_NAME}.${SUFFIX}.node`)
const PLATFORM_PACKAGE = `${PKG.name}-${SUFFIX}`
const PREBUILT = Object.keys(PKG.optionalDependencies || {})
  .filter((n) => n.startsWith(`${PKG.name}-`))
  .map((n) => n.slice(PKG.name.length + 1))
const PLATFORM_DESC = `${process.platform}/${process.arch} (${SUFFIX}), Node ${process.version}`

// ---- probing -------------------------------------------------------------------------------

/**
 * Loads the addon in a fresh process (so nothing is cached from an earlier attempt): the local
 * `sabpool.<platform>.node`, then the package `sabpool-<platform>`, then binding.js itself (the
 * loader index.js uses). Returns { ok, from } or { ok: false, error } with a one-line reason.
 */
function probe() {
  if (!fs.existsSync(path.join(ROOT, 'binding.js'))) return { ok: false, error: 'binding.js is missing' }
  const code = `
    const fs = require('node:fs')
    const reasons = []
    let from = null
    const local = ${JSON.stringify(LOCAL_BINARY)}
    if (fs.existsSync(local)) {
      try { require(local); from = ${JSON.stringify(path.basename(LOCAL_BINARY))} } catch (e) { reasons.push(${JSON.stringify(path.basename(LOCAL_BINARY))} + ' does not load: ' + e.message) }
    }
    if (!from) {
      let resolved = null
      try { resolved = require.resolve(${JSON.stringify(PLATFORM_PACKAGE)}, { paths: [${JSON.stringify(ROOT)}] }) } catch {
        reasons.push('package ${PLATFORM_PACKAGE} is not installed')
      }
      if (resolved) {
        try { require(resolved); from = 'package ${PLATFORM_PACKAGE} (' + resolved + ')' } catch (e) { reasons.push('package ${PLATFORM_PACKAGE} does not load: ' + e.message) }
      }
    }
    if (from) {
      try {
        const b = require(${JSON.stringify(path.join(ROOT, 'binding.js'))})
        if (typeof b.poolCreate !== 'function') throw new Error('it has no poolCreate')
      } catch (e) { reasons.push('binding.js does not load: ' + e.message.split('\\n')[0]); from = null }
    }
    process.stdout.write(JSON.stringify(from ? { ok: true, from } : { ok: false, error: reasons.join('; ') }))`
  const r = spawnSync(process.execPath, ['-e', code], { cwd: ROOT, encoding: 'utf8' })
  try {
    return JSON.parse(r.stdout)
  } catch {
    return { ok: false, error: `probe crashed (exit ${r.status}, signal ${r.signal}): ${(r.stderr || '').trim().split('\n')[0]}` }
  }
}

function hasCargo() {
  const r = spawnSync(process.env.CARGO || 'cargo', ['--version'], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim() : null
}

function hasSources() {
  return ['Cargo.toml', 'build.rs', path.join('src', 'lib.rs'), path.join('crates', 'sabpool-core', 'Cargo.toml'), path.join('crates', 'sabpool-core', 'src', 'lib.rs')].every((f) => fs.existsSync(path.join(ROOT, f)))
}

function isSourceCheckout() {
  if (!fs.existsSync(path.join(ROOT, 'Cargo.toml')) || !fs.existsSync(path.join(ROOT, 'src', 'lib.rs'))) return false
  let real = ROOT
  try {
    real = fs.realpathSync(ROOT)
  } catch {
    // keep ROOT as it is
  }
  return !real.split(path.sep).includes('node_modules')
}

// ---- building ------------------------------------------------------------------------------

/** Source checkout: the napi CLI regenerates binding.js/binding.d.ts and the .node. */
function buildCheckout() {
  const cargo = hasCargo()
  if (!cargo) {
    fail([
      `This is a source checkout of sabpool (${ROOT} has Cargo.toml and src/lib.rs), so`,
      'npm install builds the native addon from source, but `cargo` was not found on PATH.',
      `Platform: ${PLATFORM_DESC}.`,
      'Fix: install a Rust toolchain (https://rustup.rs, or your package manager), then run npm install again.',
      `(Or ${BUILD_HINT}.)`,
    ])
  }
  let napiCli = null
  try {
    napiCli = require.resolve('@napi-rs/cli/package.json', { paths: [ROOT] })
  } catch {
    // not installed: reported just below
  }
  if (!napiCli) {
    fail([
      'This is a source checkout of sabpool, but the napi CLI (@napi-rs/cli, a devDependency) is not installed.',
      'Fix: run `npm install` without --omit=dev / --production.',
    ])
  }
  log(`source checkout: building the native addon from source for ${PLATFORM_DESC} with ${cargo}`)
  const npmCli = process.env.npm_execpath
  const r = npmCli && /\.[cm]?js$/.test(npmCli)
    ? spawnSync(process.execPath, [npmCli, 'run', 'build'], { cwd: ROOT, stdio: 'inherit' })
    : spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit', shell: process.platform === 'win32' })
  if (r.status !== 0) fail([`\`npm run build\` failed (exit code ${r.status}); see the compiler output above.`])
  const p = probe()
  if (!p.ok) fail([`the build finished but the addon does not load: ${p.error}`])
  log(`built ${path.basename(LOCAL_BINARY)}`)
}

/** Installed package without a prebuilt binary: plain cargo, no napi CLI needed. */
function buildInstalled(cargo) {
  const ownTarget = !process.env.CARGO_TARGET_DIR
  const targetDir = process.env.CARGO_TARGET_DIR || fs.mkdtempSync(path.join(os.tmpdir(), 'sabpool-cargo-'))
  log(`no prebuilt binary for ${PLATFORM_DESC}; building from source with ${cargo} (takes a minute)`)
  try {
    const r = spawnSync(process.env.CARGO || 'cargo', ['build', '--release', '--lib', '--locked'], {
      cwd: ROOT,
      stdio: 'inherit',
      env: { ...process.env, CARGO_TARGET_DIR: targetDir },
    })
    if (r.status !== 0) fail([`\`cargo build --release\` failed (exit code ${r.status}); see the compiler output above.`, `Platform: ${PLATFORM_DESC}.`])
    const artifact =
      process.platform === 'win32' ? `${LIB_NAME}.dll` : process.platform === 'darwin' ? `lib${LIB_NAME}.dylib` : `lib${LIB_NAME}.so`
    fs.copyFileSync(path.join(targetDir, 'release', artifact), LOCAL_BINARY)
  } finally {
    if (ownTarget) fs.rmSync(targetDir, { recursive: true, force: true })
  }
  const p = probe()
  if (!p.ok) fail([`built ${path.basename(LOCAL_BINARY)} but it does not load: ${p.error}`])
  log(`built ${path.basename(LOCAL_BINARY)}`)
}

// ---- main ----------------------------------------------------------------------------------

function main() {
  const mode = (process.env.SABPOOL_BUILD || process.env.npm_config_sabpool_build || 'auto').toLowerCase()
  if (!['auto', 'source', 'skip'].includes(mode)) fail([`SABPOOL_BUILD must be auto, source or skip, got ${JSON.stringify(mode)}`])
  if (mode === 'skip') return log('SABPOOL_BUILD=skip: not checking or building the native addon')

  if (isSourceCheckout()) return buildCheckout()

  let loadError = null
  if (mode !== 'source') {
    const p = probe()
    if (p.ok) return log(`using the prebuilt binary from ${p.from}`)
    loadError = p.error
  }
  const cargo = hasCargo()
  if (cargo && hasSources()) return buildInstalled(cargo)

  const prebuiltHere = PREBUILT.includes(SUFFIX)
  fail([
    `No usable native addon for ${PLATFORM_DESC}.`,
    prebuiltHere
      ? `A prebuilt binary is published for this platform as ${PLATFORM_PACKAGE}, but it is not usable: ${loadError || 'not checked (SABPOOL_BUILD=source)'}.`
      : `No prebuilt binary is published for ${SUFFIX}; prebuilt platforms: ${PREBUILT.join(', ') || 'none'}.`,
    prebuiltHere
      ? `Fix: make sure optional dependencies are installed (no --omit=optional / --no-optional; npm bug npm/cli#4828: delete node_modules and package-lock.json and reinstall), or install ${PLATFORM_PACKAGE}@${PKG.version} directly.`
      : 'Fix: install a Rust toolchain (https://rustup.rs) so that npm install can build sabpool from source (`cargo` on PATH), then reinstall.',
    cargo ? '' : '`cargo` was not found on PATH, so building from source was not possible (Rust: https://rustup.rs).',
    hasSources() ? '' : 'The Rust sources (Cargo.toml, build.rs, src/, crates/sabpool-core/) are missing from this package.',
  ].filter(Boolean))
}

main()
