//! The developer's `OTA_*` settings never reach a server under test. A test binary of its own:
//! it changes this process's environment, which no other test may be reading meanwhile.

use std::path::Path;

use ota_testkit::server::{Binary, OtaServer};

#[test]
fn the_developers_ota_settings_stay_out() {
    // SAFETY: the only test of this binary, and nothing else of it runs yet.
    #[allow(unsafe_code)] // changing the environment is unsafe; sound for the reason above
    unsafe {
        std::env::set_var("OTA_PUBLIC_URL", "https://ota.example.com");
        std::env::set_var("OTA_LISTEN", "0.0.0.0:80");
    }
    let server = OtaServer::builder(Binary::at(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake-ota-server"),
    ))
    .env("OTA_TABLE", "set-by-the-test")
    .start();
    let env = std::fs::read_to_string(server.data_dir().join("env")).unwrap();
    let ota: Vec<_> = env.lines().filter(|l| l.starts_with("OTA_")).collect();
    let data = format!("OTA_DATA_DIR={}", server.data_dir().display());
    let mut expected = vec!["OTA_LISTEN=127.0.0.1:0", &data, "OTA_TABLE=set-by-the-test"];
    expected.sort_unstable();
    let mut ota = ota;
    ota.sort_unstable();
    assert_eq!(ota, expected);
}
