// People, as the pages see them. A thin layer over the person routes of the query API:
// labels today (/v1/collections/{cid}/persons, /faces?person=, PUT /faces/{id}/person); when the
// clustering service lands, only this module changes. Every change pushes its inverse on an
// undo stack, so merge, split, reject and rename can be undone from the People pages.
import { v1 } from './api.js';

const undoStack = [];

export async function listPersons(cid) {
  const out = [];
  let cursor = null;
  do {
    const page = await v1(cid, `/persons?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    out.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && out.length < 2000);
  return out;
}

export function getPerson(cid, personId) { return v1(cid, `/persons/${encodeURIComponent(personId)}`); }

export async function facesOf(cid, personId, limit = 1000) {
  const page = await v1(cid, `/faces?person=${encodeURIComponent(personId)}&limit=${limit}`);
  return page.items;
}

export async function unlabelledFaces(cid, limit = 500) {
  const page = await v1(cid, `/faces?limit=${limit}`);
  return page.items.filter((face) => !face.person_id);
}

async function label(cid, faceId, personId) {
  return v1(cid, `/faces/${encodeURIComponent(faceId)}/person`, { method: 'PUT', json: { person_id: personId } });
}

async function relabel(cid, moves) {
  for (const [faceId, personId] of moves) await label(cid, faceId, personId);
}

export async function createPerson(cid, name, faceIds = []) {
  const person = await v1(cid, '/persons', { method: 'POST', json: { name } });
  await relabel(cid, faceIds.map((id) => [id, person.person_id]));
  undoStack.push({
    what: `create ${name}`,
    run: async () => {
      await relabel(cid, faceIds.map((id) => [id, null]));
      await v1(cid, `/persons/${encodeURIComponent(person.person_id)}`, { method: 'DELETE' });
    },
  });
  return person;
}

export async function rename(cid, personId, name) {
  const before = await getPerson(cid, personId);
  const after = await v1(cid, `/persons/${encodeURIComponent(personId)}`, { method: 'PATCH', json: { name } });
  undoStack.push({
    what: `rename ${before.name} → ${name}`,
    run: () => v1(cid, `/persons/${encodeURIComponent(personId)}`, { method: 'PATCH', json: { name: before.name } }),
  });
  return after;
}

/** Every face of `others` moves to `into`; the emptied persons are removed. */
export async function merge(cid, into, others) {
  const moved = [];
  for (const other of others) {
    const person = await getPerson(cid, other);
    const faces = await facesOf(cid, other);
    await relabel(cid, faces.map((f) => [f.face_id, into]));
    await v1(cid, `/persons/${encodeURIComponent(other)}`, { method: 'DELETE' });
    moved.push({ name: person.name, metadata: person.metadata, faceIds: faces.map((f) => f.face_id) });
  }
  undoStack.push({
    what: `merge ${moved.map((m) => m.name).join(', ')}`,
    run: async () => {
      for (const m of moved) {
        const again = await v1(cid, '/persons', { method: 'POST', json: { name: m.name, metadata: m.metadata } });
        await relabel(cid, m.faceIds.map((id) => [id, again.person_id]));
      }
    },
  });
}

/** The selected faces of `personId` become a new person named `name`. */
export async function split(cid, personId, faceIds, name) {
  const person = await v1(cid, '/persons', { method: 'POST', json: { name } });
  await relabel(cid, faceIds.map((id) => [id, person.person_id]));
  undoStack.push({
    what: `split ${name}`,
    run: async () => {
      await relabel(cid, faceIds.map((id) => [id, personId]));
      await v1(cid, `/persons/${encodeURIComponent(person.person_id)}`, { method: 'DELETE' });
    },
  });
  return person;
}

/** The selected faces are not this person: their label is removed. */
export async function reject(cid, personId, faceIds) {
  await relabel(cid, faceIds.map((id) => [id, null]));
  undoStack.push({
    what: `reject ${faceIds.length} face(s)`,
    run: () => relabel(cid, faceIds.map((id) => [id, personId])),
  });
}

export function lastUndo() { return undoStack.length ? undoStack[undoStack.length - 1].what : null; }

export async function undo() {
  const step = undoStack.pop();
  if (step) await step.run();
  return step?.what ?? null;
}
