//! Two aiprodd nodes on loopback under an orchestrator-like client that places each job on the
//! least-loaded node by GetNodeStatus. One node is drained mid-way: its accepted jobs finish,
//! new ones go to the other node, and every job ends with a receipt. Prints the figures the
//! issue asks for (drain time, jobs/min on two nodes vs one, memory per idle node).

mod common;

use std::time::{Duration, Instant};

use aiprod_daemon::proto::{self, control_client::ControlClient, JobState, Tier};
use common::*;
use tonic::transport::Channel;
use tonic::Code;

const JOBS: usize = 20;

fn job_request(i: usize) -> proto::GenerateRequest {
    proto::GenerateRequest {
        prompt: format!("farm job {i}"),
        tier: Tier::Economy as i32,
        profile: "SOCIAL".into(),
        duration_s: 1.0,
        idempotency_key: format!("farm-{i}"),
        ..Default::default()
    }
}

async fn status(c: &mut ControlClient<Channel>) -> proto::NodeStatus {
    c.get_node_status(proto::GetNodeStatusRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// Places `req` on the least-loaded node that is not draining; returns (node index, job).
async fn place(
    nodes: &mut [ControlClient<Channel>],
    req: proto::GenerateRequest,
) -> (usize, proto::Job) {
    let mut order = Vec::new();
    for (i, c) in nodes.iter_mut().enumerate() {
        let s = status(c).await;
        if !s.draining {
            let load =
                (s.queue_depth + s.running_jobs) as f64 / s.max_concurrent_jobs.max(1) as f64;
            order.push((load, i));
        }
    }
    order.sort_by(|a, b| a.partial_cmp(b).unwrap());
    for (_, i) in order {
        match nodes[i].generate(req.clone()).await {
            Ok(job) => return (i, job.into_inner()),
            // Drained between the status and the call: try the next node.
            Err(e) if e.code() == Code::Unavailable => continue,
            Err(e) => panic!("generate on node {i}: {e}"),
        }
    }
    panic!("no node accepted the job");
}

fn rss_kib(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn run_all(nodes: &mut [ControlClient<Channel>], ids: &[(usize, String)]) {
    for (node, id) in ids {
        let done = wait_final(&mut nodes[*node], id, Duration::from_secs(600)).await;
        assert_eq!(
            state(&done),
            JobState::Succeeded,
            "job {id} on node {node}: {}",
            done.error
        );
        let r = receipt(&mut nodes[*node], id).await;
        assert_eq!(r.final_state, JobState::Succeeded as i32);
        assert!(r.actual_total_usd_micros > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_place_by_status_and_one_drains_mid_way() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let daemons: Vec<Daemon> = dirs.iter().map(|d| Daemon::start(d.path(), &[])).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss: Vec<u64> = daemons.iter().map(|d| rss_kib(d.child.id())).collect();
    let mut nodes = Vec::new();
    for d in &daemons {
        nodes.push(d.client().await);
    }
    let s0 = status(&mut nodes[0]).await;
    assert_eq!(s0.version, env!("CARGO_PKG_VERSION"));
    assert!(s0.cpu_count >= 1 && s0.disk_free_bytes > 0 && !s0.draining);
    assert_eq!(s0.backends, vec!["local".to_string()]);

    let started = Instant::now();
    let mut ids = Vec::new();
    let mut drain_time = None;
    for i in 0..JOBS {
        let (node, job) = place(&mut nodes, job_request(i)).await;
        ids.push((node, job.job_id));
        if i == JOBS / 2 {
            // Drain node 0 while it has work: it refuses new jobs at once, health goes
            // NOT_SERVING, and the jobs it accepted still finish.
            let mut admin = nodes[0].clone();
            let drain_started = Instant::now();
            let drained = admin
                .drain(proto::DrainRequest {
                    wait: false,
                    deadline_s: 0.0,
                })
                .await
                .unwrap()
                .into_inner();
            assert!(!drained.drained || drained.running_jobs == 0);
            let err = nodes[0].generate(job_request(1000)).await.unwrap_err();
            assert_eq!(err.code(), Code::Unavailable, "{err:?}");
            assert!(err.message().contains("draining"), "{}", err.message());
            let channel = tonic::transport::Channel::from_shared(daemons[0].grpc.clone())
                .unwrap()
                .connect()
                .await
                .unwrap();
            let h = tonic_health::pb::health_client::HealthClient::new(channel)
                .check(tonic_health::pb::HealthCheckRequest {
                    service: "aiprod.v1.Control".into(),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(
                h.status,
                tonic_health::pb::health_check_response::ServingStatus::NotServing as i32
            );
            let waiter = tokio::spawn(async move {
                let r = admin
                    .drain(proto::DrainRequest {
                        wait: true,
                        deadline_s: 300.0,
                    })
                    .await
                    .unwrap()
                    .into_inner();
                (r, drain_started.elapsed())
            });
            drain_time = Some(waiter);
        }
    }
    let after_drain: Vec<&(usize, String)> = ids[JOBS / 2 + 1..].iter().collect();
    assert!(
        after_drain.iter().all(|(n, _)| *n == 1),
        "jobs placed after the drain went to node 1: {after_drain:?}"
    );
    assert!(
        ids[..=JOBS / 2].iter().any(|(n, _)| *n == 0),
        "node 0 got work before the drain"
    );
    run_all(&mut nodes, &ids).await;
    let two_node_s = started.elapsed().as_secs_f64();
    let (drained, drain_elapsed) = drain_time.unwrap().await.unwrap();
    assert!(
        drained.drained && drained.running_jobs == 0 && drained.queue_depth == 0,
        "{drained:?}"
    );

    // The same number of jobs on one node, for the jobs/min comparison.
    let one_dir = tempfile::tempdir().unwrap();
    let one = Daemon::start(one_dir.path(), &[]);
    let mut single = vec![one.client().await];
    let started = Instant::now();
    let mut single_ids = Vec::new();
    for i in 0..JOBS {
        let (node, job) = place(&mut single, job_request(i)).await;
        single_ids.push((node, job.job_id));
    }
    run_all(&mut single, &single_ids).await;
    let one_node_s = started.elapsed().as_secs_f64();

    let per_node: Vec<usize> = (0..2)
        .map(|n| ids.iter().filter(|(i, _)| *i == n).count())
        .collect();
    println!(
        "FIGURES farm: {JOBS} jobs (1 s SOCIAL ECONOMY each): two nodes {:.1} jobs/min ({two_node_s:.1} s, per node {per_node:?}), \
         one node {:.1} jobs/min ({one_node_s:.1} s); drain with work in flight {:.2} s; idle RSS per node {:?} KiB",
        JOBS as f64 / two_node_s * 60.0,
        JOBS as f64 / one_node_s * 60.0,
        drain_elapsed.as_secs_f64(),
        idle_rss
    );
}
