//! A `git daemon` on loopback serving one repository made from a fixture, reachable by the
//! engine's BuildKit (inside dockerd 26's network namespace for d26). Stops when dropped.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::engine::Engine;
use super::fixture::{Fixture, tempdir};

pub struct GitServer {
    child: std::process::Child,
    repos: PathBuf,
    pub url: String,
}

impl GitServer {
    pub fn serve(engine: Engine, fixture: &Fixture, port: u16) -> Self {
        let repos = tempdir("git");
        let repo = repos.join("ctx.git");
        let git = |args: &[&str], dir: &std::path::Path| {
            let out = Command::new("git").args(args).current_dir(dir).output().expect("git runs");
            assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let work = fixture.host_path();
        git(&["init", "-q", "-b", "main"], &work);
        git(&["add", "-A"], &work);
        git(&["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "ctx"], &work);
        git(&["clone", "-q", "--bare", work.to_str().unwrap(), repo.to_str().unwrap()], &repos);
        let child = engine
            .in_netns("git")
            .args(["daemon", "--export-all", "--reuseaddr", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", repos.display()))
            .arg(&repos)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0) // its own group, so that Drop stops every process it starts
            .spawn()
            .expect("git daemon starts");
        let server = GitServer { child, repos, url: format!("git://127.0.0.1:{port}/ctx.git") };
        server.wait_ready(engine);
        server
    }

    /// Waits until the daemon answers `git ls-remote` (at most 20 s).
    fn wait_ready(&self, engine: Engine) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let probe = engine.in_netns("git").args(["ls-remote", &self.url]).output();
            if probe.is_ok_and(|o| o.status.success()) {
                return;
            }
            assert!(Instant::now() < deadline, "git daemon at {} did not answer", self.url);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.repos);
    }
}
