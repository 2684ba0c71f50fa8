'use strict';
// Acknowledgement on a commune's page (issue 16): the commune's alerts as Alertmanager holds
// them, whether they are silenced and by whom, and for an admin or the line's operator a form
// to silence the commune for a while with a comment, or to end its silence.
// Loaded beside app.js, which re-renders #detail-view at every refresh: this keeps one section
// of its own and puts it back after each render, so a half-typed comment survives.
(() => {
  // Each word in Vietnamese, then in English (the page's language, which app.js sets).
  const WORDS = {
    title: ['Cảnh báo trong Alertmanager', 'Alerts in Alertmanager'],
    none: ['Không có cảnh báo nào đang bật.', 'No alert is firing.'],
    off: [
      'Chưa cấu hình Alertmanager: không có xác nhận cảnh báo.',
      'No Alertmanager configured: acknowledgement is not available.'],
    silenced: ['Đã tắt cảnh báo', 'Silenced'],
    active: ['đang báo', 'firing'],
    inhibited: ['bị che bởi cảnh báo khác', 'inhibited by another alert'],
    until: ['đến', 'until'],
    by: ['bởi', 'by'],
    comment: ['Ghi chú (bắt buộc)', 'Comment (required)'],
    minutes: ['Thời gian (phút)', 'Duration (minutes)'],
    silence: ['Tắt cảnh báo xã này', 'Silence this commune'],
    unsilence: ['Bật lại cảnh báo', 'End the silence'],
    failed: ['Không thực hiện được', 'Failed'],
  };
  const w = (key) => WORDS[key][document.documentElement.lang === 'en' ? 1 : 0];
  const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const when = (iso) => (iso ? new Date(iso).toLocaleString(document.documentElement.lang) : '');

  const section = document.createElement('section');
  section.id = 'ack';
  const status = document.createElement('div');
  const form = document.createElement('form');
  form.hidden = true;
  section.append(status, form);
  let commune = null; // "PROV/COMMUNE" shown, or null on the list
  let configured = null; // whether the monitor has an Alertmanager (from /api/v1/me)

  function buildForm() {
    form.innerHTML = `<label>${esc(w('comment'))} <input name="comment" required maxlength="500"></label>
      <label>${esc(w('minutes'))} <input name="minutes" type="number" min="5" max="10080" value="120" required></label>
      <button type="submit">${esc(w('silence'))}</button>
      <button type="button" name="unsilence" hidden>${esc(w('unsilence'))}</button>
      <span class="error" role="alert"></span>`;
    form.elements.unsilence.addEventListener('click', () => act('DELETE'));
  }

  async function act(method, body) {
    const res = await fetch(`/api/v1/communes/${commune}/silence`, {
      method, headers: { 'Content-Type': 'application/json' }, body: body && JSON.stringify(body),
    });
    const error = form.querySelector('.error');
    error.textContent = res.ok ? '' : `${w('failed')}: ${(await res.json().catch(() => ({}))).error || res.status}`;
    if (res.ok && method === 'POST') form.elements.comment.value = '';
    await load();
  }

  function render(view) {
    const silences = view.silences.map((s) => `<li>${esc(w('silenced'))} ${esc(w('until'))} `
      + `${esc(when(s.until))} ${esc(w('by'))} <b>${esc(s.by)}</b>: ${esc(s.comment)}</li>`).join('');
    const alerts = view.alerts.map((a) => `<li><b>${esc(a.alertname)}</b>${a.host ? ` (${esc(a.host)})` : ''} `
      + `<span class="${a.silenced ? 'muted' : 'no'}">${esc(a.silenced ? w('silenced') : a.inhibited ? w('inhibited') : w('active'))}</span> `
      + `${esc(a.summary)}</li>`).join('');
    status.innerHTML = `<h3>${esc(w('title'))}</h3>${silences ? `<ul class="silences">${silences}</ul>` : ''}`
      + (alerts ? `<ul class="am-alerts">${alerts}</ul>` : `<p class="muted">${esc(w('none'))}</p>`);
    form.hidden = !view.may_silence;
    form.elements.unsilence.hidden = !view.silences.length;
  }

  async function load() {
    if (!commune) return;
    if (configured === null) {
      const me = await fetch('/api/v1/me');
      configured = me.ok && (await me.json()).alertmanager;
    }
    if (!configured) {
      status.innerHTML = `<h3>${esc(w('title'))}</h3><p class="muted">${esc(w('off'))}</p>`;
      form.hidden = true;
      return;
    }
    const shown = commune;
    const res = await fetch(`/api/v1/communes/${shown}/alerts`);
    if (shown !== commune) return;
    if (res.ok) render(await res.json());
    else status.innerHTML = `<h3>${esc(w('title'))}</h3><p class="error">${esc((await res.json().catch(() => ({}))).error || res.status)}</p>`;
  }

  function route() {
    const m = location.hash.match(/^#\/([^/]+)\/([^/]+)$/);
    commune = m ? `${encodeURIComponent(decodeURIComponent(m[1]))}/${encodeURIComponent(decodeURIComponent(m[2]))}` : null;
    if (!commune) return;
    buildForm();
    status.innerHTML = '';
    load().catch(() => {});
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    act('POST', { comment: form.elements.comment.value, minutes: Number(form.elements.minutes.value) })
      .catch(() => {});
  });
  // app.js replaces the detail view's content at each refresh: put this section back.
  const view = document.getElementById('detail-view');
  new MutationObserver(() => {
    if (commune && !view.contains(section) && view.querySelector('section')) view.append(section);
  }).observe(view, { childList: true });
  document.getElementById('lang').addEventListener('click', () => setTimeout(route));
  window.addEventListener('hashchange', route);
  setInterval(() => { if (!document.hidden) load().catch(() => {}); }, 30000);
  route();
})();
