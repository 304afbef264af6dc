// The public "find my photos" page: one selfie in, matching photos out. It can reach only
// /share/<token>/search and the time-limited photo links that search returns.
const token = location.pathname.split('/')[2];
const input = document.getElementById('selfie');
const form = document.getElementById('selfie-form');
const statusLine = document.getElementById('share-status');
const results = document.getElementById('share-results');

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') node.textContent = v; else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

async function search(blob) {
  statusLine.textContent = 'Looking for you…';
  results.replaceChildren();
  const response = await fetch(`/share/${token}/search`, {
    method: 'POST', body: blob, headers: { 'Content-Type': blob.type || 'image/jpeg' }, credentials: 'omit',
  });
  const body = await response.json().catch(() => ({}));
  if (response.status === 429) {
    statusLine.textContent = `Too many searches right now; try again in ${response.headers.get('Retry-After') || 60} s.`;
    return;
  }
  if (!response.ok) { statusLine.textContent = body.detail || 'That did not work; try another photo.'; return; }
  if (!body.photos.length) { statusLine.textContent = body.message || 'No photos of you found (yet).'; return; }
  statusLine.textContent = `${body.photos.length} photo${body.photos.length === 1 ? '' : 's'} found. Links work for a limited time.`;
  for (const p of body.photos) {
    const img = el('img', { src: p.photo_url, alt: p.person_name ? `Photo with ${p.person_name}` : 'A photo you appear in', loading: 'lazy' });
    results.append(el('li', {}, el('a', { href: p.photo_url, target: '_blank', rel: 'noopener' }, img),
      el('span', { text: `${Math.round(p.similarity * 100)}% match` })));
  }
}

input.addEventListener('change', () => { if (input.files[0]) search(input.files[0]); });
form.addEventListener('dragover', (e) => { e.preventDefault(); form.classList.add('over'); });
form.addEventListener('dragleave', () => form.classList.remove('over'));
form.addEventListener('drop', (e) => {
  e.preventDefault(); form.classList.remove('over');
  if (e.dataTransfer.files[0]) search(e.dataTransfer.files[0]);
});
document.getElementById('camera-button').addEventListener('click', async () => {
  const box = document.getElementById('camera');
  const video = document.getElementById('camera-video');
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'user' } });
    video.srcObject = stream;
    box.hidden = false;
    document.getElementById('camera-shoot').onclick = () => {
      const canvas = document.createElement('canvas');
      canvas.width = video.videoWidth; canvas.height = video.videoHeight;
      canvas.getContext('2d').drawImage(video, 0, 0);
      stream.getTracks().forEach((t) => t.stop());
      box.hidden = true;
      canvas.toBlob((blob) => search(blob), 'image/jpeg', 0.92);
    };
  } catch (error) {
    statusLine.textContent = `Camera unavailable (${error.message}); choose a photo instead.`;
  }
});
