// Search: drop or shoot a photo, pick a detected face, move the threshold, browse matches.
import { consoleApi, v1, ApiError } from '../api.js';
import { listPersons, facesOf } from '../persons.js';
import { el, flash, pct, stage, dropZone, camera, mount } from '../ui.js';

const K = 50;

export async function searchPage({ cid, main }) {
  const info = await consoleApi(cid, '/status');
  const defaultThreshold = info.threshold;
  let response = null;
  let picked = 0;
  let threshold = defaultThreshold;

  const input = el('input', { id: 'probe', type: 'file', accept: 'image/*' });
  const zone = el('form', { class: 'drop', 'aria-describedby': 'probe-hint' },
    el('label', { for: 'probe', class: 'drop-label' }, 'Photo to search with',
      el('span', { id: 'probe-hint', class: 'hint', text: 'Drop a photo here or choose one (JPEG, PNG, HEIC, WebP).' })),
    input);
  const video = el('video', { autoplay: true, playsinline: true, muted: true });
  const shoot = el('button', { type: 'button', text: 'Take the photo' });
  const cameraBox = el('div', { class: 'camera', hidden: true }, video, shoot);
  const cameraButton = el('button', { type: 'button', class: 'secondary', text: 'Use the camera' });
  zone.append(cameraButton);

  const slider = el('input', { id: 'threshold', type: 'range', min: '0', max: '1', step: '0.01', value: String(threshold) });
  const sliderValue = el('output', { for: 'threshold', id: 'threshold-value', text: threshold.toFixed(2) });
  const personSelect = el('select', { id: 'by-person' }, el('option', { value: '', text: 'Choose a person…' }));
  const preview = el('div', { id: 'preview' });
  const picks = el('div', { class: 'face-picks', role: 'group', 'aria-label': 'Detected faces' });
  const summary = el('p', { id: 'result-summary', role: 'status', 'aria-live': 'polite' });
  const results = el('ul', { id: 'results', class: 'grid', 'aria-label': 'Matching faces' });

  mount(main, 
    el('h1', { text: `Search ${cid}` }),
    el('div', { class: 'layout' },
      el('section', { 'aria-label': 'Query' }, zone, cameraBox,
        el('div', { class: 'row' },
          el('label', { for: 'by-person', text: 'Or search by person' }), personSelect),
        preview, picks),
      el('section', { 'aria-label': 'Results' },
        el('div', { class: 'slider' }, el('label', { for: 'threshold', text: 'Similarity threshold' }), slider, sliderValue,
          el('span', { class: 'hint', text: `default ${defaultThreshold.toFixed(2)}` })),
        summary, results)),
  );

  listPersons(cid).then((persons) => {
    personSelect.append(...persons.map((p) => el('option', { value: p.person_id, text: p.name })));
  }).catch(() => {});

  function renderResults() {
    results.replaceChildren();
    if (!response) return;
    const face = response.faces[picked];
    if (!face) { summary.textContent = 'No face selected.'; return; }
    if (face.skipped) { summary.textContent = `This face was not searched: ${face.skipped}.`; return; }
    const matches = face.matches.filter((m) => m.similarity >= threshold);
    summary.textContent = `${matches.length} match${matches.length === 1 ? '' : 'es'} at or above ${threshold.toFixed(2)} among ${response.index_size} indexed faces.`;
    for (const m of matches) {
      const link = `#/c/${encodeURIComponent(cid)}/images/${encodeURIComponent(m.image_id)}`;
      results.append(el('li', { 'data-face': m.face_id, 'data-image': m.image_id },
        el('img', { src: m.crop_url, alt: `Face ${m.face_id}${m.person_name ? ` (${m.person_name})` : ''}`, loading: 'lazy' }),
        el('span', { class: 'sim', text: pct(m.similarity) }),
        el('span', { text: m.person_name || 'unnamed' }),
        el('a', { href: link, text: 'Source image' })));
    }
  }

  function renderPicks(src) {
    const faces = response.faces.map((f, i) => ({
      bbox: f.bbox, label: String(i + 1),
      className: `${i === picked ? 'selected' : ''} ${f.skipped ? 'rejected' : ''}`,
    }));
    preview.replaceChildren(stage(src, 'The photo searched with, faces boxed', null, null, faces).node);
    picks.replaceChildren(...response.faces.map((f, i) => el('button', {
      type: 'button', class: 'secondary', 'aria-pressed': String(i === picked),
      text: `Face ${i + 1}${f.skipped ? ` (${f.skipped})` : ''}`,
      onclick: () => { picked = i; renderPicks(src); renderResults(); },
    })));
  }

  async function searchBlob(blob) {
    flash('');
    summary.textContent = 'Searching…';
    results.replaceChildren();
    const src = URL.createObjectURL(blob);
    try {
      response = await v1(cid, `/search?k=${K}&threshold=0`, { method: 'POST', body: blob, contentType: blob.type || 'image/jpeg' });
    } catch (error) {
      response = null;
      preview.replaceChildren(stage(src, 'The photo searched with', null, null, []).node);
      picks.replaceChildren();
      summary.textContent = error instanceof ApiError ? `No search: ${error.message}` : String(error);
      return;
    }
    const sizes = response.faces.map((f) => (f.bbox ? (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]) : 0));
    picked = sizes.indexOf(Math.max(...sizes, 0));
    if (picked < 0) picked = 0;
    renderPicks(src);
    renderResults();
  }

  async function searchPerson(personId) {
    if (!personId) return;
    const faces = await facesOf(cid, personId, 1);
    if (!faces.length) { summary.textContent = 'This person has no faces.'; return; }
    response = await v1(cid, `/search?k=${K}&threshold=0`, { method: 'POST', json: { face_id: faces[0].face_id } });
    picked = 0;
    preview.replaceChildren(el('img', { src: faces[0].crop_url, alt: 'The person\'s face searched with', class: 'probe-crop' }));
    picks.replaceChildren();
    renderResults();
  }

  dropZone(zone, input, searchBlob);
  personSelect.addEventListener('change', () => searchPerson(personSelect.value));
  slider.addEventListener('input', () => {
    threshold = Number(slider.value);
    sliderValue.textContent = threshold.toFixed(2);
    renderResults();
  });
  cameraButton.addEventListener('click', async () => {
    try {
      const capture = await camera(video);
      cameraBox.hidden = false;
      shoot.onclick = async () => { cameraBox.hidden = true; searchBlob(await capture()); };
    } catch (error) {
      flash(`Camera unavailable: ${error.message}`, true);
    }
  });
}
