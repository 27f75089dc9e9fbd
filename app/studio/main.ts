/**
 * The NemoVideo studio: an MCP App view of the current project.
 *
 * It reads everything through the host: `studio_state` on load and on Refresh, the results
 * of `export` / `timeline` / `generate` calls the host forwards, and its own `export`
 * calls. While work runs it asks `studio_state` again every few seconds; otherwise it
 * sends nothing.
 */

import {
  App,
  type McpUiHostContext,
  PostMessageTransport,
  applyDocumentTheme,
  applyHostStyleVariables,
} from "@modelcontextprotocol/ext-apps";
import {
  type ExportState,
  type StudioState,
  httpUrl,
  isHandoff,
  readExport,
  readStudioState,
  readTimeline,
} from "./contract";
import { drawAll } from "./view";

/** How often running work is looked at again. */
const POLL_MS = 2000;
/** Export calls made while one render is still going (each waits the server's budget). */
const MAX_EXPORT_ROUNDS = 40;

interface ToolAnswer {
  isError?: boolean;
  content?: unknown[];
  structuredContent?: unknown;
}

const app = new App({ name: "NemoVideo studio", version: "1.0.0" }, {}, { autoResize: true });

const state: StudioState = {
  timeline: null,
  credits: null,
  running: [],
  export: null,
  problems: [],
};
/** What the last tool call said went wrong; kept until the next call or action. */
let notes: string[] = [];
let exporting = false;
let handingOff = false;
let refreshing: Promise<void> | null = null;
let refreshAgain = false;
let pollTimer: ReturnType<typeof setTimeout> | null = null;
let closed = false;

function button(id: string): HTMLButtonElement {
  const node = document.getElementById(id);
  if (!(node instanceof HTMLButtonElement)) throw new Error(`the page has no button #${id}`);
  return node;
}

function say(text: string): void {
  const status = document.getElementById("status");
  if (status !== null) status.textContent = text;
}

function textOf(result: ToolAnswer): string {
  const parts: string[] = [];
  for (const block of result.content ?? []) {
    if (typeof block === "object" && block !== null && "text" in block) {
      const text = (block as { text: unknown }).text;
      if (typeof text === "string") parts.push(text);
    }
  }
  return parts.join("\n").trim();
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function draw(): void {
  drawAll({ ...state, problems: [...notes, ...state.problems] }, exporting);
  const link = state.export !== null ? httpUrl(state.export.browserLink) : null;
  const open = button("open-project");
  open.hidden = link === null || app.getHostCapabilities()?.openLinks === undefined;
  for (const id of ["export", "export-fresh"]) button(id).disabled = exporting || handingOff;
  button("handoff").disabled =
    exporting || handingOff || state.timeline === null || !state.timeline.readyForExport;
  button("export-fresh").hidden = state.export === null;
}

/**
 * Keeps the poster and playable URL of the render the new answer is about: `export`
 * results carry neither (they come with `studio_state`).
 */
function takeExport(next: ExportState): void {
  const previous = state.export;
  if (previous !== null && previous.renderId === next.renderId) {
    if (next.poster === null) next.poster = previous.poster;
    if (next.playableUrl === undefined) next.playableUrl = previous.playableUrl;
  }
  state.export = next;
}

function needsPolling(): boolean {
  return exporting || state.running.length > 0;
}

function schedulePoll(): void {
  if (pollTimer !== null || closed || !needsPolling()) return;
  pollTimer = setTimeout(() => {
    pollTimer = null;
    if (needsPolling()) void refresh();
  }, POLL_MS);
}

async function loadState(): Promise<void> {
  const result: ToolAnswer = await app.callServerTool({ name: "studio_state", arguments: {} });
  if (result.isError) {
    state.problems = [textOf(result) || "The studio could not read the project."];
    return;
  }
  const next = readStudioState(result.structuredContent);
  if (next === null) {
    state.problems = ["The server answered studio_state in a form this view does not know."];
    return;
  }
  state.timeline = next.timeline;
  state.credits = next.credits;
  state.running = next.running;
  state.problems = next.problems;
  if (next.export !== null) takeExport(next.export);
  else if (!exporting) state.export = null;
}

/** One `studio_state` call at a time; a request during one makes exactly one more. */
function refresh(): Promise<void> {
  if (refreshing !== null) {
    refreshAgain = true;
    return refreshing;
  }
  refreshing = (async () => {
    do {
      refreshAgain = false;
      try {
        await loadState();
      } catch (err) {
        state.problems = [`Could not reach the server: ${errorText(err)}`];
      }
      draw();
    } while (refreshAgain && !closed);
    refreshing = null;
    if (!exporting) say(state.running.length > 0 ? "Work in progress…" : "Up to date.");
    schedulePoll();
  })();
  return refreshing;
}

async function runExport(fresh: boolean): Promise<void> {
  if (exporting) return;
  exporting = true;
  notes = [];
  say(fresh ? "Rendering again…" : "Exporting…");
  draw();
  schedulePoll();
  let args: Record<string, unknown> = fresh ? { fresh: true } : {};
  try {
    for (let round = 1; !closed; round++) {
      if (round > MAX_EXPORT_ROUNDS) {
        notes = ["The render is taking unusually long; it goes on. Press Export to keep waiting."];
        break;
      }
      const result: ToolAnswer = await app.callServerTool({ name: "export", arguments: args });
      if (result.isError) {
        notes = [textOf(result) || "The export failed."];
        break;
      }
      const answer = readExport(result.structuredContent);
      if (answer === null) {
        notes = ["The server answered export in a form this view does not know."];
        break;
      }
      takeExport(answer);
      // The render's own progress shows at once, not only when studio_state is read next.
      state.running = state.running.filter((work) => work.kind !== "render");
      if (answer.status === "rendering") {
        state.running.push({
          kind: "render",
          phase: "rendering",
          percent: answer.progressPercent,
          elapsedSeconds: answer.elapsedSeconds,
        });
      }
      draw();
      if (answer.status !== "rendering") break;
      say(`Rendering, ${answer.progressPercent ?? 0}%…`);
      args = {}; // keep waiting on the same render; never start a second one
    }
  } catch (err) {
    notes = [`Export failed: ${errorText(err)}`];
  } finally {
    exporting = false;
    draw();
  }
  await refresh(); // the poster, the credits and the timeline after the render
}

/** A hand-off's answer (the folder, how to open it, what did not carry over), shown whole. */
function showHandoff(text: string): void {
  const shown = document.getElementById("handoff-answer");
  if (shown === null) return;
  shown.textContent = text;
  shown.hidden = text === "";
}

/** Hands the timeline to the chosen editor: `export` with a timeline format (no render). */
async function runHandoff(): Promise<void> {
  if (handingOff || exporting) return;
  const choice = document.getElementById("handoff-format");
  const format = choice instanceof HTMLSelectElement ? choice.value : "fcpxml";
  handingOff = true;
  notes = [];
  showHandoff("");
  say("Handing the timeline to the editor…");
  draw();
  try {
    const result: ToolAnswer = await app.callServerTool({ name: "export", arguments: { format } });
    const text = textOf(result);
    if (result.isError) notes = [text || "The hand-off failed."];
    else showHandoff(text);
    say(result.isError ? "The hand-off failed." : "Handed off.");
  } catch (err) {
    notes = [`Hand-off failed: ${errorText(err)}`];
  } finally {
    handingOff = false;
    draw();
  }
}

function onToolResult(result: ToolAnswer): void {
  if (result.isError) {
    notes = [textOf(result) || "The tool call failed."];
    draw();
    return;
  }
  notes = [];
  const data = result.structuredContent;
  const tool = app.getHostContext()?.toolInfo?.tool.name;
  if ((tool === "export" || tool === undefined) && isHandoff(data)) {
    showHandoff(textOf(result)); // a folder for an editor: no video to show
    draw();
    return;
  }
  const studio = tool === "studio_state" || tool === undefined ? readStudioState(data) : null;
  const exported = tool === "export" || tool === undefined ? readExport(data) : null;
  const timeline = tool === "timeline" || tool === undefined ? readTimeline(data) : null;
  if (studio !== null) {
    Object.assign(state, studio);
    draw();
    schedulePoll();
  } else if (exported !== null) {
    takeExport(exported);
    draw();
    void refresh(); // the poster comes with studio_state
  } else if (timeline !== null) {
    state.timeline = timeline;
    draw();
  } else {
    void refresh(); // e.g. `generate` changed the timeline
  }
}

function applyContext(context: McpUiHostContext | undefined): void {
  if (context === undefined) return;
  if (context.theme !== undefined) applyDocumentTheme(context.theme);
  if (context.styles?.variables !== undefined) applyHostStyleVariables(context.styles.variables);
  const root = document.documentElement.style;
  const box = context.containerDimensions;
  if (box !== undefined) {
    root.maxHeight = "maxHeight" in box && box.maxHeight !== undefined ? `${box.maxHeight}px` : "";
    root.height = "height" in box ? `${box.height}px` : "";
  }
  const insets = context.safeAreaInsets;
  if (insets !== undefined) {
    root.padding = `${insets.top}px ${insets.right}px ${insets.bottom}px ${insets.left}px`;
  }
}

async function openProject(): Promise<void> {
  const link = state.export !== null ? httpUrl(state.export.browserLink) : null;
  if (link === null) return;
  const answer = await app.openLink({ url: link });
  if (answer.isError) {
    notes = [`The host did not open the link; it is ${link}`];
    draw();
  }
}

// Handlers first, so nothing the host sends right after the handshake is missed.
app.addEventListener("toolresult", onToolResult);
app.addEventListener("toolcancelled", (params) => {
  notes = [`The tool call was cancelled${params.reason ? `: ${params.reason}` : "."}`];
  draw();
});
app.addEventListener("hostcontextchanged", () => applyContext(app.getHostContext()));
app.onteardown = () => {
  closed = true;
  if (pollTimer !== null) clearTimeout(pollTimer);
  return {};
};

button("refresh").addEventListener("click", () => {
  notes = [];
  say("Refreshing…");
  void refresh();
});
button("export").addEventListener("click", () => void runExport(false));
button("export-fresh").addEventListener("click", () => void runExport(true));
button("open-project").addEventListener("click", () => void openProject());
button("handoff").addEventListener("click", () => void runHandoff());

draw();
app
  .connect(new PostMessageTransport(window.parent, window.parent))
  .then(() => {
    applyContext(app.getHostContext());
    draw();
    return refresh();
  })
  .catch((err: unknown) => say(`Could not connect to the host: ${errorText(err)}`));
