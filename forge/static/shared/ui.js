// What the Custom UI pages (admin/, link/) share: building elements as text, reading the
// gateway's answers, the https-only check for links, the error and notice boxes, the busy
// state, and Jira's theming. Each page imports it as '../shared/ui.js'; `npm run build`
// (esbuild) inlines it into each page's bundle, so every deployed resource stands alone.
//
// Nothing here writes HTML: string children become text nodes, attributes are set one by one.

import { invokeRemote, view } from '@forge/bridge';

/** A new element; string children become text nodes, never markup. */
export function el(tag, attrs, ...children) {
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

export function optionalString(value) {
  return typeof value === 'string' && value !== '' ? value : null;
}

/** Only an https URL may become an href or be opened (never javascript:, data:, http:, …). */
export function httpsUrl(value) {
  const text = optionalString(value);
  if (text === null) {
    return null;
  }
  try {
    const url = new URL(text);
    return url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

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

export const UNREACHABLE = 'The server could not be reached.';

/**
 * invokeRemote(request), never rejecting. Resolves to { reached: false, detail } when Forge
 * could not reach the gateway (or the gateway refused the invocation token), otherwise to
 * { reached: true, ok, status, body, reason }: `ok` for a 2xx, `body` the parsed answer or
 * null, `reason` the answer's { error } string or null.
 */
export async function callGateway(request) {
  let response;
  try {
    response = await invokeRemote(request);
  } catch (err) {
    return { reached: false, detail: err && err.message ? String(err.message) : String(err) };
  }
  if (!response || typeof response !== 'object') {
    return { reached: false, detail: 'No answer.' };
  }
  const body = bodyOf(response);
  const status = Number(response.status);
  return {
    reached: true,
    ok: status >= 200 && status < 300,
    status,
    body,
    reason: body && typeof body.error === 'string' ? body.error : null,
  };
}

/** A warning box (class "notice") with the given id and children. */
export function notice(id, ...children) {
  return el('div', { id, class: 'notice' }, ...children);
}

/** The alert a failed load shows: a heading, lines, an optional reason and Try again. */
export function errorBox({ heading, lines, detail, onRetry }) {
  const box = el(
    'div',
    { id: 'error', class: 'error', role: 'alert' },
    el('h2', {}, heading),
    ...lines.map((line) => el('p', {}, line)),
  );
  if (detail !== undefined && detail !== null) {
    box.append(el('p', {}, 'Reason: ', el('code', {}, detail)));
  }
  if (onRetry) {
    const retry = el('button', { id: 'retry', type: 'button', class: 'button' }, 'Try again');
    retry.addEventListener('click', onRetry);
    box.append(el('p', {}, retry));
  }
  return box;
}

/** Runs work() with `app` marked busy and the buttons in `content` disabled meanwhile. */
export async function whileBusy(app, content, work) {
  app.setAttribute('aria-busy', 'true');
  for (const button of content.querySelectorAll('button')) {
    button.disabled = true;
  }
  try {
    return await work();
  } finally {
    app.setAttribute('aria-busy', 'false');
  }
}

/**
 * Jira's light and dark themes: with theming on, Jira sets data-color-mode on <html> and
 * supplies its design tokens (--ds-*), which shared.css prefers over its own fallbacks.
 */
export function enableTheme() {
  view.theme.enable().catch(() => {});
}
