//! The real `otactl` binary against a real `ota-server`: every subcommand, JSON output parsed
//! and checked, and the refusals (exit 1, one line) and usage errors (exit 2).

mod harness;

use firmware_samples::{ImageSpec, Target};
use harness::{Server, s, sample, write_image};
use serde_json::{Value, json};

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Publishes the committed esp32c3 1.0.0 sample as `demo` and returns its record.
fn publish_sample(server: &Server, name: &str) -> Value {
    let out = server
        .otactl(&[
            "-o",
            "json",
            "upload",
            s(&sample(name)),
            "--device-type",
            "demo",
        ])
        .json();
    assert_eq!(out["outcome"], "published", "{out}");
    out["firmware"].clone()
}

#[test]
fn upload_reads_the_version_from_the_image_and_publishes_ready() {
    let server = Server::start();
    let out = server
        .otactl(&[
            "--output",
            "json",
            "upload",
            s(&sample("demo-esp32c3-1.1.0.bin")),
            "--device-type",
            "demo",
            "--build",
            "7",
            "--channel",
            "beta",
            "--notes",
            "Faster boot",
            "--min-current-version",
            "1.0.0",
        ])
        .json();
    let fw = &out["firmware"];
    assert_eq!(out["outcome"], "published");
    assert_eq!(fw["version"], "1.1.0");
    assert_eq!(fw["device_type"], "demo");
    assert_eq!(fw["build_number"], 7);
    assert_eq!(fw["channel"], "beta");
    assert_eq!(fw["release_notes"], "Faster boot");
    assert_eq!(fw["min_current_version"], "1.0.0");
    assert_eq!(fw["state"], "ready");
    assert_eq!(fw["chip"], "esp32c3");
    assert_eq!(fw["file_size"], 65536);
    // Nothing is left to resume once the release is final.
    let left = std::fs::read_dir(server.state.path().join("uploads")).map_or(0, Iterator::count);
    assert_eq!(
        left, 0,
        "the remembered upload URL is forgotten after finalize"
    );
}

#[test]
fn firmware_list_get_update_deactivate() {
    let server = Server::start();
    let fw = publish_sample(&server, "demo-esp32c3-1.0.0.bin");
    let id = fw["id"].as_str().unwrap();
    publish_sample(&server, "demo-esp32c3-1.1.0.bin");

    let list = server
        .otactl(&["-o", "json", "firmware", "list", "--device-type", "demo"])
        .json();
    let versions: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1.1.0", "1.0.0"], "newest first");
    let paged = server
        .otactl(&["-o", "json", "firmware", "list", "--limit", "1"])
        .json();
    assert_eq!(paged["items"].as_array().unwrap().len(), 1);
    let cursor = paged["next_cursor"].as_str().expect("a second page");
    let rest = server
        .otactl(&[
            "-o", "json", "firmware", "list", "--limit", "1", "--cursor", cursor,
        ])
        .json();
    assert_eq!(rest["items"][0]["version"], "1.0.0");

    let got = server.otactl(&["-o", "json", "firmware", "get", id]).json();
    assert_eq!(got["id"], id);
    assert_eq!(got["state"], "ready");

    let updated = server
        .otactl(&[
            "-o",
            "json",
            "firmware",
            "update",
            id,
            "--notes",
            "now with notes",
            "--channel",
            "beta",
            "--min-current-version",
            "0.9.0",
        ])
        .json();
    assert_eq!(updated["release_notes"], "now with notes");
    assert_eq!(updated["channel"], "beta");
    assert_eq!(updated["min_current_version"], "0.9.0");
    let cleared = server
        .otactl(&[
            "-o",
            "json",
            "firmware",
            "update",
            id,
            "--clear-min-current-version",
        ])
        .json();
    assert_eq!(cleared["min_current_version"], Value::Null);

    let gone = server
        .otactl(&["-o", "json", "firmware", "deactivate", id])
        .json();
    assert_eq!(gone["is_active"], false);

    // Tables for people: a header and one line per release.
    let table = server.otactl(&["firmware", "list"]);
    table.ok();
    assert!(table.stdout.starts_with("ID "), "{}", table.stdout);
    assert_eq!(table.stdout.lines().count(), 3, "{}", table.stdout);
    let one = server.otactl(&["firmware", "get", id]);
    assert!(
        one.ok().stdout.contains("state                ready"),
        "{}",
        one.stdout
    );

    let nothing = server.otactl(&["firmware", "update", id]);
    assert_eq!(nothing.code, 2, "{nothing:#?}");
    let missing = server.otactl(&["firmware", "get", "no-such-id"]).refused();
    assert!(missing.contains("404"), "{missing}");
}

#[test]
fn rerunning_an_upload_that_finished_changes_nothing() {
    let server = Server::start();
    let first = publish_sample(&server, "demo-esp32c3-1.0.0.bin");
    let again = server
        .otactl(&[
            "-o",
            "json",
            "upload",
            s(&sample("demo-esp32c3-1.0.0.bin")),
            "--device-type",
            "demo",
        ])
        .json();
    assert_eq!(again["outcome"], "already_published");
    assert_eq!(again["firmware"]["id"], first["id"]);
    let list = server.otactl(&["-o", "json", "firmware", "list"]).json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[test]
fn a_duplicate_version_with_other_bytes_is_409_exit_1() {
    let server = Server::start();
    publish_sample(&server, "demo-esp32c3-1.0.0.bin");
    let dir = tempfile::tempdir().unwrap();
    let other = write_image(
        dir.path(),
        "other.bin",
        &ImageSpec {
            project_name: "other".into(),
            ..ImageSpec::new(Target::Esp32c3, "1.0.0")
        }
        .build(),
    );
    let line = server
        .otactl(&["upload", s(&other), "--device-type", "demo"])
        .refused();
    assert!(line.contains("409 (Conflict)"), "{line}");
    assert!(line.contains("already exists"), "{line}");
    assert!(line.contains("other bytes"), "{line}");
}

#[test]
fn an_image_the_server_refuses_is_422_exit_1_and_stays_rejected() {
    let server = Server::start();
    // The device type takes its chip from its first image: esp32c3.
    publish_sample(&server, "demo-esp32c3-1.0.0.bin");
    let dir = tempfile::tempdir().unwrap();
    let esp32 = write_image(
        dir.path(),
        "esp32.bin",
        &ImageSpec::new(Target::Esp32, "1.2.0").build(),
    );
    let line = server
        .otactl(&["upload", s(&esp32), "--device-type", "demo"])
        .refused();
    assert!(line.starts_with("otactl: server refused: 422"), "{line}");
    assert!(line.contains("esp32"), "{line}");

    let rejected = server
        .otactl(&["-o", "json", "firmware", "list", "--state", "rejected"])
        .json();
    assert_eq!(rejected["items"][0]["version"], "1.2.0");

    // A re-run says what state the release is in instead of trying again.
    let again = server
        .otactl(&["upload", s(&esp32), "--device-type", "demo"])
        .refused();
    assert!(again.contains("is rejected"), "{again}");
}

#[test]
fn an_invalid_image_is_refused_locally_before_anything_is_sent() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(sample("demo-esp32c3-1.0.0.bin")).unwrap();
    bytes.truncate(5000);
    let cut = write_image(dir.path(), "cut.bin", &bytes);

    let line = server
        .otactl(&["upload", s(&cut), "--device-type", "demo"])
        .refused();
    assert!(line.contains("truncated"), "{line}");
    assert!(line.contains("nothing was sent"), "{line}");
    let list = server.otactl(&["-o", "json", "firmware", "list"]).json();
    assert_eq!(list["items"], json!([]));

    let inspected = server.otactl(&["-o", "json", "inspect", s(&cut)]);
    assert_eq!(inspected.code, 1, "{inspected:#?}");
    let v: Value = serde_json::from_str(&inspected.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["reasons"][0]["code"], "truncated");

    let empty = write_image(dir.path(), "empty.bin", b"");
    assert_eq!(server.otactl(&["inspect", s(&empty)]).code, 1);
    let missing = server.otactl(&["inspect", "/no/such/file.bin"]);
    assert_eq!(missing.code, 1, "{missing:#?}");
    assert!(missing.stderr.contains("cannot open"), "{missing:#?}");

    // --version must agree with the image: the server would reject the release otherwise.
    let line = server
        .otactl(&[
            "upload",
            s(&sample("demo-esp32c3-1.0.0.bin")),
            "--device-type",
            "demo",
            "--version",
            "2.0.0",
        ])
        .refused();
    assert!(
        line.contains("differs from the version in the image"),
        "{line}"
    );
}

#[test]
fn inspect_prints_what_the_server_would_read() {
    let v = Server::start()
        .otactl(&["-o", "json", "inspect", s(&sample("demo-esp32-1.0.0.bin"))])
        .json();
    assert_eq!(v["valid"], true);
    assert_eq!(v["image"]["chip"], "esp32");
    assert_eq!(v["image"]["app"]["version"], "1.0.0");
    assert_eq!(v["image"]["app"]["project_name"], "demo");
    assert_eq!(v["file_size"], 65536);
    assert_eq!(v["file_hash"].as_str().unwrap().len(), 64);
}

#[test]
fn a_bad_token_is_401_exit_1_on_one_line() {
    let server = Server::start();
    let bad = server.otactl_with(&["firmware", "list"], &[("OTA_TOKEN", "not-a-jwt")]);
    let line = bad.refused();
    assert!(line.contains("401 (Unauthorized)"), "{line}");

    let upload = server.otactl_with(
        &[
            "upload",
            s(&sample("demo-esp32c3-1.0.0.bin")),
            "--device-type",
            "demo",
        ],
        &[("OTA_TOKEN", "not-a-jwt")],
    );
    assert!(upload.refused().contains("401"), "{upload:#?}");
}

#[test]
fn usage_errors_exit_2() {
    let server = Server::start();
    for args in [
        &["firmware", "lst"][..],
        &["upload"][..],
        &["rollout", "set", "x"][..],
        &["--output", "yaml", "metrics"][..],
        &["rollout", "create", "--firmware", "x", "--target", "canary"][..],
        &["rollout", "set", "x", "--percentage", "150"][..],
        &["rollout", "set", "x", "--percentage", "NaN"][..],
        &["logs", "--follow", "--interval", "1e300"][..],
        &["logs", "--interval", "-1"][..],
        &[
            "token",
            "mint",
            "--role",
            "admin",
            "--secret-file",
            "s",
            "--ttl",
            "9223372036854775807",
        ][..],
        &[
            "token",
            "mint",
            "--role",
            "admin",
            "--secret-file",
            "s",
            "--ttl",
            "0",
        ][..],
        &["devices", "token", "d", "--ttl", "-5"][..],
        &[
            "upload",
            "f.bin",
            "--device-type",
            "demo",
            "--min-current-version",
            "banana",
        ][..],
    ] {
        let run = server.otactl(args);
        assert_eq!(run.code, 2, "{args:?}: {run:#?}");
    }
    let dt = server.otactl(&[
        "upload",
        s(&sample("demo-esp32c3-1.0.0.bin")),
        "--device-type",
        "Not A Type",
    ]);
    assert_eq!(dt.code, 2, "{dt:#?}");
    let no_server = server.otactl_with(&["metrics"], &[("OTA_SERVER", "")]);
    assert_eq!(no_server.code, 2, "{no_server:#?}");
    assert!(no_server.stderr.contains("OTA_SERVER"), "{no_server:#?}");
    let not_url = server.otactl(&["--server", "localhost:1", "metrics"]);
    assert_eq!(not_url.code, 2, "{not_url:#?}");
    // An unreachable server is a failure (1), said on one line.
    let down = server.otactl(&["--server", "http://127.0.0.1:9", "metrics"]);
    assert!(down.refused().contains("cannot reach"), "{down:#?}");
}

#[test]
fn rollout_create_list_get_set_pause_resume_abort() {
    let server = Server::start();
    let fw = publish_sample(&server, "demo-esp32c3-1.1.0.bin");
    let fw_id = fw["id"].as_str().unwrap();

    let created = server
        .otactl(&[
            "-o",
            "json",
            "rollout",
            "create",
            "--firmware",
            fw_id,
            "--target",
            "canary",
            "--percentage",
            "10",
            "--failure-threshold",
            "20",
            "--min-reports",
            "5",
        ])
        .json();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["name"], "demo 1.1.0 canary");
    assert_eq!(created["target_type"], "canary");
    assert_eq!(created["rollout_percentage"], 10.0);
    assert_eq!(created["failure_threshold_percent"], 20.0);
    assert_eq!(created["min_reports"], 5);
    assert_eq!(created["state"], "active");
    assert!(created["progress"].is_object());

    let list = server
        .otactl(&["-o", "json", "rollout", "list", "--firmware", fw_id])
        .json();
    assert_eq!(list["items"][0]["id"], id.as_str());
    let got = server.otactl(&["-o", "json", "rollout", "get", &id]).json();
    assert_eq!(got["revision"], created["revision"]);

    let set = server
        .otactl(&["-o", "json", "rollout", "set", &id, "--percentage", "50"])
        .json();
    assert_eq!(set["rollout_percentage"], 50.0);
    let stale = server
        .otactl(&["rollout", "pause", &id, "--revision", "1"])
        .refused();
    assert!(stale.contains("409"), "{stale}");
    let paused = server
        .otactl(&["-o", "json", "rollout", "pause", &id])
        .json();
    assert_eq!(paused["state"], "paused");
    let resumed = server
        .otactl(&["-o", "json", "rollout", "resume", &id])
        .json();
    assert_eq!(resumed["state"], "active");
    let aborted = server
        .otactl(&["-o", "json", "rollout", "abort", &id])
        .json();
    assert_eq!(aborted["state"], "aborted");
    let final_ = server.otactl(&["rollout", "resume", &id]).refused();
    assert!(final_.contains("409"), "{final_}");

    let list = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(list.path(), "# the lab\ndev-3\n\n  dev-2  \n").unwrap();
    let specific = server
        .otactl(&[
            "-o",
            "json",
            "rollout",
            "create",
            "--firmware",
            fw_id,
            "--name",
            "three devices",
            "--target",
            "specific",
            "--device",
            "dev-1",
            "--device",
            "dev-2",
            "--devices-file",
            s(list.path()),
        ])
        .json();
    assert_eq!(specific["named_devices"], 3, "dev-2 once");
    let specific_id = specific["id"].as_str().unwrap();
    let first = server
        .otactl(&[
            "-o",
            "json",
            "rollout",
            "devices",
            specific_id,
            "--limit",
            "2",
        ])
        .json();
    assert_eq!(
        first["items"],
        json!([{"device_id": "dev-1"}, {"device_id": "dev-2"}])
    );
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = server.otactl(&["rollout", "devices", specific_id, "--cursor", cursor]);
    assert_eq!(
        rest.ok()
            .stdout
            .lines()
            .skip(1)
            .map(str::trim)
            .collect::<Vec<_>>(),
        ["dev-3"]
    );
    let shown = server.otactl(&["rollout", "get", specific_id]);
    assert!(
        shown.ok().stdout.contains("named devices"),
        "{}",
        shown.stdout
    );
    let group = server
        .otactl(&[
            "-o",
            "json",
            "rollout",
            "create",
            "--firmware",
            fw_id,
            "--target",
            "group",
            "--group",
            "lab",
        ])
        .json();
    assert_eq!(group["target_filter"]["groups"], json!(["lab"]));
    let table = server.otactl(&["rollout", "list"]);
    assert_eq!(table.ok().stdout.lines().count(), 4, "{}", table.stdout);
}

/// Publishes the 1.1.0 sample and returns its id.
fn publish_1_1_0(server: &Server) -> String {
    let fw = publish_sample(server, "demo-esp32c3-1.1.0.bin");
    fw["id"].as_str().unwrap().to_owned()
}

/// Creates a rollout of release `fw_id` with `args` and returns its id.
fn create_rollout(server: &Server, fw_id: &str, args: &[&str]) -> String {
    let mut all = vec!["-o", "json", "rollout", "create", "--firmware", fw_id];
    all.extend(args);
    let created = server.otactl(&all).json();
    created["id"].as_str().unwrap().to_owned()
}

#[test]
fn rollout_create_with_stages_gate_and_schedule_stores_them() {
    let server = Server::start();
    let fw_id = publish_1_1_0(&server);
    let id = create_rollout(
        &server,
        &fw_id,
        &[
            "--stages",
            "1:3600:20,10:14400,100",
            "--max-failure",
            "5",
            "--max-crash",
            "2.5",
            "--min-reports",
            "12",
            "--window",
            "mon-fri@01:00-05:00",
            "--window",
            "sat,sun@22:00-02:00",
            "--window",
            "12:00-13:00",
            "--start-at",
            "2036-12-10T02:00:00Z",
            "--end-at",
            "2037-01-10T02:00:00+01:00",
        ],
    );
    let got = server.otactl(&["-o", "json", "rollout", "get", &id]).json();
    assert_eq!(
        got["stages"],
        json!([
            {"percent": 1.0, "soak_s": 3600, "min_devices": 20},
            {"percent": 10.0, "soak_s": 14400, "min_devices": 1},
            {"percent": 100.0, "soak_s": 0, "min_devices": 1},
        ])
    );
    assert_eq!(got["stage_index"], 0);
    assert_eq!(got["rollout_percentage"], 1.0, "the first stage's");
    assert_eq!(
        got["health_gate"],
        json!({"max_failure_percent": 5.0, "max_crash_percent": 2.5, "min_reports": 12})
    );
    let every_day = json!(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]);
    assert_eq!(
        got["schedule"],
        json!({
            "start_at": "2036-12-10T02:00:00Z",
            "end_at": "2037-01-10T01:00:00Z",
            "windows": [
                {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "01:00", "end": "05:00"},
                {"days": ["sat", "sun"], "start": "22:00", "end": "02:00"},
                {"days": every_day, "start": "12:00", "end": "13:00"},
            ],
        })
    );
    let table = server.otactl(&["rollout", "get", &id]);
    let text = &table.ok().stdout;
    for line in [
        "stages             1:3600:20,10:14400:1,100:0:1",
        "stage              1 of 3 (1%, started 2036-12-10T02:00:00Z)",
        "health gate        max failure 5%, max crash 2.5%, min reports 12",
        "schedule           start 2036-12-10T02:00:00Z, end 2037-01-10T01:00:00Z, \
         windows mon,tue,wed,thu,fri@01:00-05:00 sat,sun@22:00-02:00 12:00-13:00",
        "health             failure - (0 of 0 final outcomes), crash - (0 of 0 devices on the \
         release), completed devices 0",
    ] {
        assert!(text.contains(line), "{line:?} in:\n{text}");
    }

    // Well-formed flags the server refuses come back as its 400, naming the member.
    for (flags, field) in [
        (&["--stages", "10,5"][..], "stages[1].percent"),
        (&["--window", "01:00-01:00"][..], "schedule.windows[0].end"),
        (&["--install-timeout", "0"][..], "install_timeout_s"),
        (&["--max-offers-per-hour", "0"][..], "max_offers_per_hour"),
    ] {
        let mut args = vec!["rollout", "create", "--firmware", &fw_id];
        args.extend(flags);
        let refused = server.otactl(&args).refused();
        assert!(
            refused.contains("400") && refused.contains(field),
            "{refused}"
        );
    }
}

#[test]
fn rollout_create_paces_offers_and_times_out_silent_installs() {
    let server = Server::start();
    let fw_id = publish_1_1_0(&server);
    let pacing = [
        "--stages",
        "5,100",
        "--install-timeout",
        "7200",
        "--max-offers-per-hour",
        "500",
    ];
    let id = create_rollout(&server, &fw_id, &pacing);
    let got = server.otactl(&["-o", "json", "rollout", "get", &id]).json();
    assert_eq!(got["install_timeout_s"], 7200);
    assert_eq!(got["max_offers_per_hour"], 500);
    let table = server.otactl(&["rollout", "get", &id]);
    // Lines with their column padding folded: the key column is as wide as the widest key.
    let lines: Vec<String> = table
        .ok()
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for line in ["install timeout 7200 s", "max offers an hour 500"] {
        assert!(lines.iter().any(|l| l == line), "{line:?} in {lines:#?}");
    }
}

#[test]
fn bad_staging_flags_are_usage_errors_naming_the_flag() {
    for (flag, value) in [
        ("--stages", "1:x"),
        ("--stages", ""),
        ("--stages", "1,,100"),
        ("--stages", "0,100"),
        ("--stages", "10:60:1:1"),
        ("--window", "monday@01:00-05:00"),
        ("--window", "mon-fri"),
        ("--window", "25:00-01:00"),
        ("--start-at", "tomorrow"),
        ("--end-at", "2026-12-10"),
        ("--max-failure", "101"),
        ("--max-crash", "NaN"),
        ("--install-timeout", "1.5"),
        ("--max-offers-per-hour", "lots"),
    ] {
        let run = harness::Run::from(
            std::process::Command::new(harness::otactl_bin())
                .args(["rollout", "create", "--firmware", "f", flag, value])
                .env("OTA_SERVER", "http://127.0.0.1:9")
                .env("OTA_TOKEN", "t")
                .output()
                .unwrap(),
        );
        assert_eq!(run.code, 2, "{flag} {value:?}: {run:#?}");
        assert!(
            run.stderr.contains(&format!("'{flag} <")) && !run.stderr.contains("panicked"),
            "{flag} {value:?}: {run:#?}"
        );
    }
}

#[test]
fn promote_starts_the_next_stage_until_the_last() {
    let server = Server::start();
    // No device reports success, so the first stage (min devices 1) only ends by a promote.
    let id = create_rollout(&server, &publish_1_1_0(&server), &["--stages", "50,100"]);
    let promoted = server
        .otactl(&["-o", "json", "rollout", "promote", &id])
        .json();
    assert_eq!(promoted["stage_index"], 1);
    assert_eq!(promoted["rollout_percentage"], 100.0);
    let decisions = promoted["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 1, "{promoted}");
    assert_eq!(decisions[0]["kind"], "promote");
    assert_eq!(
        (&decisions[0]["from_stage"], &decisions[0]["to_stage"]),
        (&json!(0), &json!(1))
    );
    let last = server.otactl(&["rollout", "promote", &id]).refused();
    assert!(last.contains("409"), "no stage after the last: {last}");
    let stale = server
        .otactl(&["rollout", "promote", &id, "--revision", "1"])
        .refused();
    assert!(stale.contains("409"), "{stale}");
}

#[test]
fn watch_prints_each_change_and_ends_when_the_rollout_cannot_move() {
    use std::process::Stdio;
    use std::time::Duration;

    let server = Server::start();
    let fw_id = publish_1_1_0(&server);
    let id = create_rollout(
        &server,
        &fw_id,
        &["--stages", "50:0,100", "--max-failure", "5"],
    );
    let mut child = server
        .command(&["rollout", "watch", &id, "--every", "0.2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = harness::lines(&mut child);
    let next_line = || {
        rx.recv_timeout(Duration::from_secs(20))
            .expect("watch printed nothing within 20 s")
    };
    let first = next_line();
    assert!(
        first.starts_with("state active, stage 1 of 2 (50%, started "),
        "{first}"
    );
    assert!(next_line().starts_with("  health failure - (0 of 0"));
    server.otactl(&["rollout", "promote", &id]).ok();
    assert!(next_line().starts_with("state active, stage 2 of 2 (100%"));
    next_line();
    let decision = next_line();
    assert!(
        decision.starts_with("  decision ")
            && decision.ends_with(" promote: stage 1 -> 2, by ota-server"),
        "{decision}"
    );
    assert_eq!(
        harness::exits_within(&mut child, Duration::from_secs(10)),
        0
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("is in its last stage: watch ends"),
        "{stderr}"
    );

    // Already where it stays: one block, with the decisions so far, and done.
    let again = server.otactl(&["rollout", "watch", &id]);
    assert_eq!(again.ok().stdout.lines().count(), 3, "{again:#?}");
    let json = server.otactl(&["-o", "json", "rollout", "watch", &id]);
    let answer: Value = serde_json::from_str(json.ok().stdout.trim()).unwrap();
    assert_eq!(answer["stage_index"], 1, "one line, the server's answer");

    // A paused rollout ends the watch; Ctrl-C ends one that could go on.
    let paused = create_rollout(&server, &fw_id, &["--stages", "50,100"]);
    server.otactl(&["rollout", "pause", &paused]).ok();
    let run = server.otactl(&["rollout", "watch", &paused]);
    assert!(
        run.ok().stdout.starts_with("state paused, stage 1 of 2"),
        "{run:#?}"
    );
    assert!(run.stderr.contains("is paused: watch ends"), "{run:#?}");
    let active = create_rollout(&server, &fw_id, &["--stages", "50,100"]);
    let mut child = server
        .command(&["rollout", "watch", &active, "--every", "0.2"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = harness::lines(&mut child);
    rx.recv_timeout(Duration::from_secs(20))
        .expect("a first block");
    let interrupt = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupt.success());
    assert_eq!(
        harness::exits_within(&mut child, Duration::from_secs(10)),
        0
    );

    let unknown = server.otactl(&["rollout", "watch", "nope"]).refused();
    assert!(unknown.contains("404"), "{unknown}");
}

#[test]
fn release_uploads_and_starts_a_canary_once() {
    let server = Server::start();
    let file = sample("demo-esp32c3-1.1.0.bin");
    let args = [
        "-o",
        "json",
        "release",
        s(&file),
        "--device-type",
        "demo",
        "--canary",
        "10",
    ];
    let first = server.otactl(&args).json();
    assert_eq!(first["outcome"], "published");
    assert_eq!(first["rollout_created"], true);
    assert_eq!(first["firmware"]["state"], "ready");
    assert_eq!(first["rollout"]["target_type"], "canary");
    assert_eq!(first["rollout"]["rollout_percentage"], 10.0);
    assert_eq!(first["rollout"]["firmware_id"], first["firmware"]["id"]);

    let again = server.otactl(&args).json();
    assert_eq!(again["outcome"], "already_published");
    assert_eq!(again["rollout_created"], false);
    assert_eq!(again["rollout"]["id"], first["rollout"]["id"]);

    let bad = server.otactl(&[
        "release",
        s(&sample("demo-esp32c3-1.1.0.bin")),
        "--device-type",
        "demo",
        "--canary",
        "101",
    ]);
    assert_eq!(bad.code, 2, "{bad:#?}");
}

/// A device checks in and reports `status` for `firmware_id`, with a token `otactl` minted.
fn device_reports(server: &Server, token: &str, firmware_id: &str, statuses: &[&str]) {
    block(async {
        let http = server.http();
        let check = http
            .post(server.url("/api/ota/check"))
            .bearer_auth(token)
            .json(&json!({"device_id": "dev-0001", "device_type": "demo", "current_version": "1.0.0"}))
            .send()
            .await
            .unwrap();
        assert_eq!(check.status(), 200);
        for status in statuses {
            let r = http
                .post(server.url("/api/ota/status"))
                .bearer_auth(token)
                .json(
                    &json!({"device_id": "dev-0001", "firmware_id": firmware_id, "status": status}),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{status}: {}", r.text().await.unwrap());
        }
    });
}

#[test]
fn devices_logs_and_metrics() {
    let server = Server::start();
    let release = server
        .otactl(&[
            "-o",
            "json",
            "release",
            s(&sample("demo-esp32c3-1.1.0.bin")),
            "--device-type",
            "demo",
            "--canary",
            "100",
        ])
        .json();
    let fw_id = release["firmware"]["id"].as_str().unwrap().to_owned();

    let minted = server
        .otactl(&[
            "-o",
            "json",
            "devices",
            "token",
            "dev-0001",
            "--device-type",
            "demo",
            "--ttl",
            "600",
        ])
        .json();
    assert_eq!(minted["device_id"], "dev-0001");
    assert_eq!(minted["device_type"], "demo");
    assert!(minted["expires_at"].is_string());
    let token = minted["token"].as_str().unwrap();
    device_reports(&server, token, &fw_id, &["downloading", "installing"]);

    let list = server
        .otactl(&["-o", "json", "devices", "list", "--device-type", "demo"])
        .json();
    assert_eq!(list["items"][0]["device_id"], "dev-0001");
    assert_eq!(list["items"][0]["current_version"], "1.0.0");

    let groups = server
        .otactl(&[
            "-o", "json", "devices", "groups", "dev-0001", "lab", "bench",
        ])
        .json();
    // The server keeps groups sorted.
    assert_eq!(
        groups,
        json!({"device_id": "dev-0001", "groups": ["bench", "lab"]})
    );
    let shown = server
        .otactl(&["-o", "json", "devices", "groups", "dev-0001"])
        .json();
    assert_eq!(shown["groups"], json!(["bench", "lab"]));
    let in_lab = server
        .otactl(&["-o", "json", "devices", "list", "--group", "lab"])
        .json();
    assert_eq!(in_lab["items"].as_array().unwrap().len(), 1);
    let cleared = server
        .otactl(&["-o", "json", "devices", "groups", "dev-0001", "--clear"])
        .json();
    assert_eq!(cleared["groups"], json!([]));

    let device = server
        .otactl(&["-o", "json", "devices", "get", "dev-0001"])
        .json();
    let statuses: Vec<&str> = device["recent_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["installing", "downloading"]);

    let logs = server
        .otactl(&["-o", "json", "logs", "--device", "dev-0001"])
        .json();
    assert_eq!(logs["items"][0]["status"], "installing");
    assert_eq!(logs["items"][0]["firmware_id"], fw_id.as_str());
    let only = server
        .otactl(&["-o", "json", "logs", "--status", "downloading"])
        .json();
    assert_eq!(only["items"].as_array().unwrap().len(), 1);
    let table = server.otactl(&["logs"]);
    assert_eq!(table.ok().stdout.lines().count(), 3, "{}", table.stdout);

    let metrics = server.otactl(&["-o", "json", "metrics"]).json();
    assert_eq!(metrics["devices_total"], 1);
    assert_eq!(metrics["devices_by_type"]["demo"], 1);
    assert_eq!(metrics["versions_by_type"]["demo"]["1.0.0"], 1);
    assert_eq!(metrics["outcomes_24h"]["installing"], 1);
    assert_eq!(metrics["active_rollouts"].as_array().unwrap().len(), 1);
    server.otactl(&["metrics"]).ok();
    server.otactl(&["devices", "get", "dev-0001"]).ok();

    let unknown = server.otactl(&["devices", "get", "nobody"]).refused();
    assert!(unknown.contains("404"), "{unknown}");
}

#[test]
fn logs_follow_prints_new_entries_as_they_arrive() {
    use std::process::Stdio;

    let server = Server::start();
    let fw = publish_sample(&server, "demo-esp32c3-1.1.0.bin");
    let fw_id = fw["id"].as_str().unwrap().to_owned();
    server
        .otactl(&["rollout", "create", "--firmware", &fw_id])
        .ok();
    let token = server
        .otactl(&["devices", "token", "dev-0001", "--device-type", "demo"])
        .ok()
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("token").map(|t| t.trim().to_owned()))
        .expect("a token line");
    device_reports(&server, &token, &fw_id, &["downloading"]);

    let mut child = server
        .command(&["-o", "json", "logs", "--follow", "--interval", "0.2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = harness::lines(&mut child);
    let next_line = || -> Value {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("logs --follow printed nothing within 30 s");
        serde_json::from_str(&line).unwrap()
    };
    let first = next_line();
    assert_eq!(first["status"], "downloading");

    block(async {
        let r = server
            .http()
            .post(server.url("/api/ota/status"))
            .bearer_auth(&token)
            .json(&json!({"device_id": "dev-0001", "firmware_id": fw_id, "status": "installing"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    });
    let next = next_line();
    assert_eq!(next["status"], "installing", "only the new entry, once");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn token_mint_signs_offline_with_the_service_secret() {
    let server = Server::start();
    let secret = harness::s(&server.secret_file()).to_owned();
    let viewer = server
        .otactl(&[
            "-o",
            "json",
            "token",
            "mint",
            "--role",
            "viewer",
            "--secret-file",
            &secret,
            "--sub",
            "dashboards",
        ])
        .json();
    assert_eq!(viewer["role"], "viewer");
    assert_eq!(viewer["sub"], "dashboards");
    let token = viewer["token"].as_str().unwrap();

    // Accepted for reading, refused for publishing (403), by the server's own checks.
    server
        .otactl_with(&["firmware", "list"], &[("OTA_TOKEN", token)])
        .ok();
    let denied = server.otactl_with(
        &[
            "upload",
            s(&sample("demo-esp32c3-1.0.0.bin")),
            "--device-type",
            "demo",
        ],
        &[("OTA_TOKEN", token)],
    );
    assert!(denied.refused().contains("403"), "{denied:#?}");

    // Table output is the bare token, for OTA_TOKEN=$(otactl token mint ...).
    let publisher = server.otactl(&[
        "token",
        "mint",
        "--role",
        "publisher",
        "--secret-file",
        &secret,
    ]);
    let bare = publisher.ok().stdout.trim().to_owned();
    assert_eq!(bare.matches('.').count(), 2, "a JWT: {bare}");
    let published = server.otactl_with(
        &[
            "-o",
            "json",
            "upload",
            s(&sample("demo-esp32c3-1.0.0.bin")),
            "--device-type",
            "demo",
        ],
        &[("OTA_TOKEN", &bare)],
    );
    assert_eq!(published.json()["firmware"]["state"], "ready");

    let dir = tempfile::tempdir().unwrap();
    let wrong = write_image(dir.path(), "wrong-secret", b"not the secret\n");
    let forged = server
        .otactl(&[
            "token",
            "mint",
            "--role",
            "admin",
            "--secret-file",
            s(&wrong),
        ])
        .ok()
        .stdout
        .trim()
        .to_owned();
    let refused = server.otactl_with(&["metrics"], &[("OTA_TOKEN", &forged)]);
    assert!(refused.refused().contains("401"), "{refused:#?}");
    let none = server.otactl(&["token", "mint", "--role", "admin", "--secret-file", "/nope"]);
    assert_eq!(none.code, 1, "{none:#?}");
    let bad_role = server.otactl(&["token", "mint", "--role", "root", "--secret-file", &secret]);
    assert_eq!(bad_role.code, 2, "{bad_role:#?}");
}

/// Simulates a first run that died after create: the release exists as `pending_upload`.
fn create_pending(server: &Server, path: &std::path::Path) -> Value {
    let bytes = std::fs::read(path).unwrap();
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    block(async {
        let r = server
            .http()
            .post(server.url("/api/ota/admin/firmware"))
            .bearer_auth(&server.admin_token)
            .json(&json!({"device_type": "demo", "version": "1.0.0", "file_size": bytes.len(), "file_hash": hash}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()
    })
}

fn put_bytes(server: &Server, created: &Value, path: &std::path::Path) {
    let bytes = std::fs::read(path).unwrap();
    block(async {
        let mut req = server
            .http()
            .put(created["upload"]["url"].as_str().unwrap())
            .body(bytes);
        for (k, v) in created["upload"]["headers"].as_object().unwrap() {
            req = req.header(k.as_str(), v.as_str().unwrap());
        }
        let r = req.send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    });
}

#[test]
fn a_release_left_pending_with_its_bytes_is_finalized_by_a_rerun() {
    let server = Server::start();
    let file = sample("demo-esp32c3-1.0.0.bin");
    let created = create_pending(&server, &file);
    put_bytes(&server, &created, &file);
    let out = server
        .otactl(&["-o", "json", "upload", s(&file), "--device-type", "demo"])
        .json();
    assert_eq!(out["outcome"], "resumed");
    assert_eq!(out["firmware"]["id"], created["id"]);
    assert_eq!(out["firmware"]["state"], "ready");
}

#[test]
fn a_release_left_pending_without_bytes_resumes_from_the_remembered_url() {
    let server = Server::start();
    let file = sample("demo-esp32c3-1.0.0.bin");
    let created = create_pending(&server, &file);
    let id = created["id"].as_str().unwrap();

    // Another machine (no remembered URL): the state is said plainly, exit 1.
    let line = server
        .otactl(&["upload", s(&file), "--device-type", "demo"])
        .refused();
    assert!(line.contains("pending_upload"), "{line}");
    assert!(line.contains("bytes never arrived"), "{line}");

    // The machine that created it remembers the upload URL, as `otactl upload` writes it.
    let uploads = server.state.path().join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    std::fs::write(
        uploads.join(format!("{id}.json")),
        serde_json::to_vec(&json!({
            "firmware_id": id,
            "file_hash": created["file_hash"],
            "upload": created["upload"],
        }))
        .unwrap(),
    )
    .unwrap();
    let out = server
        .otactl(&["-o", "json", "upload", s(&file), "--device-type", "demo"])
        .json();
    assert_eq!(out["outcome"], "resumed");
    assert_eq!(out["firmware"]["state"], "ready");
    assert!(!uploads.join(format!("{id}.json")).exists());
}

/// Peak RSS (`VmHWM`, KiB) of a running process, read until it exits: the high-water mark only
/// grows, so the last reading before exit is the peak.
#[cfg(target_os = "linux")]
fn run_measuring_peak_rss(mut cmd: std::process::Command) -> (harness::Run, u64) {
    use std::io::Read;
    use std::process::Stdio;

    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            let hwm = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
            peak = peak.max(hwm.unwrap_or(0));
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let run = harness::Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    };
    (run, peak)
}

#[test]
#[cfg(target_os = "linux")]
fn a_16_mib_image_uploads_in_bounded_memory() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let big = write_image(
        dir.path(),
        "big.bin",
        &ImageSpec {
            size: 16 * 1024 * 1024,
            ..ImageSpec::new(Target::Esp32c3, "3.0.0")
        }
        .build(),
    );
    let (run, peak_kib) = run_measuring_peak_rss(server.command(&[
        "-o",
        "json",
        "upload",
        s(&big),
        "--device-type",
        "demo",
    ]));
    let out = run.json();
    assert_eq!(out["firmware"]["file_size"], 16 * 1024 * 1024);
    assert_eq!(out["firmware"]["state"], "ready");
    println!("otactl upload of 16 MiB: peak RSS {peak_kib} KiB");
    // About 14 MiB whatever the file size (docs/otactl.md); holding the file would add 16 MiB.
    assert!(peak_kib > 0, "VmHWM was read");
    assert!(
        peak_kib < 24 * 1024,
        "peak RSS {peak_kib} KiB: the upload is not streaming"
    );
}

#[test]
fn keys_generate_prints_a_new_manifest_key_line_offline() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(harness::otactl_bin())
            .args(args)
            .env_remove("OTA_SERVER")
            .env_remove("OTA_TOKEN")
            .env_remove("OTA_OUTPUT")
            .output()
            .expect("running otactl");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let line = run(&["keys", "generate"]);
    let keys = ota_core::manifest_keys::ManifestKeys::parse(&line).expect("a key line");
    let (key, comment) = line.trim().split_once("  # kid ").expect("key and kid");
    assert_eq!(key.len(), 64);
    assert_eq!(comment, keys.signing_kid());
    let json: Value = serde_json::from_str(&run(&["-o", "json", "keys", "generate"])).unwrap();
    assert_ne!(json["key"].as_str(), Some(key), "a new key each time");
    let parsed = ota_core::manifest_keys::ManifestKeys::parse(json["key"].as_str().unwrap());
    assert_eq!(json["kid"].as_str(), Some(parsed.unwrap().signing_kid()));
}

/// The keys a C header from `keys export --c-header` holds: each entry's kid and its bytes.
fn header_keys(header: &str) -> Vec<(String, Vec<u8>)> {
    let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
    for line in header.lines().map(str::trim) {
        if let Some(kid) = line
            .strip_prefix(".kid = \"")
            .and_then(|l| l.strip_suffix("\","))
        {
            keys.push((kid.to_owned(), Vec::new()));
        } else if line.starts_with("0x") {
            let bytes = &mut keys.last_mut().expect("bytes after a kid").1;
            for b in line.split(',').map(str::trim).filter(|b| !b.is_empty()) {
                let hex = b.strip_prefix("0x").expect("0x%02x");
                assert_eq!(hex.len(), 2, "{b}");
                bytes.push(u8::from_str_radix(hex, 16).expect("hex"));
            }
        }
    }
    keys
}

/// What a JWK set says the header must hold: kid and 0x04 || x || y, in order.
fn jwks_keys(jwks: &Value) -> Vec<(String, Vec<u8>)> {
    use base64::Engine;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(v.as_str().expect("coordinate"))
            .expect("base64url")
    };
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| {
            let mut point = vec![0x04];
            point.extend(b64(&k["x"]));
            point.extend(b64(&k["y"]));
            (k["kid"].as_str().expect("kid").to_owned(), point)
        })
        .collect()
}

/// The parts of the header the ESP-IDF component relies on, by name.
fn assert_c_header(header: &str) {
    let lines: Vec<&str> = header.lines().collect();
    assert_eq!(
        lines[..6],
        [
            "/* Manifest verification keys of ota-server, from `otactl keys export --c-header`.",
            " * The first key signs today; every key listed is accepted. Regenerate after a rotation. */",
            "#pragma once",
            "#include \"ota_client.h\"",
            "",
            "static const ota_client_key_t OTA_MANIFEST_KEYS[] = {",
        ],
        "{header}"
    );
    assert_eq!(
        lines[lines.len() - 2..],
        [
            "};",
            "#define OTA_MANIFEST_KEYS_COUNT (sizeof(OTA_MANIFEST_KEYS) / sizeof(OTA_MANIFEST_KEYS[0]))",
        ],
        "{header}"
    );
}

#[test]
fn keys_export_prints_the_servers_keys_as_a_c_header_without_a_token() {
    let server = Server::start();
    let jwks: Value = block(async {
        server
            .http()
            .get(server.url("/api/ota/keys"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let out = server.otactl_with(&["keys", "export", "--c-header"], &[("OTA_TOKEN", "")]);
    out.ok();
    assert_c_header(&out.stdout);
    let keys = header_keys(&out.stdout);
    assert_eq!(keys, jwks_keys(&jwks));
    assert!(keys.iter().all(|(_, point)| point.len() == 65));

    let json = server
        .otactl(&["-o", "json", "keys", "export", "--c-header"])
        .json();
    assert_eq!(json["c_header"].as_str(), Some(out.stdout.as_str()));
    assert_eq!(json["kids"], json!([jwks["keys"][0]["kid"]]));
}

#[test]
fn keys_export_reads_a_key_file_offline() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (
        ota_core::manifest_keys::ManifestKeys::generate_line(),
        ota_core::manifest_keys::ManifestKeys::generate_line(),
    );
    let text = format!("# signs now\n{first}\n\n{second}  # the next one\n");
    let file = dir.path().join("manifest-keys");
    std::fs::write(&file, &text).unwrap();
    let otactl = |args: &[&str]| {
        harness::Run::from(
            std::process::Command::new(harness::otactl_bin())
                .args(args)
                .env_remove("OTA_SERVER")
                .env_remove("OTA_TOKEN")
                .env_remove("OTA_OUTPUT")
                .output()
                .expect("running otactl"),
        )
    };
    let out = otactl(&["keys", "export", "--c-header", "--keys-file", s(&file)]);
    out.ok();
    assert_c_header(&out.stdout);
    let ring = ota_core::manifest_keys::ManifestKeys::parse(&text).unwrap();
    let published = serde_json::to_value(ring.jwks()).unwrap();
    let keys = header_keys(&out.stdout);
    assert_eq!(
        keys,
        jwks_keys(&published),
        "both keys, the signing one first"
    );
    assert_eq!(keys[0].0, ring.signing_kid());
    for secret in [&first, &second] {
        assert!(
            !out.stdout.contains(secret.as_str()),
            "no private key printed"
        );
    }

    std::fs::write(&file, "# no key yet\n").unwrap();
    let refused = otactl(&["keys", "export", "--c-header", "--keys-file", s(&file)]).refused();
    assert!(refused.contains("no key"), "{refused}");
    let missing = dir.path().join("missing");
    let refused = otactl(&["keys", "export", "--c-header", "--keys-file", s(&missing)]).refused();
    assert!(refused.contains("reading"), "{refused}");
    let usage = otactl(&["keys", "export", "--c-header"]);
    assert_eq!(usage.code, 2, "no server and no file: {usage:?}");
    let usage = otactl(&["keys", "export", "--keys-file", s(&file)]);
    assert_eq!(usage.code, 2, "the format is required: {usage:?}");
}
