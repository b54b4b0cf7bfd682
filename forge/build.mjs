// Bundles the Custom UI pages for Forge: for each page, static/<page>/main.js with
// @forge/bridge and static/shared/ui.js inlined, plus the page, its stylesheet and the shared
// one (static/shared/shared.css), into static/<page>/build/ (the manifest's resource of the
// same key: `admin`, `link`). Forge deploys each resource folder on its own, so every build
// folder holds all its page needs.
// The sources keep their bare '@forge/bridge' import; only the bundles are deployed.
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const PAGES = ['admin', 'link'];
const SHARED = join(here, 'static', 'shared');

for (const page of PAGES) {
  const source = join(here, 'static', page);
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
  copyFileSync(join(SHARED, 'shared.css'), join(out, 'shared.css'));
  console.log(`${page} page built into ${out}`);
}
