// The console's router: #/collections, #/c/<cid>/<page>[/<id>]. One page module per view.
import { loadSession, v1root } from './api.js';
import { el, flash, takePending } from './ui.js';
import { searchPage } from './pages/search.js';
import { imagePage } from './pages/image.js';
import { collectionsPage } from './pages/collections.js';
import { statusPage } from './pages/status.js';
import { peoplePage, personPage } from './pages/people.js';

const main = document.getElementById('main');
let cleanup = null;

function parse(hash) {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'c' && parts[1]) return { cid: parts[1], page: parts[2] || 'search', id: parts[3] };
  return { cid: null, page: parts[0] || 'collections', id: parts[1] };
}

const PAGES = {
  search: searchPage,
  images: imagePage,
  status: statusPage,
  people: (ctx) => (ctx.id ? personPage(ctx) : peoplePage(ctx)),
  collections: collectionsPage,
};

const TITLES = { search: 'Search', images: 'Image', status: 'Status', people: 'People', collections: 'Collections' };

async function fillPicker(cid) {
  const picker = document.getElementById('collection-picker');
  try {
    const page = await v1root('/collections?limit=200');
    const ids = page.items.filter((c) => c.status === 'active').map((c) => c.collection_id);
    if (!ids.includes('default')) ids.unshift('default');
    picker.replaceChildren(...ids.map((id) => el('option', { value: id, text: id, selected: id === cid })));
  } catch {
    picker.replaceChildren(el('option', { value: cid, text: cid }));
  }
}

function setNav(cid, page) {
  for (const link of document.querySelectorAll('[data-nav]')) {
    const name = link.dataset.nav;
    if (name !== 'collections') link.setAttribute('href', `#/c/${encodeURIComponent(cid)}/${name}`);
    if (name === page || (name === 'search' && page === 'images')) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

let lastCid = 'default';

async function route(moved = false) {
  if (cleanup) { cleanup(); cleanup = null; }
  const ctx = parse(location.hash);
  const cid = ctx.cid || lastCid;
  lastCid = cid;
  setNav(cid, ctx.page);
  await fillPicker(cid);
  const render = PAGES[ctx.page];
  document.title = `${TITLES[ctx.page] || 'Not found'} — facesearch console`;
  main.replaceChildren();
  if (!render) {
    main.append(el('h1', { text: 'Not found' }), el('p', { text: 'No such page.' }));
    return;
  }
  try {
    cleanup = (await render({ ...ctx, cid, main })) || null;
  } catch (error) {
    main.append(el('p', { class: 'error-text', text: `Could not load this page: ${error.message}` }));
  }
  if (moved) main.focus({ preventScroll: true }); // screen readers start at the new page
}

async function start() {
  const session = await loadSession();
  if (!session) {
    main.replaceChildren(
      el('h1', { text: 'Sign in' }),
      el('p', {}, 'Open the one-time link that ', el('code', { text: 'facesearch serve --console' }),
        ' printed (in the cloud, this console sits behind IAP / Cloud Run IAM).'),
    );
    return;
  }
  document.getElementById('who').textContent = session.subject;
  document.getElementById('collection-picker').addEventListener('change', (e) => {
    const { page } = parse(location.hash);
    const target = ['images'].includes(page) || page === 'collections' ? 'search' : page;
    location.hash = `#/c/${encodeURIComponent(e.target.value)}/${target}`;
  });
  window.addEventListener('hashchange', () => {
    const next = takePending();
    flash(next ? next[0] : '', next ? next[1] : false);
    route(true);
  });
  if (!location.hash) location.hash = '#/c/default/search';
  else await route();
}

start();
