// The planner: a prompt and its constraints → three priced plans side by side → Generate →
// the job's live progress and receipt, below the cards.

import { useEffect, useState } from 'preact/hooks';
import { api, type Constraints, type Options, type PlanOption, type PlanRequest, type PlanResponse } from '../api';
import { bytes, pct, presetLabel, resolution, seconds, tierName, usd } from '../format';
import { JobView } from './JobView';

function randomKey(): string {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** A number from an optional field: undefined when empty. */
function optionalNumber(s: string): number | undefined {
  const t = s.trim();
  return t === '' ? undefined : Number(t);
}

export function Planner({ options }: { options: Options | null }) {
  const [prompt, setPrompt] = useState('a red fox running through fresh snow at dawn');
  const [useCase, setUseCase] = useState('tiktok');
  const [profile, setProfile] = useState('');
  const [duration, setDuration] = useState('4');
  const [maxCost, setMaxCost] = useState('');
  const [minQuality, setMinQuality] = useState('');
  const [maxTime, setMaxTime] = useState('');
  const [preference, setPreference] = useState('balanced');
  const [plans, setPlans] = useState<PlanResponse | null>(null);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const [jobId, setJobId] = useState<string | null>(null);

  useEffect(() => {
    if (jobId) document.getElementById('job-title')?.scrollIntoView({ behavior: 'smooth', block: 'start' });
  }, [jobId]);

  async function plan(e: Event) {
    e.preventDefault();
    setError('');
    setBusy(true);
    const constraints: Constraints = {
      max_cost_usd: optionalNumber(maxCost),
      min_quality: optionalNumber(minQuality) === undefined ? undefined : Number(minQuality) / 100,
      max_time_s: optionalNumber(maxTime),
    };
    const preset = options?.preferences.find((p) => p.name === preference);
    const req: PlanRequest = {
      prompt,
      duration_s: Number(duration),
      use_case: useCase,
      profile,
      constraints,
      preferences: preset && { cost_weight: preset.cost_weight, quality_weight: preset.quality_weight, speed_weight: preset.speed_weight },
    };
    try {
      setPlans(await api.plan(req));
      setJobId(null);
    } catch (err) {
      setPlans(null);
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  }

  async function generate(p: PlanOption) {
    setError('');
    try {
      const job = await api.generate({ plan_id: p.plan_id, idempotency_key: randomKey() });
      setJobId(job.job_id);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  }

  return (
    <>
      <section class="panel" aria-labelledby="plan-title">
        <h2 id="plan-title">Plan a video</h2>
        <form class="plan-form" onSubmit={plan}>
          <div class="field wide">
            <label for="prompt">Prompt</label>
            <textarea id="prompt" rows={2} required value={prompt} onInput={(e) => setPrompt(e.currentTarget.value)} />
          </div>
          <div class="field">
            <label for="use-case">Use case</label>
            <input id="use-case" list="use-cases" value={useCase} placeholder="tiktok, youtube, tv spot…" onInput={(e) => setUseCase(e.currentTarget.value)} />
            <datalist id="use-cases">
              {options?.profiles.flatMap((p) => p.use_cases).map((u) => <option value={u} />)}
            </datalist>
          </div>
          <div class="field">
            <label for="profile">Profile</label>
            <select id="profile" value={profile} onChange={(e) => setProfile(e.currentTarget.value)}>
              <option value="">From the use case</option>
              {options?.profiles.map((p) => (
                <option value={p.name}>
                  {p.name} ({p.width}×{p.height})
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="duration">Duration (s)</label>
            <input id="duration" type="number" min="0.1" step="any" max={options?.max_duration_s} required value={duration} onInput={(e) => setDuration(e.currentTarget.value)} />
          </div>
          <div class="field">
            <label for="preference">Preference</label>
            <select id="preference" value={preference} onChange={(e) => setPreference(e.currentTarget.value)}>
              {(options?.preferences ?? [{ name: 'balanced' }]).map((p) => (
                <option value={p.name}>{presetLabel(p.name)}</option>
              ))}
            </select>
          </div>
          <fieldset class="constraints">
            <legend>Constraints (optional)</legend>
            <div class="field">
              <label for="max-cost">Max cost (USD)</label>
              <input id="max-cost" type="number" min="0" step="any" value={maxCost} onInput={(e) => setMaxCost(e.currentTarget.value)} />
            </div>
            <div class="field">
              <label for="min-quality">Min quality (%)</label>
              <input id="min-quality" type="number" min="0" max="100" step="any" value={minQuality} onInput={(e) => setMinQuality(e.currentTarget.value)} />
            </div>
            <div class="field">
              <label for="max-time">Max time (s)</label>
              <input id="max-time" type="number" min="0.1" step="any" value={maxTime} onInput={(e) => setMaxTime(e.currentTarget.value)} />
            </div>
          </fieldset>
          <div class="actions">
            <button type="submit" id="plan-button" disabled={busy}>
              {busy ? 'Planning…' : 'Plan'}
            </button>
          </div>
        </form>
        {error && (
          <p role="alert" class="error" id="plan-error">
            {error}
          </p>
        )}
      </section>
      {plans && <PlanCards plans={plans} onGenerate={generate} />}
      {jobId && <JobView jobId={jobId} />}
    </>
  );
}

function PlanCards({ plans, onGenerate }: { plans: PlanResponse; onGenerate: (p: PlanOption) => Promise<void> }) {
  return (
    <section class="panel" aria-labelledby="plans-title">
      <h2 id="plans-title">Plans for {plans.profile}</h2>
      <p class="muted">{plans.profile_reason}</p>
      {plans.rationale && !plans.recommended_plan_id && <p class="rationale">{plans.rationale}</p>}
      {plans.relaxations.length > 0 && (
        <div class="relaxations" role="note">
          No plan meets every constraint. To get one:
          <ul>
            {plans.relaxations.map((r) => (
              <li>{r}</li>
            ))}
          </ul>
        </div>
      )}
      <div class="cards">
        {plans.plans.map((p) => (
          <PlanCard
            plan={p}
            rationale={p.plan_id === plans.recommended_plan_id ? plans.rationale : null}
            onGenerate={onGenerate}
          />
        ))}
      </div>
    </section>
  );
}

interface CardProps {
  plan: PlanOption;
  /** Set on the recommended plan: why it was chosen. */
  rationale: string | null;
  onGenerate: (p: PlanOption) => Promise<void>;
}

function PlanCard({ plan: p, rationale, onGenerate }: CardProps) {
  const [sending, setSending] = useState(false);
  const recommended = rationale !== null;
  const id = `plan-${p.tier.toLowerCase()}`;
  const cls = ['card', p.feasible ? '' : 'infeasible', recommended ? 'recommended' : ''].join(' ');
  return (
    <article class={cls} id={id} aria-labelledby={`${id}-title`} aria-disabled={!p.feasible} data-tier={p.tier} data-feasible={p.feasible}>
      <header>
        <h3 id={`${id}-title`}>{tierName(p.tier)}</h3>
        {recommended && <span class="badge">Recommended</span>}
        {!p.feasible && <span class="badge grey">Infeasible</span>}
      </header>
      <p class="total">
        <span class="num">{usd(p.total_cost_usd_micros)}</span>
        <span class="muted"> · {seconds(p.estimated_time_s)} · quality {pct(p.expected_quality)}</span>
      </p>
      {recommended && rationale && (
        <p class="rationale" id="rationale">
          {rationale}
        </p>
      )}
      <dl class="facts">
        <dt>Backend</dt>
        <dd>
          {p.backend} / {p.model}
        </dd>
        <dt>Resolution</dt>
        <dd>
          {resolution(p.generated_resolution)} → {resolution(p.output_resolution)} ({p.profile})
        </dd>
        <dt>Output</dt>
        <dd>≈ {bytes(p.estimated_output_bytes)}</dd>
      </dl>
      {!p.feasible && (
        <ul class="reasons" aria-label="Why this plan is infeasible">
          {p.infeasible_reasons.map((r) => (
            <li>{r}</li>
          ))}
        </ul>
      )}
      <details>
        <summary>Steps ({p.steps.length})</summary>
        <ol class="plan-steps">
          {p.steps.map((s) => (
            <li>
              <strong>{s.kind}</strong>
              {s.scale > 1 && ` ×${s.scale}`} — {s.engine}
              {s.detail && <span class="muted"> ({s.detail})</span>}
              <span class="muted">
                {' '}
                · {seconds(s.estimated_time_s)} · {usd(s.estimated_cost_usd_micros)}
              </span>
            </li>
          ))}
        </ol>
      </details>
      <table class="breakdown" aria-label={`${tierName(p.tier)} cost breakdown`}>
        <tbody>
          {p.cost_breakdown.map((c) => (
            <tr title={c.basis}>
              <th scope="row">{c.item}</th>
              <td class="num">{usd(c.usd_micros)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <button
        type="button"
        class="generate"
        disabled={!p.feasible || sending}
        onClick={async () => {
          setSending(true);
          try {
            await onGenerate(p);
          } finally {
            setSending(false);
          }
        }}
      >
        Generate {tierName(p.tier)}
      </button>
    </article>
  );
}
