import { describe, expect, it } from 'vitest';
import { activeJobs, appendSamples, costPerMinute, estimateRatio, metricsSocketUrl, series, type Sample } from './metrics';

const sample = (t: number, cost: Sample['cost'] = []): Sample => ({
  t_unix_ms: t * 1000,
  jobs_by_state: { queued: 1, succeeded: 4 },
  cost,
  frames_per_s: {},
  cpu_busy: 0.5,
  gpu_busy: null,
});

describe('metrics', () => {
  it('lines up series that appear later with nulls before them', () => {
    const c = { backend: 'local', tier: 'TIER_ECONOMY', usd_per_min: 0.2, actual_usd_total: 1, estimated_usd_total: 0.8, actual_over_estimate: 1.25 };
    const s = [sample(1), sample(2, [c])];
    expect(series(s, costPerMinute)).toEqual({ labels: ['local · Economy'], data: [[1, 2], [null, 0.2]] });
    expect(series(s, estimateRatio).data[1]).toEqual([null, 1.25]);
    expect(series(s, activeJobs).labels).toEqual(['generating', 'processing', 'queued', 'validating']);
  });
  it('keeps history then appends, bounded', () => {
    let s = appendSamples([], { type: 'history', interval_ms: 1000, samples: [sample(1)] });
    s = appendSamples(s, { type: 'sample', sample: sample(2) });
    expect(s.map((x) => x.t_unix_ms)).toEqual([1000, 2000]);
    const many = Array.from({ length: 700 }, (_, i) => sample(i));
    expect(appendSamples([], { type: 'history', interval_ms: 1000, samples: many }).length).toBe(600);
  });
  it('derives the socket URL from the page', () => {
    expect(metricsSocketUrl('http://127.0.0.1:9464/#/metrics')).toBe('ws://127.0.0.1:9464/ws/metrics');
    expect(metricsSocketUrl('https://node/aiprod/')).toBe('wss://node/aiprod/ws/metrics');
  });
});
