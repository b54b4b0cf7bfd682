// For the bundles (tests/forge/conftest.py adds it as an init script): the host side of the
// Custom UI bridge, window.__bridge, answering what the real @forge/bridge inside a bundle asks
// (invoke → ui-remote-fetch, navigate, enableTheming, createHistory, getContext). It hands
// each call to fake_bridge.js (served at /fake-bridge.js), so both modes honour the same test
// globals and record the same window.__bridgeCalls.
(() => {
  // One import for all calls: awaiting the same promise keeps the calls in the page's order.
  let module = null;
  const fake = () => (module = module || import('/fake-bridge.js'));
  globalThis.__bridge = {
    async callBridge(name, payload) {
      const { invokeRemote, router, view } = await fake();
      if (name === 'invoke' && payload.invokeType === 'ui-remote-fetch') {
        const input = { path: payload.path, method: payload.method };
        if (payload.body !== undefined) {
          input.body = payload.body;
        }
        const answer = await invokeRemote(input);
        const ok = answer.status >= 200 && answer.status < 300;
        return ok ? { success: true, payload: answer } : { success: false, error: answer };
      }
      if (name === 'navigate' && payload.type === 'new-tab') {
        return router.open(payload.url);
      }
      if (name === 'enableTheming') {
        return view.theme.enable();
      }
      if (name === 'createHistory') {
        return view.createHistory();
      }
      if (name === 'getContext') {
        return view.getContext();
      }
      throw new Error('unexpected bridge call ' + name);
    },
  };
})();
