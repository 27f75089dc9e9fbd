/** How times, volumes, sizes and amounts read in the studio (the server's own wording). */

function trimmed(value: number, decimals: number): string {
  return value.toFixed(decimals).replace(/\.?0+$/, "");
}

/** `1.5s` below a minute, `1:05` from a minute, `1:02:05` from an hour. */
export function time(seconds: number): string {
  if (seconds < 60) return `${trimmed(seconds, 2)}s`;
  const whole = Math.round(seconds);
  const s = String(whole % 60).padStart(2, "0");
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) return `${minutes}:${s}`;
  return `${Math.floor(minutes / 60)}:${String(minutes % 60).padStart(2, "0")}:${s}`;
}

/** A volume fraction as a percentage: 0.35 -> `35%`. */
export function volume(fraction: number): string {
  return `${trimmed(fraction * 100, 1)}%`;
}

export function percent(value: number): string {
  return `${Math.round(value)}%`;
}

export function bytes(size: number): string {
  if (size >= 1_000_000) return `${trimmed(size / 1_000_000, 1)} MB`;
  if (size >= 1_000) return `${trimmed(size / 1_000, 1)} kB`;
  return `${size} B`;
}

export function amount(value: number): string {
  return trimmed(value, 1);
}
