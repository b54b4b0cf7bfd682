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

import { router, view } from '@forge/bridge';

import {
  callGateway,
  el,
  enableTheme,
  errorBox,
  httpsUrl,
  notice,
  UNREACHABLE,
  whileBusy,
} from '../shared/ui.js';

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

/** Ask the gateway; resolves to { ok: true, authorizeUrl } or { ok: false, … }. */
async function startLink(request) {
  const body = request === null ? {} : { request };
  const answer = await callGateway({ path: LINK_PATH, method: 'POST', body });
  if (!answer.reached) {
    return { ok: false, reason: null, summary: UNREACHABLE, detail: answer.detail };
  }
  const { status, reason } = answer;
  if (!answer.ok) {
    return {
      ok: false,
      reason,
      summary: `The server answered ${status}.`,
      detail: reason === null ? 'no reason given' : reason,
    };
  }
  const authorizeUrl = httpsUrl(answer.body && answer.body.authorizeUrl);
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
      notice(
        'no-request',
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

function linkError(result, onRetry) {
  const { lines, detail, retry } = explain(result);
  return errorBox({
    heading: 'Your Discord account could not be linked',
    lines,
    detail,
    onRetry: retry ? onRetry : null,
  });
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
  statusLine.textContent = 'Loading…';
  try {
    await whileBusy(app, content, async () => {
      const result = await startLink(request);
      content.replaceChildren(
        result.ok ? linkSection(result.authorizeUrl, request !== null) : linkError(result, () => load(request)),
      );
      statusLine.textContent = '';
    });
  } finally {
    loading = false;
  }
  if (retrying) {
    const next = document.getElementById('retry') || document.getElementById('continue');
    if (next) {
      next.focus();
    }
  }
}

enableTheme();
linkRequest().then(load);
