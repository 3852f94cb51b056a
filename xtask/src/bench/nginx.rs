//! nginx serving static files: the ceiling a dynamic answer is measured against. Its own
//! configuration in target/bench/nginx, on an ephemeral port of 127.0.0.1, in the foreground
//! (`daemon off`), stopped when dropped; never the system service. Run as root, it runs as
//! `nobody` (setpriv) with its run directory handed to that user.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::aws_local::{free_port, http};

/// The uid and gid of `nobody` on Debian.
const NOBODY: u32 = 65534;

pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
}

impl Nginx {
    /// Serves `www` (files readable by everyone) with a configuration written to `run_dir`.
    pub fn start(bin: &str, run_dir: &Path, www: &Path) -> anyhow::Result<Nginx> {
        if run_dir.exists() {
            std::fs::remove_dir_all(run_dir)?;
        }
        std::fs::create_dir_all(run_dir.join("tmp"))?;
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let dir = run_dir.display();
        // Two workers for two cores, as ota-server serves on one thread a core; no access
        // log (the server writes none per request either); keep-alive without a request cap so
        // wrk's connections live through the run, as they do against the server.
        let conf = format!(
            "worker_processes 2;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000000;
    keepalive_timeout 65;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    types {{ application/json json; application/octet-stream bin; }}
    server {{
        listen {addr};
        root {www};
        # The check loads POST, as devices do, and nginx refuses a POST to a static file (405):
        # serve the file instead, so that nginx is sent the very requests the server is.
        error_page 405 =200 $uri;
    }}
}}
",
            www = www.display()
        );
        let conf_path = run_dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let as_root = is_root();
        if as_root {
            chown_tree(run_dir, NOBODY)?;
        }
        let mut cmd = if as_root {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(bin);
            c
        } else {
            Command::new(bin)
        };
        let log = std::fs::File::create(run_dir.join("stderr.log"))?;
        let child = cmd
            .arg("-p")
            .arg(run_dir)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {bin}"))?;
        let mut nginx = Nginx { child, addr };
        let started = Instant::now();
        while http::request(addr, "GET", "/", &[], b"").is_err() {
            if let Some(status) = nginx.child.try_wait()? {
                let err = std::fs::read_to_string(run_dir.join("stderr.log")).unwrap_or_default();
                bail!("nginx exited with {status}:\n{err}");
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("nginx did not answer on {addr} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(nginx)
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGKILL to the master (our child) leaves its workers running, so ask it to stop
        // gracefully first (SIGQUIT lets the workers finish and exit with it).
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn chown_tree(dir: &Path, uid: u32) -> anyhow::Result<()> {
    std::os::unix::fs::chown(dir, Some(uid), Some(uid))?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            chown_tree(&path, uid)?;
        } else {
            std::os::unix::fs::chown(&path, Some(uid), Some(uid))?;
        }
    }
    Ok(())
}
