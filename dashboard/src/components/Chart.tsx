// A uPlot time-series chart that follows its container's width and keeps its series set in
// step with the data (a new backend or stage appearing rebuilds the chart).

import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { ChartData } from '../metrics';

const COLORS = ['#2563eb', '#d97706', '#059669', '#dc2626', '#7c3aed', '#0891b2', '#db2777', '#65a30d'];
const HEIGHT_PX = 220;

interface Props {
  id: string;
  title: string;
  unit: string;
  data: ChartData;
  /** Formats a y value for the legend and axis. */
  format?: (v: number) => string;
  /** Counts: whole-number ticks from 0. */
  integer?: boolean;
}

/** Tick steps of a count axis (uPlot picks the first that fits). */
const INTEGER_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];

export function Chart({ id, title, unit, data, format, integer }: Props) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const labelsKey = data.labels.join('\u0000');
  const fmt = format ?? ((v: number) => v.toFixed(2));

  // (Re)build when the series set changes.
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const opts: uPlot.Options = {
      width: Math.max(el.clientWidth, 200),
      height: HEIGHT_PX,
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: integer ? { range: (_u, _min, max) => [0, Math.max(1, Math.ceil(max))] } : {} },
      axes: [
        {},
        {
          label: unit,
          // Wide enough for the longest tick label ("$0.000150") and the axis title.
          size: (_u, values) => 34 + 7 * Math.max(3, ...(values ?? []).map((v) => String(v).length)),
          values: (_u, vals) => vals.map((v) => fmt(v)),
          ...(integer ? { incrs: INTEGER_STEPS } : {}),
        },
      ],
      series: [
        {},
        ...data.labels.map((label, i) => ({
          label,
          stroke: COLORS[i % COLORS.length],
          width: 2,
          spanGaps: false,
          value: (_u: uPlot, v: number | null) => (v === null ? '—' : fmt(v)),
        })),
      ],
    };
    const u = new uPlot(opts, data.data as uPlot.AlignedData, el);
    plot.current = u;
    const resize = new ResizeObserver(() => u.setSize({ width: Math.max(el.clientWidth, 200), height: HEIGHT_PX }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [labelsKey, unit, integer]);

  // New points: update in place.
  useEffect(() => {
    plot.current?.setData(data.data as uPlot.AlignedData);
  }, [data]);

  const points = data.data[0].length;
  return (
    <figure class="chart" id={id} data-points={points} data-series={data.labels.length}>
      <figcaption>
        {title}
        {data.labels.length === 0 && <span class="muted"> — no data yet</span>}
      </figcaption>
      <div ref={box} class="chart-box" role="img" aria-label={`${title}: ${data.labels.length} series, ${points} points`} />
    </figure>
  );
}
