//! The prefix that namespaces one deployment (or one test) on a shared NATS server: every
//! subject, stream and consumer name starts with it (`bus::subjects` builds them).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix(String);

impl Prefix {
    pub fn new(raw: &str) -> Result<Self, String> {
        // Lower case only: stream names are the upper-cased prefix, which must stay one-to-one.
        let valid = !raw.is_empty()
            && raw.len() <= 64
            && raw.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "{raw:?} must be 1-64 characters of lower-case letters, digits or '_' (it names subjects and streams)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
