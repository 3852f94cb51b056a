//! `otactl keys generate`: a new manifest signing key, made by the server's own code
//! (`ota_core::manifest_keys`), as a line of the key ring's text. SAM and Secrets Manager cannot
//! generate an EC key, so the AWS deployment's secret is created from this line
//! (infra/README.md).

use ota_core::manifest_keys::ManifestKeys;
use serde_json::json;

use crate::cli::{KeysCmd, Output};
use crate::output;

pub fn run(cmd: &KeysCmd, out: Output) {
    let KeysCmd::Generate = cmd;
    let line = ManifestKeys::generate_line();
    let kid = match ManifestKeys::parse(&line) {
        Ok(keys) => keys.signing_kid().to_owned(),
        // `generate_line` draws until the bytes are a valid key.
        Err(e) => unreachable!("a generated key parses: {e}"),
    };
    // Table mode is the line itself, its kid as a comment (which the key file allows) so that an
    // operator can tell the lines of a rotation apart: `otactl keys generate >> manifest-keys`.
    output::emit(out, &json!({"key": line, "kid": kid}), || {
        format!("{line}  # kid {kid}\n")
    });
}
