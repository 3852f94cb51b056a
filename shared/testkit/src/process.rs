//! A process a test starts and owns: the service's environment without the developer's, its
//! output drained and kept for failure messages, and a stop that cannot leave it running.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// The line `ota-server` prints once it accepts connections, followed by its base URL.
const LISTEN_PREFIX: &str = "ota-server listening on ";

/// How long a graceful stop may take before the process is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How many of the last lines a failure shows: enough for the start and the error, without
/// burying the test's own message under a long run's requests.
const DUMP_LINES: usize = 200;

/// Everything the processes of one deployment printed, stderr lines marked `[stderr]`. One log
/// outlives the restarts of its deployment, so that a failure after a restart shows both runs.
#[derive(Clone, Default)]
pub struct Output(Arc<Mutex<Vec<String>>>);

impl Output {
    fn push(&self, line: String) {
        self.0.lock().map(|mut lines| lines.push(line)).ok();
    }

    /// Prints the last lines to stderr, which the test harness shows with the failure.
    pub fn dump(&self) {
        if let Ok(lines) = self.0.lock() {
            eprintln!("---- deployment output ({} lines) ----", lines.len());
            for line in &lines[lines.len().saturating_sub(DUMP_LINES)..] {
                eprintln!("{line}");
            }
            eprintln!("---- end of deployment output ----");
        }
    }
}

/// A running child process, killed when dropped (the output dumped too when a test is failing).
pub struct Process {
    child: Child,
    /// Whether the child leads a process group of its own and is signalled as that group.
    group: bool,
    output: Output,
    /// Reaped: its pid (and group id) may belong to another process by now.
    ended: bool,
}

impl Process {
    /// Spawns `cmd` with the test's `env` on top of it. The receiver gets the address of the
    /// first `ota-server listening on <base URL>` line, if the process prints one.
    pub fn spawn(
        cmd: Command,
        env: &[(String, String)],
        output: &Output,
    ) -> (Process, mpsc::Receiver<String>) {
        Self::start(cmd, env, output, false)
    }

    /// Spawns `cmd` as the leader of a new process group, so that stopping it stops whatever
    /// it started too (the functions under `cargo lambda watch`).
    pub fn spawn_group(mut cmd: Command, env: &[(String, String)], output: &Output) -> Process {
        cmd.process_group(0);
        Self::start(cmd, env, output, true).0
    }

    fn start(
        mut cmd: Command,
        env: &[(String, String)],
        output: &Output,
        group: bool,
    ) -> (Process, mpsc::Receiver<String>) {
        // Nothing from the developer's environment may change what the tests see: of the
        // service's settings, only what the command itself sets and the test's own reach it.
        let set: Vec<_> = cmd.get_envs().map(|(name, _)| name.to_owned()).collect();
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("OTA_") && !set.contains(&name) {
                cmd.env_remove(&name);
            }
        }
        cmd.env("RUST_LOG", "warn")
            .envs(env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {:?}: {e}", cmd.get_program()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, listening) = mpsc::channel();
        // Both pipes are drained for the process's whole life, so it never blocks on a full one.
        let log = output.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix(LISTEN_PREFIX)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(url.trim().to_owned());
                }
                log.push(line);
            }
        });
        let log = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.push(format!("[stderr] {line}"));
            }
        });
        let process = Process {
            child,
            group,
            output: output.clone(),
            ended: false,
        };
        (process, listening)
    }

    /// For a caller that waits for the process in a way of its own (the e2e suite asks the
    /// functions' `/health`).
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Graceful stop: SIGTERM, then SIGKILL if it is still running after a timeout.
    pub fn stop(self) {
        self.terminate();
        self.exit_status(STOP_TIMEOUT);
    }

    /// SIGTERM without waiting: what an orchestrator's stop looks like while clients are still
    /// talking to the process; [`exit_status`](Self::exit_status) then tells how it ended.
    pub fn terminate(&self) {
        self.signal("-TERM");
    }

    /// How the process ended by itself within `timeout`, or None: then it is killed.
    pub fn exit_status(mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.ended = true;
                    return Some(status);
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    self.kill_now();
                    return None;
                }
            }
        }
    }

    /// SIGKILL: what a crash or a power cut looks like to the process.
    pub fn kill(mut self) {
        self.kill_now();
    }

    fn kill_now(&mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
        self.ended = true;
    }

    fn signal(&self, signal: &str) {
        // std signals nothing but SIGKILL, and only to the child itself, not to its group.
        let pid = self.child.id();
        let target = match self.group {
            true => format!("-{pid}"),
            false => pid.to_string(),
        };
        let _ = Command::new("kill")
            .args([signal, "--", &target])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if !self.ended {
            self.kill_now();
            if std::thread::panicking() {
                self.output.dump();
            }
        }
    }
}
