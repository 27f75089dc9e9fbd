// Builds the studio view into one self-contained HTML file, byte for byte the same on every run.
//
//   node app/build.mjs                 write src/nemo_mcp/server/studio.html
//   node app/build.mjs --check         rebuild, compare with the committed file (exit 1 if stale)
//   node app/build.mjs --host FILE     write the browser tests' host page to FILE
//
// Scripts and styles are inlined: the view loads nothing but the video it plays.
import { readFile, writeFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const STUDIO_OUT = path.join(root, "src/nemo_mcp/server/studio.html");

// zod ships messages in ~50 languages (~250 kB minified); the MCP SDK only ever uses
// the default, English. Its locale index is replaced by one that exports `en` alone.
const englishOnly = {
  name: "zod-english-only",
  setup(build) {
    const zod = `${path.sep}node_modules${path.sep}zod${path.sep}`;
    build.onResolve({ filter: /[\\/]locales[\\/]index\.js$/ }, (args) =>
      args.importer.includes(zod)
        ? { path: "zod-locales", namespace: "zod-english-only" }
        : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: "zod-english-only" }, () => ({
      contents: 'export { default as en } from "zod/v4/locales/en.js";',
      resolveDir: root,
      loader: "js",
    }));
  },
};

async function bundle(entry) {
  const result = await esbuild.build({
    entryPoints: [path.join(root, entry)],
    bundle: true,
    write: false,
    minify: true,
    format: "iife",
    platform: "browser",
    target: "es2022",
    charset: "utf8",
    legalComments: "eof",
    logLevel: "silent",
    absWorkingDir: root,
    plugins: [englishOnly],
  });
  return result.outputFiles[0].text;
}

async function css(file) {
  const source = await readFile(path.join(root, file), "utf8");
  const result = await esbuild.transform(source, { loader: "css", minify: true, charset: "utf8" });
  return result.code;
}

/** `template` with its build markers replaced by inline <style> and <script>. */
function inline(template, styles, script) {
  for (const [text, closing] of [[script, /<\/script/i], [styles, /<\/style/i]]) {
    if (closing.test(text) || text.includes("<!--")) {
      throw new Error("an inlined script or style contains a closing tag or comment opener");
    }
  }
  const parts = template.split("<!-- build:css -->");
  if (parts.length !== 2 || !parts[1].includes("<!-- build:js -->")) {
    throw new Error("the template needs one <!-- build:css --> and one <!-- build:js --> marker");
  }
  const [head, body] = parts;
  const [middle, tail] = body.split("<!-- build:js -->");
  return `${head}<style>${styles.trim()}</style>${middle}<script>${script.trim()}</script>${tail}`;
}

async function buildStudio() {
  const template = await readFile(path.join(root, "app/studio/index.html"), "utf8");
  return inline(template, await css("app/studio/studio.css"), await bundle("app/studio/main.ts"));
}

async function buildHost() {
  const template = await readFile(path.join(root, "tests/browser/host.html"), "utf8");
  return inline(template, "", await bundle("tests/browser/host.ts"));
}

async function main(argv) {
  if (argv[0] === "--host") {
    if (!argv[1]) throw new Error("--host needs an output file");
    await writeFile(argv[1], await buildHost());
    return 0;
  }
  if (argv[0] === "--check") {
    // Written to a temporary file first, so the comparison sees exactly what a build writes.
    const folder = await mkdtemp(path.join(tmpdir(), "studio-check-"));
    try {
      const fresh = path.join(folder, "studio.html");
      await writeFile(fresh, await buildStudio());
      const built = await readFile(fresh);
      const committed = await readFile(STUDIO_OUT).catch(() => null);
      if (committed === null || !built.equals(committed)) {
        const name = path.relative(root, STUDIO_OUT);
        console.error(`${name} does not match app/studio/: run \`npm run build:studio\``);
        return 1;
      }
      const name = path.relative(root, STUDIO_OUT);
      console.log(`${name} matches its sources (${built.length} bytes).`);
      return 0;
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  }
  if (argv.length > 0) throw new Error(`unknown arguments: ${argv.join(" ")}`);
  const html = await buildStudio();
  await writeFile(STUDIO_OUT, html);
  console.log(`wrote ${path.relative(root, STUDIO_OUT)} (${Buffer.byteLength(html)} bytes)`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`build failed: ${err.message}`);
    process.exit(1);
  },
);
