// Bundles the admin page for Forge: static/admin/main.js with @forge/bridge inlined, plus the
// page and its stylesheet, into static/admin/build/ (the manifest's `admin` resource).
// The source keeps its bare '@forge/bridge' import; only the bundle is deployed.
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const source = join(here, 'static', 'admin');
const out = join(source, 'build');

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(source, 'main.js')],
  outfile: join(out, 'main.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2020'],
  minify: true,
  sourcemap: false,
  legalComments: 'linked',
  logLevel: 'info',
});
for (const name of ['index.html', 'style.css']) {
  copyFileSync(join(source, name), join(out, name));
}
console.log(`admin page built into ${out}`);
