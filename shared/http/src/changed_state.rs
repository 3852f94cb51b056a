//! Whether a request changed stored state, said by the handler where the method alone would
//! mislead. The log of each Lambda function writes a line for every request that changed state
//! and samples the rest (`ota_lambda::access_log`); by default a safe method (GET, HEAD,
//! OPTIONS) changed nothing and any other did. The device check is the exception both ways: a
//! POST that, in the steady poll, only reads, and whose offers (the decisions worth a line) are
//! marked here.

/// A response extension: `ChangedState(true)` for an answer that decided something stored
/// (an offer), `ChangedState(false)` for one that only read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangedState(pub bool);
