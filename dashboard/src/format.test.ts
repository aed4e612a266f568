import { describe, expect, it } from 'vitest';
import { SseParser, queryString } from './api';
import { bytes, presetLabel, seconds, signedPct, stateName, tierName, usd } from './format';

describe('format', () => {
  it('shows micro-USD with enough digits to compare estimates', () => {
    expect(usd('12345')).toBe('$0.0123');
    expect(usd(1_500_000)).toBe('$1.5000');
    expect(usd('123456789')).toBe('$123.46');
    expect(usd('-20000')).toBe('−$0.0200');
    expect(usd('288')).toBe('$0.000288');
    expect(usd(0)).toBe('$0.000000');
    expect(usd('x')).toBe('—');
  });
  it('signs percentages', () => {
    expect(signedPct(0.125)).toBe('+12.5%');
    expect(signedPct(-0.03)).toBe('−3.0%');
    expect(signedPct(0)).toBe('0.0%');
  });
  it('writes durations, sizes and names for people', () => {
    expect(seconds(0.44)).toBe('0.4 s');
    expect(seconds(184)).toBe('3 min 04 s');
    expect(seconds(3720)).toBe('1 h 02 min');
    expect(bytes('2500000')).toBe('2.5 MB');
    expect(tierName('TIER_BALANCED')).toBe('Balanced');
    expect(stateName('JOB_STATE_SUCCEEDED')).toBe('succeeded');
    expect(presetLabel('best_quality')).toBe('Best quality');
  });
});

describe('api helpers', () => {
  it('parses server-sent events split anywhere', () => {
    const p = new SseParser();
    expect(p.push('event: job\ndata: {"a"')).toEqual([]);
    expect(p.push(':1}\n\n: keep-alive\n\nevent: job\r\ndata: 2\r\n\r\n')).toEqual([
      { event: 'job', data: '{"a":1}' },
      { event: 'job', data: '2' },
    ]);
  });
  it('builds query strings from set fields only', () => {
    expect(queryString({ states: 'failed', user_id: '', page_size: 0, page_token: undefined })).toBe('?states=failed');
    expect(queryString({})).toBe('');
  });
});
