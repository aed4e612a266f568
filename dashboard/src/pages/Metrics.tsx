// Live metrics: the daemon pushes a sample a second over /ws/metrics (read from the same
// registry Prometheus scrapes); the charts keep the last ten minutes.

import { useEffect, useMemo, useState } from 'preact/hooks';
import { Chart } from '../components/Chart';
import { usd, usdAmount } from '../format';
import {
  activeJobs,
  appendSamples,
  busy,
  costPerMinute,
  estimateRatio,
  framesPerSecond,
  metricsSocketUrl,
  series,
  type Message,
  type Sample,
} from '../metrics';

type Conn = 'connecting' | 'live' | 'reconnecting';
const MAX_BACKOFF_MS = 10_000;

function useMetricsSocket(): { samples: Sample[]; conn: Conn } {
  const [samples, setSamples] = useState<Sample[]>([]);
  const [conn, setConn] = useState<Conn>('connecting');
  useEffect(() => {
    let ws: WebSocket | null = null;
    let closed = false;
    let backoff = 1000;
    let timer: number | undefined;
    const open = () => {
      ws = new WebSocket(metricsSocketUrl(location.href));
      ws.onopen = () => {
        backoff = 1000;
        setConn('live');
      };
      ws.onmessage = (ev) => {
        try {
          const msg = JSON.parse(String(ev.data)) as Message;
          setSamples((s) => appendSamples(s, msg));
        } catch {
          // a malformed message is dropped; the next sample is complete on its own
        }
      };
      ws.onclose = () => {
        if (closed) return;
        setConn('reconnecting');
        timer = window.setTimeout(open, backoff);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      };
    };
    open();
    return () => {
      closed = true;
      window.clearTimeout(timer);
      ws?.close();
    };
  }, []);
  return { samples, conn };
}

export function Metrics() {
  const { samples, conn } = useMetricsSocket();
  const last = samples[samples.length - 1];
  const charts = useMemo(
    () => ({
      cost: series(samples, costPerMinute),
      jobs: series(samples, activeJobs),
      fps: series(samples, framesPerSecond),
      busy: series(samples, busy),
      accuracy: series(samples, estimateRatio),
    }),
    [samples],
  );
  const spent = last ? last.cost.reduce((a, c) => a + c.actual_usd_total, 0) : 0;
  return (
    <section class="panel" aria-labelledby="metrics-title">
      <h2 id="metrics-title">
        Live metrics{' '}
        <span class={`conn ${conn}`} role="status" id="metrics-conn">
          {conn}
        </span>
      </h2>
      {last && (
        <div class="tiles" aria-label="Current values">
          <Tile label="Succeeded" value={String(last.jobs_by_state.succeeded ?? 0)} />
          <Tile label="Failed" value={String(last.jobs_by_state.failed ?? 0)} />
          <Tile label="Cancelled" value={String(last.jobs_by_state.cancelled ?? 0)} />
          <Tile label="Spent since start" value={usd(Math.round(spent * 1e6))} />
          <Tile label="CPU busy" value={last.cpu_busy === null ? '—' : `${(last.cpu_busy * 100).toFixed(0)}%`} />
          <Tile label="GPU busy" value={last.gpu_busy === null ? 'no GPU measured' : `${(last.gpu_busy * 100).toFixed(0)}%`} />
        </div>
      )}
      <div class="charts">
        <Chart id="chart-cost" title="Cost per minute by backend and tier" unit="USD/min" data={charts.cost} format={usdAmount} />
        <Chart id="chart-jobs" title="Jobs in progress by state" unit="jobs" data={charts.jobs} format={(v) => v.toFixed(0)} integer />
        <Chart id="chart-fps" title="Frames per second (last run of each stage)" unit="frames/s" data={charts.fps} format={(v) => v.toFixed(1)} />
        <Chart id="chart-busy" title="CPU / GPU busy" unit="%" data={charts.busy} format={(v) => `${v.toFixed(0)}%`} />
        <Chart id="chart-accuracy" title="Estimate accuracy (actual ÷ estimated cost)" unit="ratio" data={charts.accuracy} format={(v) => v.toFixed(2)} />
      </div>
    </section>
  );
}

function Tile({ label, value }: { label: string; value: string }) {
  return (
    <div class="tile">
      <span class="label">{label}</span>
      <span class="value">{value}</span>
    </div>
  );
}
