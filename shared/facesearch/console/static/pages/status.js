// A collection's page: live counts (polled with ETags, see app.py for why not SSE), index
// segments, failures with retry / forget, share links, and erase with a typed confirmation.
import { consoleApi, status, v1, v1root } from '../api.js';
import { el, flash, flashAfterNav, when, bytes, mount } from '../ui.js';

const POLL_MS = 3000;

export async function statusPage({ cid, main }) {
  const collection = await v1root(`/collections/${encodeURIComponent(cid)}`).catch(() => null);
  const stats = el('ul', { class: 'stats', id: 'stats' });
  const live = el('p', { class: 'live', id: 'live', 'aria-live': 'off' });
  const segments = el('tbody', { id: 'segments' });
  const failures = el('tbody', { id: 'failures' });
  let etag = null;
  let timer = null;

  function render(s) {
    const tiles = [
      ['Images', s.images], ['Faces', s.faces], ['Persons', s.persons], ['In progress', s.in_progress],
      ['Failed', s.failed], ['Index faces', s.index.live_faces], ['Index size', bytes(s.index.size_bytes)],
      ['Dead letters', s.dead_letters ?? '—', s.dead_letters == null ? 'not tracked in embedded mode' : 'messages in the DLQ'],
    ];
    stats.replaceChildren(...tiles.map(([name, value, note]) => el('li', { 'data-stat': name }, el('b', { text: String(value) }), name, note ? el('small', { text: note }) : null)));
    segments.replaceChildren(...(s.segments.length ? s.segments.map((seg) => el('tr', {},
      el('td', {}, el('code', { text: seg.id })), el('td', { class: 'num', text: String(seg.faces) }),
      el('td', { class: 'num', text: String(seg.tombstones) }), el('td', { class: 'num', text: bytes(seg.bytes) }),
      el('td', { text: when(seg.created_at) })))
      : [el('tr', {}, el('td', { colspan: '5', class: 'muted', text: 'No index segments yet.' }))]));
  }

  async function loadFailures() {
    const page = await consoleApi(cid, '/images?status=failed&limit=100');
    failures.replaceChildren(...(page.items.length ? page.items.map((img) => {
      const retry = el('button', { type: 'button', class: 'secondary', text: 'Retry' });
      const forget = el('button', { type: 'button', class: 'danger', text: 'Forget' });
      retry.addEventListener('click', async () => {
        try {
          const r = await consoleApi(cid, `/images/${encodeURIComponent(img.image_id)}/retry`, { method: 'POST' });
          flash(`Retried: ${r.status}.`);
        } catch (error) { flash(`Retry failed: ${error.message}`, true); }
        await loadFailures();
      });
      forget.addEventListener('click', async () => {
        await v1(cid, `/images/${encodeURIComponent(img.image_id)}`, { method: 'DELETE' });
        flash('Failed image forgotten.');
        await loadFailures();
      });
      return el('tr', { 'data-image': img.image_id },
        el('td', {}, el('a', { href: `#/c/${encodeURIComponent(cid)}/images/${encodeURIComponent(img.image_id)}`, text: img.source })),
        el('td', {}, el('code', { text: img.error_code || '?' }), ' ', img.error_message || ''),
        el('td', { class: 'num', text: String(img.attempts) }),
        el('td', {}, el('span', { class: 'row' }, retry, forget)));
    }) : [el('tr', {}, el('td', { colspan: '4', class: 'muted', text: 'No failed images.' }))]));
  }

  async function poll() {
    try {
      const result = await status(cid, etag);
      if (!result.notModified) { etag = result.etag; render(result.data); }
      live.textContent = `Live: checked ${new Date().toLocaleTimeString()} (every ${POLL_MS / 1000} s).`;
    } catch (error) {
      live.textContent = `Live updates paused: ${error.message}`;
    }
  }

  // share links
  const ttl = el('input', { id: 'share-hours', type: 'number', min: '1', max: '720', value: '48' });
  const prefix = el('input', { id: 'share-prefix', type: 'text', placeholder: 'e.g. /events/wedding/', autocomplete: 'off' });
  const names = el('input', { id: 'share-names', type: 'checkbox' });
  const shareOut = el('div', { id: 'share-out', 'aria-live': 'polite' });
  const shareForm = el('form', { class: 'card', id: 'share-form' },
    el('h2', { text: 'Share a "find my photos" page' }),
    el('p', { class: 'hint', text: 'Guests with the link can search this collection with a selfie, and do nothing else. Unlisted, expiring, rate limited; selfies are never stored.' }),
    el('div', { class: 'field' }, el('label', { for: 'share-hours', text: 'Valid for (hours)' }), ttl),
    el('div', { class: 'field' }, el('label', { for: 'share-prefix', text: 'Only photos whose source starts with (optional)' }), prefix),
    el('div', { class: 'row' }, names, el('label', { for: 'share-names', text: 'Show person names' })),
    el('p', {}, el('button', { type: 'submit', text: 'Create link' })), shareOut);
  shareForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const link = await consoleApi(cid, '/shares', { method: 'POST', json: { ttl_s: Number(ttl.value) * 3600, prefix: prefix.value, show_names: names.checked } });
    shareOut.replaceChildren(el('p', { class: 'sharelink' }, el('a', { href: link.url, id: 'share-url', text: link.url })),
      el('p', { class: 'hint', text: `Expires ${when(link.expires_at)}.` }));
  });

  // erase
  const confirmInput = el('input', { id: 'erase-confirm', type: 'text', autocomplete: 'off' });
  const eraseButton = el('button', { type: 'submit', class: 'danger', id: 'erase-button', disabled: true, text: 'Erase collection' });
  confirmInput.addEventListener('input', () => { eraseButton.disabled = confirmInput.value !== cid; });
  const eraseForm = el('form', { class: 'card', id: 'erase-form' },
    el('h2', { text: 'Erase this collection' }),
    el('p', { text: 'Every image, face, person, crop and index object of this collection is deleted. The id is never reused.' }),
    el('div', { class: 'field' }, el('label', { for: 'erase-confirm', text: `Type ${cid} to confirm` }), confirmInput),
    eraseButton);
  eraseForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (confirmInput.value !== cid) return;
    try {
      const result = await v1root(`/collections/${encodeURIComponent(cid)}`, { method: 'DELETE' });
      flashAfterNav(`Erase of ${cid} started (${result.status}).`);
      location.hash = '#/collections';
    } catch (error) { flash(`Not erased: ${error.message}`, true); }
  });

  mount(main, 
    el('h1', { text: `Collection ${cid}` }),
    collection ? el('p', { class: 'muted' }, collection.name || 'no name', ' · ',
      el('span', { class: `badge ${collection.status}`, text: collection.status }),
      ` · embedder ${collection.settings?.embedder || 'default'} · created ${when(collection.created_at)}`) : null,
    stats, live,
    el('h2', { text: 'Index segments' }),
    el('table', {}, el('thead', {}, el('tr', {}, ...['Segment', 'Faces', 'Tombstones', 'Size', 'Created'].map((h, i) => el('th', { scope: 'col', class: i && i < 4 ? 'num' : '', text: h })))), segments),
    el('h2', { text: 'Failures' }),
    el('table', {}, el('thead', {}, el('tr', {}, ...['Source', 'Reason', 'Attempts', ''].map((h) => el('th', { scope: 'col', text: h })))), failures),
    el('div', { class: 'panels' }, shareForm, cid === 'default' ? null : eraseForm),
  );
  await poll();
  await loadFailures();
  timer = setInterval(poll, POLL_MS);
  return () => clearInterval(timer);
}
