//! Starts a real `aiprodd` on loopback for the end-to-end tests and connects a real client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aiprod_daemon::proto::{self, control_client::ControlClient, JobState};
use tonic::transport::Channel;

/// A running daemon; killed (SIGKILL) when dropped.
pub struct Daemon {
    pub child: Child,
    pub grpc: String,
    pub http: String,
    pub data_dir: PathBuf,
}

impl Daemon {
    /// Starts `aiprodd` on free loopback ports with `data_dir` and extra flags, and waits for
    /// its "listening" line.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aiprodd"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .args(extra)
            .env("AIPROD_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn aiprodd");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("aiprodd listening ") {
                    let mut grpc = String::new();
                    let mut http = String::new();
                    for part in rest.split_whitespace() {
                        if let Some(v) = part.strip_prefix("grpc=") {
                            grpc = v.to_string();
                        } else if let Some(v) = part.strip_prefix("http=") {
                            http = v.to_string();
                        }
                    }
                    let _ = tx.send((grpc, http));
                }
            }
        });
        let (grpc, http) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("aiprodd did not report its addresses in 60 s");
        Daemon {
            child,
            grpc,
            http,
            data_dir: data_dir.to_path_buf(),
        }
    }

    pub async fn client(&self) -> ControlClient<Channel> {
        ControlClient::connect(self.grpc.clone())
            .await
            .expect("connect")
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Blocking GET of an HTTP path on the daemon's HTTP port (tiny HTTP/1.0 client).
pub fn http_get(base: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).expect("connect http");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

/// Waits for the job to reach a final state (via WatchJob) and returns it.
pub async fn wait_final(
    client: &mut ControlClient<Channel>,
    job_id: &str,
    timeout: Duration,
) -> proto::Job {
    let fut = async {
        let mut stream = client
            .watch_job(proto::WatchJobRequest {
                job_id: job_id.into(),
                user_id: String::new(),
            })
            .await
            .expect("watch")
            .into_inner();
        let mut last = None;
        while let Some(ev) = stream.message().await.expect("event") {
            last = ev.job;
        }
        last.expect("at least one event")
    };
    tokio::time::timeout(timeout, fut)
        .await
        .expect("job did not finish in time")
}

/// GetReceipt of a job (no user named), unwrapped.
pub async fn receipt(client: &mut ControlClient<Channel>, job_id: &str) -> proto::Receipt {
    client
        .get_receipt(proto::GetReceiptRequest {
            job_id: job_id.into(),
            user_id: String::new(),
        })
        .await
        .expect("get receipt")
        .into_inner()
}

/// Polls GetJob until `pred` holds.
pub async fn wait_until(
    client: &mut ControlClient<Channel>,
    job_id: &str,
    timeout: Duration,
    pred: impl Fn(&proto::Job) -> bool,
) -> proto::Job {
    let start = Instant::now();
    loop {
        let j = client
            .get_job(proto::GetJobRequest {
                job_id: job_id.into(),
                user_id: String::new(),
            })
            .await
            .expect("get job")
            .into_inner();
        if pred(&j) {
            return j;
        }
        assert!(
            start.elapsed() < timeout,
            "condition not reached in {timeout:?}; job: {j:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn state(j: &proto::Job) -> JobState {
    JobState::try_from(j.state).expect("valid state")
}

/// ffprobe (the test oracle) on a file: the parsed JSON of -show_format -show_streams.
pub fn ffprobe(path: &str) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            path,
        ])
        .output()
        .expect("run ffprobe (install ffmpeg)");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

pub fn plan_request(prompt: &str, profile: &str, duration_s: f64) -> proto::PlanRequest {
    proto::PlanRequest {
        prompt: prompt.into(),
        duration_s,
        profile: profile.into(),
        ..Default::default()
    }
}
