'use strict';
// The scenedex page. Every caption, path and file name is untrusted text (a model or OCR
// wrote it), so it only ever reaches the page through textContent and setAttribute.

const $ = (selector) => document.querySelector(selector);
const input = $('input[type=search]');
const list = $('#hits');
const note = $('#note');
const video = $('video');
const range = $('#range');
const head = $('#head');

let shown = [];          // hits on the page, in order: {hit, element}
let selected = -1;
let playing = null;      // {hit, offset}
let asking = 0;          // the latest click; an older one waiting for a copy gives up
let timer = null;
let inFlight = null;

function clock(seconds) {
  const ms = Math.round(seconds * 1000);
  const pad = (n, w) => String(n).padStart(w, '0');
  return `${pad(Math.floor(ms / 3600000), 2)}:${pad(Math.floor(ms / 60000) % 60, 2)}:` +
    `${pad(Math.floor(ms / 1000) % 60, 2)}.${pad(ms % 1000, 3)}`;
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

async function loadStats() {
  try {
    const response = await fetch('/api/stats');
    if (!response.ok) return;
    const s = await response.json();
    $('#stats').textContent =
      `${s.files} ${s.files === 1 ? 'file' : 'files'} · ${s.hours.toFixed(2)} h · ` +
      `${s.segments} ${s.segments === 1 ? 'segment' : 'segments'}`;
  } catch (_) { /* the header is a nicety */ }
}

function parameters() {
  const params = new URLSearchParams({ q: input.value });
  for (const name of ['path', 'from', 'to']) {
    const value = $('#' + name).value.trim();
    if (value) params.set(name, value);
  }
  for (const condition of $('#where').value.split(/[\s,]+/).filter(Boolean)) {
    params.append('where', condition);
  }
  return params;
}

async function search() {
  if (inFlight) inFlight.abort();
  if (!input.value.trim()) { render({ hits: [], weak: [] }); return; }
  inFlight = new AbortController();
  try {
    const response = await fetch('/api/search?' + parameters(), { signal: inFlight.signal });
    if (!response.ok) { refuse((await response.text()).trim()); return; }
    render(await response.json());
  } catch (e) {
    if (e.name !== 'AbortError') note.textContent = 'search failed: ' + e.message;
  }
}

function clear() {
  list.replaceChildren();
  shown = [];
  selected = -1;
  note.className = '';
}

// A search the server refused (a filter it cannot use): the old hits go, as they answer
// another question, and the reason stays.
function refuse(why) {
  clear();
  note.className = 'error';
  note.textContent = why;
}

function render(answer) {
  clear();
  if (!input.value.trim()) { note.textContent = ''; return; }
  const notes = answer.notes || [];
  const weaker = (n) => `${n} weaker ${n === 1 ? 'hit' : 'hits'}`;
  if (answer.hits.length === 0 && answer.weak.length === 0) {
    note.textContent = notes.length ? notes.join(' · ')
      : 'no segment matches; try other words, or fewer filters';
    return;
  }
  if (answer.hits.length === 0) {
    note.className = 'none';
    note.textContent = `no close match; ${weaker(answer.weak.length)} below`;
  } else {
    note.textContent = '';
  }
  if (notes.length) note.textContent = [note.textContent, ...notes].filter(Boolean).join(' · ');
  group(answer.hits, false, list);
  if (answer.weak.length === 0) return;
  // Below the close-match floor, as the command line hides them: one line until asked.
  const more = element('details', 'weaker');
  more.open = answer.hits.length === 0;
  more.append(element('summary', '', weaker(answer.weak.length)));
  group(answer.weak, true, more);
  list.append(more);
}

// Hits of one file together under one heading, files in the order of their best hit.
function group(hits, weak, into) {
  const files = new Map();
  for (const hit of hits) {
    if (!files.has(hit.fingerprint)) files.set(hit.fingerprint, []);
    files.get(hit.fingerprint).push(hit);
  }
  for (const fileHits of files.values()) {
    const section = element('section', 'file');
    const first = fileHits[0];
    const offline = first.offline_since ? `  (offline since ${first.offline_since})` : '';
    section.append(element('h2', '', `${first.host}: ${first.path}${offline}`));
    for (const hit of fileHits) section.append(item(hit, weak));
    into.append(section);
  }
}

function item(hit, weak) {
  const el = element('div', weak ? 'hit weak' : 'hit');
  el.tabIndex = 0;
  el.setAttribute('data-path', hit.path);
  el.setAttribute('data-start', String(hit.start));
  el.setAttribute('data-end', String(hit.end));
  const img = element('img');
  img.alt = '';
  img.loading = 'lazy';
  img.src = hit.thumb;
  const text = element('div');
  text.append(element('div', 'when', `${clock(hit.start)} – ${clock(hit.end)}`));
  // What is said is quoted, so it is never mistaken for a description of the picture.
  const said = hit.kind === 'speech';
  text.append(element('div', said ? 'caption said' : 'caption',
    said ? `said${hit.lang ? ` (${hit.lang})` : ''}: “${hit.caption || ''}”` : (hit.caption || '')));
  text.append(element('div', 'score',
    `score ${hit.score.toFixed(4)} · similarity ${hit.similarity.toFixed(2)}`));
  if (!hit.play) text.append(element('div', 'why', `cannot play here: ${hit.why}`));
  el.append(img, text);
  const index = shown.length;
  shown.push({ hit, element: el });
  el.addEventListener('click', () => { select(index); play(index); });
  return el;
}

function select(index) {
  if (index < 0 || index >= shown.length) return;
  if (selected >= 0 && shown[selected]) shown[selected].element.classList.remove('selected');
  selected = index;
  const folded = shown[index].element.closest('details');
  if (folded) folded.open = true;
  shown[index].element.classList.add('selected');
  shown[index].element.focus({ preventScroll: false });
}

async function play(index) {
  const { hit } = shown[index];
  const turn = ++asking;
  $('#now').textContent = `${hit.path}  ${clock(hit.start)} – ${clock(hit.end)}`;
  if (!hit.play) { $('#now').textContent += `: cannot play here: ${hit.why}`; return; }
  let url = hit.url;
  let offset = 0;
  if (hit.play !== 'native') {
    $('#now').textContent += ' (preparing a playable copy…)';
    const params = new URLSearchParams({ from: hit.start, to: hit.end });
    let response = await fetch(`${hit.url}?${params}`);
    // A few copies are made at a time: wait for a turn, saying so.
    for (let tries = 0; response.status === 503 && tries < 600 && asking === turn; tries++) {
      const { waiting } = await response.json().catch(() => ({ waiting: 'other' }));
      $('#now').textContent = `${hit.path}  ${clock(hit.start)} – ${clock(hit.end)}` +
        ` (waiting: ${waiting} playable ${waiting === 1 ? 'copy is' : 'copies are'} being made first…)`;
      await new Promise((resolve) => setTimeout(resolve, 1000));
      response = await fetch(`${hit.url}?${params}`);
    }
    if (asking !== turn) return; // another scene was picked meanwhile
    if (!response.ok) { $('#now').textContent = (await response.text()).trim(); return; }
    const stretch = await response.json();
    url = stretch.url;
    offset = stretch.offset;
    $('#now').textContent = `${hit.path}  ${clock(hit.start)} – ${clock(hit.end)}`;
  }
  playing = { hit, offset };
  video.dataset.offset = String(offset);
  for (const old of video.querySelectorAll('track')) old.remove();
  const track = element('track');
  track.kind = 'captions';
  track.label = 'scenedex';
  track.srclang = 'en';
  track.src = `${hit.track}?offset=${offset}`;
  video.append(track);
  const seek = () => {
    video.currentTime = Math.max(0, hit.start - offset);
    video.play().catch(() => {});
    mark();
  };
  if (video.getAttribute('src') === url && video.readyState >= 1) {
    seek();
  } else {
    video.addEventListener('loadedmetadata', seek, { once: true });
    video.setAttribute('src', url);
  }
  showCaptions();
}

function mark() {
  if (!playing || !isFinite(video.duration) || video.duration <= 0) return;
  const d = video.duration;
  const from = Math.max(0, playing.hit.start - playing.offset);
  const to = Math.min(d, playing.hit.end - playing.offset);
  range.style.left = `${(100 * from) / d}%`;
  range.style.width = `${(100 * Math.max(0, to - from)) / d}%`;
  head.style.left = `${(100 * video.currentTime) / d}%`;
}

function showCaptions() {
  for (const track of video.textTracks) {
    track.mode = $('#captions').checked ? 'showing' : 'hidden';
  }
}

function stop() {
  video.pause();
}

input.addEventListener('input', () => {
  clearTimeout(timer);
  timer = setTimeout(search, 200);
});
for (const id of ['path', 'from', 'to', 'where']) {
  $('#' + id).addEventListener('change', search);
}
$('#captions').addEventListener('change', showCaptions);
video.addEventListener('timeupdate', mark);
video.addEventListener('durationchange', mark);
$('#timeline').addEventListener('click', (e) => {
  if (!isFinite(video.duration)) return;
  const box = e.currentTarget.getBoundingClientRect();
  video.currentTime = ((e.clientX - box.left) / box.width) * video.duration;
});

document.addEventListener('keydown', (e) => {
  const typing = e.target instanceof HTMLInputElement && e.target.type !== 'checkbox';
  if (e.key === '/' && !typing) {
    e.preventDefault();
    input.focus();
    input.select();
  } else if (e.key === 'ArrowDown' && e.target === input) {
    e.preventDefault();
    select(0);
  } else if (e.key === 'ArrowDown' && !typing) {
    e.preventDefault();
    select(Math.min(selected + 1, shown.length - 1));
  } else if (e.key === 'ArrowUp' && !typing) {
    e.preventDefault();
    if (selected <= 0) input.focus(); else select(selected - 1);
  } else if (e.key === 'Enter' && !typing && selected >= 0) {
    e.preventDefault();
    play(selected);
  } else if (e.key === 'Enter' && e.target === input && shown.length) {
    e.preventDefault();
    select(0);
    play(0);
  } else if (e.key === 'Escape') {
    stop();
  }
});

loadStats();
