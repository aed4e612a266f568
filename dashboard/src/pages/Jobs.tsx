// Job history with filters, the money spent, and how far off the estimates were per backend
// and tier (GetUsage).

import { useEffect, useState } from 'preact/hooks';
import { api, type Job, type UsageResponse } from '../api';
import { dateTime, pct, stateName, tierName, usd } from '../format';

const STATES = ['queued', 'generating', 'processing', 'validating', 'succeeded', 'failed', 'cancelled'];
const PAGE_SIZE = 50;

interface Filters {
  states: string[];
  user: string;
  since: string; // yyyy-mm-dd or ''
}

function sinceMs(since: string): number | undefined {
  if (!since) return undefined;
  const t = new Date(`${since}T00:00:00`).getTime();
  return Number.isNaN(t) ? undefined : t;
}

export function Jobs() {
  const [draft, setDraft] = useState<Filters>({ states: [], user: '', since: '' });
  const [filters, setFilters] = useState<Filters>(draft);
  const [jobs, setJobs] = useState<Job[]>([]);
  const [next, setNext] = useState('');
  const [usage, setUsage] = useState<UsageResponse | null>(null);
  const [error, setError] = useState('');
  const [loading, setLoading] = useState(false);

  async function load(pageToken: string) {
    setLoading(true);
    setError('');
    try {
      const r = await api.jobs({
        states: filters.states.join(','),
        user_id: filters.user.trim(),
        created_after_unix_ms: sinceMs(filters.since),
        page_size: PAGE_SIZE,
        page_token: pageToken,
      });
      setJobs((prev) => (pageToken ? [...prev, ...r.jobs] : r.jobs));
      setNext(r.next_page_token);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setLoading(false);
    }
  }

  useEffect(() => {
    load('');
    api.usage({ user_id: filters.user.trim(), from_unix_ms: sinceMs(filters.since) }).then(setUsage, (e) => setError(String(e.message ?? e)));
  }, [filters]);

  const toggle = (s: string) =>
    setDraft((d) => ({ ...d, states: d.states.includes(s) ? d.states.filter((x) => x !== s) : [...d.states, s] }));

  return (
    <>
      <section class="panel" aria-labelledby="jobs-title">
        <h2 id="jobs-title">Jobs</h2>
        <form
          class="filters"
          onSubmit={(e) => {
            e.preventDefault();
            setFilters({ ...draft }); // a new object: Apply reloads even when nothing changed
          }}
        >
          <fieldset>
            <legend>State</legend>
            {STATES.map((s) => (
              <label class="check">
                <input type="checkbox" checked={draft.states.includes(s)} onChange={() => toggle(s)} /> {s}
              </label>
            ))}
          </fieldset>
          <div class="field">
            <label for="filter-user">User</label>
            <input id="filter-user" value={draft.user} placeholder="every user" onInput={(e) => setDraft({ ...draft, user: e.currentTarget.value })} />
          </div>
          <div class="field">
            <label for="filter-since">Created since</label>
            <input id="filter-since" type="date" value={draft.since} onInput={(e) => setDraft({ ...draft, since: e.currentTarget.value })} />
          </div>
          <div class="actions">
            <button type="submit">Apply</button>
          </div>
        </form>
        {error && (
          <p role="alert" class="error">
            {error}
          </p>
        )}
        {usage && <Totals usage={usage} />}
      </section>
      <section class="panel" aria-labelledby="history-title">
        <h2 id="history-title">History</h2>
        <div class="table-scroll">
          <table class="jobs" id="jobs-table">
            <thead>
              <tr>
                <th scope="col">Created</th>
                <th scope="col">Job</th>
                <th scope="col">Prompt</th>
                <th scope="col">Tier</th>
                <th scope="col">Backend</th>
                <th scope="col">Profile</th>
                <th scope="col">State</th>
                <th scope="col" class="num">Estimated</th>
                <th scope="col" class="num">Actual</th>
              </tr>
            </thead>
            <tbody>
              {jobs.map((j) => (
                <tr>
                  <td>{dateTime(j.created_unix_ms)}</td>
                  <td>
                    <a href={`#/jobs/${j.job_id}`}>
                      <code>{j.job_id.slice(0, 8)}</code>
                    </a>
                  </td>
                  <td class="prompt">{j.prompt}</td>
                  <td>{tierName(j.tier)}</td>
                  <td>{j.backend}</td>
                  <td>{j.profile}</td>
                  <td>
                    <span class={`state ${stateName(j.state)}`}>{stateName(j.state)}</span>
                  </td>
                  <td class="num">{usd(j.estimated_cost_usd_micros)}</td>
                  <td class="num">{Number(j.actual_cost_usd_micros) ? usd(j.actual_cost_usd_micros) : '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        {jobs.length === 0 && !loading && <p class="muted">No jobs match.</p>}
        {next && (
          <button type="button" class="secondary" disabled={loading} onClick={() => load(next)}>
            Load more
          </button>
        )}
      </section>
    </>
  );
}

function Totals({ usage }: { usage: UsageResponse }) {
  return (
    <>
      <div class="tiles" aria-label="Totals">
        <div class="tile">
          <span class="label">Spent</span>
          <span class="value" id="total-spent">{usd(usage.spent_usd_micros)}</span>
        </div>
        <div class="tile">
          <span class="label">Jobs</span>
          <span class="value">{usage.jobs_total}</span>
        </div>
      </div>
      {usage.rows.length > 0 && (
        <div class="table-scroll">
          <table aria-label="Spend and estimate error per user, backend and tier" id="usage-table">
            <thead>
              <tr>
                <th scope="col">User</th>
                <th scope="col">Backend</th>
                <th scope="col">Tier</th>
                <th scope="col" class="num">Jobs</th>
                <th scope="col" class="num">OK / failed / cancelled</th>
                <th scope="col" class="num">Estimated</th>
                <th scope="col" class="num">Spent</th>
                <th scope="col" class="num">Mean estimate error</th>
              </tr>
            </thead>
            <tbody>
              {usage.rows.map((r) => (
                <tr>
                  <td>{r.user_id}</td>
                  <td>{r.backend || '—'}</td>
                  <td>{r.tier === 'TIER_UNSPECIFIED' ? '—' : tierName(r.tier)}</td>
                  <td class="num">{r.jobs_total}</td>
                  <td class="num">
                    {r.jobs_succeeded} / {r.jobs_failed} / {r.jobs_cancelled}
                  </td>
                  <td class="num">{usd(r.estimated_usd_micros)}</td>
                  <td class="num">{usd(r.spent_usd_micros)}</td>
                  <td class="num">{pct(r.mean_abs_estimate_error, 1)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
