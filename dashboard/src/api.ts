// The daemon's JSON API: proto3 JSON of aiprod.v1 (proto field names, enums by name, 64-bit
// integers as strings). Every call sends the bearer token kept in sessionStorage.

export type Tier = 'TIER_UNSPECIFIED' | 'TIER_PREMIUM' | 'TIER_BALANCED' | 'TIER_ECONOMY';
export type JobState =
  | 'JOB_STATE_UNSPECIFIED'
  | 'JOB_STATE_QUEUED'
  | 'JOB_STATE_GENERATING'
  | 'JOB_STATE_PROCESSING'
  | 'JOB_STATE_VALIDATING'
  | 'JOB_STATE_SUCCEEDED'
  | 'JOB_STATE_FAILED'
  | 'JOB_STATE_CANCELLED';
/** int64/uint64 on the wire: a decimal string. */
export type Int64 = string;

export interface Constraints {
  max_cost_usd?: number;
  min_quality?: number;
  max_time_s?: number;
}
export interface Preferences {
  cost_weight: number;
  quality_weight: number;
  speed_weight: number;
}
export interface PlanRequest {
  prompt: string;
  duration_s: number;
  use_case?: string;
  profile?: string;
  constraints?: Constraints;
  preferences?: Preferences;
}
export interface Resolution {
  width: number;
  height: number;
}
export interface PlanStep {
  kind: string;
  engine: string;
  detail: string;
  scale: number;
  estimated_time_s: number;
  estimated_cost_usd_micros: Int64;
}
export interface CostLine {
  item: string;
  usd_micros: Int64;
  basis: string;
}
export interface PlanOption {
  plan_id: string;
  tier: Tier;
  backend: string;
  model: string;
  duration_s: number;
  generated_resolution?: Resolution;
  output_resolution?: Resolution;
  profile: string;
  steps: PlanStep[];
  cost_breakdown: CostLine[];
  total_cost_usd_micros: Int64;
  estimated_time_s: number;
  expected_quality: number;
  feasible: boolean;
  infeasible_reasons: string[];
  score: number;
  estimated_output_bytes: Int64;
  expires_unix_ms: Int64;
}
export interface PlanResponse {
  plans: PlanOption[];
  recommended: Tier;
  recommended_plan_id: string;
  rationale: string;
  relaxations: string[];
  profile: string;
  profile_reason: string;
  expires_unix_ms: Int64;
}
export interface GenerateRequest {
  plan_id?: string;
  prompt?: string;
  tier?: Tier;
  idempotency_key?: string;
  seed?: Int64;
}
export interface Job {
  job_id: string;
  user_id: string;
  state: JobState;
  tier: Tier;
  profile: string;
  backend: string;
  prompt: string;
  duration_s: number;
  progress: number;
  stage: string;
  error: string;
  output_path: string;
  created_unix_ms: Int64;
  updated_unix_ms: Int64;
  estimated_cost_usd_micros: Int64;
  actual_cost_usd_micros: Int64;
  plan_id: string;
  attempts: number;
}
export interface JobEvent {
  job?: Job;
  message: string;
  frames_per_s: number;
}
export interface ListJobsResponse {
  jobs: Job[];
  next_page_token: string;
}
export interface ReceiptLine {
  item: string;
  estimated_usd_micros: Int64;
  actual_usd_micros: Int64;
  basis: string;
}
export interface StageTime {
  stage: string;
  estimated_s: number;
  actual_s: number;
}
export interface ProbeSummary {
  container: string;
  video_codec: string;
  width: number;
  height: number;
  duration_s: number;
  bitrate_bps: Int64;
  fps: number;
  pixel_format: string;
  audio_codec: string;
  audio_sample_rate_hz: number;
  audio_channels: number;
  size_bytes: Int64;
}
/** One QualitySpec check of the VALIDATING stage: measured value, threshold, verdict. */
export interface QualityCheck {
  name: string;
  measured: string;
  threshold: string;
  pass: boolean;
}
export interface ValidationReport {
  path: string;
  tier: Tier;
  profile: string;
  passed: boolean;
  checks: QualityCheck[];
}
export interface Receipt {
  job_id: string;
  user_id: string;
  tier: Tier;
  backend: string;
  model: string;
  profile: string;
  final_state: JobState;
  lines: ReceiptLine[];
  estimated_total_usd_micros: Int64;
  actual_total_usd_micros: Int64;
  stages: StageTime[];
  estimated_time_s: number;
  actual_time_s: number;
  expected_quality: number;
  probe?: ProbeSummary;
  output_path: string;
  error: string;
  created_unix_ms: Int64;
  cost_estimate_error: number;
  /** The QualitySpec report (absent for a profile without a spec, or a job that never got there). */
  validation?: ValidationReport;
}
export interface UsageRow {
  user_id: string;
  tier: Tier;
  backend: string;
  jobs_total: number;
  jobs_succeeded: number;
  jobs_failed: number;
  jobs_cancelled: number;
  spent_usd_micros: Int64;
  estimated_usd_micros: Int64;
  mean_abs_estimate_error: number;
}
export interface UsageResponse {
  rows: UsageRow[];
  spent_usd_micros: Int64;
  jobs_total: number;
}
export interface Options {
  profiles: { name: string; description: string; width: number; height: number; use_cases: string[] }[];
  preferences: ({ name: string } & Preferences)[];
  max_duration_s: number;
  backends: string[];
  assets_built: boolean;
}

const TOKEN_KEY = 'aiprod.token';

/** The bearer token of this browser tab ('' when none). */
export function getToken(): string {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? '';
  } catch {
    return '';
  }
}

export function setToken(token: string): void {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage disabled: the token lives only as long as the field.
  }
}

function authHeaders(extra: Record<string, string> = {}): Record<string, string> {
  const token = getToken();
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

/** An error answer of the API: HTTP status, gRPC code name and the daemon's message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function fail(r: Response): Promise<never> {
  let code = 'UNKNOWN';
  let message = `${r.status} ${r.statusText}`;
  try {
    const body = await r.json();
    code = body?.error?.code ?? code;
    message = body?.error?.message ?? message;
  } catch {
    // not JSON: keep the status line
  }
  throw new ApiError(r.status, code, message);
}

async function call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, headers: authHeaders(body ? { 'Content-Type': 'application/json' } : {}) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const r = await fetch(path, init);
  if (!r.ok) return fail(r);
  return (await r.json()) as T;
}

/** `a=1&b=x` from the set fields of `q`. */
export function queryString(q: Record<string, string | number | undefined>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v !== undefined && v !== '' && v !== 0) p.set(k, String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}

// Paths are relative to the page, so a dashboard mounted under a prefix still works.
export const api = {
  options: () => call<Options>('GET', 'api/options'),
  plan: (r: PlanRequest) => call<PlanResponse>('POST', 'api/plan', r),
  generate: (r: GenerateRequest) => call<Job>('POST', 'api/generate', r),
  job: (id: string) => call<Job>('GET', `api/jobs/${encodeURIComponent(id)}`),
  cancel: (id: string) => call<Job>('POST', `api/jobs/${encodeURIComponent(id)}/cancel`),
  receipt: (id: string) => call<Receipt>('GET', `api/jobs/${encodeURIComponent(id)}/receipt`),
  jobs: (q: { states?: string; user_id?: string; created_after_unix_ms?: number; page_size?: number; page_token?: string }) =>
    call<ListJobsResponse>('GET', `api/jobs${queryString(q)}`),
  usage: (q: { user_id?: string; from_unix_ms?: number }) => call<UsageResponse>('GET', `api/usage${queryString(q)}`),
};

export function videoUrl(id: string): string {
  return `api/jobs/${encodeURIComponent(id)}/video`;
}

/**
 * A URL the <video> element can play. Without a token it is the API URL itself (streamed with
 * Range requests); a <video> cannot send an Authorization header, so with a token the file is
 * fetched with it and played from a blob URL (the caller revokes it).
 */
export async function playableVideo(id: string): Promise<{ url: string; blob: boolean }> {
  if (!getToken()) return { url: videoUrl(id), blob: false };
  const r = await fetch(videoUrl(id), { headers: authHeaders() });
  if (!r.ok) return fail(r);
  return { url: URL.createObjectURL(await r.blob()), blob: true };
}

export interface SseEvent {
  event: string;
  data: string;
}

/** Incremental parser of a text/event-stream (the parts aiprodd sends: event, data, comments). */
export class SseParser {
  private buf = '';

  push(chunk: string): SseEvent[] {
    this.buf += chunk.replace(/\r\n?/g, '\n');
    const out: SseEvent[] = [];
    let end: number;
    while ((end = this.buf.indexOf('\n\n')) >= 0) {
      const block = this.buf.slice(0, end);
      this.buf = this.buf.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':') || line === '') continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
      }
      if (data.length) out.push({ event, data: data.join('\n') });
    }
    return out;
  }
}

/**
 * Follows a job (WatchJob as Server-Sent Events, read with fetch so the token header goes
 * along). Resolves when the stream ends: the job reached a final state, the daemon stopped, or
 * `signal` aborted.
 */
export async function watchJob(id: string, onEvent: (e: JobEvent) => void, signal: AbortSignal): Promise<void> {
  const r = await fetch(`api/jobs/${encodeURIComponent(id)}/events`, { headers: authHeaders(), signal });
  if (!r.ok) return fail(r);
  if (!r.body) return;
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    for (const ev of parser.push(value)) {
      if (ev.event === 'job') onEvent(JSON.parse(ev.data) as JobEvent);
      else if (ev.event === 'error') throw new ApiError(500, 'INTERNAL', ev.data);
    }
  }
}

export const FINAL_STATES: JobState[] = ['JOB_STATE_SUCCEEDED', 'JOB_STATE_FAILED', 'JOB_STATE_CANCELLED'];
export const isFinal = (s: JobState) => FINAL_STATES.includes(s);
