//! esptool/espsecure (PyPI `esptool`, written against 5.6) as the oracle for both the
//! generator and the `esp-image` validator.
//!
//! Python is `$OTA_PYTHON` or `python3`. Without an importable esptool these tests fail (never
//! skip): `pip install esptool`, which `cargo xtask test` does.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use esp_image::{Rejection, SignatureScheme, code, validate};
use firmware_samples::{
    BLOCK_LEN, ImageSpec, RSA3072_SEED1_PEM, SECTOR_SIZE, Scheme, SigningKey, Target, sign_image,
};
use serde_json::Value;

fn python() -> String {
    std::env::var("OTA_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("oracle/image_info.py")
}

/// Checked once per test binary; every test calls it first.
fn esptool_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let py = python();
        let out = Command::new(&py)
            .args([
                "-c",
                "import esptool, espsecure; print(esptool.__version__)",
            ])
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let v = String::from_utf8_lossy(&o.stdout).trim().to_owned();
                assert!(
                    v.starts_with("5."),
                    "esptool {v} found, these tests were written against 5.6: \
                     pip install 'esptool>=5.6,<6'"
                );
                v
            }
            Ok(o) => panic!(
                "esptool is not importable by {py}: pip install esptool \
                 (cargo xtask test installs it; set OTA_PYTHON to use another Python)\n{}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => panic!(
                "cannot run {py} ({e}): install Python 3 and `pip install esptool`, \
                 or set OTA_PYTHON"
            ),
        }
    })
}

fn run(cmd: &mut Command) -> Output {
    match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!("cannot run {cmd:?}: {e}"),
    }
}

/// esptool's view of each image, in order.
fn image_info(dir: &Path, images: &[(String, Vec<u8>)]) -> Vec<Value> {
    esptool_version();
    let mut paths = Vec::new();
    for (i, (_, bytes)) in images.iter().enumerate() {
        let path = dir.join(format!("{i}.bin"));
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
        paths.push(path);
    }
    let out = run(Command::new(python()).arg(script()).args(&paths));
    assert!(
        out.status.success(),
        "{} failed: {}",
        script().display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("oracle output is not JSON ({e})"));
    report["images"].as_array().cloned().unwrap_or_default()
}

fn espsecure(args: &[&str]) -> Output {
    esptool_version();
    run(Command::new(python()).arg("-m").arg("espsecure").args(args))
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or_else(|| panic!("non UTF-8 path {p:?}"))
}

fn problems(esptool: &Value) -> BTreeSet<String> {
    esptool["problems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect()
}

fn assert_same_view(label: &str, bytes: &[u8], esptool: &Value) {
    let info = validate(bytes).unwrap_or_else(|r| panic!("{label}: esp-image rejects it: {r}"));
    assert!(
        problems(esptool).is_empty(),
        "{label}: esptool finds problems: {esptool}"
    );
    assert_eq!(esptool["chip"], info.chip.name(), "{label}");
    let segments: Vec<(u64, u64, u64)> = esptool["segments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let n = |k: &str| s[k].as_u64().unwrap_or(u64::MAX);
            (n("addr"), n("len"), n("file_offs"))
        })
        .collect();
    let ours: Vec<(u64, u64, u64)> = info
        .segments
        .iter()
        .map(|s| {
            (
                u64::from(s.load_addr),
                u64::from(s.len),
                u64::from(s.offset) - 8,
            )
        })
        .collect();
    assert_eq!(segments, ours, "{label}: segments");
    assert_eq!(esptool["checksum"], info.checksum, "{label}");
    assert_eq!(esptool["checksum_valid"], true, "{label}");
    assert_eq!(esptool["hash_appended"], info.hash_appended, "{label}");
    if info.hash_appended {
        assert_eq!(esptool["hash_valid"], true, "{label}");
        assert_eq!(esptool["image_len"], info.image_len, "{label}");
    }
    let app = &esptool["app"];
    assert_eq!(app["version"], info.app.version.as_str(), "{label}");
    assert_eq!(
        app["project_name"],
        info.app.project_name.as_str(),
        "{label}"
    );
    assert_eq!(app["idf_version"], info.app.idf_version.as_str(), "{label}");
    assert_eq!(app["secure_version"], info.app.secure_version, "{label}");
    assert_eq!(app["time"], info.app.time.as_str(), "{label}");
    assert_eq!(app["date"], info.app.date.as_str(), "{label}");
    assert_eq!(app["elf_sha256"], info.app.elf_sha256.as_str(), "{label}");
}

#[test]
fn generated_images_look_the_same_to_esptool_and_esp_image() {
    let mut images = Vec::new();
    for (i, chip) in Target::ALL.into_iter().enumerate() {
        for hash_appended in [true, false] {
            let variants = [
                ("1.0.0", 0, 1024, "v5.4"),
                (
                    "2.13.7-rc.1+build.5",
                    3 + u32::try_from(i).unwrap(),
                    96 * 1024,
                    "v5.5-dev-123-gabcdef",
                ),
                ("0.0.1", u32::MAX, 4000 + 64 * i, "v4.4.8"),
            ];
            for (version, secure_version, size, idf_version) in variants {
                let spec = ImageSpec {
                    secure_version,
                    size,
                    hash_appended,
                    idf_version: idf_version.to_owned(),
                    project_name: format!("proj-{}", chip.name()),
                    ..ImageSpec::new(chip, version)
                };
                images.push((
                    format!("{chip} {version} hash={hash_appended}"),
                    spec.build(),
                ));
            }
        }
    }
    let dir = tempdir();
    let views = image_info(dir.path(), &images);
    assert_eq!(views.len(), images.len());
    for ((label, bytes), view) in images.iter().zip(&views) {
        assert_same_view(label, bytes, view);
    }
}

fn normalized(rejection: &Rejection) -> BTreeSet<String> {
    let codes: BTreeSet<String> = rejection.codes().into_iter().map(str::to_owned).collect();
    // esptool reports a segment running off the end of the file as a short read, which the
    // oracle script calls `truncated`; esp-image says both.
    codes
        .into_iter()
        .filter(|c| c != code::SEGMENT_OUT_OF_BOUNDS)
        .collect()
}

fn set(codes: &[&str]) -> BTreeSet<String> {
    codes.iter().map(|c| (*c).to_owned()).collect()
}

struct Corruption {
    label: String,
    bytes: Vec<u8>,
    /// esp-image's reason codes (all of them).
    ours: BTreeSet<String>,
    /// What esptool reports; it stops at the first fatal problem.
    esptool: BTreeSet<String>,
}

fn corruptions(chip: Target, hash: bool) -> Vec<Corruption> {
    let spec = ImageSpec {
        size: 8 * 1024,
        hash_appended: hash,
        ..ImageSpec::new(chip, "1.0.0")
    };
    let good = spec.build();
    let len = good.len();
    let checksum_at = if hash { len - 33 } else { len - 1 };
    // A header change is seen by the appended hash only.
    let header_hash: &[&str] = if hash { &[code::HASH_MISMATCH] } else { &[] };
    let data_problem: &[&str] = if hash {
        &[code::CHECKSUM_MISMATCH, code::HASH_MISMATCH]
    } else {
        &[code::CHECKSUM_MISMATCH]
    };

    let mut cases = Vec::new();
    let mut add = |label: &str, bytes: Vec<u8>, ours: Vec<&str>, esptool: &[&str]| {
        cases.push(Corruption {
            label: format!("{chip} hash={hash}: {label}"),
            bytes,
            ours: set(&ours),
            esptool: set(esptool),
        });
    };
    let flipped = |at: usize| {
        let mut b = good.clone();
        b[at] ^= 0x5A;
        b
    };

    add(
        "checksum byte flipped",
        flipped(checksum_at),
        data_problem.to_vec(),
        data_problem,
    );
    add(
        "segment data byte flipped",
        flipped(0x1000),
        data_problem.to_vec(),
        data_problem,
    );
    add(
        "app description byte flipped",
        flipped(0x20 + 0x30),
        data_problem.to_vec(),
        data_problem,
    );
    if hash {
        add(
            "hash byte flipped",
            flipped(len - 5),
            vec![code::HASH_MISMATCH],
            &[code::HASH_MISMATCH],
        );
        add(
            "cut inside the hash",
            good[..len - 10].to_vec(),
            vec![code::TRUNCATED],
            &[code::TRUNCATED],
        );
    }
    add(
        "cut inside segment data",
        good[..len / 2].to_vec(),
        vec![code::TRUNCATED],
        &[code::TRUNCATED],
    );
    add(
        "cut inside the header",
        good[..20].to_vec(),
        vec![code::TRUNCATED],
        &[code::TRUNCATED],
    );
    add(
        "cut before the checksum",
        good[..checksum_at].to_vec(),
        vec![code::TRUNCATED],
        &[code::TRUNCATED],
    );
    let mut bad_magic = good.clone();
    bad_magic[0] = 0xE8;
    add(
        "bad magic",
        bad_magic,
        [&[code::BAD_MAGIC][..], header_hash].concat(),
        &[code::BAD_MAGIC],
    );
    let mut unknown_chip = good.clone();
    unknown_chip[12] = 0x77;
    unknown_chip[13] = 0x77;
    add(
        "unknown chip id",
        unknown_chip,
        [&[code::UNKNOWN_CHIP][..], header_hash].concat(),
        &[code::UNKNOWN_CHIP],
    );
    let mut bad_flag = good.clone();
    bad_flag[23] = if hash { 3 } else { 2 };
    // A non-zero flag makes the validator look for a hash that an unhashed image lacks.
    let flag_extra: &[&str] = if hash {
        &[code::HASH_MISMATCH]
    } else {
        &[code::TRUNCATED]
    };
    add(
        "hash flag neither 0 nor 1",
        bad_flag,
        [&[code::BAD_HASH_FLAG][..], flag_extra].concat(),
        &[code::BAD_HASH_FLAG],
    );
    let too_many = ImageSpec {
        extra_segments: 14,
        ..spec.clone()
    }
    .build();
    add(
        "17 segments",
        too_many,
        vec![code::TOO_MANY_SEGMENTS],
        &[code::TOO_MANY_SEGMENTS],
    );
    cases
}

#[test]
fn corrupted_images_are_rejected_by_both_for_the_same_reason() {
    let mut cases = Vec::new();
    for chip in Target::ALL {
        for hash in [true, false] {
            cases.extend(corruptions(chip, hash));
        }
    }
    let images: Vec<(String, Vec<u8>)> = cases
        .iter()
        .map(|c| (c.label.clone(), c.bytes.clone()))
        .collect();
    let dir = tempdir();
    let views = image_info(dir.path(), &images);
    assert_eq!(views.len(), cases.len());
    for (case, view) in cases.iter().zip(&views) {
        let rejection = validate(&case.bytes)
            .err()
            .unwrap_or_else(|| panic!("{}: esp-image accepts it", case.label));
        assert_eq!(
            normalized(&rejection),
            case.ours,
            "{}: esp-image",
            case.label
        );
        assert_eq!(
            problems(view),
            case.esptool,
            "{}: esptool {view}",
            case.label
        );
    }
}

#[test]
fn sixteen_segments_are_fine_for_both() {
    let spec = ImageSpec {
        extra_segments: 13,
        ..ImageSpec::new(Target::Esp32s3, "1.0.0")
    };
    let bytes = spec.build();
    let dir = tempdir();
    let views = image_info(dir.path(), &[("16 segments".to_owned(), bytes.clone())]);
    assert_same_view("16 segments", &bytes, &views[0]);
}

fn keys() -> Vec<SigningKey> {
    vec![
        SigningKey::from_seed(Scheme::EcdsaP256, 11),
        SigningKey::from_seed(Scheme::EcdsaP384, 12),
        SigningKey::from_pkcs8_pem(RSA3072_SEED1_PEM).unwrap_or_else(|e| panic!("{e}")),
    ]
}

fn scheme_of(key: &SigningKey) -> SignatureScheme {
    match key.scheme() {
        Scheme::Rsa3072 => SignatureScheme::Rsa3072Pss,
        Scheme::EcdsaP256 => SignatureScheme::EcdsaP256,
        Scheme::EcdsaP384 => SignatureScheme::EcdsaP384,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `espsecure digest-sbv2-public-key` of a PEM file.
fn espsecure_key_digest(dir: &Path, pem_path: &Path) -> String {
    let out_path = dir.join("digest.bin");
    let out = espsecure(&[
        "digest-sbv2-public-key",
        "--keyfile",
        path_str(pem_path),
        "--output",
        path_str(&out_path),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    hex(&std::fs::read(&out_path).unwrap_or_default())
}

fn espsecure_verifies(key_pem: &Path, image: &Path) -> bool {
    espsecure(&[
        "verify-signature",
        "--version",
        "2",
        "--keyfile",
        path_str(key_pem),
        path_str(image),
    ])
    .status
    .success()
}

#[test]
fn signed_images_verify_with_espsecure_and_esp_image() {
    let dir = tempdir();
    for key in keys() {
        let label = key.scheme().name();
        let image = ImageSpec {
            signing: Some(key.clone()),
            size: 128 * 1024 + SECTOR_SIZE,
            ..ImageSpec::new(Target::Esp32c6, "3.1.4")
        }
        .build();
        assert_eq!(image.len(), 128 * 1024 + SECTOR_SIZE, "{label}");
        let image_path = dir.path().join(format!("{label}.bin"));
        let private_pem = dir.path().join(format!("{label}.pem"));
        let public_pem = dir.path().join(format!("{label}.pub.pem"));
        std::fs::write(&image_path, &image).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&private_pem, key.private_key_pem()).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&public_pem, key.public_key_pem()).unwrap_or_else(|e| panic!("{e}"));

        assert!(
            espsecure_verifies(&public_pem, &image_path),
            "{label}: espsecure"
        );
        let digest = espsecure_key_digest(dir.path(), &private_pem);
        assert_eq!(
            digest,
            hex(&key.key_digest()),
            "{label}: generator key digest"
        );

        let info = validate(&image).unwrap_or_else(|r| panic!("{label}: {r}"));
        let signature = info
            .signature
            .unwrap_or_else(|| panic!("{label}: no signature found"));
        assert_eq!(signature.sector_offset, 128 * 1024);
        assert_eq!(signature.blocks.len(), 1);
        let block = &signature.blocks[0];
        assert_eq!(block.scheme, scheme_of(&key), "{label}");
        assert_eq!(block.key_digest, digest, "{label}: esp-image key digest");
        assert!(
            block.image_digest_matches && block.signature_valid,
            "{label}"
        );

        let info_out = espsecure(&["signature-info-v2", path_str(&image_path)]);
        let spaced: Vec<String> = key
            .key_digest()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(
            String::from_utf8_lossy(&info_out.stdout).contains(&spaced.join(" ")),
            "{label}: signature-info-v2 shows another digest"
        );
    }
}

#[test]
fn images_signed_by_espsecure_pass_esp_image() {
    let dir = tempdir();
    // The generator's secure padding without its signature sector is what `idf.py build`
    // hands to espsecure.
    let base = ImageSpec {
        signing: Some(SigningKey::from_seed(Scheme::EcdsaP256, 1)),
        ..ImageSpec::new(Target::Esp32c2, "1.0.0")
    }
    .build();
    let unsigned = &base[..base.len() - SECTOR_SIZE];
    let unsigned_path = dir.path().join("unsigned.bin");
    std::fs::write(&unsigned_path, unsigned).unwrap_or_else(|e| panic!("{e}"));

    let p192_pem = dir.path().join("p192.pem");
    let out = espsecure(&[
        "generate-signing-key",
        "--version",
        "2",
        "--scheme",
        "ecdsa192",
        path_str(&p192_pem),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p256_pem = dir.path().join("p256.pem");
    let p256 = SigningKey::from_seed(Scheme::EcdsaP256, 99);
    std::fs::write(&p256_pem, p256.private_key_pem()).unwrap_or_else(|e| panic!("{e}"));

    let signed_path = dir.path().join("signed.bin");
    let out = espsecure(&[
        "sign-data",
        "--version",
        "2",
        "--keyfile",
        path_str(&p192_pem),
        path_str(&p256_pem),
        "--output",
        path_str(&signed_path),
        path_str(&unsigned_path),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signed = std::fs::read(&signed_path).unwrap_or_default();

    let info = validate(&signed).unwrap_or_else(|r| panic!("{r}"));
    let blocks = info.signature.map(|s| s.blocks).unwrap_or_default();
    let got: Vec<(SignatureScheme, String, bool)> = blocks
        .iter()
        .map(|b| (b.scheme, b.key_digest.clone(), b.signature_valid))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                SignatureScheme::EcdsaP192,
                espsecure_key_digest(dir.path(), &p192_pem),
                true
            ),
            (SignatureScheme::EcdsaP256, hex(&p256.key_digest()), true),
        ]
    );
}

#[test]
fn tampered_signed_images_fail_in_both() {
    let dir = tempdir();
    let key = SigningKey::from_seed(Scheme::EcdsaP256, 5);
    let pem = dir.path().join("key.pem");
    std::fs::write(&pem, key.public_key_pem()).unwrap_or_else(|e| panic!("{e}"));
    let good = ImageSpec {
        signing: Some(key.clone()),
        ..ImageSpec::new(Target::Esp32h2, "1.0.0")
    }
    .build();
    let sector = good.len() - SECTOR_SIZE;

    let mut data_changed = good.clone();
    data_changed[0x2000] ^= 1;
    let mut sig_changed = good.clone();
    sig_changed[sector + 120] ^= 1; // inside r
    let crc = crc32fast::hash(&sig_changed[sector..sector + 1196]);
    sig_changed[sector + 1196..sector + 1200].copy_from_slice(&crc.to_le_bytes());
    let mut crc_broken = good.clone();
    crc_broken[sector + 1197] ^= 1;

    let cases = [
        (
            "signed data changed",
            data_changed,
            set(&[
                code::CHECKSUM_MISMATCH,
                code::HASH_MISMATCH,
                code::SIGNATURE_DIGEST_MISMATCH,
            ]),
        ),
        (
            "signature changed",
            sig_changed,
            set(&[code::SIGNATURE_INVALID]),
        ),
        (
            "block CRC broken",
            crc_broken,
            set(&[code::BAD_SIGNATURE_CRC]),
        ),
    ];
    for (label, bytes, expected) in cases {
        let path = dir.path().join("tampered.bin");
        std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !espsecure_verifies(&pem, &path),
            "{label}: espsecure accepts it"
        );
        let rejection = validate(&bytes)
            .err()
            .unwrap_or_else(|| panic!("{label}: esp-image accepts it"));
        assert_eq!(normalized(&rejection), expected, "{label}");
    }
}

#[test]
fn several_signature_blocks_each_verify_with_espsecure() {
    // One scheme per sector, as on a device (espsecure's verify-signature even crashes on an
    // RSA block when given an ECDSA key).
    let dir = tempdir();
    let signers: Vec<SigningKey> = [21, 22, 23]
        .into_iter()
        .map(|seed| SigningKey::from_seed(Scheme::EcdsaP256, seed))
        .collect();
    let unsigned = ImageSpec {
        signing: Some(signers[0].clone()),
        ..ImageSpec::new(Target::Esp32p4, "1.0.0")
    }
    .build();
    let image = sign_image(&unsigned[..unsigned.len() - SECTOR_SIZE], &signers);
    assert_eq!(image[image.len() - SECTOR_SIZE + 2 * BLOCK_LEN], 0xE7);
    let path = dir.path().join("multi.bin");
    std::fs::write(&path, &image).unwrap_or_else(|e| panic!("{e}"));
    for key in &signers {
        let pem = dir.path().join("key.pem");
        std::fs::write(&pem, key.public_key_pem()).unwrap_or_else(|e| panic!("{e}"));
        assert!(espsecure_verifies(&pem, &path), "{}", key.scheme().name());
    }
    let info = validate(&image).unwrap_or_else(|r| panic!("{r}"));
    let blocks = info.signature.map(|s| s.blocks).unwrap_or_default();
    assert_eq!(blocks.len(), 3);
    assert!(blocks.iter().all(|b| b.signature_valid));
}

#[test]
fn scheme_not_allowed_on_the_chip_is_ours_alone() {
    // espsecure does not know chips: it verifies an RSA signature on an ESP32-C2 image, whose
    // ROM only verifies ECDSA. esp-image rejects it.
    let dir = tempdir();
    let key = &keys()[2];
    let image = ImageSpec {
        signing: Some(key.clone()),
        ..ImageSpec::new(Target::Esp32c2, "1.0.0")
    }
    .build();
    let path = dir.path().join("c2-rsa.bin");
    let pem = dir.path().join("rsa.pem");
    std::fs::write(&path, &image).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&pem, key.public_key_pem()).unwrap_or_else(|e| panic!("{e}"));
    assert!(espsecure_verifies(&pem, &path));
    let rejection = validate(&image).err();
    assert_eq!(
        rejection.map(|r| r.codes()),
        Some(vec![code::SIGNATURE_SCHEME_NOT_ALLOWED])
    );
}

#[test]
fn committed_samples_pass_esptool() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let images: Vec<(String, Vec<u8>)> = firmware_samples::samples()
        .into_iter()
        .map(|(name, _)| {
            let bytes = std::fs::read(dir.join(name)).unwrap_or_default();
            (name.to_owned(), bytes)
        })
        .collect();
    let tmp = tempdir();
    let views = image_info(tmp.path(), &images);
    for ((name, bytes), view) in images.iter().zip(&views) {
        assert_same_view(name, bytes, view);
    }
    println!("checked against esptool {}", esptool_version());
}
