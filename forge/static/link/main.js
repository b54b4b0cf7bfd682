// The link page inside Jira, as a Forge Custom UI (jira:globalPage `link`): where a Jira user
// links their Discord account, the Forge twin of the Connect link page. `/jira link` in Discord
// answers with a button to
//
//     https://<site>/jira/apps/<appId>/<envId>?request=<link request>
//
// (the link request is a sealed token naming the Discord user who asked and the site). The
// page can also be opened from Jira's Apps menu, without `request`. Either way it makes one
// call to our gateway through Forge:
//
//     invokeRemote({ path: '/forge/ui/link', method: 'POST', body: { request } })
//
// (`body: {}` without a request), which resolves to { status, headers, body }: 200 with
// { authorizeUrl: "https://discord.com/oauth2/authorize?..." }, or another status with
// { error: "<reason>" }. The call may also reject (Forge could not reach the gateway, or the
// gateway refused the invocation token). The gateway learns who the Jira user is from the
// invocation token Forge signs, never from this page.
//
// Reading `request`: the page runs in an iframe on Forge's CDN, so its own location.search is
// not the Jira page's. The bridge's view.createHistory() is the documented way for a
// jira:globalPage to see and change the Jira page's URL (its location is that URL below the
// app's page: pathname, search, hash), so `request` is read from history.location.search.
// Should the history not be available, view.getContext()'s extension.location (a full URL,
// given to some page modules) is tried; without either the page goes on without a request.
//
// Every value from the answer reaches the page as text (textContent): nothing here writes HTML.

import { invokeRemote, router, view } from '@forge/bridge';

const LINK_PATH = '/forge/ui/link';
const REQUEST_PARAM = 'request';

// -- the link request from the Jira page's URL -----------------------------------------------

/** The `request` query parameter of a search string ('?a=1&request=…'), or null. */
function requestFrom(search) {
  if (typeof search !== 'string' || search === '') {
    return null;
  }
  const value = new URLSearchParams(search).get(REQUEST_PARAM);
  return value === null || value === '' ? null : value;
}

async function searchFromHistory() {
  const history = await view.createHistory();
  const search = history && history.location ? history.location.search : undefined;
  return typeof search === 'string' ? search : null;
}

async function searchFromContext() {
  const context = await view.getContext();
  const location = context && context.extension ? context.extension.location : undefined;
  return typeof location === 'string' ? new URL(location).search : null;
}

/** The link request the user arrived with, or null (opened from Jira's Apps menu). */
async function linkRequest() {
  for (const read of [searchFromHistory, searchFromContext]) {
    let search = null;
    try {
      search = await read();
    } catch {
      search = null;
    }
    if (search !== null) {
      return requestFrom(search);
    }
  }
  return null;
}

// -- the answer ------------------------------------------------------------------------------

/** The answer's body as an object: the bridge hands over parsed JSON, but accept a string too. */
function bodyOf(response) {
  const body = response.body;
  if (typeof body === 'string') {
    try {
      return JSON.parse(body);
    } catch {
      return null;
    }
  }
  return body && typeof body === 'object' ? body : null;
}

/** Only an https URL may be opened (never javascript:, data:, http:, …). */
function httpsUrl(value) {
  if (typeof value !== 'string' || value === '') {
    return null;
  }
  try {
    const url = new URL(value);
    return url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

/** Ask the gateway; resolves to { ok: true, authorizeUrl } or { ok: false, … }. */
async function startLink(request) {
  const body = request === null ? {} : { request };
  let response;
  try {
    response = await invokeRemote({ path: LINK_PATH, method: 'POST', body });
  } catch (err) {
    const message = err && err.message ? String(err.message) : String(err);
    return { ok: false, reason: null, summary: 'The server could not be reached.', detail: message };
  }
  if (!response || typeof response !== 'object') {
    return { ok: false, reason: null, summary: 'The server could not be reached.', detail: 'No answer.' };
  }
  const answer = bodyOf(response);
  const status = Number(response.status);
  if (!(status >= 200 && status < 300)) {
    const reason = answer && typeof answer.error === 'string' ? answer.error : null;
    return {
      ok: false,
      reason,
      summary: `The server answered ${status}.`,
      detail: reason === null ? 'no reason given' : reason,
    };
  }
  const authorizeUrl = httpsUrl(answer && answer.authorizeUrl);
  if (authorizeUrl === null) {
    return {
      ok: false,
      reason: null,
      summary: 'The server sent an answer this page does not understand.',
      detail: `status ${status}, no https authorize URL`,
    };
  }
  return { ok: true, authorizeUrl };
}

// -- building the page -----------------------------------------------------------------------

/** A new element; string children become text nodes, never markup. */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined && value !== false) {
      node.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

function linkSection(authorizeUrl, hadRequest) {
  const section = el(
    'section',
    {},
    el(
      'p',
      { id: 'explain' },
      'Link your Discord account to your Jira account, so that what you do with ',
      el('code', {}, '/jira'),
      ' in Discord is done as you in Jira, with your permissions. Discord will ask you to ',
      'authorize: it shares your Discord user id only, nothing else.',
    ),
  );
  if (!hadRequest) {
    section.append(
      el(
        'div',
        { id: 'no-request', class: 'notice' },
        el(
          'p',
          {},
          'You opened this page from Jira, not from ',
          el('code', {}, '/jira link'),
          ' in Discord: whoever authorizes in Discord next will be linked to your Jira account. ',
          'Make sure it is your own Discord account.',
        ),
      ),
    );
  }
  const button = el('button', { id: 'continue', type: 'button', class: 'button primary' }, 'Continue to Discord');
  const trouble = el('div', { id: 'trouble', role: 'alert' });
  button.addEventListener('click', () => {
    // Inside Jira the page runs in a sandboxed iframe: it leaves through the bridge, which
    // asks the user before opening another site. Discord refuses to be framed anyway.
    trouble.replaceChildren();
    router.open(authorizeUrl).then(
      () => {
        statusLine.textContent = 'Discord is open in a new tab. Authorize there to finish linking.';
      },
      () => {
        trouble.replaceChildren(
          el(
            'p',
            { class: 'warning' },
            'Jira did not open Discord. Try again, or open this address yourself: ',
            el('code', { class: 'address' }, authorizeUrl),
          ),
        );
      },
    );
  });
  section.append(el('p', {}, button), trouble);
  return section;
}

/** What to tell the user about a failed call: { lines, retry }. */
function explain(result) {
  switch (result.reason) {
    case 'link request expired':
      return { lines: ['This link request expired. Run /jira link in Discord again.'], retry: false };
    case 'link request for another site':
      return {
        lines: [
          'This link request was made for another Jira site.',
          'Run /jira link in a Discord server that is connected to this Jira site.',
        ],
        retry: false,
      };
    case 'linking is not set up on this server yet':
      return {
        lines: [
          'Linking is not set up on this server yet.',
          'Ask the operator of this Discord for Jira server to finish setting it up.',
        ],
        retry: true,
      };
    default:
      return { lines: [result.summary], detail: result.detail, retry: true };
  }
}

function errorBox(result, onRetry) {
  const { lines, detail, retry } = explain(result);
  const box = el(
    'div',
    { id: 'error', class: 'error', role: 'alert' },
    el('h2', {}, 'Your Discord account could not be linked'),
    ...lines.map((line) => el('p', {}, line)),
  );
  if (detail !== undefined) {
    box.append(el('p', {}, 'Reason: ', el('code', {}, detail)));
  }
  if (retry) {
    const again = el('button', { id: 'retry', type: 'button', class: 'button' }, 'Try again');
    again.addEventListener('click', onRetry);
    box.append(el('p', {}, again));
  }
  return box;
}

// -- the page's life -------------------------------------------------------------------------

const app = document.getElementById('app');
const statusLine = document.getElementById('status');
const content = document.getElementById('content');

let loading = false;

async function load(request) {
  if (loading) {
    return;
  }
  loading = true;
  const retrying = document.activeElement && document.activeElement.id === 'retry';
  app.setAttribute('aria-busy', 'true');
  for (const button of content.querySelectorAll('button')) {
    button.disabled = true;
  }
  statusLine.textContent = 'Loading…';
  try {
    const result = await startLink(request);
    content.replaceChildren(
      result.ok ? linkSection(result.authorizeUrl, request !== null) : errorBox(result, () => load(request)),
    );
    statusLine.textContent = '';
  } finally {
    loading = false;
    app.setAttribute('aria-busy', 'false');
  }
  if (retrying) {
    const next = document.getElementById('retry') || document.getElementById('continue');
    if (next) {
      next.focus();
    }
  }
}

// Jira's light and dark themes: with theming on, Jira sets data-color-mode on <html> and
// supplies its design tokens (--ds-*), which style.css prefers over its own fallbacks.
view.theme.enable().catch(() => {});
linkRequest().then(load);
