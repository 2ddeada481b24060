/* mmxai report viewer. Reads window.MMXAI_REPORT (data.js, see
 * mmxai/visualization/report_data.py); keeps its state in the URL after '#',
 * so every view can be bookmarked and shared. No network, no libraries. */
(function () {
  'use strict';
  const DATA = window.MMXAI_REPORT;
  const KINDS = ['tp_high', 'tp_low', 'fp', 'fn'];
  const BOX_SOURCES = ['predictions', 'ground_truth', 'given'];
  const KIND_TEXT = {
    tp_high: 'true positive, high score', tp_low: 'true positive, low score',
    fp: 'false positive', fn: 'false negative',
  };
  const DEFAULTS = { task: '', view: 'grid', alg: '', cls: '', grp: '', page: '1', n: '48',
    img: '', w: '0.5' };
  const $ = (id) => document.getElementById(id);
  const filteredCache = new Map();
  let generation = 0;
  const counts = { images: 0, loaded: 0, failed: 0 };

  // ------------------------------------------------------------ helpers
  function h(tag, props, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === 'text') node.textContent = value;
      else if (key === 'className') node.className = value;
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children || []) if (child !== null && child !== undefined) node.append(child);
    return node;
  }
  const url = (path) => path.split('/').map(encodeURIComponent).join('/');
  const fmt = (x, digits) => (x === null || x === undefined ? '–' : Number(x).toFixed(digits));
  const stem = (path) => path.replace(/\.[^./]*$/, '');
  const className = (task, label) => (label < 0 ? 'class-agnostic' : task.classes[label] ?? String(label));

  // ------------------------------------------------------------ state in the hash
  function readState() {
    const params = new URLSearchParams(location.hash.slice(1));
    const state = {};
    for (const key of Object.keys(DEFAULTS)) state[key] = params.get(key) ?? DEFAULTS[key];
    return state;
  }
  function hashOf(state) {
    const params = new URLSearchParams();
    for (const key of Object.keys(DEFAULTS)) if (state[key] !== DEFAULTS[key]) params.set(key, state[key]);
    return '#' + params.toString();
  }
  function go(changes) {
    const hash = hashOf(Object.assign(readState(), changes));
    if (hash === location.hash || (hash === '#' && !location.hash)) render();
    else location.hash = hash;  // 'hashchange' renders; the browser's back button works
  }

  // ------------------------------------------------------------ data access
  const taskOf = (state) => DATA.tasks.find((t) => t.name === state.task) || DATA.tasks[0];
  const imageSrc = (task, img) => url(img.i ?? task.image_root + img.p);
  /** URL of a map file of algorithm `a`: `ref` is an index in task.files or a path. */
  function mapSrc(task, img, a, ref) {
    const folder = img.d ?? stem(img.p);
    return url(task.roots[a] + (typeof ref === 'number' ? (folder ? folder + '/' : '') + task.files[ref] : ref));
  }
  /** The map of class `label` of algorithm `a` (or its class-agnostic map); any map if label is null. */
  function findMap(img, a, label) {
    const rows = img.m[a] || [];
    if (label === null) return rows[0] || null;
    return rows.find((r) => r[0] === label) || rows.find((r) => r[0] < 0) || null;
  }
  /** The per-box map of algorithm `a` of an event's box: the ground-truth box of a false
   * negative, the predicted box of a true or false positive; null if the run has none. */
  function boxMapOf(img, a, event) {
    const rows = (img.x || [])[a] || [];
    if (KINDS[event[0]] === 'fn') return rows.find((r) => r[0] === 1 && r[1] === event[3]) || null;
    return event[2] >= 0 ? rows.find((r) => r[0] === 0 && r[1] === event[2]) || null : null;
  }
  const involves = (img, label) => img.b.some((b) => b[0] === label) || (img.g || []).some((g) => g[0] === label);
  const eventMatches = (e, state) => KINDS[e[0]] === state.grp && (state.cls === '' || e[1] === +state.cls);

  /** Indices of the images the filters keep, in manifest order. */
  function filtered(task, state) {
    const key = [task.name, state.alg, state.cls, state.grp].join('|');
    if (!filteredCache.has(key)) {
      const a = task.algorithms.indexOf(state.alg);
      const list = [];
      task.images.forEach((img, index) => {
        if (a >= 0 && !(img.m[a] || []).length) return;
        if (state.cls !== '' && !involves(img, +state.cls)) return;
        if (state.grp && !(img.e || []).some((e) => eventMatches(e, state))) return;
        list.push(index);
      });
      filteredCache.set(key, list);
    }
    return filteredCache.get(key);
  }

  /** Boxes to draw: predictions (TP / FP / plain) and ground truth (matched / missed). */
  function boxesOf(task, img, keepPred, keepGt) {
    const predKind = {}; const gtKind = {};
    for (const e of img.e || []) {
      if (e[2] >= 0) predKind[e[2]] = KINDS[e[0]] === 'fp' ? 'fp' : 'tp';
      if (e[3] >= 0) gtKind[e[3]] = KINDS[e[0]] === 'fn' ? 'fn' : 'gt';
    }
    const boxes = [];
    img.b.forEach((b, i) => {
      if (b.length === 6 && keepPred(i, b)) {
        boxes.push({ kind: predKind[i] || 'pred', box: b.slice(2), text: `${className(task, b[0])} ${fmt(b[1], 2)}` });
      }
    });
    (img.g || []).forEach((g, i) => {
      if (g.length === 5 && keepGt(i, g)) boxes.push({ kind: gtKind[i] || 'gt', box: g.slice(1), text: '' });
    });
    return boxes;
  }
  /** Boxes of class `label` (all classes for null or a class-agnostic map); with a group
   * filter, only the boxes of the group's events. */
  function boxesFor(task, img, state, label) {
    const ofClass = (l) => label === null || label < 0 || l === label;
    if (state.grp) {
      const events = (img.e || []).filter((e) => eventMatches(e, state) && ofClass(e[1]));
      return boxesOf(task, img, (i) => events.some((e) => e[2] === i), (i) => events.some((e) => e[3] === i));
    }
    return boxesOf(task, img, (i, b) => ofClass(b[0]), (i, g) => ofClass(g[0]));
  }
  /** The class a tile shows: the filter's, the group's event's, the best prediction's, the first object's. */
  function tileClass(img, state) {
    if (state.cls !== '') return +state.cls;
    const event = state.grp ? (img.e || []).find((e) => eventMatches(e, state)) : null;
    if (event) return event[1];
    const best = img.b.reduce((top, b) => (top === null || b[1] > top[1] ? b : top), null);
    if (best) return best[0];
    return img.g && img.g.length ? img.g[0][0] : null;
  }

  // ------------------------------------------------------------ building blocks
  function picture(src, cls, lazy) {
    const mine = generation;
    const img = h('img', { className: cls, alt: '', decoding: 'async' });
    if (lazy) img.loading = 'lazy';
    counts.images += 1;
    img.addEventListener('load', () => { if (mine === generation) { counts.loaded += 1; showCounts(); } });
    img.addEventListener('error', () => { if (mine === generation) { counts.failed += 1; showCounts(); } });
    img.src = src;
    return img;
  }
  function stack(task, img, map, boxes, lazy) {
    const [height, width] = img.s;
    const node = h('div', { className: 'stack' });
    node.style.aspectRatio = `${width} / ${height}`;
    node.append(picture(imageSrc(task, img), 'base', lazy));
    if (map) node.append(picture(map.src, 'map', lazy));
    for (const { kind, box, text } of boxes) {
      const div = h('div', { className: 'box ' + kind }, [text ? h('span', { text }) : null]);
      div.style.cssText = `left:${100 * box[0] / width}%;top:${100 * box[1] / height}%;` +
        `width:${100 * (box[2] - box[0]) / width}%;height:${100 * (box[3] - box[1]) / height}%`;
      node.append(div);
    }
    if (map && map.peak) {
      const dot = h('div', { className: 'peak', title: 'maximum of the map' });
      dot.style.cssText = `left:${100 * (map.peak[0] + 0.5) / width}%;top:${100 * (map.peak[1] + 0.5) / height}%`;
      node.append(dot);
    }
    return node;
  }
  const badges = (task, img, state) => (img.e || [])
    .filter((e) => state.cls === '' || e[1] === +state.cls)
    .map((e) => h('span', { className: 'badge ' + KINDS[e[0]], title: KIND_TEXT[KINDS[e[0]]],
      text: `${KINDS[e[0]].replace('_', ' ')} ${className(task, e[1])}` }));
  function pager(page, pages, total) {
    return h('div', { className: 'pager' }, [
      h('button', { type: 'button', text: '← previous', onclick: () => go({ page: String(page - 1) }),
        ...(page <= 1 ? { disabled: '' } : {}) }),
      h('span', { className: 'page-info', text: `page ${page} of ${pages} · ${total} images` }),
      h('button', { type: 'button', text: 'next →', onclick: () => go({ page: String(page + 1) }),
        ...(page >= pages ? { disabled: '' } : {}) }),
    ]);
  }
  function linkTo(changes, text) {
    const a = h('a', { href: hashOf(Object.assign(readState(), changes)), text });
    return a;
  }

  // ------------------------------------------------------------ views
  function renderGrid(task, state, list, view) {
    const n = Math.max(1, parseInt(state.n, 10) || 48);
    const pages = Math.max(1, Math.ceil(list.length / n));
    const page = Math.min(Math.max(1, parseInt(state.page, 10) || 1), pages);
    const a = task.algorithms.indexOf(state.alg);
    const grid = h('div', { className: 'grid' });
    for (const index of list.slice((page - 1) * n, page * n)) {
      const img = task.images[index];
      const label = tileClass(img, state);
      const event = state.grp ? (img.e || []).find((e) => eventMatches(e, state)) : null;
      const boxRow = a >= 0 && event ? boxMapOf(img, a, event) : null;
      const row = a >= 0 && !boxRow ? findMap(img, a, label) : null;
      let map = row && { src: mapSrc(task, img, a, row[1]), peak: row[3] || null };
      let what = row ? `${task.algorithms[a]} · ${className(task, row[0])}` : null;
      if (boxRow) {
        map = { src: mapSrc(task, img, a, boxRow[8]), peak: null };
        what = `${task.algorithms[a]} · map of the ${boxRow[0] === 1 ? 'missed' : 'predicted'} ` +
          `${className(task, boxRow[2])} box`;
      }
      const caption = h('figcaption', {}, [h('div', { text: img.p }),
        what ? h('div', { className: 'muted', text: what }) : null,
        ...badges(task, img, state)]);
      const link = h('a', { href: hashOf(Object.assign({}, state, { view: 'image', img: img.p })) },
        [stack(task, img, map, boxesFor(task, img, state, row ? row[0] : label), true), caption]);
      grid.append(h('figure', { className: 'tile', 'data-path': img.p, 'data-index': String(index),
        'data-map': boxRow ? 'box' : row ? 'class' : 'none' }, [link]));
    }
    view.replaceChildren(pager(page, pages, list.length), grid, pager(page, pages, list.length));
  }

  function renderImage(task, state, list, view) {
    const pos = list.findIndex((index) => task.images[index].p === state.img);
    if (!list.length) { view.replaceChildren(h('p', { text: 'No image matches the filters.' })); return; }
    const index = list[Math.max(pos, 0)];
    const img = task.images[index];
    const head = h('div', { className: 'head' }, [
      h('button', { type: 'button', text: '← previous', onclick: () => step(-1) }),
      h('span', { className: 'position', text: `${Math.max(pos, 0) + 1} of ${list.length}` }),
      h('button', { type: 'button', text: 'next →', onclick: () => step(1) }),
      linkTo({ view: 'grid' }, 'back to the grid'),
      h('strong', { className: 'path', text: img.p }),
    ]);
    const lines = img.b.map((b, i) => {
      const event = (img.e || []).find((e) => e[2] === i);
      return h('li', { text: `predicted ${className(task, b[0])} ${fmt(b[1], 3)}` +
        (event ? ` (${KIND_TEXT[KINDS[event[0]]]})` : '') });
    });
    for (const e of img.e || []) {
      if (KINDS[e[0]] === 'fn') lines.push(h('li', { text: `missed ${className(task, e[1])} (false negative)` }));
    }
    for (const g of img.g || []) lines.push(h('li', { className: 'muted', text: `ground truth ${className(task, g[0])}` }));
    const original = h('div', { className: 'original' }, [
      h('div', { className: 'stack-holder' }, [stack(task, img, null, boxesFor(task, img, Object.assign({}, state, { grp: '' }), null), false)]),
      h('ul', { className: 'facts' }, lines)]);
    // Rows: classes; columns: algorithms; a class-agnostic map spans the rows.
    const algs = task.algorithms.map((name, a) => a).filter((a) => !state.alg || task.algorithms[a] === state.alg);
    const classRows = [...new Set(algs.flatMap((a) => (img.m[a] || []).map((r) => r[0])))]
      .filter((label) => label >= 0 && (state.cls === '' || label === +state.cls)).sort((x, y) => x - y);
    const labels = classRows.length ? classRows : [-1];
    const cell = (a, row, label) => {
      const map = { src: mapSrc(task, img, a, row[1]), peak: row[3] || null };
      const facts = [row[2] !== null ? `score ${fmt(row[2], 3)}` : ''];
      for (const [cls, mass] of Object.entries(row[4] || {})) {
        facts.push(`${row[0] < 0 ? className(task, +cls) + ' ' : ''}mass in GT ${fmt(mass, 2)}`);
      }
      return h('td', {}, [h('figure', { className: 'cell' }, [
        stack(task, img, map, boxesFor(task, img, Object.assign({}, state, { grp: '' }), row[0] < 0 ? label : row[0]), false),
        h('figcaption', { text: `${task.algorithms[a]} · ${className(task, row[0])}` }),
        h('figcaption', { className: 'muted', text: facts.filter(Boolean).join(' · ') })])]);
    };
    const table = h('table', { className: 'maps' }, [h('tr', {}, [h('th'), ...algs.map((a) => h('th', { text: task.algorithms[a] }))])]);
    labels.forEach((label, k) => {
      const cells = [];
      for (const a of algs) {
        const rows = img.m[a] || [];
        const agnostic = rows.find((r) => r[0] < 0);
        if (agnostic && !rows.some((r) => r[0] >= 0)) {
          if (k === 0) cells.push(Object.assign(cell(a, agnostic, state.cls === '' ? null : +state.cls), { rowSpan: labels.length }));
          continue;
        }
        const row = rows.find((r) => r[0] === label);
        cells.push(row ? cell(a, row, label) : h('td'));
      }
      table.append(h('tr', {}, [h('th', { text: className(task, label) }), ...cells]));
    });
    view.replaceChildren(h('div', { className: 'single', 'data-path': img.p }, [head, original,
      algs.some((a) => (img.m[a] || []).length) ? table : h('p', { text: 'No map of the selected class and algorithm.' }),
      boxMaps(task, img, state, algs)]));
  }

  /** Whether a ground-truth or given box was found: on an annotated run, as the report's
   * matching says (not a false negative); a given box, as the run said (a box of its class
   * scoring at least the run's --score-thr with IoU >= 0.5). */
  function boxFound(img, row) {
    if (row[0] === 1 && img.e) return !img.e.some((e) => KINDS[e[0]] === 'fn' && e[3] === row[1]);
    return Boolean(row[12]);
  }
  /** What a per-box map explains: the box, its class and, for a ground-truth or given box,
   * whether the model found it. */
  function describeBox(task, img, row) {
    const [source, index, label] = row;
    const name = className(task, label);
    if (source === 0) {
      const b = index >= 0 ? img.b[index] : null;
      return `predicted ${name}` + (b ? ` ${fmt(b[1], 3)}` : ' (below the report\'s score threshold)');
    }
    const best = row[10] === null ? `no ${name} box overlaps it`
      : `best ${name} box IoU ${fmt(row[10], 2)}, score ${fmt(row[11], 3)}`;
    return `${source === 1 ? 'ground truth' : 'given box'} ${name}: ` +
      `${boxFound(img, row) ? 'detected' : 'missed'} (${best})`;
  }
  function boxKind(img, row) {
    if (row[0] === 0) {
      const event = (img.e || []).find((e) => e[2] === row[1] && row[1] >= 0);
      return event ? (KINDS[event[0]] === 'fp' ? 'fp' : 'tp') : 'pred';
    }
    if (row[0] === 2) return 'target';
    return boxFound(img, row) ? 'gt' : 'fn';
  }
  /** Per-box maps (--per-box, --explain-gt, --target-boxes): one row per algorithm. */
  function boxMaps(task, img, state, algs) {
    const rows = algs.map((a) => [a, ((img.x || [])[a] || [])
      .filter((r) => state.cls === '' || r[2] === +state.cls)]).filter(([, list]) => list.length);
    if (!rows.length) return null;
    const table = h('table', { className: 'maps box-maps' });
    for (const [a, list] of rows) {
      table.append(h('tr', {}, [h('th', { text: task.algorithms[a] }), ...list.map((r) => {
        const box = { kind: boxKind(img, r), box: r.slice(3, 7), text: className(task, r[2]) };
        return h('td', {}, [h('figure', { className: 'cell', 'data-source': BOX_SOURCES[r[0]], 'data-index': String(r[1]) }, [
          stack(task, img, { src: mapSrc(task, img, a, r[8]), peak: null }, [box], false),
          h('figcaption', { text: describeBox(task, img, r) }),
          h('figcaption', { className: 'muted', text: `evidence ${fmt(r[7], 2)}` })])]);
      })]));
    }
    return h('section', { className: 'box-section' }, [h('h3', { text: 'Maps per box' }), table]);
  }

  function renderSummary(task, state, view) {
    if (!task.annotated) {
      view.replaceChildren(h('p', { text: 'The error analysis needs a run on the annotated test set ' +
        '(tools/explain.py without --input): this run has no ground truth.' }));
      return;
    }
    const algs = task.algorithms;
    const header = h('tr', {}, [h('th', { text: 'class' }), h('th', { text: 'images' }),
      ...KINDS.map((k) => h('th', { text: KIND_TEXT[k] })),
      ...algs.flatMap((name) => [h('th', { text: `${name}: pointing game, TP` }),
        h('th', { text: `${name}: pointing game, FN` }), h('th', { text: `${name}: mass in GT boxes` })])]);
    const table = h('table', { className: 'summary' }, [header]);
    const ratio = ([hits, n]) => (n ? `${fmt(hits / n, 2)} (${hits}/${n})` : '–');
    for (const row of task.summary) {
      const cls = String(row.class);
      table.append(h('tr', { 'data-class': cls }, [h('td', { text: className(task, row.class) }),
        h('td', {}, [linkTo({ view: 'grid', cls, grp: '', page: '1' }, String(row.counts.images))]),
        ...KINDS.map((k) => h('td', { 'data-kind': k }, [linkTo({ view: 'grid', cls, grp: k, page: '1' }, String(row.counts[k]))])),
        ...algs.flatMap((name) => {
          const s = row.algorithms[name];
          const mass = s.relevance_mass[1] ? `${fmt(s.relevance_mass[0] / s.relevance_mass[1], 3)} (${s.relevance_mass[1]})` : '–';
          return [h('td', { text: ratio(s.pointing_tp) }), h('td', { text: ratio(s.pointing_fn) }), h('td', { text: mass })];
        })]));
    }
    view.replaceChildren(h('div', { className: 'scroll' }, [table]));
  }

  function renderSanity(task, view) {
    const sanity = task.sanity;
    if (!sanity) {
      view.replaceChildren(h('p', { text: 'This task has no sanity checks: run tools/sanity_check.py ' +
        'and give its output folder to the report (tools/report.py --sanity, or write_report(sanity=...)).' }));
      return;
    }
    const cell = (values) => {
      if (!values) return h('td', { text: '–' });
      const [rho, kept, ssim, flagged] = values;
      return h('td', { className: flagged ? 'flag' : 'pass',
        text: `${fmt(rho, 2)} · ${Math.round(100 * kept)}% ≥ thr · SSIM ${fmt(ssim, 2)}${flagged ? ' FLAG' : ''}` });
    };
    const table = h('table', { className: 'summary sanity-table' }, [h('tr', {}, [
      h('th', { text: 'algorithm' }), h('th', { text: 'verdict' }),
      ...sanity.steps.map((step) => h('th', { text: step })), h('th', { text: 'random label' })])]);
    const sections = [];
    for (const alg of sanity.algorithms) {
      const id = 'sanity-' + alg.name;
      table.append(h('tr', { 'data-algorithm': alg.name }, [
        h('th', {}, [h('a', { href: hashOf(Object.assign(readState(), { view: 'sanity' })), text: alg.name,
          onclick: (e) => { e.preventDefault(); document.getElementById(id).scrollIntoView(); } })]),
        h('td', { className: 'verdict ' + alg.verdict.replace(/ /g, '-'), text: alg.verdict }),
        ...alg.cascade.map(cell), cell(alg.random_label)]));
      const cascade = h('table', { className: 'maps cascade' }, [h('tr', {}, alg.header.map((text) => h('th', { text })))]);
      for (const cells of alg.rows) {
        cascade.append(h('tr', {}, cells.map((c) => h('td', {}, [c.file
          ? h('figure', { className: 'cell' }, [picture(url(sanity.root + c.file), 'sanity-tile', false),
            h('figcaption', { text: c.caption })])
          : h('span', { className: 'muted', text: c.text })]))));
      }
      sections.push(h('section', { id, className: 'sanity-algorithm', 'data-algorithm': alg.name }, [
        h('h3', {}, [`${alg.name}: `, h('span', { className: 'verdict ' + alg.verdict.replace(/ /g, '-'), text: alg.verdict })]),
        ...alg.reasons.map((text) => h('p', { text })), h('div', { className: 'scroll' }, [cascade])]));
    }
    view.replaceChildren(h('p', { text: `${sanity.num_images} images. ${sanity.text} ` +
      `${sanity.thresholds.rule} (Spearman ${sanity.thresholds.spearman}). Below, per algorithm, ` +
      'the maps of a few images: trained, after each step, and of a class not predicted.' }),
    h('div', { className: 'scroll' }, [table]), ...sections);
  }

  // ------------------------------------------------------------ controls, help, status
  function options(select, items, value) {
    select.replaceChildren(...items.map(([v, text]) => h('option', { value: v, text })));
    select.value = value;
  }
  function renderControls(task, state) {
    options($('task'), DATA.tasks.map((t) => [t.name, t.name.replace(/_/g, ' ')]), task.name);
    $('mode').querySelector('option[value="sanity"]').disabled = !task.sanity;
    $('mode').value = state.view;
    options($('alg'), [['', 'all algorithms'], ...task.algorithms.map((a) => [a, a])], state.alg);
    options($('cls'), [['', 'all classes'], ...task.classes.map((c, i) => [String(i), c])], state.cls);
    options($('grp'), [['', 'all images'], ...KINDS.map((k) => [k, KIND_TEXT[k]])], state.grp);
    $('grp-label').hidden = !task.annotated;
    $('weight').value = state.w;
    $('weight-value').textContent = state.w;
    document.documentElement.style.setProperty('--w', state.w);
  }
  function renderHelp(task) {
    const parts = [
      'Each map lies over its image; the slider sets its weight (the overlay files use 0.5). ' +
      'Red is more evidence for the class. Keys: → or j next, ← or k previous (image or page), Esc back to the grid. ' +
      'Class filter: images with a prediction or a ground-truth object of the class.'];
    if (task.detection) {
      const source = task.run_score_thr === null || task.run_score_thr === task.score_thr
        ? "the run's --score-thr" : `set for this report; the runs explained classes from ${task.run_score_thr}`;
      parts.push(`Predictions are the boxes scoring at least ${task.score_thr} (${source}).`);
    }
    if (task.annotated) {
      parts.push(task.detection
        ? `A prediction is a true positive when it overlaps a ground-truth box of its class with IoU ≥ ${task.iou_thr} ` +
          'that no higher-scoring prediction matched (COCO\'s greedy matching), else a false positive; ' +
          'a ground-truth box no prediction matched is a false negative.'
        : 'A predicted label in the ground truth is a true positive, one not in it a false positive, ' +
          'a ground-truth label not predicted a false negative.',
      `True positives scoring at least ${task.high_score_thr} are "high", the others "low". ` +
      'Boxes: cyan true positive, red false positive, green dashed ground truth, yellow dashed missed (false negative); ' +
      'the circle marks the map\'s maximum.',
      'Error analysis per class and algorithm: pointing game on true positives (false negatives) = share of images with a ' +
      'true positive (false negative) of the class whose map of that class peaks inside one of those ground-truth boxes; ' +
      'mass in GT boxes = mean share of the map\'s sum inside the class\'s ground-truth boxes (relevance mass, ' +
      'Arras et al.). Class-agnostic maps count for every class. A missing class map (the class was not explained) ' +
      'is left out; explain all classes to see maps of missed objects.');
    }
    if (task.sanity) {
      parts.push('Sanity checks (Adebayo et al., NeurIPS 2018): a method whose maps stay the same when the ' +
        'model\'s weights are re-initialised from the top down, or whose map of a class the model does not ' +
        'predict looks like the predicted class\'s, shows the input more than the model; it is flagged.');
    }
    if ((task.images || []).some((img) => img.x)) {
      parts.push('Maps per box: the evidence for one box (a prediction, a ground-truth object or a given box): ' +
        'for class maps, the class map restricted to the cells whose predictions overlap the box. ' +
        'Evidence = the map\'s maximum before normalisation. With a group filter, a tile shows the map of ' +
        'its event\'s box when the run has one (a false negative: its ground-truth box).');
    }
    $('help-text').replaceChildren(...parts.map((text) => h('p', { text })));
  }
  function showCounts() {
    const status = $('report-status');
    status.dataset.images = counts.images;
    status.dataset.loaded = counts.loaded;
    status.dataset.failed = counts.failed;
    status.textContent = `${counts.loaded} of ${counts.images} images loaded` + (counts.failed ? `, ${counts.failed} failed` : '');
  }

  // ------------------------------------------------------------ navigation
  function step(delta) {
    const state = readState();
    const task = taskOf(state);
    const list = filtered(task, state);
    const n = Math.max(1, parseInt(state.n, 10) || 48);
    if (state.view === 'image') {
      if (!list.length) return;
      const pos = Math.max(list.findIndex((index) => task.images[index].p === state.img), 0);
      const next = Math.min(Math.max(pos + delta, 0), list.length - 1);
      go({ img: task.images[list[next]].p, page: String(Math.floor(next / n) + 1) });
    } else if (state.view === 'grid') {
      const pages = Math.max(1, Math.ceil(list.length / n));
      go({ page: String(Math.min(Math.max((parseInt(state.page, 10) || 1) + delta, 1), pages)) });
    }
  }

  function render() {
    generation += 1;
    Object.assign(counts, { images: 0, loaded: 0, failed: 0 });
    const view = $('view');
    if (!DATA || !DATA.tasks.length) { view.textContent = 'This report has no runs.'; return; }
    const state = readState();
    const task = taskOf(state);
    // A task with sanity checks and no run opens on them.
    const shown = !task.images.length && task.sanity && state.view === 'grid' ? 'sanity' : state.view;
    renderControls(task, Object.assign({}, state, { view: shown }));
    renderHelp(task);
    const list = filtered(task, state);
    if (shown === 'image') renderImage(task, state, list, view);
    else if (shown === 'summary') renderSummary(task, state, view);
    else if (shown === 'sanity') renderSanity(task, view);
    else renderGrid(task, state, list, view);
    view.dataset.view = shown;
    view.dataset.matches = String(list.length);
    showCounts();
  }

  function start() {
    $('title').textContent = DATA.title;
    document.title = DATA.title;
    if (DATA.command) $('made-by').replaceChildren('Made by ', h('code', { text: DATA.command }), ` on ${DATA.created}`);
    const reset = { page: '1' };
    $('task').addEventListener('change', (e) => { e.target.blur(); go({ task: e.target.value, alg: '', cls: '', grp: '', img: '', page: '1' }); });
    $('mode').addEventListener('change', (e) => { e.target.blur(); go({ view: e.target.value }); });
    for (const id of ['alg', 'cls', 'grp']) {
      $(id).addEventListener('change', (e) => { e.target.blur(); go(Object.assign({ [id]: e.target.value }, reset)); });
    }
    $('weight').addEventListener('input', (e) => {
      document.documentElement.style.setProperty('--w', e.target.value);
      $('weight-value').textContent = e.target.value;
      history.replaceState(null, '', hashOf(Object.assign(readState(), { w: e.target.value })));
    });
    document.addEventListener('keydown', (event) => {
      if (event.altKey || event.ctrlKey || event.metaKey || (event.target.closest && event.target.closest('input, select, textarea'))) return;
      if (event.key === 'ArrowRight' || event.key === 'j') step(1);
      else if (event.key === 'ArrowLeft' || event.key === 'k') step(-1);
      else if (event.key === 'Escape' && readState().view === 'image') go({ view: 'grid' });
      else return;
      event.preventDefault();
    });
    window.addEventListener('hashchange', render);
    render();
    document.body.dataset.ready = '1';
    window.mmxaiReadyMs = performance.now();
  }
  start();
}());
