// One job: live progress (WatchJob over Server-Sent Events), then its receipt — estimated next
// to actual for every cost line and stage — the probe of the output, the QC report of the
// validation stage (every check: measured, threshold, pass/fail) and the video itself.

import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, isFinal, playableVideo, watchJob, type Job, type Receipt, type ValidationReport } from '../api';
import { bytes, dateTime, pct, qcRow, resolution, seconds, signedPct, stateName, tierName, usd } from '../format';

const STEPS = ['queued', 'generating', 'processing', 'validating', 'done'] as const;

function stepIndex(job: Job): number {
  const s = stateName(job.state);
  const i = STEPS.indexOf(s as (typeof STEPS)[number]);
  return i >= 0 ? i : STEPS.length - 1;
}

export function JobView({ jobId }: { jobId: string }) {
  const [job, setJob] = useState<Job | null>(null);
  const [fps, setFps] = useState(0);
  const [receipt, setReceipt] = useState<Receipt | null>(null);
  const [error, setError] = useState('');

  // Follow the job until it is final; reconnect if the stream ends early.
  useEffect(() => {
    const abort = new AbortController();
    setJob(null);
    setReceipt(null);
    setError('');
    setFps(0);
    (async () => {
      while (!abort.signal.aborted) {
        let current: Job;
        try {
          current = await api.job(jobId);
        } catch (e) {
          setError(e instanceof Error ? e.message : String(e));
          return;
        }
        setJob(current);
        if (isFinal(current.state)) return;
        try {
          await watchJob(
            jobId,
            (ev) => {
              if (ev.job) setJob(ev.job);
              if (ev.frames_per_s > 0) setFps(ev.frames_per_s);
            },
            abort.signal,
          );
        } catch (e) {
          if (abort.signal.aborted) return;
          if (e instanceof ApiError && e.status < 500) {
            setError(e.message);
            return;
          }
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    return () => abort.abort();
  }, [jobId]);

  const final = job !== null && isFinal(job.state);
  useEffect(() => {
    if (!final) return;
    api.receipt(jobId).then(setReceipt, (e) => setError(e instanceof Error ? e.message : String(e)));
  }, [jobId, final]);

  if (!job) {
    return <section class="panel" aria-busy="true">{error ? <p role="alert" class="error">{error}</p> : <p>Loading job {jobId}…</p>}</section>;
  }
  const step = stepIndex(job);
  const running = !final;
  return (
    <section class="panel job" aria-labelledby="job-title" data-job-id={job.job_id} data-state={stateName(job.state)}>
      <h2 id="job-title">
        Job <code>{job.job_id.slice(0, 8)}</code> — {tierName(job.tier)} on {job.backend}, {job.profile}
      </h2>
      <p class="muted">
        “{job.prompt}” · {seconds(job.duration_s)} · created {dateTime(job.created_unix_ms)}
        {job.attempts > 1 && ` · attempt ${job.attempts}`}
      </p>
      <ol class="steps" aria-label="Job stages">
        {STEPS.map((s, i) => (
          <li class={i < step ? 'done' : i === step ? 'current' : ''} aria-current={i === step ? 'step' : undefined}>
            {i === STEPS.length - 1 && final ? stateName(job.state) : s}
          </li>
        ))}
      </ol>
      <div class="progress-row" aria-live="polite">
        <label for="job-progress">Progress</label>
        <progress id="job-progress" max={1} value={job.progress} />
        <span class="num" id="job-progress-text">{pct(job.progress)}</span>
        <span class="muted">
          stage: {job.stage}
          {running && fps > 0 && ` · ${fps.toFixed(1)} frames/s`}
        </span>
        {running && (
          <button type="button" class="secondary" onClick={() => api.cancel(jobId).then(setJob, (e) => setError(String(e.message ?? e)))}>
            Cancel
          </button>
        )}
      </div>
      {job.error && (
        <p role="alert" class="error">
          {job.error}
        </p>
      )}
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      {receipt && <ReceiptView receipt={receipt} />}
      {receipt && job.state === 'JOB_STATE_SUCCEEDED' && <Video jobId={jobId} />}
    </section>
  );
}

function Video({ jobId }: { jobId: string }) {
  const [src, setSrc] = useState<string | null>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    let blob: string | null = null;
    playableVideo(jobId).then(
      (v) => {
        if (v.blob) blob = v.url;
        setSrc(v.url);
      },
      (e) => setError(e instanceof Error ? e.message : String(e)),
    );
    return () => {
      if (blob) URL.revokeObjectURL(blob);
    };
  }, [jobId]);
  if (error) return <p role="alert" class="error">Video: {error}</p>;
  if (!src) return null;
  return (
    <figure class="video">
      <video id="job-video" controls preload="metadata" playsInline src={src} aria-label="Output video" />
      <figcaption>
        <a href={src} download={`aiprod-${jobId}.mp4`}>
          Download
        </a>
      </figcaption>
    </figure>
  );
}

export function ReceiptView({ receipt: r }: { receipt: Receipt }) {
  const est = Number(r.estimated_total_usd_micros);
  const act = Number(r.actual_total_usd_micros);
  return (
    <div class="receipt" id="receipt" aria-labelledby="receipt-title">
      <h3 id="receipt-title">Receipt</h3>
      <p>
        {tierName(r.tier)} · {r.backend}/{r.model} · {r.profile} · <strong>{stateName(r.final_state)}</strong>
      </p>
      <div class="table-scroll">
        <table class="costs" aria-label="Costs, estimated and actual">
          <thead>
            <tr>
              <th scope="col">Item</th>
              <th scope="col" class="num">Estimated</th>
              <th scope="col" class="num">Actual</th>
              <th scope="col" class="num">Difference</th>
            </tr>
          </thead>
          <tbody>
            {r.lines.map((l) => {
              const e = Number(l.estimated_usd_micros);
              const a = Number(l.actual_usd_micros);
              return (
                <tr title={l.basis}>
                  <th scope="row">{l.item}</th>
                  <td class="num">{usd(e)}</td>
                  <td class="num actual">{usd(a)}</td>
                  <td class="num">{e > 0 ? signedPct((a - e) / e) : usd(a - e)}</td>
                </tr>
              );
            })}
          </tbody>
          <tfoot>
            <tr>
              <th scope="row">Total</th>
              <td class="num" id="receipt-estimated-total">{usd(est)}</td>
              <td class="num actual" id="receipt-actual-total">{usd(act)}</td>
              <td class="num">{signedPct(r.cost_estimate_error)}</td>
            </tr>
          </tfoot>
        </table>
      </div>
      <div class="table-scroll">
        <table aria-label="Time, estimated and actual">
          <thead>
            <tr>
              <th scope="col">Stage</th>
              <th scope="col" class="num">Estimated</th>
              <th scope="col" class="num">Actual</th>
            </tr>
          </thead>
          <tbody>
            {r.stages.map((s) => (
              <tr>
                <th scope="row">{s.stage}</th>
                <td class="num">{seconds(s.estimated_s)}</td>
                <td class="num">{seconds(s.actual_s)}</td>
              </tr>
            ))}
          </tbody>
          <tfoot>
            <tr>
              <th scope="row">Total</th>
              <td class="num">{seconds(r.estimated_time_s)}</td>
              <td class="num">{seconds(r.actual_time_s)}</td>
            </tr>
          </tfoot>
        </table>
      </div>
      <h4>Quality</h4>
      <p>Expected quality score: {pct(r.expected_quality)}{r.error ? '' : r.probe ? ' · output validated against the profile' : ''}</p>
      {r.error && <p class="error">{r.error}</p>}
      {r.probe && (
        <dl class="probe" aria-label="Probe of the output">
          <dt>Container</dt>
          <dd>{r.probe.container}</dd>
          <dt>Video</dt>
          <dd>
            {r.probe.video_codec} {resolution(r.probe)} {r.probe.pixel_format} @ {r.probe.fps.toFixed(2)} fps
          </dd>
          <dt>Duration</dt>
          <dd>{seconds(r.probe.duration_s)}</dd>
          <dt>Bitrate</dt>
          <dd>{(Number(r.probe.bitrate_bps) / 1e6).toFixed(2)} Mb/s</dd>
          <dt>Audio</dt>
          <dd>{r.probe.audio_codec ? `${r.probe.audio_codec} ${r.probe.audio_sample_rate_hz} Hz × ${r.probe.audio_channels}` : 'none'}</dd>
          <dt>Size</dt>
          <dd>{bytes(r.probe.size_bytes)}</dd>
        </dl>
      )}
      {r.validation && <QcTable report={r.validation} backend={r.backend} />}
    </div>
  );
}

/** The VALIDATING stage's report: every check with its measured value, threshold and verdict
 * (a word and a symbol, not colour alone). */
export function QcTable({ report, backend }: { report: ValidationReport; backend: string }) {
  const passed = report.checks.filter((c) => c.pass).length;
  return (
    <div class="qc" id="qc-report" data-passed={String(report.passed)}>
      <table id="qc-table">
        <caption>
          Quality control: {passed} of {report.checks.length} checks passed
          {report.profile && ` (${report.profile}, ${tierName(report.tier)})`}
        </caption>
        <thead>
          <tr>
            <th scope="col">Check</th>
            <th scope="col">Measured</th>
            <th scope="col">Threshold</th>
            <th scope="col">Result</th>
          </tr>
        </thead>
        <tbody>
          {report.checks.map((c) => {
            const row = qcRow(c);
            return (
              <tr class={c.pass ? 'pass' : 'fail'} data-check={c.name}>
                <th scope="row">{row.label}</th>
                <td class="measured">{row.measured}</td>
                <td class="threshold">{row.threshold}</td>
                <td>
                  <span class={`verdict ${c.pass ? 'pass' : 'fail'}`}>
                    <span aria-hidden="true">{c.pass ? '✓ ' : '✗ '}</span>
                    {c.pass ? 'Pass' : 'Fail'}
                  </span>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {!report.passed && backend === 'local' && (
        <p class="muted note">
          The local backend renders synthetic test footage: only its format checks (container, codecs, size, rate,
          duration, audio layout) fail a job; its content checks are reported.
        </p>
      )}
    </div>
  );
}
