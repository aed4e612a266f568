//! Offline validation of deploy/: every manifest parses, and the fields that matter agree with
//! each other and with the daemon (ports, probes, drain hook, data dir, config keys, hardening).
//! `kubectl --dry-run` needs a cluster; this checks what a dry run would not (consistency).

use std::path::{Path, PathBuf};

use serde_yaml::Value;

fn deploy(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(deploy(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Value {
    serde_yaml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = v;
    for key in path {
        cur = match key.parse::<usize>() {
            Ok(i) => &cur[i],
            Err(_) => &cur[*key],
        };
        assert!(!cur.is_null(), "missing {}", path.join("."));
    }
    cur
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{} is not a string", path.join(".")))
}

#[test]
fn every_manifest_parses_with_kind_and_api_version() {
    for entry in std::fs::read_dir(deploy("kubernetes")).unwrap() {
        let path = entry.unwrap().path();
        let rel = format!("kubernetes/{}", path.file_name().unwrap().to_string_lossy());
        let doc = yaml(&rel);
        if rel.ends_with("prometheus-scrape.yaml") {
            assert!(at(&doc, &["scrape_configs", "0", "job_name"]).is_string());
            continue;
        }
        assert!(
            doc["apiVersion"].is_string() && doc["kind"].is_string(),
            "{rel}: apiVersion/kind"
        );
        assert!(doc["metadata"]["name"].is_string(), "{rel}: metadata.name");
    }
}

#[test]
fn daemonset_probes_ports_drain_and_data_dir_agree() {
    let ds = yaml("kubernetes/daemonset.yaml");
    assert_eq!(s(&ds, &["kind"]), "DaemonSet");
    let pod = at(&ds, &["spec", "template", "spec"]);
    let c = at(pod, &["containers", "0"]);
    let port = |name: &str| {
        c["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["containerPort"].as_u64().unwrap())
    };
    let env = |name: &str| {
        c["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
            .map(str::to_string)
    };
    let grpc_port = port("grpc").expect("grpc port");
    let http_port = port("http").expect("http port");
    assert_eq!(
        env("AIPROD_GRPC_ADDR").unwrap(),
        format!("0.0.0.0:{grpc_port}")
    );
    assert_eq!(
        env("AIPROD_HTTP_ADDR").unwrap(),
        format!("0.0.0.0:{http_port}")
    );
    // Readiness on gRPC health of the Control service, liveness on /healthz.
    assert_eq!(
        at(c, &["readinessProbe", "grpc", "port"]).as_u64(),
        Some(grpc_port)
    );
    assert_eq!(
        s(c, &["readinessProbe", "grpc", "service"]),
        "aiprod.v1.Control"
    );
    assert_eq!(s(c, &["livenessProbe", "httpGet", "path"]), "/healthz");
    assert_eq!(s(c, &["livenessProbe", "httpGet", "port"]), "http");
    // preStop drains through aiprodctl, and the grace period leaves time for it.
    let pre_stop: Vec<&str> = at(c, &["lifecycle", "preStop", "exec", "command"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(pre_stop.contains(&"drain"), "{pre_stop:?}");
    assert!(
        pre_stop
            .iter()
            .any(|a| a.ends_with(&format!(":{grpc_port}"))),
        "{pre_stop:?}"
    );
    assert!(
        at(pod, &["terminationGracePeriodSeconds"])
            .as_u64()
            .unwrap()
            >= 300
    );
    // GPU node selection and limits.
    assert!(at(pod, &["nodeSelector"])
        .as_mapping()
        .is_some_and(|m| !m.is_empty()));
    assert_eq!(
        at(c, &["resources", "limits", "nvidia.com/gpu"]).as_u64(),
        Some(1)
    );
    assert!(c["resources"]["limits"]["memory"].is_string());
    // The data volume is mounted where AIPROD_DATA_DIR points.
    let data_dir = env("AIPROD_DATA_DIR").unwrap();
    let mount = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == data_dir.as_str())
        .expect("data mount");
    let vol = s(mount, &["name"]);
    assert!(pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|v| v["name"] == vol && v["hostPath"]["path"].is_string()));
    // Labels: the pod template carries the selector's labels.
    let pod_labels = at(&ds, &["spec", "template", "metadata", "labels"]);
    for (k, v) in at(&ds, &["spec", "selector", "matchLabels"])
        .as_mapping()
        .unwrap()
    {
        assert_eq!(&pod_labels[k], v, "selector {k:?}");
    }
}

#[test]
fn service_and_scrape_config_select_the_daemonset() {
    let ds = yaml("kubernetes/daemonset.yaml");
    let svc = yaml("kubernetes/service.yaml");
    let mon = yaml("kubernetes/servicemonitor.yaml");
    let pod_labels = at(&ds, &["spec", "template", "metadata", "labels"]);
    for (k, v) in at(&svc, &["spec", "selector"]).as_mapping().unwrap() {
        assert_eq!(&pod_labels[k], v, "service selector {k:?}");
    }
    let svc_ports: Vec<&str> = svc["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(svc_ports.contains(&"grpc") && svc_ports.contains(&"http"));
    for (k, v) in at(&mon, &["spec", "selector", "matchLabels"])
        .as_mapping()
        .unwrap()
    {
        assert_eq!(
            &svc["metadata"]["labels"][k], v,
            "servicemonitor selector {k:?}"
        );
    }
    assert_eq!(s(&mon, &["spec", "endpoints", "0", "port"]), "http");
    assert_eq!(s(&mon, &["spec", "endpoints", "0", "path"]), "/metrics");
}

#[test]
fn configmap_holds_a_config_the_daemon_accepts() {
    let cm = yaml("kubernetes/configmap.yaml");
    let text = s(&cm, &["data", "aiprodd.toml"]);
    let layer =
        aiprod_daemon::config::ConfigLayer::from_toml(text, Path::new("configmap aiprodd.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
    aiprod_daemon::config::Config::default()
        .apply(&layer)
        .validate()
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn non_loopback_nodes_configure_auth_and_hooks_carry_tokens() {
    // aiprodd refuses 0.0.0.0 without [auth]; the DaemonSet binds 0.0.0.0, so the config must
    // have it, and the drain hook (Drain is admin-only) must carry an admin tenant's token.
    let cm = yaml("kubernetes/configmap.yaml");
    let config: toml::Value = toml::from_str(s(&cm, &["data", "aiprodd.toml"])).unwrap();
    let admins: Vec<&str> = config["auth"]["admin_tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let tenants: Vec<&str> = config["auth"]["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["tenant"].as_str().unwrap())
        .collect();
    let ds = yaml("kubernetes/daemonset.yaml");
    let c = at(&ds, &["spec", "template", "spec", "containers", "0"]);
    let token = c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "AIPROD_TOKEN")
        .expect("AIPROD_TOKEN env");
    let key = s(token, &["valueFrom", "secretKeyRef", "key"]);
    assert!(
        admins.contains(&key) && tenants.contains(&key),
        "drain token tenant {key} must be an admin with a key"
    );
    let job = yaml("kubernetes/orchestrator-job.yaml");
    let jc = at(&job, &["spec", "template", "spec", "containers", "0"]);
    let token = jc["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "AIPROD_TOKEN")
        .expect("job token");
    assert!(tenants.contains(&s(token, &["valueFrom", "secretKeyRef", "key"])));
}

#[test]
fn systemd_unit_is_notify_with_watchdog_and_hardening() {
    let unit = read("systemd/aiprodd.service");
    let value = |key: &str| {
        unit.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}= in the unit"))
    };
    assert_eq!(value("Type"), "notify");
    assert!(
        value("WatchdogSec")
            .trim_end_matches('s')
            .parse::<u32>()
            .unwrap()
            > 0
    );
    assert_eq!(value("NoNewPrivileges"), "yes");
    assert_eq!(value("ProtectSystem"), "strict");
    assert_eq!(value("PrivateTmp"), "yes");
    let data_dir = value("Environment=AIPROD_DATA_DIR").to_string();
    assert_eq!(value("ReadWritePaths"), data_dir);
    assert_eq!(value("KillSignal"), "SIGTERM");
}

#[test]
fn container_images_are_multi_stage_with_ort_and_the_ports() {
    for file in ["container/Dockerfile", "container/Dockerfile.gpu"] {
        let text = read(file);
        let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
        assert_eq!(froms.len(), 2, "{file}: build + runtime stages");
        assert!(
            froms[1].contains("debian:12"),
            "{file}: runtime on Debian 12"
        );
        assert!(text.contains("ORT_DYLIB_PATH="), "{file}");
        assert!(text.contains("EXPOSE 50051 9464"), "{file}");
        assert!(text.contains("AIPROD_GRPC_ADDR=0.0.0.0:50051"), "{file}");
        assert!(
            text.contains("setup-models.sh"),
            "{file}: models fetched at build time"
        );
    }
    assert!(read("container/Dockerfile.gpu").contains("onnxruntime-gpu"));
}
