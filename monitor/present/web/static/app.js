// tslcd-monitor status page: vanilla JS, no build step. Vietnamese by default, English switchable.
'use strict';

const WINDOW_S = 6 * 3600; // the charts' span (monitor/history.py keeps 6 hours)
const STATUSES = ['down', 'degraded', 'ok', 'unknown'];

// Each word in Vietnamese, then in English: no language can lack one.
const LANGS = ['vi', 'en'];
const WORDS = {
  title: ['Giám sát đường truyền số liệu chuyên dùng', 'Election data network monitor'],
  report: ['Báo cáo tiến độ', 'Readiness report'],
  logout: ['Đăng xuất', 'Log out'],
  search: ['Tìm xã, phường, mã, đường truyền…', 'Search commune, code, circuit…'],
  all_provinces: ['Tất cả tỉnh, thành phố', 'All provinces'],
  all_isps: ['Tất cả nhà mạng', 'All operators'],
  all_statuses: ['Mọi trạng thái', 'Any status'],
  st_ok: ['Bình thường', 'OK'],
  st_degraded: ['Suy giảm', 'Degraded'],
  st_down: ['Mất kết nối', 'Down'],
  st_unknown: ['Chưa có dữ liệu', 'Unknown'],
  total: ['Tổng số', 'Total'],
  commune: ['Xã, phường', 'Commune'],
  status: ['Trạng thái', 'Status'],
  isp: ['Nhà mạng', 'Operator'],
  circuit: ['Đường truyền', 'Circuit'],
  hosts: ['Máy', 'Hosts'],
  since: ['Từ lúc', 'Since'],
  updated: ['Cập nhật lúc', 'Updated'],
  none: ['Không có xã, phường nào phù hợp.', 'No commune matches.'],
  back: ['← Danh sách', '← List'],
  subnet: ['Dải địa chỉ', 'Subnet'],
  gateway: ['Cổng (router)', 'Gateway (router)'],
  backup_gateway: ['Đường dự phòng', 'Backup line'],
  on_backup: ['đang chạy đường dự phòng', 'running on the backup line'],
  last_seen: ['Lần đo gần nhất', 'Last measured'],
  vantage: ['Điểm đo', 'Vantage'],
  up: ['hoạt động', 'up'],
  down: ['không trả lời', 'not answering'],
  unknown_host: ['chưa đo', 'not yet probed'],
  off: ['tắt ngoài giờ làm việc', 'off outside working hours'],
  hosts_off: ['tắt', 'off'],
  primary_line: ['Đường chính', 'Primary line'],
  rtt: ['Độ trễ', 'RTT'],
  loss: ['Mất gói', 'Loss'],
  ip_config: ['Cấu hình IP', 'IP configuration'],
  ip_ok: ['đúng máy, không trùng IP', 'right machine, no conflict'],
  ip_conflict: ['TRÙNG IP: nhiều máy trả lời', 'IP CONFLICT: several machines answer'],
  ip_wrong_mac: ['sai địa chỉ MAC', 'wrong MAC address'],
  ip_silent: ['không máy nào trả lời ARP', 'no ARP answer'],
  ip_na: ['không có điểm đo trong mạng của xã', 'no vantage on the commune segment'],
  unknown_devices: ['Thiết bị lạ trong dải mạng', 'Unknown devices in the subnet'],
  none_found: ['không có', 'none'],
  not_scanned: ['chưa quét', 'not scanned'],
  targets: ['Truy cập hệ thống bầu cử', 'Election system reachability'],
  reachable: ['truy cập được', 'reachable'],
  unreachable: ['không truy cập được', 'unreachable'],
  phase: ['lỗi ở bước', 'failed at'],
  milestones: ['Các mốc tiến độ', 'Milestones'],
  due: ['hạn', 'due'],
  met: ['Đạt', 'Met'],
  not_met: ['Chưa đạt', 'Not met'],
  late: ['Trễ hạn', 'Late'],
  history: ['Lịch sử trạng thái', 'State history'],
  no_history: ['chưa có thay đổi', 'no change yet'],
  last_hours: ['6 giờ qua', 'last 6 h'],
  no_samples: ['chưa có số đo', 'no measurements yet'],
  flapping: ['chập chờn', 'flapping'],
  not_found: ['Không tìm thấy xã, phường này.', 'No such commune.'],
  expected_mac: ['MAC mong đợi', 'expected MAC'],
  seen_macs: ['MAC trả lời', 'MACs answering'],
  alive_by: ['phát hiện qua', 'seen by'],
  scope: ['Phạm vi', 'Scope'],
  offline: [
    'Không kết nối được tới máy chủ giám sát; sẽ thử lại.',
    'Cannot reach the monitor; retrying.'],
  line: ['Đường đang dùng', 'Carried by'],
  line_primary: ['đường chính', 'primary line'],
  line_backup: ['đường dự phòng', 'backup line'],
  line_none: ['không có đường nào', 'no line'],
  drill_live: ['Đang diễn tập', 'Drill running'],
  drill_done: ['Đã diễn tập', 'Drill held'],
  connected_of: ['đã kết nối', 'connected'],
  appeared_of: ['đã tham gia', 'took part'],
  inspection: ['Tem kiểm định', 'Inspection stamp'],
  uninspected: ['CHƯA KIỂM ĐỊNH', 'NOT INSPECTED'],
  vantages: ['Từng điểm đo', 'Each vantage'],
  v_upstream: ['phía trên đường truyền', 'upstream of the line'],
  v_segment: ['trong mạng của xã', 'on the commune segment'],
  v_line: ['đánh giá đường truyền', 'judges the line'],
  central: ['Trung tâm giám sát', 'Central monitor'],
};

const params = new URLSearchParams(location.search);
// Refresh period; ?refresh=SECONDS (at least 1) for a wall screen or a test.
const REFRESH_MS = Math.max(1, Number(params.get('refresh')) || 15) * 1000;
let lang = params.get('lang') || localStorage.getItem('lang') || 'vi';
if (!LANGS.includes(lang)) lang = 'vi';
const t = (key) => (WORDS[key] || [])[LANGS.indexOf(lang)] || key;

const data = { communes: [], etag: null, updated: null };
let detailTimer = null;

const $ = (id) => document.getElementById(id);
const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const esc = (v) => (v === null || v === undefined ? '' : String(v).replace(/[&<>"']/g, (c) => ESC[c]));

// Diacritics-insensitive key, the same as inventory.official.fold: "Biên Hòa" ~ "bien hoa".
function fold(s) {
  return String(s).replace(/đ/g, 'd').replace(/Đ/g, 'D').normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '').toLowerCase().replace(/\s+/g, ' ').trim();
}

// "22/11 14:05" in Vietnam time whatever the browser's zone; one formatter, memoised per
// minute (formatting thousands of rows one by one is the list's slowest step otherwise).
let timeParts = null;
const minuteText = new Map();
function fmtTime(unix) {
  if (!unix) return '';
  const minute = Math.floor(unix / 60);
  let text = minuteText.get(minute);
  if (text === undefined) {
    timeParts = timeParts || new Intl.DateTimeFormat('en-GB', {
      timeZone: 'Asia/Ho_Chi_Minh', day: '2-digit', month: '2-digit',
      hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
    });
    const p = {};
    for (const { type, value } of timeParts.formatToParts(new Date(minute * 60000))) p[type] = value;
    text = `${p.day}/${p.month} ${p.hour}:${p.minute}`;
    minuteText.set(minute, text);
  }
  return text;
}
const fmtDate = (iso) => iso.split('-').reverse().join('/'); // 2026-01-29 -> 29/01/2026
const fmtMs = (s) => (s === null || s === undefined ? '—' : (s * 1000).toFixed(s < 0.01 ? 2 : 1) + ' ms');
const fmtPct = (r) => (r === null || r === undefined ? '—' : Math.round(r * 100) + ' %');
const badge = (status) => `<span class="badge ${esc(status)}">${esc(t('st_' + status))}</span>`;

async function getJSON(url, etag) {
  const headers = etag ? { 'If-None-Match': etag } : {};
  const r = await fetch(url, { headers, credentials: 'same-origin' });
  if (r.status === 401) { location.href = '/login'; return null; }
  if (r.status === 304) return { notModified: true };
  return { status: r.status, etag: r.headers.get('ETag'), body: await r.json() };
}

// --- the list -------------------------------------------------------------------------------

async function loadList() {
  const res = await getJSON('/api/v1/communes', data.etag);
  if (!res || res.notModified) return;
  performance.mark('list-fetched');
  data.etag = res.etag;
  data.updated = res.body.updated;
  data.communes = res.body.communes;
  fillSelect($('f-province'), uniq(data.communes.map((c) => [c.province, c.province_name])));
  fillSelect($('f-isp'), uniq(data.communes.map((c) => [c.isp, c.isp])));
  renderList();
  if (!performance.getEntriesByName('list-painted').length) {
    requestAnimationFrame(() => setTimeout(() => performance.mark('list-painted')));
  }
}

function uniq(pairs) {
  const seen = new Map();
  for (const [v, label] of pairs) if (!seen.has(v)) seen.set(v, label);
  return [...seen].sort((a, b) => a[1].localeCompare(b[1], 'vi'));
}

function fillSelect(select, options) {
  const keep = select.value;
  const first = select.options[0].outerHTML;
  select.innerHTML = first + options.map(([v, l]) => `<option value="${esc(v)}">${esc(l)}</option>`).join('');
  select.value = options.some(([v]) => v === keep) ? keep : '';
}

function currentFilter() {
  return { q: fold($('q').value), province: $('f-province').value, isp: $('f-isp').value,
           status: $('f-status').value };
}

function matches(c, f, ignoreStatus) {
  return (!f.province || c.province === f.province) && (!f.isp || c.isp === f.isp)
    && (ignoreStatus || !f.status || c.status === f.status) && (!f.q || searchKey(c).includes(f.q));
}

// Folded on first search only: most page loads never search.
function searchKey(c) {
  if (c._f === undefined) c._f = fold([c.name, c.commune, c.circuit || '', c.province_name, c.isp].join(' '));
  return c._f;
}

function renderList() {
  const f = currentFilter();
  const counts = { total: 0, down: 0, degraded: 0, ok: 0, unknown: 0 };
  const groups = new Map();
  for (const c of data.communes) {
    if (!matches(c, f, true)) continue;
    counts.total++; counts[c.status]++;
    if (f.status && c.status !== f.status) continue;
    let g = groups.get(c.province);
    if (!g) groups.set(c.province, (g = { name: c.province_name, rows: [], down: 0 }));
    g.rows.push(c);
    if (c.status === 'down') g.down++;
  }
  renderSummary(counts, f.status);
  const parts = [];
  let shown = 0;
  for (const [code, g] of groups) {
    shown += g.rows.length;
    parts.push(`<section class="prov" data-province="${esc(code)}"><h2><span>${esc(g.name)}</span>`
      + `<span class="muted">${g.rows.length} ${esc(t('commune').toLowerCase())}`
      + (g.down ? ` · <span class="no">${g.down} ${esc(t('st_down').toLowerCase())}</span>` : '')
      + `</span></h2><table><thead><tr><th>${esc(t('commune'))}</th><th>${esc(t('status'))}</th>`
      + `<th>${esc(t('isp'))}</th><th class="opt">${esc(t('circuit'))}</th><th>${esc(t('hosts'))}</th>`
      + `<th class="opt">${esc(t('since'))}</th></tr></thead><tbody>`
      + g.rows.map(rowHtml).join('') + '</tbody></table></section>');
  }
  const list = $('list');
  list.innerHTML = parts.length ? parts.join('') : `<p class="muted">${esc(t('none'))}</p>`;
  list.dataset.count = String(shown);
  performance.mark('list-rendered');
  $('updated').textContent = data.updated ? `${t('updated')} ${fmtTime(data.updated)}` : '';
}

function rowHtml(c) {
  return `<tr class="commune st-${esc(c.status)}" data-key="${esc(c.province)}/${esc(c.commune)}">`
    + `<td><a href="#/${esc(c.province)}/${esc(c.commune)}">${esc(c.name)}</a><small>${esc(c.commune)}</small></td>`
    + `<td>${badge(c.status)}${c.line === 'backup' ? ` <small class="line-backup">${esc(t('line_backup'))}</small>` : ''}</td><td>${esc(c.isp)}</td><td class="opt">${esc(c.circuit)}</td>`
    + `<td>${c.hosts_up}/${c.hosts_total}${c.hosts_off ? ` <small class="muted">(${c.hosts_off} ${esc(t('hosts_off'))})</small>` : ''}</td><td class="opt">${esc(fmtTime(c.since))}</td></tr>`;
}

function renderSummary(counts, active) {
  const item = (key, label, cls) => `<button type="button" data-status="${key}" class="${active === key ? 'active' : ''}">`
    + `${cls ? `<span class="badge ${cls}">&nbsp;</span>` : ''}<span>${esc(label)}</span><b>${counts[key || 'total']}</b></button>`;
  $('summary').innerHTML = item('', t('total'), '')
    + STATUSES.map((s) => item(s, t('st_' + s), s)).join('');
}

// --- drills: a live count while one runs, the reports of those held --------------------------

async function loadDrills() {
  const res = await getJSON('/api/v1/drills');
  if (!res || res.status !== 200) return;
  const links = (d) => ['html', 'xlsx', 'csv'].map((f) => `<a href="/report/drill/${encodeURIComponent(d.id)}.${f}">${f}</a>`).join(' ');
  $('drills').innerHTML = res.body.drills.slice(0, 3).map((d) => d.active
    ? `<p class="drill live" data-drill="${esc(d.id)}"><b>${esc(t('drill_live'))}: ${esc(d.title)}</b> — `
      + `${esc(t('connected_of'))} <b class="count">${d.connected}/${d.total}</b> · ${links(d)}</p>`
    : `<p class="drill" data-drill="${esc(d.id)}">${esc(t('drill_done'))}: ${esc(d.title)} — `
      + `${esc(t('appeared_of'))} ${d.appeared}/${d.total} · ${links(d)}</p>`).join('');
}

// --- one commune ----------------------------------------------------------------------------

async function loadDetail(prov, commune) {
  const res = await getJSON(`/api/v1/communes/${encodeURIComponent(prov)}/${encodeURIComponent(commune)}`);
  if (!res) return;
  const view = $('detail-view');
  if (res.status !== 200) {
    view.innerHTML = `<p><a href="#">${esc(t('back'))}</a></p><p class="error">${esc(t('not_found'))}</p>`;
    return;
  }
  view.innerHTML = detailHtml(res.body);
}

function detailHtml(c) {
  const facts = [
    [t('status'), badge(c.status) + (c.since ? ` ${esc(t('since').toLowerCase())} ${esc(fmtTime(c.since))}` : '')],
    [t('isp'), esc(c.isp)], [t('circuit'), esc(c.circuit) || '—'],
    [t('subnet'), esc(c.subnet) || '—'],
  ];
  // both lines, each router probed whichever carries the commune
  for (const l of c.lines || []) {
    const named = [l.isp, l.circuit].filter(Boolean).map(esc).join(', ');
    facts.push([t(l.line === 'backup' ? 'backup_gateway' : 'primary_line'),
      `${esc(l.gateway) || '—'}${named ? ` <small class="muted">(${named})</small>` : ''} ${upText(l.up)}`
      + (l.loss !== null && l.loss !== undefined ? ` <small>${esc(t('rtt'))} ${fmtMs(l.rtt)} · ${esc(t('loss'))} ${fmtPct(l.loss)}</small>` : '')
      + (l.line === 'backup' && c.on_backup ? ` <b>(${esc(t('on_backup'))})</b>` : '')]);
  }
  if (c.line) facts.push([t('line'), `<span class="line-${esc(c.line)}">${esc(t('line_' + c.line))}</span>`]);
  facts.push([t('last_seen'), esc(fmtTime(c.last_seen)) || '—'], [t('vantage'), esc(c.vantage) || '—']);
  return `<div class="detail"><p><a href="#">${esc(t('back'))}</a></p>`
    + `<h2>${esc(c.name)} <small class="muted">${esc(c.commune)} · ${esc(c.province_name)}</small></h2>`
    + `<section><dl class="facts">${facts.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join('')}</dl></section>`
    + `<section><h3>${esc(t('hosts'))}</h3><div class="hosts">${c.hosts.map(hostHtml).join('')}</div></section>`
    + vantagesHtml(c.vantages || [])
    + unknownDevicesHtml(c.unknown_devices) + targetsHtml(c.targets) + milestonesHtml(c.milestones)
    + historyHtml(c.history) + '</div>';
}

function upText(up) {
  if (up === null || up === undefined) return `<span class="muted">(${esc(t('unknown_host'))})</span>`;
  return up ? `<span class="yes">${esc(t('up'))}</span>` : `<span class="no">${esc(t('down'))}</span>`;
}

// h.state: up, down, off (silent outside working hours: not a fault) or unknown
const HOST_BADGES = { up: ['ok', 'up'], down: ['down', 'down'], off: ['unknown', 'off'], unknown: ['unknown', 'unknown_host'] };

function hostHtml(h) {
  const [cls, word] = HOST_BADGES[h.state] || HOST_BADGES.unknown;
  return `<div class="host" data-host="${esc(h.name)}" data-state="${esc(h.state)}"><h4><span>${esc(h.name)} <small class="muted">${esc(h.ip)}</small></span>`
    + `<span class="badge ${cls}">${esc(t(word))}</span></h4>`
    + `<div class="muted">${esc(t('rtt'))} ${fmtMs(h.rtt)} · ${esc(t('loss'))} ${fmtPct(h.loss)}`
    + (h.alive_by ? ` · ${esc(t('alive_by'))} ${esc(h.alive_by)}` : '')
    + (h.flapping ? ` · <b class="no">${esc(t('flapping'))}</b>` : '') + '</div>'
    + chartSvg(h.samples) + `<div>${esc(t('ip_config'))}: ${ipConfigText(h)}</div>`
    + `<div>${esc(t('inspection'))}: ${h.inspection ? `${esc(h.inspection.stamp)} (${esc(fmtDate(h.inspection.date))})`
      : `<b class="no">${esc(t('uninspected'))}</b>`}</div></div>`;
}

function ipConfigText(h) {
  if (!h.arp) return `<span class="muted">${esc(t('ip_na'))}</span>`;
  const macs = h.arp.macs.length ? ` (${esc(t('seen_macs'))}: ${h.arp.macs.map(esc).join(', ')})` : '';
  const expected = h.arp.expected_mac ? ` · ${esc(t('expected_mac'))} ${esc(h.arp.expected_mac)}` : '';
  if (h.arp.conflict) return `<b class="no">${esc(t('ip_conflict'))}</b>${macs}${expected}`;
  if (!h.arp.macs.length) return `<span class="no">${esc(t('ip_silent'))}</span>${expected}`;
  if (!h.arp.mac_ok) return `<b class="no">${esc(t('ip_wrong_mac'))}</b>${macs}${expected}`;
  return `<span class="yes">${esc(t('ip_ok'))}</span>${macs}`;
}

// RTT as a line (scaled to its maximum), loss as red bars from the bottom; the last 6 hours.
function chartSvg(samples) {
  const W = 300, H = 60;
  if (!samples || !samples.length) {
    return `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img"><text x="8" y="34" font-size="12" fill="#6b7280">${esc(t('no_samples'))}</text></svg>`;
  }
  const end = Date.now() / 1000, start = end - WINDOW_S;
  const x = (ts) => Math.max(0, Math.min(W, ((ts - start) / WINDOW_S) * W)).toFixed(1);
  const rtts = samples.filter((p) => p.rtt !== null);
  const maxRtt = Math.max(1e-6, ...rtts.map((p) => p.rtt));
  const top = maxRtt * 1.25; // headroom: a steady line sits below the top edge
  const bars = samples.filter((p) => p.loss).map((p) => {
    const h = Math.max(1, p.loss * (H - 4));
    return `<rect x="${x(p.t)}" y="${(H - h).toFixed(1)}" width="2" height="${h.toFixed(1)}" fill="#c62828" opacity="0.6"/>`;
  }).join('');
  const y = (p) => (H - 4 - (p.rtt / top) * (H - 8)).toFixed(1);
  const line = rtts.map((p) => `${x(p.t)},${y(p)}`).join(' ');
  const dot = rtts.length === 1 ? `<circle cx="${x(rtts[0].t)}" cy="${y(rtts[0])}" r="2" fill="#1f4e8c"/>` : '';
  return `<svg class="chart" viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" role="img">`
    + `<title>${esc(t('rtt'))} / ${esc(t('loss'))}, ${esc(t('last_hours'))}</title>${bars}`
    + `<polyline points="${line}" fill="none" stroke="#1f4e8c" stroke-width="1.5"/>${dot}</svg>`
    + `<div class="legend"><span>${esc(t('last_hours'))}</span><span>${esc(t('rtt'))} max ${fmtMs(maxRtt)}</span></div>`;
}

// Each vantage's own view in a column: the centre (and a province agent) see the line's RTT
// and loss; the commune's agent sees the LAN (ARP) and the election system from inside.
function vantagesHtml(views) {
  if (!views.length) return '';
  const head = views.map((v) => `<th>${esc(v.vantage === 'central' ? t('central') : v.vantage)}`
    + `<br><small class="muted">${esc(t('v_' + v.place))}${v.line ? ` · ${esc(t('v_line'))}` : ''}</small></th>`).join('');
  const cell = (h) => `${upText(h.up)}<br><small>${esc(t('rtt'))} ${fmtMs(h.rtt)} · ${esc(t('loss'))} ${fmtPct(h.loss)}`
    + (h.ip_config_ok === null ? '' : ` · ${esc(t('ip_config'))} ${h.ip_config_ok
      ? `<span class="yes">✓</span>` : `<b class="no">✗</b>`}`) + '</small>';
  const rows = [
    `<tr><th>${esc(t('last_seen'))}</th>${views.map((v) => `<td>${esc(fmtTime(v.last_seen)) || '—'}</td>`).join('')}</tr>`,
    `<tr><th>${esc(t('gateway'))}</th>${views.map((v) => `<td>${upText(v.gateway_up)}</td>`).join('')}</tr>`,
    ...views[0].hosts.map((h, i) => `<tr><th>${esc(h.name)}</th>${views.map((v) => `<td>${cell(v.hosts[i])}</td>`).join('')}</tr>`),
    `<tr><th>${esc(t('targets'))}</th>${views.map((v) => `<td>${v.targets.map((x) => `${esc(x.target)}: `
      + (x.up ? `<span class="yes">${esc(t('reachable'))}</span>` : `<span class="no">${esc(t('unreachable'))}</span>`)).join('<br>') || '—'}</td>`).join('')}</tr>`,
  ];
  return `<section><h3>${esc(t('vantages'))}</h3><table class="vantages"><thead><tr><th></th>${head}</tr></thead>`
    + `<tbody>${rows.join('')}</tbody></table></section>`;
}

function unknownDevicesHtml(devices) {
  let body;
  if (devices === null || devices === undefined) body = `<span class="muted">${esc(t('not_scanned'))}</span>`;
  else if (!devices.length) body = `<span class="yes">${esc(t('none_found'))}</span>`;
  else body = '<ul>' + devices.map((d) => `<li class="no">${esc(d.ip)} — ${esc(d.mac)}</li>`).join('') + '</ul>';
  return `<section><h3>${esc(t('unknown_devices'))}</h3>${body}</section>`;
}

function targetsHtml(targets) {
  const rows = targets.map((x) => `<tr><td>${esc(x.target)}</td><td>${esc(x.vantage)}</td><td>`
    + (x.up ? `<span class="yes">${esc(t('reachable'))}</span>`
      : `<span class="no">${esc(t('unreachable'))}</span>${x.failed_phase ? ` (${esc(t('phase'))} ${esc(x.failed_phase)})` : ''}`)
    + `</td><td class="opt">${esc(fmtTime(x.checked))}</td></tr>`).join('');
  return `<section><h3>${esc(t('targets'))}</h3>`
    + (rows ? `<table><tbody>${rows}</tbody></table>` : `<span class="muted">${esc(t('unknown_host'))}</span>`) + '</section>';
}

function milestonesHtml(milestones) {
  if (!milestones.length) return '';
  const rows = milestones.map((m) => `<tr><td>${esc(m.title)} <small>${esc(t('due'))} ${esc(fmtDate(m.due))}</small></td><td>`
    + (m.met ? `<span class="yes">${esc(t('met'))}</span> ${esc(fmtTime(m.met_at))}` : `<span class="no">${esc(t('not_met'))}</span>`)
    + `</td><td>${m.late ? `<b class="no">${esc(t('late'))}</b>` : ''}</td></tr>`).join('');
  return `<section><h3>${esc(t('milestones'))}</h3><table><tbody>${rows}</tbody></table></section>`;
}

// Rows of the state database's history: {at, host (null: the commune itself), old, new}.
function historyHtml(history) {
  const word = (w, host) => (host ? upText(w === 'unknown' ? null : w === 'up') : badge(w));
  const items = (history || []).slice(-30).reverse().map((e) => `<li>${esc(fmtTime(e.at))} `
    + `${e.host ? `${esc(e.host)}: ` : ''}${word(e.old, e.host)} → ${word(e.new, e.host)}</li>`).join('');
  return `<section><h3>${esc(t('history'))}</h3>${items ? `<ul>${items}</ul>` : `<span class="muted">${esc(t('no_history'))}</span>`}</section>`;
}

// --- routing, language, refresh -------------------------------------------------------------

function route() {
  const m = location.hash.match(/^#\/([^/]+)\/([^/]+)$/);
  clearInterval(detailTimer);
  $('list-view').hidden = !!m;
  $('detail-view').hidden = !m;
  if (m) {
    const load = () => loadDetail(m[1], m[2]).catch(offline);
    load();
    detailTimer = setInterval(() => { if (!document.hidden) load(); }, REFRESH_MS);
    window.scrollTo(0, 0);
  } else {
    loadList().catch(offline);
    loadDrills().catch(offline);
  }
}

// The monitor restarting or the network dropping: say so, keep the last data, retry later.
function offline() {
  const target = $('detail-view').hidden ? $('updated') : $('detail-view');
  if (!target.querySelector('.error')) target.insertAdjacentHTML('afterbegin', `<span class="error">${esc(t('offline'))} </span>`);
}

function applyLanguage() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  $('lang').textContent = lang === 'vi' ? 'EN' : 'VI';
  document.title = `${t('title')} — tslcd-monitor`;
}

async function showWho() {
  const res = await getJSON('/api/v1/me');
  if (!res || res.status !== 200 || !res.body.auth) return;
  $('who').textContent = `${t('scope')}: ${res.body.scope}`;
  $('logout').hidden = false;
}

function debounce(fn, ms) {
  let timer;
  return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
}

function start() {
  applyLanguage();
  $('lang').addEventListener('click', () => {
    lang = lang === 'vi' ? 'en' : 'vi';
    localStorage.setItem('lang', lang);
    applyLanguage();
    renderList();
    route();
    showWho().catch(offline);
  });
  $('q').addEventListener('input', debounce(renderList, 120));
  for (const id of ['f-province', 'f-isp', 'f-status']) $(id).addEventListener('change', renderList);
  $('filters').addEventListener('submit', (e) => e.preventDefault());
  $('summary').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-status]');
    if (!b) return;
    $('f-status').value = b.dataset.status;
    renderList();
  });
  window.addEventListener('hashchange', route);
  route();
  showWho().catch(offline);
  setInterval(() => {
    if (document.hidden || !$('detail-view').hidden) return;
    loadList().catch(offline);
    loadDrills().catch(offline);
  }, REFRESH_MS);
}

start();
