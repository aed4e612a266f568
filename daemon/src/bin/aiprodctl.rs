//! `aiprodctl`: the command-line client of aiprodd's gRPC API. `--json` on every command
//! prints the proto3 JSON mapping of the answer for scripts.

use std::process::ExitCode;

use aiprod_daemon::proto::{self, control_client::ControlClient, JobState};
use clap::{Parser, Subcommand, ValueEnum};
use tokio_stream::StreamExt;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// `upscale` and `models`: in-process, no daemon.
#[path = "aiprodctl/local.rs"]
mod local;

#[derive(Debug, Parser)]
#[command(name = "aiprodctl", version, about = "Control an aiprodd node")]
struct Cli {
    /// aiprodd gRPC address.
    #[arg(
        long,
        env = "AIPROD_ADDR",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    addr: String,
    /// Print JSON (proto3 JSON mapping) instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Act as this user (default: the daemon's default user).
    #[arg(long, env = "AIPROD_USER", global = true, default_value = "")]
    user: String,
    /// Bearer token (an API key or a JWT) when aiprodd has auth configured.
    #[arg(long, env = "AIPROD_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// CA certificate (PEM) that signed aiprodd's TLS certificate, for https:// addresses.
    #[arg(long, env = "AIPROD_CA_FILE", global = true)]
    ca_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
struct BearerToken(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.0 {
            req.metadata_mut().insert("authorization", t.clone());
        }
        Ok(req)
    }
}

type Client = ControlClient<InterceptedService<Channel, BearerToken>>;

/// Connects to `cli.addr` (TLS for https:// with `--ca-file`), sending `--token`.
async fn connect(cli: &Cli) -> Result<Client, CtlError> {
    let err = |source| CtlError::Connect {
        addr: cli.addr.clone(),
        source,
    };
    let mut endpoint = Channel::from_shared(cli.addr.clone())
        .map_err(|e| CtlError::Usage(format!("--addr {}: {e}", cli.addr)))?;
    if cli.addr.starts_with("https://") {
        let mut tls = tonic::transport::ClientTlsConfig::new();
        if let Some(ca) = &cli.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| CtlError::Usage(format!("--ca-file {}: {e}", ca.display())))?;
            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
        } else {
            tls = tls.with_webpki_roots();
        }
        endpoint = endpoint.tls_config(tls).map_err(err)?;
    }
    let channel = endpoint.connect().await.map_err(err)?;
    let token = match &cli.token {
        Some(t) => Some(
            format!("Bearer {}", t.trim())
                .parse()
                .map_err(|_| CtlError::Usage("--token: not a valid header value".into()))?,
        ),
        None => None,
    };
    Ok(ControlClient::with_interceptor(channel, BearerToken(token)))
}

#[derive(Debug, Subcommand)]
enum WebhooksCmd {
    /// Subscribe a URL to this tenant's job events (signed per Standard Webhooks).
    Add {
        #[arg(long)]
        url: String,
        /// whsec_<base64> signing secret; generated (and printed once) when absent.
        #[arg(long, default_value = "")]
        secret: String,
        /// Event types (job.created, job.succeeded, job.failed, video.cost_receipt); default all.
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// This tenant's subscriptions (secrets are not shown).
    List,
    /// Remove a subscription; its pending messages are dropped.
    Remove { subscription_id: String },
    /// The delivery log: messages newest first, each with its attempts.
    Deliveries {
        #[arg(long, default_value = "")]
        subscription_id: String,
        #[arg(long, default_value = "")]
        job_id: String,
        #[arg(long, default_value_t = 50)]
        page_size: u32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuthCmd {
    /// Make a new API key for a tenant: prints the key (give it to the tenant) and the line
    /// for aiprodd's config (which stores only its SHA-256). Offline.
    NewKey {
        #[arg(long)]
        tenant: String,
    },
}

async fn run_webhooks(client: &mut Client, cmd: WebhooksCmd, json: bool) -> Result<(), CtlError> {
    match cmd {
        WebhooksCmd::Add {
            url,
            secret,
            events,
            description,
        } => {
            let s = client
                .create_webhook(proto::CreateWebhookRequest {
                    url,
                    secret,
                    events,
                    description,
                })
                .await?
                .into_inner();
            if json {
                print_json(&s)?
            } else {
                println!(
                    "{}  {}  events: {}",
                    s.subscription_id,
                    s.url,
                    events_text(&s.events)
                );
                println!(
                    "secret: {}  (shown once; verify webhook-signature with it)",
                    s.secret
                );
            }
        }
        WebhooksCmd::List => {
            let r = client
                .list_webhooks(proto::ListWebhooksRequest {})
                .await?
                .into_inner();
            if json {
                print_json(&r)?
            } else {
                for s in &r.subscriptions {
                    println!(
                        "{}  {}  events: {}  {}",
                        s.subscription_id,
                        s.url,
                        events_text(&s.events),
                        s.description
                    );
                }
            }
        }
        WebhooksCmd::Remove { subscription_id } => {
            let r = client
                .delete_webhook(proto::DeleteWebhookRequest { subscription_id })
                .await?
                .into_inner();
            if json {
                print_json(&r)?
            } else {
                println!("removed; {} pending message(s) dropped", r.dropped_pending);
            }
        }
        WebhooksCmd::Deliveries {
            subscription_id,
            job_id,
            page_size,
            page_token,
        } => {
            let r = client
                .list_webhook_deliveries(proto::ListWebhookDeliveriesRequest {
                    subscription_id,
                    job_id,
                    page_size,
                    page_token,
                })
                .await?
                .into_inner();
            if json {
                print_json(&r)?
            } else {
                for d in &r.deliveries {
                    println!(
                        "{}  {:<18} job {}  {} after {} attempt(s), last HTTP {} {}",
                        d.message_id,
                        d.event,
                        d.job_id,
                        d.state,
                        d.attempts,
                        d.last_status_code,
                        d.last_error
                    );
                    for a in &d.attempt_log {
                        println!(
                            "    #{} at {} ms: HTTP {} in {} ms {}",
                            a.attempt, a.started_unix_ms, a.status_code, a.duration_ms, a.error
                        );
                    }
                }
                if !r.next_page_token.is_empty() {
                    println!("next page: --page-token {}", r.next_page_token);
                }
            }
        }
    }
    Ok(())
}

fn events_text(e: &[String]) -> String {
    if e.is_empty() {
        "all".into()
    } else {
        e.join(",")
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TierArg {
    Premium,
    Balanced,
    Economy,
}

impl From<TierArg> for proto::Tier {
    fn from(t: TierArg) -> Self {
        match t {
            TierArg::Premium => proto::Tier::Premium,
            TierArg::Balanced => proto::Tier::Balanced,
            TierArg::Economy => proto::Tier::Economy,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Preference {
    Cheapest,
    Balanced,
    BestQuality,
    Fastest,
}

impl From<Preference> for proto::Preferences {
    fn from(p: Preference) -> Self {
        let (c, q, s) = match p {
            Preference::Cheapest => (1.0, 0.2, 0.2),
            Preference::Balanced => (1.0, 1.0, 1.0),
            Preference::BestQuality => (0.2, 1.0, 0.2),
            Preference::Fastest => (0.2, 0.2, 1.0),
        };
        proto::Preferences {
            cost_weight: c,
            quality_weight: q,
            speed_weight: s,
        }
    }
}

#[derive(Debug, clap::Args)]
struct ConstraintArgs {
    /// Hard cap on the plan's cost, USD.
    #[arg(long, allow_negative_numbers = true)]
    max_cost_usd: Option<f64>,
    /// Minimum expected quality, 0..1.
    #[arg(long, allow_negative_numbers = true)]
    min_quality: Option<f64>,
    /// Maximum estimated time, seconds.
    #[arg(long, allow_negative_numbers = true)]
    max_time_s: Option<f64>,
}

impl ConstraintArgs {
    fn to_proto(&self) -> Option<proto::Constraints> {
        (self.max_cost_usd.is_some() || self.min_quality.is_some() || self.max_time_s.is_some())
            .then_some(proto::Constraints {
                max_cost_usd: self.max_cost_usd,
                min_quality: self.min_quality,
                max_time_s: self.max_time_s,
            })
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Three priced plans for a prompt, and the recommended one.
    Plan {
        #[arg(long)]
        prompt: String,
        #[arg(long, default_value_t = 5.0, allow_negative_numbers = true)]
        duration_s: f64,
        /// Use case, e.g. "tiktok", "youtube", "tv spot".
        #[arg(long, default_value = "")]
        use_case: String,
        /// Explicit profile (SOCIAL, WEB, BROADCAST, ...); wins over --use-case.
        #[arg(long, default_value = "")]
        profile: String,
        #[command(flatten)]
        constraints: ConstraintArgs,
        #[arg(long, value_enum)]
        prefer: Option<Preference>,
    },
    /// Start a job from a plan id or from a prompt + tier.
    Generate {
        #[arg(long, default_value = "")]
        plan_id: String,
        #[arg(long, default_value = "")]
        prompt: String,
        #[arg(long, value_enum)]
        tier: Option<TierArg>,
        #[arg(long, default_value = "")]
        profile: String,
        #[arg(long, default_value = "")]
        use_case: String,
        #[arg(long, default_value_t = 5.0, allow_negative_numbers = true)]
        duration_s: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value = "")]
        idempotency_key: String,
        #[command(flatten)]
        constraints: ConstraintArgs,
        /// Stream progress until the job ends, then print the receipt.
        #[arg(long)]
        wait: bool,
    },
    /// List jobs, newest first.
    Jobs {
        /// Only jobs in this state (queued, generating, processing, validating, succeeded, failed, cancelled).
        #[arg(long)]
        state: Vec<String>,
        #[arg(long, default_value_t = 50)]
        page_size: u32,
        #[arg(long, default_value = "")]
        page_token: String,
        /// Only jobs created in the last N seconds.
        #[arg(long)]
        since_s: Option<u64>,
    },
    /// Show one job.
    Job { job_id: String },
    /// Stream a job's progress until it ends.
    Watch { job_id: String },
    /// A job's cost receipt: estimated next to actual.
    Receipt { job_id: String },
    /// Cancel a job.
    Cancel { job_id: String },
    /// Spend, job counts and estimate error per user, tier and backend.
    Usage {
        /// Over the last N seconds (default: all time).
        #[arg(long)]
        since_s: Option<u64>,
    },
    /// This node's status: version, adapters, queue depth, running jobs, free disk, throughput.
    NodeStatus,
    /// Stop taking new jobs; accepted jobs finish. With --wait, return once none is left.
    Drain {
        #[arg(long)]
        wait: bool,
        /// Seconds to wait at most (default: the daemon's drain deadline).
        #[arg(long, default_value_t = 0.0)]
        deadline_s: f64,
    },
    /// Webhook subscriptions of this tenant and their delivery log.
    Webhooks {
        #[command(subcommand)]
        cmd: WebhooksCmd,
    },
    /// API keys for aiprodd's [auth] config.
    Auth {
        #[command(subcommand)]
        cmd: AuthCmd,
    },
    /// Upscale a PNG with Real-ESRGAN, in-process (no daemon needed).
    Upscale(local::UpscaleArgs),
    /// Fetch, verify or list the Real-ESRGAN models (no daemon needed).
    Models {
        #[command(subcommand)]
        cmd: local::ModelsCmd,
    },
    /// ffprobe-identical JSON (-show_format -show_streams) for a media file, from aiprodd's native
    /// probe (--local: in this process, no daemon needed).
    Probe {
        file: std::path::PathBuf,
        #[arg(long)]
        count_frames: bool,
        #[arg(long)]
        count_packets: bool,
        #[arg(long)]
        local: bool,
    },
    /// Every QualitySpec check of a tier and profile on a file: measured, threshold, pass.
    /// Exits non-zero when a check fails (--local: in this process, no daemon needed).
    Validate {
        file: std::path::PathBuf,
        #[arg(long)]
        tier: String,
        #[arg(long)]
        profile: String,
        /// The duration the file should have.
        #[arg(long)]
        duration_s: Option<f64>,
        /// Reference for the SSIM check (same size and frame count).
        #[arg(long)]
        reference: Option<std::path::PathBuf>,
        #[arg(long)]
        local: bool,
    },
    /// Show or set the user's default constraints and preferences.
    Prefs {
        #[command(flatten)]
        constraints: ConstraintArgs,
        #[arg(long, value_enum)]
        prefer: Option<Preference>,
        /// Store the given values (otherwise just show).
        #[arg(long)]
        set: bool,
    },
}

#[derive(Debug, thiserror::Error)]
enum CtlError {
    #[error(
        "cannot connect to aiprodd at {addr}: {source} (is it running? set --addr or AIPROD_ADDR)"
    )]
    Connect {
        addr: String,
        source: tonic::transport::Error,
    },
    #[error("{}: {}", code_name(.0.code()), .0.message())]
    Rpc(#[from] tonic::Status),
    #[error("{0}")]
    Usage(String),
    #[error("job {job_id} ended {state}: {error}")]
    JobEnded {
        job_id: String,
        state: &'static str,
        error: String,
    },
    #[error("cannot print JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Model(#[from] aiprod_models::ModelError),
    #[error("{0}")]
    Quality(String),
}

fn code_name(c: tonic::Code) -> String {
    format!("{c:?}")
}

fn state_name(s: i32) -> &'static str {
    JobState::try_from(s)
        .map(aiprod_daemon::telemetry::state_label)
        .unwrap_or("unknown")
}

fn tier_name(t: i32) -> &'static str {
    match proto::Tier::try_from(t) {
        Ok(proto::Tier::Premium) => "PREMIUM",
        Ok(proto::Tier::Balanced) => "BALANCED",
        Ok(proto::Tier::Economy) => "ECONOMY",
        _ => "-",
    }
}

fn usd(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    format!("{sign}${}.{:06}", m / 1_000_000, m % 1_000_000)
}

/// Prints `v` as JSON when `json` is set, otherwise with its text printer.
fn show<T: serde::Serialize>(json: bool, v: &T, text: fn(&T)) -> Result<(), CtlError> {
    if json {
        print_json(v)
    } else {
        text(v);
        Ok(())
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<(), CtlError> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn print_job(j: &proto::Job) {
    println!(
        "{}  {:<10} {:>5.1}%  {:<8} {:<9} {:<7} {}  est {}  actual {}",
        j.job_id,
        state_name(j.state),
        j.progress * 100.0,
        tier_name(j.tier),
        j.profile,
        j.backend,
        j.duration_s,
        usd(j.estimated_cost_usd_micros),
        usd(j.actual_cost_usd_micros)
    );
    if !j.error.is_empty() {
        println!("  error: {}", j.error);
    }
    if !j.output_path.is_empty() {
        println!("  output: {}", j.output_path);
    }
}

fn print_plans(r: &proto::PlanResponse) {
    println!("profile {} ({})", r.profile, r.profile_reason);
    for p in &r.plans {
        let g = p.generated_resolution.unwrap_or_default();
        let o = p.output_resolution.unwrap_or_default();
        let mark = if p.plan_id == r.recommended_plan_id {
            " ← recommended"
        } else {
            ""
        };
        println!(
            "\n{} {}/{}  {}×{} → {}×{}  {}  ~{:.1} s  quality {:.2}{}{}",
            tier_name(p.tier),
            p.backend,
            p.model,
            g.width,
            g.height,
            o.width,
            o.height,
            usd(p.total_cost_usd_micros),
            p.estimated_time_s,
            p.expected_quality,
            if p.feasible { "" } else { "  INFEASIBLE" },
            mark
        );
        println!("  plan id {}", p.plan_id);
        for s in &p.steps {
            println!(
                "  step {:<9} {:<28} {:>7.2} s  {}  {}",
                s.kind,
                s.engine,
                s.estimated_time_s,
                usd(s.estimated_cost_usd_micros),
                s.detail
            );
        }
        for c in &p.cost_breakdown {
            println!("  cost {:<17} {}  ({})", c.item, usd(c.usd_micros), c.basis);
        }
        for reason in &p.infeasible_reasons {
            println!("  ✗ {reason}");
        }
    }
    println!("\n{}", r.rationale);
    for x in &r.relaxations {
        println!("  relax: {x}");
    }
}

fn print_receipt(r: &proto::Receipt) {
    println!(
        "receipt for job {} ({}, {} {}/{}, {})",
        r.job_id,
        state_name(r.final_state),
        tier_name(r.tier),
        r.backend,
        r.model,
        r.profile
    );
    println!("  {:<18} {:>12} {:>12}", "item", "estimated", "actual");
    for l in &r.lines {
        println!(
            "  {:<18} {:>12} {:>12}  {}",
            l.item,
            usd(l.estimated_usd_micros),
            usd(l.actual_usd_micros),
            l.basis
        );
    }
    println!(
        "  {:<18} {:>12} {:>12}  (error {:+.1}%)",
        "total",
        usd(r.estimated_total_usd_micros),
        usd(r.actual_total_usd_micros),
        r.cost_estimate_error * 100.0
    );
    for s in &r.stages {
        println!(
            "  time {:<13} {:>10.2} s {:>10.2} s",
            s.stage, s.estimated_s, s.actual_s
        );
    }
    println!(
        "  time {:<13} {:>10.2} s {:>10.2} s",
        "total", r.estimated_time_s, r.actual_time_s
    );
    if let Some(p) = &r.probe {
        println!(
            "  output: {} {}×{} {} {:.3} s {} bit/s {:.3} fps, audio {} {} Hz {} ch, {} bytes",
            p.video_codec,
            p.width,
            p.height,
            p.pixel_format,
            p.duration_s,
            p.bitrate_bps,
            p.fps,
            p.audio_codec,
            p.audio_sample_rate_hz,
            p.audio_channels,
            p.size_bytes
        );
    }
    if !r.output_path.is_empty() {
        println!("  video: {}", r.output_path);
    }
    if !r.error.is_empty() {
        println!("  error: {}", r.error);
    }
}

fn parse_state(s: &str) -> Result<i32, CtlError> {
    let up = format!("JOB_STATE_{}", s.to_ascii_uppercase());
    JobState::from_str_name(&up)
        .map(|s| s as i32)
        .ok_or_else(|| CtlError::Usage(format!("unknown state {s:?}")))
}

fn since(s: Option<u64>) -> i64 {
    s.map(|s| aiprod_daemon::now_unix_ms() - (s as i64) * 1000)
        .unwrap_or(0)
}

/// Streams a job's events (text: one line per change) and returns its final view.
async fn watch(
    client: &mut Client,
    job_id: &str,
    user: &str,
    json: bool,
) -> Result<proto::Job, CtlError> {
    let mut stream = client
        .watch_job(proto::WatchJobRequest {
            job_id: job_id.into(),
            user_id: user.into(),
        })
        .await?
        .into_inner();
    let mut last: Option<proto::Job> = None;
    let mut last_line = String::new();
    while let Some(ev) = stream.next().await {
        let ev = ev?;
        if let Some(j) = ev.job {
            let line = format!(
                "{:<10} {:>5.1}%{}",
                state_name(j.state),
                j.progress * 100.0,
                if ev.frames_per_s > 0.0 {
                    format!("  {:.1} frames/s", ev.frames_per_s)
                } else {
                    String::new()
                }
            );
            if !json && line != last_line {
                eprintln!("{job_id}  {line}");
                last_line = line;
            }
            last = Some(j);
        }
    }
    match last {
        Some(j) => Ok(j),
        None => Err(CtlError::Usage(format!(
            "job {job_id}: the stream ended without an event"
        ))),
    }
}

/// A validation report as a table (or proto JSON); an error when a check failed.
fn print_validation(r: &proto::ValidationReport, json: bool) -> Result<(), CtlError> {
    if json {
        print_json(r)?;
    } else {
        println!(
            "{} {} {}: {}",
            r.path,
            tier_name(r.tier),
            r.profile,
            if r.passed { "PASS" } else { "FAIL" }
        );
        for c in &r.checks {
            println!(
                "  {:4}  {:<26} {:>16}  threshold {}",
                if c.pass { "ok" } else { "FAIL" },
                c.name,
                c.measured,
                c.threshold
            );
        }
    }
    if r.passed {
        Ok(())
    } else {
        let failed: Vec<&str> = r
            .checks
            .iter()
            .filter(|c| !c.pass)
            .map(|c| c.name.as_str())
            .collect();
        Err(CtlError::Quality(format!(
            "validation failed: {}",
            failed.join(", ")
        )))
    }
}

async fn run(cli: Cli) -> Result<(), CtlError> {
    match &cli.command {
        Command::Upscale(args) => return local::upscale(args, cli.json),
        Command::Probe {
            file,
            count_frames,
            count_packets,
            local: true,
        } => {
            let opts = aiprod_quality::ProbeOptions {
                count_frames: *count_frames,
                count_packets: *count_packets,
            };
            let v = aiprod_quality::probe_json(file, &opts)
                .map_err(|e| CtlError::Quality(e.to_string()))?;
            print!("{}", aiprod_quality::probe::to_ffprobe_string(&v));
            return Ok(());
        }
        Command::Validate {
            file,
            tier,
            profile,
            duration_s,
            reference,
            local: true,
        } => {
            let spec = aiprod_quality::spec::QualitySpec::builtin(profile, tier)
                .map_err(|e| CtlError::Quality(e.to_string()))?;
            let opts = aiprod_quality::spec::ValidateOptions {
                expected_duration_s: *duration_s,
                reference: reference.clone(),
            };
            let r = aiprod_quality::spec::validate_with_spec(file, &spec, &opts)
                .map_err(|e| CtlError::Quality(e.to_string()))?;
            let tier = match tier.to_ascii_uppercase().as_str() {
                "PREMIUM" => proto::Tier::Premium,
                "BALANCED" => proto::Tier::Balanced,
                _ => proto::Tier::Economy,
            };
            let report = aiprod_daemon::jobs::receipt::validation_to_proto(&r, tier, profile);
            return print_validation(&report, cli.json);
        }
        Command::Models { cmd } => return local::models(cmd, cli.json),
        _ => {}
    }
    if let Command::Auth {
        cmd: AuthCmd::NewKey { tenant },
    } = &cli.command
    {
        let key = aiprod_daemon::auth::generate_api_key();
        let sha = aiprod_daemon::auth::hash_api_key(&key);
        if cli.json {
            print_json(&serde_json::json!({"tenant": tenant, "api_key": key, "sha256": sha}))?;
        } else {
            println!("api key for {tenant}: {key}");
            println!(
                "aiprodd config:\n[[auth.api_keys]]\ntenant = \"{tenant}\"\nsha256 = \"{sha}\""
            );
        }
        return Ok(());
    }
    let mut client = connect(&cli).await?;
    let user = cli.user.clone();
    match cli.command {
        Command::Webhooks { cmd } => run_webhooks(&mut client, cmd, cli.json).await?,
        Command::Auth { .. } | Command::Upscale(_) | Command::Models { .. } => {}
        Command::Probe {
            file,
            count_frames,
            count_packets,
            ..
        } => {
            let absolute = std::fs::canonicalize(&file)
                .map_err(|e| CtlError::Quality(format!("{}: {e}", file.display())))?;
            let r = client
                .probe(proto::ProbeRequest {
                    path: absolute.display().to_string(),
                    filename: file.display().to_string(),
                    count_frames,
                    count_packets,
                })
                .await?
                .into_inner();
            print!("{}", r.ffprobe_json);
        }
        Command::Validate {
            file,
            tier,
            profile,
            duration_s,
            reference,
            ..
        } => {
            let abs = |p: &std::path::Path| {
                std::fs::canonicalize(p)
                    .map(|a| a.display().to_string())
                    .map_err(|e| CtlError::Quality(format!("{}: {e}", p.display())))
            };
            let tier = match tier.to_ascii_uppercase().as_str() {
                "PREMIUM" => proto::Tier::Premium,
                "BALANCED" => proto::Tier::Balanced,
                "ECONOMY" => proto::Tier::Economy,
                other => return Err(CtlError::Usage(format!("unknown tier '{other}'"))),
            };
            let report = client
                .validate(proto::ValidateRequest {
                    path: abs(&file)?,
                    tier: tier as i32,
                    profile,
                    expected_duration_s: duration_s.unwrap_or(0.0),
                    reference_path: match &reference {
                        Some(r) => abs(r)?,
                        None => String::new(),
                    },
                })
                .await?
                .into_inner();
            print_validation(&report, cli.json)?;
        }
        Command::Plan {
            prompt,
            duration_s,
            use_case,
            profile,
            constraints,
            prefer,
        } => {
            let r = client
                .plan(proto::PlanRequest {
                    prompt,
                    duration_s,
                    use_case,
                    profile,
                    constraints: constraints.to_proto(),
                    preferences: prefer.map(Into::into),
                    user_id: user,
                })
                .await?
                .into_inner();
            show(cli.json, &r, print_plans)?
        }
        Command::Generate {
            plan_id,
            prompt,
            tier,
            profile,
            use_case,
            duration_s,
            seed,
            idempotency_key,
            constraints,
            wait,
        } => {
            if plan_id.is_empty() && tier.is_none() {
                return Err(CtlError::Usage(
                    "give --plan-id, or --prompt with --tier".into(),
                ));
            }
            let job = client
                .generate(proto::GenerateRequest {
                    plan_id,
                    prompt,
                    tier: tier.map(|t| proto::Tier::from(t) as i32).unwrap_or(0),
                    profile,
                    use_case,
                    duration_s,
                    idempotency_key,
                    user_id: user.clone(),
                    seed,
                    constraints: constraints.to_proto(),
                })
                .await?
                .into_inner();
            if !wait {
                return show(cli.json, &job, print_job);
            }
            if !cli.json {
                eprintln!("job {} queued", job.job_id);
            }
            let done = watch(&mut client, &job.job_id, &user, cli.json).await?;
            let receipt = client
                .get_receipt(proto::GetReceiptRequest {
                    job_id: job.job_id.clone(),
                    user_id: user,
                })
                .await?
                .into_inner();
            if cli.json {
                print_json(&serde_json::json!({
                    "job_id": done.job_id,
                    "state": state_name(done.state),
                    "output_path": done.output_path,
                    "job": done,
                    "receipt": receipt,
                }))?;
            } else {
                print_job(&done);
                print_receipt(&receipt);
            }
            if done.state != JobState::Succeeded as i32 {
                return Err(CtlError::JobEnded {
                    job_id: done.job_id,
                    state: state_name(done.state),
                    error: done.error,
                });
            }
        }
        Command::Jobs {
            state,
            page_size,
            page_token,
            since_s,
        } => {
            let states = state
                .iter()
                .map(|s| parse_state(s))
                .collect::<Result<Vec<_>, _>>()?;
            let r = client
                .list_jobs(proto::ListJobsRequest {
                    user_id: user,
                    states,
                    created_after_unix_ms: since(since_s),
                    created_before_unix_ms: 0,
                    page_size,
                    page_token,
                })
                .await?
                .into_inner();
            if cli.json {
                print_json(&r)?
            } else {
                r.jobs.iter().for_each(print_job);
                if !r.next_page_token.is_empty() {
                    println!("next page: --page-token {}", r.next_page_token);
                }
            }
        }
        Command::Job { job_id } => {
            let j = client
                .get_job(proto::GetJobRequest {
                    job_id,
                    user_id: user,
                })
                .await?
                .into_inner();
            show(cli.json, &j, print_job)?
        }
        Command::Watch { job_id } => {
            let j = watch(&mut client, &job_id, &user, cli.json).await?;
            show(cli.json, &j, print_job)?
        }
        Command::Receipt { job_id } => {
            let r = client
                .get_receipt(proto::GetReceiptRequest {
                    job_id,
                    user_id: user,
                })
                .await?
                .into_inner();
            show(cli.json, &r, print_receipt)?
        }
        Command::Cancel { job_id } => {
            let j = client
                .cancel_job(proto::CancelJobRequest {
                    job_id,
                    user_id: user,
                })
                .await?
                .into_inner();
            show(cli.json, &j, print_job)?
        }
        Command::Usage { since_s } => {
            let r = client
                .get_usage(proto::GetUsageRequest {
                    user_id: user,
                    from_unix_ms: since(since_s),
                    to_unix_ms: 0,
                })
                .await?
                .into_inner();
            if cli.json {
                print_json(&r)?
            } else {
                println!(
                    "{:<16} {:<9} {:<9} {:>5} {:>5} {:>5} {:>13} {:>13} {:>8}",
                    "user", "tier", "backend", "jobs", "ok", "fail", "spent", "estimated", "err"
                );
                for u in &r.rows {
                    println!(
                        "{:<16} {:<9} {:<9} {:>5} {:>5} {:>5} {:>13} {:>13} {:>7.1}%",
                        u.user_id,
                        tier_name(u.tier),
                        u.backend,
                        u.jobs_total,
                        u.jobs_succeeded,
                        u.jobs_failed,
                        usd(u.spent_usd_micros),
                        usd(u.estimated_usd_micros),
                        u.mean_abs_estimate_error * 100.0
                    );
                }
                println!(
                    "total {} over {} jobs",
                    usd(r.spent_usd_micros),
                    r.jobs_total
                );
            }
        }
        Command::NodeStatus => {
            let s = client
                .get_node_status(proto::GetNodeStatusRequest {})
                .await?
                .into_inner();
            if cli.json {
                print_json(&s)?
            } else {
                println!(
                    "node {} (aiprodd {}), {} CPUs, up {:.0} s{}",
                    s.node_name,
                    s.version,
                    s.cpu_count,
                    s.uptime_s,
                    if s.draining { ", DRAINING" } else { "" }
                );
                println!(
                    "jobs: {} running / {} slots, {} queued / {} max",
                    s.running_jobs, s.max_concurrent_jobs, s.queue_depth, s.max_queued_jobs
                );
                println!(
                    "disk: {} of {} bytes free; backends: {}",
                    s.disk_free_bytes,
                    s.disk_total_bytes,
                    s.backends.join(", ")
                );
                for a in &s.adapters {
                    println!(
                        "adapter: {} ({}, {} bytes) engines: {}",
                        a.name,
                        a.kind,
                        a.memory_bytes,
                        a.engines.join(", ")
                    );
                }
                for k in &s.slots {
                    println!(
                        "slots {}: {} running / {}, {} queued",
                        k.kind, k.running, k.total, k.queued
                    );
                }
                for t in &s.throughput {
                    if t.engine.is_empty() {
                        println!("throughput: {} {:.1} frames/s", t.stage, t.frames_per_s);
                    } else {
                        println!(
                            "throughput: {} on {} ({} slot) {:.1} frames/s over {} runs",
                            t.stage, t.engine, t.slot, t.frames_per_s, t.runs
                        );
                    }
                }
            }
        }
        Command::Drain { wait, deadline_s } => {
            let r = client
                .drain(proto::DrainRequest { wait, deadline_s })
                .await?
                .into_inner();
            if cli.json {
                print_json(&r)?
            } else {
                println!(
                    "{}: {} running, {} queued",
                    if r.drained { "drained" } else { "draining" },
                    r.running_jobs,
                    r.queue_depth
                );
            }
            if wait && !r.drained {
                return Err(CtlError::Usage(format!(
                    "drain deadline passed with {} running and {} queued jobs (they resume at the next start)",
                    r.running_jobs, r.queue_depth
                )));
            }
        }
        Command::Prefs {
            constraints,
            prefer,
            set,
        } => {
            let p = if set {
                client
                    .set_preferences(proto::SetPreferencesRequest {
                        user_id: user,
                        constraints: constraints.to_proto(),
                        preferences: prefer.map(Into::into),
                    })
                    .await?
                    .into_inner()
            } else {
                client
                    .get_preferences(proto::GetPreferencesRequest { user_id: user })
                    .await?
                    .into_inner()
            };
            if cli.json {
                print_json(&p)?
            } else {
                println!(
                    "user {}: constraints {:?}, preferences {:?}",
                    p.user_id, p.constraints, p.preferences
                );
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    // Behave like other Unix tools when the reader goes away (`aiprodctl jobs | head`): die
    // quietly on SIGPIPE instead of failing a write.
    #[cfg(unix)]
    // SAFETY: setting a signal disposition to the default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("aiprodctl: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aiprodctl: {e}");
            match e {
                CtlError::Rpc(s) if s.code() == tonic::Code::InvalidArgument => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
