// The wasmfn console: one ES module, no dependencies. It signs in at /console/session and
// then works on the admin API (docs/admin-api.md) with the session cookie, sending the
// session's CSRF token on every change. Everything a function or a caller wrote is put in
// the page as text (textContent), never as HTML.

const main = document.getElementById('main');
const statusBox = document.getElementById('status');
let session = null;
let tail = null;
let pendingMessage = null;

// ---- small DOM and API helpers -------------------------------------------------------

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name === 'text') node.textContent = value;
    else node.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function show(...nodes) {
  main.replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
}

function say(message, kind = 'info') {
  statusBox.replaceChildren(message ? h('p', { class: kind }, message) : '');
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = {};
  if (method !== 'GET') headers['X-CSRF-Token'] = session ? session.csrf_token : '';
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
  const type = response.headers.get('content-type') || '';
  const data = type.includes('json') ? await response.json() : await response.text();
  if (response.status === 401 && path !== '/console/session') {
    session = null;
    signInPage('Your session ended. Sign in again.');
    throw new ApiError(401, 'unauthorized', 'signed out');
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.code || 'error', error.message || response.statusText);
  }
  return data;
}

// Goes to `target` and shows `message` there once the page is drawn.
async function navigate(target, message) {
  if (location.hash === target) {
    await route();
    say(message);
  } else {
    pendingMessage = message;
    location.hash = target;
  }
}

function failed(error) {
  if (error && error.status === 401) return;
  say(error.message || String(error), 'error');
}

function isAdmin() {
  return session && session.scope.kind === 'admin';
}

// The one space a non-admin session works in: a key's space, or the space an account picked.
let accountSpace = null;

function ownSpace() {
  if (!session) return null;
  if (session.scope.kind === 'space') return session.scope.space;
  if (session.scope.kind === 'account') return accountSpace;
  return null;
}

const ROLE_RANK = { viewer: 1, developer: 2, owner: 3 };

// Whether this session may make a kind of change in the space it works in: `change`
// (functions, configuration, triggers) needs a developer, `keys` an owner.
function can(kind) {
  if (!session) return false;
  if (session.scope.kind === 'admin') return true;
  if (session.scope.kind !== 'account') return false;
  const rank = ROLE_RANK[session.scope.roles[accountSpace]] || 0;
  return rank >= (kind === 'keys' ? 3 : 2);
}

function params(hashQuery) {
  return new URLSearchParams(hashQuery || '');
}

function when(text) {
  if (!text) return '';
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? text : date.toLocaleString();
}

function statusBadge(status) {
  const kind = status >= 500 ? 'bad' : status >= 400 ? 'warn' : 'good';
  return h('span', { class: `badge ${kind}` }, String(status));
}

// An input and its label (the label holds it): [input, label].
function labelled(id, label, attrs) {
  const input = h('input', Object.assign({ id }, attrs || {}));
  return [input, h('label', { for: id }, label, input)];
}

function table(headings, rows) {
  return h('div', { class: 'table-wrap' },
    h('table', {},
      h('thead', {}, h('tr', {}, headings.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)));
}

function confirmThen(question, action) {
  return async () => {
    if (!window.confirm(question)) return;
    try {
      await action();
    } catch (error) {
      failed(error);
    }
  };
}

// ---- sign-in ----------------------------------------------------------------------

function signInPage(message) {
  stopTail();
  document.getElementById('nav').hidden = true;
  document.getElementById('sign-out').hidden = true;
  document.getElementById('who').textContent = '';
  say(message || '', message ? 'error' : 'info');
  const signedIn = (answer) => {
    session = answer;
    say('');
    started();
  };
  const email = h('input', { id: 'email', type: 'email', autocomplete: 'username', required: true });
  const password = h('input', { id: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const accountForm = h('form', { class: 'panel sign-in', 'aria-labelledby': 'sign-in-title' },
    h('h1', { id: 'sign-in-title' }, 'Sign in'),
    h('label', { for: 'email' }, 'Email', email),
    h('label', { for: 'password' }, 'Password', password),
    h('p', {}, h('button', { class: 'primary', type: 'submit' }, 'Sign in')));
  accountForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const answer = await api('POST', '/console/session', { email: email.value, password: password.value });
      password.value = '';
      signedIn(answer);
    } catch (error) {
      say(error.message, 'error');
    }
  });
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', required: true });
  const form = h('form', { class: 'panel sign-in', 'aria-labelledby': 'token-title' },
    h('h2', { id: 'token-title' }, 'Or with a token'),
    h('p', { class: 'muted' },
      'The admin token (printed when the server first started, kept in <data-dir>/admin-token), ' +
      'or an API key of a space for a read-only view of that space.'),
    h('label', { for: 'token' }, 'Admin token or API key', input),
    h('p', {}, h('button', { type: 'submit' }, 'Sign in with the token')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const answer = await api('POST', '/console/session', { token: input.value });
      input.value = '';
      signedIn(answer);
    } catch (error) {
      say(error.message, 'error');
    }
  });
  const code = h('input', { id: 'invitation', autocomplete: 'off', required: true });
  const newPassword = h('input', { id: 'new-password', type: 'password', autocomplete: 'new-password', required: true, minlength: '10' });
  const lang = h('select', { id: 'lang' }, [['en', 'English'], ['nl', 'Nederlands'], ['de', 'Deutsch'], ['fr', 'Français']]
    .map(([v, t]) => h('option', { value: v }, t)));
  const registerForm = h('form', { class: 'panel sign-in', 'aria-labelledby': 'register-title' },
    h('h2', { id: 'register-title' }, 'Register with an invitation'),
    h('label', { for: 'invitation' }, 'Invitation code', code),
    h('label', { for: 'new-password' }, 'Choose a password (10 characters or more)', newPassword),
    h('label', { for: 'lang' }, 'Language', lang),
    h('p', {}, h('button', { type: 'submit' }, 'Register')));
  registerForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const answer = await api('POST', '/console/register', { invitation: code.value, password: newPassword.value, lang: lang.value });
      newPassword.value = '';
      signedIn(answer);
    } catch (error) {
      say(error.message, 'error');
    }
  });
  show(accountForm, form, registerForm);
  email.focus();
}

function started() {
  document.getElementById('nav').hidden = false;
  document.getElementById('sign-out').hidden = false;
  const scope = session.scope;
  const who = document.getElementById('who');
  document.getElementById('accounts-link').hidden = scope.kind !== 'admin';
  if (scope.kind === 'admin') who.replaceChildren('signed in as admin');
  else if (scope.kind === 'space') who.replaceChildren(`space ${scope.space}, key ${scope.key_name} (read-only)`);
  else {
    const spaces = Object.keys(scope.roles);
    if (!spaces.includes(accountSpace)) accountSpace = spaces[0] || null;
    const picker = h('select', { id: 'space-select' },
      spaces.map((s) => h('option', { value: s, selected: s === accountSpace ? true : null }, `${s} (${scope.roles[s]})`)));
    picker.addEventListener('change', () => {
      accountSpace = picker.value;
      route();
    });
    who.replaceChildren(`${scope.email} · `, h('label', { for: 'space-select', class: 'check' }, 'space', picker));
  }
  if (!location.hash || location.hash === '#') location.hash = '#/functions';
  else route();
}

document.getElementById('sign-out').addEventListener('click', async () => {
  try {
    await api('DELETE', '/console/session');
  } catch (error) {
    // Signed out either way.
  }
  session = null;
  signInPage();
  say('Signed out.');
});

// ---- functions --------------------------------------------------------------------

async function functionsPage() {
  const space = ownSpace();
  const listed = await api('GET', space ? `/admin/spaces/${space}/functions` : '/admin/functions');
  const hour = await api('GET', `${statsPath(space)}?window=1h`);
  // The last hour per function (all its versions together).
  const stats = new Map();
  for (const f of hour.functions) {
    const key = `${f.space}/${f.function}`;
    const entry = stats.get(key) || { calls: 0, errors: 0, p50: 0, p99: 0 };
    entry.calls += f.calls;
    entry.errors += f.errors;
    // Across versions: the slowest version's percentile (a bound, not a merge).
    entry.p50 = Math.max(entry.p50, f.p50_ms || 0);
    entry.p99 = Math.max(entry.p99, f.p99_ms || 0);
    stats.set(key, entry);
  }
  const rows = listed.functions.map((f) => {
    const s = stats.get(`${f.space}/${f.name}`);
    const link = `#/functions/${encodeURIComponent(f.space)}/${encodeURIComponent(f.name)}`;
    return h('tr', {},
      h('td', {}, f.space),
      h('td', {}, h('a', { href: link }, f.name)),
      h('td', {}, f.active_version || h('span', { class: 'muted' }, 'none')),
      h('td', {}, f.access || ''),
      h('td', {}, String((f.entries || []).length)),
      h('td', {}, f.source),
      h('td', {}, s ? String(s.calls) : '0'),
      h('td', { class: s && s.errors ? 'bad' : '' }, s ? `${((100 * s.errors) / s.calls).toFixed(1)} %` : '–'),
      h('td', {}, s ? `${s.p50} / ${s.p99} ms` : '–'));
  });
  const charts = metricsPanel(space, null);
  show(
    h('h1', {}, 'Functions'),
    h('p', { class: 'muted' }, 'Calls, error rate and p50 / p99 duration over the last hour, from the invocation log.'),
    rows.length
      ? table(['Space', 'Function', 'Active version', 'Access', 'Entries', 'Source', 'Calls', 'Errors', 'p50 / p99'], rows)
      : h('p', { class: 'panel' }, 'No functions yet. Deploy one below, or with `wasmfn deploy`.'),
    isAdmin() ? await nodePanel() : null,
    charts.panel,
    can('change') ? deployForm(ownSpace(), null) : null);
  await charts.draw('1h');
}

function statsPath(space) {
  return space ? `/admin/spaces/${encodeURIComponent(space)}/stats` : '/admin/stats';
}

async function nodePanel() {
  const node = await api('GET', '/admin/node');
  const mib = node.resident_memory_bytes ? `${(node.resident_memory_bytes / (1024 * 1024)).toFixed(0)} MiB` : 'unknown';
  return h('div', { class: 'panel', id: 'node' },
    h('h2', {}, 'This node'),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Running invocations'), h('dd', {}, `${node.running_invocations} of ${node.max_running} run slots`),
      h('dt', {}, 'Active functions'), h('dd', {}, String(node.functions)),
      h('dt', {}, 'Instance pool'), h('dd', {}, `${node.pooled_instances} instances ready, ${node.free_instance_slots} slots free`),
      h('dt', {}, 'Resident memory'), h('dd', {}, mib),
      h('dt', {}, 'Log records dropped'), h('dd', {}, String(node.log_records_dropped)),
      h('dt', {}, 'wasmfn'), h('dd', {}, node.version)),
    await serversTable());
}

// The servers sharing this one's state (one row without a cluster): each renews its record
// every few seconds; one that stopped is shown gone, with the server that took over from it.
async function serversTable() {
  const { this_node: self, nodes } = await api('GET', '/admin/nodes');
  const rows = nodes.map((n) => h('tr', {},
    h('td', {}, n.id === self ? `${n.id} (this one)` : n.id),
    h('td', {}, n.address),
    h('td', {}, n.version),
    h('td', {}, `${n.running} of ${n.run_slots}`),
    h('td', {}, String(n.functions.length)),
    h('td', {}, when(n.seen_at)),
    h('td', {}, n.alive ? 'alive' : (n.taken_over_by ? `gone, taken over by ${n.taken_over_by}` : 'gone'))));
  return h('div', { id: 'servers' },
    h('h3', {}, nodes.length > 1 ? `Servers of the cluster (${nodes.length})` : 'Servers'),
    table(['Server', 'Address', 'wasmfn', 'Running', 'Functions', 'Last seen', 'State'], rows));
}

// Charts of calls and errors, p50/p99 duration, and queue wait and instantiation, over a
// window the operator picks; for a space (or all) and optionally one function.
function metricsPanel(space, name, versions) {
  const holder = h('div', { class: 'charts' });
  const pick = h('select', { id: 'metrics-window' },
    [['1h', 'last hour'], ['24h', 'last 24 hours'], ['7d', 'last 7 days']].map(([v, t]) => h('option', { value: v }, t)));
  const version = versions && versions.length
    ? h('select', { id: 'metrics-version' }, h('option', { value: '' }, 'all versions'),
      versions.map((v) => h('option', { value: v }, v)))
    : null;
  const panel = h('section', { class: 'panel', 'aria-labelledby': 'metrics-title' },
    h('div', { class: 'row' },
      h('h2', { id: 'metrics-title' }, name ? 'Metrics' : 'Metrics of all functions'),
      version ? h('label', { for: 'metrics-version' }, 'Version', version) : null,
      h('label', { for: 'metrics-window' }, 'Window', pick)),
    holder);
  const draw = async (windowName) => {
    const query = new URLSearchParams({ window: windowName });
    if (name) query.set('function', name);
    if (version && version.value) query.set('version', version.value);
    const stats = await api('GET', `${statsPath(space)}?${query}`);
    const s = stats.series;
    const width = Math.max(280, Math.min(holder.clientWidth || 600, 1340));
    const chartWidth = width >= 900 ? Math.floor((width - 28) / 3) : width;
    const chart = (title, labels, colors, values, unit) => {
      const box = h('figure', { class: 'chart', 'aria-label': title });
      holder.append(box);
      if (typeof window.uPlot !== 'function') {
        box.append(h('p', { class: 'muted' }, 'The chart library did not load.'));
        return;
      }
      const series = [{}].concat(labels.map((label, i) => ({
        label, stroke: colors[i], width: 1.5, spanGaps: false, points: { show: true, size: 4 },
        value: (u, v) => (v === null || v === undefined ? '–' : `${Number(v).toFixed(unit === 'ms' ? 1 : 0)}${unit ? ` ${unit}` : ''}`),
      })));
      // eslint-disable-next-line no-new
      new window.uPlot({ title, width: chartWidth, height: 180, series, scales: { x: { time: true } } },
        [s.time].concat(values), box);
    };
    holder.replaceChildren();
    chart('Invocations per step', ['calls', 'errors'], ['#1f5fbf', '#b3261e'], [s.calls, s.errors], '');
    chart('Duration', ['p50', 'p99'], ['#1e7b34', '#8a5a00'], [s.p50_ms, s.p99_ms], 'ms');
    chart('Queue wait and instantiation (mean)', ['queued', 'instantiate'], ['#6b4fbb', '#1f8a8a'],
      [s.queued_ms, s.instantiate_ms], 'ms');
    holder.append(h('p', { class: 'muted' },
      `${stats.records} invocations in the window; one point per ${stats.step_seconds / 60} min.`));
  };
  pick.addEventListener('change', () => draw(pick.value).catch(failed));
  if (version) version.addEventListener('change', () => draw(pick.value).catch(failed));
  return { panel, draw };
}

function deployForm(space, name) {
  const spaceInput = h('input', { id: 'deploy-space', value: space || 'default', required: true, disabled: space ? true : null });
  const nameInput = h('input', { id: 'deploy-name', value: name || '', required: true, disabled: name ? true : null });
  const versionInput = h('input', { id: 'deploy-version', placeholder: 'from the bundle' });
  const fileInput = h('input', { id: 'deploy-file', type: 'file', accept: '.wasm', required: true });
  const progress = h('progress', { max: '100', value: '0', hidden: true });
  const progressText = h('span', { class: 'muted', 'aria-live': 'polite' });
  const button = h('button', { class: 'primary', type: 'submit' }, 'Deploy');
  const form = h('form', { class: 'panel', 'aria-labelledby': 'deploy-title' },
    h('h2', { id: 'deploy-title' }, name ? 'Deploy a new version' : 'Deploy a function'),
    h('div', { class: 'row' },
      h('label', { for: 'deploy-space' }, 'Space', spaceInput),
      h('label', { for: 'deploy-name' }, 'Function', nameInput),
      h('label', { for: 'deploy-version' }, 'Version (optional)', versionInput),
      h('label', { for: 'deploy-file' }, 'Bundle (.wasm)', fileInput),
      button),
    h('p', {}, progress, ' ', progressText));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const file = fileInput.files[0];
    if (!file) return;
    const target = `/admin/spaces/${encodeURIComponent(spaceInput.value)}/functions/${encodeURIComponent(nameInput.value)}/versions`;
    const query = versionInput.value ? `?version=${encodeURIComponent(versionInput.value)}` : '';
    // XMLHttpRequest, not fetch: it reports upload progress.
    const request = new XMLHttpRequest();
    request.open('POST', target + query);
    request.setRequestHeader('X-CSRF-Token', session.csrf_token);
    request.setRequestHeader('Content-Type', 'application/wasm');
    progress.hidden = false;
    button.disabled = true;
    request.upload.onprogress = (e) => {
      if (e.lengthComputable) progress.value = String(Math.round((100 * e.loaded) / e.total));
      progressText.textContent = 'uploading…';
    };
    request.upload.onload = () => {
      progress.removeAttribute('value');
      progressText.textContent = 'compiling…';
    };
    request.onloadend = () => {
      button.disabled = false;
      progress.hidden = true;
      let data = {};
      try {
        data = JSON.parse(request.responseText);
      } catch (e) {
        // Not JSON: the status says enough.
      }
      if (request.status === 201 || request.status === 202) {
        progressText.textContent = '';
        navigate(`#/functions/${encodeURIComponent(data.space)}/${encodeURIComponent(data.name)}`,
          `Deployed ${data.space}/${data.name} ${data.version.version} (${data.version.state}).`);
      } else if (request.status === 401) {
        signInPage('Your session ended. Sign in again.');
      } else {
        progressText.textContent = '';
        say((data.error && data.error.message) || `deploy failed (${request.status})`, 'error');
      }
    };
    request.send(file);
  });
  return form;
}

async function functionPage(space, name) {
  const f = await api('GET', `/admin/spaces/${encodeURIComponent(space)}/functions/${encodeURIComponent(name)}`);
  const versionNames = (f.versions || []).map((v) => v.version);
  if (f.active_version && !versionNames.includes(f.active_version)) versionNames.push(f.active_version);
  const charts = metricsPanel(space, name, versionNames.reverse());
  const base = `/admin/spaces/${encodeURIComponent(space)}/functions/${encodeURIComponent(name)}`;
  const versions = (f.versions || []).slice().reverse().map((v) => h('tr', {},
    h('td', {}, v.version),
    h('td', {}, h('span', { class: `badge ${v.state === 'failed' ? 'bad' : v.state === 'active' ? 'good' : ''}` }, v.state)),
    h('td', {}, when(v.deployed_at), v.deployed_by ? h('div', { class: 'muted' }, `by ${v.deployed_by}`) : ''),
    h('td', {}, `${(v.size / (1024 * 1024)).toFixed(1)} MiB`),
    h('td', { class: 'mono', title: v.sha256 }, (v.sha256 || '').slice(0, 12)),
    h('td', {}, v.error || ''),
    h('td', {}, can('change') && v.state === 'inactive'
      ? h('button', {
        type: 'button',
        onclick: confirmThen(`Roll ${name} back to ${v.version}?`, async () => {
          await api('POST', `${base}/rollback`, { version: v.version });
          await navigate(location.hash, `${name} now serves ${v.version}.`);
        }),
      }, `Roll back to ${v.version}`)
      : '')));
  show(
    h('p', {}, h('a', { href: '#/functions' }, '← Functions')),
    h('h1', {}, `${space} / ${name}`),
    h('div', { class: 'panel' }, h('dl', { class: 'facts' },
      h('dt', {}, 'Active version'), h('dd', {}, f.active_version || 'none'),
      h('dt', {}, 'Entries'), h('dd', { class: 'mono' }, (f.entries || []).join(', ')),
      h('dt', {}, 'Default entry'), h('dd', { class: 'mono' }, f.default_entry || ''),
      h('dt', {}, 'Source'), h('dd', {}, f.source),
      h('dt', {}, 'Tier'), h('dd', {}, f.tier || ''),
      h('dt', {}, 'Access'), h('dd', {}, f.access === 'public' ? 'public: anyone may call it' : f.access === 'key' ? 'an API key of the space' : (f.access || '')),
      h('dt', {}, 'Limits'), h('dd', {}, f.limits
        ? `${f.limits.timeout_ms} ms, ${f.limits.memory_mb} MiB, bodies up to ${(f.limits.max_body_bytes / 1048576).toFixed(1)} MiB in and ${(f.limits.max_response_bytes / 1048576).toFixed(1)} MiB out, ${f.limits.max_concurrency} at once (${f.limits.max_queue} queued)`
        : ''),
      h('dt', {}, 'Log'), h('dd', {}, h('a', { href: `#/logs?space=${encodeURIComponent(space)}&function=${encodeURIComponent(name)}` }, 'invocations of this function')))),
    tryPanel(space, name, f),
    await configPanel(space, name),
    charts.panel,
    h('h2', {}, 'Versions'),
    versions.length ? table(['Version', 'State', 'Deployed', 'Size', 'SHA-256', 'Error', ''], versions)
      : h('p', { class: 'muted' }, 'Served from a path given to `wasmfn serve`: no deployed versions.'),
    can('change') && f.source === 'deployed' ? deployForm(space, name) : null,
    can('change') && f.source === 'deployed'
      ? h('p', {}, h('button', {
        class: 'danger',
        type: 'button',
        onclick: confirmThen(`Delete ${space}/${name} and all its versions? This cannot be undone.`, async () => {
          await api('DELETE', base);
          await navigate('#/functions', `Deleted ${space}/${name}.`);
        }),
      }, 'Delete function'))
      : null);
  await charts.draw('1h');
}

// Configuration values (JSON, edited as a whole) and secrets (set or removed one by one,
// never shown), set through the admin API on top of function.toml.
async function configPanel(space, name) {
  const path = `/admin/spaces/${encodeURIComponent(space)}/functions/${encodeURIComponent(name)}/config`;
  const current = await api('GET', path);
  const panel = h('section', { class: 'panel', 'aria-labelledby': 'config-title' },
    h('h2', { id: 'config-title' }, 'Configuration and secrets'),
    h('p', { class: 'muted' }, 'Set here on top of function.toml and the environment; the function sees them from its next call.'));
  const secretNames = Object.keys(current.secrets || {});
  if (!can('change')) {
    panel.append(h('pre', {}, JSON.stringify(current.values || {}, null, 2)),
      h('p', {}, 'Secrets: ', secretNames.length ? secretNames.join(', ') : 'none'));
    return panel;
  }
  const values = h('textarea', { id: 'config-values', class: 'mono', spellcheck: 'false' },
    JSON.stringify(current.values || {}, null, 2));
  const saveValues = h('form', { 'aria-label': 'Configuration values' },
    h('label', { for: 'config-values' }, 'Values (a JSON object)', values),
    h('p', {}, h('button', { class: 'primary', type: 'submit' }, 'Save values')));
  saveValues.addEventListener('submit', async (event) => {
    event.preventDefault();
    let wanted;
    try {
      wanted = JSON.parse(values.value || '{}');
      if (typeof wanted !== 'object' || Array.isArray(wanted) || wanted === null) throw new Error('not an object');
    } catch (error) {
      say(`The values are not a JSON object: ${error.message}`, 'error');
      return;
    }
    // PATCH, so the secrets stay: keys no longer there are removed with null.
    const patch = Object.assign({}, wanted);
    for (const key of Object.keys(current.values || {})) if (!(key in wanted)) patch[key] = null;
    try {
      await api('PATCH', path, { values: patch });
      await navigate(location.hash, 'Configuration values saved.');
    } catch (error) {
      failed(error);
    }
  });
  const secretName = h('input', { id: 'secret-name', required: true, autocomplete: 'off' });
  const secretValue = h('input', { id: 'secret-value', type: 'password', required: true, autocomplete: 'new-password' });
  const setSecret = h('form', { class: 'row', 'aria-label': 'Set a secret' },
    h('label', { for: 'secret-name' }, 'Secret name', secretName),
    h('label', { for: 'secret-value' }, 'Value (write-only)', secretValue),
    h('button', { type: 'submit' }, 'Set secret'));
  setSecret.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await api('PATCH', path, { secrets: { [secretName.value.trim()]: secretValue.value } });
      secretValue.value = '';
      await navigate(location.hash, `Secret ${secretName.value.trim()} set.`);
    } catch (error) {
      failed(error);
    }
  });
  panel.append(saveValues,
    h('h3', {}, 'Secrets'),
    secretNames.length
      ? h('ul', { id: 'secret-names' }, secretNames.map((secret) => h('li', {}, h('span', { class: 'mono' }, secret), ' ',
        h('button', {
          type: 'button',
          class: 'danger',
          onclick: confirmThen(`Remove secret ${secret}?`, async () => {
            await api('PATCH', path, { secrets: { [secret]: null } });
            await navigate(location.hash, `Secret ${secret} removed.`);
          }),
        }, `Remove ${secret}`))))
      : h('p', { class: 'muted' }, 'No secrets set here.'),
    setSecret);
  return panel;
}

function tryPanel(space, name, f) {
  const entry = h('select', { id: 'try-entry' },
    (f.entries || []).map((e) => h('option', { value: e, selected: e === f.default_entry ? true : null }, e)));
  const method = h('select', { id: 'try-method' }, ['POST', 'GET', 'PUT', 'PATCH', 'DELETE'].map((m) => h('option', { value: m }, m)));
  const path = h('input', { id: 'try-path', placeholder: '/' });
  const args = h('textarea', { id: 'try-arguments', spellcheck: 'false', class: 'mono' }, '{}');
  const result = h('div', { id: 'try-result' });
  const button = h('button', { class: 'primary', type: 'submit' }, 'Invoke');
  const form = h('form', { class: 'panel', 'aria-labelledby': 'try-title' },
    h('h2', { id: 'try-title' }, 'Try it'),
    h('div', { class: 'row' },
      h('label', { for: 'try-entry' }, 'Entry', entry),
      h('label', { for: 'try-method' }, 'Method', method),
      h('label', { for: 'try-path' }, 'Path after /invoke', path)),
    h('label', { for: 'try-arguments' }, 'Arguments (a JSON object)', args),
    h('p', {}, button),
    result);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    let parsed;
    try {
      parsed = JSON.parse(args.value || '{}');
      if (typeof parsed !== 'object' || Array.isArray(parsed) || parsed === null) throw new Error('not an object');
    } catch (error) {
      say(`The arguments are not a JSON object: ${error.message}`, 'error');
      return;
    }
    button.disabled = true;
    result.replaceChildren(h('p', { class: 'muted' }, 'running…'));
    try {
      const answer = await api('POST', `/admin/spaces/${encodeURIComponent(space)}/functions/${encodeURIComponent(name)}/try`,
        { entry: entry.value, method: method.value, path: path.value, arguments: parsed });
      say('');
      result.replaceChildren(tryResult(answer));
    } catch (error) {
      result.replaceChildren();
      failed(error);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function tryResult(answer) {
  const record = answer.record;
  let body = answer.body;
  if (answer.body_encoding === 'utf-8') {
    try {
      body = JSON.stringify(JSON.parse(body), null, 2);
    } catch (e) {
      // Not JSON: shown as it came.
    }
  } else {
    body = `(binary, ${answer.body_bytes} bytes, base64)\n${body}`;
  }
  if (answer.body_cut) body += `\n… (${answer.body_bytes} bytes in all)`;
  return h('div', { class: 'try-result' },
    h('p', {}, 'Status ', statusBadge(answer.status), ` in ${record.duration_ms} ms · `,
      h('a', { href: `#/logs/${answer.invocation_id}` }, 'log record')),
    h('h3', {}, 'Body'), h('pre', { id: 'try-body' }, body),
    h('h3', {}, 'Headers'),
    h('pre', {}, answer.headers.map(([n, v]) => `${n}: ${v}`).join('\n')),
    recordOutput(record));
}

function recordOutput(record) {
  return h('div', {},
    record.traceback ? [h('h3', {}, 'Traceback'), h('pre', { class: 'traceback' }, record.traceback)] : null,
    record.error_message && !record.traceback ? [h('h3', {}, 'Error'), h('pre', {}, record.error_message)] : null,
    record.logs && record.logs.length
      ? [h('h3', {}, 'Log lines'), h('pre', {}, record.logs.map((l) => `[${l.level}] ${l.message}`).join('\n'))]
      : null,
    record.stdout ? [h('h3', {}, 'stdout'), h('pre', {}, record.stdout)] : null,
    record.stderr ? [h('h3', {}, 'stderr'), h('pre', {}, record.stderr)] : null);
}

// ---- invocation log -----------------------------------------------------------------

const LOG_FIELDS = [
  ['space', 'Space'], ['function', 'Function'], ['version', 'Version'], ['trigger', 'Trigger'],
  ['status', 'Status (500, 5xx)'], ['outcome', 'Outcome'], ['text', 'Text'],
];

function toInputTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const local = new Date(d.getTime() - d.getTimezoneOffset() * 60000);
  return local.toISOString().slice(0, 16);
}

async function logsPage(query) {
  const filter = params(query);
  if (ownSpace()) filter.set('space', ownSpace());
  const inputs = {};
  const fields = LOG_FIELDS.map(([key, label]) => {
    inputs[key] = h('input', { id: `log-${key}`, name: key, value: filter.get(key) || '', disabled: key === 'space' && ownSpace() ? true : null });
    return h('label', { for: `log-${key}` }, label, inputs[key]);
  });
  const since = h('input', { id: 'log-since', type: 'datetime-local', value: toInputTime(filter.get('since')) });
  const until = h('input', { id: 'log-until', type: 'datetime-local', value: toInputTime(filter.get('until')) });
  const live = h('input', { id: 'log-live', type: 'checkbox', checked: filter.get('live') === '1' ? true : null });
  const form = h('form', { class: 'panel inline', 'aria-label': 'Filter' }, fields,
    h('label', { for: 'log-since' }, 'From', since),
    h('label', { for: 'log-until' }, 'Until', until),
    h('label', { class: 'check', for: 'log-live' }, live, 'Live tail'),
    h('button', { class: 'primary', type: 'submit' }, 'Filter'));
  const current = () => {
    const next = new URLSearchParams();
    for (const [key] of LOG_FIELDS) if (inputs[key].value) next.set(key, inputs[key].value.trim());
    if (since.value) next.set('since', new Date(since.value).toISOString());
    if (until.value) next.set('until', new Date(until.value).toISOString());
    if (live.checked) next.set('live', '1');
    return next;
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = `#/logs?${current()}`;
  });
  live.addEventListener('change', () => {
    location.hash = `#/logs?${current()}`;
  });
  const apiQuery = new URLSearchParams(filter);
  apiQuery.delete('live');
  apiQuery.set('limit', '200');
  const downloads = (format) => {
    const q = new URLSearchParams(apiQuery);
    q.set('format', format);
    q.set('limit', '100000');
    return `/admin/logs?${q}`;
  };
  const results = h('div', { id: 'log-results' });
  show(h('h1', {}, 'Invocation log'), form,
    h('p', {}, 'Download this filter: ',
      h('a', { href: downloads('ndjson'), download: 'invocations.ndjson' }, 'NDJSON'), ' · ',
      h('a', { href: downloads('csv'), download: 'invocations.csv' }, 'CSV')),
    results);
  const load = async () => {
    const { records } = await api('GET', `/admin/logs?${apiQuery}`);
    const rows = records.map((r) => h('tr', { class: 'clickable' },
      h('td', {}, h('a', { href: `#/logs/${r.id}` }, when(r.started_at))),
      h('td', {}, `${r.space}/${r.function}`),
      h('td', {}, r.version || ''),
      h('td', {}, r.trigger),
      h('td', {}, statusBadge(r.status)),
      h('td', { class: r.outcome === 'ok' ? '' : 'bad' }, r.outcome),
      h('td', {}, `${r.duration_ms} ms`),
      h('td', {}, r.error_message ? r.error_message.slice(0, 120) : '')));
    results.replaceChildren(rows.length
      ? table(['Started', 'Function', 'Version', 'Trigger', 'Status', 'Outcome', 'Duration', 'Error'], rows)
      : h('p', { class: 'panel muted' }, 'No invocations match.'));
  };
  await load();
  if (live.checked) {
    tail = window.setInterval(() => load().catch(failed), 2000);
  }
}

function stopTail() {
  if (tail) window.clearInterval(tail);
  tail = null;
}

async function recordPage(id) {
  const r = await api('GET', `/admin/logs/${encodeURIComponent(id)}`);
  show(
    h('p', {}, h('a', { href: `#/logs?space=${encodeURIComponent(r.space)}&function=${encodeURIComponent(r.function)}` }, '← Log of this function')),
    h('h1', {}, `Invocation ${r.id}`),
    h('div', { class: 'panel' }, h('dl', { class: 'facts' },
      h('dt', {}, 'Function'), h('dd', {}, `${r.space}/${r.function} ${r.version || ''}`),
      h('dt', {}, 'Entry'), h('dd', { class: 'mono' }, r.entry || 'default'),
      h('dt', {}, 'Trigger'), h('dd', {}, r.trigger),
      h('dt', {}, 'Started'), h('dd', {}, `${when(r.started_at)} (${r.started_at})`),
      h('dt', {}, 'Duration'), h('dd', {}, `${r.duration_ms} ms`),
      h('dt', {}, 'Status'), h('dd', {}, statusBadge(r.status), ' ', r.outcome),
      r.error_type ? [h('dt', {}, 'Error'), h('dd', {}, `${r.error_type}: ${r.error_message || ''}`)] : null)),
    r.arguments ? [h('h3', {}, 'Arguments'), h('pre', {}, r.arguments)] : null,
    recordOutput(r),
    r.outbound && r.outbound.length
      ? [h('h3', {}, 'Outbound requests'), h('pre', {}, JSON.stringify(r.outbound, null, 2))]
      : null);
}

// ---- triggers and keys --------------------------------------------------------------

async function triggersPage() {
  const space = ownSpace();
  const holder = h('div', { id: 'trigger-list' });
  const events = h('div', { id: 'subscription-list' });
  const deliveries = h('div', { id: 'delivery-list' });
  const load = async () => {
    const { triggers } = await api('GET', space ? `/admin/spaces/${space}/triggers` : '/admin/triggers');
    holder.replaceChildren(triggers.length
      ? table(['Space', 'Name', 'Type', 'Configuration', 'State', 'Counts', ''], triggers.map(triggerRow))
      : h('p', { class: 'panel muted' }, 'No triggers.'));
    const { subscriptions } = await api('GET', space ? `/admin/spaces/${space}/events` : '/admin/events');
    events.replaceChildren(subscriptions.length
      ? table(['Space', 'Name', 'Events', 'Target', 'Origin', ''], subscriptions.map((sub) => h('tr', { 'data-subscription': sub.name },
        h('td', {}, sub.space),
        h('td', {}, sub.name),
        h('td', {}, (sub.events || []).join(', ')),
        h('td', { class: 'mono' }, JSON.stringify(sub.target || sub.function || '')),
        h('td', {}, sub.origin || ''),
        h('td', {}, can('change') && sub.origin === 'admin'
          ? h('button', {
            class: 'danger',
            type: 'button',
            onclick: confirmThen(`Delete event subscription ${sub.name}?`, async () => {
              await api('DELETE', `/admin/spaces/${encodeURIComponent(sub.space)}/events/${encodeURIComponent(sub.name)}`);
              await navigate(location.hash, `Deleted event subscription ${sub.name}.`);
            }),
          }, 'Delete')
          : ''))))
      : h('p', { class: 'panel muted' }, 'No event subscriptions.'));
    if (isAdmin()) {
      const listed = (await api('GET', '/admin/deliveries')).deliveries.slice(-50).reverse();
      deliveries.replaceChildren(listed.length
        ? table(['Finished', 'Source', 'Target', 'Attempts', 'Result'], listed.map((d) => h('tr', {},
          h('td', {}, when(d.finished_at)),
          h('td', {}, d.source),
          h('td', { class: 'mono' }, d.target),
          h('td', {}, String(d.attempts)),
          h('td', { class: d.delivered ? 'good' : 'bad' }, d.delivered ? `delivered (${d.status})` : `gave up: ${d.error || d.status}`))))
        : h('p', { class: 'panel muted' }, 'No callback deliveries yet.'));
    }
  };
  show(h('h1', {}, 'Triggers'),
    h('p', { class: 'muted' }, 'Cron and MQTT triggers, event subscriptions and callback deliveries, refreshed every 5 seconds.'),
    holder,
    can('change') ? mqttForm() : null,
    h('h2', {}, 'Event subscriptions and webhooks'),
    events,
    can('change') ? subscriptionForm() : null,
    isAdmin() ? [h('h2', {}, 'Callback deliveries (the last 50)'), deliveries] : null);
  await load();
  tail = window.setInterval(() => load().catch(failed), 5000);
}

function triggerRow(t) {
  const status = t.status || {};
  const state = status.state || '';
  const counts = Object.entries(status).filter(([, v]) => typeof v === 'number').map(([k, v]) => `${k} ${v}`).join(', ');
  const config = Object.assign({}, t.config);
  const deletable = can('change') && t.origin === 'admin' && t.type === 'mqtt';
  const editButton = deletable
    ? h('button', { type: 'button', onclick: () => editTrigger(t) }, 'Edit')
    : '';
  return h('tr', { 'data-trigger': t.name },
    h('td', {}, t.space),
    h('td', {}, t.name),
    h('td', {}, t.type, t.function ? h('div', { class: 'muted' }, `${t.function} ${t.version || ''}`) : ''),
    h('td', { class: 'mono' }, JSON.stringify(config)),
    h('td', { class: state === 'Failed' ? 'bad' : state === 'Running' ? 'good' : '' },
      h('span', { class: 'trigger-state' }, state),
      status.reason ? h('div', { class: 'muted reason' }, status.reason) : '',
      status.next ? h('div', { class: 'muted' }, 'next: ', status.next.map(when).join(', ')) : ''),
    h('td', {}, counts),
    h('td', {}, editButton, ' ', deletable
      ? h('button', {
        class: 'danger',
        type: 'button',
        onclick: confirmThen(`Delete trigger ${t.name}?`, async () => {
          await api('DELETE', `/admin/spaces/${encodeURIComponent(t.space)}/triggers/${encodeURIComponent(t.name)}`);
          await navigate(location.hash, `Deleted trigger ${t.name}.`);
        }),
      }, 'Delete')
      : ''));
}

const EVENT_NAMES = ['STORAGE_INSERT', 'STORAGE_UPDATE', 'STORAGE_DELETE', 'OBJECT_PUT', 'OBJECT_DELETE', 'AUTH_LOGIN', 'AUTH_REGISTER'];

function subscriptionForm() {
  const [space, spaceLabel] = labelled('sub-space', 'Space', { value: ownSpace() || 'default', required: true, disabled: ownSpace() ? true : null });
  const [name, nameLabel] = labelled('sub-name', 'Name', { required: true });
  const boxes = EVENT_NAMES.map((event) => h('input', { type: 'checkbox', id: `sub-${event}`, value: event }));
  const [collection, collectionLabel] = labelled('sub-collection', 'Collection (optional)', {});
  const [fn, fnLabel] = labelled('sub-function', 'Function', {});
  const [url, urlLabel] = labelled('sub-webhook', 'or webhook URL', { type: 'url', placeholder: 'https://hooks.example.com/…' });
  const shown = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'panel', 'aria-labelledby': 'sub-title' },
    h('h2', { id: 'sub-title' }, 'Create an event subscription'),
    h('div', { class: 'row' }, spaceLabel, nameLabel, collectionLabel, fnLabel, urlLabel),
    h('fieldset', { class: 'row' }, h('legend', {}, 'Events'),
      boxes.map((box) => h('label', { class: 'check', for: box.id }, box, box.value))),
    h('p', {}, h('button', { class: 'primary', type: 'submit' }, 'Create subscription')),
    shown);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { name: name.value.trim(), events: boxes.filter((b) => b.checked).map((b) => b.value) };
    if (collection.value.trim()) body.collection = collection.value.trim();
    if (url.value.trim()) body.webhook_url = url.value.trim();
    else body.function = fn.value.trim();
    try {
      const made = await api('POST', `/admin/spaces/${encodeURIComponent(space.value.trim())}/events`, body);
      const secret = made.target && made.target.secret;
      await navigate(location.hash, `Created event subscription ${body.name}.`);
      if (secret && secret !== '[redacted]') {
        document.getElementById('subscription-list').after(h('div', { class: 'panel' },
          h('p', {}, 'The webhook\'s shared secret, shown this once: give it to the receiver now.'),
          h('pre', { id: 'webhook-secret' }, secret)));
      }
    } catch (error) {
      failed(error);
    }
  });
  return form;
}

// Fills the MQTT form with a trigger's configuration, to save it back changed (PUT).
function editTrigger(t) {
  const form = document.getElementById('mqtt-form');
  if (!form) return;
  const set = (id, value) => {
    document.getElementById(id).value = value === undefined || value === null ? '' : value;
  };
  const target = (t.config.functions || [])[0] || {};
  set('mqtt-space', t.space);
  set('mqtt-name', t.name);
  set('mqtt-broker', t.config.broker);
  set('mqtt-topics', (t.config.topics || []).join(', '));
  set('mqtt-function', target.function);
  set('mqtt-entry', target.entry);
  set('mqtt-username', t.config.username);
  set('mqtt-password', '');
  set('mqtt-qos', String(t.config.qos));
  form.dataset.editing = t.name;
  document.getElementById('mqtt-name').disabled = true;
  document.getElementById('mqtt-title').textContent = `Edit MQTT trigger ${t.name}`;
  document.getElementById('mqtt-submit').textContent = 'Save trigger';
  document.getElementById('mqtt-password').placeholder = 'unchanged';
  form.scrollIntoView({ block: 'start' });
  document.getElementById('mqtt-broker').focus();
}

function mqttForm() {
  const [space, spaceLabel] = labelled('mqtt-space', 'Space', { value: ownSpace() || 'default', required: true, disabled: ownSpace() ? true : null });
  const [name, nameLabel] = labelled('mqtt-name', 'Name', { required: true, pattern: '[a-z0-9_-]{1,64}' });
  const [broker, brokerLabel] = labelled('mqtt-broker', 'Broker', { required: true, placeholder: 'mqtt://host:1883' });
  const [topics, topicsLabel] = labelled('mqtt-topics', 'Topics (comma-separated)', { required: true, placeholder: 'plant/+/temp' });
  const [fn, fnLabel] = labelled('mqtt-function', 'Function', { required: true });
  const [entry, entryLabel] = labelled('mqtt-entry', 'Entry (optional)', {});
  const [user, userLabel] = labelled('mqtt-username', 'Username (optional)', { autocomplete: 'off' });
  const [password, passwordLabel] = labelled('mqtt-password', 'Password (optional)', { type: 'password', autocomplete: 'new-password' });
  const qos = h('select', { id: 'mqtt-qos' }, h('option', { value: '1' }, '1'), h('option', { value: '0' }, '0'));
  const form = h('form', { class: 'panel', id: 'mqtt-form', 'aria-labelledby': 'mqtt-title' },
    h('h2', { id: 'mqtt-title' }, 'Create an MQTT trigger'),
    h('div', { class: 'row' }, spaceLabel, nameLabel, brokerLabel, topicsLabel, fnLabel, entryLabel,
      userLabel, passwordLabel, h('label', { for: 'mqtt-qos' }, 'QoS', qos),
      h('button', { class: 'primary', type: 'submit', id: 'mqtt-submit' }, 'Create trigger')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const target = { function: fn.value.trim() };
    if (entry.value.trim()) target.entry = entry.value.trim();
    const body = {
      type: 'mqtt',
      name: name.value.trim(),
      broker: broker.value.trim(),
      topics: topics.value.split(',').map((t) => t.trim()).filter(Boolean),
      functions: [target],
      qos: Number(qos.value),
    };
    if (user.value) body.username = user.value;
    if (password.value) body.password = password.value;
    try {
      const where = `/admin/spaces/${encodeURIComponent(space.value.trim())}/triggers`;
      if (form.dataset.editing) {
        await api('PUT', `${where}/${encodeURIComponent(form.dataset.editing)}`, body);
        password.value = '';
        await navigate(location.hash, `Saved trigger ${body.name}; it reconnects in the background.`);
      } else {
        await api('POST', where, body);
        password.value = '';
        await navigate(location.hash, `Created trigger ${body.name}; it connects in the background.`);
      }
    } catch (error) {
      failed(error);
    }
  });
  return form;
}

function shareForm(space, key) {
  const id = `share-${key.id}`;
  const other = h('input', { id, size: '10', placeholder: 'space' });
  const form = h('form', { class: 'inline' },
    h('label', { for: id }, `Share ${key.name} with`, other),
    h('button', { type: 'submit' }, 'Share'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await api('PUT', `/admin/spaces/${encodeURIComponent(space)}/keys/${encodeURIComponent(key.id)}/shares/${encodeURIComponent(other.value.trim())}`);
      await navigate(location.hash, `Key ${key.name} now opens ${other.value.trim()} too.`);
    } catch (error) {
      failed(error);
    }
  });
  return form;
}

async function keysPage(query) {
  const space = ownSpace() || params(query).get('space') || 'default';
  const { keys } = await api('GET', `/admin/spaces/${encodeURIComponent(space)}/keys`);
  const spaceInput = h('input', { id: 'keys-space', value: space, disabled: ownSpace() ? true : null });
  const pick = h('form', { class: 'inline', 'aria-label': 'Space' },
    h('label', { for: 'keys-space' }, 'Space', spaceInput),
    ownSpace() ? null : h('button', { type: 'submit' }, 'Show'));
  pick.addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = `#/keys?space=${encodeURIComponent(spaceInput.value)}`;
  });
  const rows = keys.map((k) => h('tr', {},
    h('td', {}, k.name),
    h('td', { class: 'mono' }, k.id),
    h('td', {}, when(k.created_at)),
    h('td', {}, (k.shared_with || []).map((other) => h('span', { class: 'share' }, other, ' ',
      can('keys') ? h('button', {
        type: 'button',
        'aria-label': `Stop sharing ${k.name} with ${other}`,
        onclick: confirmThen(`Stop sharing key ${k.name} with space ${other}?`, async () => {
          await api('DELETE', `/admin/spaces/${encodeURIComponent(space)}/keys/${encodeURIComponent(k.id)}/shares/${encodeURIComponent(other)}`);
          await navigate(location.hash, `Key ${k.name} no longer opens ${other}.`);
        }),
      }, '×') : null, ' ')),
    can('keys') ? shareForm(space, k) : null),
    h('td', {}, can('keys')
      ? h('button', {
        class: 'danger',
        type: 'button',
        onclick: confirmThen(`Revoke key ${k.name} (${k.id})? Calls with it will be refused.`, async () => {
          await api('DELETE', `/admin/spaces/${encodeURIComponent(space)}/keys/${encodeURIComponent(k.id)}`);
          await navigate(location.hash, `Revoked key ${k.name}.`);
        }),
      }, 'Revoke')
      : '')));
  const created = h('div', { 'aria-live': 'polite' });
  let createForm = null;
  if (can('keys')) {
    const name = h('input', { id: 'key-name', required: true });
    createForm = h('form', { class: 'panel inline', 'aria-labelledby': 'key-title' },
      h('h2', { id: 'key-title' }, 'Create a key'),
      h('label', { for: 'key-name' }, 'Name', name),
      h('button', { class: 'primary', type: 'submit' }, 'Create'));
    createForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        const answer = await api('POST', `/admin/spaces/${encodeURIComponent(space)}/keys`, { name: name.value });
        name.value = '';
        created.replaceChildren(h('div', { class: 'panel' },
          h('p', {}, 'The new key, shown this once: copy it now.'),
          h('pre', { id: 'new-key' }, answer.key)));
      } catch (error) {
        failed(error);
      }
    });
  }
  show(h('h1', {}, 'API keys'), pick,
    rows.length ? table(['Name', 'Id', 'Created', 'Shared with', ''], rows)
      : h('p', { class: 'panel muted' }, 'No keys in this space.'),
    createForm, created);
}

// ---- operator accounts (admin) ------------------------------------------------------

// `default:developer, other:viewer` as {default: 'developer', other: 'viewer'}.
function parseRoles(text) {
  const roles = {};
  for (const pair of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const [space, role] = pair.split(':').map((p) => (p || '').trim());
    if (!space || !ROLE_RANK[role]) throw new Error(`'${pair}' is not space:viewer, space:developer or space:owner`);
    roles[space] = role;
  }
  return roles;
}

function rolesForm(account) {
  const id = `roles-${account.id}`;
  const text = Object.entries(account.roles).map(([s, r]) => `${s}:${r}`).join(', ');
  const field = h('input', { id, value: text, size: '28' });
  const form = h('form', { class: 'inline' },
    h('label', { for: id }, `Roles of ${account.email}`, field),
    h('button', { type: 'submit' }, 'Save roles'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await api('PATCH', `/admin/accounts/${encodeURIComponent(account.id)}`, { roles: parseRoles(field.value) });
      await navigate(location.hash, `Saved the roles of ${account.email}.`);
    } catch (error) {
      failed(error);
    }
  });
  return form;
}

async function accountsPage() {
  const { accounts } = await api('GET', '/admin/accounts');
  const rows = accounts.map((a) => h('tr', {},
    h('td', {}, a.email),
    h('td', {}, rolesForm(a)),
    h('td', {}, a.lang),
    h('td', {}, when(a.created_at)),
    h('td', {}, h('button', {
      class: 'danger',
      type: 'button',
      onclick: confirmThen(`Delete the account ${a.email}? Its sessions end at once.`, async () => {
        await api('DELETE', `/admin/accounts/${encodeURIComponent(a.id)}`);
        await navigate(location.hash, `Deleted the account ${a.email}.`);
      }),
    }, 'Delete'))));
  const email = h('input', { id: 'invite-email', type: 'email', required: true });
  const roles = h('input', { id: 'invite-roles', placeholder: 'default:developer, other:viewer', required: true });
  const shown = h('div', { 'aria-live': 'polite' });
  const invite = h('form', { class: 'panel inline', 'aria-labelledby': 'invite-title' },
    h('h2', { id: 'invite-title' }, 'Invite someone'),
    h('label', { for: 'invite-email' }, 'Email', email),
    h('label', { for: 'invite-roles' }, 'Roles (space:role, …)', roles),
    h('button', { class: 'primary', type: 'submit' }, 'Invite'));
  invite.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const answer = await api('POST', '/admin/invitations', { email: email.value, roles: parseRoles(roles.value) });
      shown.replaceChildren(h('div', { class: 'panel' },
        h('p', {}, `Send ${answer.email} this code (shown this once, valid until ${when(answer.expires_at)}); they register on the sign-in page.`),
        h('pre', { id: 'invitation-code' }, answer.invitation)));
    } catch (error) {
      failed(error);
    }
  });
  show(h('h1', {}, 'Operator accounts'),
    h('p', { class: 'muted' }, 'Roles per space: a viewer reads and tries functions, a developer also deploys and configures, an owner also manages API keys.'),
    rows.length ? table(['Email', 'Roles', 'Language', 'Created', ''], rows) : h('p', { class: 'panel muted' }, 'No accounts yet.'),
    invite, shown);
}

// ---- routing ----------------------------------------------------------------------

async function route() {
  if (!session) return;
  stopTail();
  const hash = location.hash.replace(/^#/, '') || '/functions';
  const [path, query] = hash.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  for (const link of document.querySelectorAll('#nav a')) {
    const section = link.getAttribute('href').slice(2);
    if (section === parts[0]) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  try {
    if (parts[0] === 'functions' && parts.length === 3) await functionPage(parts[1], parts[2]);
    else if (parts[0] === 'logs' && parts.length === 2) await recordPage(parts[1]);
    else if (parts[0] === 'logs') await logsPage(query);
    else if (parts[0] === 'triggers') await triggersPage();
    else if (parts[0] === 'keys') await keysPage(query);
    else if (parts[0] === 'accounts' && isAdmin()) await accountsPage();
    else await functionsPage();
    main.focus({ preventScroll: true });
  } catch (error) {
    failed(error);
  }
}

window.addEventListener('hashchange', async () => {
  const message = pendingMessage;
  pendingMessage = null;
  say('');
  await route();
  if (message) say(message);
});

(async () => {
  try {
    session = await api('GET', '/console/session');
    started();
  } catch (error) {
    signInPage();
  }
})();
