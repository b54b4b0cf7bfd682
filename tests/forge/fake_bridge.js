// Stands in for '@forge/bridge' in tests/forge/test_admin_page.py and test_link_page.py (an
// import map in the served index.html points the bare import here). invokeRemote really goes
// over HTTP, to the test's aiohttp server under /remote, sending its `body` as JSON, and
// resolves to what the real bridge resolves to: { status, headers, body } with the JSON body
// parsed. Like Forge, it rejects when the remote refused the invocation token (401). Every call
// is recorded in window.__bridgeCalls (`body` only when the page passed one). For the bundles,
// host_bridge.js hands the real bridge's host calls to this module.
//
// What a test controls, set before the page loads (an init script):
//   globalThis.__colorMode        data-color-mode that view.theme.enable() sets on <html>
//   globalThis.__hostUrl          the Jira page's URL, which view.createHistory() and
//                                 view.getContext() report (default: no query)
//   globalThis.__noHistory        view.createHistory() rejects, as where there is none
//   globalThis.__contextLocation  view.getContext() gives extension.location = __hostUrl
//   globalThis.__routerOpenFails  router.open() rejects

const calls = (globalThis.__bridgeCalls = globalThis.__bridgeCalls || []);
const DEFAULT_HOST_URL = 'https://acme.atlassian.net/jira/apps/app-uuid/env-uuid';

export async function invokeRemote(input) {
  const call = { fn: 'invokeRemote', path: input.path, method: input.method };
  const init = { method: input.method };
  if ('body' in input) {
    call.body = input.body;
    init.body = JSON.stringify(input.body);
    init.headers = { 'content-type': 'application/json' };
  }
  calls.push(call);
  const response = await fetch(`/remote${input.path}`, init);
  const text = await response.text();
  if (response.status === 401) {
    throw new Error('Remote could not verify the Forge Invocation Token');
  }
  const headers = {};
  response.headers.forEach((value, name) => {
    headers[name] = value;
  });
  let body;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: response.status, headers, body };
}

export const router = {
  async open(location) {
    calls.push({ fn: 'router.open', location: String(location) });
    if (globalThis.__routerOpenFails) {
      throw new Error('navigation refused');
    }
  },
};

function hostUrl() {
  return new URL(globalThis.__hostUrl || DEFAULT_HOST_URL);
}

export const view = {
  theme: {
    async enable() {
      calls.push({ fn: 'view.theme.enable' });
      if (globalThis.__colorMode) {
        document.documentElement.setAttribute('data-color-mode', globalThis.__colorMode);
      }
    },
  },
  // As the host's history for a jira:globalPage: the Jira page's URL below the app's page.
  async createHistory() {
    calls.push({ fn: 'view.createHistory' });
    if (globalThis.__noHistory) {
      throw new Error('history is not available here');
    }
    const url = hostUrl();
    const base = url.pathname.split('/').slice(0, 5).join('/');
    return {
      action: 'POP',
      location: {
        pathname: url.pathname.slice(base.length) || '/',
        search: url.search,
        hash: url.hash,
        state: undefined,
        key: 'default',
      },
      listen() {
        return () => {};
      },
      push() {},
      replace() {},
    };
  },
  async getContext() {
    calls.push({ fn: 'view.getContext' });
    const extension = { type: 'jira:globalPage' };
    if (globalThis.__contextLocation) {
      extension.location = hostUrl().href;
    }
    return { moduleKey: 'link', siteUrl: 'https://acme.atlassian.net', extension };
  },
};
