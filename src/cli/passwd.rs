//! `relaygate passwd`: a password from standard input to the argon2id PHC string the users
//! file takes as `password_hash`.
//!
//! The password comes from standard input, never from an argument: arguments are visible to
//! every local user in `ps` and end up in shell histories. At a terminal, typing is not echoed
//! (`stty -echo`, so no terminal code of our own); piped, it is the first line. Nothing of the
//! password is ever written out.

use crate::submission::users::hash_password;
use std::io::{self, BufRead, IsTerminal, Write};
use std::process::{Command, ExitCode, Stdio};
use zeroize::Zeroizing;

/// The longest password taken. Far beyond any an application is configured with; the bound
/// keeps `relaygate passwd < /dev/zero` from reading forever.
const MAX_PASSWORD_BYTES: u64 = 4096;

/// Why no hash was printed.
#[derive(Debug, thiserror::Error)]
pub enum PasswdError {
    #[error("cannot read the password from standard input: {0}")]
    Read(#[from] io::Error),
    #[error("no password: standard input was empty or its first line was")]
    Empty,
    #[error("the password is longer than {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
}

/// The first line of `input`, without its line end (`\n` or `\r\n`). Read from the buffer
/// `input` already has (standard input's own), not through another copy.
pub fn read_password(input: impl BufRead) -> Result<Zeroizing<Vec<u8>>, PasswdError> {
    let mut line = Zeroizing::new(Vec::new());
    input
        .take(MAX_PASSWORD_BYTES + 1)
        .read_until(b'\n', &mut line)?;
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    } else if line.len() as u64 > MAX_PASSWORD_BYTES {
        return Err(PasswdError::TooLong);
    }
    if line.is_empty() {
        return Err(PasswdError::Empty);
    }
    Ok(line)
}

/// `relaygate passwd`: the hash on standard output, a hint on standard error; exit status 2
/// when no password could be read.
pub fn run() -> ExitCode {
    let stdin = io::stdin();
    let password = if stdin.is_terminal() {
        eprint!("Password (not shown): ");
        let _quiet = NoEcho::start();
        let password = read_password(stdin.lock());
        eprintln!();
        password
    } else {
        read_password(stdin.lock())
    };
    match password {
        Ok(password) => {
            println!("{}", hash_password(&password));
            let _ = io::stdout().flush();
            eprintln!("relaygate passwd: put it in the users file as password_hash");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("relaygate passwd: {e}");
            ExitCode::from(2)
        }
    }
}

/// The terminal's echo off while it lives (`stty -echo`, back on with `stty echo`). If `stty`
/// is missing, typing shows, which standard input read by any other program would do too.
struct NoEcho {
    active: bool,
}

impl NoEcho {
    fn start() -> NoEcho {
        NoEcho {
            active: stty("-echo"),
        }
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        if self.active {
            stty("echo");
        }
    }
}

/// Run `stty SETTING` on the terminal standard input is; whether it worked.
fn stty(setting: &str) -> bool {
    Command::new("stty")
        .arg(setting)
        .stdin(Stdio::inherit())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_is_the_password_without_its_line_end() {
        assert_eq!(&*read_password(&b"s3cret\n"[..]).unwrap(), b"s3cret");
        assert_eq!(
            &*read_password(&b"s3cret\r\nsecond\n"[..]).unwrap(),
            b"s3cret"
        );
        assert_eq!(
            &*read_password(&b"no line end"[..]).unwrap(),
            b"no line end"
        );
        assert_eq!(
            &*read_password(&b" spaces kept \n"[..]).unwrap(),
            b" spaces kept "
        );
    }

    #[test]
    fn an_empty_password_is_refused() {
        assert!(matches!(read_password(&b""[..]), Err(PasswdError::Empty)));
        assert!(matches!(read_password(&b"\n"[..]), Err(PasswdError::Empty)));
        assert!(matches!(
            read_password(&b"\r\nx\n"[..]),
            Err(PasswdError::Empty)
        ));
    }

    #[test]
    fn a_password_past_the_limit_is_refused_and_one_at_it_taken() {
        let at_limit = vec![b'a'; MAX_PASSWORD_BYTES as usize];
        assert_eq!(read_password(&at_limit[..]).unwrap().len(), at_limit.len());
        let mut with_end = at_limit.clone();
        with_end.push(b'\n');
        assert_eq!(read_password(&with_end[..]).unwrap().len(), at_limit.len());
        let past = vec![b'a'; MAX_PASSWORD_BYTES as usize + 1];
        assert!(matches!(
            read_password(&past[..]),
            Err(PasswdError::TooLong)
        ));
        let endless = io::BufReader::new(io::repeat(b'a'));
        assert!(matches!(read_password(endless), Err(PasswdError::TooLong)));
    }
}
