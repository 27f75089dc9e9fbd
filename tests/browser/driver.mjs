// Headless Chromium for the Python browser tests: one request per stdin line, one answer per
// stdout line (JSON). The browser is the system's (CHROMIUM, default /usr/bin/chromium), in a
// fresh profile; nothing is downloaded.
//
//   {"id": 1, "op": "open", "url": "http://127.0.0.1:PORT/"}
//   {"id": 2, "op": "host", "expr": "studioHost.modelTools()"}     evaluate in the host page
//   {"id": 3, "op": "view", "expr": "document.title"}              evaluate in the view's frame
//   {"id": 4, "op": "snapshot"}                                     what the view shows (below)
//   {"id": 5, "op": "wait", "in": "view", "expr": "...", "timeout": 10000}
//   {"id": 6, "op": "wait", "in": "view", "when": "s.status === 'Up to date.'"}  over a snapshot
//   {"id": 7, "op": "click", "selector": "#refresh"}                a real click in the view
//   {"id": 8, "op": "screenshot", "path": "out.png"}                the view's frame
//   {"id": 9, "op": "log"}                                          console and CSP messages
//   {"id": 10, "op": "close-page"}                   end the page and its connections
//   {"id": 11, "op": "close"}
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import readline from "node:readline";
import puppeteer from "puppeteer-core";

const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const profile = await mkdtemp(path.join(tmpdir(), "studio-chromium-"));
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  userDataDir: profile,
  args: FLAGS,
  defaultViewport: { width: 960, height: 900 },
});
const messages = [];

// What the view shows, read from its DOM (runs in the view's frame, as source text).
function snapshot() {
  const $ = (selector, root = document) => root.querySelector(selector);
  const all = (selector, root = document) => [...root.querySelectorAll(selector)];
  const text = (node) => (node ? node.textContent : null);
  const video = $("#player");
  const button = (id) => ({ hidden: $(`#${id}`).hidden, disabled: $(`#${id}`).disabled });
  return {
    status: text($("#status")),
    problems: all("#problems li").map(text),
    player: {
      src: video.getAttribute("src"),
      poster: video.getAttribute("poster"),
      hidden: video.hidden,
      empty: !$("#player-empty").hidden,
      readyState: video.readyState,
      duration: Number.isFinite(video.duration) ? video.duration : null,
    },
    facts: text($("#export-facts")),
    buttons: {
      refresh: button("refresh"),
      export: button("export"),
      fresh: button("export-fresh"),
      open: button("open-project"),
    },
    timeline: {
      duration: text($("#timeline-duration")),
      ready: $("#timeline-ready").dataset.ready ?? null,
      summary: text($("#timeline-summary")),
      tracks: all("#tracks li.track").map((track) => ({
        kind: track.dataset.kind,
        name: text($(".track-name", track)),
        segments: all(".segment", track).map((segment) => ({
          label: text($(".segment-label", segment)),
          left: segment.style.left,
          width: segment.style.width,
          volume: text($(".segment-volume", segment)),
        })),
      })),
    },
    credits: Object.fromEntries(
      all("#credits dd[data-field]").map((d) => [d.dataset.field, Number(d.textContent)]),
    ),
    running: all("#running li").map((li) => ({
      kind: li.dataset.kind ?? null,
      phase: text($(".work-phase", li)),
      percent: text($(".work-percent", li)),
    })),
    nothingRunning: !$("#running-none").hidden,
    theme: document.documentElement.dataset.theme ?? null,
    background: getComputedStyle(document.body).backgroundColor,
    images: document.images.length,
    pwned: window.pwned ?? null,
  };
}
const SNAPSHOT = `(${snapshot.toString()})()`;
let page = null;

function viewFrame() {
  const frame = page?.mainFrame().childFrames()[0]; // the host shows one view at a time
  if (frame === undefined) throw new Error("no view is open");
  return frame;
}

function target(where) {
  if (page === null) throw new Error("no page is open");
  return where === "view" ? viewFrame() : page;
}

async function open(url) {
  await page?.close(); // one host page at a time: its connections end with it
  page = await browser.newPage();
  const note = (source, type, text, url = "") => messages.push({ source, type, text, url });
  page.on("console", (m) => note("console", m.type(), m.text(), m.location().url));
  page.on("pageerror", (e) => note("pageerror", "error", String(e)));
  const cdp = await page.createCDPSession();
  cdp.on("Log.entryAdded", ({ entry }) =>
    note(`log:${entry.source}`, entry.level, entry.text, entry.url),
  );
  await cdp.send("Log.enable");
  await page.goto(url, { waitUntil: "load" });
  await page.waitForFunction(() => window.studioHost !== undefined, { timeout: 10000 });
  return true;
}

async function handle(request) {
  switch (request.op) {
    case "open":
      return open(request.url);
    case "host":
    case "view":
      return target(request.op).evaluate(`(async () => (${request.expr}))()`);
    case "snapshot":
      return viewFrame().evaluate(SNAPSHOT);
    case "wait": {
      const expr =
        request.when !== undefined ? `((s) => (${request.when}))(${SNAPSHOT})` : request.expr;
      const handle = await target(request.in).waitForFunction(expr, {
        polling: 50,
        timeout: request.timeout ?? 10000,
      });
      return handle.jsonValue();
    }
    case "click":
      await viewFrame().click(request.selector);
      return true;
    case "screenshot": {
      const frame = await page.$("iframe");
      if (frame === null) throw new Error("no view is open");
      await frame.screenshot({ path: request.path });
      return request.path;
    }
    case "log":
      return messages.splice(0);
    case "close-page":
      await page?.close();
      page = null;
      return true;
    case "close":
      return true;
    default:
      throw new Error(`unknown op ${request.op}`);
  }
}

const lines = readline.createInterface({ input: process.stdin });
try {
  for await (const line of lines) {
    if (!line.trim()) continue;
    let request = { id: null };
    try {
      request = JSON.parse(line);
      const value = await handle(request);
      const answer = { id: request.id, ok: true, value: value ?? null };
      process.stdout.write(`${JSON.stringify(answer)}\n`);
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      process.stdout.write(`${JSON.stringify({ id: request.id, ok: false, error })}\n`);
    }
    if (request.op === "close") break;
  }
} finally {
  lines.close();
  process.stdin.destroy(); // an open stdin would keep Node running
  await browser.close();
  await rm(profile, { recursive: true, force: true });
}
