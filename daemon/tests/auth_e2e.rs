//! Auth end to end: API keys per tenant and JWTs (HS256, RS256, ES256 against a JWKS file),
//! tenant isolation (another tenant's job, receipt or webhook → NOT_FOUND), health without a
//! token, the loopback-only default, and TLS on the gRPC port. Keys and certificates are made
//! with the openssl CLI at test time.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aiprod_daemon::proto::{self, control_client::ControlClient, JobState, Tier};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::Code;

const KEY_A: &str = "aiprod_tenant-a-key-0123456789abcdef0123456789abcdef";
const KEY_B: &str = "aiprod_tenant-b-key-0123456789abcdef0123456789abcdef";
const HS_SECRET: &[u8] = b"hs256-test-secret-of-32-bytes!!!";

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl (install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn hex_bytes(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect()
}

/// Writes rsa.pem, ec.pem and jwks.json (oct "h1", RSA "r1", EC P-256 "e1").
fn make_jwks(dir: &Path) -> PathBuf {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "rsa.pem",
        ],
    );
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "ec.pem",
        ],
    );
    let modulus = String::from_utf8(openssl(
        dir,
        &["rsa", "-in", "rsa.pem", "-noout", "-modulus"],
    ))
    .unwrap();
    let n = B64URL.encode(hex_bytes(modulus.trim().trim_start_matches("Modulus=")));
    let der = openssl(
        dir,
        &["pkey", "-in", "ec.pem", "-pubout", "-outform", "DER"],
    );
    let point = &der[der.len() - 65..];
    assert_eq!(point[0], 4, "uncompressed EC point");
    let (x, y) = (B64URL.encode(&point[1..33]), B64URL.encode(&point[33..65]));
    let jwks = serde_json::json!({"keys": [
        {"kty": "oct", "kid": "h1", "alg": "HS256", "k": B64URL.encode(HS_SECRET)},
        {"kty": "RSA", "kid": "r1", "alg": "RS256", "use": "sig", "n": n, "e": "AQAB"},
        {"kty": "EC", "kid": "e1", "alg": "ES256", "crv": "P-256", "x": x, "y": y},
    ]});
    let path = dir.join("jwks.json");
    std::fs::write(&path, jwks.to_string()).unwrap();
    path
}

fn jwt(dir: &Path, alg: Algorithm, kid: &str, claims: serde_json::Value) -> String {
    let key = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(HS_SECRET),
        Algorithm::RS256 => {
            EncodingKey::from_rsa_pem(&std::fs::read(dir.join("rsa.pem")).unwrap()).unwrap()
        }
        Algorithm::ES256 => {
            EncodingKey::from_ec_pem(&std::fs::read(dir.join("ec.pem")).unwrap()).unwrap()
        }
        _ => unreachable!(),
    };
    let mut h = Header::new(alg);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, &claims, &key).unwrap()
}

fn config(dir: &Path, jwks: &Path, extra: &str) -> PathBuf {
    let path = dir.join("aiprodd.toml");
    std::fs::write(
        &path,
        format!(
            "[auth]\njwks_file = \"{}\"\njwt_issuer = \"https://issuer.test\"\njwt_audience = \"aiprod-test\"\nadmin_tenants = [\"studio-a\"]\n\
             [[auth.api_keys]]\ntenant = \"studio-a\"\nsha256 = \"{}\"\n\
             [[auth.api_keys]]\ntenant = \"studio-b\"\nsha256 = \"{}\"\n\
             [webhooks]\nallow_private_targets = true\n{extra}",
            jwks.display(),
            aiprod_daemon::auth::hash_api_key(KEY_A),
            aiprod_daemon::auth::hash_api_key(KEY_B),
        ),
    )
    .unwrap();
    path
}

type Authed = ControlClient<InterceptedService<Channel, Token>>;

#[derive(Clone)]
struct Token(Option<String>);

impl tonic::service::Interceptor for Token {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.0 {
            req.metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        Ok(req)
    }
}

async fn client(channel: Channel, token: Option<&str>) -> Authed {
    ControlClient::with_interceptor(channel, Token(token.map(str::to_string)))
}

async fn channel(addr: &str) -> Channel {
    Channel::from_shared(addr.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn wait_done(c: &mut Authed, job_id: &str) -> proto::Job {
    let t = Instant::now();
    loop {
        let j = c
            .get_job(proto::GetJobRequest {
                job_id: job_id.into(),
                user_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        if matches!(
            JobState::try_from(j.state).unwrap(),
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        ) {
            return j;
        }
        assert!(t.elapsed() < Duration::from_secs(120), "job did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn local_request() -> proto::GenerateRequest {
    proto::GenerateRequest {
        prompt: "tenant test".into(),
        tier: Tier::Economy as i32,
        profile: "SOCIAL".into(),
        duration_s: 1.0,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_see_only_their_own_jobs_receipts_and_webhooks() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = make_jwks(dir.path());
    let cfg = config(dir.path(), &jwks, "");
    let daemon = Daemon::start(
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let ch = channel(&daemon.grpc).await;

    // No token: refused. Health needs none.
    let mut anon = client(ch.clone(), None).await;
    let err = anon
        .list_jobs(proto::ListJobsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut wrong = client(ch.clone(), Some("aiprod_not-a-key")).await;
    assert_eq!(
        wrong
            .list_jobs(proto::ListJobsRequest::default())
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    let h = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "aiprod.v1.Control".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        h.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    assert!(http_get(&daemon.http, "/metrics").contains("200 OK"));

    let mut a = client(ch.clone(), Some(KEY_A)).await;
    let mut b = client(ch.clone(), Some(KEY_B)).await;
    let job = a.generate(local_request()).await.unwrap().into_inner();
    assert_eq!(job.user_id, "studio-a");
    let done = wait_done(&mut a, &job.job_id).await;
    assert_eq!(
        JobState::try_from(done.state).unwrap(),
        JobState::Succeeded,
        "{}",
        done.error
    );

    // Tenant B cannot see, watch, cancel or read the receipt of A's job: NOT_FOUND, as if it
    // did not exist.
    let id = || job.job_id.clone();
    let e = b
        .get_job(proto::GetJobRequest {
            job_id: id(),
            user_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = b
        .get_receipt(proto::GetReceiptRequest {
            job_id: id(),
            user_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = b
        .cancel_job(proto::CancelJobRequest {
            job_id: id(),
            user_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = b
        .watch_job(proto::WatchJobRequest {
            job_id: id(),
            user_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let listed = b
        .list_jobs(proto::ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.jobs.is_empty());
    let usage = b
        .get_usage(proto::GetUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(usage.jobs_total, 0);
    // Naming another user is refused outright.
    let e = b
        .get_job(proto::GetJobRequest {
            job_id: id(),
            user_id: "studio-a".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // A sees its own.
    let listed = a
        .list_jobs(proto::ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.jobs.len(), 1);
    a.get_receipt(proto::GetReceiptRequest {
        job_id: id(),
        user_id: String::new(),
    })
    .await
    .unwrap();

    // Webhooks are per tenant too.
    let sub = a
        .create_webhook(proto::CreateWebhookRequest {
            url: "http://127.0.0.1:9/hook".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sub.tenant, "studio-a");
    assert!(sub.secret.starts_with("whsec_"));
    let theirs = b
        .list_webhooks(proto::ListWebhooksRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(theirs.subscriptions.is_empty());
    let e = b
        .delete_webhook(proto::DeleteWebhookRequest {
            subscription_id: sub.subscription_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = b
        .list_webhook_deliveries(proto::ListWebhookDeliveriesRequest {
            subscription_id: sub.subscription_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    a.delete_webhook(proto::DeleteWebhookRequest {
        subscription_id: sub.subscription_id,
    })
    .await
    .unwrap();
    // Draining the node is for admin tenants only.
    let e = b
        .drain(proto::DrainRequest {
            wait: false,
            deadline_s: 0.0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    // aiprodctl sends the token.
    let out = Command::new(env!("CARGO_BIN_EXE_aiprodctl"))
        .args(["--addr", &daemon.grpc, "--token", KEY_A, "--json", "jobs"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["jobs"][0]["job_id"], job.job_id.as_str());
    let out = Command::new(env!("CARGO_BIN_EXE_aiprodctl"))
        .args(["--addr", &daemon.grpc, "jobs"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unauthenticated"));
    let r = a
        .drain(proto::DrainRequest {
            wait: true,
            deadline_s: 5.0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.drained);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwts_verify_against_the_jwks_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = make_jwks(dir.path());
    let cfg = config(dir.path(), &jwks, "");
    let daemon = Daemon::start(
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let ch = channel(&daemon.grpc).await;
    let now = aiprod_daemon::now_unix_ms() / 1000;
    let claims = |sub: &str, exp: i64, iss: &str, aud: &str| serde_json::json!({"sub": sub, "exp": exp, "iat": now, "iss": iss, "aud": aud});
    let good = claims("studio-c", now + 600, "https://issuer.test", "aiprod-test");
    for (alg, kid) in [
        (Algorithm::HS256, "h1"),
        (Algorithm::RS256, "r1"),
        (Algorithm::ES256, "e1"),
    ] {
        let token = jwt(dir.path(), alg, kid, good.clone());
        let mut c = client(ch.clone(), Some(&token)).await;
        let p = c
            .get_preferences(proto::GetPreferencesRequest::default())
            .await
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"))
            .into_inner();
        assert_eq!(p.user_id, "studio-c", "{alg:?}");
    }
    let refused = [
        jwt(
            dir.path(),
            Algorithm::RS256,
            "r1",
            claims("studio-c", now - 3600, "https://issuer.test", "aiprod-test"),
        ),
        jwt(
            dir.path(),
            Algorithm::RS256,
            "r1",
            claims("studio-c", now + 600, "https://evil.test", "aiprod-test"),
        ),
        jwt(
            dir.path(),
            Algorithm::ES256,
            "e1",
            claims("studio-c", now + 600, "https://issuer.test", "other"),
        ),
        // Signed with the RSA key but claiming the EC key's id.
        jwt(dir.path(), Algorithm::RS256, "e1", good.clone()),
        jwt(
            dir.path(),
            Algorithm::HS256,
            "h1",
            claims(
                "not a tenant!",
                now + 600,
                "https://issuer.test",
                "aiprod-test",
            ),
        ),
    ];
    for token in refused {
        let mut c = client(ch.clone(), Some(&token)).await;
        let e = c
            .get_preferences(proto::GetPreferencesRequest::default())
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{}", e.message());
        assert!(!e.message().contains(&token), "the token is not echoed");
    }
}

#[test]
fn without_auth_only_loopback_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_aiprodd"))
        .args(["--data-dir"])
        .arg(dir.path())
        .args(["--grpc-addr", "0.0.0.0:0", "--http-addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("grpc_addr") && err.contains("loopback only"),
        "{err}"
    );
}

/// A CA and a server certificate for localhost/127.0.0.1 signed by it.
fn make_tls(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=aiprod test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_tls_with_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = make_jwks(dir.path());
    let (ca, cert, key) = make_tls(dir.path());
    let cfg = config(
        dir.path(),
        &jwks,
        &format!(
            "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    let daemon = Daemon::start(
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let https = daemon.grpc.replace("http://", "https://");
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(
            std::fs::read(&ca).unwrap(),
        ))
        .domain_name("localhost");
    let ch = Channel::from_shared(https.clone())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut a = client(ch, Some(KEY_A)).await;
    let plans = a
        .plan(plan_request("over tls", "SOCIAL", 1.0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plans.plans.len(), 3);
    // Plaintext to the TLS port fails.
    let plain = Channel::from_shared(daemon.grpc.clone())
        .unwrap()
        .connect()
        .await;
    if let Ok(ch) = plain {
        let mut c = client(ch, Some(KEY_A)).await;
        assert!(c
            .list_jobs(proto::ListJobsRequest::default())
            .await
            .is_err());
    }
    // aiprodctl over TLS with --ca-file.
    let out = Command::new(env!("CARGO_BIN_EXE_aiprodctl"))
        .args([
            "--addr",
            &https.replace("127.0.0.1", "localhost"),
            "--token",
            KEY_B,
            "--ca-file",
        ])
        .arg(&ca)
        .args(["--json", "jobs"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
