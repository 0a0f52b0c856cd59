//! Message text as both legs see it: dot-stuffing on the way in, the gate's own `Received:`
//! field on the way out, and the files a directory upstream leaves.

use std::path::{Path, PathBuf};

/// Dot-stuff message text for DATA (RFC 5321 4.5.2): a line that starts with a dot gets a
/// second one. The final `.\r\n` is not added.
pub fn stuff(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 64);
    let mut at_line_start = true;
    for &b in text {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    out
}

/// The text after the gate's `Received:` field (its first header, folded lines included);
/// `None` when the text does not start with one.
pub fn without_received(text: &[u8]) -> Option<&[u8]> {
    if !text.starts_with(b"Received: ") {
        return None;
    }
    let mut i = 0;
    loop {
        i += text[i..].iter().position(|b| *b == b'\n')? + 1;
        if !matches!(text.get(i), Some(b'\t') | Some(b' ')) {
            return Some(&text[i..]);
        }
    }
}

/// The message as the upstream stored it, without the gate's `Received:` field, which must
/// be there.
pub fn strip_received(data: &[u8]) -> &[u8] {
    without_received(data).expect("no Received: first")
}

/// The messages (`.eml`) a directory upstream stored in `dir`, in name order; none when the
/// directory does not exist (yet).
pub fn stored(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
