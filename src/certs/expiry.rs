//! When each certificate runs out: the `relaygate_certificate_not_after_seconds` gauge, a
//! warning in the log from [`WARN_BEFORE_DAYS`] days before (once a day per certificate, not
//! per session), and the lines of `/health/ready` and `config check`.
//!
//! An expired server certificate fails every STARTTLS handshake; an expired upstream client
//! certificate makes Exchange Online stop recognising the gate (5.7.64 for the mail that relied
//! on it). Neither announces itself before the day.

use super::{CertificateFile, Role};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::collections::HashMap;
use std::path::PathBuf;

/// From how many days before `notAfter` the log warns.
pub const WARN_BEFORE_DAYS: i64 = 30;

const DAY: i64 = 86_400;

/// One certificate found in a configured file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub role: Role,
    pub tenant: String,
    pub file: PathBuf,
    /// Subject CN and SAN dNSNames, as [`crate::tls::certificate_names`] gives them.
    pub names: Vec<String>,
    /// The serial number in hex, to tell a renewed certificate from the old one.
    pub serial: String,
    /// `notAfter`, in seconds since the Unix epoch.
    pub not_after: i64,
}

impl Certificate {
    /// The first name, or the serial for a certificate without any (a bare CA).
    pub fn subject(&self) -> &str {
        self.names.first().map_or(&self.serial, |n| n)
    }

    /// Whole days left at `now` (negative once expired).
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(DAY)
    }

    /// `notAfter` as an RFC 3339 date and time (UTC).
    pub fn expires(&self) -> String {
        jiff::Timestamp::from_second(self.not_after)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| self.not_after.to_string())
    }

    /// One line for `/health/ready` and `config check`.
    pub fn describe(&self, now: i64) -> String {
        let tenant = match self.tenant.as_str() {
            "" => String::new(),
            t => format!(" of tenant \"{t}\""),
        };
        let days = self.days_left(now);
        let when = if days < 0 {
            format!("EXPIRED {}", self.expires())
        } else {
            format!("expires {} (in {days} days)", self.expires())
        };
        format!(
            "certificate {}{tenant} {} [{}]: {when}",
            self.role.as_str(),
            self.file.display(),
            self.names.join(", ")
        )
    }
}

/// The certificates in `file`: the leaf of a certificate chain (what is presented), every
/// anchor of a CA file. A file that cannot be read yields an error naming it.
pub fn inspect(file: &CertificateFile) -> Result<Vec<Certificate>, String> {
    let pem = crate::files::read(&file.path, crate::files::PEM)
        .map_err(|e| format!("{}: cannot read: {e}", file.path.display()))?;
    let ders: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not valid PEM: {e}", file.path.display()))?;
    let ders = match file.role {
        Role::Server | Role::UpstreamClient => &ders[..ders.len().min(1)],
        Role::ClientCa | Role::UpstreamCa => &ders[..],
    };
    ders.iter()
        .map(|der| {
            let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
                .map_err(|e| format!("{}: not a certificate: {e}", file.path.display()))?;
            Ok(Certificate {
                role: file.role,
                tenant: file.tenant.clone(),
                file: file.path.clone(),
                names: crate::tls::certificate_names(der),
                serial: cert.raw_serial_as_string().replace(':', ""),
                not_after: cert.validity().not_after.timestamp(),
            })
        })
        .collect()
}

/// Every certificate of every file (unreadable files are left out: loading them failed
/// already, and said so).
pub fn inspect_all(files: &[CertificateFile]) -> Vec<Certificate> {
    files
        .iter()
        .filter_map(|f| inspect(f).ok())
        .flatten()
        .collect()
}

/// Seconds since the Unix epoch, now.
pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Remembers which certificate was warned about on which day.
#[derive(Debug, Default)]
pub struct Warnings {
    warned: HashMap<(PathBuf, String), i64>,
}

impl Warnings {
    /// Log a warning for each certificate within [`WARN_BEFORE_DAYS`] of its `notAfter` (or
    /// past it) that was not warned about yet today; how many were.
    pub fn check(&mut self, certificates: &[Certificate], now: i64) -> usize {
        let today = now.div_euclid(DAY);
        let mut warned = 0;
        for c in certificates {
            let days = c.days_left(now);
            if days >= WARN_BEFORE_DAYS {
                continue;
            }
            let key = (c.file.clone(), c.serial.clone());
            if self.warned.get(&key) == Some(&today) {
                continue;
            }
            self.warned.insert(key, today);
            warned += 1;
            tracing::warn!(
                role = c.role.as_str(),
                tenant = %c.tenant,
                file = %c.file.display(),
                names = %c.names.join(", "),
                not_after = %c.expires(),
                days_left = days,
                "certificate expires soon: renew it (the gate loads the renewed files by itself)"
            );
        }
        warned
    }
}

/// Publish `certificates` as the `certificate_not_after_seconds` gauge (labels bounded by the
/// configuration: role, file, subject, and tenant when named).
pub fn publish(certificates: &[Certificate]) {
    crate::observe::metrics::metrics().certificates_not_after(certificates.iter().map(|c| {
        let mut labels = vec![
            ("role", c.role.as_str().to_string()),
            ("file", c.file.display().to_string()),
            ("subject", c.subject().to_string()),
        ];
        if !c.tenant.is_empty() {
            labels.push(("tenant", c.tenant.clone()));
        }
        (labels, c.not_after)
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(not_after: i64) -> Certificate {
        Certificate {
            role: Role::UpstreamClient,
            tenant: String::new(),
            file: PathBuf::from("/etc/relaygate/gate.pem"),
            names: vec!["contoso.com".into()],
            serial: "01".into(),
            not_after,
        }
    }

    #[test]
    fn an_expiring_certificate_is_warned_about_once_a_day_from_thirty_days_before() {
        let not_after = 1_000 * DAY;
        let c = [certificate(not_after)];
        let mut w = Warnings::default();
        assert_eq!(w.check(&c, not_after - 31 * DAY), 0, "31 days left");
        assert_eq!(w.check(&c, not_after - 30 * DAY + 1), 1, "29 days and some");
        assert_eq!(w.check(&c, not_after - 30 * DAY + 2), 0, "same day");
        assert_eq!(w.check(&c, not_after - 29 * DAY + 1), 1, "the next day");
        assert_eq!(w.check(&c, not_after + DAY), 1, "expired: still warned");
    }

    #[test]
    fn days_left_and_the_description_say_when_it_expires() {
        let c = certificate(1_000 * DAY);
        assert_eq!(c.days_left(990 * DAY), 10);
        assert_eq!(c.days_left(1_000 * DAY + 1), -1);
        assert_eq!(
            c.describe(990 * DAY),
            "certificate upstream_client /etc/relaygate/gate.pem [contoso.com]: expires 1972-09-27T00:00:00Z (in 10 days)"
        );
        assert!(c.describe(1_001 * DAY).contains(": EXPIRED 1972-09-27"));
    }
}
