//! `gen-firmware`: write a structurally valid ESP32-family app image.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use firmware_samples::{ImageSpec, Scheme, SigningKey, Target, parse_size};

/// Generate an ESP-IDF style app image (valid for esptool, not runnable).
// The field docs are `--help` text, printed as written: Markdown backticks would show.
#[allow(clippy::doc_markdown)]
#[derive(Debug, Parser)]
#[command(name = "gen-firmware")]
struct Args {
    /// Target chip, e.g. esp32c3.
    #[arg(long)]
    chip: Target,
    /// App version (PROJECT_VER).
    #[arg(long = "version")]
    app_version: String,
    /// Project name.
    #[arg(long, default_value = "demo")]
    project: String,
    /// Anti-rollback secure_version.
    #[arg(long, default_value_t = 0)]
    secure_version: u32,
    /// ESP-IDF version string recorded in the app description.
    #[arg(long, default_value = "v5.4")]
    idf_version: String,
    /// Approximate file size: 4096, 256K, 1M ...
    #[arg(long, default_value = "64K", value_parser = parse_size)]
    size: usize,
    /// Do not append the SHA-256 validation hash.
    #[arg(long)]
    no_hash: bool,
    /// Sign for Secure Boot V2 with a key derived from this seed.
    #[arg(long)]
    sign_seed: Option<u64>,
    /// Signature scheme for --sign-seed.
    #[arg(long, default_value = "ecdsa256")]
    sign_scheme: Scheme,
    /// Also write the signing key as PEM here (for espsecure verify-signature).
    #[arg(long, requires = "sign_seed")]
    key_out: Option<PathBuf>,
    /// Output file.
    #[arg(short, long)]
    output: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let signing = args
        .sign_seed
        .map(|seed| SigningKey::from_seed(args.sign_scheme, seed));
    let spec = ImageSpec {
        project_name: args.project,
        secure_version: args.secure_version,
        idf_version: args.idf_version,
        size: args.size,
        hash_appended: !args.no_hash,
        signing: signing.clone(),
        ..ImageSpec::new(args.chip, &args.app_version)
    };
    let image = spec.build();
    std::fs::write(&args.output, &image)
        .with_context(|| format!("writing {}", args.output.display()))?;
    eprintln!(
        "wrote {} ({} bytes, {} {} for {})",
        args.output.display(),
        image.len(),
        spec.project_name,
        spec.version,
        spec.chip
    );
    if let Some(key) = signing {
        eprintln!(
            "signed with {} key, digest {}",
            key.scheme().name(),
            hex(&key.key_digest())
        );
        if let Some(path) = args.key_out {
            std::fs::write(&path, key.private_key_pem())
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote signing key {}", path.display());
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn parses_the_documented_invocation() {
        let args = Args::try_parse_from([
            "gen-firmware",
            "--chip",
            "esp32c3",
            "--version",
            "1.2.0",
            "--project",
            "NAME",
            "--secure-version",
            "0",
            "--idf-version",
            "v5.4",
            "--size",
            "256K",
            "--no-hash",
            "--sign-seed",
            "7",
            "-o",
            "out.bin",
        ]);
        let args = args.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(args.chip, Target::Esp32c3);
        assert_eq!(args.app_version, "1.2.0");
        assert_eq!(args.size, 256 * 1024);
        assert!(args.no_hash);
        assert_eq!(args.sign_seed, Some(7));
        assert_eq!(args.sign_scheme, Scheme::EcdsaP256);
    }
}
