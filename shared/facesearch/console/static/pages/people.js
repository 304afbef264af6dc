// People: a gallery of persons (cover face, face count), rename, merge, and a person's page
// with every face and photo, where faces are split off or rejected. Undo reverses the last
// change. All data goes through ../persons.js.
import * as persons from '../persons.js';
import { el, flash, mount } from '../ui.js';

function undoBar(onDone) {
  const what = persons.lastUndo();
  const button = el('button', { type: 'button', class: 'secondary', id: 'undo', disabled: !what, text: what ? `Undo ${what}` : 'Nothing to undo' });
  button.addEventListener('click', async () => {
    const done = await persons.undo();
    flash(done ? `Undone: ${done}.` : 'Nothing to undo.');
    await onDone();
  });
  return button;
}

export async function peoplePage({ cid, main }) {
  const gallery = el('ul', { class: 'grid', id: 'people', 'aria-label': 'People' });
  const unlabelled = el('ul', { class: 'grid', id: 'unlabelled', 'aria-label': 'Faces without a person' });
  const bar = el('div', { class: 'row' });
  const selected = new Set();
  const pickedFaces = new Set();

  async function refresh() {
    selected.clear(); pickedFaces.clear();
    const all = await persons.listPersons(cid);
    const cards = await Promise.all(all.map(async (p) => ({ p, faces: await persons.facesOf(cid, p.person_id, 1000) })));
    gallery.replaceChildren(...cards.map(({ p, faces }) => {
      const box = el('input', { type: 'checkbox', id: `pick-${p.person_id}`, 'data-person': p.person_id });
      box.addEventListener('change', () => { if (box.checked) selected.add(p.person_id); else selected.delete(p.person_id); renderBar(); });
      const cover = faces[0];
      return el('li', { 'data-person': p.person_id, 'data-name': p.name },
        cover ? el('img', { src: cover.crop_url, alt: `Cover face of ${p.name}` }) : el('div', { class: 'muted', text: 'no faces' }),
        el('a', { href: `#/c/${encodeURIComponent(cid)}/people/${encodeURIComponent(p.person_id)}`, text: p.name }),
        el('span', { class: 'muted', text: `${faces.length} face${faces.length === 1 ? '' : 's'}` }),
        el('span', { class: 'row' }, box, el('label', { for: `pick-${p.person_id}`, text: 'Select' })));
    }));
    if (!all.length) gallery.append(el('li', { class: 'muted', text: 'No persons yet: select faces below and name them.' }));
    const loose = await persons.unlabelledFaces(cid);
    unlabelled.replaceChildren(...loose.map((f) => {
      const box = el('input', { type: 'checkbox', id: `face-${f.face_id}`, 'data-face': f.face_id });
      box.addEventListener('change', () => { if (box.checked) pickedFaces.add(f.face_id); else pickedFaces.delete(f.face_id); renderBar(); });
      return el('li', { 'data-face': f.face_id },
        el('img', { src: f.crop_url, alt: `Unlabelled face from image ${f.image_id}` }),
        el('span', { class: 'row' }, box, el('label', { for: `face-${f.face_id}`, text: 'Select' })),
        el('a', { href: `#/c/${encodeURIComponent(cid)}/images/${encodeURIComponent(f.image_id)}`, text: 'Photo' }));
    }));
    renderBar();
  }

  const nameInput = el('input', { id: 'new-person', type: 'text', autocomplete: 'off' });
  function renderBar() {
    const merge = el('button', { type: 'button', id: 'merge', disabled: selected.size < 2, text: `Merge ${selected.size} selected` });
    merge.addEventListener('click', async () => {
      const [into, ...others] = [...selected];
      await persons.merge(cid, into, others);
      flash(`Merged ${others.length + 1} persons.`);
      await refresh();
    });
    const create = el('button', { type: 'button', id: 'create-person', disabled: !pickedFaces.size, text: `Name ${pickedFaces.size} selected face(s)` });
    create.addEventListener('click', async () => {
      if (!nameInput.value.trim()) { flash('Give the person a name first.', true); nameInput.focus(); return; }
      await persons.createPerson(cid, nameInput.value.trim(), [...pickedFaces]);
      flash(`${nameInput.value.trim()} created.`);
      nameInput.value = '';
      await refresh();
    });
    bar.replaceChildren(merge, undoBar(refresh));
    createRow.replaceChildren(el('label', { for: 'new-person', text: 'Name' }), nameInput, create);
  }
  const createRow = el('div', { class: 'row' });

  mount(main, el('h1', { text: `People in ${cid}` }), bar, gallery,
    el('h2', { text: 'Faces without a person' }), createRow, unlabelled);
  await refresh();
}

export async function personPage({ cid, id, main }) {
  const picked = new Set();
  const heading = el('h1');
  const faces = el('ul', { class: 'grid', id: 'person-faces', 'aria-label': 'Faces' });
  const photos = el('ul', { class: 'cards', id: 'person-photos', 'aria-label': 'Photos' });
  const bar = el('div', { class: 'row' });
  const renameInput = el('input', { id: 'rename', type: 'text', autocomplete: 'off' });
  const renameForm = el('form', { class: 'row', id: 'rename-form' },
    el('label', { for: 'rename', text: 'Name' }), renameInput, el('button', { type: 'submit', text: 'Rename' }));
  renameForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    await persons.rename(cid, id, renameInput.value.trim());
    flash('Renamed.');
    await refresh();
  });

  async function refresh() {
    picked.clear();
    let person;
    try { person = await persons.getPerson(cid, id); } catch {
      heading.textContent = 'This person is gone';
      faces.replaceChildren(); photos.replaceChildren();
      bar.replaceChildren(undoBar(refresh), el('a', { href: `#/c/${encodeURIComponent(cid)}/people`, text: 'All people' }));
      return;
    }
    heading.textContent = person.name;
    renameInput.value = person.name;
    const list = await persons.facesOf(cid, id);
    faces.replaceChildren(...list.map((f) => {
      const box = el('input', { type: 'checkbox', id: `face-${f.face_id}`, 'data-face': f.face_id });
      box.addEventListener('change', () => { if (box.checked) picked.add(f.face_id); else picked.delete(f.face_id); renderBar(); });
      return el('li', { 'data-face': f.face_id },
        el('img', { src: f.crop_url, alt: `Face of ${person.name} in image ${f.image_id}` }),
        el('span', { class: 'row' }, box, el('label', { for: `face-${f.face_id}`, text: 'Select' })));
    }));
    const images = [...new Set(list.map((f) => f.image_id))];
    photos.replaceChildren(...images.map((imageId) => el('li', { class: 'card' },
      el('a', { href: `#/c/${encodeURIComponent(cid)}/images/${encodeURIComponent(imageId)}`, text: `Photo ${imageId.slice(0, 12)}…` }))));
    renderBar();
  }

  function renderBar() {
    const split = el('button', { type: 'button', id: 'split', disabled: !picked.size, text: `Split ${picked.size} into a new person` });
    split.addEventListener('click', async () => {
      const name = `${heading.textContent} (split)`;
      const person = await persons.split(cid, id, [...picked], name);
      flash(`Split into ${person.name}.`);
      await refresh();
    });
    const reject = el('button', { type: 'button', class: 'secondary', id: 'reject', disabled: !picked.size, text: `Not ${heading.textContent}` });
    reject.addEventListener('click', async () => {
      await persons.reject(cid, id, [...picked]);
      flash('Faces unlabelled.');
      await refresh();
    });
    bar.replaceChildren(split, reject, undoBar(refresh), el('a', { href: `#/c/${encodeURIComponent(cid)}/people`, text: 'All people' }));
  }

  mount(main, heading, renameForm, bar, el('h2', { text: 'Faces' }), faces, el('h2', { text: 'Photos' }), photos);
  await refresh();
}
