// Collections: the list, create one, and links to each collection's pages.
import { v1root } from '../api.js';
import { el, flash, when, mount } from '../ui.js';

export async function collectionsPage({ main }) {
  const list = el('ul', { class: 'cards', id: 'collections' });
  async function refresh() {
    const page = await v1root('/collections?limit=200');
    list.replaceChildren(...page.items.map((c) => el('li', { class: 'card', 'data-collection': c.collection_id },
      el('h2', {}, el('a', { href: `#/c/${encodeURIComponent(c.collection_id)}/status`, text: c.collection_id })),
      el('p', {}, c.name || el('span', { class: 'muted', text: 'no name' })),
      el('p', {}, el('span', { class: `badge ${c.status}`, text: c.status }), ` created ${when(c.created_at)}`),
      c.status === 'active' ? el('p', { class: 'row' },
        el('a', { href: `#/c/${encodeURIComponent(c.collection_id)}/search`, text: 'Search' }),
        el('a', { href: `#/c/${encodeURIComponent(c.collection_id)}/people`, text: 'People' })) : null)));
  }
  const idInput = el('input', { id: 'new-id', type: 'text', required: true, pattern: '[a-z0-9][a-z0-9\\-]{0,62}', autocomplete: 'off' });
  const nameInput = el('input', { id: 'new-name', type: 'text', autocomplete: 'off' });
  const form = el('form', { class: 'card', id: 'create-collection' },
    el('h2', { text: 'Create a collection' }),
    el('div', { class: 'field' }, el('label', { for: 'new-id', text: 'Id' }),
      idInput, el('span', { class: 'hint', text: 'a-z, 0-9 and "-"; never reused, even after an erase.' })),
    el('div', { class: 'field' }, el('label', { for: 'new-name', text: 'Name' }), nameInput),
    el('button', { type: 'submit', text: 'Create' }));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await v1root('/collections', { method: 'POST', json: { collection_id: idInput.value, name: nameInput.value } });
      flash(`Collection ${idInput.value} created.`);
      form.reset();
      await refresh();
    } catch (error) {
      flash(`Not created: ${error.message}`, true);
    }
  });
  mount(main, el('h1', { text: 'Collections' }), list, form);
  await refresh();
}
