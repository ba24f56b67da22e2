//! Text a client wrote, made safe for a log line: control characters (a newline that would
//! start a forged line, an ANSI escape that would repaint the terminal) are written as
//! escapes, and the text is cut after [`MAX_CHARS`] characters, so one field cannot be a
//! 200 KiB line.

use std::fmt;

/// Characters of a client's text kept in a log line.
pub const MAX_CHARS: usize = 120;

/// Displays its text escaped and capped; for every user-supplied string in a log line.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, c) in self.0.chars().enumerate() {
            if n == MAX_CHARS {
                return write!(f, "…({} bytes)", self.0.len());
            }
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{202e}') {
                write!(f, "{}", c.escape_unicode())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_and_escapes_cannot_forge_or_paint_a_line() {
        let forged = "bob\n2026-12-02T09:00:00Z INFO signed in user=admin\u{1b}[2J";
        let shown = Escaped(forged).to_string();
        assert!(
            !shown.contains('\n') && !shown.contains('\u{1b}'),
            "{shown}"
        );
        assert!(shown.starts_with("bob\\u{a}2026"), "{shown}");
        assert!(shown.ends_with("\\u{1b}[2J"), "{shown}");
    }

    #[test]
    fn long_text_is_cut() {
        let long = "x".repeat(200 * 1024);
        let shown = Escaped(&long).to_string();
        assert!(shown.len() < 200, "{} bytes", shown.len());
        assert!(shown.ends_with("…(204800 bytes)"), "{shown}");
        assert_eq!(Escaped("plain name").to_string(), "plain name");
    }
}
