//! Human output: aligned columns, relative times, colour only on a terminal (and never with
//! `NO_COLOR` set); `--json` output is serde_json of the same data.

use serde::Serialize;
use std::io::{IsTerminal, Write};

/// How results are written.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub json: bool,
    colour: bool,
}

impl Style {
    pub fn new(json: bool) -> Self {
        let colour =
            !json && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Self { json, colour }
    }

    /// Writes `value` as one JSON document.
    pub fn print_json(&self, value: &impl Serialize) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, value)?;
        writeln!(out)
    }

    /// `text` in green (ok), red (problem) or yellow (note), on a terminal.
    pub fn paint(&self, text: &str, tone: Tone) -> String {
        if !self.colour {
            return text.to_string();
        }
        let code = match tone {
            Tone::Good => "32",
            Tone::Bad => "31",
            Tone::Note => "33",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

/// The colour a word gets on a terminal.
#[derive(Debug, Clone, Copy)]
pub enum Tone {
    Good,
    Bad,
    Note,
}

/// Lines of columns padded to the widest cell of each column (the last one is not padded).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| visible_len(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(visible_len(cell));
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len() - 1;
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == last {
                    c.clone()
                } else {
                    format!("{c}{}", " ".repeat(widths[i] - visible_len(c)))
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut text = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        text.push('\n');
        text.push_str(&line(row.clone()));
    }
    text
}

/// Characters a terminal shows: colour escape sequences take no room.
fn visible_len(text: &str) -> usize {
    let mut len = 0;
    let mut in_escape = false;
    for c in text.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => len += 1,
        }
    }
    len
}

/// Seconds as `45s`, `3m12s`, `2h05m`, `3d04h`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 10.0 {
        return format!("{s:.1}s");
    }
    let s = s.round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A moment (seconds since the epoch) as `3m12s ago`.
pub fn ago(epoch_seconds: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    format!("{} ago", duration((now - epoch_seconds) as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_whatever_the_cell_widths() {
        let text = table(
            &["A", "BB", "C"],
            &[vec!["long cell".into(), "x".into(), "end".into()]],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "A          BB  C");
        assert_eq!(lines[1], "long cell  x   end");
        let coloured = table(&["A", "B"], &[vec!["\x1b[32mok\x1b[0m".into(), "x".into()]]);
        assert_eq!(
            coloured.lines().next().unwrap(),
            "A   B",
            "escapes take no room"
        );
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(2.345), "2.3s");
        assert_eq!(duration(45.0), "45s");
        assert_eq!(duration(192.0), "3m12s");
        assert_eq!(duration(7500.0), "2h05m");
        assert_eq!(duration(2.0 * 86_400.0 + 3600.0), "2d01h");
    }

    #[test]
    fn no_colour_outside_a_terminal() {
        // Tests run with stdout captured: never a terminal.
        assert_eq!(Style::new(false).paint("ok", Tone::Good), "ok");
    }
}
