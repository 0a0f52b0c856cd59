//! Files an admin names (the configuration, PEM files, `import-exo` inputs) are read through a
//! size limit. A path to `/dev/zero`, a FIFO or a runaway file must end in an error naming the
//! file and the limit, not in a command that hangs while its memory grows.

use std::fmt;
use std::io::{self, Read};
use std::path::Path;

/// How much of one kind of file is read at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub bytes: u64,
    /// What the file is, for the error: "a configuration file".
    pub what: &'static str,
}

/// A configuration is a few kilobytes; a tenant with thousands of connectors and domains is
/// still far below this.
pub const CONFIGURATION: Limit = Limit {
    bytes: 16 << 20,
    what: "a configuration file",
};

/// A certificate chain or a bundle of trust anchors is a few kilobytes; the largest public
/// root bundles are about 250 KB.
pub const PEM: Limit = Limit {
    bytes: 1 << 20,
    what: "a PEM file",
};

/// `Get-InboundConnector` / `Get-AcceptedDomain` JSON. The largest tenant export reported was
/// 82 MB (UTF-16, so about 41 MB of text); this leaves room for three times that.
pub const EXCHANGE_EXPORT: Limit = Limit {
    bytes: 256 << 20,
    what: "an import-exo input",
};

impl Limit {
    /// The error for a file past the limit.
    pub fn exceeded(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("larger than {self}, the limit for {}", self.what),
        )
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.bytes % (1 << 20) == 0 {
            write!(f, "{} MiB", self.bytes >> 20)
        } else {
            write!(f, "{} bytes", self.bytes)
        }
    }
}

/// The whole file at `path`, or [`Limit::exceeded`] once it is longer than `limit`: at most
/// `limit + 1` bytes are ever read.
pub fn read(path: &Path, limit: Limit) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    Limited::new(std::fs::File::open(path)?, limit).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// A reader that fails with [`Limit::exceeded`] once more than the limit has come through, for
/// inputs read as a stream rather than whole.
pub struct Limited<R> {
    inner: io::Take<R>,
    limit: Limit,
}

impl<R: Read> Limited<R> {
    pub fn new(inner: R, limit: Limit) -> Self {
        Limited {
            inner: inner.take(limit.bytes.saturating_add(1)),
            limit,
        }
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        // `Take` counts down from limit + 1: at 0 that extra byte has come through.
        if self.inner.limit() == 0 {
            return Err(self.limit.exceeded());
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Limit = Limit {
        bytes: 10,
        what: "a test file",
    };

    #[test]
    fn a_file_up_to_the_limit_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        assert_eq!(read(&path, SMALL).unwrap(), b"0123456789");
    }

    #[test]
    fn one_byte_more_is_refused_naming_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789a").unwrap();
        let e = read(&path, SMALL).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(
            e.to_string(),
            "larger than 10 bytes, the limit for a test file"
        );
    }

    #[test]
    fn an_endless_file_ends_at_the_limit() {
        let e = read(Path::new("/dev/zero"), PEM).unwrap_err();
        assert_eq!(e.to_string(), "larger than 1 MiB, the limit for a PEM file");
    }
}
