'use strict'
// A hand-made SVG chart: round-trip latency (p50, whiskers p10–p90) against payload size, both
// axes logarithmic, one line per mechanism. No dependencies.

const { fmtSize } = require('./report.js')

const COLORS = {
  'clone-bytes': '#d62728',
  'clone-matrix': '#ff7f0e',
  'clone-objects': '#8c564b',
  transfer: '#9467bd',
  ticket: '#17becf',
  channel: '#1f77b4',
  'channel-spin': '#2ca02c',
  ring: '#555555',
  // object graphs through sabpool: the color of the graph's clone, dashed by codec
  'codec-value-matrix': '#ff7f0e',
  'codec-value-spin-matrix': '#ff7f0e',
  'codec-json-matrix': '#ff7f0e',
  'codec-value-objects': '#8c564b',
  'codec-value-spin-objects': '#8c564b',
  'codec-json-objects': '#8c564b',
  // --processes: dash-dotted lines
  'proc-channel': '#0b3d91',
  'proc-json': '#e377c2',
  'proc-advanced': '#bcbd22',
  'proc-pipe': '#7f7f7f',
  // service round trips (main thread awaiting): dotted lines
  'service-await': '#1f77b4',
  'service-sync': '#2ca02c',
  'service-transfer': '#9467bd',
  'service-clone': '#d62728',
}

/** Legend of the --processes and service series (their table names leave that to the section title). */
const LEGEND = {
  'proc-channel': 'sabpool channel (process)',
  'proc-pipe': 'raw socket pair (process floor)',
  'service-await': 'sabpool await recv() (service)',
  'service-sync': 'sabpool all-sync (service)',
  'service-transfer': 'postMessage transfer (service)',
  'service-clone': 'postMessage clone (service)',
}

const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c])

function timeLabel(ns) {
  if (ns >= 1e9) return `${ns / 1e9} s`
  if (ns >= 1e6) return `${ns / 1e6} ms`
  if (ns >= 1e3) return `${ns / 1e3} µs`
  return `${ns} ns`
}

function renderSvg(res) {
  const W = 960
  const H = 600
  const M = { left: 80, right: 300, top: 60, bottom: 60 }
  const pw = W - M.left - M.right
  const ph = H - M.top - M.bottom
  const sizes = res.config.sizes
  const procCells = res.processes ? res.processes.cells : []
  // The service rows' hot round trips, drawn like the other cells.
  const serviceCells = (res.eventLoop?.service?.cells ?? []).map((c) => ({ ...c, rt: c.hot.rt }))
  const cells = [...res.cells, ...procCells, ...serviceCells].filter((c) => Number.isFinite(c.rt.p50))

  const lx = (s) => Math.log2(s)
  const x0 = lx(sizes[0]) - 0.5
  const x1 = lx(sizes[sizes.length - 1]) + 0.5
  const lows = cells.map((c) => c.rt.p10).filter((v) => v > 0)
  const highs = cells.map((c) => c.rt.p90)
  const y0 = Math.floor(Math.log10(Math.min(...lows, 1e3)))
  const y1 = Math.ceil(Math.log10(Math.max(...highs, 1e4)))
  const X = (s) => M.left + ((lx(s) - x0) / (x1 - x0)) * pw
  const Y = (ns) => M.top + ph - ((Math.log10(Math.max(ns, 10 ** y0)) - y0) / (y1 - y0)) * ph

  const out = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, sans-serif" font-size="12">`)
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`)
  out.push(`<text x="${M.left}" y="24" font-size="16" font-weight="600">Round-trip latency vs payload size (p50, whiskers p10–p90; log–log)</text>`)
  const others = res.cpu && res.cpu.othersCoresDuring !== null ? ` · other processes used ${res.cpu.othersCoresDuring.toFixed(2)} cores` : ''
  out.push(`<text x="${M.left}" y="42" fill="#555">${esc(`${res.meta.cpu}, ${res.meta.cores} cores · Node ${res.meta.node} · ${res.meta.date.slice(0, 10)} · sabpool ${res.meta.sabpool}${others}`)}</text>`)

  // grid and axes
  for (let e = y0; e <= y1; e++) {
    const y = Y(10 ** e)
    out.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${y}" y2="${y}" stroke="#ddd"/>`)
    out.push(`<text x="${M.left - 8}" y="${y + 4}" text-anchor="end">${timeLabel(10 ** e)}</text>`)
  }
  for (const s of sizes) {
    const x = X(s)
    out.push(`<line x1="${x}" x2="${x}" y1="${M.top}" y2="${M.top + ph}" stroke="#eee"/>`)
    out.push(`<text x="${x}" y="${M.top + ph + 18}" text-anchor="middle">${esc(fmtSize(s))}</text>`)
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`)
  out.push(`<text x="${M.left + pw / 2}" y="${H - 16}" text-anchor="middle">payload size</text>`)
  out.push(`<text transform="translate(20 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">round trip</text>`)

  // series
  const procIds = res.processes ? res.config.processes.mechanisms : []
  const serviceIds = [...new Set(serviceCells.map((c) => c.mechanism))]
  const ids = [...res.config.mechanisms, ...procIds, ...serviceIds].filter((id) => cells.some((c) => c.mechanism === id))
  ids.forEach((id, i) => {
    const pts = sizes.map((s) => cells.find((c) => c.mechanism === id && c.size === s)).filter(Boolean)
    const color = COLORS[id] ?? '#000'
    const group = pts[0].group
    const dash = procIds.includes(id) ? ' stroke-dasharray="8 3 2 3"' : serviceIds.includes(id) ? ' stroke-dasharray="1 3"'
      : group === 'floor' ? ' stroke-dasharray="6 4"' : id === 'channel-spin' || id.startsWith('codec-value-spin-') ? ' stroke-dasharray="2 3"'
        : id.startsWith('codec-value-') ? ' stroke-dasharray="5 2"' : id.startsWith('codec-json-') ? ' stroke-dasharray="10 3"' : ''
    const width = group === 'sabpool' ? 2.5 : 1.5
    out.push(`<g stroke="${color}" fill="${color}">`)
    for (const c of pts) {
      const x = X(c.size) + (i - ids.length / 2) * 2 // tiny offset keeps whiskers apart
      out.push(`<line x1="${x}" x2="${x}" y1="${Y(c.rt.p10)}" y2="${Y(c.rt.p90)}" stroke-width="1" opacity="0.6"/>`)
    }
    if (pts.length > 1) out.push(`<polyline fill="none" stroke-width="${width}"${dash} points="${pts.map((c) => `${X(c.size).toFixed(1)},${Y(c.rt.p50).toFixed(1)}`).join(' ')}"/>`)
    for (const c of pts) out.push(`<circle cx="${X(c.size).toFixed(1)}" cy="${Y(c.rt.p50).toFixed(1)}" r="3.5"><title>${esc(`${c.label}, ${fmtSize(c.size)}: p50 ${timeLabel(Math.round(c.rt.p50))}`)}</title></circle>`)
    out.push('</g>')
    // legend
    const ly = M.top + 10 + i * 22
    const lxp = M.left + pw + 20
    out.push(`<line x1="${lxp}" x2="${lxp + 26}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="${width}"${dash}/>`)
    out.push(`<circle cx="${lxp + 13}" cy="${ly}" r="3.5" fill="${color}"/>`)
    out.push(`<text x="${lxp + 34}" y="${ly + 4}">${esc(LEGEND[id] ?? pts[0].short)}</text>`)
  })
  out.push('</svg>')
  return `${out.join('\n')}\n`
}

module.exports = { renderSvg }
