// The console's shell: sign-in, navigation between views, service health.
import { api, ApiError, onUnauthorized } from './api.js';
import { clear, fill, h } from './dom.js';
import { mountBoard } from './board.js';
import { mountKpis } from './kpis.js';
import { mountLive } from './live.js';
import { mountStory } from './story.js';

const VIEWS = {
  live: { title: 'Live stream', mount: mountLive },
  board: { title: 'Queue board', mount: mountBoard },
  kpis: { title: 'KPIs', mount: mountKpis },
  story: { title: 'Complaint story', mount: mountStory },
};
const ROLE_NAMES = { agent: 'Agent', supervisor: 'Supervisor', manager: 'Manager' };

const state = { session: null, unmount: null, healthTimer: null };
const $ = (id) => document.getElementById(id);

function route() {
  const [, name = 'live', ...rest] = (location.hash || '#/live').split('/');
  return { name: VIEWS[name] ? name : 'live', params: rest.map(decodeURIComponent) };
}

function render() {
  if (!state.session) return;
  const { name, params } = route();
  if (state.unmount) state.unmount();
  state.unmount = null;
  const view = VIEWS[name];
  $('view-title').textContent = view.title;
  document.title = `${view.title} · Redress console`;
  for (const link of document.querySelectorAll('nav a')) {
    link.classList.toggle('active', link.dataset.view === name);
  }
  const container = clear($('view'));
  container.dataset.view = name;
  state.unmount = view.mount(container, params, state.session) || null;
}

function showSignIn(message) {
  state.session = null;
  if (state.unmount) state.unmount();
  state.unmount = null;
  clearInterval(state.healthTimer);
  $('shell').hidden = true;
  $('signin').hidden = false;
  const error = $('signin-error');
  error.hidden = !message;
  error.textContent = message || '';
  $('signin-username').focus();
}

function showShell(session) {
  state.session = session;
  $('signin').hidden = true;
  $('shell').hidden = false;
  const who = session.display_name || session.subject;
  clear($('operator')).append(
    h('span', { class: 'operator-name', text: who }),
    h('span', { class: `role role-${session.role}`, text: ROLE_NAMES[session.role] || session.role }),
  );
  refreshHealth();
  clearInterval(state.healthTimer);
  state.healthTimer = setInterval(refreshHealth, 15000);
  render();
}

async function refreshHealth() {
  const box = $('health');
  try {
    const overview = await api('/v1/services');
    const items = overview.services.map((s) => h('li', {
      class: s.ready ? 'up' : 'down', title: s.ready ? `${s.name}: ready` : `${s.name}: ${s.detail || 'not ready'}`,
    }, h('span', { class: 'dot' }), s.name));
    const live = overview.stream.status === 'live';
    items.push(h('li', { class: live ? 'up' : 'down', title: `event stream: ${overview.stream.status}` },
      h('span', { class: 'dot' }), 'event stream'));
    fill(box, h('div', { class: 'health-title', text: 'Services' }), h('ul', {}, items));
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) {
      fill(box, h('div', { class: 'health-title', text: 'Services' }), h('p', { class: 'muted', text: err.message }));
    }
  }
}

async function signIn(event) {
  event.preventDefault();
  const button = $('signin-submit');
  button.disabled = true;
  $('signin-error').hidden = true;
  try {
    const session = await api('/v1/session', {
      method: 'POST', body: { username: $('signin-username').value, password: $('signin-password').value },
    });
    $('signin-password').value = '';
    showShell(session);
  } catch (err) {
    const text = err.status === 401 ? 'Wrong username or password.' : err.message;
    showSignIn(text);
  } finally {
    button.disabled = false;
  }
}

async function signOut() {
  try { await api('/v1/session', { method: 'DELETE' }); } catch { /* signed out either way */ }
  showSignIn();
}

async function start() {
  $('signin-form').addEventListener('submit', signIn);
  $('signout').addEventListener('click', signOut);
  window.addEventListener('hashchange', render);
  onUnauthorized(() => showSignIn('Your session ended. Please sign in again.'));
  try {
    const about = await api('/v1/about');
    if (about.development_signins) {
      const hint = $('signin-dev');
      hint.hidden = false;
      hint.textContent = `Development sign-ins: ${about.development_signins.join(', ')} (password ${about.development_password}).`;
    }
  } catch { /* the hint is optional */ }
  try {
    showShell(await api('/v1/session'));
  } catch {
    showSignIn();
  }
}

start();
