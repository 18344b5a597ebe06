'use strict'
// Command-line pieces shared by scripts/stress.js and scripts/soak.js: flag parsing, --help
// (the script's leading comment block), the OK/FAILED verdict of a report, and the main entry
// point that runs, prints and sets the exit code (0 ok, 1 violations, 2 bad options or a crash).

/**
 * Parses `argv` into `{ json, help?, ...values }`. `names` maps each flag (`--slot-size`) to
 * its option name (`slotSize`); a flag takes its value inline (`--slots=8`) or as the next
 * argument. Values are non-negative numbers, except for option names listed in `strings`,
 * which are kept as given. `--json` and `--help`/`-h` take no value. Throws on anything else.
 */
function parseFlags(argv, names, { strings = [] } = {}) {
  const options = { json: false }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--json') { options.json = true; continue }
    if (arg === '--help' || arg === '-h') { options.help = true; continue }
    const [flag, inline] = arg.split('=', 2)
    const name = names[flag]
    if (name === undefined) throw new Error(`unknown option ${arg} (try --help)`)
    const raw = inline ?? argv[++i]
    if (strings.includes(name)) { options[name] = raw; continue }
    const value = Number(raw)
    if (raw === undefined || Number.isNaN(value) || value < 0) throw new Error(`${flag} needs a non-negative number, got ${raw}`)
    options[name] = value
  }
  return options
}

/** The usage text of a script: its leading `//` comment block (after the shebang and 'use strict'). */
function helpText(file) {
  const lines = require('node:fs').readFileSync(file, 'utf8').split('\n').slice(2)
  return lines.slice(0, lines.findIndex((l) => !l.startsWith('//'))).map((l) => l.replace(/^\/\/ ?/, '')).join('\n')
}

/** A count for people: rounded, with thousands separators. */
const n = (x) => Math.round(x).toLocaleString('en-US')

/** The closing lines of a report: OK, or FAILED and every violation. */
function verdictLines(report) {
  if (report.ok) return ['  OK: every check passed']
  return [`  FAILED: ${report.violations.length} violation(s)`, ...report.violations.map((v) => `    - ${v}`)]
}

/**
 * Runs a script from the command line: parses the arguments (exit 2 on bad ones), prints the
 * help, or calls `run(options, json)` (options without json/help) and prints the report it
 * resolves with, as JSON with --json or else through `format`; exit code 1 if the report is not ok.
 */
function main({ file, parseArgs, run, format }) {
  let options
  try {
    options = parseArgs(process.argv.slice(2))
  } catch (err) {
    console.error(err.message)
    process.exit(2)
  }
  if (options.help) {
    console.log(helpText(file))
    process.exit(0)
  }
  const { json, help, ...rest } = options
  run(rest, json)
    .then((report) => {
      console.log(json ? JSON.stringify(report, null, 2) : format(report))
      process.exitCode = report.ok ? 0 : 1
    })
    .catch((err) => {
      console.error(err)
      process.exitCode = 2
    })
}

module.exports = { parseFlags, helpText, n, verdictLines, main }
