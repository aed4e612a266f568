//! The JSON API the dashboard page calls. Every handler is thin: decode the HTTP request into
//! the proto request, call the Control service (the same code, validation and logging as a gRPC
//! call), and answer its message in the proto3 JSON mapping (pbjson: proto field names, enums by
//! name, 64-bit integers as strings). Errors become HTTP statuses only in [`super::error`].

use std::convert::Infallible;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use tokio_stream::{Stream, StreamExt};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::error::ApiError;
use super::Dashboard;
use crate::proto::{self, control_server::Control, JobState};

/// The JSON body, or a 400 that says what is wrong with it.
fn body<T>(json: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    json.map(|Json(v)| v)
        .map_err(|e| ApiError::bad_request("body", e.body_text()))
}

/// The query string, or a 400 that says what is wrong with it.
fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| ApiError::bad_request("query", e.body_text()))
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// What the planner form offers: the node's profiles, the preference presets, the limits.
#[derive(Debug, Serialize)]
pub struct Options {
    pub profiles: Vec<ProfileOption>,
    /// name → weights, in the order the form lists them.
    pub preferences: Vec<PreferencePreset>,
    pub max_duration_s: f64,
    pub backends: Vec<&'static str>,
    /// False when this aiprodd was built without the web assets (placeholder page).
    pub assets_built: bool,
}

#[derive(Debug, Serialize)]
pub struct ProfileOption {
    pub name: String,
    pub description: String,
    pub width: u32,
    pub height: u32,
    pub use_cases: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PreferencePreset {
    pub name: &'static str,
    pub cost_weight: f64,
    pub quality_weight: f64,
    pub speed_weight: f64,
}

/// `GET /api/options`
pub async fn options(State(d): State<Arc<Dashboard>>) -> Json<Options> {
    use aiprod_planner::Preferences;
    let preset = |name, p: Preferences| PreferencePreset {
        name,
        cost_weight: p.cost_weight,
        quality_weight: p.quality_weight,
        speed_weight: p.speed_weight,
    };
    Json(Options {
        profiles: d
            .engine
            .catalog
            .profiles()
            .iter()
            .map(|p| ProfileOption {
                name: p.name.clone(),
                description: p.description.clone(),
                width: p.width,
                height: p.height,
                use_cases: p.use_cases.clone(),
            })
            .collect(),
        preferences: vec![
            preset("balanced", Preferences::balanced()),
            preset("cheapest", Preferences::cheapest()),
            preset("best_quality", Preferences::best_quality()),
            preset("fastest", Preferences::fastest()),
        ],
        max_duration_s: d.engine.config.max_duration_s,
        backends: d.engine.backend_names(),
        assets_built: super::assets::built(),
    })
}

/// `POST /api/plan` — body: PlanRequest.
pub async fn plan(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
    json: Result<Json<proto::PlanRequest>, JsonRejection>,
) -> ApiResult<proto::PlanResponse> {
    let req = d.grpc_request(&headers, body(json)?)?;
    Ok(Json(d.control.plan(req).await?.into_inner()))
}

/// `POST /api/generate` — body: GenerateRequest.
pub async fn generate(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
    json: Result<Json<proto::GenerateRequest>, JsonRejection>,
) -> ApiResult<proto::Job> {
    let req = d.grpc_request(&headers, body(json)?)?;
    Ok(Json(d.control.generate(req).await?.into_inner()))
}

/// Query of `GET /api/jobs`: ListJobsRequest's fields, states comma-separated by name
/// (`succeeded,failed` or `JOB_STATE_SUCCEEDED,...`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub states: String,
    #[serde(default)]
    pub created_after_unix_ms: i64,
    #[serde(default)]
    pub created_before_unix_ms: i64,
    #[serde(default)]
    pub page_size: u32,
    #[serde(default)]
    pub page_token: String,
}

/// Job states from their names: "succeeded" or "JOB_STATE_SUCCEEDED", comma-separated.
fn parse_states(list: &str) -> Result<Vec<i32>, ApiError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let upper = s.to_ascii_uppercase();
            JobState::from_str_name(&upper)
                .or_else(|| JobState::from_str_name(&format!("JOB_STATE_{upper}")))
                .filter(|st| *st != JobState::Unspecified)
                .map(|st| st as i32)
                .ok_or_else(|| ApiError::bad_request("states", format!("unknown job state {s:?}")))
        })
        .collect()
}

/// `GET /api/jobs?states=&user_id=&created_after_unix_ms=&created_before_unix_ms=&page_size=&page_token=`
pub async fn list_jobs(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<proto::ListJobsResponse> {
    let q = query(q)?;
    let req = proto::ListJobsRequest {
        user_id: q.user_id,
        states: parse_states(&q.states)?,
        created_after_unix_ms: q.created_after_unix_ms,
        created_before_unix_ms: q.created_before_unix_ms,
        page_size: q.page_size,
        page_token: q.page_token,
    };
    Ok(Json(
        d.control
            .list_jobs(d.grpc_request(&headers, req)?)
            .await?
            .into_inner(),
    ))
}

/// `?user_id=` of the per-job endpoints: a request naming a user sees only that user's jobs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    #[serde(default)]
    pub user_id: String,
}

/// `GET /api/jobs/{id}`
pub async fn get_job(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
    Path(job_id): Path<String>,
    q: Result<Query<UserQuery>, QueryRejection>,
) -> ApiResult<proto::Job> {
    let req = proto::GetJobRequest {
        job_id,
        user_id: query(q)?.user_id,
    };
    Ok(Json(
        d.control
            .get_job(d.grpc_request(&headers, req)?)
            .await?
            .into_inner(),
    ))
}

/// `POST /api/jobs/{id}/cancel`
pub async fn cancel_job(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
    Path(job_id): Path<String>,
    q: Result<Query<UserQuery>, QueryRejection>,
) -> ApiResult<proto::Job> {
    let req = proto::CancelJobRequest {
        job_id,
        user_id: query(q)?.user_id,
    };
    Ok(Json(
        d.control
            .cancel_job(d.grpc_request(&headers, req)?)
            .await?
            .into_inner(),
    ))
}

/// `GET /api/jobs/{id}/receipt`
pub async fn receipt(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
    Path(job_id): Path<String>,
    q: Result<Query<UserQuery>, QueryRejection>,
) -> ApiResult<proto::Receipt> {
    let req = proto::GetReceiptRequest {
        job_id,
        user_id: query(q)?.user_id,
    };
    Ok(Json(
        d.control
            .get_receipt(d.grpc_request(&headers, req)?)
            .await?
            .into_inner(),
    ))
}

/// `GET /api/jobs/{id}/events`: WatchJob as Server-Sent Events, one `job` event (a JobEvent)
/// per state change or progress step, ending after the final state. Ends early when the
/// daemon shuts down, so an open page never holds up a drain.
pub async fn job_events(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
    Path(job_id): Path<String>,
    q: Result<Query<UserQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let req = proto::WatchJobRequest {
        job_id,
        user_id: query(q)?.user_id,
    };
    let mut events = d
        .control
        .watch_job(d.grpc_request(&headers, req)?)
        .await?
        .into_inner();
    // Forward until the job ends, the page goes away or the daemon stops.
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let mut stop = d.stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                ev = events.next() => match ev {
                    Some(ev) => if tx.send(ev).await.is_err() { return },
                    None => return,
                },
                _ = tx.closed() => return,
                _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(|ev| {
        Ok(match ev {
            Ok(ev) => Event::default()
                .event("job")
                .json_data(&ev)
                .unwrap_or_else(|e| Event::default().event("error").data(e.to_string())),
            Err(status) => Event::default().event("error").data(status.message()),
        })
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// `GET /api/jobs/{id}/video`: the job's output file, with Range, If-Modified-Since and a
/// content type by extension (tower-http's ServeFile), so the page's <video> can seek.
pub async fn video(
    State(d): State<Arc<Dashboard>>,
    Path(job_id): Path<String>,
    q: Result<Query<UserQuery>, QueryRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let req = proto::GetJobRequest {
        job_id,
        user_id: query(q)?.user_id,
    };
    let job = d
        .control
        .get_job(d.grpc_request(request.headers(), req)?)
        .await?
        .into_inner();
    if job.state != JobState::Succeeded as i32 || job.output_path.is_empty() {
        let state = JobState::try_from(job.state).unwrap_or(JobState::Unspecified);
        return Err(ApiError::Conflict(format!(
            "job {} has no video: it is {}",
            job.job_id,
            crate::telemetry::state_label(state)
        )));
    }
    let path = confine(&d.engine.config.data_dir, FsPath::new(&job.output_path))?;
    match ServeFile::new(path).oneshot(request).await {
        Ok(resp) => Ok(resp.map(Body::new).into_response()),
        Err(never) => match never {},
    }
}

/// The output path if it lies inside the data directory: the store is ours, but a path read
/// back from it is still never served from anywhere else.
fn confine(data_dir: &FsPath, path: &FsPath) -> Result<PathBuf, ApiError> {
    let root = data_dir
        .canonicalize()
        .map_err(|e| ApiError::Internal(format!("data directory {}: {e}", data_dir.display())))?;
    let file = path
        .canonicalize()
        .map_err(|e| ApiError::Conflict(format!("output {} is gone: {e}", path.display())))?;
    if file.starts_with(&root) {
        Ok(file)
    } else {
        Err(ApiError::Internal(format!(
            "output {} is outside the data directory",
            path.display()
        )))
    }
}

/// Query of `GET /api/usage`: GetUsageRequest's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub from_unix_ms: i64,
    #[serde(default)]
    pub to_unix_ms: i64,
}

/// `GET /api/usage?user_id=&from_unix_ms=&to_unix_ms=`
pub async fn usage(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
    q: Result<Query<UsageQuery>, QueryRejection>,
) -> ApiResult<proto::GetUsageResponse> {
    let q = query(q)?;
    let req = proto::GetUsageRequest {
        user_id: q.user_id,
        from_unix_ms: q.from_unix_ms,
        to_unix_ms: q.to_unix_ms,
    };
    Ok(Json(
        d.control
            .get_usage(d.grpc_request(&headers, req)?)
            .await?
            .into_inner(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_by_short_or_proto_name() {
        assert_eq!(
            parse_states("succeeded, JOB_STATE_FAILED,").unwrap(),
            vec![JobState::Succeeded as i32, JobState::Failed as i32]
        );
        assert_eq!(parse_states("").unwrap(), Vec::<i32>::new());
        for bad in ["done", "unspecified", "JOB_STATE_UNSPECIFIED"] {
            assert!(
                matches!(parse_states(bad), Err(ApiError::BadRequest { ref field, .. }) if field == "states"),
                "{bad}"
            );
        }
    }

    #[test]
    fn files_outside_the_data_dir_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("jobs/a")).unwrap();
        std::fs::write(data.join("jobs/a/output.mp4"), b"x").unwrap();
        std::fs::write(dir.path().join("secret"), b"x").unwrap();
        assert!(confine(&data, &data.join("jobs/a/output.mp4")).is_ok());
        assert!(matches!(
            confine(&data, &data.join("jobs/a/../../../secret")),
            Err(ApiError::Internal(_))
        ));
        assert!(matches!(
            confine(&data, &data.join("jobs/b/output.mp4")),
            Err(ApiError::Conflict(_))
        ));
    }
}
