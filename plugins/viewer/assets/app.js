// faultline viewer: the page's whole script. Every value from the API is
// written into the page as text (textContent, text nodes, setAttribute on
// fixed attributes), never parsed as HTML.
'use strict';

(function () {
  const LIST_POLL_MS = 1000;
  const TRACE_POLL_MS = 2000;
  const main = document.getElementById('main');

  // ---- DOM helpers -------------------------------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = String(value);
      else if (key === 'style') {
        for (const [prop, v] of Object.entries(value)) node.style.setProperty(prop, v);
      } else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function traceHref(id) {
    return '/traces/' + encodeURIComponent(id);
  }

  // ---- formatting --------------------------------------------------------

  function fmtDuration(ns) {
    if (!Number.isFinite(ns) || ns < 0) return '';
    if (ns < 1e3) return ns + ' ns';
    if (ns < 1e6) return (ns / 1e3).toFixed(ns < 1e4 ? 1 : 0) + ' µs';
    if (ns < 1e9) return (ns / 1e6).toFixed(ns < 1e7 ? 2 : 1) + ' ms';
    return (ns / 1e9).toFixed(2) + ' s';
  }

  function fmtTime(ns) {
    if (!ns) return '';
    const d = new Date(ns / 1e6);
    const pad = (n, w) => String(n).padStart(w, '0');
    return pad(d.getHours(), 2) + ':' + pad(d.getMinutes(), 2) + ':' + pad(d.getSeconds(), 2) +
      '.' + pad(d.getMilliseconds(), 3);
  }

  function fmtDate(ns) {
    return ns ? new Date(ns / 1e6).toLocaleString() : '';
  }

  function valueText(v) {
    return typeof v === 'string' ? v : JSON.stringify(v);
  }

  function fmtBytes(n) {
    if (n < 1024) return n + ' B';
    if (n < 1024 * 1024) return (n / 1024).toFixed(0) + ' KiB';
    return (n / 1024 / 1024).toFixed(1) + ' MiB';
  }

  // Each service keeps one colour on the page, in the order they are first seen.
  const serviceColours = new Map();
  function serviceClass(name) {
    if (!serviceColours.has(name)) serviceColours.set(name, serviceColours.size % 8);
    return 'svc-' + serviceColours.get(name);
  }

  function statusBadge(status) {
    return el('span', { class: 'badge status-' + status, text: status });
  }

  function errorLabel(code, name) {
    if (code === null && !name) return null;
    const parts = [];
    if (code !== null && code !== undefined) parts.push(valueText(code));
    if (name) parts.push(name);
    return el('span', { class: 'err', text: parts.join(' ') });
  }

  function severityClass(n) {
    if (n >= 17) return 'sev-error';
    if (n >= 13) return 'sev-warn';
    if (n >= 9) return 'sev-info';
    return 'sev-debug';
  }

  // ---- data --------------------------------------------------------------

  async function getJson(url) {
    const response = await fetch(url, { headers: { Accept: 'application/json' }, cache: 'no-store' });
    if (response.status === 404) return { notFound: true };
    if (!response.ok) throw new Error('HTTP ' + response.status);
    return response.json();
  }

  function showStats(stats) {
    const node = document.getElementById('stats');
    if (!node || !stats) return;
    let text = stats.traces + ' traces · ' + stats.spans + ' spans · ' + stats.logs + ' logs · ' +
      fmtBytes(stats.bytes) + ' of ' + fmtBytes(stats.max_bytes);
    if (stats.evicted_traces) text += ' · ' + stats.evicted_traces + ' evicted';
    node.textContent = text;
  }

  function notice(parent, text) {
    return append(parent, [el('p', { class: 'notice', role: 'status', text: text })]);
  }

  // Calls `tick` now and then every `ms`, sooner when the page shows again.
  function poll(ms, tick) {
    let timer = null;
    const run = async () => {
      clearTimeout(timer);
      try {
        await tick();
      } catch (e) {
        const node = document.getElementById('stats');
        if (node) node.textContent = 'viewer unreachable (' + e.message + '), retrying';
      }
      timer = setTimeout(run, ms);
    };
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) run();
    });
    run();
    return run;
  }

  // Arrow keys move focus between the elements matching `selector` inside `container`.
  function arrowNavigation(container, selector) {
    container.addEventListener('keydown', (event) => {
      if (event.key !== 'ArrowDown' && event.key !== 'ArrowUp') return;
      const items = Array.from(container.querySelectorAll(selector));
      const index = items.indexOf(document.activeElement);
      if (index < 0) return;
      const next = items[index + (event.key === 'ArrowDown' ? 1 : -1)];
      if (next) {
        next.focus();
        event.preventDefault();
      }
    });
  }

  // ---- the list of traces (/) ---------------------------------------------

  function listPage() {
    document.title = 'Traces · faultline viewer';
    const params = new URLSearchParams(location.search);
    const field = (name, label, control) =>
      el('label', { class: 'field' }, el('span', { text: label }), control);
    const service = el('select', { id: 'f-service', name: 'service' }, el('option', { value: '', text: 'any' }));
    const route = el('select', { id: 'f-route', name: 'route' }, el('option', { value: '', text: 'any' }));
    const status = el('select', { id: 'f-status', name: 'status' },
      el('option', { value: '', text: 'any' }),
      el('option', { value: 'ok', text: 'ok' }),
      el('option', { value: 'error', text: 'error' }),
      el('option', { value: 'unset', text: 'unset' }));
    const code = el('input', { id: 'f-code', name: 'code', type: 'text', inputmode: 'numeric', placeholder: 'e.g. 1001', size: 8 });
    const q = el('input', { id: 'f-q', name: 'q', type: 'search', placeholder: 'trace id', spellcheck: 'false', autocomplete: 'off' });
    status.value = params.get('status') || '';
    code.value = params.get('code') || '';
    q.value = params.get('q') || '';
    const wanted = { service: params.get('service') || '', route: params.get('route') || '' };

    const form = el('form', { class: 'filters', role: 'search', 'aria-label': 'Filter traces' },
      field('service', 'Service', service), field('route', 'Route', route),
      field('status', 'Status', status), field('code', 'Error code', code),
      field('q', 'Trace id', q));
    const tbody = el('tbody', { id: 'trace-rows' });
    const table = el('table', { class: 'traces', id: 'traces' },
      el('caption', { class: 'sr-only', text: 'Recent traces, newest first' }),
      el('thead', null, el('tr', null,
        el('th', { scope: 'col', text: 'Start' }),
        el('th', { scope: 'col', text: 'Trace' }),
        el('th', { scope: 'col', class: 'wide', text: 'Services' }),
        el('th', { scope: 'col', class: 'num wide', text: 'Spans' }),
        el('th', { scope: 'col', class: 'num', text: 'Duration' }),
        el('th', { scope: 'col', text: 'Status' }),
        el('th', { scope: 'col', text: 'Error' }))),
      tbody);
    const empty = el('p', { class: 'notice', id: 'empty', hidden: true });
    append(clear(main), [el('h1', { text: 'Recent traces' }), form, el('div', { class: 'scroll' }, table), empty]);
    arrowNavigation(tbody, 'a.trace-link');

    const rows = new Map(); // trace id -> { updated, tr }
    let firstTick = true; // rows of the first answer are not new arrivals
    let refresh = null;

    const query = () => {
      const p = new URLSearchParams();
      const add = (k, v) => { if (v && v.trim()) p.set(k, v.trim()); };
      add('service', service.value || wanted.service);
      add('route', route.value || wanted.route);
      add('status', status.value);
      add('code', code.value);
      add('q', q.value);
      return p;
    };

    const fillOptions = (select, values, keep) => {
      const current = select.value || keep;
      const have = Array.from(select.options).slice(1).map((o) => o.value);
      if (have.length === values.length && have.every((v, i) => v === values[i])) return;
      while (select.options.length > 1) select.remove(1);
      for (const v of values) select.add(el('option', { value: v, text: v }));
      if (values.includes(current)) select.value = current;
    };

    const row = (t) => {
      const name = el('a', { class: 'trace-link', href: traceHref(t.trace_id), text: t.name || '(unnamed)' });
      const nameCell = el('td', { class: 'name' }, name,
        t.has_root ? null : el('span', { class: 'badge pending', title: 'the root span has not arrived yet', text: 'root pending' }),
        el('div', { class: 'id mono', text: t.trace_id }));
      const services = el('td', { class: 'wide' },
        t.services.map((s) => el('span', { class: 'chip ' + serviceClass(s), text: s })));
      return el('tr', { 'data-trace-id': t.trace_id, class: t.status === 'error' ? 'is-error' : null },
        el('td', { class: 'mono', title: fmtDate(t.start_unix_nano), text: fmtTime(t.start_unix_nano) }),
        nameCell, services,
        el('td', { class: 'num wide', text: t.span_count }),
        el('td', { class: 'num', text: fmtDuration(t.duration_ns) }),
        el('td', null, statusBadge(t.status)),
        el('td', null, errorLabel(t.error_code, t.error_name)));
    };

    const tick = async () => {
      const params = query();
      const data = await getJson('/api/traces' + (params.toString() ? '?' + params : ''));
      showStats(data.stats);
      fillOptions(service, data.services || [], wanted.service);
      fillOptions(route, data.routes || [], wanted.route);
      const seen = new Set();
      let previous = null;
      for (const t of data.traces) {
        seen.add(t.trace_id);
        let entry = rows.get(t.trace_id);
        if (!entry || entry.updated !== t.updated) {
          const tr = row(t);
          if (entry) {
            const hadFocus = entry.tr.contains(document.activeElement);
            entry.tr.replaceWith(tr);
            if (hadFocus) tr.querySelector('a.trace-link').focus();
          } else if (!firstTick) {
            tr.classList.add('fresh');
          }
          entry = { updated: t.updated, tr: tr };
          rows.set(t.trace_id, entry);
        }
        const want = previous ? previous.nextSibling : tbody.firstChild;
        if (want !== entry.tr) tbody.insertBefore(entry.tr, want);
        previous = entry.tr;
      }
      for (const [id, entry] of rows) {
        if (!seen.has(id)) {
          entry.tr.remove();
          rows.delete(id);
        }
      }
      firstTick = false;
      empty.hidden = data.traces.length > 0;
      empty.textContent = params.toString()
        ? 'No trace matches these filters.'
        : 'No traces yet. Run a service with OTEL_TRACES_EXPORTER=viewer, or send OTLP/HTTP to ' +
          location.origin + '/v1/traces; new traces appear here by themselves.';
    };

    const changed = () => {
      wanted.service = service.value;
      wanted.route = route.value;
      const p = query();
      history.replaceState(null, '', location.pathname + (p.toString() ? '?' + p : ''));
      if (refresh) refresh();
    };
    for (const control of [service, route, status]) control.addEventListener('change', changed);
    for (const control of [code, q]) control.addEventListener('input', changed);
    form.addEventListener('submit', (event) => { event.preventDefault(); changed(); });
    refresh = poll(LIST_POLL_MS, tick);
  }

  // ---- one trace (/traces/{id}) -------------------------------------------

  function tracePage(traceId) {
    document.title = 'Trace ' + traceId + ' · faultline viewer';
    let shownVersion = null;
    let selected = null;
    const state = { data: null };

    const header = el('div', { class: 'trace-head' });
    const waterfall = el('div', { class: 'waterfall', id: 'waterfall', role: 'list', 'aria-label': 'Spans' });
    const details = el('section', { class: 'panel details', id: 'details', 'aria-label': 'Selected span' });
    const logs = el('section', { class: 'panel logs', id: 'logs', 'aria-label': 'Log records' });
    append(clear(main), [
      header,
      el('div', { class: 'trace-grid' },
        el('div', { class: 'left' }, el('section', { class: 'panel' }, el('h2', { text: 'Spans' }), waterfall), details),
        logs),
    ]);
    arrowNavigation(waterfall, 'button.span-row');

    const copyButton = (text) => {
      const button = el('button', { type: 'button', class: 'copy', text: 'Copy' });
      button.addEventListener('click', async () => {
        try {
          await navigator.clipboard.writeText(text);
          button.textContent = 'Copied';
        } catch (e) {
          const range = document.createRange();
          range.selectNodeContents(document.getElementById('trace-id'));
          const selection = window.getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
          button.textContent = 'Selected: press Ctrl+C';
        }
        setTimeout(() => { button.textContent = 'Copy'; }, 2000);
      });
      return button;
    };

    const attributeTable = (attributes, caption) => {
      if (!attributes || attributes.length === 0) return el('p', { class: 'muted', text: 'No ' + caption.toLowerCase() + '.' });
      return el('table', { class: 'attrs' },
        el('caption', { class: 'sr-only', text: caption }),
        el('tbody', null, attributes.map((a) =>
          el('tr', null, el('th', { scope: 'row', class: 'mono', text: a.key }), el('td', { class: 'value', text: valueText(a.value) })))));
    };

    const attr = (list, key) => {
      const found = (list || []).find((a) => a.key === key);
      return found ? found.value : undefined;
    };

    const renderDetails = (span) => {
      clear(details);
      if (!span) return;
      const rows = [
        ['Service', span.service], ['Kind', span.kind], ['Status', span.status + (span.status_message ? ': ' + span.status_message : '')],
        ['Start', '+' + fmtDuration(span.offset_ns)], ['Duration', fmtDuration(span.duration_ns)],
        ['Span id', span.span_id], ['Parent', span.parent_span_id || '(root)'], ['Scope', span.scope],
      ];
      append(details, [
        el('h2', null, 'Span: ', el('span', { class: 'span-name', text: span.name })),
        el('dl', { class: 'facts' }, rows.map(([k, v]) => [el('dt', { text: k }), el('dd', { class: 'value', text: v })])),
        el('h3', { text: 'Attributes' }), attributeTable(span.attributes, 'Attributes'),
      ]);
      const exceptions = span.events.filter((e) => e.name === 'exception');
      const others = span.events.filter((e) => e.name !== 'exception');
      if (exceptions.length) {
        append(details, [el('h3', { text: 'Exceptions' }), exceptions.map((e) => {
          const code = attr(e.attributes, 'faultline.error.code');
          const name = attr(e.attributes, 'faultline.error.name');
          const stack = attr(e.attributes, 'exception.stacktrace');
          return el('div', { class: 'exception' },
            el('div', { class: 'exc-head' }, errorLabel(code === undefined ? null : code, name),
              el('strong', { text: valueText(attr(e.attributes, 'exception.type') || 'exception') })),
            el('p', { class: 'value', text: valueText(attr(e.attributes, 'exception.message') || '') }),
            stack ? el('details', null, el('summary', { text: 'Stack trace' }), el('pre', { text: valueText(stack) })) : null,
            attributeTable(e.attributes, 'Exception attributes'));
        })]);
      }
      append(details, [el('h3', { text: 'Events' })]);
      if (others.length === 0) append(details, [el('p', { class: 'muted', text: 'No events.' })]);
      for (const e of others) {
        append(details, [el('div', { class: 'event' },
          el('div', null, el('span', { class: 'mono muted', text: '+' + fmtDuration(e.offset_ns) + ' ' }), el('strong', { text: e.name })),
          attributeTable(e.attributes, 'Event attributes'))]);
      }
      append(details, [el('h3', { text: 'Links' })]);
      if (span.links.length === 0) append(details, [el('p', { class: 'muted', text: 'No links.' })]);
      for (const l of span.links) {
        append(details, [el('div', { class: 'event' },
          el('a', { href: traceHref(l.trace_id), class: 'mono', text: l.trace_id }), ' span ', el('span', { class: 'mono', text: l.span_id }),
          attributeTable(l.attributes, 'Link attributes'))]);
      }
    };

    const select = (spanId, focus) => {
      selected = spanId;
      const data = state.data;
      if (!data) return;
      for (const b of waterfall.querySelectorAll('button.span-row')) {
        const on = b.dataset.spanId === spanId;
        b.classList.toggle('selected', on);
        b.setAttribute('aria-pressed', on ? 'true' : 'false');
        if (on && focus) b.focus();
      }
      for (const li of logs.querySelectorAll('li.log')) {
        li.classList.toggle('of-selected', li.dataset.spanId === spanId);
      }
      renderDetails(data.spans.find((s) => s.span_id === spanId));
      history.replaceState(null, '', location.pathname + location.search + '#span=' + encodeURIComponent(spanId));
    };

    const render = (data) => {
      state.data = data;
      const s = data.summary;
      const t0 = s.start_unix_nano;
      const total = Math.max(s.duration_ns, 1);
      clear(header);
      append(header, [
        el('h1', null, el('span', { class: 'span-name', text: s.name || '(unnamed)' }), ' ', statusBadge(s.status), ' ', errorLabel(s.error_code, s.error_name)),
        el('p', { class: 'trace-id' }, 'Trace ', el('code', { id: 'trace-id', class: 'mono', text: s.trace_id }), ' ', copyButton(s.trace_id)),
        el('p', { class: 'muted' }, [
          fmtDate(t0), ' · ', fmtDuration(s.duration_ns), ' · ', s.span_count + ' spans · ', s.log_count + ' log records · ',
          s.services.join(', '), s.route ? ' · ' + s.route : '', s.has_root ? '' : ' · root span not arrived yet',
        ]),
      ]);

      // The tree: children by parent, in start order; orphans (parent not here) at the top.
      const byId = new Map(data.spans.map((sp) => [sp.span_id, sp]));
      const children = new Map();
      const tops = [];
      for (const sp of data.spans) {
        if (sp.parent_span_id && byId.has(sp.parent_span_id)) {
          if (!children.has(sp.parent_span_id)) children.set(sp.parent_span_id, []);
          children.get(sp.parent_span_id).push(sp);
        } else tops.push(sp);
      }
      const ordered = [];
      const visit = (sp, depth) => {
        ordered.push([sp, depth]);
        for (const c of children.get(sp.span_id) || []) visit(c, depth + 1);
      };
      for (const top of tops) visit(top, 0);

      clear(waterfall);
      append(waterfall, [el('div', { class: 'scale', 'aria-hidden': 'true' }, el('span'),
        el('span', { class: 'ticks' }, el('span', { text: '0' }), el('span', { class: 'mid', text: fmtDuration(total / 2) }),
          el('span', { text: fmtDuration(total) })), el('span'))]);
      for (const [sp, depth] of ordered) {
        const left = (sp.offset_ns / total) * 100;
        const width = Math.max((sp.duration_ns / total) * 100, 0.4);
        // Failed: status error, or an exception recorded (a 4xx leaves the status unset).
        const error = sp.status === 'error' || sp.events.some((e) => e.name === 'exception');
        const spanError = error ? (() => {
          const ev = sp.events.find((e) => e.name === 'exception');
          const list = sp.attributes.concat(ev ? ev.attributes : []);
          const code = attr(list, 'faultline.error.code');
          return errorLabel(code === undefined ? null : code, attr(list, 'faultline.error.name') || attr(list, 'error.type'));
        })() : null;
        const button = el('button', {
          type: 'button', class: 'span-row' + (error ? ' is-error' : ''), 'data-span-id': sp.span_id,
          'data-depth': depth, 'aria-pressed': 'false', role: 'listitem',
          onclick: () => select(sp.span_id, false),
        },
        el('span', { class: 'label', style: { 'padding-left': (depth * 14) + 'px' } },
          el('span', { class: 'kind kind-' + sp.kind, title: sp.kind, text: sp.kind }),
          el('span', { class: 'span-name', text: sp.name }),
          el('span', { class: 'chip ' + serviceClass(sp.service), text: sp.service }),
          spanError),
        el('span', { class: 'track' },
          el('span', { class: 'bar ' + serviceClass(sp.service) + (error ? ' bar-error' : ''), style: { left: left + '%', width: width + '%' } })),
        el('span', { class: 'dur mono', text: fmtDuration(sp.duration_ns) }));
        waterfall.append(button);
      }

      clear(logs);
      append(logs, [el('h2', { text: 'Log records (' + data.logs.length + ')' })]);
      if (data.logs.length === 0) append(logs, [el('p', { class: 'muted', text: 'No log records for this trace.' })]);
      const list = el('ol', { class: 'loglist' });
      for (const r of data.logs) {
        const owner = r.span_id && byId.get(r.span_id);
        list.append(el('li', { class: 'log ' + severityClass(r.severity_number), 'data-span-id': r.span_id || '' },
          el('div', { class: 'log-head' },
            el('span', { class: 'mono muted', title: fmtDate(r.time_unix_nano), text: fmtTime(r.time_unix_nano) }),
            el('span', { class: 'sev', text: r.severity_text || ('severity ' + r.severity_number) }),
            el('span', { class: 'chip ' + serviceClass(r.service), text: r.service }),
            owner ? el('button', { type: 'button', class: 'link', onclick: () => select(owner.span_id, true), text: owner.name }) : null),
          el('p', { class: 'body value', text: r.body }),
          r.attributes.length ? el('dl', { class: 'fields' }, r.attributes.map((a) =>
            [el('dt', { class: 'mono', text: a.key }), el('dd', { class: 'value', text: valueText(a.value) })])) : null));
      }
      logs.append(list);

      const fromHash = decodeURIComponent((location.hash.match(/^#span=(.+)$/) || [])[1] || '');
      const keep = [selected, fromHash].find((id) => id && byId.has(id));
      if (ordered.length) select(keep || ordered[0][0].span_id, false);
    };

    const tick = async () => {
      const data = await getJson('/api/traces/' + encodeURIComponent(traceId));
      if (data.notFound) {
        if (shownVersion === null) {
          clear(header);
          append(header, [el('h1', { text: 'Trace not found' }),
            el('p', { class: 'notice', text: 'Trace ' + traceId + ' is not held: it has not arrived yet (this page keeps looking) or it was evicted to make room.' })]);
        }
        return;
      }
      if (data.summary.updated !== shownVersion) {
        shownVersion = data.summary.updated;
        render(data);
      }
    };
    poll(TRACE_POLL_MS, tick);
  }

  // ---- errors (/errors) ---------------------------------------------------

  function errorsPage() {
    document.title = 'Errors · faultline viewer';
    const groups = el('div', { class: 'scroll' });
    const recent = el('div', { class: 'scroll' });
    append(clear(main), [el('h1', { text: 'Recent errors' }),
      el('h2', { text: 'By code and route' }), groups,
      el('h2', { text: 'Every error, newest first' }), recent]);
    let shown = null;

    const tick = async () => {
      const data = await getJson('/api/errors');
      showStats(data.stats);
      if (shown === data.stats.version) return;
      shown = data.stats.version;
      const byGroup = new Map();
      for (const e of data.errors) {
        const key = JSON.stringify([e.code, e.name, e.route]);
        if (!byGroup.has(key)) byGroup.set(key, { first: e, count: 0 });
        byGroup.get(key).count += 1;
      }
      const th = (t, cls) => el('th', { scope: 'col', class: cls || null, text: t });
      clear(groups);
      clear(recent);
      if (data.errors.length === 0) {
        notice(groups, 'No errors among the traces held.');
        return;
      }
      groups.append(el('table', { class: 'errors', id: 'error-groups' },
        el('thead', null, el('tr', null, th('Code'), th('Name'), th('Route'), th('Count', 'num'), th('Latest trace'))),
        el('tbody', null, Array.from(byGroup.values()).map(({ first, count }) => el('tr', null,
          el('td', { class: 'err', text: first.code === null ? '' : valueText(first.code) }),
          el('td', { text: first.name || '' }),
          el('td', { class: 'mono', text: first.route || '' }),
          el('td', { class: 'num', text: count }),
          el('td', null, el('a', { href: traceHref(first.trace_id), class: 'mono', text: first.trace_id })))))));
      recent.append(el('table', { class: 'errors', id: 'errors' },
        el('thead', null, el('tr', null, th('Time'), th('Code'), th('Name'), th('Route'), th('Service', 'wide'), th('Span', 'wide'), th('Message'), th('Trace'))),
        el('tbody', null, data.errors.map((e) => el('tr', null,
          el('td', { class: 'mono', title: fmtDate(e.time_unix_nano), text: fmtTime(e.time_unix_nano) }),
          el('td', { class: 'err', text: e.code === null ? '' : valueText(e.code) }),
          el('td', { text: e.name || '' }),
          el('td', { class: 'mono', text: e.route || '' }),
          el('td', { class: 'wide', text: e.service }),
          el('td', { class: 'wide', text: e.span_name }),
          el('td', { class: 'value', text: e.message }),
          el('td', null, el('a', { href: traceHref(e.trace_id), class: 'mono', text: e.trace_id.slice(0, 12) + '…', title: e.trace_id })))))));
    };
    poll(TRACE_POLL_MS, tick);
  }

  // ---- routing -------------------------------------------------------------

  const path = location.pathname;
  const traceMatch = path.match(/^\/traces\/([^/]+)$/);
  for (const a of document.querySelectorAll('nav a')) {
    if (a.getAttribute('href') === path || (traceMatch && a.id === 'nav-traces')) a.setAttribute('aria-current', 'page');
  }
  if (traceMatch) tracePage(decodeURIComponent(traceMatch[1]));
  else if (path === '/errors') errorsPage();
  else listPage();
})();
