// The app's configuration page inside Jira, as a Forge Custom UI (Jira > Apps > Manage apps >
// Discord for Jira > Configure). It shows what the Connect configuration page shows: the bot's
// install link, a one-time connect code for this site, and the Discord servers connected to it.
//
// Everything comes from one call to our gateway through Forge:
//
//     invokeRemote({ path: '/forge/ui/config', method: 'GET' })
//
// resolves to { status, headers, body }, where a 200 body is
//
//     { site: { url }, discord: { installUrl }, connectCode: { code, expiresAt } | null,
//       connections: [{ guildId, connectedAt }] }
//
// and any other status carries { error: "<reason>" }. The call may also reject (Forge could not
// reach the gateway, or the gateway refused the invocation token).
//
// Every value from the answer reaches the page as text (textContent, or an attribute we set
// ourselves after checking it): nothing here writes HTML.

import { router } from '@forge/bridge';

import {
  callGateway,
  el,
  enableTheme,
  errorBox,
  httpsUrl,
  notice,
  optionalString,
  UNREACHABLE,
  whileBusy,
} from '../shared/ui.js';

const CONFIG_PATH = '/forge/ui/config';

// -- the answer ------------------------------------------------------------------------------

class AnswerError extends Error {}

/** The 200 body, checked and normalised; throws AnswerError when it is not what we expect. */
function parseConfig(body) {
  if (!body || typeof body !== 'object' || !Array.isArray(body.connections)) {
    throw new AnswerError('The server sent an answer this page does not understand.');
  }
  const code = body.connectCode;
  let connectCode = null;
  if (code && typeof code === 'object' && optionalString(code.code) !== null) {
    const expiresAt = Number(code.expiresAt);
    connectCode = {
      code: code.code,
      expiresAt: Number.isFinite(expiresAt) ? new Date(expiresAt * 1000) : null,
    };
  }
  return {
    siteUrl: optionalString(body.site && body.site.url),
    installUrl: httpsUrl(body.discord && body.discord.installUrl),
    connectCode,
    connections: body.connections
      .filter((c) => c && typeof c === 'object' && c.guildId !== undefined && c.guildId !== null)
      .map((c) => ({ guildId: String(c.guildId), connectedAt: new Date(String(c.connectedAt)) })),
  };
}

/** Ask the gateway; resolves to { ok: true, config } or { ok: false, title, detail }. */
async function fetchConfig() {
  const answer = await callGateway({ path: CONFIG_PATH, method: 'GET' });
  if (!answer.reached) {
    return { ok: false, title: UNREACHABLE, detail: answer.detail };
  }
  if (!answer.ok) {
    const detail = answer.reason === null ? 'no reason given' : answer.reason;
    return { ok: false, title: `The server answered ${answer.status}.`, detail };
  }
  try {
    return { ok: true, config: parseConfig(answer.body) };
  } catch (err) {
    if (err instanceof AnswerError) {
      return { ok: false, title: err.message, detail: `status ${answer.status}` };
    }
    throw err;
  }
}

// -- building the page -----------------------------------------------------------------------

function timeOfDay(date) {
  return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function dayOf(date) {
  return Number.isNaN(date.getTime()) ? null : date.toISOString().slice(0, 10);
}

function expiryLine(expiresAt) {
  if (expiresAt === null) {
    return el('p', { id: 'expiry' }, 'The code works once. Get a new one if it has expired.');
  }
  const minutes = Math.round((expiresAt.getTime() - Date.now()) / 60000);
  const when = el('time', { datetime: expiresAt.toISOString() }, timeOfDay(expiresAt));
  if (minutes <= 0) {
    return el('p', { id: 'expiry', class: 'warning' }, 'This code expired at ', when, '. Get a new one.');
  }
  const left = minutes === 1 ? 'in 1 minute' : `in ${minutes} minutes`;
  return el('p', { id: 'expiry' }, 'The code works once and expires at ', when, ` (${left}).`);
}

function openExternally(event) {
  // Inside Jira the page runs in a sandboxed iframe: links leave through the bridge, which asks
  // the user before opening another site. The href stays for copying and for screen readers.
  event.preventDefault();
  const href = event.currentTarget.href;
  router.open(href).catch(() => {
    window.open(href, '_blank', 'noopener,noreferrer');
  });
}

function connectSection(config, onNewCode) {
  const heading = el('h2', { id: 'connect-heading' }, 'Connect a Discord server');
  const section = el('section', { 'aria-labelledby': 'connect-heading' }, heading);
  if (config.installUrl === null || config.connectCode === null) {
    section.append(
      notice(
        'not-set-up',
        el('p', {}, el('strong', {}, 'Discord is not set up on this server yet.')),
        el(
          'p',
          {},
          'The operator of this Discord for Jira server sets the Discord application (',
          el('code', {}, 'DFJ_DISCORD_APPLICATION_ID'),
          ') and the state-signing key (',
          el('code', {}, 'DFJ_STATE_SIGNING_KEY'),
          '). Then reload this page.',
        ),
      ),
    );
    return section;
  }
  const install = el(
    'a',
    { id: 'install', class: 'button primary', href: config.installUrl, target: '_blank', rel: 'noopener noreferrer' },
    'Add the bot to your Discord server',
  );
  install.addEventListener('click', openExternally);
  const command = `/jira connect code:${config.connectCode.code}`;
  const newCode = el('button', { id: 'new-code', type: 'button', class: 'button' }, 'New code');
  newCode.addEventListener('click', onNewCode);
  section.append(
    el(
      'ol',
      { class: 'steps' },
      el('li', {}, el('p', {}, install)),
      el(
        'li',
        {},
        el('p', { id: 'command-label' }, 'In that server, someone with Manage Server runs:'),
        el('pre', { id: 'command', 'aria-labelledby': 'command-label' }, el('code', {}, command)),
        expiryLine(config.connectCode.expiresAt),
        el('p', {}, newCode),
      ),
    ),
  );
  return section;
}

function connectionsSection(config) {
  const heading = el('h2', { id: 'servers-heading' }, 'Connected servers');
  const section = el('section', { 'aria-labelledby': 'servers-heading' }, heading);
  if (config.connections.length === 0) {
    section.append(el('p', { id: 'connected' }, 'None yet.'));
    return section;
  }
  const list = el('ul', { id: 'connected', class: 'servers', 'aria-labelledby': 'servers-heading' });
  for (const connection of config.connections) {
    const day = dayOf(connection.connectedAt);
    list.append(
      el(
        'li',
        {},
        'Server ',
        el('code', { class: 'guild' }, connection.guildId),
        day === null
          ? ' (connection date unknown)'
          : el('span', {}, ', connected ', el('time', { datetime: connection.connectedAt.toISOString() }, day)),
      ),
    );
  }
  section.append(list);
  return section;
}

function loadError(result, onRetry) {
  return errorBox({
    heading: 'The configuration could not be loaded',
    lines: [result.title],
    detail: result.detail,
    onRetry,
  });
}

// -- the page's life -------------------------------------------------------------------------

const app = document.getElementById('app');
const statusLine = document.getElementById('status');
const site = document.getElementById('site');
const content = document.getElementById('content');

let loading = false;

async function load(announce) {
  if (loading) {
    return;
  }
  loading = true;
  const refocus = document.activeElement && document.activeElement.id;
  statusLine.textContent = announce ? 'Getting a new code…' : 'Loading…';
  try {
    await whileBusy(app, content, async () => {
      const result = await fetchConfig();
      if (result.ok) {
        const { config } = result;
        site.hidden = config.siteUrl === null;
        site.textContent = config.siteUrl === null ? '' : `Jira site: ${config.siteUrl}`;
        content.replaceChildren(
          connectSection(config, () => load(true)),
          connectionsSection(config),
        );
        statusLine.textContent = announce && config.connectCode !== null ? 'New code ready.' : '';
      } else {
        content.replaceChildren(loadError(result, () => load(false)));
        statusLine.textContent = '';
      }
    });
  } finally {
    loading = false;
  }
  const again = refocus ? document.getElementById(refocus) : null;
  if (again) {
    again.focus();
  } else if (refocus === 'new-code' || refocus === 'retry') {
    // The button we were on is gone (an error, or Discord no longer set up): keep focus nearby.
    const fallback = document.getElementById('retry') || content.querySelector('h2');
    if (fallback) {
      if (fallback.tagName === 'H2') {
        fallback.setAttribute('tabindex', '-1');
      }
      fallback.focus();
    }
  }
}

enableTheme();
load(false);
