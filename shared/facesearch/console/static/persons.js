// People, as the pages see them. A thin layer over the person routes of the query API
// (/v1/collections/{cid}/persons..., /faces?person=, PUT /faces/{id}/person): persons are
// found by the clusterer or made here; merge, split and reject are the server's corrections
// (POST /persons/{id}/merge|split|reject), undone by the server (POST /corrections/{id}/undo).
// Every change pushes its undo on a stack, so the People pages can undo the last one.
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
      // DELETE forgets a person's faces: only once nothing is left in it
      if (!(await facesOf(cid, person.person_id, 1)).length) {
        await v1(cid, `/persons/${encodeURIComponent(person.person_id)}`, { method: 'DELETE' });
      }
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

/** The server's corrections (merge, split, reject) are logged there and undone there. */
async function corrected(cid, what, correction) {
  undoStack.push({
    what,
    run: () => v1(cid, `/corrections/${encodeURIComponent(correction.correction_id)}/undo`, { method: 'POST' }),
  });
  return correction;
}

/** `others` are merged into `into` (one correction; undo detaches exactly them). */
export async function merge(cid, into, others) {
  const names = [];
  for (const other of others) names.push((await getPerson(cid, other)).name);
  const correction = await v1(cid, `/persons/${encodeURIComponent(into)}/merge`, { method: 'POST', json: { persons: others } });
  await corrected(cid, `merge ${names.join(', ')}`, correction);
}

/** The selected faces of `personId` become a new person named `name`. */
export async function split(cid, personId, faceIds, name) {
  const correction = await v1(cid, `/persons/${encodeURIComponent(personId)}/split`, { method: 'POST', json: { face_ids: faceIds, name } });
  await corrected(cid, `split ${name}`, correction);
  return { person_id: correction.created_person, name };
}

/** The selected faces are not this person: they leave it and never come back. */
export async function reject(cid, personId, faceIds) {
  const done = [];
  for (const faceId of faceIds) {
    done.push(await v1(cid, `/persons/${encodeURIComponent(personId)}/reject`, { method: 'POST', json: { face_id: faceId } }));
  }
  undoStack.push({
    what: `reject ${faceIds.length} face(s)`,
    run: async () => {
      for (const c of done.reverse()) await v1(cid, `/corrections/${encodeURIComponent(c.correction_id)}/undo`, { method: 'POST' });
    },
  });
}

export function lastUndo() { return undoStack.length ? undoStack[undoStack.length - 1].what : null; }

export async function undo() {
  const step = undoStack.pop();
  if (step) await step.run();
  return step?.what ?? null;
}
