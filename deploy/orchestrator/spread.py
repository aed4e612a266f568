#!/usr/bin/env python3
"""Example orchestrator client over `aiprodctl`: spreads N generate requests over aiprodd nodes
by their GetNodeStatus (least loaded first, draining nodes skipped), then waits for every job and
collects its receipt. Standard library only, so it runs in the aiprod image as a Kubernetes Job.

Nodes: AIPROD_NODES="http://10.0.0.5:50051,http://10.0.0.6:50051", or AIPROD_NODES_DNS=<headless
service name> (every A record, port AIPROD_NODES_PORT, default 50051).
"""
import json
import os
import socket
import subprocess
import sys
import time

AIPRODCTL = os.environ.get("AIPRODCTL", "aiprodctl")


def ctl(addr, *args):
    """Runs aiprodctl --json against one node; returns the parsed answer."""
    out = subprocess.run(
        [AIPRODCTL, "--addr", addr, "--json", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def nodes_from_env():
    listed = os.environ.get("AIPROD_NODES", "").strip()
    if listed:
        return [n.strip() for n in listed.split(",") if n.strip()]
    dns = os.environ.get("AIPROD_NODES_DNS", "").strip()
    if not dns:
        sys.exit("set AIPROD_NODES or AIPROD_NODES_DNS")
    port = int(os.environ.get("AIPROD_NODES_PORT", "50051"))
    ips = sorted({ai[4][0] for ai in socket.getaddrinfo(dns, port, proto=socket.IPPROTO_TCP)})
    return [f"http://{ip}:{port}" for ip in ips]


def load(status):
    """Work per slot: queued + running jobs over the node's concurrent-job slots."""
    slots = max(1, int(status.get("max_concurrent_jobs", 1)))
    return (int(status.get("queue_depth", 0)) + int(status.get("running_jobs", 0))) / slots


def pick(nodes, placed):
    best, best_load = None, None
    for addr in nodes:
        try:
            status = ctl(addr, "node-status")
        except (subprocess.CalledProcessError, json.JSONDecodeError) as e:
            print(f"skip {addr}: {e}", file=sys.stderr)
            continue
        if status.get("draining"):
            continue
        # Jobs placed here that the node may not count yet keep the spread even.
        node_load = load(status) + placed.get(addr, 0) * 1e-3
        if best_load is None or node_load < best_load:
            best, best_load = addr, node_load
    return best


def main():
    nodes = nodes_from_env()
    n_jobs = int(os.environ.get("AIPROD_JOBS", "20"))
    tier = os.environ.get("AIPROD_TIER", "economy")
    profile = os.environ.get("AIPROD_PROFILE", "social")
    duration = os.environ.get("AIPROD_DURATION_S", "2")
    receipts_dir = os.environ.get("AIPROD_RECEIPTS_DIR", "receipts")
    os.makedirs(receipts_dir, exist_ok=True)
    placed, jobs = {}, []
    started = time.monotonic()
    for i in range(n_jobs):
        for _ in range(60):
            addr = pick(nodes, placed)
            if addr:
                break
            time.sleep(1)
        else:
            sys.exit("no node accepts work (all draining or unreachable)")
        try:
            job = ctl(addr, "generate", "--prompt", f"spread job {i}", "--tier", tier,
                      "--profile", profile, "--duration-s", duration,
                      "--idempotency-key", f"spread-{os.getpid()}-{i}")
        except subprocess.CalledProcessError as e:
            # UNAVAILABLE (draining) or RESOURCE_EXHAUSTED (queue full): try another node.
            print(f"{addr} refused job {i}: {e.stderr.strip()}", file=sys.stderr)
            nodes_left = [n for n in nodes if n != addr] or nodes
            addr = pick(nodes_left, placed)
            if not addr:
                sys.exit(f"job {i}: no node accepted it")
            job = ctl(addr, "generate", "--prompt", f"spread job {i}", "--tier", tier,
                      "--profile", profile, "--duration-s", duration,
                      "--idempotency-key", f"spread-{os.getpid()}-{i}")
        placed[addr] = placed.get(addr, 0) + 1
        jobs.append((addr, job["job_id"]))
        print(f"job {i} → {addr} ({job['job_id']})")
    spent = 0
    for addr, job_id in jobs:
        done = ctl(addr, "watch", job_id)
        receipt = ctl(addr, "receipt", job_id)
        spent += int(receipt.get("actual_total_usd_micros", "0"))
        with open(os.path.join(receipts_dir, f"{job_id}.json"), "w") as f:
            json.dump(receipt, f, indent=2)
        print(f"{job_id} on {addr}: {done['state']}")
    elapsed = time.monotonic() - started
    print(json.dumps({"jobs": len(jobs), "per_node": placed, "elapsed_s": round(elapsed, 2),
                      "jobs_per_min": round(len(jobs) / elapsed * 60, 2),
                      "spent_usd": spent / 1e6}, indent=2))


if __name__ == "__main__":
    main()
