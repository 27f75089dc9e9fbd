/**
 * The data the studio receives from the nemo-mcp server, and tolerant readers for it.
 *
 * Shapes (times in seconds, volumes as fractions, 1.0 = 100%):
 * - `timeline` tool structuredContent: {@link Timeline}
 * - `export` tool structuredContent: {@link ExportState} (without `poster`)
 * - `studio_state` tool structuredContent: {@link StudioState}
 *
 * The readers take any JSON value and never throw: a field of the wrong type reads as
 * absent, so one odd value cannot blank the whole view.
 */

export type TrackKind = "video" | "audio" | "text" | "other";

export interface Segment {
  index: number;
  id: string | null;
  label: string | null;
  text: string | null;
  start: number;
  end: number | null;
  duration: number | null;
  volume: number | null;
}

export interface Track {
  index: number;
  id: string | null;
  kind: TrackKind;
  typeCode: number | null;
  name: string | null;
  label: string;
  volume: number | null;
  end: number | null;
  segments: Segment[];
}

export interface Timeline {
  summary: string;
  readyForExport: boolean;
  durationSeconds: number;
  tracks: Track[];
  running: string[];
  sessionId: string | null;
}

export type ExportStatus = "completed" | "rendering" | "failed";

export interface ExportState {
  status: ExportStatus;
  renderId: string;
  progressPercent: number | null;
  url: string | null;
  file: string | null;
  sizeBytes: number | null;
  browserLink: string | null;
  reused: boolean;
  elapsedSeconds: number | null;
  nextSteps: string[];
  /**
   * The URL the player may load (`studio_state` only): null when the video can only be
   * fetched with the account's token, undefined when not known yet (an `export` result).
   */
  playableUrl: string | null | undefined;
  poster: string | null;
}

export interface Credits {
  available: number;
  frozen: number;
  total: number;
  anonymous: boolean;
}

export interface RunningWork {
  kind: "generation" | "render" | "handoff";
  phase: string;
  percent: number | null;
  elapsedSeconds: number | null;
}

export interface StudioState {
  timeline: Timeline | null;
  credits: Credits | null;
  running: RunningWork[];
  export: ExportState | null;
  problems: string[];
}

type Json = Record<string, unknown>;

export function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function num(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function nonNegative(value: unknown): number | null {
  const n = num(value);
  return n !== null && n >= 0 ? n : null;
}

function str(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

function objects(value: unknown): Json[] {
  return Array.isArray(value) ? value.filter(isObject) : [];
}

const KINDS: readonly TrackKind[] = ["video", "audio", "text", "other"];
const KIND_LABELS: Record<TrackKind, string> = {
  video: "Video",
  audio: "Audio",
  text: "Text",
  other: "Track",
};

function readSegment(raw: Json, position: number): Segment {
  const start = nonNegative(raw.start) ?? 0;
  let end = nonNegative(raw.end);
  let duration = nonNegative(raw.duration);
  if (end === null && duration !== null) end = start + duration;
  if (end !== null && end < start) end = null;
  if (duration === null && end !== null) duration = end - start;
  return {
    index: num(raw.index) ?? position + 1,
    id: str(raw.id),
    label: str(raw.label),
    text: str(raw.text),
    start,
    end,
    duration,
    volume: nonNegative(raw.volume),
  };
}

function readTrack(raw: Json, position: number): Track {
  const kind = KINDS.find((k) => k === raw.kind) ?? "other";
  const name = str(raw.name);
  return {
    index: num(raw.index) ?? position + 1,
    id: str(raw.id),
    kind,
    typeCode: num(raw.type_code),
    name,
    label: str(raw.label) ?? name ?? KIND_LABELS[kind],
    volume: nonNegative(raw.volume),
    end: nonNegative(raw.end),
    segments: objects(raw.segments).map(readSegment),
  };
}

/** The `timeline` tool's structuredContent, or null when `value` is not one. */
export function readTimeline(value: unknown): Timeline | null {
  if (!isObject(value) || !Array.isArray(value.tracks)) return null;
  return {
    summary: str(value.summary) ?? "",
    readyForExport: value.ready_for_export === true,
    durationSeconds: nonNegative(value.duration_seconds) ?? 0,
    tracks: objects(value.tracks).map(readTrack),
    running: strings(value.running),
    sessionId: str(value.session_id),
  };
}

const STATUSES: readonly ExportStatus[] = ["completed", "rendering", "failed"];

/**
 * The `export` tool's structuredContent (plus `playable_url` and `poster` in studio_state),
 * or null.
 */
export function readExport(value: unknown): ExportState | null {
  if (!isObject(value) || isHandoff(value)) return null;
  const status = STATUSES.find((s) => s === value.status);
  const renderId = str(value.render_id);
  if (status === undefined || renderId === null) return null;
  return {
    status,
    renderId,
    progressPercent: num(value.progress_percent),
    url: str(value.url),
    file: str(value.file),
    sizeBytes: nonNegative(value.size_bytes),
    browserLink: str(value.browser_link),
    reused: value.reused === true,
    elapsedSeconds: nonNegative(value.elapsed_seconds),
    nextSteps: strings(value.next_steps),
    playableUrl: "playable_url" in value ? str(value.playable_url) : undefined,
    poster: str(value.poster),
  };
}

/** Whether an `export` result is a hand-off to an editor (a folder, no video). */
export function isHandoff(value: unknown): boolean {
  return isObject(value) && typeof value.folder === "string";
}

function readCredits(value: unknown): Credits | null {
  if (!isObject(value)) return null;
  const available = num(value.available);
  const frozen = num(value.frozen) ?? 0;
  if (available === null) return null;
  return {
    available,
    frozen,
    total: num(value.total) ?? available + frozen,
    anonymous: value.anonymous === true,
  };
}

function readRunning(raw: Json): RunningWork {
  return {
    kind: raw.kind === "render" || raw.kind === "handoff" ? raw.kind : "generation",
    phase: str(raw.phase) ?? "",
    percent: num(raw.percent),
    elapsedSeconds: nonNegative(raw.elapsed_seconds),
  };
}

/** The `studio_state` tool's structuredContent, or null when `value` is not one. */
export function readStudioState(value: unknown): StudioState | null {
  if (!isObject(value) || !("timeline" in value) || !Array.isArray(value.problems)) return null;
  return {
    timeline: readTimeline(value.timeline),
    credits: readCredits(value.credits),
    running: objects(value.running).map(readRunning),
    export: readExport(value.export),
    problems: strings(value.problems),
  };
}

/** The URL when it is an absolute http(s) URL, else null (a player plays nothing else). */
export function httpUrl(value: string | null): string | null {
  if (value === null) return null;
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

const POSTER = /^data:image\/(?:jpeg|png|webp);base64,[A-Za-z0-9+/]+={0,2}$/;

/** The poster when it is an inline base64 image, else null (the view loads nothing else). */
export function posterUri(value: string | null): string | null {
  return value !== null && POSTER.test(value) ? value : null;
}
