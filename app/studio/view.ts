/**
 * Drawing the studio from a {@link StudioState}: player, timeline, credits, running work.
 *
 * Every server string goes into the page as text (`textContent`, attributes), never as
 * markup. Positions are set through the CSSOM, which the view's CSP allows.
 */

import {
  type Credits,
  type ExportState,
  type RunningWork,
  type Segment,
  type StudioState,
  type Timeline,
  type Track,
  httpUrl,
  posterUri,
} from "./contract";
import { amount, bytes, percent, time, volume } from "./format";

type Child = Node | string | null | undefined | false;

/** An element with text children only; attributes are set as attributes, never parsed. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function byId<T extends HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (node === null) throw new Error(`the page has no #${id}`);
  return node as T;
}

// Player --------------------------------------------------------------------------------

export function drawPlayer(exp: ExportState | null, exporting: boolean): void {
  const video = byId<HTMLVideoElement>("player");
  const empty = byId<HTMLElement>("player-empty");
  const facts = byId<HTMLElement>("export-facts");
  // Only the URL the server says a player can load: never the token-only download route.
  const src =
    exp !== null && exp.status === "completed" ? httpUrl(exp.playableUrl ?? null) : null;
  const poster = exp !== null ? posterUri(exp.poster) : null;
  if (src === null) {
    if (video.hasAttribute("src")) {
      video.removeAttribute("src");
      video.load();
    }
  } else if (video.getAttribute("src") !== src) {
    video.setAttribute("src", src);
  }
  if (poster === null) video.removeAttribute("poster");
  else if (video.getAttribute("poster") !== poster) video.setAttribute("poster", poster);
  video.hidden = src === null && poster === null;
  empty.hidden = !video.hidden;
  empty.textContent = exporting
    ? "Rendering the video…"
    : exp?.status === "failed"
      ? "The last render failed. Export again to retry (exports are free)."
      : exp?.status !== "completed"
        ? "No video yet. Press Export to render the timeline."
        : exp.playableUrl === undefined
          ? "Loading the video…"
          : "The video is saved on this computer; its link needs your NemoVideo sign-in, " +
            "so it cannot play here.";

  const rows: [string, string][] = [];
  if (exp !== null) {
    const state =
      exp.status === "rendering" && exp.progressPercent !== null
        ? `rendering, ${percent(exp.progressPercent)}`
        : exp.status;
    rows.push(["Render", `${state}${exp.reused ? " (earlier export of this timeline)" : ""}`]);
    if (exp.file !== null) rows.push(["Saved as", exp.file]);
    if (exp.sizeBytes !== null) rows.push(["Size", bytes(exp.sizeBytes)]);
  }
  facts.replaceChildren(
    ...rows.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]),
  );
  facts.hidden = rows.length === 0;
}

// Timeline ------------------------------------------------------------------------------

const TICK_STEPS = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600];

/** Seconds between ruler ticks: the smallest step giving at most eight intervals. */
export function tickStep(total: number): number {
  return TICK_STEPS.find((step) => total / step <= 8) ?? Math.ceil(total / 8 / 3600) * 3600;
}

/** The drawn length of the timeline: its duration, or the furthest segment if later. */
export function span(timeline: Timeline): number {
  let total = timeline.durationSeconds;
  for (const track of timeline.tracks) {
    for (const segment of track.segments) total = Math.max(total, segment.end ?? segment.start);
  }
  return total;
}

function segmentLabel(track: Track, segment: Segment): string {
  if (track.kind === "text" && segment.text) return `“${segment.text}”`;
  return segment.label || segment.text || `segment ${segment.index}`;
}

function drawSegment(track: Track, segment: Segment, total: number): HTMLElement {
  const open = segment.end === null;
  const end = segment.end ?? Math.max(track.end ?? 0, total);
  const level = segment.volume ?? track.volume;
  const label = segmentLabel(track, segment);
  const range = open ? `from ${time(segment.start)}` : `${time(segment.start)}–${time(end)}`;
  const block = el(
    "div",
    {
      class: open ? "segment open" : "segment",
      "data-index": String(segment.index),
      title: `${label} (${range}${level !== null ? `, ${volume(level)}` : ""})`,
    },
    el("span", { class: "segment-label" }, label),
  );
  if (track.kind === "audio" && level !== null) {
    const meter = el("span", { class: "volume-meter" });
    meter.style.setProperty("--level", String(Math.min(level, 1)));
    block.append(el("span", { class: "segment-volume" }, meter, volume(level)));
  }
  block.style.left = `${(segment.start / total) * 100}%`;
  block.style.width = `${(Math.max(end - segment.start, 0) / total) * 100}%`;
  return block;
}

function drawRuler(total: number): HTMLElement {
  const ruler = el("div", { class: "ruler", "aria-hidden": "true" });
  const step = tickStep(total);
  for (let at = 0; at <= total + 1e-9; at += step) {
    // A tick in the last tenth is labelled on its left, so it stays inside the ruler.
    const tick = el("span", { class: at > total * 0.9 ? "tick end" : "tick" }, time(at));
    tick.style.left = `${(at / total) * 100}%`;
    ruler.append(tick);
  }
  return ruler;
}

export function drawTimeline(timeline: Timeline | null): void {
  const duration = byId<HTMLElement>("timeline-duration");
  const ready = byId<HTMLElement>("timeline-ready");
  const summary = byId<HTMLElement>("timeline-summary");
  const tracks = byId<HTMLElement>("tracks");
  if (timeline === null) {
    duration.textContent = "";
    ready.textContent = "";
    ready.removeAttribute("data-ready");
    summary.textContent = "The timeline has not been read yet.";
    tracks.replaceChildren();
    return;
  }
  const total = span(timeline);
  duration.textContent = time(timeline.durationSeconds);
  ready.dataset.ready = String(timeline.readyForExport);
  ready.textContent = timeline.readyForExport ? "Ready to export" : "Not ready to export";
  summary.textContent = timeline.summary;
  if (timeline.tracks.length === 0) {
    tracks.replaceChildren(el("li", { class: "no-tracks" }, "No tracks yet."));
    return;
  }
  const rows: HTMLElement[] = [];
  if (total > 0) rows.push(el("li", { class: "ruler-row" }, el("span"), drawRuler(total)));
  for (const track of timeline.tracks) {
    const lane = el("div", { class: "lane" });
    if (total > 0) lane.append(...track.segments.map((s) => drawSegment(track, s, total)));
    const facts = [
      track.label.toLowerCase() === track.kind ? "" : track.kind,
      track.volume !== null ? volume(track.volume) : "",
    ].filter(Boolean);
    rows.push(
      el(
        "li",
        { class: "track", "data-kind": track.kind, "data-index": String(track.index) },
        el(
          "span",
          { class: "track-label", title: `${track.label} (${track.kind})` },
          el("span", { class: "track-name" }, track.label),
          facts.length > 0 ? el("span", { class: "track-kind" }, facts.join(" · ")) : null,
        ),
        lane,
      ),
    );
  }
  tracks.replaceChildren(...rows);
}

// Credits, running work, problems ------------------------------------------------------

export function drawCredits(credits: Credits | null): void {
  const list = byId<HTMLElement>("credits");
  if (credits === null) {
    list.replaceChildren(el("dd", { class: "muted" }, "unknown"));
    return;
  }
  const rows: [string, string, number][] = [
    ["available", "Available", credits.available],
    ["frozen", "Frozen", credits.frozen],
    ["total", "Total", credits.total],
  ];
  list.replaceChildren(
    ...rows.flatMap(([field, name, value]) => [
      el("dt", {}, name),
      el("dd", { "data-field": field }, amount(value)),
    ]),
  );
  if (credits.anonymous) list.append(el("dd", { class: "muted note" }, "free anonymous account"));
}

const WORK_LABELS: Record<RunningWork["kind"], string> = {
  generation: "Generation",
  render: "Render",
  handoff: "Hand-off",
};

export function drawRunning(running: RunningWork[], fallback: string[]): void {
  const list = byId<HTMLElement>("running");
  const items: HTMLElement[] = running.map((work) => {
    const bar = el("progress", { max: "100" });
    if (work.percent !== null) bar.value = Math.min(Math.max(work.percent, 0), 100);
    return el(
      "li",
      { "data-kind": work.kind },
      el("span", { class: "work-kind" }, WORK_LABELS[work.kind]),
      el("span", { class: "work-phase" }, work.phase || "working"),
      bar,
      work.percent !== null ? el("span", { class: "work-percent" }, percent(work.percent)) : null,
      work.elapsedSeconds !== null
        ? el("span", { class: "muted" }, time(work.elapsedSeconds))
        : null,
    );
  });
  if (items.length === 0) {
    items.push(...fallback.map((line) => el("li", {}, el("span", { class: "work-phase" }, line))));
  }
  list.replaceChildren(...items);
  byId<HTMLElement>("running-none").hidden = items.length > 0;
}

export function drawProblems(problems: string[]): void {
  const list = byId<HTMLElement>("problems");
  list.replaceChildren(...problems.map((p) => el("li", {}, p)));
  list.hidden = problems.length === 0;
}

export function drawAll(state: StudioState, exporting: boolean): void {
  drawPlayer(state.export, exporting);
  drawTimeline(state.timeline);
  drawCredits(state.credits);
  drawRunning(state.running, state.timeline?.running ?? []);
  drawProblems(state.problems);
}
