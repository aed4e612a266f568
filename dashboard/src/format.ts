// Display formatting. Money arrives as integer micro-USD (strings on the wire); it is shown,
// never summed in floating point here: totals come from the daemon.

import type { Int64, JobState, Tier } from './api';

/**
 * "$1,234.50" from $100, "$0.0123" from a cent, "$0.000288" (exact micro-USD) below: a local
 * job costs fractions of a cent, and its estimate and actual must still read differently.
 */
export function usd(micros: Int64 | number): string {
  return usdAmount(Number(micros) / 1e6);
}

/** `usd` of an amount in dollars (chart values, which are rates and sums of counters). */
export function usdAmount(v: number): string {
  if (!Number.isFinite(v)) return '—';
  const a = Math.abs(v);
  const digits = a >= 100 ? 2 : a >= 0.01 ? 4 : 6;
  const s = Math.abs(v).toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return `${v < 0 ? '−' : ''}$${s}`;
}

/** "+12.5%" / "−3.0%"; `ratio` is a fraction (0.125). */
export function signedPct(ratio: number): string {
  if (!Number.isFinite(ratio)) return '—';
  const p = (ratio * 100).toFixed(1);
  return ratio > 0 ? `+${p}%` : ratio < 0 ? `−${p.slice(1)}%` : '0.0%';
}

export function pct(fraction: number, digits = 0): string {
  return Number.isFinite(fraction) ? `${(fraction * 100).toFixed(digits)}%` : '—';
}

/** "0.4 s", "12 s", "3 min 04 s", "1 h 02 min". */
export function seconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '—';
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.round(s)} s`;
  const total = Math.round(s);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  if (h > 0) return `${h} h ${String(m).padStart(2, '0')} min`;
  return `${m} min ${String(sec).padStart(2, '0')} s`;
}

export function bytes(n: Int64 | number): string {
  const v = Number(n);
  if (!Number.isFinite(v)) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let x = v;
  let i = 0;
  while (x >= 1000 && i < units.length - 1) {
    x /= 1000;
    i++;
  }
  return `${i === 0 ? x : x.toFixed(1)} ${units[i]}`;
}

/** "TIER_BALANCED" → "Balanced". */
export function tierName(t: Tier | string): string {
  const s = t.replace(/^TIER_/, '').toLowerCase();
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** "JOB_STATE_SUCCEEDED" → "succeeded". */
export function stateName(s: JobState | string): string {
  return s.replace(/^JOB_STATE_/, '').toLowerCase();
}

export function resolution(r?: { width: number; height: number }): string {
  return r ? `${r.width}×${r.height}` : '—';
}

export function dateTime(unixMs: Int64 | number): string {
  const d = new Date(Number(unixMs));
  return Number.isNaN(d.getTime()) ? '—' : d.toLocaleString();
}

/** "cost_weight" etc. preset names → labels: "best_quality" → "Best quality". */
export function presetLabel(name: string): string {
  const s = name.replace(/_/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** A validation check as the receipt's QC table shows it. */
export interface QcRow {
  label: string;
  measured: string;
  threshold: string;
}

/**
 * Label and unit of each QualitySpec check (quality/src/spec.rs names them; the suffix is the
 * unit). Unknown names are still shown: humanised, with the unit read from the suffix.
 */
const QC_CHECKS: Record<string, [string, string]> = {
  container: ['Container', ''],
  video_present: ['Video stream', ''],
  video_codec: ['Video codec', ''],
  resolution: ['Resolution', 'px'],
  fps: ['Frame rate', 'fps'],
  pixel_format: ['Pixel format', ''],
  video_bitrate_bps: ['Video bitrate', 'bit/s'],
  duration_s: ['Duration', 's'],
  audio_present: ['Audio stream', ''],
  audio_codec: ['Audio codec', ''],
  audio_sample_rate_hz: ['Audio sample rate', 'Hz'],
  audio_channels: ['Audio channels', ''],
  loudness_integrated_lufs: ['Integrated loudness', 'LUFS'],
  true_peak_dbtp: ['True peak', 'dBTP'],
  longest_black_s: ['Longest black segment', 's'],
  longest_frozen_s: ['Longest frozen segment', 's'],
  longest_silence_s: ['Longest silence', 's'],
  ssim: ['SSIM vs reference', ''],
  blur_mean: ['Blur (mean edge width)', 'px'],
};

const UNIT_SUFFIXES: [string, string][] = [
  ['_bps', 'bit/s'],
  ['_hz', 'Hz'],
  ['_lufs', 'LUFS'],
  ['_dbtp', 'dBTP'],
  ['_db', 'dB'],
  ['_s', 's'],
];

/** "Mb/s" with two decimals for every number in a bit/s value ("1000000..16000000"). */
function megabits(text: string): string {
  return text.replace(/\d+(\.\d+)?/g, (n) => (Number(n) / 1e6).toFixed(2));
}

/** Operators for reading: "<=" → "≤", ">=" → "≥", ".." → "–", a leading minus → "−". */
function readable(text: string): string {
  return text
    .replace(/<=/g, '≤')
    .replace(/>=/g, '≥')
    .replace(/(\d)\.\.(-?\d)/g, '$1–$2')
    .replace(/(^|[\s–])-(\d)/g, '$1−$2')
    .replace(/^(\d+)x(\d+)$/, '$1×$2');
}

/** The label of a check and its measured value and threshold with their unit. */
export function qcRow(check: { name: string; measured: string; threshold: string }): QcRow {
  let [label, unit] = QC_CHECKS[check.name] ?? ['', ''];
  if (!label) {
    const suffix = UNIT_SUFFIXES.find(([s]) => check.name.endsWith(s));
    const base = suffix ? check.name.slice(0, -suffix[0].length) : check.name;
    label = presetLabel(base);
    unit = suffix?.[1] ?? '';
  }
  const withUnit = (v: string): string => {
    const numeric = /\d/.test(v) && !/[a-wyz]/i.test(v.replace(/x/g, ''));
    if (!numeric || !unit) return readable(v);
    if (unit === 'bit/s') return `${readable(megabits(v))} Mb/s`;
    return `${readable(v)} ${unit}`;
  };
  return { label, measured: withUnit(check.measured), threshold: withUnit(check.threshold) };
}
