// Image view: the photo with every face boxed, its landmarks, scores and reject reasons;
// the faces with their persons; forget the image (typed confirmation not needed: one image).
import { v1, photoUrl } from '../api.js';
import { listPersons } from '../persons.js';
import { el, flash, flashAfterNav, stage, when, mount } from '../ui.js';

function fmt(value, digits = 3) { return value == null ? '—' : Number(value).toFixed(digits); }

export async function imagePage({ cid, id, main }) {
  const image = await v1(cid, `/images/${encodeURIComponent(id)}`);
  const persons = await listPersons(cid).catch(() => []);
  const faces = image.faces.map((f) => {
    const reasons = f.quality?.reasons || [];
    return {
      bbox: f.bbox, landmarks: f.landmarks,
      label: `${f.face_index + 1}${f.person_name ? ` ${f.person_name}` : ''}`,
      className: reasons.length || f.live === false ? 'rejected' : '',
    };
  });
  const view = stage(photoUrl(cid, id), `Photo ${image.source} with ${image.faces.length} face(s) boxed`,
    image.width, image.height, faces);

  const rows = image.faces.map((f) => {
    const reasons = f.quality?.reasons || [];
    const select = el('select', { 'aria-label': `Person of face ${f.face_index + 1}` },
      el('option', { value: '', text: '— nobody —' }),
      ...persons.map((p) => el('option', { value: p.person_id, text: p.name, selected: p.person_id === f.person_id })));
    select.addEventListener('change', async () => {
      await v1(cid, `/faces/${encodeURIComponent(f.face_id)}/person`, { method: 'PUT', json: { person_id: select.value || null } });
      flash(`Face ${f.face_index + 1} labelled.`);
    });
    return el('tr', { 'data-face': f.face_id },
      el('td', {}, String(f.face_index + 1)),
      el('td', {}, f.crop_url ? el('img', { src: f.crop_url, alt: `Face ${f.face_index + 1}`, width: '64', height: '64' }) : '—'),
      el('td', { class: 'num' }, fmt(f.det_score)),
      el('td', { class: 'num' }, f.liveness == null ? '—' : `${fmt(f.liveness)} ${f.live === false ? '(not live)' : ''}`),
      el('td', { class: 'num' }, fmt(f.quality?.score)),
      el('td', {}, reasons.length ? reasons.join(', ') : el('span', { class: 'muted', text: 'none' })),
      el('td', {}, select));
  });

  const forget = el('button', { type: 'button', class: 'danger', id: 'forget-image', text: 'Forget this image' });
  const dialog = el('dialog', { id: 'forget-dialog', 'aria-labelledby': 'forget-title' },
    el('h2', { id: 'forget-title', text: 'Forget this image?' }),
    el('p', { text: `Its ${image.faces.length} face(s), their crops and index entries are deleted. This cannot be undone.` }),
    el('form', { method: 'dialog', class: 'row' },
      el('button', { value: 'cancel', class: 'secondary', text: 'Keep it' }),
      el('button', { value: 'forget', class: 'danger', id: 'forget-confirm', text: 'Forget' })));
  forget.addEventListener('click', () => dialog.showModal());
  dialog.addEventListener('close', async () => {
    if (dialog.returnValue !== 'forget') return;
    const result = await v1(cid, `/images/${encodeURIComponent(id)}`, { method: 'DELETE' });
    flashAfterNav(`Image forgotten: ${result.deleted_faces.length} face(s) removed (index ${result.index}).`);
    location.hash = `#/c/${encodeURIComponent(cid)}/search`;
  });

  mount(main, 
    el('h1', { text: 'Image' }),
    el('p', { class: 'muted' }, `${image.source} · `, el('span', { class: `badge ${image.status}`, text: image.status }),
      ` · ${image.width ?? '?'}×${image.height ?? '?'} ${image.format || ''} · ${image.model || ''} · updated ${when(image.updated_at)}`),
    image.error_code ? el('p', { class: 'error-text', text: `${image.error_code}: ${image.error_message || ''}` }) : null,
    el('div', { class: 'layout' },
      el('section', { 'aria-label': 'Photo' }, view.node),
      el('section', { 'aria-label': 'Faces' },
        el('table', {},
          el('caption', { class: 'muted', text: 'Boxes: cyan kept, red dashed rejected (quality or liveness). Dots: landmarks.' }),
          el('thead', {}, el('tr', {},
            ...['#', 'Crop', 'Detection', 'Liveness', 'Quality', 'Reject reasons', 'Person'].map((h) => el('th', { scope: 'col', text: h })))),
          el('tbody', {}, rows)),
        el('p', {}, forget))),
    dialog,
  );
}
