//! What the commands print besides their results: notes and warnings on stderr, progress bars
//! (only on a terminal and without `--quiet`), JSON on stdout, and text helpers for tables.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sieve::engine::Progress;

use crate::{Error, Result};

/// `println!` that returns a [`crate::Error`] instead of panicking when stdout fails; a closed
/// pipe (`sieve search … | head`) then ends the command quietly.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*).map_err(|e| $crate::Error::write("to stdout", e))
    }};
}

/// Where a command's side output goes.
pub struct Output {
    quiet: bool,
    bars: bool,
}

impl Output {
    /// Notes and bars unless `quiet`; bars only when stderr is a terminal.
    pub fn new(quiet: bool) -> Self {
        Output {
            quiet,
            bars: !quiet && std::io::stderr().is_terminal(),
        }
    }

    /// Whether notes are silenced (`--quiet`).
    pub fn quiet(&self) -> bool {
        self.quiet
    }

    /// Whether progress bars are drawn.
    pub fn bars(&self) -> bool {
        self.bars
    }

    /// An informational line on stderr (silenced by `--quiet`).
    pub fn note(&self, message: &str) {
        if !self.quiet {
            eprintln!("{message}");
        }
    }

    /// A warning line on stderr (always shown).
    pub fn warn(&self, message: &str) {
        eprintln!("warning: {message}");
    }

    /// A progress bar of `len` steps, hidden unless bars are enabled.
    pub fn bar(&self, len: u64, message: &str) -> ProgressBar {
        if !self.bars {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        if let Ok(style) = ProgressStyle::with_template("{msg:>10} {bar:30} {pos}/{len} [{elapsed}<{eta}]") {
            bar.set_style(style);
        }
        bar.set_message(message.to_string());
        bar
    }
}

/// Drives one bar across several `add_with_progress` / `upsert_with_progress` calls: each
/// document counts once per encoding stage (dense and sparse run side by side), batch after
/// batch.
pub struct WriteProgress {
    bar: ProgressBar,
    stages: u64,
    offset: u64,
    /// The batch being written: where it starts on the bar, its documents, and how many each
    /// encoder (dense, sparse) has done.
    base: u64,
    batch: u64,
    done: [u64; 2],
}

impl WriteProgress {
    /// A bar for `documents` documents encoded by `stages` models (dense, sparse).
    pub fn new(out: &Output, documents: usize, stages: usize) -> Self {
        let stages = stages.max(1) as u64;
        WriteProgress {
            bar: out.bar(documents as u64 * stages, "encoding"),
            stages,
            offset: 0,
            base: 0,
            batch: 0,
            done: [0; 2],
        }
    }

    /// Lengthens the bar by `batch` documents, for writes whose total is not known up front.
    pub fn extend(&mut self, batch: usize) {
        self.bar.inc_length(batch as u64 * self.stages);
    }

    /// Starts one write of `batch` documents; [`WriteProgress::update`] then follows it.
    pub fn start(&mut self, batch: usize) {
        self.base = self.offset;
        self.batch = batch as u64;
        self.done = [0; 2];
        self.offset += batch as u64 * self.stages;
    }

    /// Progress of the write started last.
    pub fn update(&mut self, p: Progress) {
        // Dense and sparse encode side by side: the bar shows their sum.
        match p.stage {
            "dense" => self.done[0] = p.done as u64,
            "sparse" => self.done[1] = p.done as u64,
            _ => self.done = [p.total as u64; 2],
        }
        self.bar.set_message(p.stage);
        self.bar
            .set_position(self.base + (self.done[0] + self.done[1]).min(self.batch * self.stages));
    }

    /// The callback for one write of `batch` documents.
    pub fn callback(&mut self, batch: usize) -> impl FnMut(Progress) + '_ {
        self.start(batch);
        move |p: Progress| self.update(p)
    }

    /// Removes the bar.
    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}

/// Warns about indexes that missed writes after a failure (the writes themselves are stored).
pub fn warn_stale(out: &Output, stale: &[sieve::engine::Retriever]) {
    if !stale.is_empty() {
        let names: Vec<&str> = stale.iter().map(|r| r.name()).collect();
        out.warn(&format!(
            "the {} index failed to apply some writes; they are stored, and the index is rebuilt the next time \
             the collection opens",
            names.join(" and ")
        ));
    }
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl Serialize) -> Result {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::msg(format!("cannot write JSON: {e}")))?;
    outln!("{text}")
}

/// The text on one line, whitespace collapsed, cut to `max` characters with an ellipsis.
pub fn snippet(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, word) in text.split_whitespace().enumerate() {
        if n > 0 {
            out.push(' ');
        }
        out.push_str(word);
        if out.chars().count() > max {
            break;
        }
    }
    if out.chars().count() > max {
        let cut: String = out.chars().take(max.saturating_sub(1)).collect();
        format!("{}…", cut.trim_end())
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::snippet;

    #[test]
    fn snippets_are_one_line_and_bounded() {
        assert_eq!(snippet("a\n\n b\tc", 80), "a b c");
        assert_eq!(snippet("abcdef ghij", 6), "abcde…");
        assert_eq!(snippet("", 5), "");
    }
}
