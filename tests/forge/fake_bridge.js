// Stands in for '@forge/bridge' in tests/forge/test_admin_page.py (an import map in the served
// index.html points the bare import here). invokeRemote really goes over HTTP, to the test's
// aiohttp server under /remote, and resolves to what the real bridge resolves to:
// { status, headers, body } with the JSON body parsed. Like Forge, it rejects when the remote
// refused the invocation token (401). Every call is recorded in window.__bridgeCalls.

const calls = (globalThis.__bridgeCalls = globalThis.__bridgeCalls || []);

export async function invokeRemote(input) {
  calls.push({ fn: 'invokeRemote', path: input.path, method: input.method });
  const response = await fetch(`/remote${input.path}`, { method: input.method });
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
  },
};

export const view = {
  theme: {
    async enable() {
      calls.push({ fn: 'view.theme.enable' });
      if (globalThis.__colorMode) {
        document.documentElement.setAttribute('data-color-mode', globalThis.__colorMode);
      }
    },
  },
};
