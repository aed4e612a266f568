import { describe, expect, it } from 'vitest';
import { SseParser, queryString } from './api';
import { bytes, presetLabel, qcRow, seconds, signedPct, stateName, tierName, usd } from './format';

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

describe('qcRow', () => {
  const row = (name: string, measured: string, threshold: string) => qcRow({ name, measured, threshold });
  it('names each check and puts its unit on the measured value and the threshold', () => {
    expect(row('video_bitrate_bps', '6908354', '1000000..16000000')).toEqual({
      label: 'Video bitrate',
      measured: '6.91 Mb/s',
      threshold: '1.00–16.00 Mb/s',
    });
    expect(row('loudness_integrated_lufs', '-18.6', '-14.0 ± 3.0')).toEqual({
      label: 'Integrated loudness',
      measured: '−18.6 LUFS',
      threshold: '−14.0 ± 3.0 LUFS',
    });
    expect(row('longest_black_s', '0.00', '<= 2.00')).toEqual({
      label: 'Longest black segment',
      measured: '0.00 s',
      threshold: '≤ 2.00 s',
    });
    expect(row('resolution', '1920x1080', '1920x1080').measured).toBe('1920×1080 px');
    expect(row('ssim', '0.9812', '>= 0.9700').threshold).toBe('≥ 0.9700');
    expect(row('audio_sample_rate_hz', '48000', '48000').measured).toBe('48000 Hz');
  });
  it('leaves words alone', () => {
    expect(row('container', 'mov,mp4,m4a,3gp,3g2,mj2', 'mov,mp4,m4a,3gp,3g2,mj2').measured).toBe('mov,mp4,m4a,3gp,3g2,mj2');
    expect(row('true_peak_dbtp', 'not measured', '<= -1.0')).toEqual({
      label: 'True peak',
      measured: 'not measured',
      threshold: '≤ −1.0 dBTP',
    });
    expect(row('audio_present', 'no audio stream', 'optional').threshold).toBe('optional');
  });
  it('reads the unit of an unknown check from its suffix', () => {
    expect(row('longest_noise_s', '1.50', '<= 1.00')).toEqual({
      label: 'Longest noise',
      measured: '1.50 s',
      threshold: '≤ 1.00 s',
    });
  });
});
