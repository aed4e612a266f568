//! The data directory's disk fills while a job is encoding: the job ends FAILED with a reason
//! that names the disk and the file, with a receipt of what it spent; no output and no partial
//! file is left; new jobs are refused while the disk stays full; the SQLite store stays intact;
//! and once space is back the same daemon runs the next job to SUCCEEDED.
//!
//! The data directory is a 40 MiB tmpfs mounted for the test (root only: elsewhere the test
//! prints SKIPPED), filled with a ballast file once the job is PROCESSING.

mod common;

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aiprod_daemon::proto::{self, JobState, Tier};
use common::*;
use tonic::Code;

const TMPFS_BYTES: u64 = 40 << 20;
/// The daemon's free-space guard: below it, Generate is refused and jobs do not start.
const MIN_FREE_BYTES: u64 = 4 << 20;

/// A tmpfs mounted on a temporary directory; unmounted (lazily, so even with files open) on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size_bytes: u64) -> Result<Tmpfs, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("needs root to mount a tmpfs".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let target = CString::new(dir.path().as_os_str().as_bytes()).map_err(|e| e.to_string())?;
        let data =
            CString::new(format!("size={size_bytes},mode=0755")).map_err(|e| e.to_string())?;
        // SAFETY: every pointer is a valid NUL-terminated string that outlives the call.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                data.as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(format!(
                "needs root to mount a tmpfs (mount: {})",
                std::io::Error::last_os_error()
            ));
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Ok(target) = CString::new(self.dir.path().as_os_str().as_bytes()) {
            // SAFETY: a valid NUL-terminated path.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Writes `path` until the file system refuses (ENOSPC); returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("create ballast");
    let mut written = 0u64;
    for chunk_len in [1 << 20, 4096, 1] {
        let chunk = vec![0xA5u8; chunk_len];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("writing ballast {}: {e}", path.display()),
            }
        }
    }
    written
}

fn free_bytes(path: &Path) -> u64 {
    aiprod_daemon::jobs::disk_space(path).expect("statvfs").0
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn social(prompt: &str, duration_s: f64) -> proto::GenerateRequest {
    proto::GenerateRequest {
        prompt: prompt.into(),
        tier: Tier::Economy as i32,
        profile: "SOCIAL".into(),
        duration_s,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_mid_encode_fails_the_job_cleanly_and_the_node_recovers() {
    let tmpfs = match Tmpfs::mount(TMPFS_BYTES) {
        Ok(t) => t,
        Err(why) => {
            eprintln!("\n*** SKIPPED: {why} ***\n");
            return;
        }
    };
    let data = tmpfs.path().join("data");
    let ballast = tmpfs.path().join("ballast");
    let min_free = MIN_FREE_BYTES.to_string();
    let mut daemon = Daemon::start(&data, &["--min-free-disk-bytes", &min_free]);
    let mut client = daemon.client().await;

    // A 3 s SOCIAL clip: rendered at 270x480, then scaled and encoded at 1080x1920. The MP4 is
    // written faststart, so the output file is written at the end of the encode: filling the
    // disk as soon as the job is PROCESSING makes that write fail.
    let job = client
        .generate(social("disk fills mid-job", 3.0))
        .await
        .unwrap()
        .into_inner();
    let job_dir = data.join("jobs").join(&job.job_id);
    wait_until(&mut client, &job.job_id, Duration::from_secs(120), |j| {
        state(j) == JobState::Processing || aiprod_daemon::jobs::is_final(state(j))
    })
    .await;
    let filled = fill(&ballast);
    assert!(filled > 0);
    println!(
        "filled {filled} bytes; {} bytes left on the tmpfs",
        free_bytes(tmpfs.path())
    );

    let done = wait_final(&mut client, &job.job_id, Duration::from_secs(300)).await;
    assert_eq!(state(&done), JobState::Failed, "{done:?}");
    assert!(
        done.error.contains("no space left on device while writing")
            && done.error.contains(&job.job_id),
        "the reason names the disk and the file: {}",
        done.error
    );
    assert!(done.output_path.is_empty(), "{}", done.output_path);
    // Nothing of the job is left on disk: no output, no partial, no intermediate footage.
    let left = files_under(&job_dir);
    assert!(left.is_empty(), "files left in the job directory: {left:?}");
    // The receipt records what was spent: the render and the processing until it failed.
    let r = receipt(&mut client, &job.job_id).await;
    assert_eq!(r.final_state, JobState::Failed as i32);
    let actual = |item: &str| {
        r.lines
            .iter()
            .find(|l| l.item == item)
            .map(|l| l.actual_usd_micros)
            .unwrap_or_else(|| panic!("no {item} line in {:?}", r.lines))
    };
    assert!(actual("compute.generate") > 0, "{:?}", r.lines);
    assert!(actual("compute.encode") > 0, "{:?}", r.lines);
    assert_eq!(
        r.actual_total_usd_micros,
        r.lines.iter().map(|l| l.actual_usd_micros).sum::<i64>()
    );
    assert_eq!(done.actual_cost_usd_micros, r.actual_total_usd_micros);

    // While the disk stays full, new work is refused up front (the job's files were freed, so
    // fill what they gave back too).
    fill(&tmpfs.path().join("ballast2"));
    let err = client.generate(social("no room", 1.0)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("bytes free in") && err.message().contains("data"),
        "{}",
        err.message()
    );
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "aiprodd exited on a full disk"
    );

    // Space back: the same daemon serves the next job to the end.
    std::fs::remove_file(&ballast).unwrap();
    std::fs::remove_file(tmpfs.path().join("ballast2")).unwrap();
    assert!(free_bytes(tmpfs.path()) > MIN_FREE_BYTES);
    let next = client
        .generate(social("space is back", 1.0))
        .await
        .unwrap()
        .into_inner();
    let next = wait_final(&mut client, &next.job_id, Duration::from_secs(300)).await;
    assert_eq!(state(&next), JobState::Succeeded, "{}", next.error);
    let out = ffprobe(&next.output_path);
    assert_eq!(out["streams"][0]["width"], 1080);
    // The failed job's record survived the full disk as written.
    let failed = client
        .get_job(proto::GetJobRequest {
            job_id: job.job_id.clone(),
            user_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&failed), JobState::Failed);
    assert_eq!(failed.error, done.error);

    // And SQLite found nothing wrong with the database it wrote through the full disk.
    daemon.kill();
    let conn = rusqlite::Connection::open(data.join("aiprod.db")).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}
