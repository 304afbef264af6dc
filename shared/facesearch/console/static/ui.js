// Small DOM helpers: elements without innerHTML (no markup from data), flash messages,
// and the SVG overlay that draws face boxes and landmarks over a photo.
const SVG = 'http://www.w3.org/2000/svg';

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name === 'class') node.className = value;
    else if (name === 'text') node.textContent = value;
    else if (value === true) node.setAttribute(name, '');
    else node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Append the truthy nodes (a page's optional parts may be null). */
export function mount(parent, ...nodes) {
  parent.append(...nodes.flat().filter((n) => n !== null && n !== undefined && n !== false));
}

export function flash(message, isError = false) {
  const node = document.getElementById('flash');
  if (!node) return;
  node.textContent = message;
  node.classList.toggle('error', isError);
}

let pending = null;

/** A message for the page a navigation is about to show (the router shows it there). */
export function flashAfterNav(message, isError = false) { pending = [message, isError]; }

export function takePending() {
  const out = pending;
  pending = null;
  return out;
}

export function pct(value) { return `${(value * 100).toFixed(1)}%`; }

export function when(epoch) { return epoch ? new Date(epoch * 1000).toLocaleString() : '—'; }

export function bytes(n) {
  if (n == null) return '—';
  const units = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

/**
 * A photo with an SVG overlay in the photo's own pixel coordinates.
 * faces: [{bbox, landmarks?, label?, className?}]
 */
export function stage(src, alt, width, height, faces) {
  const img = el('img', { src, alt });
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('aria-hidden', 'true');
  const draw = (w, h) => {
    const unit = Math.max(w, h) / 100; // sizes follow the photo, not its pixels
    svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
    svg.replaceChildren();
    for (const face of faces) {
      if (!face.bbox) continue;
      const [x1, y1, x2, y2] = face.bbox;
      const rect = document.createElementNS(SVG, 'rect');
      rect.setAttribute('x', x1); rect.setAttribute('y', y1);
      rect.setAttribute('width', x2 - x1); rect.setAttribute('height', y2 - y1);
      rect.setAttribute('class', `box ${face.className || ''}`);
      svg.append(rect);
      for (const [x, y] of face.landmarks || []) {
        const dot = document.createElementNS(SVG, 'circle');
        dot.setAttribute('cx', x); dot.setAttribute('cy', y);
        dot.setAttribute('r', Math.max(0.45 * unit, (x2 - x1) / 45));
        dot.setAttribute('class', 'mark');
        svg.append(dot);
      }
      if (face.label) {
        const text = document.createElementNS(SVG, 'text');
        text.setAttribute('x', x1); text.setAttribute('y', Math.max(y1 - 0.6 * unit, 3 * unit));
        text.setAttribute('font-size', 3 * unit);
        text.setAttribute('stroke-width', 0.3 * unit);
        text.textContent = face.label;
        svg.append(text);
      }
    }
  };
  if (width && height) draw(width, height);
  img.addEventListener('load', () => draw(width || img.naturalWidth, height || img.naturalHeight));
  return { node: el('div', { class: 'stage' }, img, svg), redraw: draw, img };
}

/** Drag-and-drop and a file input on `zone`; calls onFile(File). */
export function dropZone(zone, input, onFile) {
  input.addEventListener('change', () => { if (input.files[0]) onFile(input.files[0]); });
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    const file = e.dataTransfer?.files?.[0];
    if (file) onFile(file);
  });
}

/** Starts the camera in `video`; resolves to a function that captures a JPEG Blob. */
export async function camera(video) {
  if (!navigator.mediaDevices?.getUserMedia) throw new Error('no camera in this browser');
  const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'user' } });
  video.srcObject = stream;
  return () => new Promise((resolve) => {
    const canvas = document.createElement('canvas');
    canvas.width = video.videoWidth; canvas.height = video.videoHeight;
    canvas.getContext('2d').drawImage(video, 0, 0);
    stream.getTracks().forEach((t) => t.stop());
    canvas.toBlob(resolve, 'image/jpeg', 0.92);
  });
}
