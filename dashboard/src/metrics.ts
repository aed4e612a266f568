// The live metrics stream (/ws/metrics) and its shaping into chart series. The daemon sends
// one "history" message (the last minutes) and then one "sample" message a second.

import { tierName } from './format';

export interface CostSeries {
  backend: string;
  tier: string;
  usd_per_min: number;
  actual_usd_total: number;
  estimated_usd_total: number;
  actual_over_estimate: number | null;
}

export interface Sample {
  t_unix_ms: number;
  jobs_by_state: Record<string, number>;
  cost: CostSeries[];
  frames_per_s: Record<string, number>;
  cpu_busy: number | null;
  gpu_busy: number | null;
}

export type Message = { type: 'history'; interval_ms: number; samples: Sample[] } | { type: 'sample'; sample: Sample };

/** Series for one chart: x in seconds (uPlot's time unit), one y array per label. */
export interface ChartData {
  labels: string[];
  data: [number[], ...(number | null)[][]];
}

/** Longest history a page keeps (10 min at 1 Hz). */
export const MAX_SAMPLES = 600;

export function appendSamples(samples: Sample[], msg: Message): Sample[] {
  const next = msg.type === 'history' ? msg.samples : [...samples, msg.sample];
  return next.length > MAX_SAMPLES ? next.slice(next.length - MAX_SAMPLES) : next;
}

/** One line per key that appears in any sample; null where a sample lacks it. */
export function series(samples: Sample[], pick: (s: Sample) => Record<string, number | null>): ChartData {
  const picked = samples.map(pick);
  const labels = [...new Set(picked.flatMap((p) => Object.keys(p)))].sort();
  const xs = samples.map((s) => s.t_unix_ms / 1000);
  const ys = labels.map((l) => picked.map((p) => (l in p ? p[l] : null)));
  return { labels, data: [xs, ...ys] };
}

const costKey = (c: CostSeries) => `${c.backend} · ${tierName(c.tier)}`;

export const costPerMinute = (s: Sample) => Object.fromEntries(s.cost.map((c) => [costKey(c), c.usd_per_min]));

/** actual / estimated per backend and tier (1 = the estimates were exact). */
export const estimateRatio = (s: Sample) =>
  Object.fromEntries(s.cost.filter((c) => c.actual_over_estimate !== null).map((c) => [costKey(c), c.actual_over_estimate]));

/** Jobs in the non-final states (final states only grow; they are shown as totals). */
export const activeJobs = (s: Sample) =>
  Object.fromEntries(['queued', 'generating', 'processing', 'validating'].map((k) => [k, s.jobs_by_state[k] ?? 0]));

export const framesPerSecond = (s: Sample) => ({ ...s.frames_per_s });

export const busy = (s: Sample): Record<string, number | null> => {
  const out: Record<string, number | null> = {};
  if (s.cpu_busy !== null) out.cpu = s.cpu_busy * 100;
  if (s.gpu_busy !== null) out.gpu = s.gpu_busy * 100;
  return out;
};

/** The daemon's WebSocket URL, next to the page. */
export function metricsSocketUrl(page: string): string {
  const u = new URL('ws/metrics', page);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.toString();
}
